//! The upcoming order of a subscription that ships, its notice and its edit cutoff
//! (Recharge's and Skio's "upcoming order" e-mail and "order locked"; docs/orders.md).
//!
//! A merchant chooses how many days before each renewal its subscribers hear what will
//! ship (`order.upcoming`, [`OrderNoticeSettings::notice_days`]) and how many hours
//! before it the order locks ([`OrderNoticeSettings::cutoff_hours`]): from the cutoff to
//! the renewal, a subscriber's edit that would change what the renewal ships (its plan,
//! its quantity, whether it ships at all, where it goes) is refused with
//! `order_edit_cutoff_passed`, naming the cutoff and the renewal after which editing is
//! open again. Edits that leave the locked order as it is (skipping the renewal after
//! it, a cancellation or a pause) are not held.
//!
//! [`check`] compares the order the next renewal makes before and after a change, so a
//! new action (send now, a swap) is held by calling it with its transition, without a
//! list of actions to keep in step.

use std::borrow::Cow;

use chrono::{DateTime, TimeDelta, Utc};

use crate::DomainError;
use crate::billing::terms::PlanTerms;
use crate::policy::{PolicyActor, PolicyLimit};
use crate::subscription::{Subscription, SubscriptionEvent};

/// The notice lead time when the merchant has not chosen one.
pub const DEFAULT_ORDER_NOTICE_DAYS: u32 = 3;
/// The longest notice lead time.
pub const MAX_ORDER_NOTICE_DAYS: u32 = 60;
/// No cutoff unless the merchant sets one: subscribers edit until the renewal, as before
/// cutoffs existed.
pub const DEFAULT_ORDER_CUTOFF_HOURS: u32 = 0;
/// The earliest cutoff: 60 days before the renewal.
pub const MAX_ORDER_CUTOFF_HOURS: u32 = 1440;

/// The stable code of an edit refused after the cutoff.
pub const CUTOFF_PASSED: &str = "order_edit_cutoff_passed";

/// A merchant's upcoming-order settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderNoticeSettings {
    /// Days before a renewal that `order.upcoming` is sent (0: never).
    pub notice_days: u32,
    /// Hours before a renewal after which its order is locked (0: no cutoff).
    pub cutoff_hours: u32,
}

impl Default for OrderNoticeSettings {
    fn default() -> Self {
        Self {
            notice_days: DEFAULT_ORDER_NOTICE_DAYS,
            cutoff_hours: DEFAULT_ORDER_CUTOFF_HOURS,
        }
    }
}

impl OrderNoticeSettings {
    /// The settings, if each is in range and the notice (when one is sent) comes no later
    /// than the cutoff: a subscriber hears of an order while they may still change it.
    pub fn new(notice_days: u32, cutoff_hours: u32) -> Result<Self, DomainError> {
        if notice_days > MAX_ORDER_NOTICE_DAYS {
            return Err(DomainError::validation(
                "order_notice_days",
                format!("must be between 0 and {MAX_ORDER_NOTICE_DAYS}"),
            ));
        }
        if cutoff_hours > MAX_ORDER_CUTOFF_HOURS {
            return Err(DomainError::validation(
                "order_cutoff_hours",
                format!("must be between 0 and {MAX_ORDER_CUTOFF_HOURS}"),
            ));
        }
        if notice_days > 0 && cutoff_hours > notice_days * 24 {
            return Err(DomainError::validation(
                "order_cutoff_hours",
                format!(
                    "must be at most order_notice_days × 24 ({}): the notice comes before the cutoff",
                    notice_days * 24
                ),
            ));
        }
        Ok(Self {
            notice_days,
            cutoff_hours,
        })
    }

    /// When the order of the renewal at `renewal_at` locks; `None` without a cutoff.
    pub fn cutoff_at(&self, renewal_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.cutoff_hours == 0 {
            return None;
        }
        renewal_at.checked_sub_signed(TimeDelta::hours(i64::from(self.cutoff_hours)))
    }

    /// Whether the order of the renewal at `renewal_at` is locked at `now`: from its
    /// cutoff until the renewal itself.
    pub fn locked(&self, renewal_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.cutoff_at(renewal_at)
            .is_some_and(|cutoff| now >= cutoff && now < renewal_at)
    }

