//! Subscriptions, their scheduled changes, the portal's available actions and plan-change
//! previews.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenure_domain::billing::period::Period;
use tenure_domain::billing::proration::{ProrationLine, ProrationLineKind};
use tenure_domain::ids::RetentionOfferId;
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    AccessEnd, ActivePause, Actor, AvailableActions, CancelTiming, CancellationReason, OnResume,
    PauseEnd, PauseStart, PlanChangePreview, PlanChangeTiming, QuantityChangePreview,
    ScheduledChange, ScheduledChangeKind, SubscriptionStatus,
};
use tenure_store::repo::discounts::{DiscountValue, StoredDiscount};
use tenure_store::repo::subscriptions::StoredSubscription;
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;
use super::catalog::{CancellationModeDto, IntervalDto};
use crate::error::AppError;

/// Who asked for a change: the subscriber, the merchant, or Tenure itself (a scheduled
/// change applied by the engine, dunning that ends in cancellation).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActorDto {
    Customer,
    Merchant,
    System,
}

impl From<Actor> for ActorDto {
    fn from(a: Actor) -> Self {
        match a {
            Actor::Customer => Self::Customer,
            Actor::Merchant => Self::Merchant,
            Actor::System => Self::System,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatusDto {
    Trialing,
    Active,
    PastDue,
    Paused,
    Canceled,
    Unpaid,
    /// Created, its first invoice not paid yet: no access until it is.
    Incomplete,
    /// The first invoice was not paid within 23 hours: ended, nothing owed.
    IncompleteExpired,
}

impl From<SubscriptionStatus> for SubscriptionStatusDto {
    fn from(s: SubscriptionStatus) -> Self {
        match s {
            SubscriptionStatus::Trialing => Self::Trialing,
            SubscriptionStatus::Active => Self::Active,
            SubscriptionStatus::PastDue => Self::PastDue,
            SubscriptionStatus::Paused => Self::Paused,
            SubscriptionStatus::Canceled => Self::Canceled,
            SubscriptionStatus::Unpaid => Self::Unpaid,
            SubscriptionStatus::Incomplete => Self::Incomplete,
            SubscriptionStatus::IncompleteExpired => Self::IncompleteExpired,
        }
    }
}

impl From<SubscriptionStatusDto> for SubscriptionStatus {
    fn from(s: SubscriptionStatusDto) -> Self {
        match s {
            SubscriptionStatusDto::Trialing => Self::Trialing,
            SubscriptionStatusDto::Active => Self::Active,
            SubscriptionStatusDto::PastDue => Self::PastDue,
            SubscriptionStatusDto::Paused => Self::Paused,
            SubscriptionStatusDto::Canceled => Self::Canceled,
            SubscriptionStatusDto::Unpaid => Self::Unpaid,
            SubscriptionStatusDto::Incomplete => Self::Incomplete,
            SubscriptionStatusDto::IncompleteExpired => Self::IncompleteExpired,
        }
    }
}

/// The fixed taxonomy of cancellation reasons.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReasonDto {
    TooExpensive,
    MissingFeatures,
    SwitchedService,
    Unused,
    CustomerService,
    TooComplex,
    LowQuality,
    Other,
}

impl From<CancellationReasonDto> for CancellationReason {
    fn from(r: CancellationReasonDto) -> Self {
        match r {
            CancellationReasonDto::TooExpensive => Self::TooExpensive,
            CancellationReasonDto::MissingFeatures => Self::MissingFeatures,
            CancellationReasonDto::SwitchedService => Self::SwitchedService,
            CancellationReasonDto::Unused => Self::Unused,
            CancellationReasonDto::CustomerService => Self::CustomerService,
            CancellationReasonDto::TooComplex => Self::TooComplex,
            CancellationReasonDto::LowQuality => Self::LowQuality,
            CancellationReasonDto::Other => Self::Other,
        }
    }
}

impl From<CancellationReason> for CancellationReasonDto {
    fn from(r: CancellationReason) -> Self {
        match r {
            CancellationReason::TooExpensive => Self::TooExpensive,
            CancellationReason::MissingFeatures => Self::MissingFeatures,
            CancellationReason::SwitchedService => Self::SwitchedService,
            CancellationReason::Unused => Self::Unused,
            CancellationReason::CustomerService => Self::CustomerService,
            CancellationReason::TooComplex => Self::TooComplex,
            CancellationReason::LowQuality => Self::LowQuality,
            CancellationReason::Other => Self::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PeriodDto {
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub start: DateTime<Utc>,
    /// Exclusive.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub end: DateTime<Utc>,
}

impl From<Period> for PeriodDto {
    fn from(p: Period) -> Self {
        Self {
            start: p.start,
            end: p.end,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnResumeDto {
    /// A full period starts at the resume instant (default).
    ResetAnchor,
    /// A stub period runs to the next boundary of the original schedule.
    KeepAnchor,
}

impl From<OnResume> for OnResumeDto {
    fn from(o: OnResume) -> Self {
        match o {
            OnResume::ResetAnchor => Self::ResetAnchor,
            OnResume::KeepAnchor => Self::KeepAnchor,
        }
    }
}

impl From<OnResumeDto> for OnResume {
    fn from(o: OnResumeDto) -> Self {
        match o {
            OnResumeDto::ResetAnchor => Self::ResetAnchor,
            OnResumeDto::KeepAnchor => Self::KeepAnchor,
        }
    }
}

/// The running pause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseDto {
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub started_at: DateTime<Utc>,
    /// When the automatic resume is due; null for an open-ended pause.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub resumes_at: Option<DateTime<Utc>>,
    pub on_resume: OnResumeDto,
    /// Whether access continues throughout the pause.
    pub keep_access: bool,
    /// The end of the period paid before the pause; access continues until then.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub paid_through: DateTime<Utc>,
    /// A customer may resume only their own pause.
    pub requested_by: ActorDto,
}

impl From<&ActivePause> for PauseDto {
    fn from(p: &ActivePause) -> Self {
        Self {
            started_at: p.started_at,
            resumes_at: p.resumes_at,
            on_resume: p.on_resume.into(),
            keep_access: p.keep_access,
            paid_through: p.paid_through,
            requested_by: p.requested_by.into(),
        }
    }
}

/// Who cancelled a subscription and why, as they gave it with the cancellation.
/// `null` on subscriptions with no cancellation pending or made (and on those cancelled
/// before Tenure kept these).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "too_expensive", "message": "Moving abroad in spring.",
    "requested_by": "customer"}))]
pub struct CancellationDetailsDto {
    pub reason: Option<CancellationReasonDto>,
    /// The message given with the cancellation (trimmed), if any.
    pub message: Option<String>,
    pub requested_by: ActorDto,
}

wire_enum! {
    /// `pause`, `resume`, `cancel` or `plan_change`.
    ChangeTypeDto from tenure_domain::subscription::scheduled::ChangeType {
        Pause, Resume, Cancel, PlanChange
    }
}

/// A coming renewal that will pass without an invoice or a charge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"renewal_at": "2026-12-25T10:00:00Z", "requested_by": "customer",
    "requested_at": "2026-12-01T08:00:00Z"}))]
