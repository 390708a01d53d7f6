use super::*;
use crate::subscription::ChangeType;
use crate::subscription::{
    Actor, OnResume, PauseEnd, PauseRequest, PauseStart, RemovalReason, SubscriptionStatus,
};

fn request(start: PauseStart, end: PauseEnd) -> PauseRequest {
    PauseRequest {
        start,
        end,
        on_resume: OnResume::ResetAnchor,
    }
}

fn pause_now(s: &Subscription, end: PauseEnd, actor: Actor, now: DateTime<Utc>) -> Transition {
    checked(
        s.pause(&request(PauseStart::Now, end), &policy(), actor, now)
            .unwrap(),
    )
}

#[test]
fn open_ended_customer_pause_lasts_the_policy_maximum() {
    let now = start() + days(5);
    let t = pause_now(&active(), PauseEnd::OpenEnded, Actor::Customer, now);
    let s = &t.subscription;
    assert_eq!(s.status, SubscriptionStatus::Paused);
    let pause = s.pause.unwrap();
    assert_eq!(pause.started_at, now);
    assert_eq!(pause.resumes_at, Some(now + days(90)));
    assert_eq!(
        s.pending(ChangeType::Resume).unwrap().due_at,
        now + days(90)
    );
    assert_eq!(
        types(&t),
        ["subscription.paused", "subscription.resume_scheduled"]
    );
}

#[test]
fn a_merchant_pause_may_be_open_ended_and_long() {
    let s = pause_now(&active(), PauseEnd::OpenEnded, Actor::Merchant, start()).subscription;
    assert_eq!(s.pause.unwrap().resumes_at, None);
    assert!(s.pending(ChangeType::Resume).is_none());
    let long = request(
        PauseStart::Now,
        PauseEnd::At {
            date: start() + days(400),
        },
    );
    assert!(
        active()
            .pause(&long, &policy(), Actor::Merchant, start())
            .is_ok()
    );
    assert_eq!(
        code(active().pause(&long, &policy(), Actor::Customer, start())),
        "pause_too_long"
    );
}

#[test]
fn access_continues_through_the_paid_period_unless_kept_by_policy() {
    let now = start() + days(5);
    let s = pause_now(&active(), PauseEnd::OpenEnded, Actor::Customer, now).subscription;
    assert!(s.has_access(now + days(1)));
    assert!(!s.has_access(s.current_period.end));
    let keep = PortalPolicy {
        keep_access_while_paused: true,
        ..policy()
    };
    let req = request(PauseStart::Now, PauseEnd::OpenEnded);
    let s = active()
        .pause(&req, &keep, Actor::Customer, now)
        .unwrap()
        .subscription;
    assert!(s.has_access(now + days(60)));
}

#[test]
fn a_pause_at_period_end_is_scheduled_visible_and_removable() {
    let s = active();
    let req = request(PauseStart::PeriodEnd, PauseEnd::AfterCycles { cycles: 2 });
    let t = checked(s.pause(&req, &policy(), Actor::Customer, start()).unwrap());
    assert_eq!(types(&t), ["subscription.pause_scheduled"]);
    let scheduled = t.subscription.clone();
    assert_eq!(scheduled.status, SubscriptionStatus::Active);
    let change = scheduled.pending(ChangeType::Pause).unwrap().clone();
    assert_eq!(change.due_at, at(2025, 2, 15));

    // A second pause is refused while one is scheduled.
    assert_eq!(
        code(scheduled.pause(&req, &policy(), Actor::Customer, start())),
        "pause_scheduled"
    );

    // The customer may remove it.
    let removed = checked(
        scheduled
            .remove_scheduled_change(change.id, Actor::Customer)
            .unwrap(),
    );
    assert!(removed.subscription.scheduled_changes.is_empty());
    assert_eq!(types(&removed), ["subscription.scheduled_change_removed"]);

    // Or it takes effect at period end and skips two renewals.
    let t = checked(scheduled.apply_due(at(2025, 2, 15)).unwrap());
    assert_eq!(
        types(&t),
        ["subscription.paused", "subscription.resume_scheduled"]
    );
    let pause = t.subscription.pause.unwrap();
    assert_eq!(pause.started_at, at(2025, 2, 15));
    assert_eq!(pause.resumes_at, Some(at(2025, 4, 15)));
}

