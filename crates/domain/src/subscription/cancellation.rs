//! Cancelling.
//!
//! # Customers follow the product's policy
//!
//! * `request` mode: the subscriber gives a reason (and optionally a message); a support
//!   ticket opens (`subscription.cancellation_requested`) and the subscription runs on
//!   until `effective_at`, where a scheduled cancellation ends it. Under
//!   `later_of_notice_and_period_end`, `effective_at` is the later of now + notice and
//!   the end of the current period (the trial's end while trialing), so the subscriber
//!   gets what they paid for and the merchant its notice; under `notice_only` it is
//!   now + notice. If that instant is not in the future, the subscription ends at once.
//!   Withdrawing the request removes the scheduled cancellation.
//! * `immediate` mode: the subscriber must confirm (`confirm: true`, else a validation
//!   error on the field `confirm`), and the subscription ends now or at period end as
//!   the policy's `immediate_cancel_timing` says.
//!
//! # Merchants decide
//!
//! A merchant (or the system) may always cancel a subscription that has not ended, now,
//! at period end or at a chosen future instant (Stripe's `cancel_at`, at most
//! [`MAX_CANCEL_AT_DAYS`] ahead); a merchant's cancellation replaces any pending one.
//! A merchant's agent is held to the policy: `allow_cancel`, and no end before the one a
//! subscriber's own cancellation would get ([`Subscription::cancellation_effective_at`]),
//! unless it overrides them with a reason.
//!
//! # Access and billing end separately
//!
//! When a cancellation takes effect at `t`, renewals stop at `t` (`billing_ends_at`) and
//! access ends per [`AccessEnd`]: `until_period_end` (the default, the only choice for
//! customers) keeps access through what was paid for — the current period when active,
//! the trial when trialing, the period paid before a pause — and `immediately` ends it
//! at `t`. Past-due and unpaid subscriptions did not pay for their period, so their
//! access ends at `t` either way. `canceled_at` records when the decision was made,
//! `ended_at` when it took effect.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Refusal;
use crate::ids::{CancellationRequestId, GenerateId, ScheduledChangeId};
use crate::policy::{
    CancellationMode, ImmediateCancelTiming, NoticeRule, PolicyActor, PolicyLimit, PortalPolicy,
};
use crate::subscription::events::{RemovalReason, SubscriptionEvent};
use crate::subscription::scheduled::{ChangeType, ScheduledChange, ScheduledChangeKind, removed};
use crate::subscription::state::{
    Acting, Actor, Subscription, SubscriptionStatus, Transition, add_days,
};
use crate::text;

/// The longest free-text message a subscriber may attach to a cancellation.
pub const MAX_CANCELLATION_MESSAGE_CHARS: usize = 2000;

/// How many days before a subscriber's access ends `subscription.access_ending` is sent.
pub const ACCESS_ENDING_NOTICE_DAYS: u32 = 7;

/// How far ahead a merchant may schedule a cancellation at a chosen date: five years.
/// Further out is more likely a typo (a year 2205) than a plan, and nothing is lost by
/// scheduling it later.
pub const MAX_CANCEL_AT_DAYS: u32 = 5 * 366;

/// Why a subscriber leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    TooExpensive,
    MissingFeatures,
    SwitchedService,
    Unused,
    CustomerService,
    TooComplex,
    LowQuality,
    Other,
}

impl CancellationReason {
    pub const ALL: [CancellationReason; 8] = [
        Self::TooExpensive,
        Self::MissingFeatures,
        Self::SwitchedService,
        Self::Unused,
        Self::CustomerService,
        Self::TooComplex,
        Self::LowQuality,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooExpensive => "too_expensive",
            Self::MissingFeatures => "missing_features",
            Self::SwitchedService => "switched_service",
            Self::Unused => "unused",
            Self::CustomerService => "customer_service",
            Self::TooComplex => "too_complex",
            Self::LowQuality => "low_quality",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for CancellationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CancellationReason {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                DomainError::validation(
                    "reason",
                    "must be one of too_expensive, missing_features, switched_service, unused, \
                     customer_service, too_complex, low_quality, other",
                )
            })
    }
}

/// When a merchant's cancellation takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CancelTiming {
    #[default]
    Now,
    PeriodEnd,
    /// At a chosen instant, which must be in the future and at most
    /// [`MAX_CANCEL_AT_DAYS`] ahead (the API's `cancel_at`).
    At {
        date: DateTime<Utc>,
    },
}

/// When access ends once a cancellation takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessEnd {
    /// Through the end of what was paid for.
    #[default]
    UntilPeriodEnd,
    Immediately,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Required from customers in `request` mode.
    pub reason: Option<CancellationReason>,
    pub message: Option<String>,
    /// The subscriber's confirmation, required from customers in `immediate` mode.
    #[serde(default)]
    pub confirm: bool,
    /// Merchants only (customers follow the policy); default `now`.
    pub timing: Option<CancelTiming>,
    /// Merchants only; default `until_period_end`.
    pub access: Option<AccessEnd>,
}

