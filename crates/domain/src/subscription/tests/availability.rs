//! `available_actions` says an action is available exactly when its transition succeeds,
//! for every status and every combination of policy switches.

use super::*;
use crate::catalog::QuantityLimits;
use crate::policy::{CancellationMode, ImmediateCancelTiming};
use crate::subscription::{
    Actor, CancelRequest, CancellationReason, OfferedPlan, PauseEnd, PauseRequest, PauseStart,
    PlanChangeRequest, SubscriptionStatus, available_actions,
};

/// A plan as the portal's terms offer it.
pub(super) fn offered(plan: &PlanTerms) -> OfferedPlan {
    OfferedPlan {
        plan_id: plan.plan_id,
        currency: plan.price.currency,
        product: crate::subscription::TargetProduct::Same,
    }
}

/// The customer's "standard" valid input for each action.
pub(super) fn pause_request(now: DateTime<Utc>) -> PauseRequest {
    PauseRequest {
        start: PauseStart::Now,
        end: PauseEnd::At {
            date: now + days(1),
        },
        ..PauseRequest::default()
    }
}

pub(super) fn cancel_request() -> CancelRequest {
    CancelRequest {
        reason: Some(CancellationReason::Other),
        confirm: true,
        ..CancelRequest::default()
    }
}

/// Asserts that availability and the transitions agree for `s` under `p` at `now`.
pub(super) fn assert_agrees(
    s: &Subscription,
    p: &PortalPolicy,
    plans: &[PlanTerms],
    now: DateTime<Utc>,
) {
    let offered: Vec<OfferedPlan> = plans.iter().map(offered).collect();
    let available = available_actions(s, p, &offered, QuantityLimits::default(), now);
    let ctx = format!("status {} policy {p:?}", s.status);
    let customer = Actor::Customer;

    let pause = s.pause(&pause_request(now), p, customer, now);
    assert_eq!(
        available.pause.is_some(),
        pause.is_ok(),
        "pause: {ctx} {pause:?}"
    );
    if let Some(pause) = &available.pause {
        assert_eq!(pause.max_pause_days, p.max_pause_days);
    }

    let resume = s.resume(customer, now);
    assert_eq!(available.resume, resume.is_ok(), "resume: {ctx} {resume:?}");

    let cancel = s.cancel(&cancel_request(), p, customer, now);
    assert_eq!(
        available.cancel.is_some(),
        cancel.is_ok(),
        "cancel: {ctx} {cancel:?}"
    );
    if let (Some(offer), Ok(t)) = (&available.cancel, &cancel) {
        let ends = t.subscription.cancel_at.or(t.subscription.ended_at);
        assert_eq!(Some(offer.effective_at), ends, "cancel preview: {ctx}");
        // An incomplete subscription ends at once whatever the policy (nothing was paid).
        let mode = match s.status {
            SubscriptionStatus::Incomplete => CancellationMode::Immediate,
            _ => p.cancellation_mode,
        };
        assert_eq!(offer.mode, mode);
    }

    let withdraw = s.withdraw_cancellation(customer);
    assert_eq!(
        available.withdraw_cancellation,
        withdraw.is_ok(),
        "withdraw: {ctx}"
    );

    for plan in plans {
        let request = PlanChangeRequest {
            to: *plan,
            product: crate::subscription::TargetProduct::Same,
        };
        let change = s.change_plan(&request, p, customer, now);
        let offered = available
            .change_plan
            .as_ref()
            .is_some_and(|c| c.plan_ids.contains(&plan.plan_id));
        assert_eq!(
            offered,
            change.is_ok(),
            "change to {}: {ctx} {change:?}",
            plan.price
        );
        let preview = s.preview_plan_change(&request, p, customer, now);
        assert_eq!(preview.is_ok(), change.is_ok(), "preview: {ctx}");
    }

    let skip = s.skip_renewal(p, customer, now);
    assert_eq!(
        available.skip.is_some(),
        skip.is_ok(),
        "skip: {ctx} {skip:?}"
    );
    if let (Some(offer), Ok(t)) = (&available.skip, &skip) {
        let skipped = t.subscription.skipped_renewals.last().map(|s| s.renewal_at);
        assert_eq!(Some(offer.renewal_at), skipped, "skip preview: {ctx}");
    }
    let unskip = s.unskip_renewal(customer);
    assert_eq!(available.unskip, unskip.is_ok(), "unskip: {ctx} {unskip:?}");

    for change in &s.scheduled_changes {
        let removal = s.remove_scheduled_change(change.id, customer);
        let offered = available.removable_changes.contains(&change.id);
        assert_eq!(
            offered,
            removal.is_ok(),
            "remove {}: {ctx}",
            change.kind.change_type().as_str()
        );
    }
}

