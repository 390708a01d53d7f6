//! Reads from a PostgreSQL streaming replica, with read-your-writes (docs/scaling.md, "A
//! read replica").
//!
//! After each write a subject (a customer, or a merchant's tenant) makes, the primary's
//! WAL position is remembered for that subject here and handed to the client as a
//! consistency token. A read goes to the replica only when the replica has replayed the
//! position its subject (or its token) requires, is up, has been seen to keep up (its lag
//! is known), and is not further behind than the operator allows; otherwise to the
//! primary. A pool whose connections are all in use sends that one read to the primary
//! without counting the replica down. The replica's state is looked up at most
//! once per check interval (two one-row queries: the primary's position, the replica's),
//! so deciding costs a comparison in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tenure_domain::ids::{CustomerId, MerchantId};
use tenure_store::replication::{self, Lsn};
use tenure_store::{Checkout, Db};

use crate::App;

/// The operator's settings for the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Behind by more than this, the replica serves no read.
    pub max_lag: Duration,
    /// How long a look at the replica's position is trusted.
    pub check_interval: Duration,
    /// How long a look may take before the replica counts as down.
    pub check_timeout: Duration,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(10),
            check_interval: Duration::from_millis(100),
            check_timeout: Duration::from_millis(500),
        }
    }
}

/// Who wrote, and whose next reads must see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A customer of a merchant, in every session of theirs.
    Customer {
        merchant: MerchantId,
        customer: CustomerId,
    },
    /// A merchant's tenant, with any of its keys.
    Merchant(MerchantId),
}

/// Where a read is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Replica,
    Primary,
}

/// The replica: a pool on it (each HTTP worker has its own, as for the primary) and what
/// the process knows about it, shared by every pool.
#[derive(Clone)]
pub struct Replica {
    pub db: Db,
    tracker: Arc<Tracker>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("db", &self.db)
            .field("settings", &self.tracker.settings)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub fn new(db: Db, settings: ReplicaSettings) -> Self {
        Self {
            db,
            tracker: Arc::new(Tracker {
                settings,
                state: Mutex::new(State::default()),
                checking: AtomicBool::new(false),
            }),
        }
    }

    /// A read on the replica failed (503): the replica counts as down until the next look,
    /// unless every connection of its pool is in use, when the read failed waiting for
    /// one and the replica itself may be well.
    pub fn failed_read(&self) {
        if !self.db.is_exhausted() {
            self.mark_down();
        }
    }

    /// The same replica through another pool (an HTTP worker's).
    pub fn through(&self, db: Db) -> Self {
        Self {
            db,
            tracker: Arc::clone(&self.tracker),
        }
    }

    /// Counts the replica as down until the next look: a read on it just failed (unless
    /// its pool is merely full: see [`Replica::failed_read`]).
    pub fn mark_down(&self) {
        let mut state = self.tracker.lock();
        state.replica = Observed::Down;
        state.measured = false;
    }
}

struct Tracker {
    settings: ReplicaSettings,
    state: Mutex<State>,
    /// Set while one request looks at the replica; the others decide on what is known.
    checking: AtomicBool,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is valid after any panic of a holder: each update is one assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// At most this many subjects' positions are remembered; past it they are folded into
/// one position every read must wait for (reads go to the primary until the replica
/// passes it), which errs on the side of consistency.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    checked_at: Option<Instant>,
    replica: Observed,
    /// The primary's positions when it was looked at, oldest first, which the replica has
    /// not replayed yet: the oldest one's age is how far behind the replica is, at least.
    unreplayed: VecDeque<(Instant, Lsn)>,
    written: HashMap<Subject, Lsn>,
    /// What every subject must wait for, once `written` overflowed.
    floor: Option<Lsn>,
    /// Whether the replica's lag is known: it has been seen holding a position the primary
    /// had at a look. Until then a replica that is far behind (as one just started from an
    /// old copy) would look current at its first look, so it serves no read.
    measured: bool,
    /// Whether the log said the replica went away (and not yet that it came back).
    reported_down: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Observed {
    /// Not looked at yet, or the last look failed.
    #[default]
    Down,
    /// Replaying, this far.
    Replayed(Lsn),
    /// Not replaying: every write it was sent is visible.
    Current,
}

impl Observed {
    fn holds(self, position: Lsn) -> bool {
        match self {
            Observed::Down => false,
            Observed::Replayed(replayed) => replayed >= position,
            Observed::Current => true,
        }
    }
}

impl State {
    fn remember(&mut self, subject: Subject, position: Lsn) {
        if self.written.len() >= MAX_REMEMBERED && !self.written.contains_key(&subject) {
            let newest = self.written.values().copied().max();
            self.floor = self.floor.max(newest);
            self.written.clear();
        }
        let entry = self.written.entry(subject).or_insert(position);
        *entry = (*entry).max(position);
    }

