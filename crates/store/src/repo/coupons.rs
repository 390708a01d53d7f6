//! Coupons and promotion codes. A redemption locks the code's and the coupon's rows
//! (`FOR UPDATE`, code first) before it reads their counts, so two redemptions of the last
//! slot are serialised and exactly one of them gets it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::coupon::{CodeLimits, CouponDuration, CouponTerms};
use tenure_domain::billing::discount::DiscountValue;
use tenure_domain::ids::{CouponId, CustomerId, MerchantId, PromotionCodeId, SubscriptionId};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{coupons, promotion_codes, subscription_discounts, subscriptions};

/// A coupon as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCoupon {
    pub id: CouponId,
    pub name: String,
    pub terms: CouponTerms,
    pub times_redeemed: u32,
    /// Made for one discount (a retention offer's): not listed, no codes.
    pub internal: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A promotion code as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPromotionCode {
    pub id: PromotionCodeId,
    pub coupon_id: CouponId,
    pub code: String,
    pub normalized_code: String,
    pub limits: CodeLimits,
    pub times_redeemed: u32,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The unique index that keeps one active code per word and merchant.
pub const ACTIVE_CODE_UNIQUE: &str = "promotion_codes_active_code";

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = coupons, treat_none_as_null = true)]
struct CouponRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    name: String,
    value: serde_json::Value,
    duration: serde_json::Value,
    max_redemptions: Option<i32>,
    times_redeemed: i32,
    redeem_by: Option<DateTime<Utc>>,
    applies_to_product_ids: Vec<String>,
    applies_to_plan_ids: Vec<String>,
    first_time_subscribers_only: bool,
    internal: bool,
    metadata: serde_json::Value,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn count(n: i32, what: &str) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::corrupt(format!("negative {what}")))
}

fn opt_count(n: Option<i32>, what: &str) -> StoreResult<Option<u32>> {
    n.map(|n| count(n, what)).transpose()
}

fn to_i32(n: u32) -> StoreResult<i32> {
    i32::try_from(n).map_err(|_| StoreError::corrupt("count out of range"))
}

fn object(value: serde_json::Value) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(StoreError::corrupt("metadata is not an object")),
    }
}

/// The columns of a discount value: percent, or amount and currency.
pub(crate) fn value_columns(
    value: DiscountValue,
) -> StoreResult<(Option<i32>, Option<i64>, Option<String>)> {
    Ok(match value {
        DiscountValue::Percent(p) => (Some(to_i32(p)?), None, None),
        DiscountValue::Amount(m) => (None, Some(m.amount), Some(m.currency.code().to_owned())),
    })
}

/// The discount value of percent, or amount and currency, columns.
pub(crate) fn value_of(
    percent: Option<i32>,
    amount: Option<i64>,
    currency: Option<&str>,
) -> StoreResult<DiscountValue> {
    match (percent, amount, currency) {
        (Some(p), None, None) => Ok(DiscountValue::Percent(count(p, "percent")?)),
        (None, Some(a), Some(c)) => {
            let cur: Currency = c
                .parse()
                .map_err(|_| StoreError::corrupt(format!("unknown currency {c}")))?;
            Ok(DiscountValue::Amount(Money::new(a, cur)))
        }
        _ => Err(StoreError::corrupt(
            "discount is neither percent nor amount",
        )),
    }
}

