//! Background loops. Each claims its work with `FOR UPDATE SKIP LOCKED`, so any number of
//! `tenure serve` / `tenure worker` processes can run them side by side with no leader.

use std::time::Duration;

use tenure_api::AppState;
use tenure_api::service::webhooks;

/// Deliveries claimed per round. A full batch means more may be due, so the next round
/// starts at once instead of after the interval.
pub const WEBHOOK_BATCH: i64 = 50;

/// Delivers due webhooks forever: a round every `interval`, back to back while there is
/// a backlog. Errors (the database being down, say) are logged and retried next round.
pub async fn webhook_loop(state: AppState, interval: Duration) {
    tracing::info!(
        interval_ms = interval.as_millis(),
        "webhook delivery worker started"
    );
    loop {
        let full = match webhooks::deliver_due(&state, state.now(), WEBHOOK_BATCH).await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(attempts = n, "webhook round");
                }
                usize::try_from(WEBHOOK_BATCH).is_ok_and(|batch| n >= batch)
            }
            Err(err) => {
                tracing::warn!(error = %err, cause = ?err, "webhook round failed");
                false
            }
        };
        if !full {
            tokio::time::sleep(interval).await;
        }
    }
}
