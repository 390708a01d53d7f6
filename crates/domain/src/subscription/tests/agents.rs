//! A merchant's agent is held to the product's policy as a subscriber is, unless it
//! overrides it; then each limit it exceeds is reported for the override's record. A
//! merchant's backend (no agent) is held to none.

use super::*;
use crate::policy::{CancellationMode, PolicyLimit};
use crate::subscription::{
    Acting, Actor, CancelRequest, CancelTiming, ChangeType, OnResume, PauseEnd, PauseRequest,
    PauseStart, PlanChangeRequest,
};

const HELD: Acting = Acting {
    actor: Actor::Merchant,
    held: crate::policy::PolicyActor::Agent { overriding: false },
};

fn overriding() -> Acting {
    Acting::agent(true)
}

fn pause_for(end: PauseEnd) -> PauseRequest {
    PauseRequest {
        start: PauseStart::Now,
        end,
        on_resume: OnResume::ResetAnchor,
    }
}

#[test]
fn an_agents_long_pause_is_refused_unless_overridden() {
    let long = pause_for(PauseEnd::At {
        date: start() + days(200),
    });
    let refused = active().pause(&long, &policy(), HELD, start()).unwrap_err();
    assert_eq!(refused.code(), "pause_too_long");
    assert!(refused.to_string().contains("max_pause_days"), "{refused}");
    assert!(refused.to_string().contains("override"), "{refused}");

    let t = checked(
        active()
            .pause(&long, &policy(), overriding(), start())
            .unwrap(),
    );
    assert_eq!(t.overridden, [PolicyLimit::MaxPauseDays]);
    assert_eq!(
        t.subscription.pause.unwrap().resumes_at,
        Some(start() + days(200))
    );
    // Recorded as the merchant's pause: the subscriber cannot lift it.
    assert_eq!(t.subscription.pause.unwrap().requested_by, Actor::Merchant);

    // The backend without an agent: unrestricted and nothing to record.
    let t = active()
        .pause(&long, &policy(), Actor::Merchant, start())
        .unwrap();
    assert!(t.overridden.is_empty());
}

#[test]
fn an_agents_open_ended_pause_ends_at_the_limit_unless_overridden() {
    let open = pause_for(PauseEnd::OpenEnded);
    let t = checked(active().pause(&open, &policy(), HELD, start()).unwrap());
    assert_eq!(
        t.subscription.pause.unwrap().resumes_at,
        Some(start() + days(90))
    );
    assert!(t.overridden.is_empty());
    let t = checked(
        active()
            .pause(&open, &policy(), overriding(), start())
            .unwrap(),
    );
    assert_eq!(t.subscription.pause.unwrap().resumes_at, None);
    assert_eq!(t.overridden, [PolicyLimit::MaxPauseDays]);
    // A pause within the limit exceeds nothing, override or not.
    let short = pause_for(PauseEnd::At {
        date: start() + days(10),
    });
    let t = active()
        .pause(&short, &policy(), overriding(), start())
        .unwrap();
    assert!(t.overridden.is_empty());
}

#[test]
fn a_forbidden_pause_names_both_limits_it_exceeds() {
    let forbidding = PortalPolicy {
        allow_pause: false,
        ..policy()
    };
    let open = pause_for(PauseEnd::OpenEnded);
    assert_eq!(
        code(active().pause(&open, &forbidding, HELD, start())),
        "pause_not_allowed"
    );
    let t = active()
        .pause(&open, &forbidding, overriding(), start())
        .unwrap();
    assert_eq!(
        t.overridden,
        [PolicyLimit::AllowPause, PolicyLimit::MaxPauseDays]
    );
}

