use super::*;
use crate::catalog::MAX_TRIAL_DAYS;
use crate::ids::GenerateId;
use crate::subscription::{Actor, PauseEnd, PauseRequest, PauseStart, SubscriptionStatus};

#[test]
fn statuses_round_trip_in_snake_case() {
    for status in SubscriptionStatus::ALL {
        assert_eq!(
            status.as_str().parse::<SubscriptionStatus>().unwrap(),
            status
        );
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{}\"", status.as_str()));
    }
    assert_eq!(SubscriptionStatus::PastDue.as_str(), "past_due");
    assert!("pastdue".parse::<SubscriptionStatus>().is_err());
}

#[test]
fn creating_without_a_trial_starts_billing_now() {
    let t = Subscription::create(
        NewSubscription {
            id: SubscriptionId::generate(),
            plan: monthly(1000),
            trial_days: 0,
            quantity: 1,
            pay_at_signup: false,
        },
        start(),
    )
    .unwrap();
    let s = &t.subscription;
    assert_eq!(s.status, SubscriptionStatus::Active);
    assert_eq!(s.billing_anchor, start());
    assert_eq!(s.current_period.start, start());
    assert_eq!(s.current_period.end, at(2025, 2, 15));
    assert_eq!(types(&t), ["subscription.created"]);
    assert!(s.has_access(start()));
}

#[test]
fn creating_with_a_trial_anchors_billing_at_its_end() {
    let s = trialing();
    assert_eq!(s.status, SubscriptionStatus::Trialing);
    assert_eq!(s.trial_end, Some(start() + days(14)));
    assert_eq!(s.billing_anchor, start() + days(14));
    assert_eq!(s.current_period.end, start() + days(14));
}

#[test]
fn trials_and_prices_are_bounded() {
    let new = |trial_days, plan| NewSubscription {
        id: SubscriptionId::generate(),
        plan,
        trial_days,
        quantity: 1,
        pay_at_signup: false,
    };
    assert_eq!(
        field(Subscription::create(
            new(MAX_TRIAL_DAYS + 1, monthly(1)),
            start()
        )),
        "trial_days"
    );
    let mut plan = monthly(1);
    plan.price.amount = -1;
    assert_eq!(
        field(Subscription::create(new(0, plan), start())),
        "price.amount"
    );
}

#[test]
fn a_subscription_with_pending_changes_survives_serde() {
    let s = active();
    let request = PauseRequest {
        start: PauseStart::PeriodEnd,
        end: PauseEnd::AfterCycles { cycles: 2 },
        ..PauseRequest::default()
    };
    let s = s
        .pause(&request, &policy(), Actor::Customer, start())
        .unwrap()
        .subscription;
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"type\":\"pause\""), "{json}");
    let back: Subscription = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn commands_travel_as_tagged_json() {
    use crate::subscription::{CancelRequest, CancellationReason, Command};
    let commands = [
        Command::Pause(PauseRequest {
            start: PauseStart::At { date: start() },
            end: PauseEnd::AfterCycles { cycles: 2 },
            ..PauseRequest::default()
        }),
        Command::Resume,
        Command::Cancel(CancelRequest {
            reason: Some(CancellationReason::LowQuality),
            ..CancelRequest::default()
        }),
        Command::WithdrawCancellation,
    ];
    for command in commands {
        let json = serde_json::to_string(&command).unwrap();
        assert!(
            json.contains(&format!("\"type\":\"{}\"", command.name())),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command);
    }
}

#[test]
fn every_event_type_is_catalogued() {
    let types = SubscriptionEvent::EVENT_TYPES;
    assert!(types.iter().all(|t| t.starts_with("subscription.")));
    let mut sorted = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), types.len());
    assert!(types.contains(&SubscriptionEvent::PastDue.event_type()));
}
