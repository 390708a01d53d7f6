//! Scheduled changes: a pause that starts later, the automatic resume at a pause's end,
//! a cancellation that takes effect at a date, a downgrade at period end.
//!
//! # Why they are values on the subscription
//!
//! A change that will happen is part of the subscription's state: the portal shows it
//! ("your plan changes to Basic on 1 May"), the subscriber may remove it, and other
//! actions must respect it (no second pause while one is scheduled). Keeping them in
//! `scheduled_changes`, in the order they take effect, lets every rule see them. The
//! store mirrors each one as a row a worker claims when it falls due; the worker then
//! calls [`Subscription::apply_due`], which applies everything due in order.
//!
//! # Order
//!
//! Changes apply by `due_at`; changes due at the same instant apply cancel first (a
//! subscription that ends does not first change plan), then resume, trial end, plan
//! change, pause. Renewals are not scheduled changes: the billing engine renews after
//! `apply_due`, so a downgrade or cancellation due at a period's end is in effect before
//! the next period is invoiced ([`Subscription::renew`] refuses otherwise).
//!
//! A change whose moment has come but which the subscription's state no longer allows
//! (a pause falling due while the subscription is past due) is dropped with a
//! `subscription.scheduled_change_removed` event naming the refusal code — never
//! applied against the rules, never dropped silently.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::terms::PlanTerms;
use crate::error::Refusal;
use crate::ids::{CancellationRequestId, GenerateId, ScheduledChangeId};
use crate::policy::{PolicyLimit, PortalPolicy};
use crate::subscription::cancellation::{AccessEnd, CancellationReason, Ending};
use crate::subscription::events::{RemovalReason, SubscriptionEvent};
use crate::subscription::pause::{OnResume, PauseEnd, PauseTerms};
use crate::subscription::state::{Acting, Actor, Subscription, SubscriptionStatus, Transition};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledChange {
    pub id: ScheduledChangeId,
    pub due_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Actor,
    pub kind: ScheduledChangeKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduledChangeKind {
    /// A pause starting at `due_at`. `resumes_at` was resolved from `ends` when it was
    /// scheduled, so the subscriber sees the exact date before it starts.
    Pause {
        ends: PauseEnd,
        resumes_at: Option<DateTime<Utc>>,
        on_resume: OnResume,
        /// The policy's `keep_access_while_paused` when the pause was requested.
        keep_access: bool,
    },
    /// The end of the running pause.
    Resume,
    Cancel {
        reason: Option<CancellationReason>,
        /// Set for a customer's request-mode cancellation (the support ticket's request).
        cancellation_request_id: Option<CancellationRequestId>,
        access: AccessEnd,
    },
    /// The plan the next renewal bills (a downgrade at period end).
    PlanChange { to: PlanTerms },
}

/// The kinds of scheduled change, without their details. At most one change of each
/// type is pending at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Pause,
    Resume,
    Cancel,
    PlanChange,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
            Self::PlanChange => "plan_change",
        }
    }
}

impl ScheduledChangeKind {
    pub fn change_type(&self) -> ChangeType {
        match self {
            Self::Pause { .. } => ChangeType::Pause,
            Self::Resume => ChangeType::Resume,
            Self::Cancel { .. } => ChangeType::Cancel,
            Self::PlanChange { .. } => ChangeType::PlanChange,
        }
    }

    /// Tie-break among changes due at the same instant (lower first).
    fn priority(&self) -> u8 {
        match self {
            Self::Cancel { .. } => 0,
            Self::Resume => 1,
            Self::PlanChange { .. } => 3,
            Self::Pause { .. } => 4,
        }
    }
}

/// A trial ends between a resume and a plan change due at the same instant.
const TRIAL_END_PRIORITY: u8 = 2;

/// A change id is part of the path, so one that names no pending change (applied,
/// removed, or of another subscription) is a missing resource, not a bad field.
const SCHEDULED_CHANGE_MISSING: DomainError = DomainError::NotFound {
    resource: "scheduled_change",
};

