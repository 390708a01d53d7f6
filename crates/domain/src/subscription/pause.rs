//! Pausing and resuming.
//!
//! # The model
//!
//! A pause is explicit about both ends. It **starts** `now`, at the end of the current
//! period (`period_end`, the default a frontend should offer: the subscriber has paid
//! for the period and loses nothing), or at a future date. It **ends** at a date, after
//! a number of billing cycles, or never (open-ended, until someone resumes). A pause
//! that starts later is a scheduled change, visible and removable before it starts; a
//! pause with an end gets a scheduled resume when it starts.
//!
//! *After N cycles* means N renewals are skipped: the first skipped renewal is the
//! first period boundary at or after both the pause's start and the end of the period
//! already paid for, and the pause ends N boundaries later.
//!
//! # Limits
//!
//! A customer is bound by the policy: `allow_pause`, and `max_pause_days` counted from
//! the pause's start. A customer's open-ended pause under a limit of `d` days ends after
//! `d` days (the longest pause allowed, rather than a refusal the subscriber cannot act
//! on); an explicit end beyond the limit is refused with `pause_too_long`, so that the
//! subscriber is never given a shorter pause than they asked for without knowing.
//! A merchant's agent is held to the same limits unless it overrides them with a reason
//! (an open-ended pause then stays open-ended); a merchant's backend is bound by neither.
//!
//! # Resuming
//!
//! Resuming before the end of the period paid before the pause simply continues that
//! period: nothing is charged and nothing refunded. Resuming later starts billing again,
//! per `on_resume`: `reset_anchor` (default) starts a full period at the resume instant
//! and makes it the new anchor; `keep_anchor` bills a stub period up to the next
//! boundary of the original schedule (the billing engine prorates it with
//! [`crate::billing::proration::split`]).
//!
//! Access while paused: the subscriber keeps access through the period paid before the
//! pause, and throughout the pause if the policy said `keep_access_while_paused` when
//! the pause was requested.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Refusal;
use crate::policy::{PolicyActor, PolicyLimit, PortalPolicy};
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::scheduled::{ChangeType, ScheduledChange, ScheduledChangeKind};
use crate::subscription::state::{
    Acting, Actor, Subscription, SubscriptionStatus, Transition, add_days,
};

/// The longest pause by cycle count: three years of monthly cycles.
pub const MAX_PAUSE_CYCLES: u32 = 36;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PauseStart {
    Now,
    /// At the end of the current period.
    #[default]
    PeriodEnd,
    /// At a date not in the past.
    At {
        date: DateTime<Utc>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PauseEnd {
    At {
        date: DateTime<Utc>,
    },
    AfterCycles {
        cycles: u32,
    },
    /// Until someone resumes; for customers limited by `max_pause_days`.
    #[default]
    OpenEnded,
}

/// How billing restarts when a pause ends after the paid period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnResume {
    /// A full period starts at the resume instant, which becomes the new anchor.
    #[default]
    ResetAnchor,
    /// A stub period runs to the next boundary of the original schedule.
    KeepAnchor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PauseRequest {
    pub start: PauseStart,
    pub end: PauseEnd,
    pub on_resume: OnResume,
}

/// The running pause of a `paused` subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePause {
    pub started_at: DateTime<Utc>,
    /// When the scheduled resume falls due; `None` for an open-ended pause.
    pub resumes_at: Option<DateTime<Utc>>,
    pub on_resume: OnResume,
    /// Whether access continues for the whole pause.
    pub keep_access: bool,
    /// The end of the period paid before the pause.
    pub paid_through: DateTime<Utc>,
    pub requested_by: Actor,
}

/// Everything a pause needs when it starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PauseTerms {
    pub started_at: DateTime<Utc>,
    pub resumes_at: Option<DateTime<Utc>>,
    pub on_resume: OnResume,
    pub keep_access: bool,
    pub requested_by: Actor,
}

impl Subscription {
    /// Whether the status alone lets the subscription pause. Only an `active`
    /// subscription pauses: a trial costs nothing to keep, a past-due or unpaid one must
    /// settle its payment first, and a paused one is already paused.
    pub(crate) fn check_pause_state(&self) -> Result<(), DomainError> {
        match self.status {
            SubscriptionStatus::Active => Ok(()),
            SubscriptionStatus::Paused => {
                Err(DomainError::refused("pause", Refusal::AlreadyPaused))
            }
            _ => Err(self.refuse_status("pause")),
        }
    }

