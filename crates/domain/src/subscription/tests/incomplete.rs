//! Signup paid at once: `incomplete` until the first invoice is paid, then `active`, or
//! `incomplete_expired` after the deadline.

use super::availability::{assert_agrees, cancel_request};
use super::*;
use crate::catalog::QuantityLimits;
use crate::policy::CancellationMode;
use crate::subscription::{Actor, available_actions};

pub(super) fn incomplete() -> Subscription {
    let t = Subscription::create(
        NewSubscription {
            id: SubscriptionId::generate(),
            plan: monthly(1000),
            trial_days: 0,
            quantity: 1,
            pay_at_signup: true,
        },
        start(),
    )
    .unwrap();
    checked(t).subscription
}

#[test]
fn a_signup_paid_at_once_starts_incomplete_with_its_first_period() {
    let s = incomplete();
    assert_eq!(s.status, SubscriptionStatus::Incomplete);
    assert_eq!(s.current_period.start, start());
    assert_eq!(s.current_period.end, at(2025, 2, 15));
    assert!(!s.has_access(start()));
    assert_eq!(s.incomplete_expires_at(), start() + TimeDelta::hours(23));
}

#[test]
fn a_trial_is_never_incomplete() {
    let t = Subscription::create(
        NewSubscription {
            id: SubscriptionId::generate(),
            plan: monthly(1000),
            trial_days: 7,
            quantity: 1,
            pay_at_signup: true,
        },
        start(),
    )
    .unwrap();
    assert_eq!(t.subscription.status, SubscriptionStatus::Trialing);
}

#[test]
fn paying_the_first_invoice_activates_with_the_period_as_created() {
    let s = incomplete();
    let t = checked(s.activate().unwrap());
    assert_eq!(types(&t), ["subscription.activated"]);
    assert_eq!(t.subscription.status, SubscriptionStatus::Active);
    assert_eq!(t.subscription.current_period, s.current_period);
    assert!(t.subscription.has_access(start()));
    assert_eq!(code(active().activate()), "subscription_active");
}

#[test]
fn an_unpaid_signup_expires_after_23_hours_for_good() {
    let s = incomplete();
    let early = start() + TimeDelta::hours(23) - TimeDelta::seconds(1);
    assert_eq!(code(s.expire_incomplete(early)), "period_not_ended");
    let now = start() + TimeDelta::hours(23);
    let t = checked(s.expire_incomplete(now).unwrap());
    assert_eq!(types(&t), ["subscription.incomplete_expired"]);
    let expired = t.subscription;
    assert_eq!(expired.status, SubscriptionStatus::IncompleteExpired);
    assert_eq!(expired.ended_at, Some(now));
    assert!(expired.has_ended() && !expired.has_access(now));
    assert_eq!(code(expired.activate()), "subscription_incomplete_expired");
    assert_eq!(
        code(expired.expire_incomplete(now)),
        "subscription_incomplete_expired"
    );
    assert_eq!(code(active().expire_incomplete(now)), "subscription_active");
    let p = policy();
    assert_eq!(
        code(expired.cancel(&cancel_request(), &p, Actor::Merchant, now)),
        "subscription_incomplete_expired"
    );
    assert_eq!(
        code(expired.resume(Actor::Merchant, now)),
        "subscription_incomplete_expired"
    );
}

#[test]
fn an_incomplete_subscription_offers_only_cancel_and_it_ends_at_once() {
    let s = incomplete();
    let now = start() + TimeDelta::hours(1);
    // Even a policy that asks for a request with a notice period.
    let mut p = policy();
    p.cancellation_mode = CancellationMode::Request;
    p.notice_period_days = 30;
    let a = available_actions(&s, &p, &[], QuantityLimits::default(), now);
    assert!(a.pause.is_none() && a.change_plan.is_none() && a.change_quantity.is_none());
    assert!(!a.resume && !a.withdraw_cancellation);
    let cancel = a.cancel.expect("cancel is offered");
    assert_eq!(cancel.effective_at, now);
    assert!(!cancel.requires_reason && !cancel.requires_confirmation);
    assert_eq!(
        code(s.pause(
            &super::availability::pause_request(now),
            &p,
            Actor::Merchant,
            now
        )),
        "subscription_incomplete"
    );
    let t = checked(
        s.cancel(&CancelRequestDefault::default(), &p, Actor::Customer, now)
            .unwrap(),
    );
    assert_eq!(types(&t), ["subscription.canceled"]);
    assert_eq!(t.subscription.ended_at, Some(now));
    assert!(!t.subscription.has_access(now));
    for plans in [vec![], vec![monthly(2000)]] {
        assert_agrees(&s, &p, &plans, now);
    }
}

type CancelRequestDefault = crate::subscription::CancelRequest;
