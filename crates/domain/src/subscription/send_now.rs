//! "Send now" (Recharge's "order now"): bringing the next renewal forward to now.
//!
//! # Two ways
//!
//! * [`SendNowAnchor::Keep`] (the default): the next period of the schedule is invoiced
//!   now (and, for a product that ships, its order made now), and the billing anchor
//!   stays. The current period runs on to its end; the renewal due then starts the period
//!   already paid without billing it ([`SubscriptionEvent::RenewalPrepaid`]), and the
//!   renewal after bills on the old schedule: no double charge, no gap. Until that
//!   renewal the subscription carries the send now ([`Subscription::sent_now`]), and
//!   whatever would change what was paid for is refused with `renewal_sent_now` (a skip,
//!   a pause, a plan or quantity change); a cancellation is not, and the subscriber keeps
//!   access through the period paid ahead.
//! * [`SendNowAnchor::Reset`]: a new period starts now and is invoiced in full, and the
//!   schedule counts from now (the anchor moves). The rest of the current period is not
//!   credited: what it paid for has been delivered (Recharge does not prorate shipped
//!   goods); a subscriber who wants to keep it sends now with `keep`.
//!
//! # Limits
//!
//! Only an `active` subscription whose current period is running (not trialing, paused,
//! past due, incomplete, canceled), without a pending cancellation, a scheduled pause or
//! a scheduled plan change (each changes what the next period would be), whose next
//! renewal is not skipped (`renewal_skipped`: unskip it first), and not sent now already
//! (`already_sent_now`: once per renewal for `keep`, once per period for `reset`).
//! Customers, and merchants' agents who do not override it ([`Acting`]), need the
//! policy's `allow_send_now`.
//!
//! The invoice is collected like a renewal's: a decline makes the subscription
//! `past_due` and dunning retries it, as the engine does for any renewal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;
use crate::billing::period::Period;
use crate::error::Refusal;
use crate::policy::{PolicyActor, PolicyLimit, PortalPolicy};
use crate::subscription::events::SubscriptionEvent;
use crate::subscription::scheduled::ChangeType;
use crate::subscription::state::{Acting, Actor, Subscription, SubscriptionStatus, Transition};

/// Whether a send now keeps the billing anchor or starts the schedule again from now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendNowAnchor {
    /// The next period is billed now; the renewal due at its start bills nothing.
    #[default]
    Keep,
    /// A new period starts now; later renewals follow from it.
    Reset,
}

impl SendNowAnchor {
    pub fn as_str(self) -> &'static str {
        match self {
            SendNowAnchor::Keep => "keep",
            SendNowAnchor::Reset => "reset",
        }
    }
}

/// The latest send now, kept until the next renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentNow {
    /// The period it invoiced: the next one of the schedule (`keep`), or the one it began
    /// (`reset`).
    pub period: Period,
    pub anchor: SendNowAnchor,
    pub requested_at: DateTime<Utc>,
    pub requested_by: Actor,
}

const SEND_NOW: &str = "send now";

impl Subscription {
    /// Whether the next renewal was already invoiced by a send now keeping the anchor.
    pub fn renewal_prepaid(&self) -> bool {
        self.sent_now.is_some_and(|s| {
            s.anchor == SendNowAnchor::Keep && s.period.start == self.current_period.end
        })
    }

    /// The end of what is paid for ahead: the period a send now keeping the anchor
    /// invoiced, else the current period.
    pub(crate) fn prepaid_through(&self) -> DateTime<Utc> {
        match self.sent_now {
            Some(s) if self.renewal_prepaid() => s.period.end,
            _ => self.current_period.end,
        }
    }

    /// Whether `by` may send now; returns the period it would invoice.
    pub fn check_can_send_now(
        &self,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        anchor: SendNowAnchor,
        now: DateTime<Utc>,
    ) -> Result<Period, DomainError> {
        self.send_now_limits(policy, by.into().held, anchor, now)
            .map(|(period, _)| period)
    }

