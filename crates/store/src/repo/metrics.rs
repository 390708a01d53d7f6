//! Subscriber metrics of a period (docs/metrics.md), merchant-scoped and per currency (never
//! summed across currencies), two ways: from the rollups the subscriptions keep as they
//! change (`rollups_at`, `flip_sums`), and fully from the subscriptions and their
//! events (the reference a reconciliation compares with), by the rules below.
//!
//! The state of a subscription at an instant `t` is taken from history:
//! * created after `t`: it did not exist;
//! * not updated since `t` (`updated_at <= t`): its row is its state at `t`;
//! * else the snapshot (`data`) of its latest `subscription.*` event at or before `t`
//!   (every change records one, with the subscription as rendered after the change:
//!   status, price, quantity, cadence; snapshots from before quantities count 1). Only
//!   events whose data is the subscription count: `subscription.discount_applied`
//!   carries the discount;
//! * else (a row changed since `t` without events, e.g. written by SQL): its row.
//!
//! Only subscriptions changed since `t` look up an event, each through the
//! `events_resource (merchant_id, resource_id, id)` index.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::MerchantId;

use crate::error::StoreResult;

/// The state (status, price, cadence) of every subscription of merchant `$1` at `$2`
/// (period start) and `$3` (period end), as `a` and `b` (NULL: did not exist yet).
const STATES_AT: &str = "
WITH subs AS (
    SELECT s.merchant_id, s.id, s.customer_id, s.created_at, s.updated_at,
           jsonb_build_object(
               'status', s.status,
               'price', s.state->'plan'->'price',
               'quantity', coalesce((s.state->>'quantity')::int, 1),
               'interval', s.state->'plan'->'cadence'->>'interval',
               'interval_count', (s.state->'plan'->'cadence'->>'count')::int) AS row_state
      FROM subscriptions s
     WHERE s.merchant_id = $1 AND s.created_at <= $3
),
states AS (
    SELECT subs.id, subs.customer_id,
           CASE WHEN subs.created_at > $2 THEN NULL
                WHEN subs.updated_at <= $2 THEN subs.row_state
                ELSE coalesce((SELECT e.data FROM events e
                                WHERE e.merchant_id = subs.merchant_id
                                  AND e.resource_id = tenure_typeid('sub', subs.id)
                                  AND e.resource_type = 'subscription'
                                  AND e.data->>'object' = 'subscription'
                                  AND e.created_at <= $2
                                ORDER BY e.id DESC LIMIT 1), subs.row_state)
           END AS a,
           CASE WHEN subs.updated_at <= $3 THEN subs.row_state
                ELSE coalesce((SELECT e.data FROM events e
                                WHERE e.merchant_id = subs.merchant_id
                                  AND e.resource_id = tenure_typeid('sub', subs.id)
                                  AND e.resource_type = 'subscription'
                                  AND e.data->>'object' = 'subscription'
                                  AND e.created_at <= $3
                                ORDER BY e.id DESC LIMIT 1), subs.row_state)
           END AS b
      FROM subs
),
sides AS (
    SELECT customer_id, a->>'status' AS status, a->'price'->>'currency' AS currency,
           tenure_monthly_amount((a->'price'->>'amount')::int8
                                     * coalesce((a->>'quantity')::int8, 1), a->>'interval',
                                 (a->>'interval_count')::int) AS monthly,
           true AS at_start
      FROM states WHERE a IS NOT NULL
    UNION ALL
    SELECT customer_id, b->>'status', b->'price'->>'currency',
           tenure_monthly_amount((b->'price'->>'amount')::int8
                                     * coalesce((b->>'quantity')::int8, 1), b->>'interval',
                                 (b->>'interval_count')::int),
           false
      FROM states WHERE b IS NOT NULL
),
per_customer AS (
    SELECT currency, customer_id,
           bool_or(at_start AND status IN ('active', 'past_due')) AS paying_start,
           coalesce(sum(monthly) FILTER (WHERE at_start AND status IN ('active', 'past_due')), 0)
               AS mrr_start,
           bool_or(NOT at_start AND status IN ('active', 'past_due')) AS paying_end,
           coalesce(sum(monthly) FILTER (WHERE NOT at_start AND status IN ('active', 'past_due')), 0)
               AS mrr_end,
           count(*) FILTER (WHERE NOT at_start AND status IN ('active', 'past_due'))
               AS subscriptions_end,
           bool_or(NOT at_start AND status NOT IN ('canceled', 'incomplete_expired')) AS live_end
      FROM sides GROUP BY currency, customer_id
)";

