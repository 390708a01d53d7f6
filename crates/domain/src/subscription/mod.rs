//! The subscription state machine.
//!
//! Every transition is a pure function of the current value, the command, the
//! product's [`PortalPolicy`](crate::policy::PortalPolicy), the [`Actor`] and the time:
//! it returns the new value and its events ([`Transition`]), or a
//! [`DomainError`](crate::DomainError) with a stable code. An illegal action is always refused, never
//! ignored. Each transition starts with a `check_can_*` function that
//! [`available_actions`] also calls, so the portal offers exactly what will work.
//!
//! # What each status allows
//!
//! | status    | pause | resume | cancel | withdraw cancellation | change plan |
//! |-----------|-------|--------|--------|-----------------------|-------------|
//! | trialing  | no `subscription_trialing` | no `not_paused` | yes | if pending | yes, at once, no proration |
//! | active    | yes   | no `not_paused` | yes | if pending | yes |
//! | past_due  | no `subscription_past_due` | no `not_paused` | yes | if pending | no `subscription_past_due` |
//! | paused    | no `already_paused` | yes | yes | if pending | no `subscription_paused` |
//! | canceled  | no `subscription_canceled` | no `subscription_canceled` | no `already_canceled` | no `subscription_canceled` | no `subscription_canceled` |
//! | unpaid    | no `subscription_unpaid` | no `not_paused` | yes | if pending | no `subscription_unpaid` |
//! | incomplete | no `subscription_incomplete` | no `not_paused` | yes, at once, whatever the policy's mode | no | no `subscription_incomplete` |
//! | incomplete_expired | no `subscription_incomplete_expired` | no `subscription_incomplete_expired` | no `subscription_incomplete_expired` | no `subscription_incomplete_expired` | no `subscription_incomplete_expired` |
//!
//! On top of the status:
//!
//! * pending cancellation: pause → `cancellation_pending`, change plan →
//!   `cancellation_pending`, a customer's second cancel → `cancellation_pending` (a
//!   merchant's cancel replaces the pending one);
//! * a pause already scheduled: pause → `pause_scheduled`;
//! * a plan change already scheduled: change plan → `plan_change_scheduled`;
//! * the current period has ended but not been renewed: change plan → `renewal_pending`;
//! * the policy's limits ([`PolicyLimit`](crate::policy::PolicyLimit)), for customers
//!   and for merchants' agents who do not override them ([`Acting`]):
//!   `pause_not_allowed`, `pause_too_long`, `cancel_not_allowed`,
//!   `cancellation_notice_required` (agents: an end before the policy's notice),
//!   `plan_change_not_allowed`, `plan_not_allowed`;
//! * customers only: `resume_not_allowed` (the merchant paused), `change_not_removable`
//!   (a merchant's change, or the automatic resume of a pause);
//! * switching to the current plan: `same_plan`.
//!
//! System transitions (the billing engine): [`Subscription::apply_due`],
//! [`Subscription::renew`], [`Subscription::record_payment_failure`]
//! (active → past_due), [`Subscription::mark_unpaid`] (past_due → unpaid),
//! [`Subscription::record_payment_recovery`] (past_due | unpaid → active),
//! [`Subscription::activate`] (incomplete → active, the first invoice paid),
//! [`Subscription::expire_incomplete`] (incomplete → incomplete_expired).
//!
//! The detailed rules live with each action: [`pause`], [`cancellation`],
//! [`plan_change`], [`scheduled`], [`renewal`].

pub mod actions;
pub mod availability;
pub mod cancellation;
pub mod events;
pub mod invariants;
pub mod pause;
pub mod plan_change;
pub mod quantity;
pub mod renewal;
pub mod scheduled;
pub mod send_now;
pub mod skip;
pub mod state;
pub mod trial;

#[cfg(test)]
mod tests;

pub use crate::billing::terms::PlanTerms;
pub use actions::Command;
pub use availability::{
    AvailableActions, CancelAvailability, OfferedPlan, PauseAvailability, PlanChangeAvailability,
    QuantityAvailability, SendNowAvailability, SkipAvailability, available_actions,
};
pub use cancellation::{
    ACCESS_ENDING_NOTICE_DAYS, AccessEnd, CancelRequest, CancelTiming, CancellationDetails,
    CancellationReason, MAX_CANCEL_AT_DAYS,
};
pub use events::{RemovalReason, SubscriptionEvent};
pub use pause::{ActivePause, OnResume, PauseEnd, PauseRequest, PauseStart};
pub use plan_change::{PlanChangePreview, PlanChangeRequest, PlanChangeTiming, TargetProduct};
pub use quantity::{QuantityChangePreview, terms_times};
pub use scheduled::{ChangeType, ScheduledChange, ScheduledChangeKind};
pub use send_now::{SendNowAnchor, SentNow};
pub use skip::SkippedRenewal;
pub use state::{
    Acting, Actor, INCOMPLETE_EXPIRES_AFTER, NewSubscription, Subscription, SubscriptionStatus,
    Transition,
};