/// Who cancelled a subscription and why, kept on it: the reason and message the
/// canceller gave are not lost once the request that carried them is answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationDetails {
    pub reason: Option<CancellationReason>,
    pub message: Option<String>,
    pub requested_by: Actor,
}

/// Everything needed to end a subscription.
#[derive(Clone, Debug)]
pub(crate) struct Ending {
    pub at: DateTime<Utc>,
    pub canceled_at: DateTime<Utc>,
    pub reason: Option<CancellationReason>,
    pub message: Option<String>,
    pub cancellation_request_id: Option<CancellationRequestId>,
    pub requested_by: Actor,
    pub access: AccessEnd,
}

impl Ending {
    fn details(&self) -> CancellationDetails {
        CancellationDetails {
            reason: self.reason,
            message: self.message.clone(),
            requested_by: self.requested_by,
        }
    }
}

impl Subscription {
    /// Whether `by` may cancel now. Every status but `canceled` may be canceled:
    /// leaving is never blocked by a payment problem or a pause.
    pub fn check_can_cancel(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
    ) -> Result<(), DomainError> {
        self.check_cancel(policy, by.into()).map(drop)
    }

    /// [`Self::check_can_cancel`], with the limit an overriding agent exceeds.
    fn check_cancel(
        &self,
        policy: &PortalPolicy,
        by: Acting,
    ) -> Result<Option<PolicyLimit>, DomainError> {
        if self.is_canceled() {
            return Err(DomainError::refused("cancel", Refusal::AlreadyCanceled));
        }
        if self.status == SubscriptionStatus::IncompleteExpired {
            return Err(self.refuse_status("cancel"));
        }
        if by.actor.is_customer() && self.pending(ChangeType::Cancel).is_some() {
            return Err(DomainError::refused("cancel", Refusal::CancellationPending));
        }
        if !policy.allow_cancel {
            return by.held.exceed(PolicyLimit::AllowCancel);
        }
        Ok(None)
    }