    fn required(&self, subject: Option<Subject>, token: Option<Lsn>) -> Option<Lsn> {
        let written = subject.and_then(|s| self.written.get(&s).copied());
        written.max(token).max(self.floor)
    }

    /// What one look found: the primary's position (if it answered) and the replica's.
    fn observe(&mut self, at: Instant, primary: Option<Lsn>, replica: Observed) {
        self.checked_at = Some(at);
        self.replica = replica;
        if let Some(primary) = primary {
            self.unreplayed.push_back((at, primary));
        }
        if replica == Observed::Down {
            // Back, it is measured again before it serves (it may come back from a copy).
            self.measured = false;
            return;
        }
        // What the replica holds is no longer anyone's to wait for.
        while self
            .unreplayed
            .front()
            .is_some_and(|&(_, position)| replica.holds(position))
        {
            self.unreplayed.pop_front();
            // Behind by less than the time since this look, and the positions it has not
            // replayed yet were recorded since: the lag is known from now on.
            self.measured = true;
        }
        self.written.retain(|_, position| !replica.holds(*position));
        if self.floor.is_some_and(|floor| replica.holds(floor)) {
            self.floor = None;
        }
    }

    fn lag(&self, now: Instant) -> Duration {
        self.unreplayed
            .front()
            .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at))
    }

    fn source(&self, required: Option<Lsn>, now: Instant, max_lag: Duration) -> ReadSource {
        let fresh_enough = self.lag(now) <= max_lag;
        let holds_required = required.is_none_or(|position| self.replica.holds(position));
        if self.replica != Observed::Down && self.measured && fresh_enough && holds_required {
            ReadSource::Replica
        } else {
            ReadSource::Primary
        }
    }
}

/// After a write by `subject` has committed: the primary's position, remembered for the
/// subject and returned as the client's consistency token. `None` without a replica, or
/// when the primary does not answer (the write's own response says what happened).
pub async fn after_write(app: &App, subject: Subject) -> Option<Lsn> {
    let replica = app.replica.as_ref()?;
    let position = primary_position(&app.db).await?;
    replica.tracker.lock().remember(subject, position);
    Some(position)
}

/// Clears a "look in progress" flag when the look ends, however it ends.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Where a read by `subject` (if known), which the client says must see `token` (if
/// sent), is served from.
pub async fn source_of_read(app: &App, subject: Option<Subject>, token: Option<Lsn>) -> ReadSource {
    let Some(replica) = app.replica.as_ref() else {
        return ReadSource::Primary;
    };
    let tracker = &replica.tracker;
    let settings = tracker.settings;
    let due = tracker
        .lock()
        .checked_at
        .is_none_or(|at| at.elapsed() >= settings.check_interval);
    if due && !tracker.checking.swap(true, Ordering::AcqRel) {
        // Cleared on drop too: actix drops a request's future when its client goes away,
        // and a flag left set would stop every later look for the life of the process.
        let _checking = ClearOnDrop(&tracker.checking);
        let (primary, observed) = look(app, replica).await;
        let mut state = tracker.lock();
        // Said once when it goes, once when it comes back, not at every look.
        match &observed {
            Err(Unseen::Down(cause)) if !state.reported_down => {
                tracing::warn!(%cause, "the replica does not answer; reads go to the primary");
                state.reported_down = true;
            }
            Ok(_) if state.reported_down => {
                tracing::info!("the replica answers again");
                state.reported_down = false;
            }
            _ => {}
        }
        let observed = match observed {
            Ok(observed) => observed,
            // Its pool busy with reads, the replica is as last seen; the primary's
            // position is still recorded, so its lag keeps counting until a look gets in.
            Err(Unseen::Busy) => state.replica,
            Err(Unseen::Down(_)) => Observed::Down,
        };
        state.observe(Instant::now(), primary, observed);
    }
    let source = {
        let state = tracker.lock();
        state.source(
            state.required(subject, token),
            Instant::now(),
            settings.max_lag,
        )
    };
    if source == ReadSource::Replica {
        match replica.db.conn_within(settings.check_timeout).await {
            Ok(_) => {}
            // Every connection busy with other reads: this one goes to the primary, and
            // the replica is not counted down for it.
            Err(Checkout::Busy) => return ReadSource::Primary,
            // A replica stopped since the last look has closed its connections, and a
            // read on it would fail.
            Err(Checkout::Unavailable(_)) => {
                replica.mark_down();
                return ReadSource::Primary;
            }
        }
    }
    source
}