/// Tunes the current transaction for the metrics queries: JIT compilation costs more
/// (about 1.2 s measured on 100k subscriptions) than the whole query saves by it.
pub async fn prepare(conn: &mut AsyncPgConnection) -> StoreResult<()> {
    diesel::sql_query("SET LOCAL jit = off")
        .execute(conn)
        .await?;
    Ok(())
}

/// The per-currency figures of a period (see docs/metrics.md for each definition).
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct CurrencyMetricsRow {
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// MRR at the end of the period.
    #[diesel(sql_type = BigInt)]
    pub mrr: i64,
    #[diesel(sql_type = BigInt)]
    pub mrr_at_start: i64,
    /// Paying (active or past_due) subscriptions at the end.
    #[diesel(sql_type = BigInt)]
    pub active_subscriptions: i64,
    /// Customers with a paying subscription at the end.
    #[diesel(sql_type = BigInt)]
    pub active_subscribers: i64,
    #[diesel(sql_type = BigInt)]
    pub active_subscribers_at_start: i64,
    /// Paying at the end, not at the start.
    #[diesel(sql_type = BigInt)]
    pub new_subscribers: i64,
    /// Paying at the start, nothing but canceled subscriptions at the end.
    #[diesel(sql_type = BigInt)]
    pub churned_subscribers: i64,
    /// The start-of-period MRR of the churned subscribers.
    #[diesel(sql_type = BigInt)]
    pub churned_mrr: i64,
}

/// `sum()` of numerics, clamped into i64 so that no input can make the cast fail.
const CLAMP: &str = "least(greatest({}, -9223372036854775808), 9223372036854775807)::int8";

fn clamp(expr: &str) -> String {
    CLAMP.replace("{}", expr)
}