pub struct SkippedRenewalDto {
    /// The renewal that is skipped: the period starting then is not billed.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub renewal_at: DateTime<Utc>,
    pub requested_by: ActorDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub requested_at: DateTime<Utc>,
}

wire_enum! {
    /// `keep`: the next period of the schedule is billed now and the anchor stays;
    /// `reset`: a period starts now, billed in full, and the schedule follows it.
    SendNowAnchorDto from tenure_domain::subscription::SendNowAnchor { Keep, Reset }
}

impl From<SendNowAnchorDto> for tenure_domain::subscription::SendNowAnchor {
    fn from(value: SendNowAnchorDto) -> Self {
        match value {
            SendNowAnchorDto::Keep => Self::Keep,
            SendNowAnchorDto::Reset => Self::Reset,
        }
    }
}

/// The latest "send now", shown until the next renewal: the period it billed now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"period": {"start": "2026-12-25T10:00:00Z", "end": "2027-01-25T10:00:00Z"},
    "anchor": "keep", "requested_by": "customer", "requested_at": "2026-12-01T08:00:00Z"}))]
pub struct SentNowDto {
    /// The period invoiced by the send now: with `keep`, the next one of the schedule
    /// (its renewal bills nothing); with `reset`, the current one.
    pub period: PeriodDto,
    pub anchor: SendNowAnchorDto,
    pub requested_by: ActorDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub requested_at: DateTime<Utc>,
}

/// A change that will happen to the subscription.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "sch_01jf9zc0f4e3a8r7m2k4t5n6bc", "type": "plan_change",
    "due_at": "2026-12-25T10:00:00Z", "requested_by": "customer",
    "details": {"plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "price": {"amount": 999, "currency": "EUR"},
                "interval": "month", "interval_count": 1}, "removable": true}))]
pub struct ScheduledChangeDto {
    pub id: String,
    #[serde(rename = "type")]
    pub change_type: ChangeTypeDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub due_at: DateTime<Utc>,
    pub requested_by: ActorDto,
    /// What the change does: for `pause` its `resumes_at`, `ends` and `on_resume`; for
    /// `cancel` the `reason`, `cancellation_request_id` and `access`; for `plan_change`
    /// the new `plan_id`, `price` and cadence; nothing for `resume`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Whether the caller may remove it (DELETE …/scheduled_changes/{id}).
    pub removable: bool,
}

fn pause_end_json(end: PauseEnd) -> serde_json::Value {
    match end {
        PauseEnd::At { date } => json!({"type": "at", "date": date}),
        PauseEnd::AfterCycles { cycles } => json!({"type": "after_cycles", "cycles": cycles}),
        PauseEnd::OpenEnded => json!({"type": "open_ended"}),
    }
}

fn details(change: &ScheduledChange) -> serde_json::Value {
    match &change.kind {
        ScheduledChangeKind::Pause {
            ends,
            resumes_at,
            on_resume,
            keep_access,
        } => json!({
            "ends": pause_end_json(*ends),
            "resumes_at": resumes_at,
            "on_resume": OnResumeDto::from(*on_resume),
            "keep_access": keep_access,
        }),
        ScheduledChangeKind::Resume => json!({}),
        ScheduledChangeKind::Cancel {
            reason,
            cancellation_request_id,
            access,
        } => json!({
            "reason": reason.map(CancellationReasonDto::from),
            "cancellation_request_id": cancellation_request_id.map(|id| id.to_string()),
            "access": AccessDto::from(*access),
        }),
        ScheduledChangeKind::PlanChange { to } => json!({
            "plan_id": to.plan_id.to_string(),
            "price": MoneyDto::from(to.price),
            "interval": IntervalDto::from(to.cadence.interval()),
            "interval_count": to.cadence.count(),
        }),
    }
}

/// A subscription as merchants and (with `available_actions`) customers see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "subscription",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "status": "active",
    "price": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "interval": "month", "interval_count": 1,
    "current_period": {"start": "2026-11-25T10:00:00Z", "end": "2026-12-25T10:00:00Z"},
    "billing_anchor": "2026-11-25T10:00:00Z", "trial_end": null, "cancel_at": null, "canceled_at": null,
    "ended_at": null, "access_until": null, "billing_ends_at": null, "cancellation_details": null,
    "pause": null, "scheduled_changes": [], "skipped_renewals": [], "skipped_in_a_row": 0,
    "discounts": [], "created_at": "2026-11-25T10:00:00Z",
    "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct SubscriptionDto {
    pub id: String,
    /// Always `subscription`.
    pub object: String,
    pub customer_id: String,
    pub product_id: String,
    pub plan_id: String,
    pub status: SubscriptionStatusDto,
    /// The price of one period of the current plan (one unit), as copied onto the
    /// subscription; each period bills `price` × `quantity`.
    pub price: MoneyDto,
    /// Units billed each period, within the product's `min_quantity`..`max_quantity`.
    pub quantity: u32,
    pub interval: IntervalDto,
    pub interval_count: u32,
    /// The period being served: the trial while trialing, else the latest billed period
    /// (frozen while paused).
    pub current_period: PeriodDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub billing_anchor: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub trial_end: Option<DateTime<Utc>>,
    /// When a pending cancellation takes effect.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub cancel_at: Option<DateTime<Utc>>,
    /// When the decision to cancel was made.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub canceled_at: Option<DateTime<Utc>>,
    /// When the subscription ended.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Until when the subscriber keeps access after a cancellation (projected while it is
    /// pending).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub access_until: Option<DateTime<Utc>>,
    /// When renewals stop (projected while a cancellation is pending).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub billing_ends_at: Option<DateTime<Utc>>,
    /// Who cancelled and why, while a cancellation is pending and once it took effect.
    /// The portal shows it only when the customer cancelled.
    pub cancellation_details: Option<CancellationDetailsDto>,
    pub pause: Option<PauseDto>,
    /// Future changes in the order they take effect.
    pub scheduled_changes: Vec<ScheduledChangeDto>,
    /// The coming renewals that will pass without an invoice or a charge, in order:
    /// always the next ones (`POST …/skip` adds the next, `POST …/unskip` takes back the
    /// last).
    #[serde(default)]
    pub skipped_renewals: Vec<SkippedRenewalDto>,
    /// How many renewals in a row have passed skipped since the last billed one (the
    /// portal policy's `max_consecutive_skips` counts them).
    #[serde(default)]
    pub skipped_in_a_row: u32,
    /// The latest send now until the next renewal (`POST …/send_now`), else null.
    #[serde(default)]
    pub sent_now: Option<SentNowDto>,
    /// The discounts that still apply to coming invoices (`cycles_remaining > 0`), in the
    /// order invoices apply them (oldest first). Shown on API reads and action
    /// responses; event snapshots omit it (a renewal's invoice shows what it applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discounts: Option<Vec<SubscriptionDiscountDto>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A discount granted to a subscription: `percent` of each invoice's subtotal, or a fixed
