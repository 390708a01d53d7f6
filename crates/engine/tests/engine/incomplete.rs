//! Signup with a synchronous first payment, below HTTP: paid at once (active), declined
//! (incomplete, not dunned), and the lifecycle round expiring it after 23 hours.

use chrono::Duration;
use diesel_async::SimpleAsyncConnection;
use tenure_app::subscriptions::{self, Scope};
use tenure_domain::billing::invoice::InvoiceStatus;
use tenure_domain::subscription::SubscriptionStatus;
use tenure_engine::lifecycle::run_incomplete_expiry;
use tenure_test_support::Clock;

use super::{world, world_with};

#[tokio::test]
async fn a_signup_paid_at_once_is_active_with_its_events() {
    let w = world("pm_card_visa").await;
    let s = subscriptions::subscribe(
        &w.app,
        Scope::merchant(w.merchant),
        w.customer,
        w.plan,
        None,
    )
    .await
    .expect("subscribe");
    assert!(s.next_action.is_none());
    assert_eq!(
        s.subscription.subscription.status,
        SubscriptionStatus::Active
    );
    let invoices = w.invoices().await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].status, InvoiceStatus::Paid);
    assert_eq!(invoices[0].amount_paid.amount, 1999);
    assert_eq!(
        w.event_types().await,
        [
            "subscription.created",
            "invoice.paid",
            "subscription.activated"
        ]
    );
    assert_eq!(w.run_rounds().await, 0, "nothing is left to charge");
}

#[tokio::test]
async fn a_declined_signup_stays_incomplete_undunned_and_expires_after_23_hours() {
    let w = world("pm_card_chargeDeclined").await;
    let scope = Scope::merchant(w.merchant);
    let s = subscriptions::subscribe(&w.app, scope, w.customer, w.plan, None)
        .await
        .expect("subscribe");
    let sub = s.subscription.subscription.id;
    assert_eq!(
        s.subscription.subscription.status,
        SubscriptionStatus::Incomplete
    );
    let invoice = &w.invoices().await[0];
    assert_eq!(
        s.next_action,
        Some(
            tenure_app::billing::charging::NextAction::UpdatePaymentMethod {
                invoice_id: invoice.id,
                decline_code: "card_declined".to_owned(),
            }
        )
    );
    assert_eq!(invoice.status, InvoiceStatus::Open);
    assert_eq!(invoice.attempt_count, 1);
    assert_eq!(
        invoice.next_payment_attempt_at, None,
        "a first payment is not dunned"
    );

    // Nothing retries it, and it does not expire before its deadline.
    w.clock.advance(Duration::hours(23) - Duration::seconds(1));
    assert_eq!(w.run_rounds().await, 0);
    assert_eq!(
        run_incomplete_expiry(&w.app, w.clock.now(), 100)
            .await
            .unwrap(),
        0
    );
    let still = subscriptions::get(&w.app, scope, sub).await.unwrap();
    assert_eq!(still.subscription.status, SubscriptionStatus::Incomplete);

    w.clock.advance(Duration::seconds(1));
    assert_eq!(
        run_incomplete_expiry(&w.app, w.clock.now(), 100)
            .await
            .unwrap(),
        1
    );
    let expired = subscriptions::get(&w.app, scope, sub).await.unwrap();
    assert_eq!(
        expired.subscription.status,
        SubscriptionStatus::IncompleteExpired
    );
    let deadline = s.subscription.created_at + Duration::hours(23);
    assert!(
        expired.subscription.ended_at.is_some_and(|t| t >= deadline),
        "{:?}",
        expired.subscription.ended_at
    );
    let invoice = &w.invoices().await[0];
    assert_eq!(invoice.status, InvoiceStatus::Void);
    assert_eq!(invoice.next_payment_attempt_at, None);
    assert_eq!(
        w.event_types().await,
        [
            "subscription.created",
            "invoice.payment_failed",
            "subscription.incomplete_expired",
            "invoice.voided"
        ]
    );
    // Once is all: a second round finds nothing, and nothing is charged.
    assert_eq!(
        run_incomplete_expiry(&w.app, w.clock.now(), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(w.run_rounds().await, 0);
}

#[tokio::test]
async fn a_card_given_after_a_declined_signup_pays_it_and_activates() {
    let w = world("pm_card_chargeDeclined").await;
    let scope = Scope::merchant(w.merchant);
    let s = subscriptions::subscribe(&w.app, scope, w.customer, w.plan, None)
        .await
        .expect("subscribe");
    let sub = s.subscription.subscription.id;
    let mut conn = w._db.connect().await;
    // The new card replaces the declining one as the default.
    conn.batch_execute("UPDATE payment_methods SET is_default = false")
        .await
        .unwrap();
    tenure_test_support::fixtures::payment_method(
        &mut conn,
        w.merchant,
        w.customer,
        "pm_card_visa",
        w.clock.now(),
    )
    .await;
    // As a new default card does: the open invoices are due for the engine's next round.
    tenure_app::billing::charging::retry_open_invoices(&w.app, w.merchant, w.customer).await;
    assert!(w.run_rounds().await >= 1);
    let active = subscriptions::get(&w.app, scope, sub).await.unwrap();
    assert_eq!(active.subscription.status, SubscriptionStatus::Active);
    assert_eq!(
        active.subscription.current_period, s.subscription.subscription.current_period,
        "the period as created"
    );
    let invoice = &w.invoices().await[0];
    assert_eq!(invoice.status, InvoiceStatus::Paid);
    assert_eq!(invoice.attempt_count, 2);
    let events = w.event_types().await;
    assert_eq!(
        events
            .iter()
            .filter(|t| *t == "subscription.activated")
            .count(),
        1,
        "{events:?}"
    );
    assert!(
        !events.iter().any(|t| t == "subscription.past_due"),
        "{events:?}"
    );
    // Past the deadline nothing expires: it is active.
    w.clock.advance(Duration::hours(24));
    assert_eq!(
        run_incomplete_expiry(&w.app, w.clock.now(), 100)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn without_a_card_a_signup_is_active_and_its_invoice_left_to_the_engine() {
    let w = world_with(None).await;
    let s = subscriptions::subscribe(
        &w.app,
        Scope::merchant(w.merchant),
        w.customer,
        w.plan,
        None,
    )
    .await
    .expect("subscribe");
    assert!(s.next_action.is_none());
    assert_eq!(
        s.subscription.subscription.status,
        SubscriptionStatus::Active
    );
    let invoice = &w.invoices().await[0];
    assert_eq!(invoice.status, InvoiceStatus::Open);
    assert_eq!(invoice.attempt_count, 0);
    assert!(invoice.next_payment_attempt_at.is_some());
}
