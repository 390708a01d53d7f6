//! Background loops. Each claims its work with `FOR UPDATE SKIP LOCKED`, so any number of
//! `tenure serve` / `tenure worker` processes can run them side by side with no leader.

use std::time::Duration;

use tenure_app::App;

use crate::delivery::{self, WebhookSender};
use crate::{lifecycle, notices, purge, renewals, stock, test_clocks};

/// Deliveries claimed per round. A full batch means more may be due, so the next round
/// starts at once instead of after the interval.
pub const WEBHOOK_BATCH: i64 = 50;

/// Delivers due webhooks forever: a round every `interval`, back to back while there is
/// a backlog. Errors (the database being down, say) are logged and retried next round.
pub async fn webhook_loop(state: App, sender: WebhookSender, interval: Duration) {
    tracing::info!(
        interval_ms = interval.as_millis(),
        "webhook delivery worker started"
    );
    loop {
        let full = match delivery::deliver_due(&state, &sender, state.now(), WEBHOOK_BATCH).await {
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

/// Subscriptions handled per transaction round before the loop checks the time again.
pub const LIFECYCLE_BATCH: usize = 100;

/// Notices handled per kind and round.
pub const NOTICE_BATCH: usize = 100;

/// Stock-notice batches (of [`stock::STOCK_BATCH`] subscribers, one transaction each) per
/// pass of the lifecycle loop. A pass that used them all starts the next pass at once,
/// so a large fan-out goes on back to back, but every few batches the scheduled changes,
/// expiries and notices due meanwhile are handled first: with a skip applied to each
/// subscriber a batch takes about 0.7 s (BENCHMARKS.md), so they wait a few seconds at
/// most, not the whole fan-out.
pub const STOCK_BATCHES: usize = 4;

/// How often the purge of records past their retention runs (on the lifecycle loop).
pub const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Applies due scheduled changes (pause starts and ends, cancellations, plan changes,
/// trial ends) and expires unpaid signups, back to back while a backlog remains, then
/// sends the notices due (access ending, card expiring), runs at most [`STOCK_BATCHES`]
/// batches of stock notices, and every [`PURGE_EVERY`] purges what is past its retention
/// ([`lifecycle_pass`]); passes follow each other at once while stock notices remain,
/// else one a tick. The notices and the purge ride on this loop rather than loops of
/// their own so that they need no connection more than the loops had: each round of
/// notices is index range scans when nothing is due, and a purge is a few bounded
/// batches.
pub async fn lifecycle_loop(state: App, interval: Duration) {
    let mut last_purge: Option<std::time::Instant> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        interval_ms = interval.as_millis(),
        "lifecycle worker started"
    );
    loop {
        ticker.tick().await;
        while lifecycle_pass(&state, &mut last_purge).await {}
    }
}

/// One pass of [`lifecycle_loop`]; `last_purge` is when the purge last ran. Returns
/// whether stock notices may have batches left (the pass used all it may run).
pub async fn lifecycle_pass(state: &App, last_purge: &mut Option<std::time::Instant>) -> bool {
    loop {
        match lifecycle::run_due_changes(state, state.now(), LIFECYCLE_BATCH).await {
            Ok(n) if n >= LIFECYCLE_BATCH => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(applied = n, "scheduled changes applied");
                }
                break;
            }
            Err(err) => {
                tracing::warn!(error = %err, cause = ?err, "lifecycle worker round failed");
                break;
            }
        }
    }
    loop {
        match lifecycle::run_incomplete_expiry(state, state.now(), LIFECYCLE_BATCH).await {
            Ok(n) if n >= LIFECYCLE_BATCH => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(expired = n, "incomplete subscriptions expired");
                }
                break;
            }
            Err(err) => {
                tracing::warn!(error = %err, cause = ?err, "incomplete expiry round failed");
                break;
            }
        }
    }
    loop {
        match notices::run_due_notices(state, state.now(), NOTICE_BATCH).await {
            Ok(n) if n >= NOTICE_BATCH => continue,
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(error = %err, cause = ?err, "notice round failed");
                break;
            }
        }
    }
    let more_stock = match stock::run_stock_notices(state, state.now(), STOCK_BATCHES).await {
        Ok(round) => round.batches >= STOCK_BATCHES,
        Err(err) => {
            tracing::warn!(error = %err, cause = ?err, "stock notice round failed");
            false
        }
    };
    if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
        *last_purge = Some(std::time::Instant::now());
        match purge::run_purge(
            state,
            state.now(),
            purge::PURGE_BATCH,
            purge::PURGE_BATCHES_PER_ROUND,
        )
        .await
        {
            Ok(purged) if purged.total() > 0 => {
                tracing::info!(?purged, "records past their retention purged");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, cause = ?err, "purge round failed"),
        }
    }
    more_stock
}

/// Renewals, charges and notices handled per kind and round (renewals and charges are
/// claimed in batches of up to 500 per transaction inside a round).
pub const RENEWAL_BATCH: usize = 1000;

/// Runs the renewal engine forever (renewals, dunning charges, upcoming notices): a
/// round every `interval` (the lifecycle worker's interval), back to back while work
/// remains. Errors are logged and retried next round.
pub async fn renewal_loop(state: App, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(interval_ms = interval.as_millis(), "renewal worker started");
    loop {
        ticker.tick().await;
        loop {
            match renewals::run_due_renewals(&state, state.now(), RENEWAL_BATCH).await {
                Ok(n) if n >= RENEWAL_BATCH => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, cause = ?err, "renewal worker round failed");
                    break;
                }
            }
        }
    }
}

/// Advances the test clocks merchants asked to advance (see [`test_clocks`]): one clock
/// at a time, back to back while more wait, else a look every `interval`. An advance
/// holds one connection at a time. Errors are logged; the clock's lease then runs out
/// and the next look (here or in another process) takes the advance over.
pub async fn test_clock_loop(state: App, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        interval_ms = interval.as_millis(),
        "test clock worker started"
    );
    loop {
        ticker.tick().await;
        loop {
            match test_clocks::advance_next(&state).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(err) => {
                    tracing::warn!(error = %err, cause = ?err, "test clock advance failed");
                    break;
                }
            }
        }
    }
}
