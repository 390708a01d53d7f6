//! The background worker loop: applies due scheduled changes every interval. Any number
//! of `tenure` processes may run it; rows are claimed with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use tenure_api::AppState;
use tenure_api::service::lifecycle;

/// Subscriptions handled per transaction round before the loop checks the time again.
pub const BATCH_SIZE: usize = 100;

/// Runs until the task is dropped.
pub async fn run(state: AppState, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        interval_ms = interval.as_millis(),
        "lifecycle worker started"
    );
    loop {
        ticker.tick().await;
        loop {
            match lifecycle::run_due_changes(&state, state.now(), BATCH_SIZE).await {
                Ok(n) if n >= BATCH_SIZE => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(applied = n, "scheduled changes applied");
                    }
                    break;
                }
                Err(err) => {
                    tracing::warn!(code = err.code(), error = %err, cause = ?err, "lifecycle worker round failed");
                    break;
                }
            }
        }
    }
}