    /// When a customer's cancellation made at `now` takes effect under `policy`.
    pub fn cancellation_effective_at(
        &self,
        policy: &PortalPolicy,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DomainError> {
        if self.status == SubscriptionStatus::Incomplete {
            return Ok(now);
        }
        let period_end = self.current_period.end;
        Ok(match policy.cancellation_mode {
            CancellationMode::Request => {
                let notice_end = add_days(now, policy.notice_period_days)?;
                match policy.notice_rule {
                    NoticeRule::LaterOfNoticeAndPeriodEnd => notice_end.max(period_end),
                    NoticeRule::NoticeOnly => notice_end,
                }
            }
            CancellationMode::Immediate => match policy.immediate_cancel_timing {
                ImmediateCancelTiming::Now => now,
                ImmediateCancelTiming::PeriodEnd => period_end.max(now),
            },
        })
    }

    /// Cancels as `by` may. The limits an overriding agent exceeds are in the
    /// transition's `overridden`.
    pub fn cancel(
        &self,
        request: &CancelRequest,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let by = by.into();
        let mut exceeded: Vec<PolicyLimit> = self.check_cancel(policy, by)?.into_iter().collect();
        let message = text::clean_opt(
            "message",
            request.message.as_deref(),
            MAX_CANCELLATION_MESSAGE_CHARS,
            true,
        )?;
        let transition = if self.status == SubscriptionStatus::Incomplete {
            // Nothing was paid: it ends at once, whatever the policy's notice or mode (a
            // notice period would keep an unpaid subscription alive), and its unpaid first
            // invoice is voided by the app.
            self.cancel_at_or_now(Ending {
                at: now,
                canceled_at: now,
                reason: request.reason,
                message,
                cancellation_request_id: None,
                requested_by: by.actor,
                access: AccessEnd::Immediately,
            })?
        } else if by.actor.is_customer() {
            self.customer_cancel(request, message, policy, now)?
        } else {
            let (transition, early) = self.merchant_cancel(request, message, policy, by, now)?;
            exceeded.extend(early);
            transition
        };
        let mut transition = transition;
        let dropped = transition.subscription.drop_all_skips();
        transition.events.extend(dropped);
        Ok(transition.exceeding(exceeded))
    }

    fn customer_cancel(
        &self,
        request: &CancelRequest,
        message: Option<String>,
        policy: &PortalPolicy,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        for (field, given) in [
            ("timing", request.timing.is_some()),
            ("access", request.access.is_some()),
        ] {
            if given {
                return Err(DomainError::validation(
                    field,
                    "is set by the merchant's policy for customers",
                ));
            }
        }
        let effective_at = self.cancellation_effective_at(policy, now)?;
        match policy.cancellation_mode {
            CancellationMode::Request => {
                let reason = request.reason.ok_or_else(|| {
                    DomainError::validation("reason", "is required to request a cancellation")
                })?;
                let id = CancellationRequestId::generate();
                let requested = SubscriptionEvent::CancellationRequested {
                    cancellation_request_id: id,
                    reason,
                    message: message.clone(),
                    effective_at,
                };
                let ending = Ending {
                    at: effective_at,
                    canceled_at: now,
                    reason: Some(reason),
                    message,
                    cancellation_request_id: Some(id),
                    requested_by: Actor::Customer,
                    access: AccessEnd::UntilPeriodEnd,
                };
                let mut next = self.clone();
                let mut events = vec![requested];
                if effective_at <= now {
                    events.extend(next.end(Ending { at: now, ..ending })?);
                } else {
                    next.schedule_cancel(&ending);
                }
                Ok(Transition::new(next, events))
            }
            CancellationMode::Immediate => {
                if !request.confirm {
                    return Err(DomainError::validation(
                        "confirm",
                        "must be true: cancelling at once needs the subscriber's confirmation",
                    ));
                }
                self.cancel_at_or_now(Ending {
                    at: effective_at,
                    canceled_at: now,
                    reason: request.reason,
                    message,
                    cancellation_request_id: None,
                    requested_by: Actor::Customer,
                    access: AccessEnd::UntilPeriodEnd,
                })
            }
        }
    }

    /// A merchant's cancellation, at the timing it chose. An agent is held to the
    /// policy's notice: it may not end the subscription before a subscriber's own
    /// cancellation would (unless overriding, which the second value reports).
    fn merchant_cancel(
        &self,
        request: &CancelRequest,
        message: Option<String>,
        policy: &PortalPolicy,
        by: Acting,
        now: DateTime<Utc>,
    ) -> Result<(Transition, Option<PolicyLimit>), DomainError> {
        let at = match request.timing.unwrap_or_default() {
            CancelTiming::Now => now,
            CancelTiming::PeriodEnd => self.current_period.end.max(now),
            CancelTiming::At { date } => check_cancel_at(date, now)?,
        };
        let early = if by.held != PolicyActor::System
            && at < self.cancellation_effective_at(policy, now)?
        {
            by.held.exceed(PolicyLimit::CancellationNotice)?
        } else {
            None
        };
        let transition = self.replace_pending_cancellation(Ending {
            at,
            canceled_at: now,
            reason: request.reason,
            message,
            cancellation_request_id: None,
            requested_by: by.actor,
            access: request.access.unwrap_or_default(),
        })?;
        Ok((transition, early))
    }

    /// A merchant approves the customer's pending cancellation request early: the
    /// subscription ends now, through the paid period, as the customer's cancellation,
    /// with the `reason` and `message` of their request.
    pub fn approve_cancellation(
        &self,
        reason: CancellationReason,
        message: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        if self.is_canceled() {
            return Err(DomainError::refused("cancel", Refusal::AlreadyCanceled));
        }
        if self.pending(ChangeType::Cancel).is_none() {
            return Err(DomainError::refused(
                "approve the cancellation of",
                Refusal::NoCancellationPending,
            ));
        }
        self.replace_pending_cancellation(Ending {
            at: now,
            canceled_at: now,
            reason: Some(reason),
            message,
            cancellation_request_id: None,
            requested_by: Actor::Customer,
            access: AccessEnd::UntilPeriodEnd,
        })
    }

    /// Cancels as `ending` says, in place of any pending cancellation (removed with an
    /// event first).
    fn replace_pending_cancellation(&self, ending: Ending) -> Result<Transition, DomainError> {
        let mut replaced = self.clone();
        let mut events = Vec::new();
        if let Some(existing) = self.pending(ChangeType::Cancel)
            && let Some(change) = replaced.take_change(existing.id)
        {
            replaced.clear_pending_cancellation();
            events.push(removed(change, RemovalReason::Replaced));
        }
        let mut transition = replaced.cancel_at_or_now(ending)?;
        events.append(&mut transition.events);
        transition.events = events;
        Ok(transition)
    }

    /// Ends the subscription at `ending.at` if that is not in the future (`canceled_at`
    /// is taken as "now"), else schedules the cancellation.
    fn cancel_at_or_now(&self, ending: Ending) -> Result<Transition, DomainError> {
        let mut next = self.clone();
        let events = if ending.at <= ending.canceled_at {
            next.end(Ending {
                at: ending.canceled_at,
                ..ending
            })?
        } else {
            let change = next.schedule_cancel(&ending);
            vec![SubscriptionEvent::CancelScheduled {
                change,
                message: ending.message,
            }]
        };
        Ok(Transition::new(next, events))
    }

    fn schedule_cancel(&mut self, ending: &Ending) -> ScheduledChange {
        let kind = ScheduledChangeKind::Cancel {
            reason: ending.reason,
            cancellation_request_id: ending.cancellation_request_id,
            access: ending.access,
        };
        let change = ScheduledChange::new(ending.at, ending.canceled_at, ending.requested_by, kind);
        self.cancellation = Some(ending.details());
        self.cancel_at = Some(ending.at);
        self.billing_ends_at = Some(ending.at);
        self.access_until = Some(self.access_end(ending.access, ending.at));
        self.schedule(change.clone());
        change
    }

    pub(crate) fn clear_pending_cancellation(&mut self) {
        self.cancellation = None;
        self.cancel_at = None;
        self.billing_ends_at = None;
        self.access_until = None;
    }

    /// Moves a pending cancellation's projected `access_until` with the period it falls
    /// in: a cancellation dated beyond the current period ends access with the period
    /// that contains its date, which is known only once that period has begun (a
    /// renewal, a trial's end).
    pub(crate) fn reproject_pending_access(&mut self) {
        if let Some((due_at, access)) =
            self.pending(ChangeType::Cancel).and_then(|c| match c.kind {
                ScheduledChangeKind::Cancel { access, .. } => Some((c.due_at, access)),
                _ => None,
            })
        {
            self.access_until = Some(self.access_end(access, due_at));
        }
    }

    /// The end of access to announce at `now` (`subscription.access_ending`): the
    /// `access_until` of a pending cancellation, or what remains of a canceled
    /// subscription's access, when it is at most [`ACCESS_ENDING_NOTICE_DAYS`] away and
    /// the subscriber still has access to lose.
    pub fn access_ending_soon(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.access_until?;
        let horizon = add_days(now, ACCESS_ENDING_NOTICE_DAYS).ok()?;
        (until > now && until <= horizon && self.has_access(now)).then_some(until)
    }

    fn access_end(&self, access: AccessEnd, at: DateTime<Utc>) -> DateTime<Utc> {
        match access {
            AccessEnd::Immediately => at,
            AccessEnd::UntilPeriodEnd => self.paid_through(at),
        }
    }

    /// Ends the subscription; every other scheduled change is dropped with an event.
    pub(crate) fn end(&mut self, ending: Ending) -> Result<Vec<SubscriptionEvent>, DomainError> {
        let access_until = self.access_end(ending.access, ending.at);
        self.status = SubscriptionStatus::Canceled;
        self.cancellation = Some(ending.details());
        self.canceled_at = Some(ending.canceled_at);
        self.ended_at = Some(ending.at);
        self.billing_ends_at = Some(ending.at);
        self.access_until = Some(access_until);
        self.cancel_at = None;
        self.pause = None;
        let mut events = vec![SubscriptionEvent::Canceled {
            canceled_at: ending.canceled_at,
            ended_at: ending.at,
            access_until,
            reason: ending.reason,
            message: ending.message,
            cancellation_request_id: ending.cancellation_request_id,
            requested_by: ending.requested_by,
        }];
        events.extend(
            std::mem::take(&mut self.scheduled_changes)
                .into_iter()
                .map(|c| removed(c, RemovalReason::SubscriptionCanceled)),
        );
        events.extend(self.drop_stale_skips());
        Ok(events)
    }

    /// The pending cancellation `actor` may withdraw.
    pub fn check_can_withdraw_cancellation(
        &self,
        actor: Actor,
    ) -> Result<ScheduledChangeId, DomainError> {
        if self.has_ended() {
            return Err(self.refuse_status("withdraw the cancellation of"));
        }
        let pending = self.pending(ChangeType::Cancel).ok_or_else(|| {
            DomainError::refused(
                "withdraw the cancellation of",
                Refusal::NoCancellationPending,
            )
        })?;
        self.check_can_remove_scheduled_change(pending.id, actor)
            .map(|change| change.id)
    }

    /// Withdraws the pending cancellation; the subscription carries on as before.
    pub fn withdraw_cancellation(&self, actor: Actor) -> Result<Transition, DomainError> {
        let id = self.check_can_withdraw_cancellation(actor)?;
        self.remove_scheduled_change(id, actor)
    }
}

/// A merchant's chosen cancellation instant, if it is in the future and within
/// [`MAX_CANCEL_AT_DAYS`] of `now`.
fn check_cancel_at(date: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, DomainError> {
    if date <= now {
        return Err(DomainError::validation(
            "cancel_at",
            "must be in the future",
        ));
    }
    if date > add_days(now, MAX_CANCEL_AT_DAYS)? {
        return Err(DomainError::validation(
            "cancel_at",
            format!("must be at most {MAX_CANCEL_AT_DAYS} days ahead"),
        ));
    }
    Ok(date)
}