/// Why a look did not see the replica's position.
enum Unseen {
    /// Its pool had no connection free: the replica may be well.
    Busy,
    /// It did not answer.
    Down(String),
}

/// The primary's position, then the replica's: a position of the primary's the replica
/// already holds is not waited for.
async fn look(app: &App, replica: &Replica) -> (Option<Lsn>, Result<Observed, Unseen>) {
    let primary = primary_position(&app.db).await;
    let timeout = replica.tracker.settings.check_timeout;
    // The checkout first, on its own clock: a pool that is merely full is told apart
    // from a replica that does not answer.
    let observed = match replica.db.conn_within(timeout).await {
        Err(Checkout::Busy) => Err(Unseen::Busy),
        Err(Checkout::Unavailable(err)) => Err(Unseen::Down(err.to_string())),
        Ok(mut conn) => {
            match tokio::time::timeout(timeout, replication::replayed_position(&mut conn)).await {
                Ok(Ok(Some(position))) => Ok(Observed::Replayed(position)),
                Ok(Ok(None)) => Ok(Observed::Current),
                Ok(Err(err)) => Err(Unseen::Down(err.to_string())),
                Err(_) => Err(Unseen::Down(format!("no answer within {timeout:?}"))),
            }
        }
    };
    (primary, observed)
}

