//! Secret keys this process has already checked, so that a merchant's request does not
//! spend a database round trip (a fifth of PostgreSQL's work for a page of invoices) on
//! learning who is calling.
//!
//! A revoked key must stop working, so the cache answers only while it can prove it
//! hears of every change to `api_keys`: triggers (migration 000013) notify the hash of
//! each key updated or deleted (and `*` on a `TRUNCATE`), and [`keep_current`] forgets
//! it. Before answering, and every [`QUIET`] after, the listener checks that the
//! triggers are enabled in every session and that a notification it sends comes back (a
//! pooler in transaction mode would swallow them). When it cannot
//! (start-up, a lost connection, a disabled trigger) the cache is emptied and unused
//! until it can again. A revocation is heard as it commits; if the listener's
//! connection dies without a word, within [`QUIET`] + [`PROBE_TIMEOUT`]. An entry lives
//! [`TTL`] at most in any case. Only accepted keys are kept.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tenure_app::merchants::api_keys::MerchantKey;
use tenure_domain::ids::ApiKeyId;
use tenure_store::StoreResult;
use tenure_store::listener::Listener;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "tenure_api_keys";
/// The table and triggers that must fire for the cache to answer.
const TABLE: &str = "api_keys";
const TRIGGERS: [&str; 2] = ["api_keys_notify", "api_keys_notify_truncate"];
/// What the `TRUNCATE` trigger sends: forget every key.
const FORGET_ALL: &str = "*";
/// How the listening connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "tenure api key listener";
/// The longest an entry is trusted, even while every notification arrives.
pub const TTL: Duration = Duration::from_secs(60);
/// How often the listener probes its path.
pub const QUIET: Duration = Duration::from_secs(2);
/// How long a probe may take before the listener is presumed deaf; generous, so that a
/// database slow under load does not turn the cache off and add to the load.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before listening again after a failure, doubling while it keeps failing (a
/// pooler in transaction mode never lets it listen) up to `RETRY_MAX`.
const RETRY: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Beyond this many keys the cache starts again empty, so it cannot grow unbounded.
const MAX_ENTRIES: usize = 10_000;
/// A key's `last_used_at` is written at most this often by one process: a write per
/// request would double the cost of every read and contend on the key's row, and "used
/// within the last minute" is all a merchant deciding whether a key is still in use needs.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// Shared by every HTTP worker of the process (cloning shares it).
#[derive(Clone, Default)]
pub struct ApiKeyCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By the key's SHA-256 in lower-case hex, as the trigger sends it.
    entries: Mutex<HashMap<String, (Instant, MerchantKey)>>,
    /// When this process last wrote each key's `last_used_at`.
    last_written: Mutex<HashMap<ApiKeyId, Instant>>,
    /// Moves on every forget: a key read before a revocation must not be stored after it.
    generation: AtomicU64,
    listening: AtomicBool,
}

impl std::fmt::Debug for ApiKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCache")
            .field("listening", &self.is_listening())
            .finish_non_exhaustive()
    }
}

/// When a key's database lookup began, for [`ApiKeyCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct LookupStart(u64);

