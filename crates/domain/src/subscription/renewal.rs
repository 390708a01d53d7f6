//! The billing engine's transitions: trial end, renewal, and the payment outcomes that
//! move a subscription between `active`, `past_due` and `unpaid`.
//!
//! These are the system's, not the portal's, so they take no actor or policy. The
//! engine calls [`Subscription::apply_due`] before [`Subscription::renew`]: a change due
//! at a period's end (cancellation, downgrade, pause) must be in effect before the next
//! period is invoiced, and `renew` refuses (`changes_due`) while one is waiting.
//!
//! Renewals run only for `active` and `past_due` subscriptions (dunning does not stop
//! the calendar); a paused subscription's period is frozen, a trial ends through
//! `apply_due`, and an `unpaid` one stops billing until a payment succeeds. A successful
//! payment returns `past_due` or `unpaid` to `active` with the period unchanged; the
//! engine renews any periods that ended meanwhile, one at a time.
//!
//! A subscription paid at signup starts `incomplete`: [`Subscription::activate`] makes it
//! `active` once its first invoice is paid, and [`Subscription::expire_incomplete`] ends
//! it (`incomplete_expired`) when that has not happened by its deadline.

use chrono::{DateTime, Utc};

use crate::DomainError;
use crate::error::Refusal;
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::state::{Subscription, SubscriptionStatus, Transition};

impl Subscription {
    /// Ends the trial at `at` (its `trial_end`): the first paid period starts there.
    pub(crate) fn end_trial(
        &mut self,
        at: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionEvent>, DomainError> {
        let period = self.plan.cadence.first_period(at)?;
        self.status = SubscriptionStatus::Active;
        self.billing_anchor = at;
        self.current_period = period;
        self.reproject_pending_access();
        Ok(vec![SubscriptionEvent::TrialEnded { period }])
    }

    /// Whether the current period may roll over to the next at `now`.
    pub fn check_can_renew(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        const ACTION: &str = "renew";
        match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::PastDue => {}
            _ => return Err(self.refuse_status(ACTION)),
        }
        if now < self.current_period.end {
            return Err(DomainError::refused(ACTION, Refusal::PeriodNotEnded));
        }
        let end = self.current_period.end;
        if self.scheduled_changes.iter().any(|c| c.due_at <= end) {
            return Err(DomainError::refused(ACTION, Refusal::ChangesDue));
        }
        Ok(())
    }

    /// Starts the next period (one at a time, however late the engine runs). A skipped
    /// renewal starts it too, but as `RenewalSkipped`, which bills nothing; so does a
    /// renewal a send now already billed, as `RenewalPrepaid`.
    pub fn renew(&self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        self.check_can_renew(now)?;
        let mut next = self.clone();
        let period = self
            .plan
            .cadence
            .next_period(self.billing_anchor, &self.current_period)?;
        // Decided on the ending period, whose end is the renewal a skip or a send now
        // names. A renewal sent now is billed already (and cannot be skipped).
        let prepaid = next.pass_sent_now();
        let skipped = !prepaid && next.pass_renewal();
        if prepaid {
            next.skipped_in_a_row = 0;
        }
        next.current_period = period;
        next.reproject_pending_access();
        let event = if prepaid {
            SubscriptionEvent::RenewalPrepaid { period }
        } else if skipped {
            SubscriptionEvent::RenewalSkipped { period }
        } else {
            SubscriptionEvent::Renewed { period }
        };
        Ok(Transition::new(next, vec![event]))
    }

    /// A renewal's payment failed: dunning begins.
    pub fn record_payment_failure(&self) -> Result<Transition, DomainError> {
        match self.status {
            SubscriptionStatus::Active => {
                Ok(self.with_status(SubscriptionStatus::PastDue, SubscriptionEvent::PastDue))
            }
            SubscriptionStatus::PastDue => Err(DomainError::refused(
                "record a failed payment for",
                Refusal::AlreadyPastDue,
            )),
            _ => Err(self.refuse_status("record a failed payment for")),
        }
    }

    /// A payment succeeded while `past_due` or `unpaid`.
    pub fn record_payment_recovery(&self) -> Result<Transition, DomainError> {
        match self.status {
            SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid => {
                Ok(self.with_status(SubscriptionStatus::Active, SubscriptionEvent::Recovered))
            }
            SubscriptionStatus::Canceled => Err(self.refuse_status("record a recovery for")),
            _ => Err(DomainError::refused(
                "record a recovery for",
                Refusal::NotPastDue,
            )),
        }
    }

    /// The first invoice of an `incomplete` subscription was paid: it becomes `active`
    /// with the period it was created with (the period the invoice paid for).
    pub fn activate(&self) -> Result<Transition, DomainError> {
        match self.status {
            SubscriptionStatus::Incomplete => {
                Ok(self.with_status(SubscriptionStatus::Active, SubscriptionEvent::Activated))
            }
            _ => Err(self.refuse_status("activate")),
        }
    }

    /// An `incomplete` subscription whose first invoice is still unpaid at its deadline
    /// ([`Subscription::incomplete_expires_at`]) ends for good at `now`. Nothing was ever
    /// paid, so nothing is kept: no access, and nothing pending (an incomplete
    /// subscription can schedule nothing).
    pub fn expire_incomplete(&self, now: DateTime<Utc>) -> Result<Transition, DomainError> {
        const ACTION: &str = "expire";
        if self.status != SubscriptionStatus::Incomplete {
            return Err(self.refuse_status(ACTION));
        }
        if now < self.incomplete_expires_at() {
            return Err(DomainError::refused(ACTION, Refusal::PeriodNotEnded));
        }
        let mut next = self.clone();
        next.status = SubscriptionStatus::IncompleteExpired;
        next.ended_at = Some(now);
        next.scheduled_changes.clear();
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::IncompleteExpired { expired_at: now }],
        ))
    }

    /// Dunning gave up.
    pub fn mark_unpaid(&self) -> Result<Transition, DomainError> {
        match self.status {
            SubscriptionStatus::PastDue => {
                Ok(self.with_status(SubscriptionStatus::Unpaid, SubscriptionEvent::Unpaid))
            }
            SubscriptionStatus::Canceled => Err(self.refuse_status("mark unpaid")),
            _ => Err(DomainError::refused("mark unpaid", Refusal::NotPastDue)),
        }
    }

    fn with_status(&self, status: SubscriptionStatus, event: SubscriptionEvent) -> Transition {
        let mut next = self.clone();
        next.status = status;
        Transition::new(next, vec![event])
    }
}
