//! Refunds whose request stopped between the gateway call and recording it (a crash, a
//! dropped connection): once the intent's lease ends, the engine sends the same request
//! again (same idempotency key, so the gateway replays its first answer instead of
//! paying out twice) and records the outcome once. The steps are
//! `tenure_app::billing::refunds`'.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_app::billing::charging::lease_end;
use tenure_app::billing::refunds::{call, settle};
use tenure_app::{App, AppResult};
use tenure_store::repo::refund_intents;

use crate::tolerate_item_failure;

/// Refunds taken over per claim. Few ever are (only after a crash); their calls run one
/// after another, within the new lease.
const REFUND_CHUNK: usize = 20;

/// Takes over up to `batch` refunds whose lease ended by `now` (each claim leases them
/// again), sends each to the gateway outside any transaction and settles it in one of
/// its own. Returns how many were taken over.
pub async fn recover_stalled_refunds(
    conn: &mut AsyncPgConnection,
    state: &App,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let limit = i64::try_from(batch.min(REFUND_CHUNK)).unwrap_or(1);
    let claimed = refund_intents::claim_expired(conn, now, lease_end(state, now), limit).await?;
    for (merchant, intent) in &claimed {
        let outcome = call(conn, state, *merchant, intent).await;
        let settled = conn
            .transaction(async |conn| settle(conn, *merchant, intent, &outcome, now).await)
            .await;
        if let Err(err) = settled {
            // Left for its next lease: the gateway may have refunded, so it is only ever
            // sent again as it was.
            tolerate_item_failure(&err, "refund", &intent.invoice_id.to_string())?;
        }
    }
    Ok(claimed.len())
}
