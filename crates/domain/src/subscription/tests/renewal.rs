use super::*;
use crate::subscription::{Actor, CancelRequest, SubscriptionStatus};

#[test]
fn renewals_follow_the_anchor_through_short_months() {
    let mut s = subscription(monthly(1000), 0, at(2028, 1, 31));
    let mut ends = Vec::new();
    for _ in 0..4 {
        let end = s.current_period.end;
        assert_eq!(
            code(s.renew(end - TimeDelta::seconds(1))),
            "period_not_ended"
        );
        s = checked(s.renew(end).unwrap()).subscription;
        ends.push(s.current_period.start);
    }
    assert_eq!(
        ends,
        [
            at(2028, 2, 29),
            at(2028, 3, 31),
            at(2028, 4, 30),
            at(2028, 5, 31)
        ]
    );
}

#[test]
fn a_late_engine_renews_one_period_at_a_time() {
    let s = active();
    let t = checked(s.renew(at(2025, 6, 1)).unwrap());
    assert_eq!(t.subscription.current_period.start, at(2025, 2, 15));
}

#[test]
fn the_trial_ends_through_apply_due() {
    let s = trialing();
    let end = s.trial_end.unwrap();
    assert!(
        s.apply_due(end - TimeDelta::seconds(1))
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(code(s.renew(end)), "subscription_trialing");
    let t = checked(s.apply_due(end + days(3)).unwrap());
    assert_eq!(types(&t), ["subscription.trial_ended"]);
    assert_eq!(t.subscription.status, SubscriptionStatus::Active);
    assert_eq!(t.subscription.current_period.start, end);
    assert_eq!(t.subscription.billing_anchor, end);
}

#[test]
fn payment_outcomes_move_between_active_past_due_and_unpaid() {
    let s = active();
    let past_due = checked(s.record_payment_failure().unwrap()).subscription;
    assert_eq!(past_due.status, SubscriptionStatus::PastDue);
    assert!(past_due.has_access(start()));
    assert_eq!(code(past_due.record_payment_failure()), "already_past_due");
    assert!(
        past_due.renew(at(2025, 2, 15)).is_ok(),
        "dunning does not stop the calendar"
    );

    let unpaid = checked(past_due.mark_unpaid().unwrap()).subscription;
    assert_eq!(unpaid.status, SubscriptionStatus::Unpaid);
    assert!(!unpaid.has_access(start()));
    assert_eq!(code(unpaid.renew(at(2025, 2, 15))), "subscription_unpaid");
    assert_eq!(code(s.mark_unpaid()), "not_past_due");

    let back = checked(unpaid.record_payment_recovery().unwrap());
    assert_eq!(types(&back), ["subscription.recovered"]);
    assert_eq!(back.subscription.status, SubscriptionStatus::Active);
    assert_eq!(code(s.record_payment_recovery()), "not_past_due");

    let ended = s
        .cancel(
            &CancelRequest::default(),
            &policy(),
            Actor::Merchant,
            start(),
        )
        .unwrap()
        .subscription;
    assert_eq!(
        code(ended.record_payment_failure()),
        "subscription_canceled"
    );
    assert_eq!(code(ended.renew(at(2025, 3, 1))), "subscription_canceled");
}

#[test]
fn a_trial_extension_moves_the_trial_end_period_and_anchor() {
    let s = trialing();
    let end = s.trial_end.unwrap();
    let t = checked(s.extend_trial(7, start() + days(1)).unwrap());
    assert_eq!(types(&t), ["subscription.trial_extended"]);
    assert_eq!(t.subscription.trial_end, Some(end + days(7)));
    assert_eq!(t.subscription.current_period.end, end + days(7));
    assert_eq!(t.subscription.billing_anchor, end + days(7));
    // The old end is no longer due.
    assert!(t.subscription.apply_due(end).unwrap().events.is_empty());
    assert_eq!(code(active().extend_trial(7, start())), "not_trialing");
    assert_eq!(code(s.extend_trial(7, end)), "trial_ended");
    // A customer's cancellation request schedules the end at the trial's end.
    let cancel = CancelRequest {
        reason: Some(crate::subscription::CancellationReason::Other),
        message: None,
        confirm: false,
        timing: None,
        access: None,
    };
    let pending = s
        .cancel(&cancel, &policy(), Actor::Customer, start())
        .unwrap();
    assert!(!pending.subscription.scheduled_changes.is_empty());
    assert_eq!(
        code(pending.subscription.extend_trial(7, start())),
        "changes_scheduled"
    );
}
