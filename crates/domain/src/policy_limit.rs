//! The limits of the portal policy, by name: what refuses a subscriber, and what a
//! merchant's agent may exceed with an override ([`crate::policy::PolicyActor`]).

use serde::{Deserialize, Serialize};

/// A limit of the portal policy, named as the policy's field that sets it. A subscriber is
/// held to every one; so is a merchant's agent, unless the request overrides it with a
/// reason (docs/billing.md, "Agents held to the policy").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyLimit {
    /// `allow_pause: false`.
    AllowPause,
    /// A pause longer than `max_pause_days`, or open-ended under it.
    MaxPauseDays,
    /// `allow_cancel: false`.
    AllowCancel,
    /// A cancellation that ends the subscription before the policy would: its
    /// `cancellation_mode`, `notice_period_days` and `notice_rule` (or
    /// `immediate_cancel_timing`).
    CancellationNotice,
    /// `allow_plan_change: false`.
    AllowPlanChange,
    /// A plan the policy does not offer: not in `switchable_plan_ids`, or another
    /// product's.
    SwitchablePlanIds,
    /// `allow_skip: false`.
    AllowSkip,
    /// More renewals skipped in a row than `max_consecutive_skips`.
    MaxConsecutiveSkips,
    /// `allow_send_now: false`.
    AllowSendNow,
    /// The merchant's `order_cutoff_hours`: a change of the next renewal's order after its
    /// edit cutoff (docs/orders.md, "The edit cutoff"). Its refusal is
    /// `order_edit_cutoff_passed`, naming the cutoff.
    OrderCutoffHours,
}

impl PolicyLimit {
    pub const ALL: [PolicyLimit; 10] = [
        PolicyLimit::AllowPause,
        PolicyLimit::MaxPauseDays,
        PolicyLimit::AllowCancel,
        PolicyLimit::CancellationNotice,
        PolicyLimit::AllowPlanChange,
        PolicyLimit::SwitchablePlanIds,
        PolicyLimit::AllowSkip,
        PolicyLimit::MaxConsecutiveSkips,
        PolicyLimit::AllowSendNow,
        PolicyLimit::OrderCutoffHours,
    ];

    /// How the limit is named on the wire (a problem's `limit`, an override's `limits`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyLimit::AllowPause => "allow_pause",
            PolicyLimit::MaxPauseDays => "max_pause_days",
            PolicyLimit::AllowCancel => "allow_cancel",
            PolicyLimit::CancellationNotice => "cancellation_notice",
            PolicyLimit::AllowPlanChange => "allow_plan_change",
            PolicyLimit::SwitchablePlanIds => "switchable_plan_ids",
            PolicyLimit::AllowSkip => "allow_skip",
            PolicyLimit::MaxConsecutiveSkips => "max_consecutive_skips",
            PolicyLimit::AllowSendNow => "allow_send_now",
            PolicyLimit::OrderCutoffHours => "order_cutoff_hours",
        }
    }

    /// The limit named `name` on the wire.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// The problem code of a refusal by this limit.
    pub fn code(self) -> &'static str {
        match self {
            PolicyLimit::AllowPause => "pause_not_allowed",
            PolicyLimit::MaxPauseDays => "pause_too_long",
            PolicyLimit::AllowCancel => "cancel_not_allowed",
            PolicyLimit::CancellationNotice => "cancellation_notice_required",
            PolicyLimit::AllowPlanChange => "plan_change_not_allowed",
            PolicyLimit::SwitchablePlanIds => "plan_not_allowed",
            PolicyLimit::AllowSkip => "skip_not_allowed",
            PolicyLimit::MaxConsecutiveSkips => "too_many_consecutive_skips",
            PolicyLimit::AllowSendNow => "send_now_not_allowed",
            PolicyLimit::OrderCutoffHours => crate::order_cutoff::CUTOFF_PASSED,
        }
    }

    /// What the limit does not allow, as the refusal words it.
    pub fn action(self) -> &'static str {
        match self {
            PolicyLimit::AllowPause => "pausing",
            PolicyLimit::MaxPauseDays => "a pause this long",
            PolicyLimit::AllowCancel => "cancelling",
            PolicyLimit::CancellationNotice => "a cancellation before its notice ends",
            PolicyLimit::AllowPlanChange => "changing plan",
            PolicyLimit::SwitchablePlanIds => "switching to this plan",
            PolicyLimit::AllowSkip => "skipping a renewal",
            PolicyLimit::MaxConsecutiveSkips => "skipping this many renewals in a row",
            PolicyLimit::AllowSendNow => "sending the next order now",
            PolicyLimit::OrderCutoffHours => "changing the next order after its edit cutoff",
        }
    }
}
