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
    past_retention(
        conn,
        "webhook_deliveries",
        "r.status <> 'pending'",
        now,
        default_days,
        batch,
    )
    .await
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
    past_retention(
        conn,
        "events",
        "r.resource_type <> 'subscription' \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                          WHERE d.merchant_id = r.merchant_id AND d.event_id = r.id)",
        now,
        default_days,
        batch,
    )
    .await
}

/// Audit entries created before their merchant's retention.
pub async fn audit_events(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    default_days: i32,
    batch: i64,
) -> StoreResult<usize> {
    past_retention(conn, "audit_events", "TRUE", now, default_days, batch).await
}

/// Deletes at most `batch` rows of `table` (keyed by `merchant_id, id`, with an index on
/// `merchant_id, created_at`) that were created before their merchant's retention and
/// meet `removable` (a condition on the row, `r`), oldest first per merchant. Both
/// arguments are constants of this module, never input.
async fn past_retention(
    conn: &mut AsyncPgConnection,
    table: &'static str,
    removable: &'static str,
    now: DateTime<Utc>,
    default_days: i32,
    batch: i64,
) -> StoreResult<usize> {
    Ok(diesel::sql_query(format!(
        "WITH doomed AS ( \
           SELECT r.merchant_id, r.id FROM merchants m \
             LEFT JOIN billing_settings s ON s.merchant_id = m.id \
             CROSS JOIN LATERAL ( \
               SELECT r.merchant_id, r.id FROM {table} r \
                WHERE r.merchant_id = m.id AND ({removable}) \
                  AND r.created_at < $1 - make_interval(days => coalesce(s.retention_days, $2)) \
                ORDER BY r.created_at LIMIT $3 FOR UPDATE OF r SKIP LOCKED) r \
            LIMIT $3) \
         DELETE FROM {table} r USING doomed \
          WHERE r.merchant_id = doomed.merchant_id AND r.id = doomed.id"
    ))
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
