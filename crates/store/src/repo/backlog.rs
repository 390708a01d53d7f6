//! The background work waiting, across every tenant: what an operator watches on
//! `/metrics` (docs/metrics.md). One statement, each figure an index scan: renewals by
//! `subscriptions_renewal_due`, scheduled changes by `scheduled_changes_due`, pending
//! deliveries by `webhook_deliveries_pending_created`; charge intents are one row per
//! charge in flight.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::StoreResult;

#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Backlog {
    /// Subscriptions whose period has ended and that are not renewed yet.
    #[diesel(sql_type = BigInt)]
    pub renewals_due: i64,
    /// Of those, the ones whose period ended before the overdue cut-off.
    #[diesel(sql_type = BigInt)]
    pub renewals_overdue: i64,
    /// Charges prepared for the gateway and not settled yet (sent or about to be).
    #[diesel(sql_type = BigInt)]
    pub charges_in_flight: i64,
    /// Scheduled changes (pause, resume, cancellation, plan change, trial end) due.
    #[diesel(sql_type = BigInt)]
    pub scheduled_changes_due: i64,
    /// Webhook deliveries not yet delivered, failed or canceled (due or awaiting a retry).
    #[diesel(sql_type = BigInt)]
    pub webhook_deliveries_pending: i64,
    /// How long, in seconds, the oldest of them has waited since it was created; none
    /// when none is pending.
    #[diesel(sql_type = Nullable<Double>)]
    pub oldest_pending_delivery_age_secs: Option<f64>,
}

/// The backlog at `now`; a renewal is overdue when its period ended before
/// `overdue_before`.
pub async fn read(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    overdue_before: DateTime<Utc>,
) -> StoreResult<Backlog> {
    // The status list and `test_clock_id IS NULL` are the partial indexes' predicates, so
    // the planner can use them; a test clock's work is due on its own time, not real time.
    Ok(diesel::sql_query(
        "SELECT \
           (SELECT count(*) FROM subscriptions \
             WHERE status IN ('trialing', 'active', 'past_due') \
               AND current_period_end <= $1 AND test_clock_id IS NULL) AS renewals_due, \
           (SELECT count(*) FROM subscriptions \
             WHERE status IN ('trialing', 'active', 'past_due') \
               AND current_period_end <= $2 AND test_clock_id IS NULL) AS renewals_overdue, \
           (SELECT count(*) FROM charge_intents) AS charges_in_flight, \
           (SELECT count(*) FROM scheduled_changes \
             WHERE due_at <= $1 AND test_clock_id IS NULL) AS scheduled_changes_due, \
           (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') \
             AS webhook_deliveries_pending, \
           (SELECT extract(epoch FROM $1 - min(created_at))::float8 FROM webhook_deliveries \
             WHERE status = 'pending') AS oldest_pending_delivery_age_secs",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(overdue_before)
    .get_result(conn)
    .await?)
}
