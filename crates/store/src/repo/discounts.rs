//! Discounts granted to subscriptions (`subscription_discounts`): a percent or an amount
//! off each of the next `cycles` invoices. Retention offers grant them through [`grant`];
//! the renewal engine reads the active ones ([`active_for_subscription`], oldest first),
//! and each invoice that applies one uses up a cycle ([`consume`]) in its transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{DiscountId, GenerateId, MerchantId, SubscriptionId};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::schema::subscription_discounts as d;

/// What a discount takes off each invoice (the domain's type, under the name this
/// module's callers use).
pub use tenure_domain::billing::discount::DiscountValue;

/// A discount to grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDiscount {
    pub subscription_id: SubscriptionId,
    /// The retention offer that granted it, if any.
    pub offer_id: Option<uuid::Uuid>,
    pub value: DiscountValue,
    /// How many invoices it applies to (at least 1).
    pub cycles: u32,
}

/// A granted discount and how many invoices it still applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDiscount {
    pub id: uuid::Uuid,
    pub subscription_id: SubscriptionId,
    pub offer_id: Option<uuid::Uuid>,
    pub value: DiscountValue,
    pub cycles: u32,
    pub cycles_remaining: u32,
    pub created_at: DateTime<Utc>,
}

impl StoredDiscount {
    /// The id as a TypeID (`disc_…`).
    pub fn typed_id(&self) -> DiscountId {
        DiscountId::from_uuid(self.id)
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = d)]
struct Row {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    offer_id: Option<uuid::Uuid>,
    percent: Option<i32>,
    amount: Option<i64>,
    currency: Option<String>,
    cycles: i32,
    cycles_remaining: i32,
    created_at: DateTime<Utc>,
}

impl Row {
    fn into_stored(self) -> StoreResult<StoredDiscount> {
        let value = match (self.percent, self.amount, self.currency) {
            (Some(p), None, None) => DiscountValue::Percent(
                u32::try_from(p).map_err(|_| StoreError::corrupt("negative percent"))?,
            ),
            (None, Some(a), Some(c)) => {
                let cur: Currency = c
                    .parse()
                    .map_err(|_| StoreError::corrupt(format!("unknown currency {c}")))?;
                DiscountValue::Amount(Money::new(a, cur))
            }
            _ => {
                return Err(StoreError::corrupt(
                    "discount is neither percent nor amount",
                ));
            }
        };
        let count = |n: i32| u32::try_from(n).map_err(|_| StoreError::corrupt("negative cycles"));
        Ok(StoredDiscount {
            id: self.id,
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            offer_id: self.offer_id,
            value,
            cycles: count(self.cycles)?,
            cycles_remaining: count(self.cycles_remaining)?,
            created_at: self.created_at,
        })
    }
}

/// Grants a discount to a subscription of `merchant`. The value and cycles are checked
/// by the domain (`StoreError::Corrupt` otherwise: callers validate input first); a
/// subscription of another merchant is a foreign-key `Conflict`.
pub async fn grant(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: NewDiscount,
    at: DateTime<Utc>,
) -> Result<StoredDiscount, StoreError> {
    new.value.validate().map_err(StoreError::corrupt)?;
    if new.cycles == 0 {
        return Err(StoreError::corrupt(
            "a discount applies to at least one cycle",
        ));
    }
    let cycles =
        i32::try_from(new.cycles).map_err(|_| StoreError::corrupt("cycles out of range"))?;
    let (percent, amount, currency) = match new.value {
        DiscountValue::Percent(p) => (
            Some(i32::try_from(p).map_err(|_| StoreError::corrupt("percent out of range"))?),
            None,
            None,
        ),
        DiscountValue::Amount(m) => (None, Some(m.amount), Some(m.currency.code().to_owned())),
    };
    let row = Row {
        merchant_id: merchant.uuid(),
        id: DiscountId::generate().uuid(),
        subscription_id: new.subscription_id.uuid(),
        offer_id: new.offer_id,
        percent,
        amount,
        currency,
        cycles,
        cycles_remaining: cycles,
        created_at: at,
    };
    let saved: Row = diesel::insert_into(d::table)
        .values(&row)
        .returning(Row::as_returning())
        .get_result(conn)
        .await?;
    saved.into_stored()
}

/// The discounts of a subscription that still apply to an invoice (`cycles_remaining >
/// 0`), oldest first: the order the invoice applies them in.
///
/// Takes a shared connection so that it can be pipelined with other reads (the portal's
/// view after a change reads it with the product's terms).
pub async fn active_for_subscription(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> Result<Vec<StoredDiscount>, StoreError> {
    d::table
        .filter(d::merchant_id.eq(merchant.uuid()))
        .filter(d::subscription_id.eq(subscription.uuid()))
        .filter(d::cycles_remaining.gt(0))
        .order((d::created_at.asc(), d::id.asc()))
        .select(Row::as_select())
        .load(&mut &*conn)
        .await?
        .into_iter()
        .map(Row::into_stored)
        .collect()
}

/// The same as [`active_for_subscription`], with the rows locked (`FOR UPDATE`) for the
/// invoice that will use up their cycles in this transaction.
pub async fn lock_active_for_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> Result<Vec<StoredDiscount>, StoreError> {
    d::table
        .filter(d::merchant_id.eq(merchant.uuid()))
        .filter(d::subscription_id.eq(subscription.uuid()))
        .filter(d::cycles_remaining.gt(0))
        .order((d::created_at.asc(), d::id.asc()))
        .select(Row::as_select())
        .for_update()
        .load(conn)
        .await?
        .into_iter()
        .map(Row::into_stored)
        .collect()
}

/// The active discounts of several subscriptions (for lists), oldest first.
pub async fn active_for_subscriptions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscriptions: &[SubscriptionId],
) -> Result<Vec<StoredDiscount>, StoreError> {
    let ids: Vec<uuid::Uuid> = subscriptions.iter().map(|s| s.uuid()).collect();
    d::table
        .filter(d::merchant_id.eq(merchant.uuid()))
        .filter(d::subscription_id.eq_any(ids))
        .filter(d::cycles_remaining.gt(0))
        .order((d::created_at.asc(), d::id.asc()))
        .select(Row::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(Row::into_stored)
        .collect()
}

/// Uses up one cycle of each discount in `ids` (an invoice applied them). A discount with
/// no cycle left is not touched (the table's check keeps `cycles_remaining >= 0`).
pub async fn consume(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[uuid::Uuid],
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let updated = diesel::update(
        d::table
            .filter(d::merchant_id.eq(merchant.uuid()))
            .filter(d::id.eq_any(ids))
            .filter(d::cycles_remaining.gt(0)),
    )
    .set(d::cycles_remaining.eq(d::cycles_remaining - 1))
    .execute(conn)
    .await?;
    if updated != ids.len() {
        return Err(StoreError::corrupt(
            "a discount applied to an invoice had no cycle left",
        ));
    }
    Ok(())
}