    /// When `order.upcoming` is due for the renewal at `renewal_at`; `None` when no
    /// notice is sent.
    pub fn notice_at(&self, renewal_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.notice_days == 0 {
            return None;
        }
        renewal_at.checked_sub_signed(TimeDelta::days(i64::from(self.notice_days)))
    }
}

/// What the next renewal of a subscription ships: when, its plan terms and quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextOrder {
    /// The renewal that makes it: a change that moves it (a send now starting a new
    /// period) changes the order as much as one of what ships.
    pub renewal_at: DateTime<Utc>,
    pub plan: PlanTerms,
    pub quantity: u32,
}

/// The order the renewal at the end of the current period (or the trial's end) makes:
/// `None` when it makes none (the renewal is skipped, a send now already made its order,
/// or the subscription will not renew then: canceled, paused, ended).
pub fn next_order(sub: &Subscription) -> Option<NextOrder> {
    let at = sub.current_period.end;
    let applied = sub.apply_due(at).ok()?;
    if applied
        .events
        .iter()
        .any(|e| matches!(e, SubscriptionEvent::TrialEnded { .. }))
    {
        let s = &applied.subscription;
        return Some(NextOrder {
            renewal_at: at,
            plan: s.plan,
            quantity: s.quantity,
        });
    }
    let renewed = applied.subscription.renew(at).ok()?;
    if renewed.events.iter().any(|e| {
        matches!(
            e,
            SubscriptionEvent::RenewalSkipped { .. } | SubscriptionEvent::RenewalPrepaid { .. }
        )
    }) {
        return None;
    }
    Some(NextOrder {
        renewal_at: at,
        plan: renewed.subscription.plan,
        quantity: renewed.subscription.quantity,
    })
}

/// The refusal of an edit of the order of the renewal at `renewal_at`, locked since
/// `cutoff`.
pub fn cutoff_passed(cutoff: DateTime<Utc>, renewal_at: DateTime<Utc>) -> DomainError {
    DomainError::Conflict {
        code: CUTOFF_PASSED,
        detail: Cow::Owned(format!(
            "the order of the renewal at {} is locked since its edit cutoff at {}; \
             change it after the renewal, for the following order",
            renewal_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )),
    }
}

/// Refuses a change of a subscription that ships from `before` to `after` at `now`
/// when it would change the locked order of the next renewal (what ships, how many, or
/// whether anything does).
pub fn check(
    settings: &OrderNoticeSettings,
    now: DateTime<Utc>,
    before: &Subscription,
    after: &Subscription,
) -> Result<(), DomainError> {
    check_as(settings, now, before, after, PolicyActor::Customer).map(|_| ())
}

/// [`check`] for `held`, as the policy holds them ([`PolicyActor::exceed`] with
/// [`PolicyLimit::OrderCutoffHours`]): a subscriber and an agent are refused, an
/// overriding agent is let through with the limit reported (to be recorded as the
/// override), a merchant's backend is not held.
pub fn check_as(
    settings: &OrderNoticeSettings,
    now: DateTime<Utc>,
    before: &Subscription,
    after: &Subscription,
    held: PolicyActor,
) -> Result<Option<PolicyLimit>, DomainError> {
    let renewal_at = before.current_period.end;
    if !settings.locked(renewal_at, now) || next_order(before) == next_order(after) {
        return Ok(None);
    }
    match held.exceed(PolicyLimit::OrderCutoffHours) {
        Ok(exceeded) => Ok(exceeded),
        Err(DomainError::PolicyLimit {
            overridable: true, ..
        }) => Err(overridable(cutoff_passed_at(settings, renewal_at))),
        Err(_) => Err(cutoff_passed_at(settings, renewal_at)),
    }
}

/// The refusal `err` of an agent, saying that an override allows it.
fn overridable(err: DomainError) -> DomainError {
    match err {
        DomainError::Conflict { code, detail } => DomainError::Conflict {
            code,
            detail: Cow::Owned(format!(
                "{detail}; an `override` with a reason allows it (limit `{}`)",
                PolicyLimit::OrderCutoffHours.as_str()
            )),
        },
        other => other,
    }
}