/// A key hash as the cache and the trigger name it.
pub fn hex(hash: &[u8]) -> String {
    hash.iter()
        .fold(String::with_capacity(hash.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

impl ApiKeyCache {
    /// An accepted key, if the cache may answer for it now.
    pub fn get(&self, hash: &str) -> Option<MerchantKey> {
        if !self.is_listening() {
            return None;
        }
        let entries = self.entries();
        entries
            .get(hash)
            .filter(|(stored, _)| stored.elapsed() < TTL)
            .map(|&(_, merchant)| merchant)
    }

    /// To call before looking a key up in the database.
    pub fn lookup_start(&self) -> LookupStart {
        LookupStart(self.inner.generation.load(Ordering::Acquire))
    }

    /// Keeps a key the database accepted, unless anything was forgotten since the lookup
    /// began (it may have been this key's revocation) or the cache is not listening.
    pub fn put(&self, hash: String, merchant: MerchantKey, started: LookupStart) {
        if !self.is_listening() {
            return;
        }
        let mut entries = self.entries();
        // Checked under the lock that `heard` and `set_listening` move the generation under.
        if self.inner.generation.load(Ordering::Acquire) != started.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (Instant::now(), merchant));
    }

    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Notes that `key` was used at `now`: writes its `last_used_at` in the background
    /// unless this process did so within [`LAST_USED_EVERY`] (the request never waits for
    /// it, and the column fires no `NOTIFY`, so the cache keeps the key).
    pub fn note_use(&self, app: &tenure_app::App, key: MerchantKey, now: DateTime<Utc>) {
        {
            let mut written = self
                .inner
                .last_written
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if written
                .get(&key.key)
                .is_some_and(|at| at.elapsed() < LAST_USED_EVERY)
            {
                return;
            }
            if written.len() >= MAX_ENTRIES {
                written.clear();
            }
            written.insert(key.key, Instant::now());
        }
        let app = app.clone();
        actix_web::rt::spawn(async move {
            let every = chrono::Duration::from_std(LAST_USED_EVERY).unwrap_or_default();
            let touched = async {
                let mut conn = app.db.conn().await?;
                tenure_store::repo::api_keys::touch(&mut conn, key.merchant, key.key, now, every)
                    .await?;
                Ok::<_, tenure_app::AppError>(())
            }
            .await;
            if let Err(err) = touched {
                tracing::warn!(error = %err, key = %key.key, "could not note when the key was last used");
            }
        });
    }

    /// A notification: forget the key it names, or all of them.
    fn heard(&self, payload: &str) {
        let mut entries = self.entries();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if payload == FORGET_ALL {
            entries.clear();
        } else {
            entries.remove(payload);
        }
    }

    /// Starts or stops answering; either way what was kept is dropped, since changes
    /// made while nobody listened were not heard.
    fn set_listening(&self, listening: bool) {
        let mut entries = self.entries();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.inner.listening.store(listening, Ordering::Release);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, MerchantKey)>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens for key changes for as long as the process runs, probing its path and
/// listening again after any failure; the cache answers only while a probe has passed.
pub async fn keep_current(cache: ApiKeyCache, database_url: String) {
    // Should this task end (cancelled, panicking), nothing would forget keys any more.
    let _deaf_after = DeafOnDrop(cache.clone());
    let mut retry = RETRY;
    loop {
        let Err(err) = listen(&cache, &database_url).await;
        if cache.is_listening() {
            retry = RETRY;
        }
        cache.set_listening(false);
        tracing::warn!(error = %err, retry_in = ?retry, "api key listener cannot vouch for the cache; keys are looked up each time until it can");
        actix_web::rt::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn listen(cache: &ApiKeyCache, database_url: &str) -> StoreResult<std::convert::Infallible> {
    let mut listener = Listener::connect(database_url, CHANNEL, APPLICATION_NAME).await?;
    listener.probe(TABLE, &TRIGGERS, PROBE_TIMEOUT).await?;
    cache.set_listening(true);
    // On a schedule that notifications do not move, or steady revocations would put
    // the next probe off for ever.
    let mut probe_at = Instant::now() + QUIET;
    loop {
        match listener.next(probe_at).await? {
            Some(payload) => cache.heard(&payload),
            None => {
                for payload in listener.probe(TABLE, &TRIGGERS, PROBE_TIMEOUT).await? {
                    cache.heard(&payload);
                }
                probe_at = Instant::now() + QUIET;
            }
        }
    }
}

struct DeafOnDrop(ApiKeyCache);

impl Drop for DeafOnDrop {
    fn drop(&mut self) {
        self.0.set_listening(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_domain::access::KeyScopes;
    use tenure_domain::ids::{GenerateId, MerchantId};

    fn merchant() -> MerchantKey {
        MerchantKey {
            merchant: MerchantId::generate(),
            key: ApiKeyId::generate(),
            scopes: KeyScopes::Unrestricted,
            expires_at: None,
            mode: tenure_domain::access::Mode::Test,
        }
    }

    #[test]
    fn it_answers_only_while_listening() {
        let cache = ApiKeyCache::default();
        let m = merchant();
        cache.put("aa".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), None, "not listening: nothing is kept");
        cache.set_listening(true);
        cache.put("aa".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), Some(m));
        cache.set_listening(false);
        assert_eq!(cache.get("aa"), None);
        cache.set_listening(true);
        assert_eq!(
            cache.get("aa"),
            None,
            "what was kept before the gap is gone"
        );
    }

    #[test]
    fn a_lookup_that_began_before_a_forget_is_not_kept() {
        let cache = ApiKeyCache::default();
        cache.set_listening(true);
        let m = merchant();
        let started = cache.lookup_start();
        cache.heard("aa");
        cache.put("aa".into(), m, started);
        assert_eq!(cache.get("aa"), None);
        cache.put("aa".into(), m, cache.lookup_start());
        cache.put("bb".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), Some(m));
        cache.heard("aa");
        assert_eq!(cache.get("aa"), None);
        assert_eq!(cache.get("bb"), Some(m), "only the key named is forgotten");
        cache.heard(FORGET_ALL);
        assert_eq!(cache.get("bb"), None);
    }

    #[test]
    fn hashes_are_named_as_the_trigger_names_them() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
