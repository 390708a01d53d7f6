//! Coupons and promotion codes: what merchants create, and the discount a code would
//! take off in a preview.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::billing::coupon::CouponDuration;
use tenure_domain::billing::discount::DiscountValue;
use tenure_store::repo::coupons::{StoredCoupon, StoredPromotionCode};
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;

/// How many invoices a coupon's discount applies to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CouponDurationDto {
    /// The first invoice only.
    Once,
    /// The next `duration_in_cycles` invoices (a cycle is an invoice, whatever the
    /// plan's cadence).
    Repeating,
    /// Every invoice.
    Forever,
}

/// The plans a coupon is restricted to: a plan qualifies when either list names it (or,
/// for `product_ids`, its product). Both empty: every plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppliesToDto {
    #[serde(default)]
    pub product_ids: Vec<String>,
    #[serde(default)]
    pub plan_ids: Vec<String>,
}

/// A coupon: `percent_off` or `amount_off` (+ `currency`), for a `duration`. Only the
/// name and metadata change after creation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Summer sale", "percent_off": 20, "duration": "repeating",
    "duration_in_cycles": 3, "max_redemptions": 100,
    "applies_to": {"product_ids": ["prod_01jf9z7a0ae3a8r7m2k4t5n6bc"]}}))]
pub struct CreateCoupon {
    /// Shown on invoices (default: the value, such as `20% off`).
    pub name: Option<String>,
    /// 1–100: this share of each invoice's subtotal. Not with `amount_off`.
    #[schema(minimum = 1, maximum = 100)]
    pub percent_off: Option<u32>,
    /// Minor units off each invoice, in `currency` (required with it).
    pub amount_off: Option<i64>,
    /// ISO 4217, for `amount_off`: only plans in this currency qualify.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    pub duration: CouponDurationDto,
    /// For `repeating`: how many invoices (1–120).
    #[schema(minimum = 1, maximum = 120)]
    pub duration_in_cycles: Option<u32>,
    /// Redemptions in all, over every code of the coupon.
    #[schema(minimum = 1)]
    pub max_redemptions: Option<u32>,
    /// No redemption at or after this instant (in the future).
    pub redeem_by: Option<DateTime<Utc>>,
    pub applies_to: Option<AppliesToDto>,
    /// Only customers who never had a subscription may redeem it (default false).
    pub first_time_subscribers_only: Option<bool>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The fields of a coupon that may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Winter sale"}))]
pub struct UpdateCoupon {
    pub name: Option<String>,
    /// Replaces the metadata object.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "coupon_01jf9zh4f4e3a8r7m2k4t5n6bc", "object": "coupon", "name": "Summer sale",
    "percent_off": 20, "amount_off": null, "currency": null, "duration": "repeating",
    "duration_in_cycles": 3, "max_redemptions": 100, "times_redeemed": 4, "redeem_by": null,
    "applies_to": {"product_ids": [], "plan_ids": []}, "first_time_subscribers_only": false,
    "valid": true, "deleted": false, "metadata": {}, "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z"}))]
pub struct CouponDto {
    pub id: String,
    /// Always `coupon`.
    pub object: String,
    pub name: String,
    pub percent_off: Option<u32>,
    pub amount_off: Option<i64>,
    #[schema(value_type = Option<String>, example = "EUR")]
    pub currency: Option<tenure_domain::money::Currency>,
    pub duration: CouponDurationDto,
    pub duration_in_cycles: Option<u32>,
    pub max_redemptions: Option<u32>,
    pub times_redeemed: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub redeem_by: Option<DateTime<Utc>>,
    pub applies_to: AppliesToDto,
    pub first_time_subscribers_only: bool,
    /// Whether it can still be redeemed: not deleted, not past `redeem_by`, not used up.
    pub valid: bool,
    /// Deleted: no new redemptions; discounts already granted carry on.
    pub deleted: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// What a subscriber may see of a coupon (previews are answered to the portal too): its
/// name and what it takes off for how long, never the merchant's metadata, limits or
/// redemption counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "coupon_01jf9zh4f4e3a8r7m2k4t5n6bc", "name": "Summer sale",
    "percent_off": 20, "amount_off": null, "currency": null, "duration": "repeating",
    "duration_in_cycles": 3}))]
pub struct CouponTermsDto {
    pub id: String,
    pub name: String,
    pub percent_off: Option<u32>,
    pub amount_off: Option<i64>,
    #[schema(value_type = Option<String>, example = "EUR")]
    pub currency: Option<tenure_domain::money::Currency>,
    pub duration: CouponDurationDto,
    pub duration_in_cycles: Option<u32>,
}

impl From<CouponDto> for CouponTermsDto {
    fn from(c: CouponDto) -> Self {
        Self {
            id: c.id,
            name: c.name,
            percent_off: c.percent_off,
            amount_off: c.amount_off,
            currency: c.currency,
            duration: c.duration,
            duration_in_cycles: c.duration_in_cycles,
        }
    }
}

