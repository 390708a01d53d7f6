//! Skipping renewals: what a skip bills (nothing), the limits, and skips that the
//! schedule leaves behind.

use super::*;
use crate::subscription::{
    Actor, PauseEnd, PauseRequest, PauseStart, PlanChangeRequest, ScheduledChangeKind,
};

fn skipping(max: Option<u32>) -> PortalPolicy {
    PortalPolicy {
        allow_skip: true,
        max_consecutive_skips: max,
        ..policy()
    }
}

/// What the engine does at `now`: the changes due, then every renewal due.
fn run_engine(mut s: Subscription, now: DateTime<Utc>) -> (Subscription, Vec<&'static str>) {
    let mut events = Vec::new();
    loop {
        let due = checked(s.apply_due(now).unwrap());
        events.extend(types(&due));
        s = due.subscription;
        match s.renew(now) {
            Ok(t) => {
                let t = checked(t);
                events.extend(types(&t));
                s = t.subscription;
            }
            Err(_) => return (s, events),
        }
    }
}

#[test]
fn a_skipped_renewal_advances_the_period_without_billing() {
    let s = active();
    let now = start() + days(3);
    let t = checked(
        s.skip_renewal(&skipping(None), Actor::Customer, now)
            .unwrap(),
    );
    assert_eq!(types(&t), ["subscription.renewal_skip_scheduled"]);
    let first = s.current_period.end;
    assert_eq!(t.subscription.skipped_renewals[0].renewal_at, first);
    assert!(t.subscription.next_renewal_skipped());

    let (after, events) = run_engine(t.subscription, first + days(1));
    assert_eq!(events, ["subscription.renewal_skipped"]);
    assert_eq!(after.status, SubscriptionStatus::Active);
    assert_eq!(after.current_period.start, first);
    assert!(after.skipped_renewals.is_empty());
    assert_eq!(after.skipped_in_a_row, 1);

    // The renewal after it bills again and resets the count.
    let (after, events) = run_engine(after.clone(), after.current_period.end + days(1));
    assert_eq!(events, ["subscription.renewed"]);
    assert_eq!(after.skipped_in_a_row, 0);
}

#[test]
fn skipping_again_takes_the_next_renewal_and_unskip_gives_back_the_last() {
    let s = active();
    let now = start() + days(3);
    let p = skipping(None);
    let one = s
        .skip_renewal(&p, Actor::Customer, now)
        .unwrap()
        .subscription;
    let two = checked(one.skip_renewal(&p, Actor::Customer, now).unwrap()).subscription;
    let coming = s.coming_renewals(2).unwrap();
    let skipped: Vec<_> = two.skipped_renewals.iter().map(|s| s.renewal_at).collect();
    assert_eq!(skipped, coming);

    let t = checked(two.unskip_renewal(Actor::Customer).unwrap());
    assert_eq!(types(&t), ["subscription.renewal_skip_removed"]);
    assert_eq!(t.subscription.skipped_renewals, one.skipped_renewals);
    let none = t
        .subscription
        .unskip_renewal(Actor::Customer)
        .unwrap()
        .subscription;
    assert_eq!(
        code(none.unskip_renewal(Actor::Customer)),
        "no_renewal_skipped"
    );
}

#[test]
fn customers_are_bound_by_the_policy_merchants_by_the_hard_limit() {
    let s = active();
    let now = start() + days(3);
    assert_eq!(
        code(s.skip_renewal(&policy(), Actor::Customer, now)),
        "skip_not_allowed"
    );
    assert!(s.skip_renewal(&policy(), Actor::Merchant, now).is_ok());

    let p = skipping(Some(2));
    let two = [(); 2].iter().fold(s.clone(), |s, ()| {
        s.skip_renewal(&p, Actor::Customer, now)
            .unwrap()
            .subscription
    });
    assert_eq!(
        code(two.skip_renewal(&p, Actor::Customer, now)),
        "too_many_consecutive_skips"
    );
    // Skips already passed count too: one passed, one ahead, a third is refused.
    let (passed, _) = run_engine(two.clone(), two.current_period.end + days(1));
    assert_eq!(passed.skipped_in_a_row, 1);
    assert_eq!(
        code(passed.skip_renewal(&p, Actor::Customer, passed.current_period.start + days(1))),
        "too_many_consecutive_skips"
    );

    let mut merchant = s;
    for _ in 0..crate::policy::MAX_PENDING_SKIPS {
        merchant = checked(merchant.skip_renewal(&p, Actor::Merchant, now).unwrap()).subscription;
    }
    assert_eq!(
        code(merchant.skip_renewal(&p, Actor::Merchant, now)),
        "skip_limit_reached"
    );
    // A customer may not take back the merchant's skip.
    assert_eq!(
        code(merchant.unskip_renewal(Actor::Customer)),
        "skip_not_removable"
    );
    assert!(merchant.unskip_renewal(Actor::Merchant).is_ok());
}

