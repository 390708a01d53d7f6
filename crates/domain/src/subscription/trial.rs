//! Extending a trial (a retention offer's `extend_trial`).
//!
//! Only a `trialing` subscription's trial can be extended: the trial's end, the current
//! period's end and the billing anchor move together by `days` (the invariant of a
//! trial), so the first paid period simply starts later. A change already scheduled
//! (e.g. a downgrade due at the old trial end) would fall inside the extended trial;
//! rather than guess whether it should move too, the extension is refused while one is
//! pending (`changes_scheduled`).

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::billing::period::Period;
use crate::catalog::MAX_TRIAL_DAYS;
use crate::error::Refusal;
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::state::{Subscription, SubscriptionStatus, Transition, add_days};

impl Subscription {
    /// Whether the trial can be extended now.
    pub fn check_can_extend_trial(&self) -> Result<(), DomainError> {
        const ACTION: &str = "extend the trial of";
        if self.status != SubscriptionStatus::Trialing {
            return Err(DomainError::refused(ACTION, Refusal::NotTrialing));
        }
        if !self.scheduled_changes.is_empty() {
            return Err(DomainError::refused(ACTION, Refusal::ChangesScheduled));
        }
        Ok(())
    }

    /// Moves the trial's end `days` later.
    pub fn extend_trial(&self, days: u32, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        self.check_can_extend_trial()?;
        if !(1..=MAX_TRIAL_DAYS).contains(&days) {
            return Err(DomainError::validation(
                "days",
                format!("must be between 1 and {MAX_TRIAL_DAYS}"),
            ));
        }
        let from = self.trial_end.unwrap_or(self.current_period.end);
        if from <= now {
            // The trial is over; the engine ends it at its next run.
            return Err(DomainError::refused(
                "extend the trial of",
                Refusal::TrialEnded,
            ));
        }
        let to = add_days(from, days)?;
        let mut next = self.clone();
        next.trial_end = Some(to);
        next.billing_anchor = to;
        next.current_period = Period::new(self.current_period.start, to)?;
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::TrialExtended {
                previous_trial_end: from,
                trial_end: to,
            }],
        ))
    }
}
