//! The subscription value and its status.
//!
//! A [`Subscription`] is a plain value: every transition takes one by reference and
//! returns a new one with the events that describe the change ([`Transition`]), so the
//! store can persist both in one transaction and a rule can be tested without a database.
//!
//! Billing and access are kept apart on purpose. `billing_ends_at` says when renewals
//! stop; `access_until` says until when the subscriber may still use the service. They
//! differ when a subscriber cancels mid-period and keeps what they already paid for.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::period::{Period, date_out_of_range};
use crate::billing::terms::PlanTerms;
use crate::catalog::MAX_TRIAL_DAYS;
use crate::error::Refusal;
use crate::ids::SubscriptionId;
use crate::policy::{PolicyActor, PolicyLimit};
use crate::subscription::cancellation::CancellationDetails;
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::pause::ActivePause;
use crate::subscription::scheduled::ScheduledChange;
use crate::subscription::send_now::SentNow;
use crate::subscription::skip::SkippedRenewal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In a free trial; the first paid period starts at `trial_end`.
    Trialing,
    /// Paid and renewing.
    Active,
    /// The latest renewal's payment failed and dunning is retrying; access continues.
    PastDue,
    /// Renewals are suspended until the subscription resumes.
    Paused,
    /// Ended for good.
    Canceled,
    /// Dunning gave up; no renewals and no access until a payment succeeds.
    Unpaid,
    /// Created, but its first invoice is not paid yet (declined, or waiting for the
    /// customer's authentication): no access and no renewals until it is, which makes
    /// it `active` with the period it was created with.
    Incomplete,
    /// The first invoice was not paid within [`INCOMPLETE_EXPIRES_AFTER`] of the
    /// signup: ended for good, the invoice voided, nothing owed.
    IncompleteExpired,
}

/// How long a subscription may stay `incomplete` before it expires (Stripe's 23 hours).
pub const INCOMPLETE_EXPIRES_AFTER: TimeDelta = TimeDelta::hours(23);

impl SubscriptionStatus {
    pub const ALL: [SubscriptionStatus; 8] = [
        Self::Trialing,
        Self::Active,
        Self::PastDue,
        Self::Paused,
        Self::Canceled,
        Self::Unpaid,
        Self::Incomplete,
        Self::IncompleteExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trialing => "trialing",
            Self::Active => "active",
            Self::PastDue => "past_due",
            Self::Paused => "paused",
            Self::Canceled => "canceled",
            Self::Unpaid => "unpaid",
            Self::Incomplete => "incomplete",
            Self::IncompleteExpired => "incomplete_expired",
        }
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubscriptionStatus {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation(
                    "status",
                    "must be one of trialing, active, past_due, paused, canceled, unpaid, \
                     incomplete, incomplete_expired",
                )
            })
    }
}

/// Who asks for a transition, as a change records it (`requested_by`). Customers are
/// bound by the product's portal policy; a merchant's backend (server-to-server API) and
/// the system (background workers) only by the state rules; a merchant's agent is a
/// merchant held to the policy unless it overrides it ([`Acting`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Customer,
    Merchant,
    System,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Customer => "customer",
            Actor::Merchant => "merchant",
            Actor::System => "system",
        }
    }

    pub fn is_customer(self) -> bool {
        self == Actor::Customer
    }
}

/// Who acts on a subscription: the [`Actor`] a change records as having asked for it, and
/// how the product's policy holds them ([`PolicyActor`]). An [`Actor`] alone is held as it
/// always was: a customer to every limit, a merchant's backend and the system to none; a
/// merchant's agent is [`Acting::agent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acting {
    pub actor: Actor,
    pub held: PolicyActor,
}

impl Acting {
    /// A merchant's agent, held to the policy unless `overriding`.
    pub fn agent(overriding: bool) -> Self {
        Self {
            actor: Actor::Merchant,
            held: PolicyActor::Agent { overriding },
        }
    }
}

