use super::*;
use crate::policy::{CancellationMode, ImmediateCancelTiming, NoticeRule};
use crate::subscription::{
    AccessEnd, Actor, CancelRequest, CancelTiming, CancellationDetails, CancellationReason,
    MAX_CANCEL_AT_DAYS, PauseEnd, PauseRequest, PauseStart, RemovalReason, SubscriptionStatus,
};

fn with_reason() -> CancelRequest {
    CancelRequest {
        reason: Some(CancellationReason::TooExpensive),
        message: Some("  Too pricey for me.\nThanks!  ".into()),
        ..CancelRequest::default()
    }
}

fn confirmed() -> CancelRequest {
    CancelRequest {
        confirm: true,
        ..CancelRequest::default()
    }
}

fn notice(days: u32, rule: NoticeRule) -> PortalPolicy {
    PortalPolicy {
        notice_period_days: days,
        notice_rule: rule,
        ..policy()
    }
}

fn immediate(timing: ImmediateCancelTiming) -> PortalPolicy {
    PortalPolicy {
        cancellation_mode: CancellationMode::Immediate,
        immediate_cancel_timing: timing,
        ..policy()
    }
}

#[test]
fn reasons_use_the_taxonomy_names() {
    let names: Vec<_> = CancellationReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "too_expensive",
            "missing_features",
            "switched_service",
            "unused",
            "customer_service",
            "too_complex",
            "low_quality",
            "other"
        ]
    );
    for r in CancellationReason::ALL {
        assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        assert_eq!(r.as_str().parse::<CancellationReason>().unwrap(), r);
    }
    assert!("bored".parse::<CancellationReason>().is_err());
}

#[test]
fn a_request_runs_to_the_later_of_notice_and_period_end() {
    let now = start() + days(5);
    // Period ends 15 Feb; 10 days' notice ends 30 Jan: the period end wins.
    let s = active();
    let short =
        s.cancellation_effective_at(&notice(10, NoticeRule::LaterOfNoticeAndPeriodEnd), now);
    assert_eq!(short.unwrap(), at(2025, 2, 15));
    // 40 days' notice ends 1 Mar: the notice wins.
    let p = notice(40, NoticeRule::LaterOfNoticeAndPeriodEnd);
    let t = checked(s.cancel(&with_reason(), &p, Actor::Customer, now).unwrap());
    assert_eq!(types(&t), ["subscription.cancellation_requested"]);
    let pending = &t.subscription;
    assert_eq!(pending.status, SubscriptionStatus::Active);
    assert_eq!(pending.cancel_at, Some(now + days(40)));
    assert_eq!(pending.billing_ends_at, Some(now + days(40)));
    let SubscriptionEvent::CancellationRequested {
        message, reason, ..
    } = &t.events[0]
    else {
        panic!("{:?}", t.events);
    };
    assert_eq!(message.as_deref(), Some("Too pricey for me.\nThanks!"));
    assert_eq!(*reason, CancellationReason::TooExpensive);

    // A second request is refused while one is pending.
    assert_eq!(
        code(pending.cancel(&with_reason(), &p, Actor::Customer, now)),
        "cancellation_pending"
    );
}

#[test]
fn notice_only_may_end_mid_period_and_keeps_access_to_period_end() {
    let now = start() + days(2);
    let p = notice(7, NoticeRule::NoticeOnly);
    let s = active()
        .cancel(&with_reason(), &p, Actor::Customer, now)
        .unwrap()
        .subscription;
    assert_eq!(s.cancel_at, Some(now + days(7)));
    let t = checked(s.apply_due(now + days(7)).unwrap());
    let ended = t.subscription;
    assert_eq!(ended.status, SubscriptionStatus::Canceled);
    assert_eq!(ended.ended_at, Some(now + days(7)));
    assert_eq!(ended.canceled_at, Some(now));
    assert_eq!(ended.billing_ends_at, Some(now + days(7)));
    assert_eq!(ended.access_until, Some(at(2025, 2, 15)));
    assert!(ended.has_access(at(2025, 2, 14)));
    assert!(!ended.has_access(at(2025, 2, 15)));
}

#[test]
fn zero_notice_only_cancels_at_once() {
    let t = checked(
        active()
            .cancel(
                &with_reason(),
                &notice(0, NoticeRule::NoticeOnly),
                Actor::Customer,
                start(),
            )
            .unwrap(),
    );
    assert_eq!(
        types(&t),
        [
            "subscription.cancellation_requested",
            "subscription.canceled"
        ]
    );
}

