use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::billing::period::Interval;
use tenure_domain::catalog::{Plan, Product, Variant};
use tenure_domain::policy::{CancellationMode, ImmediateCancelTiming, NoticeRule, PortalPolicy};
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;

/// What a subscriber may do for themselves on this product's subscriptions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalPolicyDto {
    pub allow_pause: bool,
    pub allow_cancel: bool,
    #[schema(example = "request")]
    pub cancellation_mode: CancellationModeDto,
    #[schema(example = "now")]
    pub immediate_cancel_timing: ImmediateCancelTimingDto,
    #[schema(example = "later_of_notice_and_period_end")]
    pub notice_rule: NoticeRuleDto,
    pub notice_period_days: u32,
    pub max_pause_days: Option<u32>,
    pub keep_access_while_paused: bool,
    pub allow_plan_change: bool,
    /// Plans a subscriber may switch to; empty means every active plan of the product.
    pub switchable_plan_ids: Vec<String>,
    /// Whether a subscriber may skip coming renewals (off by default).
    pub allow_skip: bool,
    /// The most renewals a subscriber may skip in a row, counting those passed since the
    /// last billed renewal; null for no limit (12 ahead at most, for anyone).
    pub max_consecutive_skips: Option<u32>,
    /// Whether a subscriber may bring the next renewal forward to now
    /// (`POST …/send_now`; off by default).
    pub allow_send_now: bool,
}

/// `request`: reason, support ticket, notice period. `immediate`: confirm and end.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancellationModeDto {
    Request,
    Immediate,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImmediateCancelTimingDto {
    Now,
    PeriodEnd,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeRuleDto {
    LaterOfNoticeAndPeriodEnd,
    NoticeOnly,
}

impl From<CancellationMode> for CancellationModeDto {
    fn from(m: CancellationMode) -> Self {
        match m {
            CancellationMode::Request => Self::Request,
            CancellationMode::Immediate => Self::Immediate,
        }
    }
}
impl From<CancellationModeDto> for CancellationMode {
    fn from(m: CancellationModeDto) -> Self {
        match m {
            CancellationModeDto::Request => Self::Request,
            CancellationModeDto::Immediate => Self::Immediate,
        }
    }
}
impl From<ImmediateCancelTiming> for ImmediateCancelTimingDto {
    fn from(m: ImmediateCancelTiming) -> Self {
        match m {
            ImmediateCancelTiming::Now => Self::Now,
            ImmediateCancelTiming::PeriodEnd => Self::PeriodEnd,
        }
    }
}
impl From<ImmediateCancelTimingDto> for ImmediateCancelTiming {
    fn from(m: ImmediateCancelTimingDto) -> Self {
        match m {
            ImmediateCancelTimingDto::Now => Self::Now,
            ImmediateCancelTimingDto::PeriodEnd => Self::PeriodEnd,
        }
    }
}
impl From<NoticeRule> for NoticeRuleDto {
    fn from(m: NoticeRule) -> Self {
        match m {
            NoticeRule::LaterOfNoticeAndPeriodEnd => Self::LaterOfNoticeAndPeriodEnd,
            NoticeRule::NoticeOnly => Self::NoticeOnly,
        }
    }
}
impl From<NoticeRuleDto> for NoticeRule {
    fn from(m: NoticeRuleDto) -> Self {
        match m {
            NoticeRuleDto::LaterOfNoticeAndPeriodEnd => Self::LaterOfNoticeAndPeriodEnd,
            NoticeRuleDto::NoticeOnly => Self::NoticeOnly,
        }
    }
}

impl From<&PortalPolicy> for PortalPolicyDto {
    fn from(p: &PortalPolicy) -> Self {
        Self {
            allow_pause: p.allow_pause,
            allow_cancel: p.allow_cancel,
            cancellation_mode: p.cancellation_mode.into(),
            immediate_cancel_timing: p.immediate_cancel_timing.into(),
            notice_rule: p.notice_rule.into(),
            notice_period_days: p.notice_period_days,
            max_pause_days: p.max_pause_days,
            keep_access_while_paused: p.keep_access_while_paused,
            allow_plan_change: p.allow_plan_change,
            switchable_plan_ids: p
                .switchable_plan_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
            allow_skip: p.allow_skip,
            max_consecutive_skips: p.max_consecutive_skips,
            allow_send_now: p.allow_send_now,
        }
    }
}

/// Portal policy fields to set; omitted fields keep their current (or default) value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"allow_pause": true, "cancellation_mode": "request", "notice_period_days": 30}))]
pub struct PortalPolicyInput {
    pub allow_pause: Option<bool>,
    pub allow_cancel: Option<bool>,
    #[schema(example = "request")]
    pub cancellation_mode: Option<CancellationModeDto>,
    #[schema(example = "now")]
    pub immediate_cancel_timing: Option<ImmediateCancelTimingDto>,
    #[schema(example = "later_of_notice_and_period_end")]
    pub notice_rule: Option<NoticeRuleDto>,
    // Bounds written out because utoipa takes only literals; the openapi tests compare
    // them with the domain constants.
    #[schema(maximum = 366)]
    pub notice_period_days: Option<u32>,
    /// Null for no limit.
    #[serde(default, deserialize_with = "super::customers::double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1098)]
    pub max_pause_days: Option<Option<u32>>,
    pub keep_access_while_paused: Option<bool>,
    pub allow_plan_change: Option<bool>,
    /// Plans of this product a subscriber may switch to; empty means every active plan
    /// of the product. Each must be a plan of this product (so a new product, which has
    /// none yet, takes an empty list: set it once the plans exist).
    pub switchable_plan_ids: Option<Vec<String>>,
    pub allow_skip: Option<bool>,
    /// Null for no limit.
    #[serde(default, deserialize_with = "super::customers::double_option")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 12)]
    pub max_consecutive_skips: Option<Option<u32>>,
    pub allow_send_now: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Coffee club", "description": "Fresh beans every month",
    "portal_policy": {"allow_pause": true, "cancellation_mode": "request", "notice_period_days": 14}}))]