impl From<Actor> for Acting {
    fn from(actor: Actor) -> Self {
        let held = match actor {
            Actor::Customer => PolicyActor::Customer,
            Actor::Merchant | Actor::System => PolicyActor::System,
        };
        Self { actor, held }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    /// The terms the next renewal bills.
    pub plan: PlanTerms,
    pub status: SubscriptionStatus,
    /// The instant the billing schedule counts from (see [`crate::billing::period`]).
    pub billing_anchor: DateTime<Utc>,
    /// The period being served: the trial while trialing, else the latest billed period
    /// (frozen while paused).
    pub current_period: Period,
    pub trial_end: Option<DateTime<Utc>>,
    /// When a pending cancellation takes effect; `None` once it has.
    pub cancel_at: Option<DateTime<Utc>>,
    /// When the decision to cancel was made.
    pub canceled_at: Option<DateTime<Utc>>,
    /// When the subscription ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Until when the subscriber keeps access after a cancellation (projected while it is
    /// pending, final once it took effect).
    pub access_until: Option<DateTime<Utc>>,
    /// When renewals stop (projected while a cancellation is pending).
    pub billing_ends_at: Option<DateTime<Utc>>,
    /// The running pause, present exactly when the status is `paused`.
    pub pause: Option<ActivePause>,
    /// Future changes in the order they take effect.
    pub scheduled_changes: Vec<ScheduledChange>,
    /// Who cancelled and why, as they said it: present exactly while a cancellation is
    /// pending or once it took effect (absent from rows written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation: Option<CancellationDetails>,
    /// Units billed each period: `plan.price` × `quantity` (1 in rows written before
    /// quantities existed).
    #[serde(default = "one")]
    pub quantity: u32,
    /// The coming renewals that pass without an invoice, in order: always the next ones
    /// of the schedule, consecutive (see [`crate::subscription::skip`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_renewals: Vec<SkippedRenewal>,
    /// How many renewals in a row have passed skipped since the last billed one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_in_a_row: u32,
    /// The latest send now, until the next renewal (see
    /// [`crate::subscription::send_now`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_now: Option<SentNow>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

/// The result of a transition: the new value and what happened, for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub subscription: Subscription,
    pub events: Vec<SubscriptionEvent>,
    /// The policy limits an overriding agent exceeded, to be recorded as an override.
    pub overridden: Vec<PolicyLimit>,
}

impl Transition {
    pub(crate) fn new(subscription: Subscription, events: Vec<SubscriptionEvent>) -> Self {
        Self {
            subscription,
            events,
            overridden: Vec::new(),
        }
    }

    /// This transition, having exceeded `limits` (collected by its checks).
    pub(crate) fn exceeding(mut self, limits: Vec<PolicyLimit>) -> Self {
        self.overridden = limits;
        self
    }
}

/// What starting a subscription needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSubscription {
    pub id: SubscriptionId,
    pub plan: PlanTerms,
    /// Days of free trial; 0 starts billing at once.
    pub trial_days: u32,
    /// Units, already checked against the product's limits.
    pub quantity: u32,
    /// Without a trial, the first period is paid at signup (the customer has a payment
    /// method to charge): the subscription starts `incomplete` and becomes `active` when
    /// its first invoice is paid. `false` starts it `active`, its first invoice collected
    /// later like a renewal's.
    pub pay_at_signup: bool,
}

