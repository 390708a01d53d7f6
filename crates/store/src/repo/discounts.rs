//! Discounts granted to subscriptions (`subscription_discounts`): a percent or an amount
//! off each of the next `cycles` invoices. Retention offers grant them through [`grant`];
//! the renewal engine reads the active ones ([`active_for_subscription`], oldest first),
//! and each invoice that applies one uses up a cycle ([`consume`]) in its transaction.
//!
//! Every discount refers to the coupon it was granted from: a redeemed promotion code's
//! ([`grant_from_coupon`]) or, for a retention offer's, an internal coupon that [`grant`]
//! makes for it. A `forever` discount keeps its one cycle: invoices never use it up.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::coupon::{CouponDuration, CouponTerms};
use tenure_domain::ids::{
    CouponId, CustomerId, DiscountId, GenerateId, MerchantId, PromotionCodeId, SubscriptionId,
};

use crate::error::{StoreError, StoreResult};
use crate::repo::coupons::{self, StoredCoupon};
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
    /// For a `forever` discount, 1 (never used up).
    pub cycles: u32,
    pub cycles_remaining: u32,
    pub created_at: DateTime<Utc>,
    pub coupon_id: CouponId,
    pub promotion_code_id: Option<PromotionCodeId>,
    pub customer_id: CustomerId,
    /// Applies to every invoice; `cycles` mean nothing then.
    pub forever: bool,
    /// How its invoice line reads, when not from the value alone.
    pub description: Option<String>,
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
    coupon_id: uuid::Uuid,
    promotion_code_id: Option<uuid::Uuid>,
    customer_id: uuid::Uuid,
    forever: bool,
    description: Option<String>,
}

impl Row {
    fn into_stored(self) -> StoreResult<StoredDiscount> {
        let value = coupons::value_of(self.percent, self.amount, self.currency.as_deref())?;
        let count = |n: i32| u32::try_from(n).map_err(|_| StoreError::corrupt("negative cycles"));
        Ok(StoredDiscount {
            id: self.id,
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            offer_id: self.offer_id,
            value,
            cycles: count(self.cycles)?,
            cycles_remaining: count(self.cycles_remaining)?,
            created_at: self.created_at,
            coupon_id: CouponId::from_uuid(self.coupon_id),
            promotion_code_id: self.promotion_code_id.map(PromotionCodeId::from_uuid),
            customer_id: CustomerId::from_uuid(self.customer_id),
            forever: self.forever,
            description: self.description,
        })
    }
}

/// Grants a discount to a subscription of `merchant`, with an internal coupon of the same
/// value and cycles made for it (a retention offer's discount). The value and cycles are
/// checked by the domain (`StoreError::Corrupt` otherwise: callers validate input first);
/// a subscription of another merchant is `NotFound`.
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
    let customer: uuid::Uuid = crate::schema::subscriptions::table
        .find((merchant.uuid(), new.subscription_id.uuid()))
        .select(crate::schema::subscriptions::customer_id)
        .first(conn)
        .await?;
    let coupon = StoredCoupon {
        id: CouponId::generate(),
        name: "Retention offer".to_owned(),
        terms: CouponTerms {
            value: new.value,
            duration: if new.cycles == 1 {
                CouponDuration::Once
            } else {
                CouponDuration::Repeating { cycles: new.cycles }
            },
            max_redemptions: None,
            redeem_by: None,
            product_ids: Vec::new(),
            plan_ids: Vec::new(),
            first_time_subscribers_only: false,
        },
        times_redeemed: 1,
        internal: true,
        metadata: serde_json::Map::new(),
        deleted_at: None,
        created_at: at,
        updated_at: at,
    };
    coupons::insert_coupon(conn, merchant, &coupon).await?;
    insert(
        conn,
        merchant,
        Grant {
            subscription_id: new.subscription_id,
            customer_id: CustomerId::from_uuid(customer),
            offer_id: new.offer_id,
            coupon: &coupon,
            promotion_code_id: None,
            description: None,
        },
        at,
    )
    .await
}

/// A discount granted from a coupon (through one of its promotion codes, or directly).
pub struct Grant<'a> {
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub offer_id: Option<uuid::Uuid>,
    pub coupon: &'a StoredCoupon,
    pub promotion_code_id: Option<PromotionCodeId>,
    /// How its invoice line reads (`Discount: …`); `None` reads from the value.
    pub description: Option<String>,
}

/// Grants the subscription the discount of a coupon, for the coupon's duration. The
/// caller checked and counted the redemption.
pub async fn grant_from_coupon(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    grant: Grant<'_>,
    at: DateTime<Utc>,
) -> Result<StoredDiscount, StoreError> {
    insert(conn, merchant, grant, at).await
}

async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    grant: Grant<'_>,
    at: DateTime<Utc>,
) -> Result<StoredDiscount, StoreError> {
    let terms = &grant.coupon.terms;
    let (percent, amount, currency) = coupons::value_columns(terms.value)?;
    let forever = terms.duration == CouponDuration::Forever;
    let cycles = i32::try_from(terms.duration.cycles().unwrap_or(1))
        .map_err(|_| StoreError::corrupt("cycles out of range"))?;
    let row = Row {
        merchant_id: merchant.uuid(),
        id: DiscountId::generate().uuid(),
        subscription_id: grant.subscription_id.uuid(),
        offer_id: grant.offer_id,
        percent,
        amount,
        currency,
        cycles,
        cycles_remaining: cycles,
        created_at: at,
        coupon_id: grant.coupon.id.uuid(),
        promotion_code_id: grant.promotion_code_id.map(|c| c.uuid()),
        customer_id: grant.customer_id.uuid(),
        forever,
        description: grant.description,
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
    // A forever discount keeps its cycle; it is still counted as applied.
    let forever: i64 = d::table
        .filter(d::merchant_id.eq(merchant.uuid()))
        .filter(d::id.eq_any(ids))
        .filter(d::forever.eq(true))
        .count()
        .get_result(conn)
        .await?;
    let updated = diesel::update(
        d::table
            .filter(d::merchant_id.eq(merchant.uuid()))
            .filter(d::id.eq_any(ids))
            .filter(d::forever.eq(false))
            .filter(d::cycles_remaining.gt(0)),
    )
    .set(d::cycles_remaining.eq(d::cycles_remaining - 1))
    .execute(conn)
    .await?;
    if i64::try_from(updated).unwrap_or(i64::MAX) + forever
        != i64::try_from(ids.len()).unwrap_or(i64::MAX)
    {
        return Err(StoreError::corrupt(
            "a discount applied to an invoice had no cycle left",
        ));
    }
    Ok(())
}
