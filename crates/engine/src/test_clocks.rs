//! Advancing test clocks (docs/test-clocks.md). A clock the merchant advanced is
//! `advancing` towards a target; a worker claims it (a lease, so a stopped worker's
//! advance is taken over) and steps through the due work of its customers in order:
//! it finds the earliest moment something of the clock falls due, sets the clock to it,
//! runs the engine's rounds restricted to the clock with that moment as "now" until
//! nothing more is due, and goes on until the next moment lies beyond the target. Then
//! the clock shows the target and is `ready` again.
//!
//! The rounds are the real-time rounds with a [`WorkScope`]: what a renewal, a dunning
//! retry or a notice does is the same whichever clock it happens on.

use chrono::{DateTime, Utc};
use tenure_app::{App, AppResult};
use tenure_domain::ids::{MerchantId, TestClockId};
use tenure_domain::subscription::ACCESS_ENDING_NOTICE_DAYS;
use tenure_domain::test_clock::{ClockStatus, WorkScope};
use tenure_store::repo::renewals::DEFAULT_UPCOMING_NOTICE_DAYS;
use tenure_store::repo::test_clocks as repo;

use crate::{lifecycle, notices, renewals};

/// How long a worker holds an advance between two steps before another may take it
/// over. A step is one clock's work at one moment, far shorter.
pub const ADVANCE_LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// Items per round within a step.
const STEP_BATCH: usize = 100;

/// Rounds of one step before it gives up on what is left (an item that keeps failing is
/// already set aside by its round; this bounds a step whatever happens).
const MAX_ROUNDS_PER_STEP: usize = 1000;

/// Advances one waiting clock, if there is one, to its target. Returns whether a clock
/// was advanced.
pub async fn advance_next(state: &App) -> AppResult<bool> {
    let real_now = state.now_micros();
    let claimed = {
        let mut conn = state.db.conn().await?;
        repo::claim_advancing(&mut conn, real_now, real_now + ADVANCE_LEASE).await?
    };
    let Some((merchant, clock)) = claimed else {
        return Ok(false);
    };
    let ClockStatus::Advancing { target } = clock.status else {
        return Ok(true);
    };
    advance_clock(state, merchant, clock.id, clock.frozen_time, target).await?;
    Ok(true)
}

/// Steps one clock from `from` to `target` (see the module's description) and sets it
/// `ready` there.
pub async fn advance_clock(
    state: &App,
    merchant: MerchantId,
    clock: TestClockId,
    from: DateTime<Utc>,
    target: DateTime<Utc>,
) -> AppResult<()> {
    let scope = WorkScope::Clock(clock);
    // What is due at the clock's time already (a first invoice made on it) goes first.
    let mut step = from;
    run_rounds_at(state, scope, step).await?;
    loop {
        let next = {
            let mut conn = state.db.conn().await?;
            repo::next_due_moment(
                &mut conn,
                merchant,
                clock,
                step,
                DEFAULT_UPCOMING_NOTICE_DAYS as i32,
                ACCESS_ENDING_NOTICE_DAYS as i32,
            )
            .await?
        };
        step = match next {
            Some(at) if at <= target => at,
            _ => target,
        };
        {
            let mut conn = state.db.conn().await?;
            let lease_until = state.now_micros() + ADVANCE_LEASE;
            repo::record_step(&mut conn, merchant, clock, step, lease_until).await?;
        }
        run_rounds_at(state, scope, step).await?;
        release_deliveries(state, merchant).await?;
        if step >= target {
            break;
        }
    }
    tenure_app::test_clocks::finish_advance(state, merchant, clock, target).await?;
    Ok(())
}

/// Webhook deliveries are first due at their event's time, which on a clock ahead of
/// real time is in the future: the receiver gets them now, as the clock moves.
async fn release_deliveries(state: &App, merchant: MerchantId) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    tenure_store::repo::webhooks::bring_forward_first_attempts(
        &mut conn,
        merchant,
        state.now_micros(),
    )
    .await?;
    Ok(())
}

/// Runs the clock's rounds (scheduled changes, expiring signups, renewals with charges and dunning,
/// notices) at `now` until none finds anything more to do. Returns the items handled.
pub async fn run_rounds_at(state: &App, scope: WorkScope, now: DateTime<Utc>) -> AppResult<usize> {
    let mut handled = 0;
    for _ in 0..MAX_ROUNDS_PER_STEP {
        let n = lifecycle::run_due_changes_in(state, scope, now, STEP_BATCH).await?
            + lifecycle::run_incomplete_expiry_in(state, scope, now, STEP_BATCH).await?
            + renewals::run_due_renewals_in(state, scope, now, STEP_BATCH).await?
            + notices::run_due_notices_in(state, scope, now, STEP_BATCH).await?;
        if n == 0 {
            break;
        }
        handled += n;
    }
    Ok(handled)
}