#[test]
fn refused_by_the_state() {
    let p = skipping(None);
    let now = start() + days(3);
    assert_eq!(
        code(trialing().skip_renewal(&p, Actor::Merchant, now)),
        "subscription_trialing"
    );
    let s = active();
    assert_eq!(
        code(s.skip_renewal(&p, Actor::Merchant, s.current_period.end)),
        "renewal_pending"
    );
    let pausing = s
        .pause(
            &PauseRequest {
                start: PauseStart::PeriodEnd,
                end: PauseEnd::OpenEnded,
                ..PauseRequest::default()
            },
            &p,
            Actor::Merchant,
            now,
        )
        .unwrap()
        .subscription;
    assert_eq!(
        code(pausing.skip_renewal(&p, Actor::Merchant, now)),
        "pause_scheduled"
    );
}

#[test]
fn a_pause_at_the_skipped_renewal_drops_the_skip() {
    let p = skipping(None);
    let now = start() + days(3);
    let s = active()
        .skip_renewal(&p, Actor::Merchant, now)
        .unwrap()
        .subscription;
    let t = checked(
        s.pause(
            &PauseRequest {
                start: PauseStart::Now,
                end: PauseEnd::OpenEnded,
                ..PauseRequest::default()
            },
            &p,
            Actor::Merchant,
            now,
        )
        .unwrap(),
    );
    assert!(t.subscription.skipped_renewals.is_empty());
    assert!(types(&t).contains(&"subscription.renewal_skip_removed"));
}

#[test]
fn a_downgrade_at_the_skipped_renewal_applies_and_the_skip_holds() {
    let p = skipping(None);
    let now = start() + days(3);
    let s = active()
        .skip_renewal(&p, Actor::Merchant, now)
        .unwrap()
        .subscription;
    let cheaper = monthly(500);
    let request = PlanChangeRequest {
        to: cheaper,
        product: crate::subscription::TargetProduct::Same,
    };
    let s = checked(s.change_plan(&request, &p, Actor::Merchant, now).unwrap()).subscription;
    assert!(matches!(
        s.scheduled_changes[0].kind,
        ScheduledChangeKind::PlanChange { .. }
    ));
    let (after, events) = run_engine(s.clone(), s.current_period.end + days(1));
    assert_eq!(
        events,
        ["subscription.plan_changed", "subscription.renewal_skipped"]
    );
    assert_eq!(after.plan, cheaper);
}

#[test]
fn a_cadence_change_now_drops_the_skips_it_moves() {
    let p = skipping(None);
    let now = start() + days(3);
    let s = active()
        .skip_renewal(&p, Actor::Merchant, now)
        .unwrap()
        .subscription;
    let request = PlanChangeRequest {
        to: yearly(20_000),
        product: crate::subscription::TargetProduct::Same,
    };
    let t = checked(s.change_plan(&request, &p, Actor::Merchant, now).unwrap());
    assert!(t.subscription.skipped_renewals.is_empty());
    assert_eq!(
        types(&t),
        [
            "subscription.plan_changed",
            "subscription.renewal_skip_removed"
        ]
    );
}

#[test]
fn a_cancellation_drops_the_skips_so_the_renewals_before_it_ends_are_billed() {
    let s = active();
    let now = start() + days(3);
    let skipped = checked(
        s.skip_renewal(&skipping(None), Actor::Customer, now)
            .unwrap(),
    )
    .subscription;
    let renewal = skipped.current_period.end;
    // Ends after the skipped renewal: without the rule, that period would be free.
    let later = crate::subscription::CancelRequest {
        timing: Some(crate::subscription::CancelTiming::At {
            date: renewal + days(10),
        }),
        ..crate::subscription::CancelRequest::default()
    };
    let t = checked(
        skipped
            .cancel(&later, &policy(), Actor::Merchant, now)
            .unwrap(),
    );
    assert!(t.subscription.skipped_renewals.is_empty());
    assert!(
        types(&t).contains(&"subscription.renewal_skip_removed"),
        "{:?}",
        types(&t)
    );
    let (_, events) = run_engine(t.subscription, renewal + days(1));
    assert_eq!(events, ["subscription.renewed"]);
}
