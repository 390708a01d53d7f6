//! The purge of records past their retention (docs/events.md, "Retention"), across every
//! tenant, in bounded batches: each call is one statement (its own short transaction)
//! removing at most `batch` rows, taken with `FOR UPDATE SKIP LOCKED` so that purges in
//! several processes, and writers, never wait on each other. A merchant's
//! `billing_settings.retention_days` overrides the operator's default.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Integer, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::StoreResult;

/// Settled webhook deliveries (delivered, failed, canceled) created before their
/// merchant's retention; their attempts go with them (`ON DELETE CASCADE`). A pending
/// delivery is never removed, however old.
pub async fn settled_deliveries(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    default_days: i32,
    batch: i64,
) -> StoreResult<usize> {
    Ok(diesel::sql_query(
        "WITH doomed AS ( \
           SELECT d.merchant_id, d.id FROM merchants m \
             LEFT JOIN billing_settings s ON s.merchant_id = m.id \
             CROSS JOIN LATERAL ( \
               SELECT d.merchant_id, d.id FROM webhook_deliveries d \
                WHERE d.merchant_id = m.id AND d.status <> 'pending' \
                  AND d.created_at < $1 - make_interval(days => coalesce(s.retention_days, $2)) \
                ORDER BY d.created_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED) d \
            LIMIT $3) \
         DELETE FROM webhook_deliveries d USING doomed \
          WHERE d.merchant_id = doomed.merchant_id AND d.id = doomed.id",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(default_days)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?)
}

/// Events created before their merchant's retention that no delivery refers to any
/// more (so an event with a delivery still pending stays). `subscription` events stay:
/// the subscriber metrics rebuild a subscription's state at an instant from them
/// (docs/metrics.md).
pub async fn events(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    default_days: i32,
    batch: i64,
) -> StoreResult<usize> {
    Ok(diesel::sql_query(
        "WITH doomed AS ( \
           SELECT e.merchant_id, e.id FROM merchants m \
             LEFT JOIN billing_settings s ON s.merchant_id = m.id \
             CROSS JOIN LATERAL ( \
               SELECT e.merchant_id, e.id FROM events e \
                WHERE e.merchant_id = m.id AND e.resource_type <> 'subscription' \
                  AND e.created_at < $1 - make_interval(days => coalesce(s.retention_days, $2)) \
                  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                   WHERE d.merchant_id = e.merchant_id AND d.event_id = e.id) \
                ORDER BY e.created_at LIMIT $3 FOR UPDATE OF e SKIP LOCKED) e \
            LIMIT $3) \
         DELETE FROM events e USING doomed \
          WHERE e.merchant_id = doomed.merchant_id AND e.id = doomed.id",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Integer, _>(default_days)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?)
}

/// Idempotency keys past their replay window (`idempotency::RETENTION`, 24 h from their
/// creation): a key inside it stays, so a retry within the window still replays.
pub async fn idempotency_keys(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: i64,
) -> StoreResult<usize> {
    Ok(diesel::sql_query(
        "DELETE FROM idempotency_keys WHERE ctid IN ( \
           SELECT ctid FROM idempotency_keys WHERE created_at < $1 \
            ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<Timestamptz, _>(now - super::idempotency::RETENTION)
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?)
}
