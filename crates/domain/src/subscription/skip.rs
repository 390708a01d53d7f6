//! Skipping renewals (Recharge's "skip next order") and taking a skip back.
//!
//! # The model
//!
//! A skip names a coming renewal of the schedule. When it comes, [`Subscription::renew`]
//! starts the next period as usual (the subscription stays `active` and its period
//! advances at the boundary) but bills nothing: no invoice, no charge, and so no order
//! (`subscription.renewal_skipped` instead of `subscription.renewed`).
//!
//! Skips are always the next renewals of the schedule, consecutive: skipping takes the
//! first coming renewal not skipped yet, and unskipping gives back the last one skipped.
//! So "skip" twice skips the next two renewals, and "unskip" undoes the latest skip.
//!
//! # Limits
//!
//! Only an `active` subscription whose current period is running skips (a trial costs
//! nothing, a past-due one must pay first, a paused one renews nothing), and not with a
//! cancellation or a pause pending (both end the schedule the skip is counted on), nor
//! while the next renewal was sent now (already paid). Customers, and merchants' agents
//! who do not override them ([`Acting`]), need the policy's `allow_skip`, and may skip at
//! most `max_consecutive_skips` renewals in a row, counting those already passed skipped
//! since the last billed renewal; customers may unskip only their own skips (a
//! merchant's, such as one for an item out of stock, stays). Nobody skips more than
//! [`MAX_PENDING_SKIPS`] renewals ahead.
//!
//! # When the schedule moves
//!
//! A pause, a cancellation, or a plan change to another cadence moves or ends the
//! schedule; skips that no longer name its coming renewals are dropped then, each with a
//! `subscription.renewal_skip_removed` event naming why.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::error::Refusal;
use crate::policy::{MAX_PENDING_SKIPS, PolicyActor, PolicyLimit, PortalPolicy};
use crate::subscription::events::{RemovalReason, SubscriptionEvent};
use crate::subscription::scheduled::ChangeType;
use crate::subscription::state::{Acting, Actor, Subscription, SubscriptionStatus, Transition};

/// A coming renewal that will pass without an invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRenewal {
    /// The renewal (a boundary of the billing schedule) that is skipped.
    pub renewal_at: DateTime<Utc>,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Actor,
}

const SKIP: &str = "skip a renewal of";
const UNSKIP: &str = "unskip a renewal of";

impl Subscription {
    /// The next `n` renewals of the schedule (period starts), from the end of the current
    /// period.
    pub fn coming_renewals(&self, n: usize) -> Result<Vec<DateTime<Utc>>, DomainError> {
        let mut renewals = Vec::with_capacity(n);
        let mut period = self.current_period;
        for _ in 0..n {
            renewals.push(period.end);
            period = self
                .plan
                .cadence
                .next_period(self.billing_anchor, &period)?;
        }
        Ok(renewals)
    }

    /// Whether the next renewal (the end of the current period) is skipped.
    pub fn next_renewal_skipped(&self) -> bool {
        self.skipped_renewals
            .first()
            .is_some_and(|s| s.renewal_at == self.current_period.end)
    }

