//! Tests of the state machine: examples per action, the availability table, and
//! property tests over random action sequences.

mod agents;
mod availability;
mod cancellation;
mod incomplete;
mod pause;
mod plan_change;
mod properties;
mod quantity;
mod renewal;
mod skip;
mod state;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::DomainError;
use crate::billing::period::{Cadence, Interval};
use crate::billing::terms::PlanTerms;
use crate::ids::{GenerateId, PlanId, SubscriptionId};
use crate::money::{Currency, Money};
use crate::policy::PortalPolicy;
use crate::subscription::{
    NewSubscription, Subscription, SubscriptionEvent, SubscriptionStatus, Transition,
};

fn eur() -> Currency {
    "EUR".parse().unwrap()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 30, 0).unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

fn monthly(amount: i64) -> PlanTerms {
    PlanTerms::new(
        PlanId::generate(),
        Money::new(amount, eur()),
        Cadence::monthly(),
    )
    .unwrap()
}

fn yearly(amount: i64) -> PlanTerms {
    let cadence = Cadence::new(Interval::Year, 1).unwrap();
    PlanTerms::new(PlanId::generate(), Money::new(amount, eur()), cadence).unwrap()
}

/// The start of every example: 15 January 2025, 09:30 UTC.
fn start() -> DateTime<Utc> {
    at(2025, 1, 15)
}

fn subscription(plan: PlanTerms, trial_days: u32, now: DateTime<Utc>) -> Subscription {
    let new = NewSubscription {
        id: SubscriptionId::generate(),
        plan,
        trial_days,
        quantity: 1,
        pay_at_signup: false,
    };
    let t = Subscription::create(new, now).unwrap();
    checked(t).subscription
}

/// An active monthly subscription at 1000 minor units, started at [`start`].
fn active() -> Subscription {
    subscription(monthly(1000), 0, start())
}

fn trialing() -> Subscription {
    subscription(monthly(1000), 14, start())
}

fn policy() -> PortalPolicy {
    PortalPolicy::default()
}

/// Asserts the transition left a valid subscription and returns it.
fn checked(t: Transition) -> Transition {
    if let Err(broken) = t.subscription.check_invariants() {
        panic!("invariant broken: {broken}\n{:#?}", t.subscription);
    }
    // Stricter than the invariant, which stored rows from before the details were kept
    // would break: every subscription here was made with them, so they are kept exactly
    // while a cancellation is pending or made.
    let s = &t.subscription;
    let cancelling = s.status == SubscriptionStatus::Canceled || s.cancel_at.is_some();
    assert_eq!(
        cancelling,
        s.cancellation.is_some(),
        "cancellation details kept exactly while cancelling\n{s:#?}"
    );
    t
}

fn types(t: &Transition) -> Vec<&'static str> {
    t.events.iter().map(SubscriptionEvent::event_type).collect()
}

fn code<T: std::fmt::Debug>(r: Result<T, DomainError>) -> &'static str {
    r.expect_err("expected a refusal").code()
}

fn field<T: std::fmt::Debug>(r: Result<T, DomainError>) -> String {
    match r.expect_err("expected a validation error") {
        DomainError::Validation { field, .. } => field.into_owned(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}