    /// [`Self::check_can_send_now`], with the limit an overriding agent exceeds.
    fn send_now_limits(
        &self,
        policy: &PortalPolicy,
        held: PolicyActor,
        anchor: SendNowAnchor,
        now: DateTime<Utc>,
    ) -> Result<(Period, Option<PolicyLimit>), DomainError> {
        if self.status != SubscriptionStatus::Active {
            return Err(self.refuse_status(SEND_NOW));
        }
        if !self.current_period.contains(now) {
            return Err(DomainError::refused(SEND_NOW, Refusal::RenewalPending));
        }
        if self.pending(ChangeType::Cancel).is_some() {
            return Err(DomainError::refused(SEND_NOW, Refusal::CancellationPending));
        }
        if self.pending(ChangeType::Pause).is_some() {
            return Err(DomainError::refused(SEND_NOW, Refusal::PauseScheduled));
        }
        if self.pending(ChangeType::PlanChange).is_some() {
            return Err(DomainError::refused(SEND_NOW, Refusal::PlanChangeScheduled));
        }
        if self.sent_now.is_some() {
            return Err(DomainError::refused(SEND_NOW, Refusal::AlreadySentNow));
        }
        if self.next_renewal_skipped() {
            return Err(DomainError::refused(SEND_NOW, Refusal::RenewalSkipped));
        }
        let exceeded = if policy.allow_send_now {
            None
        } else {
            held.exceed(PolicyLimit::AllowSendNow)?
        };
        let period = match anchor {
            SendNowAnchor::Keep => self
                .plan
                .cadence
                .next_period(self.billing_anchor, &self.current_period)?,
            SendNowAnchor::Reset => self.plan.cadence.first_period(now)?,
        };
        Ok((period, exceeded))
    }

    /// Brings the next renewal forward to now (see the module docs): the transition's
    /// [`SubscriptionEvent::SentNow`] names the period to invoice now.
    pub fn send_now(
        &self,
        anchor: SendNowAnchor,
        policy: &PortalPolicy,
        by: impl Into<Acting>,
        now: DateTime<Utc>,
    ) -> Result<Transition, DomainError> {
        let Acting { actor, held } = by.into();
        let (period, exceeded) = self.send_now_limits(policy, held, anchor, now)?;
        let mut next = self.clone();
        next.sent_now = Some(SentNow {
            period,
            anchor,
            requested_at: now,
            requested_by: actor,
        });
        if anchor == SendNowAnchor::Reset {
            next.billing_anchor = period.start;
            next.current_period = period;
            // A billed renewal: nothing in a row is skipped any more.
            next.skipped_in_a_row = 0;
        }
        Ok(Transition::new(
            next,
            vec![SubscriptionEvent::SentNow {
                period,
                anchor,
                by: actor,
            }],
        )
        .exceeding(exceeded.into_iter().collect()))
    }

    /// At a renewal: whether a send now already invoiced the period it starts. The send
    /// now is forgotten either way (a reset's lasts for the period it began).
    pub(crate) fn pass_sent_now(&mut self) -> bool {
        let prepaid = self.renewal_prepaid();
        self.sent_now = None;
        prepaid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::period::Cadence;
    use crate::billing::terms::PlanTerms;
    use crate::ids::{GenerateId, PlanId, SubscriptionId};
    use crate::money::{Currency, Money};
    use crate::subscription::NewSubscription;
    use crate::subscription::state::Acting;
    use chrono::TimeZone;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap()
    }

    fn at(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap()
    }

    fn monthly() -> Subscription {
        Subscription::create(
            NewSubscription {
                id: SubscriptionId::generate(),
                plan: PlanTerms::new(
                    PlanId::generate(),
                    Money::new(1000, "EUR".parse::<Currency>().unwrap()),
                    Cadence::monthly(),
                )
                .unwrap(),
                trial_days: 0,
                quantity: 1,
                pay_at_signup: false,
            },
            start(),
        )
        .unwrap()
        .subscription
    }

    fn allowing() -> PortalPolicy {
        PortalPolicy {
            allow_send_now: true,
            ..PortalPolicy::default()
        }
    }