pub struct CreateProduct {
    pub name: String,
    pub description: Option<String>,
    pub portal_policy: Option<PortalPolicyInput>,
    /// Fulfilled physically (default false).
    pub shippable: Option<bool>,
    /// The fewest units one subscription may hold (default 1).
    #[schema(minimum = 1, maximum = 10000)]
    pub min_quantity: Option<u32>,
    /// The most units one subscription may hold (default 1: quantity fixed).
    #[schema(minimum = 1, maximum = 10000)]
    pub max_quantity: Option<u32>,
    /// Other products (`prod_…`, at most 20) whose plans this product's subscriptions may
    /// change to, merchant and customer alike (default none: plans of this product only).
    #[schema(max_items = 20)]
    pub swappable_product_ids: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Coffee club (new)", "portal_policy": {"allow_pause": false}}))]
pub struct UpdateProduct {
    pub name: Option<String>,
    /// Null removes the description.
    #[serde(default, deserialize_with = "super::customers::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub portal_policy: Option<PortalPolicyInput>,
    pub shippable: Option<bool>,
    /// Applies to new quantities; existing subscriptions keep theirs.
    #[schema(minimum = 1, maximum = 10000)]
    pub min_quantity: Option<u32>,
    #[schema(minimum = 1, maximum = 10000)]
    pub max_quantity: Option<u32>,
    /// Replaces the list; applies to coming plan changes (a subscription already moved
    /// stays where it is).
    #[schema(max_items = 20)]
    pub swappable_product_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc", "object": "product", "name": "Coffee club",
    "description": null, "active": true, "portal_policy": {"allow_pause": true, "allow_cancel": true,
    "cancellation_mode": "request", "immediate_cancel_timing": "now", "notice_rule": "later_of_notice_and_period_end",
    "notice_period_days": 14, "max_pause_days": 90, "keep_access_while_paused": false, "allow_plan_change": true,
    "switchable_plan_ids": [], "allow_skip": true, "max_consecutive_skips": 2}, "shippable": true, "min_quantity": 1, "max_quantity": 6, "swappable_product_ids": ["prod_01jf9z7r2ce3a8r7m2k4t5n6bc"], "archived_at": null, "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct ProductDto {
    #[schema(example = "prod_01jf9z7q6ve3a8r7m2k4t5n6bc")]
    pub id: String,
    /// Always `product`.
    pub object: String,
    pub name: String,
    pub description: Option<String>,
    /// False once archived.
    pub active: bool,
    pub portal_policy: PortalPolicyDto,
    /// Fulfilled physically: each paid period ships.
    pub shippable: bool,
    /// How many units one subscription may hold, merchant and customer alike.
    pub min_quantity: u32,
    pub max_quantity: u32,
    /// Other products whose plans this product's subscriptions may change to (not
    /// symmetric): a swap across products. Plans of this product are always swappable.
    #[serde(default)]
    pub swappable_product_ids: Vec<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub archived_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Product> for ProductDto {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.to_string(),
            object: "product".to_owned(),
            name: p.name.clone(),
            description: p.description.clone(),
            active: p.archived_at.is_none(),
            portal_policy: (&p.portal_policy).into(),
            shippable: p.shippable,
            min_quantity: p.quantity_limits.min(),
            max_quantity: p.quantity_limits.max(),
            swappable_product_ids: p
                .swappable_product_ids
                .iter()
                .map(ToString::to_string)
                .collect(),
            archived_at: p.archived_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IntervalDto {
    Day,
    Week,
    Month,
    Year,
}

impl From<Interval> for IntervalDto {
    fn from(i: Interval) -> Self {
        match i {
            Interval::Day => Self::Day,
            Interval::Week => Self::Week,
            Interval::Month => Self::Month,
            Interval::Year => Self::Year,
        }
    }
}

impl From<IntervalDto> for Interval {
    fn from(i: IntervalDto) -> Self {
        match i {
            IntervalDto::Day => Self::Day,
            IntervalDto::Week => Self::Week,
            IntervalDto::Month => Self::Month,
            IntervalDto::Year => Self::Year,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc", "name": "Monthly",
    "price": {"amount": 1999, "currency": "EUR"}, "interval": "month", "interval_count": 1, "trial_days": 14}))]
pub struct CreatePlan {
    pub product_id: String,
    pub name: String,
    pub price: PriceInput,
    pub interval: IntervalDto,
    /// Bill every N intervals (default 1).
    #[schema(minimum = 1, maximum = 60)]
    pub interval_count: Option<u32>,
    /// Free days before the first charge (default 0).
    #[schema(maximum = 730)]
    pub trial_days: Option<u32>,
    /// What the plan ships, when the product's plans are variants (default none).
    pub variant: Option<VariantInput>,
}

/// A variant to set on a plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Dark roast 250 g", "sku": "COF-DARK-250",
    "options": {"roast": "dark", "size": "250 g"}}))]
