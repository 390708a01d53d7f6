//! What happened to a subscription, for the outbox and webhooks.
//!
//! Each transition returns its events; the store writes them to the outbox in the same
//! transaction as the new subscription row, so a webhook is sent exactly for a change
//! that was committed. `event_type()` gives the catalogue name integrators subscribe to.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::billing::period::Period;
use crate::billing::proration::Proration;
use crate::billing::terms::PlanTerms;
use crate::ids::{CancellationRequestId, ScheduledChangeId};
use crate::subscription::cancellation::CancellationReason;
use crate::subscription::scheduled::ScheduledChange;
use crate::subscription::send_now::SendNowAnchor;
use crate::subscription::state::{Actor, SubscriptionStatus};

/// Why a scheduled change disappeared without taking effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RemovalReason {
    /// Someone removed it.
    Removed { by: Actor },
    /// A newer change of the same kind took its place.
    Replaced,
    /// The subscription ended first.
    SubscriptionCanceled,
    /// When it fell due, the subscription's state no longer allowed it (`code` is the
    /// refusal's stable code, e.g. `subscription_past_due` for a pause).
    NotApplicable { code: &'static str },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubscriptionEvent {
    Created {
        status: SubscriptionStatus,
        current_period: Period,
        trial_end: Option<DateTime<Utc>>,
    },
    /// The trial is over; `period` is the first paid period, to be invoiced.
    TrialEnded {
        period: Period,
    },
    /// The trial was extended (a retention offer); the first paid period starts at
    /// the new `trial_end`.
    TrialExtended {
        previous_trial_end: DateTime<Utc>,
        trial_end: DateTime<Utc>,
    },
    /// A new period began; to be invoiced.
    Renewed {
        period: Period,
    },
    PastDue,
    Unpaid,
    /// A payment succeeded after `past_due` or `unpaid`.
    Recovered,
    /// The first invoice of an `incomplete` subscription was paid: it is `active`.
    Activated,
    /// The first invoice was not paid in time: `incomplete_expired`, for good.
    IncompleteExpired {
        expired_at: DateTime<Utc>,
    },
    Paused {
        started_at: DateTime<Utc>,
        resumes_at: Option<DateTime<Utc>>,
    },
    PauseScheduled {
        change: ScheduledChange,
    },
    /// `new_period` is set when resuming began a new period that must be invoiced.
    Resumed {
        resumed_at: DateTime<Utc>,
        new_period: Option<Period>,
    },
    ResumeScheduled {
        change: ScheduledChange,
    },
    /// A customer asked to cancel (request mode): open a support ticket.
    CancellationRequested {
        cancellation_request_id: CancellationRequestId,
        reason: CancellationReason,
        message: Option<String>,
        effective_at: DateTime<Utc>,
    },
    CancellationWithdrawn {
        change_id: ScheduledChangeId,
        cancellation_request_id: Option<CancellationRequestId>,
    },
    CancelScheduled {
        change: ScheduledChange,
        message: Option<String>,
    },
    Canceled {
        canceled_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        access_until: DateTime<Utc>,
        reason: Option<CancellationReason>,
        message: Option<String>,
        cancellation_request_id: Option<CancellationRequestId>,
        requested_by: Actor,
    },
    /// The plan changed now; `proration` is to be invoiced (or credited) at once.
    PlanChanged {
        from: PlanTerms,
        to: PlanTerms,
        proration: Option<Proration>,
    },
    PlanChangeScheduled {
        change: ScheduledChange,
    },
    /// The quantity changed at once; `proration` is `None` while trialing.
    QuantityChanged {
        from: u32,
        to: u32,
        by: Actor,
        proration: Option<Proration>,
    },
    ScheduledChangeRemoved {
        change: ScheduledChange,
        reason: RemovalReason,
    },
    /// The renewal at `renewal_at` will pass without an invoice.
    RenewalSkipScheduled {
        renewal_at: DateTime<Utc>,
        by: Actor,
    },
    /// A skip was taken back, or no longer applies (`reason`): that renewal bills again.
    RenewalSkipRemoved {
        renewal_at: DateTime<Utc>,
        reason: RemovalReason,
    },
    /// A skipped renewal came: `period` began without an invoice or a charge.
    RenewalSkipped {
        period: Period,
    },
    /// The next renewal was brought forward to now: `period` is to be invoiced now (the
    /// next period of the schedule with `keep`, a period starting now with `reset`).
    SentNow {
        period: Period,
        anchor: SendNowAnchor,
        by: Actor,
    },
    /// A renewal a send now already invoiced came: `period` began, nothing billed.
    RenewalPrepaid {
        period: Period,
    },
}

impl SubscriptionEvent {
    /// The catalogue name of the event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "subscription.created",
            Self::TrialEnded { .. } => "subscription.trial_ended",
            Self::TrialExtended { .. } => "subscription.trial_extended",
            Self::Renewed { .. } => "subscription.renewed",
            Self::PastDue => "subscription.past_due",
            Self::Unpaid => "subscription.unpaid",
            Self::Recovered => "subscription.recovered",
            Self::Activated => "subscription.activated",
            Self::IncompleteExpired { .. } => "subscription.incomplete_expired",
            Self::Paused { .. } => "subscription.paused",
            Self::PauseScheduled { .. } => "subscription.pause_scheduled",
            Self::Resumed { .. } => "subscription.resumed",
            Self::ResumeScheduled { .. } => "subscription.resume_scheduled",
            Self::CancellationRequested { .. } => "subscription.cancellation_requested",
            Self::CancellationWithdrawn { .. } => "subscription.cancellation_withdrawn",
            Self::CancelScheduled { .. } => "subscription.cancel_scheduled",
            Self::Canceled { .. } => "subscription.canceled",
            Self::PlanChanged { .. } => "subscription.plan_changed",
            Self::PlanChangeScheduled { .. } => "subscription.plan_change_scheduled",
            Self::QuantityChanged { .. } => "subscription.quantity_changed",
            Self::ScheduledChangeRemoved { .. } => "subscription.scheduled_change_removed",
            Self::RenewalSkipScheduled { .. } => "subscription.renewal_skip_scheduled",
            Self::RenewalSkipRemoved { .. } => "subscription.renewal_skip_removed",
            Self::RenewalSkipped { .. } => "subscription.renewal_skipped",
            Self::SentNow { .. } => "subscription.sent_now",
            Self::RenewalPrepaid { .. } => "subscription.renewal_prepaid",
        }
    }

    /// Every catalogue name, for documentation and webhook endpoint filters.
    pub const EVENT_TYPES: &'static [&'static str] = &[
        "subscription.created",
        "subscription.trial_ended",
        "subscription.trial_extended",
        "subscription.renewed",
        "subscription.past_due",
        "subscription.unpaid",
        "subscription.recovered",
        "subscription.activated",
        "subscription.incomplete_expired",
        "subscription.paused",
        "subscription.pause_scheduled",
        "subscription.resumed",
        "subscription.resume_scheduled",
        "subscription.cancellation_requested",
        "subscription.cancellation_withdrawn",
        "subscription.cancel_scheduled",
        "subscription.canceled",
        "subscription.plan_changed",
        "subscription.plan_change_scheduled",
        "subscription.quantity_changed",
        "subscription.scheduled_change_removed",
        "subscription.renewal_skip_scheduled",
        "subscription.renewal_skip_removed",
        "subscription.renewal_skipped",
        "subscription.sent_now",
        "subscription.renewal_prepaid",
    ];
}
