//! What the renewal engine keeps beside subscriptions and invoices: per-merchant billing
//! settings (dunning policy, upcoming-notice lead time), the dunning schedule of each
//! invoice (`next_payment_attempt_at`, `first_failed_at`) and the upcoming-notice marker
//! of each subscription (`upcoming_notice_for`).
//!
//! The claim queries are the engine's only cross-tenant reads: each returns rows locked
//! with `FOR UPDATE SKIP LOCKED`, so any number of workers share the work without a
//! leader and without waiting on each other. The batch forms ([`claim_due_renewals`],
//! [`lock_subscription_statuses`], [`save_renewed`]) let one transaction renew many
//! subscriptions with a handful of statements instead of a dozen per subscription.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::dunning::DunningPolicy;
use tenure_domain::data_retention::RetentionDays;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::order_cutoff::{
    DEFAULT_ORDER_NOTICE_DAYS, MAX_ORDER_NOTICE_DAYS, OrderNoticeSettings,
};
use tenure_domain::subscription::SubscriptionStatus;
use tenure_domain::test_clock::WorkScope;

use crate::error::{StoreError, StoreResult};
use crate::repo::subscriptions::{StoredSubscription, SubscriptionRow};
use crate::schema::subscriptions;

/// The notice lead time when a merchant has not chosen one.
pub const DEFAULT_UPCOMING_NOTICE_DAYS: u32 = 7;
/// The longest notice lead time a merchant may choose.
pub const MAX_UPCOMING_NOTICE_DAYS: u32 = 60;

/// A merchant's billing settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingSettings {
    pub dunning_policy: DunningPolicy,
    pub upcoming_notice_days: u32,
    /// `order.upcoming`'s lead time and the edit cutoff of orders.
    pub orders: OrderNoticeSettings,
    /// How long events and settled webhook deliveries are kept; `None` follows the
    /// operator's default (docs/events.md, "Retention").
    pub retention_days: Option<RetentionDays>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self {
            dunning_policy: DunningPolicy::default(),
            upcoming_notice_days: DEFAULT_UPCOMING_NOTICE_DAYS,
            orders: OrderNoticeSettings::default(),
            retention_days: None,
            updated_at: None,
        }
    }
}

