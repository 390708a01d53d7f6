//! What must hold of every subscription, whatever sequence of transitions produced it.
//! The property tests check it after every step; the store may check it before saving.

use crate::subscription::scheduled::{ChangeType, ScheduledChangeKind};
use crate::subscription::state::{Subscription, SubscriptionStatus};

impl Subscription {
    /// `Err` names the first broken rule.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_period()?;
        self.check_status_fields()?;
        self.check_schedule_shape()?;
        self.check_pending_cancellation()?;
        self.check_pause()?;
        self.check_skips()
    }

    /// Skips name exactly the next renewals of the schedule, and only while it bills.
    fn check_skips(&self) -> Result<(), String> {
        if self.skipped_renewals.is_empty() {
            return Ok(());
        }
        if !matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
        ) {
            return Err(format!("skipped renewals while {}", self.status));
        }
        let coming = self
            .coming_renewals(self.skipped_renewals.len())
            .map_err(|e| e.to_string())?;
        let skipped: Vec<_> = self.skipped_renewals.iter().map(|s| s.renewal_at).collect();
        if skipped != coming {
            return Err("skipped renewals are not the next renewals of the schedule".into());
        }
        Ok(())
    }

    fn check_period(&self) -> Result<(), String> {
        let period = self.current_period;
        if period.start >= period.end {
            return Err(format!("empty period {period:?}"));
        }
        if self.billing_anchor > period.end {
            return Err("billing anchor after the current period".into());
        }
        let containing = self
            .plan
            .cadence
            .period_containing(self.billing_anchor, period.end)
            .map_err(|e| e.to_string())?;
        if containing.start != period.end {
            return Err("current period does not end on a boundary of the schedule".into());
        }
        Ok(())
    }

    fn check_status_fields(&self) -> Result<(), String> {
        let canceled = self.status == SubscriptionStatus::Canceled;
        if self.has_ended() != self.ended_at.is_some() || canceled != self.canceled_at.is_some() {
            return Err(
                "ended_at must be set exactly when ended, canceled_at exactly when canceled".into(),
            );
        }
        if self.status == SubscriptionStatus::IncompleteExpired
            && (!self.scheduled_changes.is_empty()
                || self.cancel_at.is_some()
                || self.access_until.is_some())
        {
            return Err("an expired subscription has nothing pending and no access".into());
        }
        if (self.status == SubscriptionStatus::Paused) != self.pause.is_some() {
            return Err("pause info must be present exactly when paused".into());
        }
        if self.status == SubscriptionStatus::Trialing
            && (self.trial_end != Some(self.current_period.end)
                || self.trial_end != Some(self.billing_anchor))
        {
            return Err("a trial must end where the current period ends".into());
        }
        if canceled {
            if !self.scheduled_changes.is_empty() || self.cancel_at.is_some() {
                return Err("a canceled subscription has nothing pending".into());
            }
            if self.billing_ends_at != self.ended_at
                || self.access_until.is_none()
                || self.access_until < self.ended_at
            {
                return Err("a canceled subscription's billing/access ends are wrong".into());
            }
        }
        Ok(())
    }

    fn check_schedule_shape(&self) -> Result<(), String> {
        let changes = &self.scheduled_changes;
        if changes.windows(2).any(|w| w[0].due_at > w[1].due_at) {
            return Err("scheduled changes out of order".into());
        }
        for (i, change) in changes.iter().enumerate() {
            let later = &changes[i + 1..];
            if later
                .iter()
                .any(|c| c.kind.change_type() == change.kind.change_type())
            {
                return Err(format!(
                    "two pending {} changes",
                    change.kind.change_type().as_str()
                ));
            }
            if later.iter().any(|c| c.id == change.id) {
                return Err("duplicate scheduled change id".into());
            }
        }
        Ok(())
    }

    fn check_pending_cancellation(&self) -> Result<(), String> {
        // Only one way: rows from before the details were kept have none.
        let cancelling = self.status == SubscriptionStatus::Canceled || self.cancel_at.is_some();
        if self.cancellation.is_some() && !cancelling {
            return Err("cancellation details kept with no cancellation".into());
        }
        if self.status == SubscriptionStatus::Canceled {
            return Ok(());
        }
        match (self.pending(ChangeType::Cancel), self.cancel_at) {
            (Some(change), Some(at)) if change.due_at == at => {
                if self.billing_ends_at != Some(at) || self.access_until.is_none_or(|a| a < at) {
                    return Err("pending cancellation's billing/access ends are wrong".into());
                }
                Ok(())
            }
            (None, None) => {
                if self.billing_ends_at.is_some() || self.access_until.is_some() {
                    return Err("billing/access end set with nothing pending".into());
                }
                Ok(())
            }
            _ => Err("cancel_at disagrees with the scheduled cancellation".into()),
        }
    }

    fn check_pause(&self) -> Result<(), String> {
        let resume = self.pending(ChangeType::Resume);
        match self.pause {
            Some(pause) => {
                if pause.resumes_at.is_some_and(|r| r <= pause.started_at) {
                    return Err("a pause must resume after it starts".into());
                }
                if resume.map(|c| c.due_at) != pause.resumes_at {
                    return Err("scheduled resume disagrees with the pause".into());
                }
                if self.pending(ChangeType::Pause).is_some() {
                    return Err("a pause scheduled while paused".into());
                }
            }
            None if resume.is_some() => {
                return Err("a resume scheduled while not paused".into());
            }
            None => {}
        }
        let pause_change = self.scheduled_changes.iter().find_map(|c| match c.kind {
            ScheduledChangeKind::Pause { resumes_at, .. } => Some((c.due_at, resumes_at)),
            _ => None,
        });
        if let Some((starts, Some(resumes))) = pause_change
            && resumes <= starts
        {
            return Err("a scheduled pause must resume after it starts".into());
        }
        Ok(())
    }
}
