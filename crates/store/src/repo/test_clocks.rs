//! Test clocks (migration 2026-12-07-150301_test_clocks), the clock a row's time comes
//! from, and the filter that keeps the engine's claims to one [`WorkScope`].

use chrono::{DateTime, Utc};
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId, TestClockId};
use tenure_domain::test_clock::{ClockStatus, TestClock, WorkScope};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{scheduled_changes, subscriptions, test_clocks};

#[derive(Queryable, Selectable)]
#[diesel(table_name = test_clocks)]
struct ClockRow {
    id: uuid::Uuid,
    name: Option<String>,
    frozen_time: DateTime<Utc>,
    status: String,
    advance_to: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ClockRow {
    fn into_domain(self) -> StoreResult<TestClock> {
        let status = match (self.status.as_str(), self.advance_to) {
            ("ready", _) => ClockStatus::Ready,
            ("advancing", Some(target)) => ClockStatus::Advancing { target },
            _ => return Err(StoreError::corrupt("test clock status")),
        };
        Ok(TestClock {
            id: TestClockId::from_uuid(self.id),
            name: self.name,
            frozen_time: self.frozen_time,
            status,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn target_of(status: ClockStatus) -> Option<DateTime<Utc>> {
    match status {
        ClockStatus::Ready => None,
        ClockStatus::Advancing { target } => Some(target),
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    clock: &TestClock,
) -> StoreResult<()> {
    diesel::insert_into(test_clocks::table)
        .values((
            test_clocks::merchant_id.eq(merchant.uuid()),
            test_clocks::id.eq(clock.id.uuid()),
            test_clocks::name.eq(&clock.name),
            test_clocks::frozen_time.eq(clock.frozen_time),
            test_clocks::status.eq(clock.status.as_str()),
            test_clocks::advance_to.eq(target_of(clock.status)),
            test_clocks::created_at.eq(clock.created_at),
            test_clocks::updated_at.eq(clock.updated_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A clock that is not deleted.
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: TestClockId,
    for_update: bool,
) -> StoreResult<TestClock> {
    let query = test_clocks::table
        .find((merchant.uuid(), id.uuid()))
        .filter(test_clocks::deleted_at.is_null())
        .select(ClockRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

/// The merchant's clocks that are not deleted, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    page: PageRequest,
) -> StoreResult<Page<TestClock>> {
    let mut query = test_clocks::table
        .filter(test_clocks::merchant_id.eq(merchant.uuid()))
        .filter(test_clocks::deleted_at.is_null())
        .select(ClockRow::as_select())
        .order(test_clocks::id.desc())
        .into_boxed();
    if let Some(after) = page.starting_after {
        query = query.filter(test_clocks::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(ClockRow::into_domain)
}

/// Saves the clock's time and status; an advance's lease ends with it.
pub async fn update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    clock: &TestClock,
) -> StoreResult<()> {
    let n = diesel::update(test_clocks::table.find((merchant.uuid(), clock.id.uuid())))
        .set((
            test_clocks::frozen_time.eq(clock.frozen_time),
            test_clocks::status.eq(clock.status.as_str()),
            test_clocks::advance_to.eq(target_of(clock.status)),
            test_clocks::advance_lease_until.eq(None::<DateTime<Utc>>),
            test_clocks::updated_at.eq(clock.updated_at),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Marks the clock deleted at `at`; its customers keep its time.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: TestClockId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(test_clocks::table.find((merchant.uuid(), id.uuid())))
        .set((
            test_clocks::deleted_at.eq(Some(at)),
            test_clocks::updated_at.eq(at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Frozen {
    #[diesel(sql_type = Timestamptz)]
    frozen_time: DateTime<Utc>,
}

/// The time of the customer's clock; `None` for a customer in real time (or none).
pub async fn time_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Option<DateTime<Utc>>> {
    time_of(
        conn,
        "SELECT k.frozen_time FROM customers c \
         JOIN test_clocks k ON k.merchant_id = c.merchant_id AND k.id = c.test_clock_id \
         WHERE c.merchant_id = $1 AND c.id = $2",
        merchant,
        customer.uuid(),
    )
    .await
}

/// The time of the clock of the subscription's customer, as [`time_of_customer`].
pub async fn time_of_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Option<DateTime<Utc>>> {
    time_of(
        conn,
        "SELECT k.frozen_time FROM subscriptions s \
         JOIN test_clocks k ON k.merchant_id = s.merchant_id AND k.id = s.test_clock_id \
         WHERE s.merchant_id = $1 AND s.id = $2",
        merchant,
        subscription.uuid(),
    )
    .await
}

/// The time of the clock of the invoice's customer, as [`time_of_customer`].
pub async fn time_of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Option<DateTime<Utc>>> {
    time_of(
        conn,
        "SELECT k.frozen_time FROM invoices i \
         JOIN test_clocks k ON k.merchant_id = i.merchant_id AND k.id = i.test_clock_id \
         WHERE i.merchant_id = $1 AND i.id = $2",
        merchant,
        invoice.uuid(),
    )
    .await
}

async fn time_of(
    conn: &mut AsyncPgConnection,
    sql: &'static str,
    merchant: MerchantId,
    id: uuid::Uuid,
) -> StoreResult<Option<DateTime<Utc>>> {
    let row: Option<Frozen> = diesel::sql_query(sql)
        .bind::<Uuid, _>(merchant.uuid())
        .bind::<Uuid, _>(id)
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|r| r.frozen_time))
}

#[derive(QueryableByName)]
struct ClaimedClock {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
}

/// Claims one advancing clock no worker holds (none ever did, or its lease ended by
/// `now`) and holds it until `lease_until`. Across tenants, like the engine's claims.
pub async fn claim_advancing(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<Option<(MerchantId, TestClock)>> {
    let claimed: Option<ClaimedClock> = diesel::sql_query(
        "UPDATE test_clocks SET advance_lease_until = $2 \
         WHERE (merchant_id, id) = ( \
             SELECT merchant_id, id FROM test_clocks \
             WHERE status = 'advancing' \
               AND (advance_lease_until IS NULL OR advance_lease_until <= $1) \
             ORDER BY advance_lease_until NULLS FIRST \
             LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING merchant_id, id",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(lease_until)
    .get_result(conn)
    .await
    .optional()?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    let merchant = MerchantId::from_uuid(claimed.merchant_id);
    let row: ClockRow = test_clocks::table
        .find((claimed.merchant_id, claimed.id))
        .select(ClockRow::as_select())
        .get_result(conn)
        .await?;
    Ok(Some((merchant, row.into_domain()?)))
}

/// Moves an advancing clock's time to `frozen_time` (a step of its advance) and extends
/// the worker's hold to `lease_until`.
pub async fn record_step(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: TestClockId,
    frozen_time: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(test_clocks::table.find((merchant.uuid(), id.uuid())))
        .filter(test_clocks::status.eq("advancing"))
        .set((
            test_clocks::frozen_time.eq(frozen_time),
            test_clocks::advance_lease_until.eq(Some(lease_until)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Moment {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<DateTime<Utc>>,
}

/// The earliest moment after `after` at which some work of the clock's customers falls
/// due: a period (or trial) ending, a charge or dunning retry, a scheduled change, an
/// `incomplete` signup's expiry, an
/// upcoming-renewal notice, an upcoming-order notice, an access-ending notice (`access_notice_days` ahead). Card
/// expiry notices have no moment of their own: a step on or after their day sends them.
pub async fn next_due_moment(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    clock: TestClockId,
    after: DateTime<Utc>,
    default_upcoming_notice_days: i32,
    access_notice_days: i32,
) -> StoreResult<Option<DateTime<Utc>>> {
    let row: Moment = diesel::sql_query(
        "SELECT min(at) AS at FROM ( \
             SELECT current_period_end AS at FROM subscriptions \
             WHERE test_clock_id = $2 AND merchant_id = $1 \
               AND status IN ('trialing', 'active', 'past_due') \
           UNION ALL \
             SELECT next_payment_attempt_at FROM invoices \
             WHERE test_clock_id = $2 AND merchant_id = $1 \
               AND next_payment_attempt_at IS NOT NULL \
           UNION ALL \
             SELECT due_at FROM scheduled_changes \
             WHERE test_clock_id = $2 AND merchant_id = $1 \
           UNION ALL \
             SELECT created_at + $6 * interval '1 microsecond' FROM subscriptions \
             WHERE test_clock_id = $2 AND merchant_id = $1 AND status = 'incomplete' \
           UNION ALL \
             SELECT s.current_period_end \
                    - make_interval(days => COALESCE(b.upcoming_notice_days, $4)) \
             FROM subscriptions s \
             LEFT JOIN billing_settings b ON b.merchant_id = s.merchant_id \
             WHERE s.test_clock_id = $2 AND s.merchant_id = $1 \
               AND s.status IN ('trialing', 'active', 'past_due') \
               AND s.upcoming_notice_for IS DISTINCT FROM s.current_period_end \
           UNION ALL \
             SELECT s.current_period_end \
                    - make_interval(days => COALESCE(b.order_notice_days, $7)) \
             FROM subscriptions s \
             JOIN products p ON p.merchant_id = s.merchant_id AND p.id = s.product_id \
             LEFT JOIN billing_settings b ON b.merchant_id = s.merchant_id \
             WHERE s.test_clock_id = $2 AND s.merchant_id = $1 AND p.shippable \
               AND s.status IN ('trialing', 'active', 'past_due') \
               AND COALESCE(b.order_notice_days, $7) > 0 \
               AND s.order_notice_for IS DISTINCT FROM s.current_period_end \
           UNION ALL \
             SELECT tenure_state_instant(state ->> 'access_until') - make_interval(days => $5) \
             FROM subscriptions \
             WHERE test_clock_id = $2 AND merchant_id = $1 AND status <> 'unpaid' \
               AND access_ending_notice_for \
                   IS DISTINCT FROM tenure_state_instant(state ->> 'access_until') \
         ) due WHERE at > $3",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(clock.uuid())
    .bind::<Timestamptz, _>(after)
    .bind::<Integer, _>(default_upcoming_notice_days)
    .bind::<Integer, _>(access_notice_days)
    .bind::<BigInt, _>(
        tenure_domain::subscription::INCOMPLETE_EXPIRES_AFTER
            .num_microseconds()
            .unwrap_or(i64::MAX),
    )
    .bind::<Integer, _>(tenure_domain::order_cutoff::DEFAULT_ORDER_NOTICE_DAYS as i32)
    .get_result(conn)
    .await?;
    Ok(row.at)
}

/// The filter of a claim on `subscriptions` to the rows of `scope`.
pub(crate) fn subscriptions_in(
    scope: WorkScope,
) -> Box<dyn BoxableExpression<subscriptions::table, Pg, SqlType = Nullable<Bool>>> {
    match scope {
        WorkScope::RealTime => Box::new(subscriptions::test_clock_id.is_null().nullable()),
        WorkScope::Clock(id) => Box::new(subscriptions::test_clock_id.eq(id.uuid())),
    }
}

/// The filter of a claim on `scheduled_changes` to the rows of `scope`.
pub(crate) fn scheduled_changes_in(
    scope: WorkScope,
) -> Box<dyn BoxableExpression<scheduled_changes::table, Pg, SqlType = Nullable<Bool>>> {
    match scope {
        WorkScope::RealTime => Box::new(scheduled_changes::test_clock_id.is_null().nullable()),
        WorkScope::Clock(id) => Box::new(scheduled_changes::test_clock_id.eq(id.uuid())),
    }
}

/// The condition of a claim written in SQL that keeps it to `scope`, for the rows of
/// `alias`, with the clock's id bound as `${param}` (NULL in real time). Real time says
/// `test_clock_id IS NULL`, as the partial indexes of the rounds do, so they serve it.
pub(crate) fn sql_scope(alias: &str, param: u8, scope: WorkScope) -> String {
    match scope {
        WorkScope::RealTime => format!("{alias}.test_clock_id IS NULL AND ${param}::uuid IS NULL"),
        WorkScope::Clock(_) => format!("{alias}.test_clock_id = ${param}::uuid"),
    }
}

/// The value bound for [`sql_scope`]'s parameter.
pub(crate) fn scope_param(scope: WorkScope) -> Option<uuid::Uuid> {
    match scope {
        WorkScope::RealTime => None,
        WorkScope::Clock(id) => Some(id.uuid()),
    }
}
