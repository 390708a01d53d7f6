//! What a subscriber may do right now, for the portal's buttons.
//!
//! Every answer comes from the same `check_can_*` function the transition itself runs
//! first, so a button is shown exactly when pressing it can succeed (given valid input:
//! a pause still needs dates within the limit, a request-mode cancellation a reason).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::billing::period::Period;
use crate::catalog::QuantityLimits;
use crate::ids::{PlanId, ScheduledChangeId};
use crate::money::Currency;
use crate::policy::{CancellationMode, PortalPolicy};
use crate::subscription::plan_change::TargetProduct;
use crate::subscription::send_now::SendNowAnchor;
use crate::subscription::state::{Actor, Subscription, SubscriptionStatus};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseAvailability {
    /// The longest pause allowed, counted from its start; `None` means unbounded.
    pub max_pause_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAvailability {
    pub mode: CancellationMode,
    pub notice_period_days: u32,
    /// When a cancellation made now would take effect.
    pub effective_at: DateTime<Utc>,
    /// `request` mode: a reason must be given.
    pub requires_reason: bool,
    /// `immediate` mode: the subscriber must confirm.
    pub requires_confirmation: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChangeAvailability {
    pub plan_ids: Vec<PlanId>,
}

/// A plan on sale of the subscription's product or of a product it may swap to, with
/// its currency: a switch is offered only to plans that bill in the subscription's
/// currency (and, on another product, whose limits hold the subscription's quantity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfferedPlan {
    pub plan_id: PlanId,
    pub currency: Currency,
    pub product: TargetProduct,
}

/// The quantities a subscriber may choose from (the product's limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantityAvailability {
    pub min: u32,
    pub max: u32,
}

/// The renewal a skip would take now, and the customer's limit on skips in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipAvailability {
    pub renewal_at: DateTime<Utc>,
    pub max_consecutive_skips: Option<u32>,
}

/// What a send now would bill now: the period each way would invoice, and what it costs
/// at the current plan and quantity (before discounts, pending items and credit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendNowAvailability {
    /// The next period of the schedule, billed now with `anchor: keep`.
    pub keep_period: Period,
    /// The period starting now, billed with `anchor: reset`.
    pub reset_period: Period,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailableActions {
    pub pause: Option<PauseAvailability>,
    pub resume: bool,
    pub cancel: Option<CancelAvailability>,
    pub withdraw_cancellation: bool,
    /// `None` when no plan change is possible (including when no plan qualifies).
    pub change_plan: Option<PlanChangeAvailability>,
    /// `None` when the quantity cannot change now (or the product allows one value).
    pub change_quantity: Option<QuantityAvailability>,
    /// Scheduled changes the subscriber may remove.
    pub removable_changes: Vec<ScheduledChangeId>,
    /// `None` when no (further) renewal may be skipped now.
    pub skip: Option<SkipAvailability>,
    /// Whether the last skip may be taken back.
    pub unskip: bool,
    /// `None` when the next renewal cannot be sent now.
    pub send_now: Option<SendNowAvailability>,
}

/// The customer's available actions. `product_plans` are the active plans of the
/// subscription's product and of the products it may swap to (the candidates for a
/// switch, in the order to show them).
pub fn available_actions(
    subscription: &Subscription,
    policy: &PortalPolicy,
    product_plans: &[OfferedPlan],
    limits: QuantityLimits,
    now: DateTime<Utc>,
) -> AvailableActions {
    let customer = Actor::Customer;
    let pause = subscription
        .check_can_pause(policy, customer)
        .ok()
        .map(|()| PauseAvailability {
            max_pause_days: policy.max_pause_days,
        });
    let cancel = subscription
        .check_can_cancel(policy, customer)
        .and_then(|()| subscription.cancellation_effective_at(policy, now))
        .ok()
        .map(|effective_at| match subscription.status {
            // Nothing was paid: it ends at once, with nothing to ask (see `cancel`).
            SubscriptionStatus::Incomplete => CancelAvailability {
                mode: CancellationMode::Immediate,
                notice_period_days: 0,
                effective_at,
                requires_reason: false,
                requires_confirmation: false,
            },
            _ => CancelAvailability {
                mode: policy.cancellation_mode,
                notice_period_days: policy.notice_period_days,
                effective_at,
                requires_reason: policy.cancellation_mode == CancellationMode::Request,
                requires_confirmation: policy.cancellation_mode == CancellationMode::Immediate,
            },
        });
    let change_plan = subscription
        .check_can_change_plan(policy, customer, now)
        .ok()
        .map(|()| {
            product_plans
                .iter()
                .filter(|plan| {
                    subscription
                        .check_plan_allowed(plan.plan_id, plan.product, policy, customer)
                        .and_then(|()| subscription.check_plan_currency(plan.currency))
                        .is_ok()
                })
                .map(|plan| plan.plan_id)
                .collect::<Vec<_>>()
        })
        .filter(|plans| !plans.is_empty())
        .map(|plan_ids| PlanChangeAvailability { plan_ids });
    let change_quantity = subscription
        .check_can_change_quantity(limits, now)
        .ok()
        .map(|()| QuantityAvailability {
            min: limits.min(),
            max: limits.max(),
        });
    let skip = subscription
        .check_can_skip(policy, customer, now)
        .ok()
        .map(|renewal_at| SkipAvailability {
            renewal_at,
            max_consecutive_skips: policy.max_consecutive_skips,
        });
    let send_now = subscription
        .check_can_send_now(policy, customer, SendNowAnchor::Keep, now)
        .and_then(|keep_period| {
            let reset_period =
                subscription.check_can_send_now(policy, customer, SendNowAnchor::Reset, now)?;
            Ok(SendNowAvailability {
                keep_period,
                reset_period,
            })
        })
        .ok();
    AvailableActions {
        send_now,
        skip,
        unskip: subscription.check_can_unskip(customer).is_ok(),
        change_quantity,
        pause,
        resume: subscription.check_can_resume(customer).is_ok(),
        cancel,
        withdraw_cancellation: subscription
            .check_can_withdraw_cancellation(customer)
            .is_ok(),
        change_plan,
        removable_changes: subscription
            .scheduled_changes
            .iter()
            .filter(|c| {
                subscription
                    .check_can_remove_scheduled_change(c.id, customer)
                    .is_ok()
            })
            .map(|c| c.id)
            .collect(),
    }
}