    /// Whether `by` may pause the subscription now, whatever the request's dates.
    pub fn check_can_pause(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
    ) -> Result<(), DomainError> {
        self.pause_limits(policy, by.into().held).map(drop)
    }

    /// [`Self::check_can_pause`], with the limit an overriding agent exceeds.
    fn pause_limits(
        &self,
        policy: &PortalPolicy,
        held: PolicyActor,
    ) -> Result<Option<PolicyLimit>, DomainError> {
        self.check_pause_state()?;
        if self.pending(ChangeType::Cancel).is_some() {
            return Err(DomainError::refused("pause", Refusal::CancellationPending));
        }
        if self.pending(ChangeType::Pause).is_some() {
            return Err(DomainError::refused("pause", Refusal::PauseScheduled));
        }
        // The next period is paid and (for goods) shipped: it is served first.
        if self.renewal_prepaid() {
            return Err(DomainError::refused("pause", Refusal::RenewalSentNow));
        }
        if !policy.allow_pause {
            return held.exceed(PolicyLimit::AllowPause);
        }
        Ok(None)
    }

    /// Pauses now, or schedules the pause when it starts later. The limits an overriding
    /// agent exceeds are in the transition's `overridden`.
    pub fn pause(
        &self,
        request: &PauseRequest,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let Acting { actor, held } = by.into();
        let mut exceeded: Vec<PolicyLimit> = self.pause_limits(policy, held)?.into_iter().collect();
        let start = self.pause_start(request.start, now)?;
        let (resumes_at, too_long) = self.pause_resumes_at(request.end, start, policy, held)?;
        exceeded.extend(too_long);
        let keep_access = policy.keep_access_while_paused;
        let mut next = self.clone();
        let events = if start <= now {
            next.begin_pause(PauseTerms {
                started_at: now,
                resumes_at,
                on_resume: request.on_resume,
                keep_access,
                requested_by: actor,
            })?
        } else {
            let kind = ScheduledChangeKind::Pause {
                ends: request.end,
                resumes_at,
                on_resume: request.on_resume,
                keep_access,
            };
            let change = ScheduledChange::new(start, now, actor, kind);
            next.schedule(change.clone());
            vec![SubscriptionEvent::PauseScheduled { change }]
        };
        Ok(Transition::new(next, events).exceeding(exceeded))
    }