/// `amount`, for the next `cycles` invoices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "disc_01jf9zh4f4e3a8r7m2k4t5n6bc", "object": "discount",
    "percent": 20, "amount": null, "cycles": 2, "cycles_remaining": 1,
    "offer_id": "roff_01jf9zj5f4e3a8r7m2k4t5n6bc", "created_at": "2026-11-25T10:00:00Z"}))]
pub struct SubscriptionDiscountDto {
    pub id: String,
    /// Always `discount`.
    pub object: String,
    /// 1–100: this share of each invoice's subtotal (rounded half up); `null` for an
    /// amount discount.
    pub percent: Option<u32>,
    /// A fixed amount off each invoice (never below zero); `null` for a percent discount.
    pub amount: Option<MoneyDto>,
    /// How many invoices it applies to in all.
    pub cycles: u32,
    /// How many invoices it still applies to.
    pub cycles_remaining: u32,
    /// The retention offer that granted it (`roff_…`), if any.
    pub offer_id: Option<String>,
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

impl From<&StoredDiscount> for SubscriptionDiscountDto {
    fn from(d: &StoredDiscount) -> Self {
        let (percent, amount) = match d.value {
            DiscountValue::Percent(p) => (Some(p), None),
            DiscountValue::Amount(m) => (None, Some(m.into())),
        };
        Self {
            id: d.typed_id().to_string(),
            object: "discount".to_owned(),
            percent,
            amount,
            cycles: d.cycles,
            cycles_remaining: d.cycles_remaining,
            offer_id: d
                .offer_id
                .map(|o| RetentionOfferId::from_uuid(o).to_string()),
            coupon_id: d.coupon_id.to_string(),
            promotion_code_id: d.promotion_code_id.map(|c| c.to_string()),
            forever: d.forever,
            description: d.description.clone(),
            created_at: d.created_at,
        }
    }
}

impl SubscriptionDto {
    /// Renders `s` for `actor`, who decides which scheduled changes are `removable`.
    pub fn render(s: &StoredSubscription, actor: Actor) -> Self {
        let sub = &s.subscription;
        Self {
            id: sub.id.to_string(),
            object: "subscription".to_owned(),
            customer_id: s.customer_id.to_string(),
            product_id: s.product_id.to_string(),
            plan_id: sub.plan.plan_id.to_string(),
            status: sub.status.into(),
            price: sub.plan.price.into(),
            quantity: sub.quantity,
            interval: sub.plan.cadence.interval().into(),
            interval_count: sub.plan.cadence.count(),
            current_period: sub.current_period.into(),
            billing_anchor: sub.billing_anchor,
            trial_end: sub.trial_end,
            cancel_at: sub.cancel_at,
            canceled_at: sub.canceled_at,
            ended_at: sub.ended_at,
            access_until: sub.access_until,
            billing_ends_at: sub.billing_ends_at,
            // A customer sees their own words, not the merchant's (which may be internal).
            cancellation_details: sub
                .cancellation
                .as_ref()
                .filter(|c| !actor.is_customer() || c.requested_by.is_customer())
                .map(|c| CancellationDetailsDto {
                    reason: c.reason.map(Into::into),
                    message: c.message.clone(),
                    requested_by: c.requested_by.into(),
                }),
            pause: sub.pause.as_ref().map(PauseDto::from),
            scheduled_changes: sub
                .scheduled_changes
                .iter()
                .map(|c| ScheduledChangeDto {
                    id: c.id.to_string(),
                    change_type: c.kind.change_type().into(),
                    due_at: c.due_at,
                    requested_by: c.requested_by.into(),
                    details: details(c),
                    removable: sub.check_can_remove_scheduled_change(c.id, actor).is_ok(),
                })
                .collect(),
            skipped_renewals: sub
                .skipped_renewals
                .iter()
                .map(|s| SkippedRenewalDto {
                    renewal_at: s.renewal_at,
                    requested_by: s.requested_by.into(),
                    requested_at: s.requested_at,
                })
                .collect(),
            skipped_in_a_row: sub.skipped_in_a_row,
            sent_now: sub.sent_now.map(|s| SentNowDto {
                period: s.period.into(),
                anchor: s.anchor.into(),
                requested_by: s.requested_by.into(),
                requested_at: s.requested_at,
            }),
            discounts: None,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }

    /// The same with the subscription's active discounts.
    pub fn with_discounts(mut self, discounts: &[StoredDiscount]) -> Self {
        self.discounts = Some(discounts.iter().map(Into::into).collect());
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseActionDto {
    /// The longest pause allowed, in days from its start; null means unbounded.
    pub max_pause_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancelActionDto {
    pub mode: CancellationModeDto,
    pub notice_period_days: u32,
    /// When a cancellation made now would take effect.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub effective_at: DateTime<Utc>,
    /// `request` mode: send a `reason`.
    pub requires_reason: bool,
    /// `immediate` mode: send `"confirm": true`.
    pub requires_confirmation: bool,
    /// The accepted reasons.
    pub reasons: Vec<CancellationReasonDto>,
}

/// The quantities the subscriber may choose (the product's limits).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeQuantityActionDto {
    pub min: u32,
    pub max: u32,
}

/// The renewal a skip would take now (`POST …/skip`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SkipActionDto {
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub renewal_at: DateTime<Utc>,
    /// The most renewals that may be skipped in a row; null means no limit.
    pub max_consecutive_skips: Option<u32>,
}

/// The period a send now would bill now, each way (`POST …/send_now`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendNowActionDto {
    /// With `anchor: keep`: the next period of the schedule.
    pub keep_period: PeriodDto,
    /// With `anchor: reset`: a period starting now.
    pub reset_period: PeriodDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePlanActionDto {
    /// Plans the subscriber may switch to.
    pub plan_ids: Vec<String>,
}

/// What the signed-in customer may do now: render exactly these buttons. An absent
/// (null) action is not available.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AvailableActionsDto {
    pub pause: Option<PauseActionDto>,
    pub resume: bool,
    pub cancel: Option<CancelActionDto>,
    /// Whether a pending cancellation may be withdrawn.
    pub withdraw_cancellation: bool,
    pub change_plan: Option<ChangePlanActionDto>,
    pub change_quantity: Option<ChangeQuantityActionDto>,
    /// Ids of scheduled changes the customer may remove.
    pub removable_changes: Vec<String>,
    /// Skip one more coming renewal (null when none may be skipped now).
    pub skip: Option<SkipActionDto>,
    /// Whether the last skip may be taken back (`POST …/unskip`).
    pub unskip: bool,
    /// Bring the next renewal forward to now (null when it cannot be sent now).
    pub send_now: Option<SendNowActionDto>,
}

impl From<AvailableActions> for AvailableActionsDto {
    fn from(a: AvailableActions) -> Self {
        Self {
            pause: a.pause.map(|p| PauseActionDto {
                max_pause_days: p.max_pause_days,
            }),
            resume: a.resume,
            cancel: a.cancel.map(|c| CancelActionDto {
                mode: c.mode.into(),
                notice_period_days: c.notice_period_days,
                effective_at: c.effective_at,
                requires_reason: c.requires_reason,
                requires_confirmation: c.requires_confirmation,
                reasons: CancellationReason::ALL
                    .into_iter()
                    .map(CancellationReasonDto::from)
                    .collect(),
            }),
            withdraw_cancellation: a.withdraw_cancellation,
            change_plan: a.change_plan.map(|c| ChangePlanActionDto {
                plan_ids: c.plan_ids.iter().map(ToString::to_string).collect(),
            }),
            change_quantity: a.change_quantity.map(|q| ChangeQuantityActionDto {
                min: q.min,
                max: q.max,
            }),
            removable_changes: a
                .removable_changes
                .iter()
                .map(ToString::to_string)
                .collect(),
            skip: a.skip.map(|s| SkipActionDto {
                renewal_at: s.renewal_at,
                max_consecutive_skips: s.max_consecutive_skips,
            }),
            unskip: a.unskip,
            send_now: a.send_now.map(|s| SendNowActionDto {
                keep_period: s.keep_period.into(),
                reset_period: s.reset_period.into(),
            }),
        }
    }
}

/// A subscription as the portal shows it: with the actions the policy allows now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "subscription",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "status": "active",
    "price": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "interval": "month", "interval_count": 1,
    "current_period": {"start": "2026-11-25T10:00:00Z", "end": "2026-12-25T10:00:00Z"},
    "billing_anchor": "2026-11-25T10:00:00Z", "trial_end": null, "cancel_at": null, "canceled_at": null,
    "ended_at": null, "access_until": null, "billing_ends_at": null, "pause": null,
    "scheduled_changes": [], "discounts": [], "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
    "plan": {"id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "name": "Monthly", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
        "product_name": "Coffee", "active": true, "shippable": false, "variant": null},
    "available_actions": {"pause": {"max_pause_days": 90}, "resume": false,
        "cancel": {"mode": "request", "notice_period_days": 14, "effective_at": "2026-12-25T10:00:00Z",
                   "requires_reason": true, "requires_confirmation": false,
                   "reasons": ["too_expensive", "missing_features", "switched_service", "unused",
                               "customer_service", "too_complex", "low_quality", "other"]},
        "withdraw_cancellation": false, "change_plan": {"plan_ids": ["plan_01jf9z9b2ce3a8r7m2k4t5n6bc"]},
        "removable_changes": [], "skip": {"renewal_at": "2026-12-25T10:00:00Z", "max_consecutive_skips": 2},
        "unskip": false}}))]