#[test]
fn an_agents_cancellation_keeps_the_policys_notice_unless_overridden() {
    let notice = PortalPolicy {
        notice_period_days: 30,
        ..policy()
    };
    let now = start() + days(3);
    let at_once = CancelRequest::default();
    let refused = active().cancel(&at_once, &notice, HELD, now).unwrap_err();
    assert_eq!(refused.code(), "cancellation_notice_required");
    assert!(refused.to_string().contains("override"), "{refused}");
    // At period end is still before the notice ends.
    let period_end = CancelRequest {
        timing: Some(CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    assert_eq!(
        code(active().cancel(&period_end, &notice, HELD, now)),
        "cancellation_notice_required"
    );
    // At or after the notice's end: allowed, as the subscriber would get it.
    let after_notice = CancelRequest {
        timing: Some(CancelTiming::At {
            date: now + days(30),
        }),
        ..CancelRequest::default()
    };
    let t = checked(active().cancel(&after_notice, &notice, HELD, now).unwrap());
    assert!(t.overridden.is_empty());
    assert!(t.subscription.pending(ChangeType::Cancel).is_some());

    let t = checked(
        active()
            .cancel(&at_once, &notice, overriding(), now)
            .unwrap(),
    );
    assert_eq!(t.subscription.status, SubscriptionStatus::Canceled);
    assert_eq!(t.overridden, [PolicyLimit::CancellationNotice]);
    let t = active()
        .cancel(&at_once, &notice, Actor::Merchant, now)
        .unwrap();
    assert!(t.overridden.is_empty());
}

#[test]
fn an_agent_may_cancel_at_once_where_the_policy_does() {
    let immediate = PortalPolicy {
        cancellation_mode: CancellationMode::Immediate,
        ..policy()
    };
    let t = active()
        .cancel(&CancelRequest::default(), &immediate, HELD, start())
        .unwrap();
    assert_eq!(t.subscription.status, SubscriptionStatus::Canceled);
    let forbidding = PortalPolicy {
        allow_cancel: false,
        ..immediate
    };
    assert_eq!(
        code(active().cancel(&CancelRequest::default(), &forbidding, HELD, start())),
        "cancel_not_allowed"
    );
    let t = active()
        .cancel(
            &CancelRequest::default(),
            &forbidding,
            overriding(),
            start(),
        )
        .unwrap();
    assert_eq!(t.overridden, [PolicyLimit::AllowCancel]);
}

#[test]
fn an_agents_switch_to_a_plan_not_offered_is_refused_unless_overridden() {
    let offered = monthly(2000);
    let other = monthly(3000);
    let restricted = PortalPolicy {
        switchable_plan_ids: vec![offered.plan_id],
        ..policy()
    };
    let to = |plan: PlanTerms| PlanChangeRequest {
        to: plan,
        product: crate::subscription::TargetProduct::Same,
    };
    assert!(
        active()
            .change_plan(&to(offered), &restricted, HELD, start())
            .unwrap()
            .overridden
            .is_empty()
    );
    assert_eq!(
        code(active().change_plan(&to(other), &restricted, HELD, start())),
        "plan_not_allowed"
    );
    assert_eq!(
        code(active().preview_plan_change(&to(other), &restricted, HELD, start())),
        "plan_not_allowed"
    );
    let t = active()
        .change_plan(&to(other), &restricted, overriding(), start())
        .unwrap();
    assert_eq!(t.overridden, [PolicyLimit::SwitchablePlanIds]);
    assert_eq!(t.subscription.plan.plan_id, other.plan_id);

    // A policy without plan changes is the one limit a change exceeds.
    let forbidding = PortalPolicy {
        allow_plan_change: false,
        ..policy()
    };
    assert_eq!(
        code(active().change_plan(&to(other), &forbidding, HELD, start())),
        "plan_change_not_allowed"
    );
    let t = active()
        .change_plan(&to(other), &forbidding, overriding(), start())
        .unwrap();
    assert_eq!(t.overridden, [PolicyLimit::AllowPlanChange]);
    // An unrelated product's plan is refused to everyone, overriding or not: the
    // catalog, not the portal policy, says what a product may become.
    let elsewhere = PlanChangeRequest {
        to: other,
        product: crate::subscription::TargetProduct::Unrelated,
    };
    for by in [HELD, overriding()] {
        assert_eq!(
            code(active().change_plan(&elsewhere, &policy(), by, start())),
            "product_not_swappable"
        );
    }
    assert_eq!(
        code(active().change_plan(&elsewhere, &policy(), Actor::Merchant, start())),
        "product_not_swappable"
    );
}

#[test]
fn an_agents_skip_is_held_to_the_policy_unless_overridden() {
    let now = start() + days(3);
    // `allow_skip` is off by default.
    let refused = active().skip_renewal(&policy(), HELD, now).unwrap_err();
    assert_eq!(refused.code(), "skip_not_allowed");
    assert!(refused.to_string().contains("override"), "{refused}");
    let t = checked(active().skip_renewal(&policy(), overriding(), now).unwrap());
    assert_eq!(t.overridden, [PolicyLimit::AllowSkip]);
    assert_eq!(
        t.subscription.skipped_renewals[0].requested_by,
        Actor::Merchant
    );

    // Beyond `max_consecutive_skips` in a row.
    let one = crate::policy::PortalPolicy {
        allow_skip: true,
        max_consecutive_skips: Some(1),
        ..policy()
    };
    let t = checked(active().skip_renewal(&one, HELD, now).unwrap());
    assert!(t.overridden.is_empty());
    let skipped = t.subscription;
    assert_eq!(
        skipped.skip_renewal(&one, HELD, now).unwrap_err().code(),
        "too_many_consecutive_skips"
    );
    let t = checked(skipped.skip_renewal(&one, overriding(), now).unwrap());
    assert_eq!(t.overridden, [PolicyLimit::MaxConsecutiveSkips]);
    // Both at once, overridden together.
    let neither = crate::policy::PortalPolicy {
        allow_skip: false,
        ..one
    };
    let t = checked(skipped.skip_renewal(&neither, overriding(), now).unwrap());
    assert_eq!(
        t.overridden,
        [PolicyLimit::AllowSkip, PolicyLimit::MaxConsecutiveSkips]
    );
    // The backend: neither binds it.
    let t = skipped
        .skip_renewal(&policy(), Actor::Merchant, now)
        .unwrap();
    assert!(t.overridden.is_empty());
}

#[test]
fn an_agent_removing_a_pauses_resume_is_held_to_the_maximum_unless_overridden() {
    let bounded = pause_for(PauseEnd::AfterCycles { cycles: 1 });
    let paused = checked(
        active()
            .pause(&bounded, &policy(), Actor::Merchant, start())
            .unwrap(),
    )
    .subscription;
    let resume = paused.pending(ChangeType::Resume).unwrap().id;
    let refused = paused
        .remove_scheduled_change_as(resume, &policy(), HELD)
        .unwrap_err();
    assert_eq!(refused.code(), "pause_too_long");
    assert!(refused.to_string().contains("max_pause_days"), "{refused}");
    let t = checked(
        paused
            .remove_scheduled_change_as(resume, &policy(), overriding())
            .unwrap(),
    );
    assert_eq!(t.overridden, [PolicyLimit::MaxPauseDays]);
    assert_eq!(t.subscription.pause.unwrap().resumes_at, None);
    // Without a maximum there is nothing to exceed; the backend is never held.
    let unbounded = crate::policy::PortalPolicy {
        max_pause_days: None,
        ..policy()
    };
    let t = paused
        .remove_scheduled_change_as(resume, &unbounded, HELD)
        .unwrap();
    assert!(t.overridden.is_empty());
    let t = paused
        .remove_scheduled_change_as(resume, &policy(), Actor::Merchant)
        .unwrap();
    assert!(t.overridden.is_empty());
    // A customer may never remove it.
    assert_eq!(
        paused
            .remove_scheduled_change_as(resume, &unbounded, Actor::Customer)
            .unwrap_err()
            .code(),
        "change_not_removable"
    );
}
