use super::*;
use crate::billing::proration::ProrationLineKind;
use crate::ids::GenerateId;
use crate::subscription::{
    Actor, PlanChangeRequest, PlanChangeTiming, SubscriptionEvent, SubscriptionStatus,
};

fn to(plan: PlanTerms) -> PlanChangeRequest {
    PlanChangeRequest {
        to: plan,
        product: crate::subscription::TargetProduct::Same,
    }
}

#[test]
fn an_upgrade_applies_now_with_proration() {
    let s = active();
    let half = start() + days(15); // 31-day period: 15 of 31 days used
    let pro = monthly(3100);
    let preview = s
        .preview_plan_change(&to(pro), &policy(), Actor::Customer, half)
        .unwrap();
    assert_eq!(preview.timing, PlanChangeTiming::Now);
    let proration = preview.proration.clone().unwrap();
    assert_eq!(proration.lines[0].kind, ProrationLineKind::Credit);
    assert_eq!(proration.lines[0].amount.amount, -(1000 - 1000 * 15 / 31));
    assert_eq!(proration.lines[1].amount.amount, 3100 - 3100 * 15 / 31);

    let t = checked(
        s.change_plan(&to(pro), &policy(), Actor::Customer, half)
            .unwrap(),
    );
    assert_eq!(t.subscription.plan, pro);
    assert_eq!(t.subscription.current_period, s.current_period);
    assert_eq!(
        t.events,
        [SubscriptionEvent::PlanChanged {
            from: s.plan,
            to: pro,
            proration: Some(proration)
        }]
    );
}

#[test]
fn a_new_cadence_starts_a_new_schedule_now() {
    let s = active();
    let now = start() + days(10);
    let t = checked(
        s.change_plan(&to(yearly(10_000)), &policy(), Actor::Merchant, now)
            .unwrap(),
    );
    assert_eq!(t.subscription.billing_anchor, now);
    assert_eq!(t.subscription.current_period.start, now);
    assert_eq!(t.subscription.current_period.end, at(2026, 1, 25));
}

#[test]
fn a_downgrade_waits_for_period_end_and_then_bills_the_new_price() {
    let s = active();
    let basic = monthly(500);
    let now = start() + days(3);
    let preview = s
        .preview_plan_change(&to(basic), &policy(), Actor::Customer, now)
        .unwrap();
    assert_eq!(preview.timing, PlanChangeTiming::PeriodEnd);
    assert_eq!(preview.effective_at, at(2025, 2, 15));
    assert_eq!(preview.proration, None);

    let t = checked(
        s.change_plan(&to(basic), &policy(), Actor::Customer, now)
            .unwrap(),
    );
    assert_eq!(types(&t), ["subscription.plan_change_scheduled"]);
    let scheduled = t.subscription;
    assert_eq!(scheduled.plan, s.plan);
    assert_eq!(
        code(scheduled.change_plan(&to(monthly(5000)), &policy(), Actor::Customer, now)),
        "plan_change_scheduled"
    );
    // The renewal refuses to run before the downgrade is applied.
    assert_eq!(code(scheduled.renew(at(2025, 2, 15))), "changes_due");
    let applied = checked(scheduled.apply_due(at(2025, 2, 15)).unwrap());
    assert_eq!(types(&applied), ["subscription.plan_changed"]);
    let renewed = checked(applied.subscription.renew(at(2025, 2, 15)).unwrap());
    assert_eq!(renewed.subscription.plan, basic);
    assert_eq!(renewed.subscription.current_period.end, at(2025, 3, 15));
}

#[test]
fn a_downgrade_to_another_cadence_anchors_at_period_end() {
    let s = active();
    let weekly = PlanTerms::new(
        PlanId::generate(),
        Money::new(100, eur()),
        Cadence::new(Interval::Week, 1).unwrap(),
    )
    .unwrap();
    let s = s
        .change_plan(&to(weekly), &policy(), Actor::Customer, start())
        .unwrap()
        .subscription;
    let s = checked(s.apply_due(at(2025, 2, 15)).unwrap()).subscription;
    assert_eq!(s.billing_anchor, at(2025, 2, 15));
    let s = checked(s.renew(at(2025, 2, 15)).unwrap()).subscription;
    assert_eq!(s.current_period.end, at(2025, 2, 22));
}

#[test]
fn trial_plan_changes_cost_nothing_and_apply_now() {
    let s = trialing();
    let cheaper = monthly(100);
    let t = checked(
        s.change_plan(&to(cheaper), &policy(), Actor::Customer, start())
            .unwrap(),
    );
    assert_eq!(t.subscription.plan, cheaper);
    assert_eq!(t.subscription.status, SubscriptionStatus::Trialing);
    assert!(matches!(
        t.events[0],
        SubscriptionEvent::PlanChanged {
            proration: None,
            ..
        }
    ));
}

#[test]
fn refusals() {
    let s = active();
    let pro = monthly(2000);
    assert_eq!(
        code(s.change_plan(&to(s.plan), &policy(), Actor::Merchant, start())),
        "same_plan"
    );
    let closed = PortalPolicy {
        allow_plan_change: false,
        ..policy()
    };
    assert_eq!(
        code(s.change_plan(&to(pro), &closed, Actor::Customer, start())),
        "plan_change_not_allowed"
    );
    assert!(
        s.change_plan(&to(pro), &closed, Actor::Merchant, start())
            .is_ok()
    );
    let listed = PortalPolicy {
        switchable_plan_ids: vec![PlanId::generate()],
        ..policy()
    };
    assert_eq!(
        code(s.change_plan(&to(pro), &listed, Actor::Customer, start())),
        "plan_not_allowed"
    );
    // Another product's plan: refused to everyone unless the product lets it swap there.
    let other_product = PlanChangeRequest {
        to: pro,
        product: crate::subscription::TargetProduct::Unrelated,
    };
    for by in [Actor::Customer, Actor::Merchant] {
        assert_eq!(
            code(s.change_plan(&other_product, &policy(), by, start())),
            "product_not_swappable"
        );
    }
    let swap = PlanChangeRequest {
        to: pro,
        product: crate::subscription::TargetProduct::Swappable(
            crate::catalog::QuantityLimits::default(),
        ),
    };
    assert!(
        s.change_plan(&swap, &policy(), Actor::Customer, start())
            .is_ok()
    );
    assert_eq!(
        code(s.change_plan(&swap, &closed, Actor::Customer, start())),
        "plan_change_not_allowed"
    );
    // The quantity stays: it must fit the new product.
    let mut three = s.clone();
    three.quantity = 3;
    assert_eq!(
        code(three.change_plan(&swap, &policy(), Actor::Merchant, start())),
        "quantity_outside_product_limits"
    );
    let roomy = PlanChangeRequest {
        product: crate::subscription::TargetProduct::Swappable(
            crate::catalog::QuantityLimits::new(1, 6).unwrap(),
        ),
        ..swap
    };
    assert!(
        three
            .change_plan(&roomy, &policy(), Actor::Merchant, start())
            .is_ok()
    );
    let mut usd = pro;
    usd.price.currency = "USD".parse().unwrap();
    assert_eq!(
        code(s.change_plan(&to(usd), &policy(), Actor::Merchant, start())),
        "currency_mismatch"
    );
    assert_eq!(
        code(s.change_plan(&to(pro), &policy(), Actor::Merchant, at(2025, 2, 15))),
        "renewal_pending"
    );
    let past_due = s.record_payment_failure().unwrap().subscription;
    assert_eq!(
        code(past_due.change_plan(&to(pro), &policy(), Actor::Merchant, start())),
        "subscription_past_due"
    );
}
