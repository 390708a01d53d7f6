//! The fan-out of stock notices (docs/orders.md, "Stock"): a round claims the unfinished
//! notice that has reached the fewest subscribers (the oldest of those) with `FOR UPDATE
//! SKIP LOCKED` and runs one bounded batch of it in the claim's transaction
//! (`tenure_app::stock::fan_out_batch_in_tx`), then the next batch (of the same notice or
//! another: the notices take turns) in a new transaction.
//!
//! Exactly once: a batch's events, its recipient rows and the moved cursor commit
//! together, so a crash between batches loses nothing and repeats nothing; while a batch
//! holds a notice, another worker claims a different notice or nothing, and the next
//! claim reads the cursor the last batch committed.
//!
//! A stock notice is a merchant's fact in real time, not a customer's: only the
//! real-time scope runs it. A clock customer's subscription is reached by it like any
//! other, and the action applied to it (a skip, a swap) is taken at the clock's time.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use tenure_app::stock::fan_out_batch_in_tx;
use tenure_app::{App, AppError, AppResult};
use tenure_domain::test_clock::WorkScope;
use tenure_domain::time::truncate_to_micros;
use tenure_store::repo::stock as repo;

use crate::tolerate_item_failure;

/// Subscribers per batch (one transaction) in the worker's rounds.
pub const STOCK_BATCH: i64 = 500;

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StockRound {
    /// Batches committed.
    pub batches: usize,
    /// Subscribers notified.
    pub notified: usize,
    /// The longest batch transaction.
    pub longest: std::time::Duration,
}

/// At most `batches` batches of up to `batch` subscribers each, at `now`, over the
/// unfinished stock notices of every merchant. A clock's scope has none (see the module
/// docs). Returns what was done; call again while `batches` reached the limit.
pub async fn run_stock_notices_in(
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batches: usize,
    batch: i64,
) -> AppResult<StockRound> {
    let mut round = StockRound::default();
    if scope != WorkScope::RealTime {
        return Ok(round);
    }
    let now = truncate_to_micros(now);
    let mut conn = state.db.conn().await?;
    let mut skip: Vec<uuid::Uuid> = Vec::new();
    while round.batches < batches {
        let mut claimed = None;
        let started = std::time::Instant::now();
        let result = conn
            .transaction(async |conn| {
                let Some((merchant, notice)) = repo::claim_unfinished(conn, &skip).await? else {
                    return Ok::<_, AppError>(None);
                };
                claimed = Some(notice.id.uuid());
                let outcome = fan_out_batch_in_tx(conn, merchant, &notice, batch, now).await?;
                Ok(Some(outcome))
            })
            .await;
        match result {
            Ok(None) => break,
            Ok(Some(outcome)) => {
                // The whole transaction, claim to commit (BENCHMARKS.md reads it).
                let elapsed = started.elapsed();
                tracing::debug!(
                    notice = ?claimed,
                    notified = outcome.notified,
                    done = outcome.done,
                    elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                    "stock notice batch"
                );
                round.longest = round.longest.max(elapsed);
                round.batches += 1;
                round.notified += outcome.notified;
            }
            Err(err) => {
                let Some(id) = claimed else { return Err(err) };
                tolerate_item_failure(&err, "stock notice batch", &id.to_string())?;
                skip.push(id);
            }
        }
    }
    if round.notified > 0 {
        tracing::info!(
            batches = round.batches,
            notified = round.notified,
            "stock notice round"
        );
    }
    Ok(round)
}

/// [`run_stock_notices_in`] in real time.
pub async fn run_stock_notices(
    state: &App,
    now: DateTime<Utc>,
    batches: usize,
) -> AppResult<StockRound> {
    run_stock_notices_in(state, WorkScope::RealTime, now, batches, STOCK_BATCH).await
}
