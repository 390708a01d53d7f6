//! A plan's stock, its stock notices (one per change, with the fan-out's cursor) and the
//! subscribers each notice reached (docs/orders.md, "Stock").
//!
//! The claim is a cross-tenant read like the renewal engine's: it returns one unfinished
//! notice locked with `FOR UPDATE SKIP LOCKED`, so any number of workers share the work
//! and no two run a batch of the same notice at once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{
    CustomerId, MerchantId, PlanId, ScheduledChangeId, StockNoticeId, SubscriptionId,
};
use tenure_domain::stock::{AFFECTED_STATUSES, NextOrderAction, Stock, StockChange};

use crate::error::{StoreError, StoreResult};
use crate::schema::{plans, stock_notice_recipients, stock_notices, subscriptions};

/// A stock change and how far its notices have gone.
#[derive(Debug, Clone, PartialEq)]
pub struct StockNotice {
    pub id: StockNoticeId,
    pub plan_id: PlanId,
    pub change: StockChange,
    /// The last subscription handled (ids ascending).
    pub cursor: Option<SubscriptionId>,
    pub notified: i64,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub superseded_by: Option<StockNoticeId>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = stock_notices)]
struct NoticeRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    plan_id: uuid::Uuid,
    status: String,
    expected_at: Option<DateTime<Utc>>,
    next_order: String,
    substitute_plan_id: Option<uuid::Uuid>,
    choices: Vec<String>,
    cursor_id: Option<uuid::Uuid>,
    notified: i64,
    created_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    superseded_by: Option<uuid::Uuid>,
}

impl NoticeRow {
    fn from_domain(merchant: MerchantId, n: &StockNotice) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            id: n.id.uuid(),
            plan_id: n.plan_id.uuid(),
            status: n.change.stock.status.as_str().to_owned(),
            expected_at: n.change.stock.expected_at,
            next_order: n.change.next_order.as_str().to_owned(),
            substitute_plan_id: n.change.substitute_plan_id.map(|p| p.uuid()),
            choices: n
                .change
                .choices
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            cursor_id: n.cursor.map(|c| c.uuid()),
            notified: n.notified,
            created_at: n.created_at,
            done_at: n.done_at,
            superseded_by: n.superseded_by.map(|s| s.uuid()),
        }
    }

    fn into_domain(self) -> StoreResult<StockNotice> {
        Ok(StockNotice {
            id: StockNoticeId::from_uuid(self.id),
            plan_id: PlanId::from_uuid(self.plan_id),
            change: StockChange {
                stock: Stock {
                    status: self.status.parse().map_err(StoreError::corrupt)?,
                    expected_at: self.expected_at,
                },
                next_order: self.next_order.parse().map_err(StoreError::corrupt)?,
                substitute_plan_id: self.substitute_plan_id.map(PlanId::from_uuid),
                choices: self
                    .choices
                    .iter()
                    .map(|c| c.parse().map_err(StoreError::corrupt))
                    .collect::<StoreResult<_>>()?,
            },
            cursor: self.cursor_id.map(SubscriptionId::from_uuid),
            notified: self.notified,
            created_at: self.created_at,
            done_at: self.done_at,
            superseded_by: self.superseded_by.map(StockNoticeId::from_uuid),
        })
    }
}

/// Locks the plan's row (stock changes of one plan are serialised by it) and returns its
/// stock.
pub async fn lock_plan_stock(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
) -> StoreResult<Stock> {
    let (status, expected_at): (String, Option<DateTime<Utc>>) = plans::table
        .find((merchant.uuid(), plan.uuid()))
        .select((plans::stock_status, plans::stock_expected_at))
        .for_update()
        .get_result(conn)
        .await?;
    Ok(Stock {
        status: status.parse().map_err(StoreError::corrupt)?,
        expected_at,
    })
}