pub struct VariantInput {
    /// How subscribers and fulfilment call it (at most 200 characters).
    pub name: String,
    /// The merchant's stock-keeping unit (at most 100 characters, no spaces). Plans of one
    /// product may share it (one per cadence or currency); another product's may not.
    pub sku: Option<String>,
    /// At most 3 options, each name at most 50 characters and value at most 100.
    pub options: Option<BTreeMap<String, String>>,
}

/// What a plan ships: one variant of its product's goods.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Dark roast 250 g", "sku": "COF-DARK-250",
    "options": {"roast": "dark", "size": "250 g"}}))]
pub struct VariantDto {
    pub name: String,
    pub sku: Option<String>,
    pub options: BTreeMap<String, String>,
}

impl From<&Variant> for VariantDto {
    fn from(v: &Variant) -> Self {
        Self {
            name: v.name.clone(),
            sku: v.sku.clone(),
            options: v.options.clone(),
        }
    }
}

/// A plan's price: like a money amount, but never negative and capped.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct PriceInput {
    /// Minor units: 1999 is 19.99 EUR, 500 is 500 JPY.
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64)]
    pub amount: i64,
    #[schema(value_type = String, example = "EUR")]
    pub currency: tenure_domain::money::Currency,
}

/// Prices are immutable once customers may have subscribed; create a new plan instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Monthly (legacy)", "active": false}))]
pub struct UpdatePlan {
    pub name: Option<String>,
    pub active: Option<bool>,
    #[schema(maximum = 730)]
    pub trial_days: Option<u32>,
    /// Replaces the variant; null removes it. Orders already made keep theirs.
    #[serde(default, deserialize_with = "super::customers::double_option")]
    #[schema(value_type = Option<VariantInput>)]
    pub variant: Option<Option<VariantInput>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "object": "plan", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    "name": "Monthly", "price": {"amount": 1999, "currency": "EUR"}, "interval": "month", "interval_count": 1,
    "trial_days": 14, "active": true, "stock": {"status": "in_stock", "expected_at": null},
    "variant": {"name": "Dark roast 250 g", "sku": "COF-DARK-250",
    "options": {"roast": "dark", "size": "250 g"}}, "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct PlanDto {
    pub id: String,
    /// Always `plan`.
    pub object: String,
    pub product_id: String,
    pub name: String,
    pub price: MoneyDto,
    pub interval: IntervalDto,
    pub interval_count: u32,
    pub trial_days: u32,
    pub active: bool,
    /// Whether it can ship; changed with `POST /v1/plans/{id}/stock`.
    pub stock: crate::dto::stock::StockDto,
    /// What the plan ships, when its product's plans are variants; null otherwise.
    #[serde(default)]
    pub variant: Option<VariantDto>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Plan> for PlanDto {
    fn from(p: &Plan) -> Self {
        Self {
            id: p.id.to_string(),
            object: "plan".to_owned(),
            product_id: p.product_id.to_string(),
            name: p.name.clone(),
            price: p.price.into(),
            interval: p.interval.into(),
            interval_count: p.interval_count,
            trial_days: p.trial_days,
            active: p.active,
            stock: p.stock.into(),
            variant: p.variant.as_ref().map(VariantDto::from),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanFilterParams {
    /// Only plans of this product.
    pub product_id: Option<String>,
    /// Only active (true) or archived (false) plans.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductFilterParams {
    /// Include archived products (default false).
    pub include_archived: Option<bool>,
}

/// A plan a subscriber may choose, with its product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalPlanDto {
    #[serde(flatten)]
    pub plan: PlanDto,
    pub product_name: String,
    /// Whether the product ships something each period: its subscriptions have a shipping
    /// address and orders, and skipping a renewal skips a delivery.
    pub shippable: bool,
}