pub struct PortalSubscriptionDto {
    #[serde(flatten)]
    pub subscription: SubscriptionDto,
    /// The plan the subscription is on, named even after the merchant retired it (the
    /// portal's list of plans to choose from no longer shows a retired one).
    pub plan: SubscriptionPlanDto,
    pub available_actions: AvailableActionsDto,
}

/// The plan a subscription is on, as its subscriber sees it: its name and its product's,
/// whether it is still offered (`active`), whether it ships, and its variant. What the
/// subscription costs is the subscription's own `price` and cadence (a subscriber may keep
/// a price the plan no longer has).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "name": "Monthly bag",
    "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc", "product_name": "Coffee", "active": false,
    "shippable": true, "variant": null}))]
pub struct SubscriptionPlanDto {
    pub id: String,
    pub name: String,
    pub product_id: String,
    pub product_name: String,
    /// False once the merchant retired the plan: nobody new may choose it, and its
    /// subscribers keep it.
    pub active: bool,
    /// Whether the product ships something each period (a shipping address and orders).
    pub shippable: bool,
    /// What the plan ships, when its product's plans are variants; null otherwise.
    #[serde(default)]
    pub variant: Option<super::catalog::VariantDto>,
}

impl SubscriptionPlanDto {
    pub fn render(
        plan: &tenure_domain::catalog::Plan,
        product_name: &str,
        shippable: bool,
    ) -> Self {
        Self {
            id: plan.id.to_string(),
            name: plan.name.clone(),
            product_id: plan.product_id.to_string(),
            product_name: product_name.to_owned(),
            active: plan.active,
            shippable,
            variant: plan.variant.as_ref().map(super::catalog::VariantDto::from),
        }
    }
}