#[test]
fn a_request_needs_a_reason_and_clean_text() {
    let s = active();
    let no_reason = CancelRequest::default();
    assert_eq!(
        field(s.cancel(&no_reason, &policy(), Actor::Customer, start())),
        "reason"
    );
    let control = CancelRequest {
        message: Some("a\u{7}b".into()),
        ..with_reason()
    };
    assert_eq!(
        field(s.cancel(&control, &policy(), Actor::Customer, start())),
        "message"
    );
    let long = CancelRequest {
        message: Some("x".repeat(2001)),
        ..with_reason()
    };
    assert_eq!(
        field(s.cancel(&long, &policy(), Actor::Customer, start())),
        "message"
    );
    let timing = CancelRequest {
        timing: Some(CancelTiming::Now),
        ..with_reason()
    };
    assert_eq!(
        field(s.cancel(&timing, &policy(), Actor::Customer, start())),
        "timing"
    );
}

#[test]
fn a_trial_cancellation_takes_effect_before_the_trial_converts() {
    let s = trialing();
    let t = checked(
        s.cancel(&with_reason(), &policy(), Actor::Customer, start())
            .unwrap(),
    );
    assert_eq!(t.subscription.cancel_at, s.trial_end);
    let t = checked(t.subscription.apply_due(at(2025, 3, 1)).unwrap());
    assert_eq!(types(&t), ["subscription.canceled"]);
    assert_eq!(t.subscription.ended_at, s.trial_end);
}

#[test]
fn withdrawing_restores_the_subscription() {
    let s = active();
    let pending = s
        .cancel(&with_reason(), &policy(), Actor::Customer, start())
        .unwrap()
        .subscription;
    let t = checked(pending.withdraw_cancellation(Actor::Customer).unwrap());
    assert_eq!(types(&t), ["subscription.cancellation_withdrawn"]);
    assert_eq!(t.subscription, s);
    assert_eq!(
        code(s.withdraw_cancellation(Actor::Customer)),
        "no_cancellation_pending"
    );
}

#[test]
fn immediate_mode_needs_confirmation() {
    let p = immediate(ImmediateCancelTiming::Now);
    let s = active();
    assert_eq!(
        field(s.cancel(&CancelRequest::default(), &p, Actor::Customer, start())),
        "confirm"
    );
    let now = start() + days(3);
    let t = checked(s.cancel(&confirmed(), &p, Actor::Customer, now).unwrap());
    assert_eq!(types(&t), ["subscription.canceled"]);
    assert_eq!(t.subscription.ended_at, Some(now));
    assert_eq!(t.subscription.access_until, Some(at(2025, 2, 15)));
}

#[test]
fn immediate_mode_at_period_end_schedules() {
    let p = immediate(ImmediateCancelTiming::PeriodEnd);
    let t = checked(
        active()
            .cancel(&confirmed(), &p, Actor::Customer, start())
            .unwrap(),
    );
    assert_eq!(types(&t), ["subscription.cancel_scheduled"]);
    assert_eq!(t.subscription.cancel_at, Some(at(2025, 2, 15)));
}

