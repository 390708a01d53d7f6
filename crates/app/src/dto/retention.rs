//! Retention offers: what merchants configure, what the portal shows a customer who
//! starts a cancellation, and the outcomes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::context::Segment;
use tenure_domain::money::Currency;
use tenure_domain::retention::{Eligibility, LtvRange, OfferKind, OutcomeStatus};
use tenure_store::repo::discounts::{DiscountValue, StoredDiscount};
use tenure_store::repo::retention::{OfferOutcome, OfferStats, StoredOffer};
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;
use super::subscriptions::{CancellationReasonDto, PortalSubscriptionDto};
use super::support::CancellationRequestDto;

/// What accepting the offer does (`type` selects the variant).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OfferKindDto {
    /// `percent` (1..100) off the next `cycles` (1..36) invoices.
    DiscountPercent {
        #[schema(minimum = 1, maximum = 100)]
        percent: u32,
        #[schema(minimum = 1, maximum = 36)]
        cycles: u32,
    },
    /// A fixed `amount` off the next `cycles` invoices; shown only to subscriptions whose
    /// plan is in the same currency.
    DiscountAmount {
        amount: MoneyDto,
        #[schema(minimum = 1, maximum = 36)]
        cycles: u32,
    },
    /// Pause now for `days` (1..365) instead of cancelling.
    PauseInstead {
        #[schema(minimum = 1, maximum = 365)]
        days: u32,
    },
    /// Switch to `plan_id` (same product and currency as the subscription's plan).
    SwitchPlan { plan_id: String },
    /// Extend a running trial by `days` (1..365); trialing subscriptions only.
    ExtendTrial {
        #[schema(minimum = 1, maximum = 365)]
        days: u32,
    },
}

impl From<OfferKindDto> for OfferKind {
    fn from(k: OfferKindDto) -> Self {
        match k {
            OfferKindDto::DiscountPercent { percent, cycles } => {
                Self::DiscountPercent { percent, cycles }
            }
            OfferKindDto::DiscountAmount { amount, cycles } => Self::DiscountAmount {
                amount: amount.into(),
                cycles,
            },
            OfferKindDto::PauseInstead { days } => Self::PauseInstead { days },
            OfferKindDto::SwitchPlan { plan_id } => Self::SwitchPlan { plan_id },
            OfferKindDto::ExtendTrial { days } => Self::ExtendTrial { days },
        }
    }
}

impl From<&OfferKind> for OfferKindDto {
    fn from(k: &OfferKind) -> Self {
        match k.clone() {
            OfferKind::DiscountPercent { percent, cycles } => {
                Self::DiscountPercent { percent, cycles }
            }
            OfferKind::DiscountAmount { amount, cycles } => Self::DiscountAmount {
                amount: amount.into(),
                cycles,
            },
            OfferKind::PauseInstead { days } => Self::PauseInstead { days },
            OfferKind::SwitchPlan { plan_id } => Self::SwitchPlan { plan_id },
            OfferKind::ExtendTrial { days } => Self::ExtendTrial { days },
        }
    }
}

/// An LTV range (inclusive, minor units) in one currency; no LTV there counts as 0.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LtvRangeDto {
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// Who may see the offer: every condition that is set must hold; an empty list or an
/// absent bound does not restrict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
#[schema(example = json!({"min_tenure_days": 90, "ltv": {"currency": "EUR", "min": 10000, "max": null},
    "tags": ["vip"], "segments": [], "reasons": ["too_expensive"], "plan_ids": []}))]
pub struct EligibilityDto {
    /// Tenure in whole days, at least.
    pub min_tenure_days: Option<i64>,
    /// Tenure in whole days, at most.
    pub max_tenure_days: Option<i64>,
    pub ltv: Option<LtvRangeDto>,
    /// The customer carries any of these tags.
    pub tags: Vec<String>,
    /// The customer is in any of these segments (`new`, `loyal`, `high_ltv`, `at_risk`,
    /// `paused`, `churned`). A customer who starts a cancellation is `at_risk`.
    // The domain's `Segment` serializes as `SegmentDto` does (both snake_case).
    #[schema(value_type = Vec<super::context::SegmentDto>, example = json!(["loyal"]))]
    pub segments: Vec<Segment>,
    /// The cancellation reason is one of these.
    pub reasons: Vec<CancellationReasonDto>,
    /// The subscription's plan is one of these.
    pub plan_ids: Vec<String>,
}