impl Subscription {
    /// Starts a subscription at `now`. With a trial, the first paid period starts at the
    /// trial's end, which becomes the billing anchor; without one, `now` is the anchor.
    pub fn create(new: NewSubscription, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        if new.trial_days > MAX_TRIAL_DAYS {
            return Err(DomainError::validation(
                "trial_days",
                format!("must be at most {MAX_TRIAL_DAYS}"),
            ));
        }
        let plan = PlanTerms::new(new.plan.plan_id, new.plan.price, new.plan.cadence)?;
        if !(1..=crate::catalog::MAX_QUANTITY).contains(&new.quantity) {
            return Err(DomainError::validation(
                "quantity",
                format!("must be between 1 and {}", crate::catalog::MAX_QUANTITY),
            ));
        }
        // The price of a period must stay an amount (it is checked again when billed).
        plan.price.times(new.quantity)?;
        let (status, anchor, period, trial_end) = if new.trial_days == 0 {
            let period = plan.cadence.first_period(now)?;
            let status = if new.pay_at_signup {
                SubscriptionStatus::Incomplete
            } else {
                SubscriptionStatus::Active
            };
            (status, now, period, None)
        } else {
            let end = add_days(now, new.trial_days)?;
            let period = Period::new(now, end)?;
            (SubscriptionStatus::Trialing, end, period, Some(end))
        };
        let subscription = Subscription {
            id: new.id,
            plan,
            status,
            billing_anchor: anchor,
            current_period: period,
            trial_end,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            access_until: None,
            billing_ends_at: None,
            pause: None,
            scheduled_changes: Vec::new(),
            cancellation: None,
            quantity: new.quantity,
            skipped_renewals: Vec::new(),
            skipped_in_a_row: 0,
            sent_now: None,
        };
        let event = SubscriptionEvent::Created {
            status,
            current_period: period,
            trial_end,
        };
        Ok(Transition::new(subscription, vec![event]))
    }

    pub fn is_canceled(&self) -> bool {
        self.status == SubscriptionStatus::Canceled
    }

    /// Whether the subscription is over for good (canceled, or expired unpaid).
    pub fn has_ended(&self) -> bool {
        matches!(
            self.status,
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired
        )
    }

    /// When an `incomplete` subscription expires: [`INCOMPLETE_EXPIRES_AFTER`] after its
    /// signup, which began its first period.
    pub fn incomplete_expires_at(&self) -> DateTime<Utc> {
        self.current_period.start + INCOMPLETE_EXPIRES_AFTER
    }

    /// Whether the subscriber may use the service at `now`. Past-due subscribers keep
    /// access while dunning retries; paused ones keep it through the period they paid
    /// before pausing, and beyond when the policy said so when the pause began.
    pub fn has_access(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            SubscriptionStatus::Trialing
            | SubscriptionStatus::Active
            | SubscriptionStatus::PastDue => true,
            SubscriptionStatus::Paused => self
                .pause
                .as_ref()
                .is_some_and(|p| p.keep_access || now < p.paid_through),
            SubscriptionStatus::Unpaid
            | SubscriptionStatus::Incomplete
            | SubscriptionStatus::IncompleteExpired => false,
            SubscriptionStatus::Canceled => self.access_until.is_some_and(|until| now < until),
        }
    }

    /// The end of what the subscriber has paid for (or been given, in a trial), if the
    /// subscription ended at `at`.
    pub(crate) fn paid_through(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self.status {
            SubscriptionStatus::Trialing | SubscriptionStatus::Active => {
                self.prepaid_through().max(at)
            }
            SubscriptionStatus::Paused => {
                self.pause.as_ref().map_or(at, |p| p.paid_through.max(at))
            }
            SubscriptionStatus::PastDue
            | SubscriptionStatus::Unpaid
            | SubscriptionStatus::Canceled
            | SubscriptionStatus::Incomplete
            | SubscriptionStatus::IncompleteExpired => at,
        }
    }

    /// The generic refusal of `action` because of the status alone.
    pub(crate) fn refuse_status(&self, action: &'static str) -> DomainError {
        DomainError::refused(action, Refusal::Status(self.status))
    }
}

pub(crate) fn add_days(t: DateTime<Utc>, days: u32) -> Result<DateTime<Utc>, DomainError> {
    TimeDelta::try_days(i64::from(days))
        .and_then(|d| t.checked_add_signed(d))
        .ok_or_else(date_out_of_range)
}