/// What the frontend must do to complete an `incomplete` subscription's first payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextActionDto {
    /// The card asks for the cardholder's authentication (3-D Secure): confirm the payment
    /// with the gateway's library and `publishable_key` (Stripe.js
    /// `confirmCardPayment(client_secret)`, a mobile SDK's `handleNextAction`). The
    /// invoice is then paid when the gateway reports it, and the subscription `active`.
    ConfirmPayment {
        invoice_id: String,
        provider: super::billing::GatewayProviderDto,
        client_secret: String,
        publishable_key: String,
    },
    /// The first payment failed (`decline_code`, e.g. `card_declined`,
    /// `insufficient_funds`): collect another card (it pays the invoice), or pay the
    /// invoice again (`POST /v1/portal/invoices/{id}/pay`).
    UpdatePaymentMethod {
        invoice_id: String,
        decline_code: String,
    },
}

impl From<&crate::billing::charging::NextAction> for NextActionDto {
    fn from(a: &crate::billing::charging::NextAction) -> Self {
        use crate::billing::charging::NextAction;
        match a {
            NextAction::ConfirmPayment {
                invoice_id,
                provider,
                client_secret,
                publishable_key,
            } => Self::ConfirmPayment {
                invoice_id: invoice_id.to_string(),
                provider: (*provider).into(),
                client_secret: client_secret.clone(),
                publishable_key: publishable_key.clone(),
            },
            NextAction::UpdatePaymentMethod {
                invoice_id,
                decline_code,
            } => Self::UpdatePaymentMethod {
                invoice_id: invoice_id.to_string(),
                decline_code: decline_code.clone(),
            },
        }
    }
}

/// A new subscription, with what the frontend must do when its first payment did not go
/// through (`status` `incomplete`); `next_action` is null otherwise (also while the
/// payment's outcome is not known yet: read the subscription again shortly).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "subscription",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "status": "incomplete",
    "price": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "interval": "month", "interval_count": 1,
    "current_period": {"start": "2026-11-25T10:00:00Z", "end": "2026-12-25T10:00:00Z"},
    "billing_anchor": "2026-11-25T10:00:00Z", "trial_end": null, "cancel_at": null, "canceled_at": null,
    "ended_at": null, "access_until": null, "billing_ends_at": null, "cancellation_details": null,
    "pause": null, "scheduled_changes": [], "discounts": [], "created_at": "2026-11-25T10:00:00Z",
    "updated_at": "2026-11-25T10:00:00Z",
    "next_action": {"type": "update_payment_method", "invoice_id": "inv_01jf9zd1f4e3a8r7m2k4t5n6bc",
        "decline_code": "card_declined"}}))]
pub struct CreatedSubscriptionDto {
    #[serde(flatten)]
    pub subscription: SubscriptionDto,
    pub next_action: Option<NextActionDto>,
}

/// The portal's new subscription (with `available_actions`), and what the frontend must do
/// when its first payment did not go through; see `CreatedSubscriptionDto`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "subscription",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
    "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "status": "incomplete",
    "price": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "interval": "month", "interval_count": 1,
    "current_period": {"start": "2026-11-25T10:00:00Z", "end": "2026-12-25T10:00:00Z"},
    "billing_anchor": "2026-11-25T10:00:00Z", "trial_end": null, "cancel_at": null, "canceled_at": null,
    "ended_at": null, "access_until": null, "billing_ends_at": null, "cancellation_details": null,
    "pause": null, "scheduled_changes": [], "discounts": [], "created_at": "2026-11-25T10:00:00Z",
    "updated_at": "2026-11-25T10:00:00Z",
    "plan": {"id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "name": "Monthly", "product_id": "prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
        "product_name": "Coffee", "active": true, "shippable": false, "variant": null},
    "available_actions": {"pause": null, "resume": false,
        "cancel": {"mode": "immediate", "notice_period_days": 0,
                   "effective_at": "2026-11-25T10:00:00Z", "requires_reason": false,
                   "requires_confirmation": false,
                   "reasons": ["too_expensive", "missing_features", "switched_service", "unused",
                               "customer_service", "too_complex", "low_quality", "other"]},
        "withdraw_cancellation": false, "change_plan": null, "change_quantity": null,
        "removable_changes": [], "skip": null, "unskip": false},
    "next_action": {"type": "confirm_payment", "invoice_id": "inv_01jf9zd1f4e3a8r7m2k4t5n6bc",
        "provider": "stripe", "client_secret": "pi_3Q0abc_secret_def",
        "publishable_key": "pk_test_51Q0abc"}}))]
pub struct CreatedPortalSubscriptionDto {
    #[serde(flatten)]
    pub subscription: PortalSubscriptionDto,
    pub next_action: Option<NextActionDto>,
}