#[derive(QueryableByName)]
struct SettingsRow {
    #[diesel(sql_type = Jsonb)]
    dunning_policy: serde_json::Value,
    #[diesel(sql_type = Integer)]
    upcoming_notice_days: i32,
    #[diesel(sql_type = Integer)]
    order_notice_days: i32,
    #[diesel(sql_type = Integer)]
    order_cutoff_hours: i32,
    #[diesel(sql_type = Nullable<Integer>)]
    retention_days: Option<i32>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

/// The merchant's settings, or the defaults when none were saved.
pub async fn settings(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<BillingSettings> {
    let row: Option<SettingsRow> = diesel::sql_query(
        "SELECT dunning_policy, upcoming_notice_days, order_notice_days, order_cutoff_hours, \
                retention_days, updated_at \
         FROM billing_settings WHERE merchant_id = $1",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .get_result(conn)
    .await
    .optional()?;
    let Some(row) = row else {
        return Ok(BillingSettings::default());
    };
    let dunning_policy: DunningPolicy =
        serde_json::from_value(row.dunning_policy).map_err(StoreError::corrupt)?;
    Ok(BillingSettings {
        dunning_policy,
        upcoming_notice_days: u32::try_from(row.upcoming_notice_days)
            .map_err(|_| StoreError::corrupt("negative upcoming_notice_days"))?,
        orders: u32::try_from(row.order_notice_days)
            .ok()
            .zip(u32::try_from(row.order_cutoff_hours).ok())
            .and_then(|(days, hours)| OrderNoticeSettings::new(days, hours).ok())
            .ok_or_else(|| StoreError::corrupt("order notice settings out of range"))?,
        retention_days: row
            .retention_days
            .map(|d| {
                u32::try_from(d)
                    .ok()
                    .and_then(|d| RetentionDays::new(d).ok())
                    .ok_or_else(|| StoreError::corrupt("retention_days out of range"))
            })
            .transpose()?,
        updated_at: Some(row.updated_at),
    })
}

/// The merchant's settings with their row locked until the transaction ends, so a
/// read-modify-write of one setting never loses a concurrent change of another. A
/// merchant without saved settings gets its defaults' row created first (it is then
/// overwritten by the caller's save in the same transaction).
pub async fn lock_settings(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    at: DateTime<Utc>,
) -> StoreResult<BillingSettings> {
    let defaults = BillingSettings::default();
    diesel::sql_query(
        "INSERT INTO billing_settings (merchant_id, dunning_policy, upcoming_notice_days, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (merchant_id) DO NOTHING",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Jsonb, _>(
        serde_json::to_value(&defaults.dunning_policy).map_err(StoreError::corrupt)?,
    )
    .bind::<Integer, _>(DEFAULT_UPCOMING_NOTICE_DAYS as i32)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    diesel::sql_query("SELECT 1 AS id FROM billing_settings WHERE merchant_id = $1 FOR UPDATE")
        .bind::<Uuid, _>(merchant.uuid())
        .execute(conn)
        .await?;
    settings(conn, merchant).await
}

/// Saves the merchant's settings (insert or replace).
pub async fn save_settings(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &BillingSettings,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let days = i32::try_from(s.upcoming_notice_days)
        .map_err(|_| StoreError::corrupt("upcoming_notice_days out of range"))?;
    diesel::sql_query(
        "INSERT INTO billing_settings \
           (merchant_id, dunning_policy, upcoming_notice_days, updated_at, retention_days, \
            order_notice_days, order_cutoff_hours) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (merchant_id) DO UPDATE SET \
         dunning_policy = EXCLUDED.dunning_policy, \
         upcoming_notice_days = EXCLUDED.upcoming_notice_days, updated_at = EXCLUDED.updated_at, \
         retention_days = EXCLUDED.retention_days, \
         order_notice_days = EXCLUDED.order_notice_days, \
         order_cutoff_hours = EXCLUDED.order_cutoff_hours",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Jsonb, _>(serde_json::to_value(&s.dunning_policy).map_err(StoreError::corrupt)?)
    .bind::<Integer, _>(days)
    .bind::<Timestamptz, _>(at)
    .bind::<Nullable<Integer>, _>(s.retention_days.map(|d| i32::from(d.days())))
    .bind::<Integer, _>(i32::try_from(s.orders.notice_days).map_err(StoreError::corrupt)?)
    .bind::<Integer, _>(i32::try_from(s.orders.cutoff_hours).map_err(StoreError::corrupt)?)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
}

/// The statuses that renew when their period ends.
const RENEWING: [&str; 3] = ["trialing", "active", "past_due"];

/// Claims up to `limit` subscriptions due for renewal at `now` (oldest period end first,
/// index `subscriptions_renewal_due`, skipping `skip` and rows other workers hold),
/// whole, with their merchants. The rows stay locked until the transaction ends.
pub async fn claim_due_renewals(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> StoreResult<Vec<(MerchantId, StoredSubscription)>> {
    let limit = i64::try_from(limit).map_err(|_| StoreError::corrupt("limit out of range"))?;
    let rows: Vec<SubscriptionRow> = subscriptions::table
        .filter(subscriptions::status.eq_any(RENEWING))
        .filter(subscriptions::current_period_end.le(now))
        .filter(subscriptions::id.ne_all(skip))
        .filter(crate::repo::test_clocks::subscriptions_in(scope))
        .order(subscriptions::current_period_end)
        .limit(limit)
        .select(SubscriptionRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            let merchant = MerchantId::from_uuid(r.merchant_id);
            Ok((merchant, r.into_domain()?))
        })
        .collect()
}

/// What a batch lock does with a row another transaction holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenHeld {
    /// Leave it out (the batch form of `subscriptions::lock_if_free`): the caller tries
    /// it next round.
    Skip,
    /// Wait for it. Rows are locked in id order, so two such batches never wait on each
    /// other in a cycle.
    Wait,
}

/// Locks the merchant's subscriptions `ids` and returns their statuses: what the charge
/// steps need to decide, without loading and parsing whole states.
pub async fn lock_subscription_statuses(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[SubscriptionId],
    when_held: WhenHeld,
) -> StoreResult<Vec<(SubscriptionId, SubscriptionStatus)>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.uuid()).collect();
    let locking = subscriptions::table
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .filter(subscriptions::id.eq_any(ids))
        .order(subscriptions::id)
        .select((subscriptions::id, subscriptions::status))
        .for_update();
    let rows: Vec<(uuid::Uuid, String)> = match when_held {
        WhenHeld::Skip => locking.skip_locked().load(conn).await?,
        WhenHeld::Wait => locking.load(conn).await?,
    };
    rows.into_iter()
        .map(|(id, status)| {
            Ok((
                SubscriptionId::from_uuid(id),
                status.parse().map_err(StoreError::corrupt)?,
            ))
        })
        .collect()
}

/// Sets the next attempt of the merchant's `invoices` (`None`: no attempt is scheduled).
/// The charge step uses it for the lease of its prepared charges: should a charge never
/// be settled (a crash), the engine claims the invoice again when the lease ends.
pub async fn schedule_attempts(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoices: &[InvoiceId],
    at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    if invoices.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = invoices.iter().map(|i| i.uuid()).collect();
    diesel::sql_query(
        "UPDATE invoices SET next_payment_attempt_at = $3 WHERE merchant_id = $1 AND id = ANY($2)",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Nullable<Timestamptz>, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Saves renewed subscriptions of one merchant with one `UPDATE`: status, plan, period
/// end, state and update time, rewritten from the domain value as
/// `subscriptions::update` does. Only for subscriptions without scheduled changes or a
/// trial before and after (their `scheduled_changes` rows are none and stay none); the
/// caller holds the row locks.
pub async fn save_renewed(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    renewed: &[&StoredSubscription],
) -> StoreResult<()> {
    if renewed.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(renewed.len());
    let mut plans = Vec::with_capacity(renewed.len());
    let mut statuses = Vec::with_capacity(renewed.len());
    let mut ends = Vec::with_capacity(renewed.len());
    let mut states = Vec::with_capacity(renewed.len());
    let mut updated = Vec::with_capacity(renewed.len());
    for s in renewed {
        let sub = &s.subscription;
        if !sub.scheduled_changes.is_empty() || sub.status == SubscriptionStatus::Trialing {
            return Err(StoreError::corrupt(
                "a subscription with scheduled changes is saved one by one",
            ));
        }
        let row = SubscriptionRow::from_domain(merchant, s)?;
        ids.push(row.id);
        plans.push(row.plan_id);
        statuses.push(row.status);
        ends.push(row.current_period_end);
        states.push(row.state.0);
        updated.push(row.updated_at);
    }
    let n = diesel::sql_query(
        "UPDATE subscriptions s SET plan_id = u.plan_id, status = u.status, \
           current_period_end = u.period_end, state = u.state::jsonb, updated_at = u.updated_at \
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[], $6::text[], \
           $7::timestamptz[]) AS u(id, plan_id, status, period_end, state, updated_at) \
         WHERE s.merchant_id = $1 AND s.id = u.id",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Array<Uuid>, _>(plans)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Timestamptz>, _>(ends)
    .bind::<Array<Text>, _>(states)
    .bind::<Array<Timestamptz>, _>(updated)
    .execute(conn)
    .await?;
    if n != renewed.len() {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Claims one subscription whose period ends within its merchant's notice lead time
/// after `now` and whose notice for that period has not been sent. The index range is
/// bounded by the longest lead time any merchant chose (at least the default), not by
/// the maximum allowed: with 60 days, every round rescanned a month of renewed
/// subscriptions whose notices were long sent.
pub async fn claim_due_notice(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, SubscriptionId)>> {
    let row: Option<Claimed> = diesel::sql_query(format!(
        "SELECT s.merchant_id, s.id FROM subscriptions s \
         LEFT JOIN billing_settings b ON b.merchant_id = s.merchant_id \
         WHERE s.status IN ('trialing', 'active', 'past_due') \
           AND s.current_period_end > $1 \
           AND s.current_period_end <= $1 + make_interval(days => LEAST($3, ( \
                 SELECT GREATEST(COALESCE(max(upcoming_notice_days), 0), $4) \
                 FROM billing_settings))) \
           AND s.current_period_end <= $1 + make_interval(days => COALESCE(b.upcoming_notice_days, $4)) \
           AND s.upcoming_notice_for IS DISTINCT FROM s.current_period_end \
           AND NOT (s.id = ANY($2)) AND {} \
         ORDER BY s.current_period_end LIMIT 1 FOR UPDATE OF s SKIP LOCKED",
        crate::repo::test_clocks::sql_scope("s", 5, scope)
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<Integer, _>(MAX_UPCOMING_NOTICE_DAYS as i32)
    .bind::<Integer, _>(DEFAULT_UPCOMING_NOTICE_DAYS as i32)
    .bind::<Nullable<Uuid>, _>(crate::repo::test_clocks::scope_param(scope))
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        (
            MerchantId::from_uuid(r.merchant_id),
            SubscriptionId::from_uuid(r.id),
        )
    }))
}

/// A subscription whose `order.upcoming` is to be handled now.
#[derive(QueryableByName)]
struct ClaimedOrderNotice {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ships: bool,
}

/// Claims one subscription whose renewal comes within the longest `order_notice_days`
/// any merchant chose after `now` and whose `order.upcoming` for that renewal was not
/// handled: either it ships (a shippable product, its merchant's notice on) and the
/// renewal is within its merchant's own lead time, or it does not ship (`ships` false)
/// and is only to be marked, so that the claim's index (`subscriptions_order_notice_due`,
/// which holds only unmarked renewals) no longer holds it and a round with nothing due
/// reads no row (docs/orders.md, "Upcoming orders").
pub async fn claim_due_order_notice(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, SubscriptionId, bool)>> {
    let row: Option<ClaimedOrderNotice> = diesel::sql_query(format!(
        "SELECT s.merchant_id, s.id, \
                (p.shippable AND COALESCE(b.order_notice_days, $4) > 0) AS ships \
         FROM subscriptions s \
         JOIN products p ON p.merchant_id = s.merchant_id AND p.id = s.product_id \
         LEFT JOIN billing_settings b ON b.merchant_id = s.merchant_id \
         WHERE s.status IN ('trialing', 'active', 'past_due') \
           AND s.order_notice_for IS DISTINCT FROM s.current_period_end \
           AND s.current_period_end > $1 \
           AND s.current_period_end <= $1 + make_interval(days => LEAST($3, ( \
                 SELECT GREATEST(COALESCE(max(order_notice_days), 0), $4) \
                 FROM billing_settings))) \
           AND (NOT p.shippable OR COALESCE(b.order_notice_days, $4) = 0 \
                OR s.current_period_end \
                   <= $1 + make_interval(days => COALESCE(b.order_notice_days, $4))) \
           AND NOT (s.id = ANY($2)) AND {} \
         ORDER BY s.current_period_end LIMIT 1 FOR UPDATE OF s SKIP LOCKED",
        crate::repo::test_clocks::sql_scope("s", 5, scope)
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<Integer, _>(MAX_ORDER_NOTICE_DAYS as i32)
    .bind::<Integer, _>(DEFAULT_ORDER_NOTICE_DAYS as i32)
    .bind::<Nullable<Uuid>, _>(crate::repo::test_clocks::scope_param(scope))
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        (
            MerchantId::from_uuid(r.merchant_id),
            SubscriptionId::from_uuid(r.id),
            r.ships,
        )
    }))
}

/// Records that `order.upcoming` for the renewal at `period_end` was handled.
pub async fn mark_order_notice_sent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: SubscriptionId,
    period_end: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE subscriptions SET order_notice_for = $3 WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(sub.uuid())
    .bind::<Timestamptz, _>(period_end)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets that the upcoming notices (`invoice.upcoming` and `order.upcoming`) for the
/// period ending at `period_end` were handled, so that the next notice round sends them
/// (a renewal that was skipped bills and ships after all).
pub async fn forget_notice_sent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: SubscriptionId,
    period_end: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE subscriptions SET \
           upcoming_notice_for = CASE WHEN upcoming_notice_for = $3 THEN NULL \
                                      ELSE upcoming_notice_for END, \
           order_notice_for = CASE WHEN order_notice_for = $3 THEN NULL \
                                   ELSE order_notice_for END \
         WHERE merchant_id = $1 AND id = $2 \
           AND (upcoming_notice_for = $3 OR order_notice_for = $3)",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(sub.uuid())
    .bind::<Timestamptz, _>(period_end)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the upcoming notice for the period ending at `period_end` was handled.
pub async fn mark_notice_sent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: SubscriptionId,
    period_end: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE subscriptions SET upcoming_notice_for = $3 WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(sub.uuid())
    .bind::<Timestamptz, _>(period_end)
    .execute(conn)
    .await?;
    Ok(())
}

/// An invoice's dunning schedule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dunning {
    pub next_payment_attempt_at: Option<DateTime<Utc>>,
    pub first_failed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct DunningRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    next_payment_attempt_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_failed_at: Option<DateTime<Utc>>,
}

pub async fn dunning(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Dunning> {
    let row: DunningRow = diesel::sql_query(
        "SELECT next_payment_attempt_at, first_failed_at FROM invoices \
         WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(invoice.uuid())
    .get_result(conn)
    .await?;
    Ok(Dunning {
        next_payment_attempt_at: row.next_payment_attempt_at,
        first_failed_at: row.first_failed_at,
    })
}

pub async fn set_dunning(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
    d: Dunning,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE invoices SET next_payment_attempt_at = $3, first_failed_at = $4 \
         WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(invoice.uuid())
    .bind::<Nullable<Timestamptz>, _>(d.next_payment_attempt_at)
    .bind::<Nullable<Timestamptz>, _>(d.first_failed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives up on an open invoice (dunning exhausted and the subscription canceled).
pub async fn mark_uncollectible(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE invoices SET status = 'uncollectible', next_payment_attempt_at = NULL, \
         updated_at = GREATEST(updated_at, $3) \
         WHERE merchant_id = $1 AND id = $2 AND status = 'open'",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(invoice.uuid())
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes the customer's open subscription invoices due at `now` (those due later or not
/// scheduled), for the engine's next collection round; returns how many. One with a
/// charge in flight keeps its lease: the caller locked the customer's payable invoices
/// first, so an intent committed meanwhile is seen here.
pub async fn make_open_invoices_due(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    Ok(diesel::sql_query(
        "UPDATE invoices i SET next_payment_attempt_at = $3 \
         WHERE i.merchant_id = $1 AND i.customer_id = $2 AND i.status = 'open' \
         AND i.subscription_id IS NOT NULL \
         AND (i.next_payment_attempt_at IS NULL OR i.next_payment_attempt_at > $3) \
         AND NOT EXISTS (SELECT 1 FROM charge_intents c \
                         WHERE c.merchant_id = i.merchant_id AND c.invoice_id = i.id)",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(customer.uuid())
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?)
}