/// Refuses a change of where a subscription ships at `now` while the order of its next
/// renewal is locked; a renewal that ships nothing (skipped) has nothing to lock.
pub fn check_address_change(
    settings: &OrderNoticeSettings,
    now: DateTime<Utc>,
    sub: &Subscription,
) -> Result<(), DomainError> {
    let renewal_at = sub.current_period.end;
    if !settings.locked(renewal_at, now) || next_order(sub).is_none() {
        return Ok(());
    }
    Err(cutoff_passed_at(settings, renewal_at))
}

fn cutoff_passed_at(settings: &OrderNoticeSettings, renewal_at: DateTime<Utc>) -> DomainError {
    // Locked implies a cutoff.
    let cutoff = settings.cutoff_at(renewal_at).unwrap_or(renewal_at);
    cutoff_passed(cutoff, renewal_at)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::billing::period::Cadence;
    use crate::ids::{GenerateId, PlanId, SubscriptionId};
    use crate::money::Money;
    use crate::policy::PortalPolicy;
    use crate::subscription::{Actor, NewSubscription};

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 9, 30, 0).unwrap()
    }

    fn active() -> Subscription {
        let plan = PlanTerms::new(
            PlanId::generate(),
            Money::new(1200, "EUR".parse().unwrap()),
            Cadence::monthly(),
        )
        .unwrap();
        let new = NewSubscription {
            id: SubscriptionId::generate(),
            plan,
            trial_days: 0,
            quantity: 1,
            pay_at_signup: false,
        };
        Subscription::create(new, start()).unwrap().subscription
    }

    fn settings(notice_days: u32, cutoff_hours: u32) -> OrderNoticeSettings {
        OrderNoticeSettings::new(notice_days, cutoff_hours).unwrap()
    }

    #[test]
    fn settings_are_bounded_and_the_notice_comes_first() {
        assert_eq!(OrderNoticeSettings::default(), settings(3, 0));
        let field = |r: Result<OrderNoticeSettings, DomainError>| match r {
            Err(DomainError::Validation { field, .. }) => field.into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(field(OrderNoticeSettings::new(61, 0)), "order_notice_days");
        assert_eq!(
            field(OrderNoticeSettings::new(60, 1441)),
            "order_cutoff_hours"
        );
        assert_eq!(field(OrderNoticeSettings::new(2, 49)), "order_cutoff_hours");
        assert!(OrderNoticeSettings::new(2, 48).is_ok());
        // Without notices the cutoff stands alone.
        assert!(OrderNoticeSettings::new(0, 1440).is_ok());
    }

    #[test]
    fn an_order_locks_from_its_cutoff_until_the_renewal() {
        let renewal = start() + TimeDelta::days(31);
        let s = settings(3, 48);
        let cutoff = renewal - TimeDelta::hours(48);
        assert_eq!(s.cutoff_at(renewal), Some(cutoff));
        assert!(!s.locked(renewal, cutoff - TimeDelta::microseconds(1)));
        assert!(s.locked(renewal, cutoff));
        assert!(s.locked(renewal, renewal - TimeDelta::microseconds(1)));
        assert!(!s.locked(renewal, renewal));
        assert_eq!(s.notice_at(renewal), Some(renewal - TimeDelta::days(3)));
        // No cutoff, no lock; no notice days, no notice.
        assert!(!settings(3, 0).locked(renewal, renewal - TimeDelta::hours(1)));
        assert_eq!(settings(0, 0).notice_at(renewal), None);
    }

    #[test]
    fn changes_of_the_locked_order_are_refused_others_pass() {
        let before = active();
        let renewal = before.current_period.end;
        let s = settings(3, 24);
        let locked = renewal - TimeDelta::hours(2);
        let open = renewal - TimeDelta::hours(30);

        let mut more = before.clone();
        more.quantity = 2;
        let refused = check(&s, locked, &before, &more).unwrap_err();
        assert_eq!(refused.code(), CUTOFF_PASSED);
        assert!(
            refused.to_string().contains("2026-02-14T09:30:00Z"),
            "{refused}"
        );
        assert!(check(&s, open, &before, &more).is_ok());

        // Skipping the locked renewal changes it; skipping the one after does not.
        let skipped = before
            .skip_renewal(&PortalPolicy::default(), Actor::Merchant, open)
            .unwrap()
            .subscription;
        assert_eq!(next_order(&skipped), None);
        assert_eq!(
            check(&s, locked, &before, &skipped).unwrap_err().code(),
            CUTOFF_PASSED
        );
        let two = skipped
            .skip_renewal(&PortalPolicy::default(), Actor::Merchant, locked)
            .unwrap()
            .subscription;
        assert!(check(&s, locked, &skipped, &two).is_ok());
        // Taking back the skip of the locked renewal makes it ship: refused.
        assert_eq!(
            check(&s, locked, &skipped, &before).unwrap_err().code(),
            CUTOFF_PASSED
        );

        // An address change locks with a renewal that ships, not with a skipped one.
        assert_eq!(
            check_address_change(&s, locked, &before)
                .unwrap_err()
                .code(),
            CUTOFF_PASSED
        );
        assert!(check_address_change(&s, locked, &skipped).is_ok());
        assert!(check_address_change(&s, open, &before).is_ok());
        // Nothing is locked without a cutoff.
        assert!(check(&settings(3, 0), locked, &before, &more).is_ok());
    }

    #[test]
    fn a_send_now_changes_the_locked_order_either_way() {
        use crate::subscription::SendNowAnchor;
        let before = active();
        let renewal = before.current_period.end;
        let s = settings(3, 24);
        let locked = renewal - TimeDelta::hours(2);
        let open = renewal - TimeDelta::hours(30);
        let policy = PortalPolicy::default();
        for anchor in [SendNowAnchor::Keep, SendNowAnchor::Reset] {
            let at_lock = before
                .send_now(anchor, &policy, Actor::Merchant, locked)
                .unwrap()
                .subscription;
            // Keeping the anchor, nothing ships at the renewal any more; resetting it, the
            // renewal moves.
            let after = next_order(&at_lock);
            match anchor {
                SendNowAnchor::Keep => assert_eq!(after, None),
                SendNowAnchor::Reset => {
                    assert!(after.is_some_and(|o| o.renewal_at > renewal), "{after:?}");
                }
            }
            assert_eq!(
                check(&s, locked, &before, &at_lock).unwrap_err().code(),
                CUTOFF_PASSED,
                "{anchor:?}"
            );
            let before_cutoff = before
                .send_now(anchor, &policy, Actor::Merchant, open)
                .unwrap()
                .subscription;
            assert!(
                check(&s, open, &before, &before_cutoff).is_ok(),
                "{anchor:?}"
            );
        }
    }

    #[test]
    fn an_overriding_agent_passes_the_cutoff_with_the_limit_reported() {
        let before = active();
        let renewal = before.current_period.end;
        let s = settings(3, 24);
        let locked = renewal - TimeDelta::hours(2);
        let mut more = before.clone();
        more.quantity = 2;
        let held = |actor| check_as(&s, locked, &before, &more, actor);
        assert_eq!(
            held(PolicyActor::Agent { overriding: true }),
            Ok(Some(PolicyLimit::OrderCutoffHours))
        );
        assert_eq!(held(PolicyActor::System), Ok(None));
        let agent = held(PolicyActor::Agent { overriding: false }).unwrap_err();
        assert_eq!(agent.code(), CUTOFF_PASSED);
        assert!(agent.to_string().contains("override"), "{agent}");
        let customer = held(PolicyActor::Customer).unwrap_err();
        assert_eq!(customer.code(), CUTOFF_PASSED);
        assert!(!customer.to_string().contains("override"), "{customer}");
        // Nothing to report where the cutoff does not refuse.
        assert_eq!(
            check_as(
                &s,
                renewal - TimeDelta::hours(30),
                &before,
                &more,
                PolicyActor::Agent { overriding: true }
            ),
            Ok(None)
        );
    }
}