    #[test]
    fn keep_invoices_the_next_period_and_its_renewal_bills_nothing() {
        let s = monthly();
        let t = s
            .send_now(SendNowAnchor::Keep, &allowing(), Actor::Customer, at(1, 20))
            .unwrap();
        let next = Period::new(at(2, 10), at(3, 10)).unwrap();
        assert_eq!(
            t.events,
            [SubscriptionEvent::SentNow {
                period: next,
                anchor: SendNowAnchor::Keep,
                by: Actor::Customer
            }]
        );
        let s = t.subscription;
        assert_eq!(s.current_period, Period::new(at(1, 10), at(2, 10)).unwrap());
        assert!(s.renewal_prepaid());
        // Paid ahead: a skip, a pause or a second send now would change what was paid.
        let refused = s
            .send_now(SendNowAnchor::Keep, &allowing(), Actor::Customer, at(1, 21))
            .unwrap_err();
        assert_eq!(refused.code(), "already_sent_now");
        let skip = PortalPolicy {
            allow_skip: true,
            ..allowing()
        };
        let refused = s
            .skip_renewal(&skip, Actor::Customer, at(1, 21))
            .unwrap_err();
        assert_eq!(refused.code(), "renewal_sent_now");
        // A cancellation keeps access through the period paid ahead.
        assert_eq!(s.paid_through(at(1, 21)), at(3, 10));

        let t = s.renew(at(2, 10)).unwrap();
        assert_eq!(
            t.events,
            [SubscriptionEvent::RenewalPrepaid { period: next }]
        );
        let s = t.subscription;
        assert_eq!(s.current_period, next);
        assert_eq!(s.sent_now, None);
        // The one after bills on the old schedule.
        let t = s.renew(at(3, 10)).unwrap();
        assert_eq!(
            t.events,
            [SubscriptionEvent::Renewed {
                period: Period::new(at(3, 10), at(4, 10)).unwrap()
            }]
        );
    }

    #[test]
    fn reset_starts_a_period_now_and_the_schedule_follows_it() {
        let s = monthly();
        let t = s
            .send_now(
                SendNowAnchor::Reset,
                &allowing(),
                Actor::Merchant,
                at(1, 20),
            )
            .unwrap();
        let now_period = Period::new(at(1, 20), at(2, 20)).unwrap();
        assert_eq!(
            t.events,
            [SubscriptionEvent::SentNow {
                period: now_period,
                anchor: SendNowAnchor::Reset,
                by: Actor::Merchant
            }]
        );
        let s = t.subscription;
        assert_eq!(s.current_period, now_period);
        assert_eq!(s.billing_anchor, at(1, 20));
        assert!(!s.renewal_prepaid());
        let refused = s
            .send_now(
                SendNowAnchor::Reset,
                &allowing(),
                Actor::Merchant,
                at(1, 21),
            )
            .unwrap_err();
        assert_eq!(refused.code(), "already_sent_now");
        let t = s.renew(at(2, 20)).unwrap();
        assert_eq!(
            t.events,
            [SubscriptionEvent::Renewed {
                period: Period::new(at(2, 20), at(3, 20)).unwrap()
            }]
        );
        assert_eq!(t.subscription.sent_now, None);
        // The next period may be sent now again.
        t.subscription
            .check_can_send_now(&allowing(), Actor::Customer, SendNowAnchor::Keep, at(2, 21))
            .unwrap();
    }

    #[test]
    fn the_policy_holds_customers_and_agents_unless_overridden() {
        let s = monthly();
        let policy = PortalPolicy::default();
        for by in [Acting::from(Actor::Customer), Acting::agent(false)] {
            let refused = s
                .send_now(SendNowAnchor::Keep, &policy, by, at(1, 20))
                .unwrap_err();
            assert_eq!(refused.code(), "send_now_not_allowed");
        }
        let t = s
            .send_now(SendNowAnchor::Keep, &policy, Acting::agent(true), at(1, 20))
            .unwrap();
        assert_eq!(t.overridden, [PolicyLimit::AllowSendNow]);
        let t = s
            .send_now(SendNowAnchor::Keep, &policy, Actor::Merchant, at(1, 20))
            .unwrap();
        assert!(t.overridden.is_empty());
    }

    #[test]
    fn a_skipped_renewal_or_another_state_refuses() {
        let s = monthly();
        let skip = PortalPolicy {
            allow_skip: true,
            ..allowing()
        };
        let skipped = s
            .skip_renewal(&skip, Actor::Customer, at(1, 15))
            .unwrap()
            .subscription;
        let refused = skipped
            .send_now(SendNowAnchor::Keep, &skip, Actor::Customer, at(1, 20))
            .unwrap_err();
        assert_eq!(refused.code(), "renewal_skipped");
        let mut paused = s.clone();
        paused.status = SubscriptionStatus::Paused;
        let refused = paused
            .send_now(SendNowAnchor::Keep, &skip, Actor::Merchant, at(1, 20))
            .unwrap_err();
        assert_eq!(refused.code(), "subscription_paused");
        let refused = s
            .send_now(SendNowAnchor::Keep, &skip, Actor::Merchant, at(2, 11))
            .unwrap_err();
        assert_eq!(refused.code(), "renewal_pending");
    }
}