impl ScheduledChange {
    pub(crate) fn new(
        due_at: DateTime<Utc>,
        requested_at: DateTime<Utc>,
        requested_by: Actor,
        kind: ScheduledChangeKind,
    ) -> Self {
        Self {
            id: ScheduledChangeId::generate(),
            due_at,
            requested_at,
            requested_by,
            kind,
        }
    }

    fn order_key(&self) -> (DateTime<Utc>, u8) {
        (self.due_at, self.kind.priority())
    }
}

/// What [`Subscription::apply_due`] applies next.
enum Due {
    Change(ScheduledChangeId),
    TrialEnd(DateTime<Utc>),
}

impl Subscription {
    pub fn scheduled_change(&self, id: ScheduledChangeId) -> Option<&ScheduledChange> {
        self.scheduled_changes.iter().find(|c| c.id == id)
    }

    /// The pending change of type `change_type`, if any.
    pub fn pending(&self, change_type: ChangeType) -> Option<&ScheduledChange> {
        self.scheduled_changes
            .iter()
            .find(|c| c.kind.change_type() == change_type)
    }

    pub(crate) fn schedule(&mut self, change: ScheduledChange) {
        self.scheduled_changes.push(change);
        self.scheduled_changes
            .sort_by_key(ScheduledChange::order_key);
    }

    pub(crate) fn take_change(&mut self, id: ScheduledChangeId) -> Option<ScheduledChange> {
        let index = self.scheduled_changes.iter().position(|c| c.id == id)?;
        Some(self.scheduled_changes.remove(index))
    }

    /// Checks that `actor` may remove the change `id`. Customers may remove only changes
    /// a customer asked for, and never the automatic resume of a pause: removing it would
    /// make the pause open-ended, past the policy's `max_pause_days` (they can resume now
    /// instead).
    pub fn check_can_remove_scheduled_change(
        &self,
        id: ScheduledChangeId,
        actor: Actor,
    ) -> Result<&ScheduledChange, DomainError> {
        if self.has_ended() {
            return Err(self.refuse_status("remove a scheduled change of"));
        }
        let change = self.scheduled_change(id).ok_or(SCHEDULED_CHANGE_MISSING)?;
        let customer_may = change.requested_by == Actor::Customer
            && !matches!(change.kind, ScheduledChangeKind::Resume);
        if actor.is_customer() && !customer_may {
            return Err(DomainError::PolicyForbids {
                action: "removing this scheduled change",
                code: "change_not_removable",
            });
        }
        Ok(change)
    }

    /// Removes a pending change. Removing a cancellation withdraws it
    /// (`subscription.cancellation_withdrawn`); removing the resume of a running pause
    /// makes the pause open-ended.
    pub fn remove_scheduled_change(
        &self,
        id: ScheduledChangeId,
        actor: Actor,
    ) -> Result<Transition, DomainError> {
        self.check_can_remove_scheduled_change(id, actor)?;
        let mut next = self.clone();
        let Some(change) = next.take_change(id) else {
            return Err(SCHEDULED_CHANGE_MISSING);
        };
        let event = match change.kind {
            ScheduledChangeKind::Cancel {
                cancellation_request_id,
                ..
            } => {
                next.clear_pending_cancellation();
                SubscriptionEvent::CancellationWithdrawn {
                    change_id: change.id,
                    cancellation_request_id,
                }
            }
            ScheduledChangeKind::Resume => {
                if let Some(pause) = next.pause.as_mut() {
                    pause.resumes_at = None;
                }
                removed(change, RemovalReason::Removed { by: actor })
            }
            _ => removed(change, RemovalReason::Removed { by: actor }),
        };
        Ok(Transition::new(next, vec![event]))
    }