    fn pause_start(
        &self,
        start: PauseStart,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DomainError> {
        match start {
            PauseStart::Now => Ok(now),
            PauseStart::PeriodEnd => Ok(self.current_period.end.max(now)),
            PauseStart::At { date } if date < now => Err(DomainError::validation(
                "start.date",
                "must not be in the past",
            )),
            PauseStart::At { date } => Ok(date),
        }
    }

    /// When a pause starting at `start` ends, and whether it exceeds `max_pause_days` for
    /// an overriding agent. Whoever the limit holds has an open-ended pause end at the
    /// limit, and an explicit end beyond it refused.
    fn pause_resumes_at(
        &self,
        end: PauseEnd,
        start: DateTime<Utc>,
        policy: &PortalPolicy,
        held: PolicyActor,
    ) -> Result<(Option<DateTime<Utc>>, Option<PolicyLimit>), DomainError> {
        let cap = if held.is_held() {
            policy.max_pause_days
        } else {
            None
        };
        let resumes_at = match end {
            PauseEnd::At { date } if date <= start => {
                return Err(DomainError::validation(
                    "end.date",
                    "must be after the pause starts",
                ));
            }
            PauseEnd::At { date } => Some(date),
            PauseEnd::AfterCycles { cycles } => Some(self.boundary_after_cycles(start, cycles)?),
            PauseEnd::OpenEnded => cap.map(|days| add_days(start, days)).transpose()?,
        };
        let too_long = match (policy.max_pause_days, resumes_at) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(days), Some(resumes_at)) => resumes_at > add_days(start, days)?,
        };
        let exceeded = if too_long {
            held.exceed(PolicyLimit::MaxPauseDays)?
        } else {
            None
        };
        Ok((resumes_at, exceeded))
    }

    /// The boundary at which a pause starting at `start` ends after skipping `cycles`
    /// renewals (see the module docs).
    fn boundary_after_cycles(
        &self,
        start: DateTime<Utc>,
        cycles: u32,
    ) -> Result<DateTime<Utc>, DomainError> {
        if !(1..=MAX_PAUSE_CYCLES).contains(&cycles) {
            return Err(DomainError::validation(
                "end.cycles",
                format!("must be between 1 and {MAX_PAUSE_CYCLES}"),
            ));
        }
        let cadence = self.plan.cadence;
        let anchor = self.billing_anchor;
        let from = start.max(self.current_period.end);
        let k = cadence.index_containing(anchor, from)?;
        let first_skipped = if cadence.boundary(anchor, k)? == from {
            k
        } else {
            k.saturating_add(1)
        };
        cadence.boundary(anchor, first_skipped.saturating_add(cycles))
    }

    pub(crate) fn begin_pause(
        &mut self,
        terms: PauseTerms,
    ) -> Result<Vec<SubscriptionEvent>, DomainError> {
        self.status = SubscriptionStatus::Paused;
        self.pause = Some(ActivePause {
            started_at: terms.started_at,
            resumes_at: terms.resumes_at,
            on_resume: terms.on_resume,
            keep_access: terms.keep_access,
            paid_through: self.current_period.end,
            requested_by: terms.requested_by,
        });
        let mut events = vec![SubscriptionEvent::Paused {
            started_at: terms.started_at,
            resumes_at: terms.resumes_at,
        }];
        events.extend(self.drop_stale_skips());
        if let Some(resumes_at) = terms.resumes_at {
            let change = ScheduledChange::new(
                resumes_at,
                terms.started_at,
                terms.requested_by,
                ScheduledChangeKind::Resume,
            );
            self.schedule(change.clone());
            events.push(SubscriptionEvent::ResumeScheduled { change });
        }
        Ok(events)
    }

    pub(crate) fn check_resume_state(&self) -> Result<(), DomainError> {
        match self.status {
            SubscriptionStatus::Paused => Ok(()),
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired => {
                Err(self.refuse_status("resume"))
            }
            _ => Err(DomainError::refused("resume", Refusal::NotPaused)),
        }
    }

    /// Whether `actor` may resume now. A customer may end only a pause a customer
    /// started: a merchant's pause (say, a hold while a dispute is settled) is the
    /// merchant's to lift.
    pub fn check_can_resume(&self, actor: Actor) -> Result<(), DomainError> {
        self.check_resume_state()?;
        let paused_by_customer = self
            .pause
            .is_some_and(|p| p.requested_by == Actor::Customer);
        if actor.is_customer() && !paused_by_customer {
            return Err(DomainError::PolicyForbids {
                action: "resuming a pause the merchant started",
                code: "resume_not_allowed",
            });
        }
        Ok(())
    }

    /// Resumes now; a scheduled resume, if any, is consumed.
    pub fn resume(&self, actor: Actor, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        self.check_can_resume(actor)?;
        let mut next = self.clone();
        let events = next.resume_at(now)?;
        Ok(Transition::new(next, events))
    }

    pub(crate) fn resume_at(
        &mut self,
        at: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionEvent>, DomainError> {
        let on_resume = self.pause.map(|p| p.on_resume).unwrap_or_default();
        let new_period = if at < self.current_period.end {
            None
        } else {
            let cadence = self.plan.cadence;
            let period = match on_resume {
                OnResume::ResetAnchor => {
                    self.billing_anchor = at;
                    cadence.first_period(at)?
                }
                OnResume::KeepAnchor => cadence.stub_from(self.billing_anchor, at)?,
            };
            self.current_period = period;
            Some(period)
        };
        self.status = SubscriptionStatus::Active;
        self.pause = None;
        self.scheduled_changes
            .retain(|c| !matches!(c.kind, ScheduledChangeKind::Resume));
        Ok(vec![SubscriptionEvent::Resumed {
            resumed_at: at,
            new_period,
        }])
    }
}