/// Sets the plan's stock.
pub async fn set_plan_stock(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
    stock: Stock,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(plans::table.find((merchant.uuid(), plan.uuid())))
        .set((
            plans::stock_status.eq(stock.status.as_str()),
            plans::stock_expected_at.eq(stock.expected_at),
            plans::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends the fan-out of the plan's unfinished notices: `by` supersedes them. Returns how
/// many it ended. Waits for a batch of one of them in progress (it holds the row).
pub async fn supersede_unfinished(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
    by: StockNoticeId,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    Ok(diesel::update(
        stock_notices::table
            .filter(stock_notices::merchant_id.eq(merchant.uuid()))
            .filter(stock_notices::plan_id.eq(plan.uuid()))
            .filter(stock_notices::done_at.is_null()),
    )
    .set((
        stock_notices::done_at.eq(now),
        stock_notices::superseded_by.eq(by.uuid()),
    ))
    .execute(conn)
    .await?)
}

pub async fn insert_notice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    notice: &StockNotice,
) -> StoreResult<()> {
    diesel::insert_into(stock_notices::table)
        .values(NoticeRow::from_domain(merchant, notice))
        .execute(conn)
        .await?;
    Ok(())
}

/// The notice `id` of `plan`, locked when `lock`.
pub async fn get_notice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
    id: StockNoticeId,
    lock: bool,
) -> StoreResult<StockNotice> {
    let query = stock_notices::table
        .find((merchant.uuid(), id.uuid()))
        .filter(stock_notices::plan_id.eq(plan.uuid()))
        .select(NoticeRow::as_select());
    let row = if lock {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

/// The plan's notices, newest first, at most `limit`.
pub async fn list_notices(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
    limit: i64,
) -> StoreResult<Vec<StockNotice>> {
    stock_notices::table
        .filter(stock_notices::merchant_id.eq(merchant.uuid()))
        .filter(stock_notices::plan_id.eq(plan.uuid()))
        .order(stock_notices::id.desc())
        .limit(limit)
        .select(NoticeRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(NoticeRow::into_domain)
        .collect()
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
}

/// Claims the unfinished notice no other worker holds (and not in `skip`) that has
/// reached the fewest subscribers so far, the oldest of those, locked until the caller's
/// transaction ends; returns it whole. Each batch adds to the notice's `notified`, so
/// successive claims take turns among the unfinished notices (of every merchant): a
/// small notice posted during a large fan-out is done after a batch or two, not after
/// the whole fan-out.
pub async fn claim_unfinished(
    conn: &mut AsyncPgConnection,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, StockNotice)>> {
    let claimed: Option<Claimed> = diesel::sql_query(
        "SELECT merchant_id, id FROM stock_notices \
         WHERE done_at IS NULL AND NOT (id = ANY($1)) \
         ORDER BY notified, id LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind::<Array<Uuid>, _>(skip)
    .get_result(conn)
    .await
    .optional()?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    let row: NoticeRow = stock_notices::table
        .find((claimed.merchant_id, claimed.id))
        .select(NoticeRow::as_select())
        .get_result(conn)
        .await?;
    Ok(Some((
        MerchantId::from_uuid(claimed.merchant_id),
        row.into_domain()?,
    )))
}

/// The next at most `limit` subscriptions of `plan` still expecting orders
/// ([`AFFECTED_STATUSES`]) after `after`, ids ascending (the keyset walk of a fan-out).
pub async fn next_affected(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: PlanId,
    after: Option<SubscriptionId>,
    limit: i64,
) -> StoreResult<Vec<(SubscriptionId, CustomerId)>> {
    let statuses: Vec<&str> = AFFECTED_STATUSES.iter().map(|s| s.as_str()).collect();
    let mut query = subscriptions::table
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .filter(subscriptions::plan_id.eq(plan.uuid()))
        .filter(subscriptions::status.eq_any(statuses))
        .order(subscriptions::id.asc())
        .limit(limit)
        .select((subscriptions::id, subscriptions::customer_id))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(subscriptions::id.gt(after.uuid()));
    }
    let rows: Vec<(uuid::Uuid, uuid::Uuid)> = query.load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(s, c)| (SubscriptionId::from_uuid(s), CustomerId::from_uuid(c)))
        .collect())
}

/// Moves the notice's cursor after a batch: `notified` more subscribers, `cursor` the last
/// subscription looked at, `done_at` when the walk found nothing more.
pub async fn advance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    notice: StockNoticeId,
    cursor: Option<SubscriptionId>,
    notified: i64,
    done_at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    diesel::update(stock_notices::table.find((merchant.uuid(), notice.uuid())))
        .set((
            stock_notices::cursor_id.eq(cursor.map(|c| c.uuid())),
            stock_notices::notified.eq(stock_notices::notified + notified),
            stock_notices::done_at.eq(done_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// One subscriber a notice reached, and what was done to their next order.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub notice_id: StockNoticeId,
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    /// The action in effect from the notice (the notice's, or `ship_anyway` when it could
    /// not apply).
    pub applied: NextOrderAction,
    pub not_applied_code: Option<String>,
    pub skipped_renewal_at: Option<DateTime<Utc>>,
    pub scheduled_change_id: Option<ScheduledChangeId>,
    pub choice: Option<NextOrderAction>,
    pub chosen_at: Option<DateTime<Utc>>,
    pub notified_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = stock_notice_recipients)]
struct RecipientRow {
    merchant_id: uuid::Uuid,
    notice_id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    applied: String,
    not_applied_code: Option<String>,
    skipped_renewal_at: Option<DateTime<Utc>>,
    scheduled_change_id: Option<uuid::Uuid>,
    choice: Option<String>,
    chosen_at: Option<DateTime<Utc>>,
    notified_at: DateTime<Utc>,
}

impl RecipientRow {
    fn from_domain(merchant: MerchantId, r: &Recipient) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            notice_id: r.notice_id.uuid(),
            subscription_id: r.subscription_id.uuid(),
            customer_id: r.customer_id.uuid(),
            applied: r.applied.as_str().to_owned(),
            not_applied_code: r.not_applied_code.clone(),
            skipped_renewal_at: r.skipped_renewal_at,
            scheduled_change_id: r.scheduled_change_id.map(|c| c.uuid()),
            choice: r.choice.map(|c| c.as_str().to_owned()),
            chosen_at: r.chosen_at,
            notified_at: r.notified_at,
        }
    }

    fn into_domain(self) -> StoreResult<Recipient> {
        Ok(Recipient {
            notice_id: StockNoticeId::from_uuid(self.notice_id),
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            applied: self.applied.parse().map_err(StoreError::corrupt)?,
            not_applied_code: self.not_applied_code,
            skipped_renewal_at: self.skipped_renewal_at,
            scheduled_change_id: self.scheduled_change_id.map(ScheduledChangeId::from_uuid),
            choice: self
                .choice
                .map(|c| c.parse().map_err(StoreError::corrupt))
                .transpose()?,
            chosen_at: self.chosen_at,
            notified_at: self.notified_at,
        })
    }
}

/// Records the subscribers a batch reached (a second row for one is a conflict).
pub async fn insert_recipients(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    recipients: &[Recipient],
) -> StoreResult<()> {
    let rows: Vec<RecipientRow> = recipients
        .iter()
        .map(|r| RecipientRow::from_domain(merchant, r))
        .collect();
    // PostgreSQL takes at most 65535 bind parameters per statement (11 per row here).
    for chunk in rows.chunks(5000) {
        diesel::insert_into(stock_notice_recipients::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The latest notice of `plan` that reached subscription `sub`, with its row for it.
pub async fn latest_for_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: SubscriptionId,
    plan: PlanId,
) -> StoreResult<Option<(StockNotice, Recipient)>> {
    let found: Option<(RecipientRow, NoticeRow)> = stock_notice_recipients::table
        .inner_join(
            stock_notices::table.on(stock_notices::merchant_id
                .eq(stock_notice_recipients::merchant_id)
                .and(stock_notices::id.eq(stock_notice_recipients::notice_id))),
        )
        .filter(stock_notice_recipients::merchant_id.eq(merchant.uuid()))
        .filter(stock_notice_recipients::subscription_id.eq(sub.uuid()))
        .filter(stock_notices::plan_id.eq(plan.uuid()))
        .order(stock_notice_recipients::notice_id.desc())
        .select((RecipientRow::as_select(), NoticeRow::as_select()))
        .first(conn)
        .await
        .optional()?;
    found
        .map(|(r, n)| Ok((n.into_domain()?, r.into_domain()?)))
        .transpose()
}

/// Saves a subscriber's choice and what is now in effect from the notice.
pub async fn update_recipient(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    r: &Recipient,
) -> StoreResult<()> {
    diesel::update(stock_notice_recipients::table.find((
        merchant.uuid(),
        r.notice_id.uuid(),
        r.subscription_id.uuid(),
    )))
    .set((
        stock_notice_recipients::skipped_renewal_at.eq(r.skipped_renewal_at),
        stock_notice_recipients::scheduled_change_id.eq(r.scheduled_change_id.map(|c| c.uuid())),
        stock_notice_recipients::choice.eq(r.choice.map(|c| c.as_str())),
        stock_notice_recipients::chosen_at.eq(r.chosen_at),
    ))
    .execute(conn)
    .await?;
    Ok(())
}