#[test]
fn cycles_count_from_the_end_of_the_paid_period() {
    let now = start() + days(3);
    let t = pause_now(
        &active(),
        PauseEnd::AfterCycles { cycles: 1 },
        Actor::Customer,
        now,
    );
    // Paid through 15 Feb; the 15 Feb renewal is skipped; billing restarts 15 Mar.
    assert_eq!(
        t.subscription.pause.unwrap().resumes_at,
        Some(at(2025, 3, 15))
    );
}

#[test]
fn a_pause_at_a_future_date_is_scheduled() {
    let s = active();
    let req = request(
        PauseStart::At {
            date: at(2025, 3, 1),
        },
        PauseEnd::At {
            date: at(2025, 3, 20),
        },
    );
    let t = checked(s.pause(&req, &policy(), Actor::Customer, start()).unwrap());
    assert_eq!(
        t.subscription.pending(ChangeType::Pause).unwrap().due_at,
        at(2025, 3, 1)
    );
}

#[test]
fn bad_pause_dates_are_refused() {
    let s = active();
    let now = start() + days(1);
    let past = request(PauseStart::At { date: start() }, PauseEnd::OpenEnded);
    assert_eq!(
        field(s.pause(&past, &policy(), Actor::Customer, now)),
        "start.date"
    );
    let backwards = request(PauseStart::Now, PauseEnd::At { date: now });
    assert_eq!(
        field(s.pause(&backwards, &policy(), Actor::Customer, now)),
        "end.date"
    );
    let zero = request(PauseStart::Now, PauseEnd::AfterCycles { cycles: 0 });
    assert_eq!(
        field(s.pause(&zero, &policy(), Actor::Customer, now)),
        "end.cycles"
    );
    let many = request(PauseStart::Now, PauseEnd::AfterCycles { cycles: 37 });
    assert_eq!(
        field(s.pause(&many, &policy(), Actor::Merchant, now)),
        "end.cycles"
    );
}

#[test]
fn policy_and_status_refusals() {
    let req = request(PauseStart::Now, PauseEnd::OpenEnded);
    let no = PortalPolicy {
        allow_pause: false,
        ..policy()
    };
    assert_eq!(
        code(active().pause(&req, &no, Actor::Customer, start())),
        "pause_not_allowed"
    );
    assert!(active().pause(&req, &no, Actor::Merchant, start()).is_ok());

    let paused = pause_now(&active(), PauseEnd::OpenEnded, Actor::Customer, start()).subscription;
    assert_eq!(
        code(paused.pause(&req, &policy(), Actor::Merchant, start())),
        "already_paused"
    );
    assert_eq!(
        code(trialing().pause(&req, &policy(), Actor::Merchant, start())),
        "subscription_trialing"
    );
    let past_due = active().record_payment_failure().unwrap().subscription;
    assert_eq!(
        code(past_due.pause(&req, &policy(), Actor::Merchant, start())),
        "subscription_past_due"
    );
    assert_eq!(
        code(active().resume(Actor::Customer, start())),
        "not_paused"
    );
}

#[test]
fn resuming_inside_the_paid_period_changes_nothing_else() {
    let paused = pause_now(
        &active(),
        PauseEnd::OpenEnded,
        Actor::Customer,
        start() + days(2),
    )
    .subscription;
    let t = checked(paused.resume(Actor::Customer, start() + days(4)).unwrap());
    let s = &t.subscription;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.current_period, active().current_period);
    assert!(
        s.scheduled_changes.is_empty(),
        "the scheduled resume is consumed"
    );
    assert_eq!(
        t.events,
        [SubscriptionEvent::Resumed {
            resumed_at: start() + days(4),
            new_period: None
        }]
    );
}

