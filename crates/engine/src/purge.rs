//! The purge round (docs/events.md, "Retention"): batches of [`tenure_app::purge`] until
//! one comes back short or the round's cap is reached, so a large backlog (the first
//! purge of an old database) is worked off over several rounds, never in one long
//! transaction, and the loop it rides on keeps its pace.

use chrono::{DateTime, Utc};
use tenure_app::purge::{Purged, purge_batch};
use tenure_app::{App, AppResult};

/// Rows of each kind removed per statement.
pub const PURGE_BATCH: i64 = 1000;

/// Batches per round at most.
pub const PURGE_BATCHES_PER_ROUND: usize = 10;

/// Runs batches of `batch` rows until none is full or `max_batches` ran; what went.
pub async fn run_purge(
    app: &App,
    now: DateTime<Utc>,
    batch: i64,
    max_batches: usize,
) -> AppResult<Purged> {
    let mut total = Purged::default();
    for _ in 0..max_batches {
        let purged = purge_batch(app, now, batch).await?;
        total.deliveries += purged.deliveries;
        total.events += purged.events;
        total.idempotency_keys += purged.idempotency_keys;
        total.audit_events += purged.audit_events;
        if !purged.full(batch) {
            break;
        }
    }
    Ok(total)
}