#[test]
fn merchants_always_cancel_and_replace_pending_cancellations() {
    let forbid = PortalPolicy {
        allow_cancel: false,
        ..policy()
    };
    assert_eq!(
        code(active().cancel(&with_reason(), &forbid, Actor::Customer, start())),
        "cancel_not_allowed"
    );
    let pending = active()
        .cancel(
            &with_reason(),
            &notice(40, NoticeRule::NoticeOnly),
            Actor::Customer,
            start(),
        )
        .unwrap()
        .subscription;
    let now_no_access = CancelRequest {
        timing: Some(CancelTiming::Now),
        access: Some(AccessEnd::Immediately),
        ..CancelRequest::default()
    };
    let t = checked(
        pending
            .cancel(&now_no_access, &forbid, Actor::Merchant, start())
            .unwrap(),
    );
    assert!(matches!(
        t.events[0],
        SubscriptionEvent::ScheduledChangeRemoved {
            reason: RemovalReason::Replaced,
            ..
        }
    ));
    assert_eq!(t.events[1].event_type(), "subscription.canceled");
    assert_eq!(t.subscription.access_until, Some(start()));
    assert!(!t.subscription.has_access(start()));

    let at_end = CancelRequest {
        timing: Some(CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    let t = checked(
        pending
            .cancel(&at_end, &forbid, Actor::Merchant, start())
            .unwrap(),
    );
    assert_eq!(t.subscription.cancel_at, Some(at(2025, 2, 15)));
    // The customer cannot withdraw the merchant's cancellation.
    assert_eq!(
        code(t.subscription.withdraw_cancellation(Actor::Customer)),
        "change_not_removable"
    );
    assert!(
        t.subscription
            .withdraw_cancellation(Actor::Merchant)
            .is_ok()
    );
}

#[test]
fn a_canceled_subscription_refuses_everything() {
    let ended = active()
        .cancel(
            &CancelRequest::default(),
            &policy(),
            Actor::Merchant,
            start(),
        )
        .unwrap()
        .subscription;
    assert_eq!(
        code(ended.cancel(
            &CancelRequest::default(),
            &policy(),
            Actor::Merchant,
            start()
        )),
        "already_canceled"
    );
    let req = PauseRequest::default();
    assert_eq!(
        code(ended.pause(&req, &policy(), Actor::Merchant, start())),
        "subscription_canceled"
    );
    assert_eq!(
        code(ended.resume(Actor::Merchant, start())),
        "subscription_canceled"
    );
    assert_eq!(
        code(ended.withdraw_cancellation(Actor::Merchant)),
        "subscription_canceled"
    );
    assert!(
        checked(ended.apply_due(at(2030, 1, 1)).unwrap())
            .events
            .is_empty()
    );
}

#[test]
fn ending_drops_every_other_scheduled_change_with_an_event() {
    let p = notice(0, NoticeRule::LaterOfNoticeAndPeriodEnd);
    let downgrade = crate::subscription::PlanChangeRequest {
        to: monthly(500),
        product: crate::subscription::TargetProduct::Same,
    };
    let s = active()
        .change_plan(&downgrade, &p, Actor::Customer, start())
        .unwrap()
        .subscription;
    let s = s
        .cancel(&with_reason(), &p, Actor::Customer, start())
        .unwrap()
        .subscription;
    // Both fall due at period end: the cancellation applies first.
    let t = checked(s.apply_due(at(2025, 2, 15)).unwrap());
    assert_eq!(
        types(&t),
        [
            "subscription.canceled",
            "subscription.scheduled_change_removed"
        ]
    );
    assert_eq!(t.subscription.plan, s.plan, "the downgrade never applied");
}

#[test]
fn past_due_subscriptions_cancel_without_paid_access() {
    let s = active().record_payment_failure().unwrap().subscription;
    let now = start() + days(3);
    let t = checked(
        s.cancel(
            &confirmed(),
            &immediate(ImmediateCancelTiming::Now),
            Actor::Customer,
            now,
        )
        .unwrap(),
    );
    assert_eq!(t.subscription.access_until, Some(now));
}

#[test]
fn a_paused_subscription_can_be_canceled() {
    let req = PauseRequest {
        start: PauseStart::Now,
        end: PauseEnd::OpenEnded,
        ..PauseRequest::default()
    };
    let paused = active()
        .pause(&req, &policy(), Actor::Customer, start())
        .unwrap()
        .subscription;
    let t = checked(
        paused
            .cancel(
                &confirmed(),
                &immediate(ImmediateCancelTiming::Now),
                Actor::Customer,
                start() + days(40),
            )
            .unwrap(),
    );
    assert_eq!(t.subscription.pause, None);
    assert_eq!(t.subscription.access_until, Some(start() + days(40)));
    assert_eq!(
        types(&t),
        [
            "subscription.canceled",
            "subscription.scheduled_change_removed"
        ]
    );
}

#[test]
fn the_reason_and_message_stay_with_the_subscription_until_and_after_it_ends() {
    let kept = |actor, reason, message: &str| {
        Some(CancellationDetails {
            reason,
            message: Some(message.to_owned()),
            requested_by: actor,
        })
    };
    let customer_said = kept(
        Actor::Customer,
        Some(CancellationReason::TooExpensive),
        "Too pricey for me.\nThanks!",
    );
    // A request with notice: kept while pending, and when it takes effect.
    let p = notice(40, NoticeRule::NoticeOnly);
    let pending = checked(
        active()
            .cancel(&with_reason(), &p, Actor::Customer, start())
            .unwrap(),
    );
    assert_eq!(pending.subscription.cancellation, customer_said);
    let ended = checked(pending.subscription.apply_due(start() + days(40)).unwrap());
    assert_eq!(ended.subscription.status, SubscriptionStatus::Canceled);
    assert_eq!(ended.subscription.cancellation, customer_said);
    // Withdrawn: nothing is kept.
    let withdrawn = checked(
        pending
            .subscription
            .withdraw_cancellation(Actor::Customer)
            .unwrap(),
    );
    assert_eq!(withdrawn.subscription.cancellation, None);

    // Immediate mode, with a message and no reason.
    let now = start() + days(3);
    let said = CancelRequest {
        message: Some(" Moving abroad ".into()),
        ..confirmed()
    };
    let at_once = immediate(ImmediateCancelTiming::Now);
    let t = checked(
        active()
            .cancel(&said, &at_once, Actor::Customer, now)
            .unwrap(),
    );
    assert_eq!(
        t.subscription.cancellation,
        kept(Actor::Customer, None, "Moving abroad")
    );

    // A merchant's cancellation replaces the customer's pending one, and its words.
    let merchant = CancelRequest {
        reason: Some(CancellationReason::Other),
        message: Some("Chargeback".into()),
        timing: Some(CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    let replaced = checked(
        pending
            .subscription
            .cancel(&merchant, &p, Actor::Merchant, now)
            .unwrap(),
    );
    let merchant_said = kept(
        Actor::Merchant,
        Some(CancellationReason::Other),
        "Chargeback",
    );
    assert_eq!(replaced.subscription.cancellation, merchant_said);
    let ended = checked(replaced.subscription.apply_due(at(2025, 2, 15)).unwrap());
    assert_eq!(ended.subscription.status, SubscriptionStatus::Canceled);
    assert_eq!(ended.subscription.cancellation, merchant_said);
}

fn cancel_at(date: DateTime<Utc>) -> CancelRequest {
    CancelRequest {
        timing: Some(CancelTiming::At { date }),
        ..CancelRequest::default()
    }
}

#[test]
fn a_merchant_cancels_at_a_chosen_date_after_renewing_until_then() {
    // 10 March: the second period (15 Feb – 15 Mar) is paid for and still runs.
    let date = at(2025, 3, 10);
    let t = checked(
        active()
            .cancel(&cancel_at(date), &policy(), Actor::Merchant, start())
            .unwrap(),
    );
    assert_eq!(types(&t), ["subscription.cancel_scheduled"]);
    let s = t.subscription;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.cancel_at, Some(date));
    assert_eq!(s.billing_ends_at, Some(date));
    assert_eq!(s.access_until, Some(date), "beyond the period paid so far");
    // The first period ends before the date: it renews as usual, and the projected end
    // of access moves to the end of the period the date falls in.
    let renewed = checked(s.renew(at(2025, 2, 15)).unwrap()).subscription;
    assert_eq!(renewed.current_period.end, at(2025, 3, 15));
    assert_eq!(renewed.access_until, Some(at(2025, 3, 15)));
    let ended = checked(renewed.apply_due(date).unwrap());
    assert_eq!(types(&ended), ["subscription.canceled"]);
    assert_eq!(ended.subscription.ended_at, Some(date));
    // Access runs through the period paid for (the default `until_period_end`).
    assert_eq!(ended.subscription.access_until, Some(at(2025, 3, 15)));
}

#[test]
fn a_chosen_cancellation_date_must_be_ahead_and_within_the_horizon() {
    let s = active();
    let merchant = |request: &CancelRequest| s.cancel(request, &policy(), Actor::Merchant, start());
    assert_eq!(field(merchant(&cancel_at(start()))), "cancel_at");
    assert_eq!(field(merchant(&cancel_at(start() - days(1)))), "cancel_at");
    let horizon = start() + days(i64::from(MAX_CANCEL_AT_DAYS));
    assert!(merchant(&cancel_at(horizon)).is_ok());
    assert_eq!(
        field(merchant(&cancel_at(horizon + TimeDelta::seconds(1)))),
        "cancel_at"
    );
    // Customers follow the policy: no date of their own.
    assert_eq!(
        field(s.cancel(
            &CancelRequest {
                reason: Some(CancellationReason::Other),
                ..cancel_at(start() + days(3))
            },
            &policy(),
            Actor::Customer,
            start()
        )),
        "timing"
    );
}

#[test]
fn access_ending_is_announced_within_the_notice_days_while_access_lasts() {
    use crate::subscription::ACCESS_ENDING_NOTICE_DAYS;
    let lead = days(i64::from(ACCESS_ENDING_NOTICE_DAYS));
    let s = active();
    assert_eq!(s.access_ending_soon(start()), None, "nothing is ending");
    // A merchant's cancellation at period end (15 February), access through it.
    let at_end = CancelRequest {
        timing: Some(CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    let pending = s
        .cancel(&at_end, &policy(), Actor::Merchant, start())
        .unwrap()
        .subscription;
    let end = at(2025, 2, 15);
    assert_eq!(pending.access_ending_soon(end - lead - days(1)), None);
    assert_eq!(pending.access_ending_soon(end - lead), Some(end));
    assert_eq!(pending.access_ending_soon(end), None, "already ended");
    // Canceled now with access through the period: the rest of the access is announced.
    let canceled = s
        .cancel(
            &CancelRequest::default(),
            &policy(),
            Actor::Merchant,
            start(),
        )
        .unwrap()
        .subscription;
    assert_eq!(canceled.access_ending_soon(end - days(2)), Some(end));
    // Canceled with access ending at once: nothing left to announce.
    let cut = s
        .cancel(
            &CancelRequest {
                access: Some(AccessEnd::Immediately),
                ..CancelRequest::default()
            },
            &policy(),
            Actor::Merchant,
            start(),
        )
        .unwrap()
        .subscription;
    assert_eq!(cut.access_ending_soon(start()), None);
}
