//! Quantities: limits, proration exact to the minor unit, availability agreeing with
//! the transition.

use proptest::prelude::*;

use super::*;
use crate::billing::proration::prorate_change;
use crate::catalog::QuantityLimits;
use crate::subscription::{Actor, available_actions, terms_times};

fn limits(min: u32, max: u32) -> QuantityLimits {
    QuantityLimits::new(min, max).unwrap()
}

#[test]
fn an_increase_half_way_is_prorated_like_a_plan_change() {
    let s = active();
    // 1000 a month; from 1 to 3 units 15.5 days into a 31-day period.
    let now = s.current_period.start + TimeDelta::hours(372);
    let t = checked(
        s.change_quantity(3, limits(1, 5), Actor::Customer, now)
            .unwrap(),
    );
    assert_eq!(t.subscription.quantity, 3);
    assert_eq!(t.subscription.billed_terms().unwrap().price.amount, 3000);
    let SubscriptionEvent::QuantityChanged {
        from,
        to,
        proration: Some(p),
        ..
    } = &t.events[0]
    else {
        panic!("{:?}", t.events)
    };
    assert_eq!((*from, *to), (1, 3));
    assert_eq!(p.lines[0].amount.amount, -500, "half of 1000 back");
    assert_eq!(p.lines[1].amount.amount, 1500, "half of 3000 due");
    assert_eq!(p.amount_due_now.amount, 1000);
}

#[test]
fn a_decrease_applies_now_and_carries_the_credit() {
    let s = active();
    let up = s
        .change_quantity(4, limits(1, 5), Actor::Merchant, s.current_period.start)
        .unwrap()
        .subscription;
    let now = up.current_period.start + TimeDelta::hours(372);
    let preview = up.preview_quantity_change(2, limits(1, 5), now).unwrap();
    let p = preview.proration.unwrap();
    assert_eq!(p.amount_due_now.amount, 0);
    assert_eq!(p.credit_carried.amount, 1000, "half of (4000 − 2000)");
    assert_eq!(preview.period_price.amount, 2000);
}

#[test]
fn refusals() {
    let s = active();
    let now = start() + days(1);
    let code = |r: Result<Transition, DomainError>| r.unwrap_err().code();
    assert_eq!(
        code(s.change_quantity(2, QuantityLimits::default(), Actor::Merchant, now)),
        "quantity_change_not_allowed"
    );
    assert_eq!(
        code(s.change_quantity(6, limits(1, 5), Actor::Customer, now)),
        "validation_failed"
    );
    assert_eq!(
        code(s.change_quantity(1, limits(1, 5), Actor::Customer, now)),
        "same_quantity"
    );
    let canceled = s
        .cancel(
            &super::availability::cancel_request(),
            &policy(),
            Actor::Merchant,
            now,
        )
        .unwrap()
        .subscription;
    assert_eq!(
        code(canceled.change_quantity(2, limits(1, 5), Actor::Merchant, now)),
        "subscription_canceled"
    );
    // Trialing: free, no proration.
    let t = trialing().change_quantity(2, limits(1, 5), Actor::Customer, now);
    assert!(matches!(
        t.unwrap().events[0],
        SubscriptionEvent::QuantityChanged {
            proration: None,
            ..
        }
    ));
}

#[test]
fn a_plan_change_prorates_at_the_subscription_quantity() {
    let s = active()
        .change_quantity(2, limits(1, 5), Actor::Merchant, start())
        .unwrap()
        .subscription;
    let to = monthly(3000);
    let now = start() + TimeDelta::hours(372);
    let request = crate::subscription::PlanChangeRequest {
        to,
        product: crate::subscription::TargetProduct::Same,
    };
    let p = s
        .preview_plan_change(&request, &policy(), Actor::Merchant, now)
        .unwrap()
        .proration
        .unwrap();
    assert_eq!(p.lines[0].amount.amount, -1000, "half of 2 × 1000");
    assert_eq!(p.lines[1].amount.amount, 3000, "half of 2 × 3000");
}

#[test]
fn a_period_price_beyond_max_amount_is_refused() {
    let big = monthly(crate::money::MAX_AMOUNT / 2);
    assert_eq!(terms_times(&big, 3).unwrap_err(), DomainError::Overflow);
    let new = NewSubscription {
        id: SubscriptionId::generate(),
        plan: big,
        trial_days: 0,
        quantity: 3,
        pay_at_signup: false,
    };
    assert!(Subscription::create(new, start()).is_err());
}

proptest! {
    /// The change's lines are exactly the proration of the two period prices, and the
    /// button shows exactly when some change is possible.
    #[test]
    fn quantity_changes_are_exact_and_agree_with_availability(
        price in 0i64..1_000_000,
        from in 1u32..20,
        to in 1u32..20,
        min in 1u32..5,
        extra in 0u32..20,
        hours in 0i64..800,
        trial in any::<bool>(),
    ) {
        let l = limits(min, min + extra);
        let base = subscription(monthly(price), if trial { 14 } else { 0 }, start());
        let s = Subscription { quantity: from, ..base };
        let now = start() + TimeDelta::hours(hours);
        let a = available_actions(&s, &policy(), &[], l, now);
        let result = s.change_quantity(to, l, Actor::Customer, now);
        let some_change_works = (l.min()..=l.max())
            .any(|q| s.change_quantity(q, l, Actor::Customer, now).is_ok());
        prop_assert_eq!(a.change_quantity.is_some(), some_change_works);
        if let Ok(t) = result {
            let t = checked(t);
            prop_assert_eq!(t.subscription.quantity, to);
            if let SubscriptionEvent::QuantityChanged { proration: Some(p), .. } = &t.events[0] {
                let expected = prorate_change(
                    &terms_times(&s.plan, from).unwrap(),
                    &terms_times(&s.plan, to).unwrap(),
                    &s.current_period,
                    now,
                ).unwrap();
                prop_assert_eq!(p, &expected);
                prop_assert_eq!(p.net().unwrap().amount,
                    p.lines.iter().map(|line| line.amount.amount).sum::<i64>());
            }
        }
    }
}