impl From<EligibilityDto> for Eligibility {
    fn from(e: EligibilityDto) -> Self {
        Self {
            min_tenure_days: e.min_tenure_days,
            max_tenure_days: e.max_tenure_days,
            ltv: e.ltv.map(|l| LtvRange {
                currency: l.currency.code().to_owned(),
                min: l.min,
                max: l.max,
            }),
            tags: e.tags,
            segments: e.segments,
            reasons: e.reasons.into_iter().map(Into::into).collect(),
            plan_ids: e.plan_ids,
        }
    }
}

impl From<&Eligibility> for EligibilityDto {
    fn from(e: &Eligibility) -> Self {
        Self {
            min_tenure_days: e.min_tenure_days,
            max_tenure_days: e.max_tenure_days,
            ltv: e.ltv.as_ref().and_then(|l| {
                Some(LtvRangeDto {
                    currency: l.currency.parse().ok()?,
                    min: l.min,
                    max: l.max,
                })
            }),
            tags: e.tags.clone(),
            segments: e.segments.clone(),
            reasons: e.reasons.iter().map(|r| (*r).into()).collect(),
            plan_ids: e.plan_ids.clone(),
        }
    }
}

/// How often the offer was shown (every presentation), accepted and declined.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct OfferStatsDto {
    pub presented: i64,
    pub accepted: i64,
    pub declined: i64,
}

impl From<OfferStats> for OfferStatsDto {
    fn from(s: OfferStats) -> Self {
        Self {
            presented: s.presented,
            accepted: s.accepted,
            declined: s.declined,
        }
    }
}

/// A merchant's retention offer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "roff_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "retention_offer",
    "name": "20% off for 3 months", "kind": {"type": "discount_percent", "percent": 20, "cycles": 3},
    "eligibility": {"min_tenure_days": 90, "max_tenure_days": null, "ltv": null, "tags": [],
    "segments": [], "reasons": ["too_expensive"], "plan_ids": []},
    "priority": 10, "active": true, "stats": {"presented": 12, "accepted": 3, "declined": 7},
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct RetentionOfferDto {
    pub id: String,
    /// Always `retention_offer`.
    pub object: String,
    pub name: String,
    pub kind: OfferKindDto,
    pub eligibility: EligibilityDto,
    /// Higher first; equal priorities are ordered by value to the customer.
    pub priority: i32,
    /// Inactive offers are never shown.
    pub active: bool,
    pub stats: OfferStatsDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl RetentionOfferDto {
    pub fn render(o: &StoredOffer, stats: OfferStats) -> Self {
        Self {
            id: o.id.to_string(),
            object: "retention_offer".to_owned(),
            name: o.name.clone(),
            kind: (&o.kind).into(),
            eligibility: (&o.eligibility).into(),
            priority: o.priority,
            active: o.active,
            stats: stats.into(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "20% off for 3 months",
    "kind": {"type": "discount_percent", "percent": 20, "cycles": 3},
    "eligibility": {"min_tenure_days": 90, "reasons": ["too_expensive"]}, "priority": 10}))]
pub struct CreateRetentionOffer {
    pub name: String,
    pub kind: OfferKindDto,
    #[serde(default)]
    pub eligibility: EligibilityDto,
    /// Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Default true.
    pub active: Option<bool>,
}

/// Changes the given fields; `eligibility` is replaced as a whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"priority": 20, "active": true}))]
pub struct UpdateRetentionOffer {
    pub name: Option<String>,
    pub kind: Option<OfferKindDto>,
    pub eligibility: Option<EligibilityDto>,
    pub priority: Option<i32>,
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetentionOfferFilterParams {
    /// Include deactivated offers (default false).
    pub include_inactive: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatusDto {
    Presented,
    Accepted,
    Declined,
}

impl From<OutcomeStatus> for OutcomeStatusDto {
    fn from(o: OutcomeStatus) -> Self {
        match o {
            OutcomeStatus::Presented => Self::Presented,
            OutcomeStatus::Accepted => Self::Accepted,
            OutcomeStatus::Declined => Self::Declined,
        }
    }
}

/// An offer as the portal shows it to the customer who is cancelling (no eligibility
/// rules or priorities).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "roff_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "retention_offer",
    "name": "20% off for 3 months", "kind": {"type": "discount_percent", "percent": 20, "cycles": 3},
    "outcome": "presented", "presented_at": "2026-11-25T10:00:00Z", "decided_at": null}))]