    /// Whether `by` may skip one more renewal now; returns the renewal it would skip.
    pub fn check_can_skip(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, DomainError> {
        self.skip_limits(policy, by.into().held, now)
            .map(|(renewal_at, _)| renewal_at)
    }

    /// [`Self::check_can_skip`], with the limits an overriding agent exceeds.
    fn skip_limits(
        &self,
        policy: &PortalPolicy,
        held: PolicyActor,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Vec<PolicyLimit>), DomainError> {
        if self.status != SubscriptionStatus::Active {
            return Err(self.refuse_status(SKIP));
        }
        if !self.current_period.contains(now) {
            return Err(DomainError::refused(SKIP, Refusal::RenewalPending));
        }
        if self.pending(ChangeType::Cancel).is_some() {
            return Err(DomainError::refused(SKIP, Refusal::CancellationPending));
        }
        if self.pending(ChangeType::Pause).is_some() {
            return Err(DomainError::refused(SKIP, Refusal::PauseScheduled));
        }
        if self.renewal_prepaid() {
            return Err(DomainError::refused(SKIP, Refusal::RenewalSentNow));
        }
        let mut exceeded = Vec::new();
        if !policy.allow_skip {
            exceeded.extend(held.exceed(PolicyLimit::AllowSkip)?);
        }
        let ahead = self.skipped_renewals.len();
        if ahead >= MAX_PENDING_SKIPS as usize {
            return Err(DomainError::PolicyForbids {
                action: "skipping more renewals ahead",
                code: "skip_limit_reached",
            });
        }
        if let Some(max) = policy.max_consecutive_skips {
            let in_a_row = u64::from(self.skipped_in_a_row) + ahead as u64 + 1;
            if in_a_row > u64::from(max) {
                exceeded.extend(held.exceed(PolicyLimit::MaxConsecutiveSkips)?);
            }
        }
        let renewals = self.coming_renewals(ahead + 1)?;
        Ok((renewals[ahead], exceeded))
    }

    /// Skips the first coming renewal not skipped yet. The limits an overriding agent
    /// exceeds are in the transition's `overridden`.
    pub fn skip_renewal(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let Acting { actor, held } = by.into();
        let (renewal_at, exceeded) = self.skip_limits(policy, held, now)?;
        let mut next = self.clone();
        next.skipped_renewals.push(SkippedRenewal {
            renewal_at,
            requested_at: now,
            requested_by: actor,
        });
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::RenewalSkipScheduled {
                renewal_at,
                by: actor,
            }],
        )
        .exceeding(exceeded))
    }

    /// Whether `actor` may take back the last skip; returns it.
    pub fn check_can_unskip(&self, actor: Actor) -> Result<SkippedRenewal, DomainError> {
        if self.has_ended() {
            return Err(self.refuse_status(UNSKIP));
        }
        let last = self
            .skipped_renewals
            .last()
            .ok_or(DomainError::refused(UNSKIP, Refusal::NoRenewalSkipped))?;
        if actor.is_customer() && !last.requested_by.is_customer() {
            return Err(DomainError::PolicyForbids {
                action: "taking back the merchant's skip",
                code: "skip_not_removable",
            });
        }
        Ok(*last)
    }

    /// Takes back the last skip: that renewal bills again.
    pub fn unskip_renewal(&self, actor: Actor) -> Result<Transition, DomainError> {
        let last = self.check_can_unskip(actor)?;
        let mut next = self.clone();
        next.skipped_renewals.pop();
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::RenewalSkipRemoved {
                renewal_at: last.renewal_at,
                reason: RemovalReason::Removed { by: actor },
            }],
        ))
    }

    /// At a renewal: whether it is skipped, consuming the skip and counting it.
    pub(crate) fn pass_renewal(&mut self) -> bool {
        if self.next_renewal_skipped() {
            self.skipped_renewals.remove(0);
            self.skipped_in_a_row = self.skipped_in_a_row.saturating_add(1);
            true
        } else {
            self.skipped_in_a_row = 0;
            false
        }
    }

    /// Drops every skip, with an event for each: a cancellation ends the plan they were
    /// part of, and the renewals left before it ends are billed (a skip must not make a
    /// notice period free).
    pub(crate) fn drop_all_skips(&mut self) -> Vec<SubscriptionEvent> {
        std::mem::take(&mut self.skipped_renewals)
            .into_iter()
            .map(|skip| SubscriptionEvent::RenewalSkipRemoved {
                renewal_at: skip.renewal_at,
                reason: RemovalReason::SubscriptionCanceled,
            })
            .collect()
    }

    /// Drops the skips that no longer name the coming renewals of the schedule (after a
    /// pause, a cancellation or a cadence change), with an event for each.
    pub(crate) fn drop_stale_skips(&mut self) -> Vec<SubscriptionEvent> {
        // An unpaid subscription renews again once it pays, on the same schedule.
        let still_billing = matches!(
            self.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
        );
        let kept = if still_billing {
            let renewals = self
                .coming_renewals(self.skipped_renewals.len())
                .unwrap_or_default();
            self.skipped_renewals
                .iter()
                .zip(&renewals)
                .take_while(|(skip, renewal)| skip.renewal_at == **renewal)
                .count()
        } else {
            0
        };
        let reason = match self.status {
            SubscriptionStatus::Canceled | SubscriptionStatus::IncompleteExpired => {
                RemovalReason::SubscriptionCanceled
            }
            SubscriptionStatus::Paused => RemovalReason::NotApplicable {
                code: Refusal::Status(SubscriptionStatus::Paused).code(),
            },
            _ => RemovalReason::NotApplicable {
                code: "renewal_date_moved",
            },
        };
        self.skipped_renewals
            .split_off(kept)
            .into_iter()
            .map(|skip| SubscriptionEvent::RenewalSkipRemoved {
                renewal_at: skip.renewal_at,
                reason,
            })
            .collect()
    }
}
