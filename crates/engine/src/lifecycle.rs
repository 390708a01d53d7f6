//! The lifecycle worker: applies scheduled changes (pause start and end, cancellation
//! dates, plan changes at period end, trial ends) when they fall due.
//!
//! Any number of processes may run it at once. Each change is claimed in its own
//! transaction with `FOR UPDATE SKIP LOCKED`, then its subscription is locked with
//! `SKIP LOCKED` too: a subscription that a request is changing right now is left for
//! the next round instead of waiting (which could deadlock against the request, which
//! locks the subscription first and its change rows second). The domain's
//! `apply_due(now)` applies every change due, each at its own `due_at`, so a late worker
//! produces the same result as a punctual one.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use tenure_store::repo::subscriptions as repo;

use tenure_app::subscriptions::{apply_due_in_tx, expire_incomplete_in_tx};
use tenure_app::{App, AppResult};
use tenure_domain::subscription::INCOMPLETE_EXPIRES_AFTER;
use tenure_domain::test_clock::WorkScope;
use tenure_domain::time::truncate_to_micros;

enum Round {
    /// Nothing (more) is due.
    Idle,
    /// The change row was claimed but its subscription is busy, or applying failed.
    Skipped(uuid::Uuid),
    /// Applied; carries the number of domain events.
    Applied(uuid::Uuid, usize),
}

/// Applies the due scheduled changes of every customer without a test clock: see
/// [`run_due_changes_in`].
pub async fn run_due_changes(
    state: &App,
    now: DateTime<Utc>,
    batch_size: usize,
) -> AppResult<usize> {
    run_due_changes_in(state, WorkScope::RealTime, now, batch_size).await
}

/// Applies the due scheduled changes of `scope`, at most `batch_size` subscriptions'
/// worth; returns how many subscriptions changed. Call it again while it returns
/// `batch_size`.
pub async fn run_due_changes_in(
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch_size: usize,
) -> AppResult<usize> {
    let now = truncate_to_micros(now);
    let mut skip: Vec<uuid::Uuid> = Vec::new();
    let mut applied = 0;
    let mut conn = state.db.conn().await?;
    while applied < batch_size {
        let round = conn
            .transaction(async |conn| {
                let Some((row, merchant, sub_id)) =
                    repo::claim_due_change(conn, scope, now, &skip).await?
                else {
                    return Ok(Round::Idle);
                };
                let Some(before) = repo::lock_if_free(conn, merchant, sub_id).await? else {
                    return Ok(Round::Skipped(row));
                };
                match apply_due_in_tx(conn, merchant, &before, now).await? {
                    Ok(events) => Ok(Round::Applied(row, events)),
                    Err(refusal) => {
                        tracing::error!(
                            subscription = %sub_id,
                            code = refusal.code(),
                            error = %refusal,
                            "cannot apply the due changes"
                        );
                        Ok::<_, tenure_app::AppError>(Round::Skipped(row))
                    }
                }
            })
            .await?;
        match round {
            Round::Idle => break,
            Round::Skipped(row) => skip.push(row),
            Round::Applied(row, 0) => skip.push(row),
            Round::Applied(_, _) => applied += 1,
        }
    }
    Ok(applied)
}

/// Expires `incomplete` subscriptions past their deadline (23 hours after the signup):
/// `incomplete_expired`, the first invoice voided, `subscription.incomplete_expired`.
/// One per transaction, each claimed with `SKIP LOCKED`; one whose first invoice is being
/// charged right now (or that fails) is left for the next round. Returns how many expired.
/// Customers without a test clock: see [`run_incomplete_expiry_in`].
pub async fn run_incomplete_expiry(
    state: &App,
    now: DateTime<Utc>,
    batch_size: usize,
) -> AppResult<usize> {
    run_incomplete_expiry_in(state, WorkScope::RealTime, now, batch_size).await
}

/// [`run_incomplete_expiry`] for the subscriptions of `scope`, `now` being its time.
pub async fn run_incomplete_expiry_in(
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch_size: usize,
) -> AppResult<usize> {
    let now = truncate_to_micros(now);
    let signed_up_by = now - INCOMPLETE_EXPIRES_AFTER;
    let mut skip: Vec<uuid::Uuid> = Vec::new();
    let mut expired = 0;
    let mut conn = state.db.conn().await?;
    while expired < batch_size {
        let round = conn
            .transaction(async |conn| {
                let Some((merchant, before)) =
                    repo::claim_expired_incomplete(conn, scope, signed_up_by, &skip).await?
                else {
                    return Ok(None);
                };
                let id = before.subscription.id;
                // A savepoint, so that a refused expiry leaves the claim's transaction usable.
                let outcome = conn
                    .transaction(async |conn| {
                        expire_incomplete_in_tx(conn, merchant, &before, now).await
                    })
                    .await;
                let done = match outcome {
                    Ok(Ok(())) => true,
                    Ok(Err(refusal)) => {
                        tracing::error!(subscription = %id, code = refusal.code(),
                            error = %refusal, "cannot expire the incomplete subscription");
                        false
                    }
                    Err(err) => {
                        crate::tolerate_item_failure(&err, "incomplete expiry", &id.to_string())?;
                        false
                    }
                };
                Ok::<_, tenure_app::AppError>(Some((id.uuid(), done)))
            })
            .await?;
        match round {
            None => break,
            Some((_, true)) => expired += 1,
            Some((id, false)) => skip.push(id),
        }
    }
    Ok(expired)
}