/// Starts a subscription. The plan must be active and of an active product; its
/// `trial_days` start a trial.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc"}))]
pub struct CreateSubscription {
    pub customer_id: String,
    pub plan_id: String,
    /// Units (default: the product's `min_quantity`).
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: Option<u32>,
    /// A promotion code to redeem (any case): its discount applies from the first invoice.
    /// A code that does not apply refuses the subscription (409 `promotion_code_…`).
    #[schema(example = "SUMMER20")]
    pub promotion_code: Option<String>,
    /// Where it ships: an address of the customer's book (addr_…). A product that ships
    /// may be subscribed without one; its orders then wait for one to be set
    /// (`POST /v1/subscriptions/{id}/shipping_address`).
    pub shipping_address_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc"}))]
pub struct CreatePortalSubscription {
    pub plan_id: String,
    /// Units (default: the product's `min_quantity`).
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: Option<u32>,
    /// A promotion code to redeem (any case): its discount applies from the first invoice.
    /// A code that does not apply refuses the subscription (409 `promotion_code_…`).
    #[schema(example = "SUMMER20")]
    pub promotion_code: Option<String>,
    /// Where it ships: an address of the customer's book (addr_…), required when the
    /// product ships.
    pub shipping_address_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionFilterParams {
    pub status: Option<SubscriptionStatusDto>,
    /// Only subscriptions of this customer (cus_…).
    pub customer_id: Option<String>,
    /// Only subscriptions on this plan (plan_…).
    pub plan_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalSubscriptionFilterParams {
    pub status: Option<SubscriptionStatusDto>,
}

/// When a pause starts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PauseStartDto {
    Now,
    /// At the end of the current period (the default).
    PeriodEnd,
    At {
        #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
        date: DateTime<Utc>,
    },
}

/// When a pause ends.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PauseEndDto {
    At {
        #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
        date: DateTime<Utc>,
    },
    /// After skipping this many renewals.
    AfterCycles {
        #[schema(minimum = 1, maximum = 36)]
        cycles: u32,
    },
    /// Until someone resumes (for customers bounded by the policy's max_pause_days).
    OpenEnded,
}

/// A pause: starts `now`, at `period_end` (default) or `at` a date; ends `at` a date,
/// `after_cycles`, or `open_ended` (default).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 2}, "on_resume": "reset_anchor"}))]
pub struct PauseSubscription {
    pub start: Option<PauseStartDto>,
    pub end: Option<PauseEndDto>,
    pub on_resume: Option<OnResumeDto>,
}

impl PauseSubscription {
    pub fn to_domain(&self) -> tenure_domain::subscription::PauseRequest {
        tenure_domain::subscription::PauseRequest {
            start: match self.start {
                Some(PauseStartDto::Now) => PauseStart::Now,
                Some(PauseStartDto::PeriodEnd) | None => PauseStart::PeriodEnd,
                Some(PauseStartDto::At { date }) => PauseStart::At { date },
            },
            end: match self.end {
                Some(PauseEndDto::At { date }) => PauseEnd::At { date },
                Some(PauseEndDto::AfterCycles { cycles }) => PauseEnd::AfterCycles { cycles },
                Some(PauseEndDto::OpenEnded) | None => PauseEnd::OpenEnded,
            },
            on_resume: self.on_resume.map(Into::into).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CancelTimingDto {
    Now,
    PeriodEnd,
}

/// When access ends once the cancellation takes effect.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccessDto {
    /// Through the end of what was paid for (default).
    UntilPeriodEnd,
    Immediately,
}

impl From<AccessEnd> for AccessDto {
    fn from(a: AccessEnd) -> Self {
        match a {
            AccessEnd::UntilPeriodEnd => Self::UntilPeriodEnd,
            AccessEnd::Immediately => Self::Immediately,
        }
    }
}

/// A merchant's cancellation: now (default), at period end, or at a chosen future
/// instant (`cancel_at`, as in Stripe), replacing any pending one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"timing": "period_end", "access": "until_period_end", "reason": "other", "message": "Account closed"}))]
pub struct CancelSubscription {
    pub reason: Option<CancellationReasonDto>,
    pub message: Option<String>,
    /// `now` (default) or `period_end`; leave it out when giving `cancel_at`.
    pub timing: Option<CancelTimingDto>,
    /// When the cancellation takes effect: in the future, at most five years ahead
    /// (`MAX_CANCEL_AT_DAYS`); the subscription carries on (and renews) until then, and
    /// the cancellation is a removable scheduled change. Not with `timing`.
    pub cancel_at: Option<DateTime<Utc>>,
    pub access: Option<AccessDto>,
    /// An agent's override of the product's policy (`allow_cancel`, or an end before the
    /// policy's notice), with the reason: the cancellation is allowed, and the limits it
    /// exceeds are recorded (`override.created`) and counted in `GET /v1/metrics/overrides`.
    /// A request naming an agent (`Tenure-Agent`) is refused without it.
    #[serde(rename = "override")]
    pub overriding: Option<crate::dto::credits::OverrideRequest>,
}

impl CancelSubscription {
    pub fn to_domain(&self) -> Result<tenure_domain::subscription::CancelRequest, AppError> {
        let timing = match (self.timing, self.cancel_at) {
            (Some(_), Some(_)) => {
                return Err(AppError::field(
                    "cancel_at",
                    "cannot be combined with timing: a chosen date is the timing",
                ));
            }
            (None, Some(date)) => Some(CancelTiming::At { date }),
            (timing, None) => timing.map(|t| match t {
                CancelTimingDto::Now => CancelTiming::Now,
                CancelTimingDto::PeriodEnd => CancelTiming::PeriodEnd,
            }),
        };
        Ok(tenure_domain::subscription::CancelRequest {
            reason: self.reason.map(Into::into),
            message: self.message.clone(),
            confirm: false,
            timing,
            access: self.access.map(|a| match a {
                AccessDto::UntilPeriodEnd => AccessEnd::UntilPeriodEnd,
                AccessDto::Immediately => AccessEnd::Immediately,
            }),
        })
    }
}

/// A customer's cancellation. `request` mode needs a `reason` (and takes an optional
/// `message`); `immediate` mode needs `"confirm": true`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "too_expensive", "message": "Going on a budget for a while."}))]
pub struct PortalCancelSubscription {
    pub reason: Option<CancellationReasonDto>,
    pub message: Option<String>,
    #[serde(default)]
    pub confirm: bool,
}

impl PortalCancelSubscription {
    pub fn to_domain(&self) -> tenure_domain::subscription::CancelRequest {
        tenure_domain::subscription::CancelRequest {
            reason: self.reason.map(Into::into),
            message: self.message.clone(),
            confirm: self.confirm,
            timing: None,
            access: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "plan_01jf9z9b2ce3a8r7m2k4t5n6bc"}))]
pub struct ChangePlan {
    pub plan_id: String,
    /// A promotion code to redeem with the change (any case), checked against the new
    /// plan; in a preview, what it would take off shows as `discount`.
    #[schema(example = "SUMMER20")]
    pub promotion_code: Option<String>,
}

/// A merchant's plan change (or its preview): [`ChangePlan`] and an agent's optional
/// override.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "plan_01jf9z9b2ce3a8r7m2k4t5n6bc",
    "override": {"reason": "Legacy plan kept for a founding subscriber"}}))]
pub struct MerchantChangePlan {
    pub plan_id: String,
    /// A promotion code to redeem with the change, as in [`ChangePlan`].
    #[schema(example = "SUMMER20")]
    pub promotion_code: Option<String>,
    /// An agent's override of the product's policy (`allow_plan_change`, a plan the
    /// policy does not offer), with the reason: the switch is allowed and the limits it
    /// exceeds are recorded (`override.created`; not by a preview). A request naming an
    /// agent (`Tenure-Agent`) is refused without it.
    #[serde(rename = "override")]
    pub overriding: Option<crate::dto::credits::OverrideRequest>,
}