pub struct PresentedOfferDto {
    /// The offer's id: accept or decline it under the cancellation request.
    pub id: String,
    /// Always `retention_offer`.
    pub object: String,
    pub name: String,
    pub kind: OfferKindDto,
    pub outcome: OutcomeStatusDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub presented_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub decided_at: Option<DateTime<Utc>>,
}

impl PresentedOfferDto {
    pub fn render(o: &StoredOffer, outcome: &OfferOutcome) -> Self {
        Self {
            id: o.id.to_string(),
            object: "retention_offer".to_owned(),
            name: o.name.clone(),
            kind: (&o.kind).into(),
            outcome: outcome.outcome.into(),
            presented_at: outcome.created_at,
            decided_at: outcome.decided_at,
        }
    }
}

/// The offers presented for a cancellation request and still open, best first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PresentedOffersDto {
    pub data: Vec<PresentedOfferDto>,
}

/// One presentation of an offer and its outcome (the `data.object` of
/// `retention_offer.accepted` and `retention_offer.declined`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferOutcomeDto {
    pub id: String,
    /// Always `retention_offer_outcome`.
    pub object: String,
    pub offer_id: String,
    pub customer_id: String,
    pub subscription_id: String,
    pub cancellation_request_id: Option<String>,
    pub reason: Option<CancellationReasonDto>,
    pub outcome: OutcomeStatusDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<&OfferOutcome> for OfferOutcomeDto {
    fn from(o: &OfferOutcome) -> Self {
        Self {
            id: o.id.to_string(),
            object: "retention_offer_outcome".to_owned(),
            offer_id: o.offer_id.to_string(),
            customer_id: o.customer_id.to_string(),
            subscription_id: o.subscription_id.to_string(),
            cancellation_request_id: o.cancellation_request_id.map(|r| r.to_string()),
            reason: o.reason.map(Into::into),
            outcome: o.outcome.into(),
            created_at: o.created_at,
            decided_at: o.decided_at,
        }
    }
}

/// A discount granted to a subscription (by an accepted offer or a redeemed promotion
/// code); the renewal engine applies it to the next `cycles` invoices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiscountDto {
    pub id: String,
    /// Always `discount`.
    pub object: String,
    pub subscription_id: String,
    pub offer_id: Option<String>,
    /// Set for a percentage discount.
    pub percent: Option<u32>,
    /// Set for a fixed-amount discount.
    pub amount: Option<MoneyDto>,
    pub cycles: u32,
    pub cycles_remaining: u32,
    /// The coupon it was granted from (`coupon_…`; a retention offer's is internal).
    pub coupon_id: String,
    /// The promotion code redeemed for it (`promo_…`), if any.
    pub promotion_code_id: Option<String>,
    /// Applies to every invoice (a `forever` coupon): `cycles` are then not used up.
    pub forever: bool,
    /// How its invoice lines read: `Discount: <description>: 20% off`.
    pub description: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&StoredDiscount> for DiscountDto {
    fn from(d: &StoredDiscount) -> Self {
        let (percent, amount) = match &d.value {
            DiscountValue::Percent(p) => (Some(*p), None),
            DiscountValue::Amount(m) => (None, Some(MoneyDto::from(*m))),
        };
        Self {
            id: tenure_domain::ids::DiscountId::from_uuid(d.id).to_string(),
            object: "discount".to_owned(),
            subscription_id: d.subscription_id.to_string(),
            offer_id: d
                .offer_id
                .map(|o| tenure_domain::ids::RetentionOfferId::from_uuid(o).to_string()),
            percent,
            amount,
            cycles: d.cycles,
            cycles_remaining: d.cycles_remaining,
            coupon_id: d.coupon_id.to_string(),
            promotion_code_id: d.promotion_code_id.map(|c| c.to_string()),
            forever: d.forever,
            description: d.description.clone(),
            created_at: d.created_at,
        }
    }
}

/// The result of accepting an offer: the subscription after it, the withdrawn
/// cancellation request, the accepted offer and, for a discount, what was granted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfferAcceptedDto {
    pub subscription: PortalSubscriptionDto,
    pub cancellation_request: CancellationRequestDto,
    pub offer: PresentedOfferDto,
    pub discount: Option<DiscountDto>,
}