pub async fn per_currency(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<CurrencyMetricsRow>> {
    let query = format!(
        "{STATES_AT}
         SELECT currency,
                {mrr} AS mrr,
                {mrr_start} AS mrr_at_start,
                coalesce(sum(subscriptions_end), 0)::int8 AS active_subscriptions,
                count(*) FILTER (WHERE paying_end) AS active_subscribers,
                count(*) FILTER (WHERE paying_start) AS active_subscribers_at_start,
                count(*) FILTER (WHERE paying_end AND NOT paying_start) AS new_subscribers,
                count(*) FILTER (WHERE paying_start AND NOT coalesce(live_end, false))
                    AS churned_subscribers,
                {churned} AS churned_mrr
           FROM per_customer
          WHERE currency IS NOT NULL
          GROUP BY currency
         HAVING bool_or(paying_start OR paying_end)
          ORDER BY currency",
        mrr = clamp("coalesce(sum(mrr_end), 0)"),
        mrr_start = clamp("coalesce(sum(mrr_start), 0)"),
        churned = clamp(
            "coalesce(sum(mrr_start) FILTER (WHERE paying_start AND NOT coalesce(live_end, false)), 0)"
        ),
    );
    Ok(diesel::sql_query(query)
        .bind::<SqlUuid, _>(merchant.uuid())
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .load(conn)
        .await?)
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Subscriptions paused at `at` (by the same history rule as the MRR).
pub async fn paused_at(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    at: DateTime<Utc>,
) -> StoreResult<i64> {
    let query = format!(
        "{STATES_AT}
         SELECT count(*) AS n FROM states WHERE b->>'status' = 'paused'"
    );
    let row: Count = diesel::sql_query(query)
        .bind::<SqlUuid, _>(merchant.uuid())
        .bind::<Timestamptz, _>(at)
        .bind::<Timestamptz, _>(at)
        .get_result(conn)
        .await?;
    Ok(row.n)
}

/// `subscription.paused` events in `[from, to)`: pauses that began in the period.
pub async fn pauses_started(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<i64> {
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM events
          WHERE merchant_id = $1 AND event_type = 'subscription.paused'
            AND created_at >= $2 AND created_at < $3",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct ReasonCount {
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// Cancellation requests made in `[from, to)`, by reason.
pub async fn cancellation_reasons(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<ReasonCount>> {
    Ok(diesel::sql_query(
        "SELECT reason, count(*) AS count FROM cancellation_requests
          WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3
          GROUP BY reason ORDER BY reason",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::QueryableByName)]
pub struct OfferCounts {
    /// Offers presented in the period (every outcome row is one presentation).
    #[diesel(sql_type = BigInt)]
    pub presented: i64,
    #[diesel(sql_type = BigInt)]
    pub accepted: i64,
    #[diesel(sql_type = BigInt)]
    pub declined: i64,
}

/// Retention offers presented in `[from, to)` and what became of them.
pub async fn save_offers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<OfferCounts> {
    Ok(diesel::sql_query(
        "SELECT count(*) AS presented,
                count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
                count(*) FILTER (WHERE outcome = 'declined') AS declined
           FROM retention_offer_outcomes
          WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .await?)
}

/// A figure summed at an instant from the rollups, per currency.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct RollupAt {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub mrr: i64,
    /// Paying subscriptions.
    #[diesel(sql_type = BigInt)]
    pub subscriptions: i64,
    /// Customers with a paying subscription.
    #[diesel(sql_type = BigInt)]
    pub subscribers: i64,
    #[diesel(sql_type = BigInt)]
    pub paused: i64,
    /// Pauses that began strictly before the instant.
    #[diesel(sql_type = BigInt)]
    pub pauses_started_before: i64,
}

/// Each currency's figures at `at` from the rollups (migration 2026-12-08-120001): the
/// days before `at`'s UTC day, plus that day's changes up to `at` (changes at `at`
/// count, as in the full computation; pause starts only before it, the period being
/// `[from, to)` for them). Index range scans: the merchant's days and one day's changes.
pub async fn rollups_at(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    at: DateTime<Utc>,
) -> StoreResult<Vec<RollupAt>> {
    let query = format!(
        "WITH parts AS (
             SELECT currency, mrr, subscriptions, subscribers, paused,
                    pauses_started AS pauses_started_before
               FROM metric_days
              WHERE merchant_id = $1 AND day < ($2 AT TIME ZONE 'UTC')::date
             UNION ALL
             SELECT currency, mrr, subscriptions, subscribers, paused,
                    CASE WHEN at < $2 THEN pauses_started ELSE 0 END
               FROM metric_changes
              WHERE merchant_id = $1
                AND at >= date_trunc('day', $2 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                AND at <= $2
         )
         SELECT currency, {mrr} AS mrr,
                coalesce(sum(subscriptions), 0)::int8 AS subscriptions,
                coalesce(sum(subscribers), 0)::int8 AS subscribers,
                coalesce(sum(paused), 0)::int8 AS paused,
                coalesce(sum(pauses_started_before), 0)::int8 AS pauses_started_before
           FROM parts GROUP BY currency ORDER BY currency",
        mrr = clamp("coalesce(sum(mrr), 0)"),
    );
    Ok(diesel::sql_query(query)
        .bind::<SqlUuid, _>(merchant.uuid())
        .bind::<Timestamptz, _>(at)
        .load(conn)
        .await?)
}

/// Per currency, the sums of the flips' points of a period (migration
/// 2026-12-09-050000): the customers' steps in and out of paying (and of having a live
/// subscription) in `(from, to]`, each weighted by its customer's state at `from`.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct FlipSums {
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// Σ ΔP·P(from) over the paying flips: `new = subscribers(to) - subscribers(from) - this`.
    #[diesel(sql_type = BigInt)]
    pub new_w: i64,
    /// Σ ΔL·P(from) over the live flips: `churned = -this`.
    #[diesel(sql_type = BigInt)]
    pub churn_w: i64,
    /// Σ ΔL·MRR(from) over the live flips: `churned_mrr = -this`.
    #[diesel(sql_type = BigInt)]
    pub churn_mrr_w: i64,
}

/// The points whose `a` falls on `from`'s UTC day after `from`, or whose `y` falls on
/// `to`'s day up to `to` (index range scans of one day each): what neither day nor week
/// rows can tell apart. Both ways of summing a period share them.
const FLIP_BOUNDARY_POINTS: &str = "
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_points
              WHERE merchant_id = $1 AND a > $2
                AND a < (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day')
                        AT TIME ZONE 'UTC'
                AND y <= $3
             UNION ALL
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_points
              WHERE merchant_id = $1
                AND y >= date_trunc('day', $3 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                AND y <= $3
                AND a >= (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day')
                         AT TIME ZONE 'UTC'";

/// `from`'s and `to`'s UTC days (F, T), the first Monday after F (A0: the first day of
/// the first whole week after F) and T's Monday (T0).
const F: &str = "($2 AT TIME ZONE 'UTC')::date";
const T: &str = "($3 AT TIME ZONE 'UTC')::date";
const A0: &str = "(tenure_week(($2 AT TIME ZONE 'UTC')::date) + 7)";
const T0: &str = "tenure_week(($3 AT TIME ZONE 'UTC')::date)";

async fn load_flip_sums(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rows: &str,
) -> StoreResult<Vec<FlipSums>> {
    let query = format!(
        "WITH parts AS ({rows}
             UNION ALL{FLIP_BOUNDARY_POINTS}
         )
         SELECT currency, coalesce(sum(new_w), 0)::int8 AS new_w,
                coalesce(sum(churn_w), 0)::int8 AS churn_w, {mrr} AS churn_mrr_w
           FROM parts GROUP BY currency ORDER BY currency",
        mrr = clamp("coalesce(sum(churn_mrr_w), 0)"),
    );
    Ok(diesel::sql_query(query)
        .bind::<SqlUuid, _>(merchant.uuid())
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .load(conn)
        .await?)
}

/// The points with `a > from` and `y <= to` (docs/metrics.md, "How it is computed"): the
/// points of the boundary days, and the days `F < a_day < T`, `y_day < T` in between,
/// read as whole weeks where they can be (migration 2026-12-10-210000):
/// * weeks `A0 <= a_week < T0`, `y_week < T0` from `metric_flip_weeks` (at most the
///   period's weeks squared over two per currency);
/// * the first ragged days `F < a_day < min(A0, T)` (up to six days of `a`, any `y`) and
///   the last ones `T0 <= y_day < T` with `A0 <= a_day < T` (up to six days of `y`) from
///   `metric_flip_days`, through its primary key and its `y_day` index;
/// * `A0, T0 <= a_day < T` with `y_day < T0`: none unless a change was recorded with a
///   later time than a flip after it (the two instants a few milliseconds apart), read so
///   that the sum is exactly [`flip_sums_by_day`]'s.
pub async fn flip_sums(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<FlipSums>> {
    let rows = format!(
        "
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_weeks
              WHERE merchant_id = $1 AND a_week >= {A0} AND a_week < {T0} AND y_week < {T0}
             UNION ALL
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_days
              WHERE merchant_id = $1 AND a_day > {F} AND a_day < least({A0}, {T})
                AND y_day < {T}
             UNION ALL
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_days
              WHERE merchant_id = $1 AND y_day >= {T0} AND y_day < {T}
                AND a_day >= {A0} AND a_day < {T}
             UNION ALL
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_days
              WHERE merchant_id = $1 AND a_day >= greatest({A0}, {T0}) AND a_day < {T}
                AND y_day < {T0}"
    );
    load_flip_sums(conn, merchant, from, to, &rows).await
}

/// [`flip_sums`] from the day rows only (every day `F < a_day < T`, `y_day < T`: up to
/// the period's days squared over two per currency): the reference the week rows are
/// checked against (the e2e test `week_rows_sum_what_the_day_rows_do`).
pub async fn flip_sums_by_day(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<FlipSums>> {
    let rows = format!(
        "
             SELECT currency, new_w, churn_w, churn_mrr_w
               FROM metric_flip_days
              WHERE merchant_id = $1 AND a_day > {F} AND a_day < {T} AND y_day < {T}"
    );
    load_flip_sums(conn, merchant, from, to, &rows).await
}

/// Rebuilds the merchant's rollups from the history the full computation reads (what the
/// migration did for every merchant): a repair after a reconciliation found differences.
pub async fn rebuild_rollups(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<()> {
    diesel::sql_query("SELECT tenure_metrics_rebuild($1)")
        .bind::<SqlUuid, _>(merchant.uuid())
        .execute(conn)
        .await?;
    Ok(())
}