/// Bring the next renewal forward to now (portal).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"anchor": "keep"}))]
pub struct SendNow {
    /// `keep` (default) or `reset`.
    pub anchor: Option<SendNowAnchorDto>,
}

/// Bring the next renewal forward to now (merchant), with an agent's optional override.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"anchor": "reset", "override": {"reason": "Ran out early after a move"}}))]
pub struct MerchantSendNow {
    /// `keep` (default) or `reset`.
    pub anchor: Option<SendNowAnchorDto>,
    /// An agent's override of the product's `allow_send_now`, with the reason: the send
    /// now is allowed and recorded (`override.created`). A request naming an agent
    /// (`Tenure-Agent`) is refused without it where the policy forbids sending now.
    #[serde(rename = "override")]
    pub overriding: Option<crate::dto::credits::OverrideRequest>,
}

/// An agent's optional override of the product's policy, for an action that takes no
/// other input (skip, unskip).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"override": {"reason": "Moving house, skipping a third month"}}))]
pub struct MerchantOverride {
    /// The override, with its reason: the limits the action exceeds are allowed and
    /// recorded (`override.created`). A request naming an agent (`Tenure-Agent`) is held
    /// to the policy without it.
    #[serde(rename = "override")]
    pub overriding: Option<crate::dto::credits::OverrideRequest>,
}

/// The override of a scheduled change's removal (`DELETE`, which takes no body).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveChangeParams {
    /// An agent's reason to override the product's policy: removing the automatic resume
    /// of a pause makes it open-ended, beyond `max_pause_days`; a request naming an agent
    /// (`Tenure-Agent`) is refused that without a reason (422 `pause_too_long`), and with
    /// one it is allowed and recorded (`override.created`).
    pub override_reason: Option<String>,
}

/// A merchant's pause: [`PauseSubscription`] and an agent's optional override.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 6},
    "override": {"reason": "Three-year subscriber travelling for six months"}}))]
pub struct MerchantPauseSubscription {
    pub start: Option<PauseStartDto>,
    pub end: Option<PauseEndDto>,
    pub on_resume: Option<OnResumeDto>,
    /// An agent's override of the product's policy (`allow_pause`, a pause longer than
    /// `max_pause_days` or open-ended under it), with the reason: the pause is allowed and
    /// the limits it exceeds are recorded (`override.created`). A request naming an agent
    /// (`Tenure-Agent`) is refused without it (an open-ended pause ends at the limit).
    #[serde(rename = "override")]
    pub overriding: Option<crate::dto::credits::OverrideRequest>,
}

impl MerchantPauseSubscription {
    pub fn to_domain(&self) -> tenure_domain::subscription::PauseRequest {
        PauseSubscription {
            start: self.start,
            end: self.end,
            on_resume: self.on_resume,
        }
        .to_domain()
    }
}

/// A new quantity, within the product's limits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 3}))]
pub struct ChangeQuantity {
    #[schema(minimum = 1, maximum = 10000)]
    pub quantity: u32,
}

/// What a quantity change would cost, to the minor unit. It applies at once; after a
/// trial its `lines` (credit at the old quantity, charge at the new one, for the rest of
/// the period) become pending items of the next renewal invoice at `invoiced_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"from": 1, "to": 3, "effective_at": "2026-12-10T10:00:00Z",
    "period_price": {"amount": 3000, "currency": "EUR"},
    "lines": [
      {"kind": "credit", "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "amount": {"amount": -500, "currency": "EUR"},
       "period": {"start": "2026-12-10T10:00:00Z", "end": "2026-12-25T10:00:00Z"}, "description": "Unused time on Beans (2026-12-10 10:00 – 2026-12-25 10:00)"},
      {"kind": "charge", "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "amount": {"amount": 1500, "currency": "EUR"},
       "period": {"start": "2026-12-10T10:00:00Z", "end": "2026-12-25T10:00:00Z"}, "description": "Remaining time on Beans × 3 (2026-12-10 10:00 – 2026-12-25 10:00)"}],
    "amount_due_now": {"amount": 1000, "currency": "EUR"}, "credit_carried": {"amount": 0, "currency": "EUR"},
    "invoiced_at": "2026-12-25T10:00:00Z"}))]
pub struct QuantityChangePreviewDto {
    pub from: u32,
    pub to: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub effective_at: DateTime<Utc>,
    /// What a full period costs at the new quantity.
    pub period_price: MoneyDto,
    /// Empty while trialing (a change then costs nothing).
    pub lines: Vec<ProrationLineDto>,
    pub amount_due_now: MoneyDto,
    pub credit_carried: MoneyDto,
    /// When the invoice taking the lines is created; `null` when there are none.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub invoiced_at: Option<DateTime<Utc>>,
}

impl QuantityChangePreviewDto {
    pub fn render(
        preview: &QuantityChangePreview,
        next_invoice_at: DateTime<Utc>,
        describe: impl Fn(&ProrationLine) -> String,
    ) -> Self {
        let zero = Money::zero(preview.period_price.currency);
        let (lines, due, credit, invoiced_at) = match &preview.proration {
            Some(p) => (
                p.lines
                    .iter()
                    .map(|l| ProrationLineDto {
                        kind: l.kind.into(),
                        plan_id: l.plan_id.to_string(),
                        amount: l.amount.into(),
                        period: l.period.into(),
                        description: describe(l),
                    })
                    .collect(),
                p.amount_due_now,
                p.credit_carried,
                Some(next_invoice_at),
            ),
            None => (Vec::new(), zero, zero, None),
        };
        Self {
            from: preview.from,
            to: preview.to,
            effective_at: preview.effective_at,
            period_price: preview.period_price.into(),
            lines,
            amount_due_now: due.into(),
            credit_carried: credit.into(),
            invoiced_at,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanChangeTimingDto {
    /// Applies at once (upgrades, and any change during a trial).
    Now,
    /// Scheduled for the end of the current period (downgrades).
    PeriodEnd,
}

wire_enum! {
    /// `credit` (negative amount) or `charge`.
    ProrationLineKindDto from ProrationLineKind { Credit, Charge }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProrationLineDto {
    pub kind: ProrationLineKindDto,
    pub plan_id: String,
    pub amount: MoneyDto,
    pub period: PeriodDto,
    pub description: String,
}

/// What a plan change would cost, to the minor unit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"plan_id": "plan_01jf9z9b2ce3a8r7m2k4t5n6bc", "timing": "now", "effective_at": "2026-12-10T10:00:00Z",
    "lines": [
      {"kind": "credit", "plan_id": "plan_01jf9z8a1be3a8r7m2k4t5n6bc", "amount": {"amount": -1000, "currency": "EUR"},
       "period": {"start": "2026-12-10T10:00:00Z", "end": "2026-12-25T10:00:00Z"}, "description": "Unused time on Basic (2026-12-10 10:00 – 2026-12-25 10:00)"},
      {"kind": "charge", "plan_id": "plan_01jf9z9b2ce3a8r7m2k4t5n6bc", "amount": {"amount": 2000, "currency": "EUR"},
       "period": {"start": "2026-12-10T10:00:00Z", "end": "2026-12-25T10:00:00Z"}, "description": "Remaining time on Pro (2026-12-10 10:00 – 2026-12-25 10:00)"}],
    "amount_due_now": {"amount": 1000, "currency": "EUR"}, "credit_carried": {"amount": 0, "currency": "EUR"},
    "invoicing": "next_invoice", "invoiced_at": "2026-12-25T10:00:00Z"}))]