impl CouponDto {
    /// Renders `c` as it stands at `now` (`valid`).
    pub fn render(c: &StoredCoupon, now: DateTime<Utc>) -> Self {
        let (percent_off, amount_off, currency) = match c.terms.value {
            DiscountValue::Percent(p) => (Some(p), None, None),
            DiscountValue::Amount(m) => (None, Some(m.amount), Some(m.currency)),
        };
        let (duration, cycles) = match c.terms.duration {
            CouponDuration::Once => (CouponDurationDto::Once, None),
            CouponDuration::Repeating { cycles } => (CouponDurationDto::Repeating, Some(cycles)),
            CouponDuration::Forever => (CouponDurationDto::Forever, None),
        };
        let valid = c.deleted_at.is_none()
            && c.terms.redeem_by.is_none_or(|t| now < t)
            && c.terms.max_redemptions.is_none_or(|m| c.times_redeemed < m);
        Self {
            id: c.id.to_string(),
            object: "coupon".to_owned(),
            name: c.name.clone(),
            percent_off,
            amount_off,
            currency,
            duration,
            duration_in_cycles: cycles,
            max_redemptions: c.terms.max_redemptions,
            times_redeemed: c.times_redeemed,
            redeem_by: c.terms.redeem_by,
            applies_to: AppliesToDto {
                product_ids: c.terms.product_ids.clone(),
                plan_ids: c.terms.plan_ids.clone(),
            },
            first_time_subscribers_only: c.terms.first_time_subscribers_only,
            valid,
            deleted: c.deleted_at.is_some(),
            metadata: c.metadata.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CouponFilterParams {
    /// Include deleted coupons (default false).
    pub include_deleted: Option<bool>,
}

/// A customer-facing code for a coupon. Codes are matched without case and are unique
/// among the merchant's active codes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"coupon_id": "coupon_01jf9zh4f4e3a8r7m2k4t5n6bc", "code": "SUMMER20",
    "max_redemptions_per_customer": 1, "expires_at": "2027-01-01T00:00:00Z"}))]
pub struct CreatePromotionCode {
    pub coupon_id: String,
    /// 1–64 letters, digits, `-` or `_`.
    #[schema(example = "SUMMER20")]
    pub code: String,
    /// Default true.
    pub active: Option<bool>,
    /// Redemptions of this code in all (the coupon's own limit applies too).
    #[schema(minimum = 1)]
    pub max_redemptions: Option<u32>,
    /// Redemptions by one customer (1: once per customer).
    #[schema(minimum = 1)]
    pub max_redemptions_per_customer: Option<u32>,
    /// No redemption at or after this instant (in the future).
    pub expires_at: Option<DateTime<Utc>>,
    /// Only customers who never had a subscription (default false).
    pub first_time_subscribers_only: Option<bool>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The fields of a promotion code that may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub struct UpdatePromotionCode {
    /// Reactivating answers 409 `promotion_code_taken` while another active code holds
    /// the same word.
    pub active: Option<bool>,
    /// Replaces the metadata object.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PromotionCodeDto {
    pub id: String,
    /// Always `promotion_code`.
    pub object: String,
    /// As the merchant wrote it.
    pub code: String,
    pub coupon: CouponDto,
    pub active: bool,
    pub max_redemptions: Option<u32>,
    pub max_redemptions_per_customer: Option<u32>,
    pub times_redeemed: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub first_time_subscribers_only: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl PromotionCodeDto {
    pub fn render(c: &StoredPromotionCode, coupon: &StoredCoupon, now: DateTime<Utc>) -> Self {
        Self {
            id: c.id.to_string(),
            object: "promotion_code".to_owned(),
            code: c.code.clone(),
            coupon: CouponDto::render(coupon, now),
            active: c.limits.active,
            max_redemptions: c.limits.max_redemptions,
            max_redemptions_per_customer: c.limits.max_redemptions_per_customer,
            times_redeemed: c.times_redeemed,
            expires_at: c.limits.expires_at,
            first_time_subscribers_only: c.limits.first_time_subscribers_only,
            metadata: c.metadata.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PromotionCodeFilterParams {
    /// Only codes of this coupon (coupon_…).
    pub coupon_id: Option<String>,
    /// Only codes of this word (any case).
    pub code: Option<String>,
}

/// What a promotion code would take off, in a preview.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiscountPreviewDto {
    /// The code as the merchant wrote it.
    pub promotion_code: String,
    pub coupon: CouponTermsDto,
    /// The invoice the preview is about, before the code: its plan and proration lines.
    pub subtotal: MoneyDto,
    /// What the code takes off that invoice (after the subscription's earlier discounts).
    pub amount_off: MoneyDto,
    /// That invoice's total with every discount, the code's included.
    pub total: MoneyDto,
}