async fn primary_position(db: &Db) -> Option<Lsn> {
    let position = async {
        let mut conn = db.conn().await?;
        replication::written_position(&mut conn).await
    }
    .await;
    position
        .map_err(|err| tracing::debug!(error = %err, "no WAL position from the primary"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_LAG: Duration = Duration::from_secs(10);

    fn lsn(n: u64) -> Lsn {
        Lsn::new(n)
    }

    fn customer(n: u128) -> Subject {
        Subject::Customer {
            merchant: MerchantId::from_uuid(uuid::Uuid::from_u128(1)),
            customer: CustomerId::from_uuid(uuid::Uuid::from_u128(n)),
        }
    }

    #[test]
    fn a_subject_reads_from_the_replica_once_it_holds_the_subject_s_write() {
        let t0 = Instant::now();
        let mut state = State::default();
        state.observe(t0, Some(lsn(100)), Observed::Replayed(lsn(100)));
        state.remember(customer(1), lsn(150));
        let required = |state: &State, s| state.required(Some(s), None);
        assert_eq!(
            state.source(required(&state, customer(1)), t0, MAX_LAG),
            ReadSource::Primary
        );
        assert_eq!(
            state.source(required(&state, customer(2)), t0, MAX_LAG),
            ReadSource::Replica
        );
        state.observe(t0, Some(lsn(160)), Observed::Replayed(lsn(149)));
        assert_eq!(
            state.source(required(&state, customer(1)), t0, MAX_LAG),
            ReadSource::Primary
        );
        state.observe(t0, Some(lsn(160)), Observed::Replayed(lsn(160)));
        assert_eq!(
            state.source(required(&state, customer(1)), t0, MAX_LAG),
            ReadSource::Replica
        );
        assert!(state.written.is_empty(), "a held position is forgotten");
    }

    #[test]
    fn a_token_from_another_process_is_waited_for_like_a_remembered_write() {
        let t0 = Instant::now();
        let mut state = State::default();
        state.observe(t0, Some(lsn(100)), Observed::Replayed(lsn(100)));
        assert_eq!(
            state.source(state.required(None, Some(lsn(101))), t0, MAX_LAG),
            ReadSource::Primary
        );
        assert_eq!(
            state.source(state.required(None, Some(lsn(100))), t0, MAX_LAG),
            ReadSource::Replica
        );
    }

    #[test]
    fn a_replica_down_or_too_far_behind_serves_nothing() {
        let t0 = Instant::now();
        let mut state = State::default();
        assert_eq!(
            state.source(None, t0, MAX_LAG),
            ReadSource::Primary,
            "not looked at yet"
        );
        state.observe(t0, Some(lsn(90)), Observed::Replayed(lsn(90)));
        assert_eq!(state.source(None, t0, MAX_LAG), ReadSource::Replica);
        // Replay stopped at 90 while the primary went on: behind since the first look
        // that found the primary past it.
        state.observe(t0, Some(lsn(100)), Observed::Replayed(lsn(90)));
        state.observe(t0, Some(lsn(110)), Observed::Replayed(lsn(90)));
        assert_eq!(
            state.source(None, t0 + MAX_LAG, MAX_LAG),
            ReadSource::Replica
        );
        let later = t0 + MAX_LAG + Duration::from_millis(1);
        assert_eq!(state.source(None, later, MAX_LAG), ReadSource::Primary);
        state.observe(later, Some(lsn(120)), Observed::Replayed(lsn(110)));
        assert_eq!(
            state.lag(later),
            Duration::ZERO,
            "caught up with the oldest look"
        );
        assert_eq!(state.source(None, later, MAX_LAG), ReadSource::Replica);
        // Down, then back behind every position recorded since it last kept up (as from
        // an older copy): not measured again until it holds one.
        state.observe(later, Some(lsn(130)), Observed::Down);
        assert_eq!(state.source(None, later, MAX_LAG), ReadSource::Primary);
        state.observe(later, Some(lsn(130)), Observed::Replayed(lsn(115)));
        assert_eq!(state.source(None, later, MAX_LAG), ReadSource::Primary);
        state.observe(later, Some(lsn(130)), Observed::Replayed(lsn(130)));
        assert_eq!(state.source(None, later, MAX_LAG), ReadSource::Replica);
        // A server that is not replaying holds everything.
        state.remember(customer(1), lsn(500));
        state.observe(later, Some(lsn(500)), Observed::Current);
        assert_eq!(
            state.source(state.required(Some(customer(1)), None), later, MAX_LAG),
            ReadSource::Replica
        );
    }

    #[test]
    fn a_replica_not_yet_seen_holding_a_position_of_the_primary_serves_nothing() {
        let t0 = Instant::now();
        let mut state = State::default();
        // At its first look the replica is far behind (started from an old copy, or
        // replay paused): the position it misses was only just recorded, so its lag would
        // read as none, but it is unknown.
        state.observe(t0, Some(lsn(1_000)), Observed::Replayed(lsn(10)));
        assert_eq!(state.lag(t0), Duration::ZERO);
        assert_eq!(state.source(None, t0, MAX_LAG), ReadSource::Primary);
        let t1 = t0 + Duration::from_secs(1);
        state.observe(t1, Some(lsn(1_100)), Observed::Replayed(lsn(500)));
        assert_eq!(state.source(None, t1, MAX_LAG), ReadSource::Primary);
        // Once it holds what the primary had at a look, its lag is known: here, behind by
        // at most the second since the next look.
        let t2 = t1 + Duration::from_secs(1);
        state.observe(t2, Some(lsn(1_200)), Observed::Replayed(lsn(1_000)));
        assert_eq!(state.lag(t2), Duration::from_secs(1));
        assert_eq!(state.source(None, t2, MAX_LAG), ReadSource::Replica);
    }

    #[test]
    fn too_many_writers_fold_into_one_position_every_read_waits_for() {
        let t0 = Instant::now();
        let mut state = State::default();
        state.observe(t0, Some(lsn(1)), Observed::Replayed(lsn(1)));
        for n in 0..=MAX_REMEMBERED as u128 {
            state.remember(customer(n), lsn(10 + n as u64));
        }
        assert_eq!(state.written.len(), 1);
        let floor = lsn(10 + MAX_REMEMBERED as u64 - 1);
        assert_eq!(state.floor, Some(floor));
        assert_eq!(state.required(Some(customer(0)), None), Some(floor));
        state.observe(t0, None, Observed::Replayed(floor));
        assert_eq!(state.floor, None);
        assert_eq!(
            state.source(state.required(Some(customer(0)), None), t0, MAX_LAG),
            ReadSource::Replica
        );
    }
}