    /// [`Self::remove_scheduled_change`] for `by` under the product's `policy`: removing
    /// the automatic resume of a running pause makes the pause open-ended, beyond any
    /// `max_pause_days`, so a merchant's agent may do it only with an override (reported
    /// in the transition's `overridden`) when the policy sets that limit. Customers never
    /// may ([`Self::check_can_remove_scheduled_change`]); a merchant's backend always.
    pub fn remove_scheduled_change_as(
        &self,
        id: ScheduledChangeId,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
    ) -> Result<Transition, DomainError> {
        let Acting { actor, held } = by.into();
        let change = self.check_can_remove_scheduled_change(id, actor)?;
        let exceeded = match change.kind {
            ScheduledChangeKind::Resume if policy.max_pause_days.is_some() => {
                held.exceed(PolicyLimit::MaxPauseDays)?
            }
            _ => None,
        };
        Ok(self
            .remove_scheduled_change(id, actor)?
            .exceeding(exceeded.into_iter().collect()))
    }

    /// Applies, in order, every scheduled change due at or before `now`, and the end of
    /// the trial if it has come. Each takes effect at its own `due_at`, not at `now`, so
    /// a late worker produces the same result as a punctual one. Nothing due: no events.
    pub fn apply_due(&self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        let mut next = self.clone();
        let mut events = Vec::new();
        // Each step consumes one change or ends the trial; only a starting pause adds one
        // (its resume), so this bound is never reached by a consistent subscription.
        for _ in 0..2 * self.scheduled_changes.len() + 3 {
            let Some(due) = next.next_due(now) else {
                return Ok(Transition::new(next, events));
            };
            match due {
                Due::TrialEnd(at) => events.extend(next.end_trial(at)?),
                Due::Change(id) => {
                    let Some(change) = next.take_change(id) else {
                        break;
                    };
                    events.extend(next.apply_change(change)?);
                }
            }
        }
        Err(DomainError::refused(
            "apply the due changes of",
            Refusal::ScheduledChangesInconsistent,
        ))
    }

    fn next_due(&self, now: DateTime<Utc>) -> Option<Due> {
        let change = self
            .scheduled_changes
            .first()
            .filter(|c| c.due_at <= now)
            .map(|c| (c.order_key(), Due::Change(c.id)));
        let trial = self
            .trial_end
            .filter(|end| self.status == SubscriptionStatus::Trialing && *end <= now)
            .map(|end| ((end, TRIAL_END_PRIORITY), Due::TrialEnd(end)));
        match (change, trial) {
            (Some(c), Some(t)) => Some(if t.0 < c.0 { t.1 } else { c.1 }),
            (c, t) => c.or(t).map(|(_, due)| due),
        }
    }

    fn apply_change(
        &mut self,
        change: ScheduledChange,
    ) -> Result<Vec<SubscriptionEvent>, DomainError> {
        let at = change.due_at;
        match change.kind.clone() {
            ScheduledChangeKind::Cancel {
                reason,
                cancellation_request_id,
                access,
            } => self.end(Ending {
                at,
                canceled_at: change.requested_at,
                reason,
                // Given when the cancellation was scheduled, and kept since.
                message: self.cancellation.as_ref().and_then(|c| c.message.clone()),
                cancellation_request_id,
                requested_by: change.requested_by,
                access,
            }),
            ScheduledChangeKind::Resume => match self.check_resume_state() {
                Ok(()) => self.resume_at(at),
                Err(refusal) => Ok(vec![not_applicable(change, &refusal)]),
            },
            ScheduledChangeKind::PlanChange { to } => {
                let mut events = vec![self.switch_plan_at_renewal(to)];
                events.extend(self.drop_stale_skips());
                Ok(events)
            }
            ScheduledChangeKind::Pause {
                resumes_at,
                on_resume,
                keep_access,
                ..
            } => match self.check_pause_state() {
                Ok(()) => self.begin_pause(PauseTerms {
                    started_at: at,
                    resumes_at,
                    on_resume,
                    keep_access,
                    requested_by: change.requested_by,
                }),
                Err(refusal) => Ok(vec![not_applicable(change, &refusal)]),
            },
        }
    }
}

pub(crate) fn removed(change: ScheduledChange, reason: RemovalReason) -> SubscriptionEvent {
    SubscriptionEvent::ScheduledChangeRemoved { change, reason }
}

fn not_applicable(change: ScheduledChange, refusal: &DomainError) -> SubscriptionEvent {
    removed(
        change,
        RemovalReason::NotApplicable {
            code: refusal.code(),
        },
    )
}