pub struct PlanChangePreviewDto {
    pub plan_id: String,
    pub timing: PlanChangeTimingDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub effective_at: DateTime<Utc>,
    /// Empty when nothing is prorated (a trial, or a change at period end).
    pub lines: Vec<ProrationLineDto>,
    /// The net of the lines when positive: what the change adds to the invoice named by
    /// `invoicing` (before that invoice's discounts).
    pub amount_due_now: MoneyDto,
    /// The net of the lines when negative: the credit the change adds to that invoice.
    pub credit_carried: MoneyDto,
    /// Where the lines are billed: `next_invoice` (same cadence: they become pending
    /// items of the renewal invoice at `invoiced_at`), `now` (another cadence: a new
    /// period starts now and is invoiced at once, its `plan` line being the `charge` line)
    /// or `none` (nothing is prorated).
    pub invoicing: PlanChangeInvoicingDto,
    /// When that invoice is created; `null` for `none`.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub invoiced_at: Option<DateTime<Utc>>,
    /// With a `promotion_code`: what it would take off the invoice the change bills (the
    /// new period's for `now`, else the next renewal's at the new plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<crate::dto::coupons::DiscountPreviewDto>,
}

/// The invoice a send now would create now, without sending (`POST …/send_now/preview`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendNowPreviewDto {
    pub anchor: SendNowAnchorDto,
    /// The period it would invoice: the next one of the schedule (`keep`), or one starting
    /// now (`reset`).
    pub period: PeriodDto,
    /// When it would be invoiced and charged: now (the clock's time for a clock customer).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub invoiced_at: DateTime<Utc>,
    /// The next renewal after it (the end of `period`).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub next_renewal_at: DateTime<Utc>,
    /// Its lines: the plan at the quantity, the pending items (prorations, one-offs) and
    /// the discounts, as a renewal's invoice, then the customer's credit balance it draws
    /// on (`customer_balance`), as the balance stands now.
    pub lines: Vec<crate::dto::billing::InvoiceLineDto>,
    pub subtotal: MoneyDto,
    /// The discount lines' sum (zero or negative).
    pub discount: MoneyDto,
    /// `subtotal + discount`, before the credit balance.
    pub total: MoneyDto,
    /// The customer's credit balance used before charging (zero or negative).
    pub credit_applied: MoneyDto,
    /// What the customer would be charged: `max(0, total + credit_applied)`.
    pub amount_due: MoneyDto,
}

/// The first invoice a subscription would get, without subscribing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionPreviewDto {
    pub plan_id: String,
    pub quantity: u32,
    /// When the trial would end (the first invoice is created then); `null` without one.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub trial_end: Option<DateTime<Utc>>,
    /// When the first invoice is created: now, or at the trial's end.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub invoiced_at: DateTime<Utc>,
    pub period: PeriodDto,
    /// Its lines: the plan, and the code's discount if one was given.
    pub lines: Vec<crate::dto::billing::InvoiceLineDto>,
    pub subtotal: MoneyDto,
    /// The discount lines' sum (zero or negative).
    pub discount: MoneyDto,
    pub total: MoneyDto,
    /// With a `promotion_code`: the coupon and what it takes off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_code: Option<crate::dto::coupons::DiscountPreviewDto>,
}

/// Where the proration of a plan change is billed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PlanChangeInvoicingDto {
    /// Nothing is prorated (a trial, or a change at period end).
    None,
    /// Pending items added to the next renewal invoice.
    NextInvoice,
    /// A new period (another cadence) invoiced at once.
    Now,
}

impl PlanChangePreviewDto {
    /// `current_period_end` is when the subscription's next invoice is due;
    /// `new_cadence` whether the target plan bills on another cadence; `describe` words
    /// a line as the invoice will.
    pub fn render(
        plan_id: String,
        preview: &PlanChangePreview,
        currency_zero: Money,
        current_period_end: DateTime<Utc>,
        new_cadence: bool,
        describe: impl Fn(&ProrationLine) -> String,
    ) -> Self {
        let (invoicing, invoiced_at) = match (&preview.proration, new_cadence) {
            (None, _) => (PlanChangeInvoicingDto::None, None),
            (Some(_), false) => (
                PlanChangeInvoicingDto::NextInvoice,
                Some(current_period_end),
            ),
            (Some(p), true) => (PlanChangeInvoicingDto::Now, Some(p.at)),
        };
        let (lines, due, credit) = match &preview.proration {
            Some(p) => (
                p.lines
                    .iter()
                    .map(|l| ProrationLineDto {
                        kind: l.kind.into(),
                        plan_id: l.plan_id.to_string(),
                        amount: l.amount.into(),
                        period: l.period.into(),
                        description: describe(l),
                    })
                    .collect(),
                p.amount_due_now,
                p.credit_carried,
            ),
            None => (Vec::new(), currency_zero, currency_zero),
        };
        Self {
            plan_id,
            timing: match preview.timing {
                PlanChangeTiming::Now => PlanChangeTimingDto::Now,
                PlanChangeTiming::PeriodEnd => PlanChangeTimingDto::PeriodEnd,
            },
            effective_at: preview.effective_at,
            lines,
            amount_due_now: due.into(),
            credit_carried: credit.into(),
            invoicing,
            invoiced_at,
            discount: None,
        }
    }
}