fn policies(listed: PlanId) -> Vec<PortalPolicy> {
    let mut out = Vec::new();
    for (allow_pause, allow_cancel) in [(true, true), (true, false), (false, true), (false, false)]
    {
        for allow_plan_change in [true, false] {
            for mode in [CancellationMode::Request, CancellationMode::Immediate] {
                for restrict in [false, true] {
                    out.push(PortalPolicy {
                        allow_pause,
                        allow_cancel,
                        allow_plan_change,
                        cancellation_mode: mode,
                        immediate_cancel_timing: ImmediateCancelTiming::PeriodEnd,
                        notice_period_days: 20,
                        switchable_plan_ids: if restrict { vec![listed] } else { Vec::new() },
                        ..policy()
                    });
                }
            }
        }
    }
    out
}

/// One subscription in each status, plus the variants pending changes create.
fn fixtures() -> Vec<(&'static str, Subscription)> {
    let p = policy();
    let now = start() + days(1);
    let by = |s: &Subscription, actor, req: PauseRequest| {
        s.pause(&req, &p, actor, now).unwrap().subscription
    };
    let pause_now = PauseRequest {
        start: PauseStart::Now,
        end: PauseEnd::At {
            date: now + days(30),
        },
        ..PauseRequest::default()
    };
    let pause_later = PauseRequest {
        start: PauseStart::PeriodEnd,
        end: PauseEnd::AfterCycles { cycles: 1 },
        ..pause_now
    };
    let merchant_cancel = CancelRequest {
        timing: Some(crate::subscription::CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    let downgrade = PlanChangeRequest {
        to: monthly(10),
        product: crate::subscription::TargetProduct::Same,
    };
    let past_due = active().record_payment_failure().unwrap().subscription;
    vec![
        ("trialing", trialing()),
        ("active", active()),
        ("past_due", past_due.clone()),
        ("unpaid", past_due.mark_unpaid().unwrap().subscription),
        (
            "paused by customer",
            by(&active(), Actor::Customer, pause_now),
        ),
        (
            "paused by merchant",
            by(&active(), Actor::Merchant, pause_now),
        ),
        (
            "pause scheduled",
            by(&active(), Actor::Customer, pause_later),
        ),
        (
            "merchant pause scheduled",
            by(&active(), Actor::Merchant, pause_later),
        ),
        (
            "cancellation requested",
            active()
                .cancel(&cancel_request(), &p, Actor::Customer, now)
                .unwrap()
                .subscription,
        ),
        (
            "merchant cancel scheduled",
            active()
                .cancel(&merchant_cancel, &p, Actor::Merchant, now)
                .unwrap()
                .subscription,
        ),
        (
            "downgrade scheduled",
            active()
                .change_plan(&downgrade, &p, Actor::Customer, now)
                .unwrap()
                .subscription,
        ),
        (
            "canceled",
            active()
                .cancel(&cancel_request(), &p, Actor::Merchant, now)
                .unwrap()
                .subscription,
        ),
        ("incomplete", super::incomplete::incomplete()),
        (
            "incomplete_expired",
            super::incomplete::incomplete()
                .expire_incomplete(start() + days(1))
                .unwrap()
                .subscription,
        ),
    ]
}

#[test]
fn availability_matches_the_transitions_for_every_state_and_policy() {
    let now = start() + days(3);
    let upgrade = monthly(5000);
    let sideways = monthly(1000);
    let plans = [upgrade, sideways, monthly(300), usd_monthly(5000)];
    let mut checked_cases = 0;
    for (name, s) in fixtures() {
        s.check_invariants()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut candidates = plans.to_vec();
        candidates.push(s.plan);
        for p in policies(upgrade.plan_id) {
            assert_agrees(&s, &p, &candidates, now);
            checked_cases += 1;
        }
    }
    assert_eq!(checked_cases, 14 * 32);
}

fn usd_monthly(amount: i64) -> PlanTerms {
    let usd = "USD".parse().unwrap();
    PlanTerms::new(
        PlanId::generate(),
        Money::new(amount, usd),
        monthly(1).cadence,
    )
    .unwrap()
}

/// Regression: a EUR subscription was offered a USD plan of its product, and the switch
/// then failed with 422 `currency_mismatch`.
#[test]
fn a_plan_change_is_offered_only_in_the_subscription_currency() {
    let now = start() + days(3);
    let (eur_plan, usd_plan) = (monthly(5000), usd_monthly(5000));
    let s = active();
    let a = available_actions(
        &s,
        &policy(),
        &[offered(&usd_plan), offered(&eur_plan)],
        QuantityLimits::default(),
        now,
    );
    assert_eq!(a.change_plan.unwrap().plan_ids, vec![eur_plan.plan_id]);
    let only_usd = available_actions(
        &s,
        &policy(),
        &[offered(&usd_plan)],
        QuantityLimits::default(),
        now,
    );
    assert_eq!(
        only_usd.change_plan, None,
        "no button when nothing qualifies"
    );
    let request = PlanChangeRequest {
        to: usd_plan,
        product: crate::subscription::TargetProduct::Same,
    };
    assert!(matches!(
        s.change_plan(&request, &policy(), Actor::Customer, now),
        Err(DomainError::FieldRefused {
            field: "plan_id",
            code: "currency_mismatch",
            ..
        })
    ));
}

#[test]
fn the_documented_status_table() {
    let now = start() + days(3);
    let p = policy();
    let plan = monthly(5000);
    // (pause, resume, cancel, change plan) for a customer under the default policy.
    let expected = [
        (
            "trialing",
            SubscriptionStatus::Trialing,
            [false, false, true, true],
        ),
        (
            "active",
            SubscriptionStatus::Active,
            [true, false, true, true],
        ),
        (
            "past_due",
            SubscriptionStatus::PastDue,
            [false, false, true, false],
        ),
        (
            "unpaid",
            SubscriptionStatus::Unpaid,
            [false, false, true, false],
        ),
        (
            "paused by customer",
            SubscriptionStatus::Paused,
            [false, true, true, false],
        ),
        (
            "canceled",
            SubscriptionStatus::Canceled,
            [false, false, false, false],
        ),
    ];
    let fixtures = fixtures();
    for (name, status, [pause, resume, cancel, change]) in expected {
        let s = &fixtures.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(s.status, status);
        let a = available_actions(s, &p, &[offered(&plan)], QuantityLimits::default(), now);
        assert_eq!(
            [
                a.pause.is_some(),
                a.resume,
                a.cancel.is_some(),
                a.change_plan.is_some()
            ],
            [pause, resume, cancel, change],
            "{name}"
        );
    }
}

#[test]
fn the_cancel_offer_previews_notice_and_mode() {
    let now = start() + days(3);
    let p = PortalPolicy {
        notice_period_days: 45,
        ..policy()
    };
    let offer = available_actions(&active(), &p, &[], QuantityLimits::default(), now)
        .cancel
        .unwrap();
    assert_eq!(offer.effective_at, now + days(45));
    assert!(offer.requires_reason && !offer.requires_confirmation);
    assert_eq!(offer.notice_period_days, 45);
}

/// Plans of a product the subscription may swap to are offered like its own, in its
/// currency only, and only where the subscription's quantity fits that product.
#[test]
fn swap_products_are_offered_in_the_subscription_currency_and_quantity() {
    use crate::subscription::TargetProduct;
    let now = start() + days(3);
    let (own, swap_eur, swap_usd, cramped) = (
        monthly(4000),
        monthly(4500),
        usd_monthly(4500),
        monthly(4600),
    );
    let mut s = active();
    s.quantity = 2;
    let roomy = TargetProduct::Swappable(QuantityLimits::new(1, 4).unwrap());
    let one_only = TargetProduct::Swappable(QuantityLimits::default());
    let plans = [
        offered(&own),
        OfferedPlan {
            product: roomy,
            ..offered(&swap_eur)
        },
        OfferedPlan {
            product: roomy,
            ..offered(&swap_usd)
        },
        OfferedPlan {
            product: one_only,
            ..offered(&cramped)
        },
    ];
    let a = available_actions(
        &s,
        &policy(),
        &plans,
        QuantityLimits::new(1, 4).unwrap(),
        now,
    );
    assert_eq!(
        a.change_plan.unwrap().plan_ids,
        vec![own.plan_id, swap_eur.plan_id]
    );
    // Each offered plan can be taken, and the others are refused as offered.
    for (plan, product) in [(own, TargetProduct::Same), (swap_eur, roomy)] {
        let request = PlanChangeRequest { to: plan, product };
        assert!(
            s.change_plan(&request, &policy(), Actor::Customer, now)
                .is_ok()
        );
    }
    for (plan, product) in [(swap_usd, roomy), (cramped, one_only)] {
        let request = PlanChangeRequest { to: plan, product };
        assert!(
            s.change_plan(&request, &policy(), Actor::Customer, now)
                .is_err()
        );
    }
    let closed = PortalPolicy {
        allow_plan_change: false,
        ..policy()
    };
    assert_eq!(
        available_actions(&s, &closed, &plans, QuantityLimits::default(), now).change_plan,
        None
    );
}