#[test]
fn resuming_later_resets_or_keeps_the_anchor() {
    let req = |on_resume| PauseRequest {
        start: PauseStart::PeriodEnd,
        end: PauseEnd::OpenEnded,
        on_resume,
    };
    let later = at(2025, 3, 3);
    for (on_resume, want_start, want_end, anchor) in [
        (OnResume::ResetAnchor, later, at(2025, 4, 3), later),
        (OnResume::KeepAnchor, later, at(2025, 3, 15), start()),
    ] {
        let s = active()
            .pause(&req(on_resume), &policy(), Actor::Customer, start())
            .unwrap()
            .subscription
            .apply_due(at(2025, 2, 15))
            .unwrap()
            .subscription;
        let t = checked(s.resume(Actor::Customer, later).unwrap());
        let s = t.subscription;
        assert_eq!(
            (s.current_period.start, s.current_period.end),
            (want_start, want_end)
        );
        assert_eq!(s.billing_anchor, anchor);
        assert!(matches!(
            t.events[0],
            SubscriptionEvent::Resumed {
                new_period: Some(_),
                ..
            }
        ));
    }
}

#[test]
fn a_late_worker_resumes_at_the_scheduled_instant() {
    let paused = pause_now(
        &active(),
        PauseEnd::At {
            date: at(2025, 3, 1),
        },
        Actor::Customer,
        start(),
    )
    .subscription;
    assert!(
        checked(paused.apply_due(at(2025, 2, 28)).unwrap())
            .events
            .is_empty()
    );
    let t = checked(paused.apply_due(at(2025, 3, 9)).unwrap());
    assert_eq!(t.subscription.current_period.start, at(2025, 3, 1));
    assert_eq!(types(&t), ["subscription.resumed"]);
}

#[test]
fn only_the_merchant_lifts_a_merchant_pause() {
    let paused = pause_now(
        &active(),
        PauseEnd::At {
            date: at(2025, 3, 1),
        },
        Actor::Merchant,
        start(),
    )
    .subscription;
    assert_eq!(
        code(paused.resume(Actor::Customer, start())),
        "resume_not_allowed"
    );
    assert!(paused.resume(Actor::Merchant, start()).is_ok());
}

#[test]
fn the_automatic_resume_is_removable_by_merchants_only() {
    let paused = pause_now(&active(), PauseEnd::OpenEnded, Actor::Customer, start()).subscription;
    let resume = paused.pending(ChangeType::Resume).unwrap().id;
    assert_eq!(
        code(paused.remove_scheduled_change(resume, Actor::Customer)),
        "change_not_removable"
    );
    let t = checked(
        paused
            .remove_scheduled_change(resume, Actor::Merchant)
            .unwrap(),
    );
    assert_eq!(t.subscription.pause.unwrap().resumes_at, None);
    assert!(matches!(
        t.events[0],
        SubscriptionEvent::ScheduledChangeRemoved {
            reason: RemovalReason::Removed {
                by: Actor::Merchant
            },
            ..
        }
    ));
}

#[test]
fn a_scheduled_pause_falling_due_while_past_due_is_dropped_with_an_event() {
    let req = request(PauseStart::PeriodEnd, PauseEnd::OpenEnded);
    let s = active()
        .pause(&req, &policy(), Actor::Customer, start())
        .unwrap()
        .subscription
        .record_payment_failure()
        .unwrap()
        .subscription;
    let t = checked(s.apply_due(at(2025, 2, 15)).unwrap());
    assert_eq!(t.subscription.status, SubscriptionStatus::PastDue);
    assert!(matches!(
        t.events[0],
        SubscriptionEvent::ScheduledChangeRemoved {
            reason: RemovalReason::NotApplicable {
                code: "subscription_past_due"
            },
            ..
        }
    ));
}