impl CouponRow {
    fn from_stored(merchant: MerchantId, c: &StoredCoupon) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: c.id.uuid(),
            name: c.name.clone(),
            value: serde_json::to_value(c.terms.value).map_err(StoreError::corrupt)?,
            duration: serde_json::to_value(c.terms.duration).map_err(StoreError::corrupt)?,
            max_redemptions: c.terms.max_redemptions.map(to_i32).transpose()?,
            times_redeemed: to_i32(c.times_redeemed)?,
            redeem_by: c.terms.redeem_by,
            applies_to_product_ids: c.terms.product_ids.clone(),
            applies_to_plan_ids: c.terms.plan_ids.clone(),
            first_time_subscribers_only: c.terms.first_time_subscribers_only,
            internal: c.internal,
            metadata: serde_json::Value::Object(c.metadata.clone()),
            deleted_at: c.deleted_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }

    fn into_stored(self) -> StoreResult<StoredCoupon> {
        let duration: CouponDuration =
            serde_json::from_value(self.duration).map_err(StoreError::corrupt)?;
        Ok(StoredCoupon {
            id: CouponId::from_uuid(self.id),
            name: self.name,
            terms: CouponTerms {
                value: serde_json::from_value(self.value).map_err(StoreError::corrupt)?,
                duration,
                max_redemptions: opt_count(self.max_redemptions, "max_redemptions")?,
                redeem_by: self.redeem_by,
                product_ids: self.applies_to_product_ids,
                plan_ids: self.applies_to_plan_ids,
                first_time_subscribers_only: self.first_time_subscribers_only,
            },
            times_redeemed: count(self.times_redeemed, "times_redeemed")?,
            internal: self.internal,
            metadata: object(self.metadata)?,
            deleted_at: self.deleted_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = promotion_codes, treat_none_as_null = true)]
struct CodeRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    coupon_id: uuid::Uuid,
    code: String,
    normalized_code: String,
    active: bool,
    max_redemptions: Option<i32>,
    max_redemptions_per_customer: Option<i32>,
    times_redeemed: i32,
    expires_at: Option<DateTime<Utc>>,
    first_time_subscribers_only: bool,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CodeRow {
    fn from_stored(merchant: MerchantId, c: &StoredPromotionCode) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: c.id.uuid(),
            coupon_id: c.coupon_id.uuid(),
            code: c.code.clone(),
            normalized_code: c.normalized_code.clone(),
            active: c.limits.active,
            max_redemptions: c.limits.max_redemptions.map(to_i32).transpose()?,
            max_redemptions_per_customer: c
                .limits
                .max_redemptions_per_customer
                .map(to_i32)
                .transpose()?,
            times_redeemed: to_i32(c.times_redeemed)?,
            expires_at: c.limits.expires_at,
            first_time_subscribers_only: c.limits.first_time_subscribers_only,
            metadata: serde_json::Value::Object(c.metadata.clone()),
            created_at: c.created_at,
            updated_at: c.updated_at,
        })
    }

    fn into_stored(self) -> StoreResult<StoredPromotionCode> {
        Ok(StoredPromotionCode {
            id: PromotionCodeId::from_uuid(self.id),
            coupon_id: CouponId::from_uuid(self.coupon_id),
            code: self.code,
            normalized_code: self.normalized_code,
            limits: CodeLimits {
                active: self.active,
                max_redemptions: opt_count(self.max_redemptions, "max_redemptions")?,
                max_redemptions_per_customer: opt_count(
                    self.max_redemptions_per_customer,
                    "max_redemptions_per_customer",
                )?,
                expires_at: self.expires_at,
                first_time_subscribers_only: self.first_time_subscribers_only,
            },
            times_redeemed: count(self.times_redeemed, "times_redeemed")?,
            metadata: object(self.metadata)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_coupon(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    coupon: &StoredCoupon,
) -> StoreResult<()> {
    diesel::insert_into(coupons::table)
        .values(CouponRow::from_stored(merchant, coupon)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// Saves every column of a coupon (name, metadata, deletion, counts).
pub async fn update_coupon(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    coupon: &StoredCoupon,
) -> StoreResult<()> {
    let row = CouponRow::from_stored(merchant, coupon)?;
    diesel::update(coupons::table.find((merchant.uuid(), coupon.id.uuid())))
        .set(&row)
        .execute(conn)
        .await?;
    Ok(())
}

/// A coupon of the merchant (deleted or not); `for_update` locks its row.
pub async fn get_coupon(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CouponId,
    for_update: bool,
) -> StoreResult<StoredCoupon> {
    let query = coupons::table
        .find((merchant.uuid(), id.uuid()))
        .select(CouponRow::as_select());
    let row = if for_update {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    }
    .optional()?
    .ok_or(StoreError::NotFound)?;
    row.into_stored()
}

/// The coupons with these ids.
pub async fn coupons_by_ids(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[uuid::Uuid],
) -> StoreResult<Vec<StoredCoupon>> {
    coupons::table
        .filter(coupons::merchant_id.eq(merchant.uuid()))
        .filter(coupons::id.eq_any(ids))
        .select(CouponRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(CouponRow::into_stored)
        .collect()
}

/// The merchant's coupons, newest first: those it made (not the internal coupons of
/// retention offers' discounts), deleted ones only when asked.
pub async fn list_coupons(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    include_deleted: bool,
    page: PageRequest,
) -> StoreResult<Page<StoredCoupon>> {
    let mut query = coupons::table
        .filter(coupons::merchant_id.eq(merchant.uuid()))
        .filter(coupons::internal.eq(false))
        .select(CouponRow::as_select())
        .order(coupons::id.desc())
        .into_boxed();
    if !include_deleted {
        query = query.filter(coupons::deleted_at.is_null());
    }
    if let Some(after) = page.starting_after {
        query = query.filter(coupons::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(CouponRow::into_stored)
}

/// Inserts a promotion code; another active code of the same word is a `Conflict` on
/// [`ACTIVE_CODE_UNIQUE`].
pub async fn insert_code(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    code: &StoredPromotionCode,
) -> StoreResult<()> {
    diesel::insert_into(promotion_codes::table)
        .values(CodeRow::from_stored(merchant, code)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// Saves every column of a code (the same `Conflict` as [`insert_code`] when it is
/// reactivated while another code holds its word).
pub async fn update_code(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    code: &StoredPromotionCode,
) -> StoreResult<()> {
    let row = CodeRow::from_stored(merchant, code)?;
    diesel::update(promotion_codes::table.find((merchant.uuid(), code.id.uuid())))
        .set(&row)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_code(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: PromotionCodeId,
    for_update: bool,
) -> StoreResult<StoredPromotionCode> {
    let query = promotion_codes::table
        .find((merchant.uuid(), id.uuid()))
        .select(CodeRow::as_select());
    let row = if for_update {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    }
    .optional()?
    .ok_or(StoreError::NotFound)?;
    row.into_stored()
}

/// The active code of the merchant with this normalised word; `for_update` locks it.
pub async fn find_active_code(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    normalized: &str,
    for_update: bool,
) -> StoreResult<Option<StoredPromotionCode>> {
    let query = promotion_codes::table
        .filter(promotion_codes::merchant_id.eq(merchant.uuid()))
        .filter(promotion_codes::normalized_code.eq(normalized))
        .filter(promotion_codes::active.eq(true))
        .select(CodeRow::as_select());
    let row = if for_update {
        query.for_update().first(conn).await
    } else {
        query.first(conn).await
    }
    .optional()?;
    row.map(CodeRow::into_stored).transpose()
}

/// The merchant's promotion codes, newest first, optionally of one coupon or word.
pub async fn list_codes(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    coupon: Option<CouponId>,
    normalized: Option<&str>,
    page: PageRequest,
) -> StoreResult<Page<StoredPromotionCode>> {
    let mut query = promotion_codes::table
        .filter(promotion_codes::merchant_id.eq(merchant.uuid()))
        .select(CodeRow::as_select())
        .order(promotion_codes::id.desc())
        .into_boxed();
    if let Some(c) = coupon {
        query = query.filter(promotion_codes::coupon_id.eq(c.uuid()));
    }
    if let Some(n) = normalized {
        query = query.filter(promotion_codes::normalized_code.eq(n.to_owned()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(promotion_codes::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(CodeRow::into_stored)
}

/// The codes with these ids.
pub async fn codes_by_ids(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[uuid::Uuid],
) -> StoreResult<Vec<StoredPromotionCode>> {
    promotion_codes::table
        .filter(promotion_codes::merchant_id.eq(merchant.uuid()))
        .filter(promotion_codes::id.eq_any(ids))
        .select(CodeRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(CodeRow::into_stored)
        .collect()
}

/// Counts one more redemption of the coupon and, if given, of the code (rows the caller
/// locked and checked).
pub async fn count_redemption(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    coupon: CouponId,
    code: Option<PromotionCodeId>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(coupons::table.find((merchant.uuid(), coupon.uuid())))
        .set((
            coupons::times_redeemed.eq(coupons::times_redeemed + 1),
            coupons::updated_at.eq(at),
        ))
        .execute(conn)
        .await?;
    if let Some(code) = code {
        diesel::update(promotion_codes::table.find((merchant.uuid(), code.uuid())))
            .set((
                promotion_codes::times_redeemed.eq(promotion_codes::times_redeemed + 1),
                promotion_codes::updated_at.eq(at),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// How often the customer redeemed the code.
pub async fn customer_redemptions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    code: PromotionCodeId,
    customer: CustomerId,
) -> StoreResult<u32> {
    let n: i64 = subscription_discounts::table
        .filter(subscription_discounts::merchant_id.eq(merchant.uuid()))
        .filter(subscription_discounts::promotion_code_id.eq(code.uuid()))
        .filter(subscription_discounts::customer_id.eq(customer.uuid()))
        .count()
        .get_result(conn)
        .await?;
    u32::try_from(n).map_err(|_| StoreError::corrupt("redemption count out of range"))
}

/// Whether the customer has or had a subscription other than `except` (any status).
pub async fn subscribed_before(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    except: Option<SubscriptionId>,
) -> StoreResult<bool> {
    let mut query = subscriptions::table
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .filter(subscriptions::customer_id.eq(customer.uuid()))
        .select(subscriptions::id)
        .into_boxed();
    if let Some(s) = except {
        query = query.filter(subscriptions::id.ne(s.uuid()));
    }
    let found: Option<uuid::Uuid> = query.first(conn).await.optional()?;
    Ok(found.is_some())
}
