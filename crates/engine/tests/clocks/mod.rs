//! Test clocks below HTTP: an advance steps through a clock customer's renewals in
//! order at the clock's time, and the real-time rounds never touch a clock's customers.

use chrono::{DateTime, Months, TimeZone, Utc};
use tenure_app::billing::invoices;
use tenure_app::customers;
use tenure_app::dto::customers::CreateCustomer;
use tenure_app::dto::events::EventFilterParams;
use tenure_app::dto::test_clocks::{AdvanceTestClock, CreateTestClock};
use tenure_app::subscriptions::{self, Scope};
use tenure_app::test_clocks;
use tenure_domain::billing::invoice::InvoiceStatus;
use tenure_domain::subscription::SubscriptionStatus;
use tenure_domain::test_clock::ClockStatus;
use tenure_engine::lifecycle::run_due_changes;
use tenure_engine::notices::run_due_notices;
use tenure_engine::renewals::run_until_idle;
use tenure_store::PageRequest;
use tenure_store::repo::invoices::InvoiceFilter;
use tenure_test_support::{Clock, fixtures};

/// A clock's start, long before real time: every period of a year on it lies in the
/// real past, so a real-time round that did not leave the clock alone would renew it.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 15, 9, 30, 0).unwrap()
}

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        starting_after: None,
    }
}

#[tokio::test]
async fn an_advance_renews_a_clock_customer_in_order_and_real_time_rounds_leave_it_alone() {
    let w = super::world("pm_card_visa").await;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let clock = test_clocks::create(
        &w.app,
        w.merchant,
        CreateTestClock {
            frozen_time: start(),
            name: Some("a year".into()),
        },
    )
    .await
    .expect("clock");
    let customer = customers::create(
        &w.app,
        w.merchant,
        CreateCustomer {
            external_id: "on-the-clock".into(),
            email: None,
            name: None,
            locale: None,
            metadata: None,
            tags: None,
            channel_preference: None,
            test_clock: Some(clock.id.to_string()),
        },
    )
    .await
    .expect("customer");
    assert_eq!(customer.test_clock_id, Some(clock.id));
    assert_eq!(customer.created_at, start(), "created at the clock's time");
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), customer.id, w.plan)
        .await
        .expect("subscribe");
    // The card after the signup, which would otherwise pay the first invoice at once: the
    // clock's advance charges it.
    let mut conn = w.app.db.conn().await.expect("conn");
    fixtures::payment_method(&mut conn, w.merchant, customer.id, "pm_card_visa", now).await;
    drop(conn);
    assert_eq!(sub.subscription.current_period.start, start());

    // Real time: the clock's first invoice and its ended periods are not this round's.
    assert_eq!(
        run_until_idle(&w.app, w.clock.now()).await.expect("round"),
        0
    );
    assert_eq!(
        run_due_changes(&w.app, w.clock.now(), 100)
            .await
            .expect("changes"),
        0
    );
    assert_eq!(
        run_due_notices(&w.app, w.clock.now(), 100)
            .await
            .expect("notices"),
        0
    );
    let filter = || InvoiceFilter {
        customer: Some(customer.id),
        ..InvoiceFilter::default()
    };
    let open = invoices::list_invoices(&w.app, w.merchant, filter(), page())
        .await
        .expect("invoices")
        .items;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].status, InvoiceStatus::Open);
    assert_eq!(open[0].attempt_count, 0);

    let target = start().checked_add_months(Months::new(12)).unwrap();
    let advancing = test_clocks::advance(
        &w.app,
        w.merchant,
        clock.id,
        AdvanceTestClock {
            frozen_time: target,
        },
    )
    .await
    .expect("advance");
    assert_eq!(advancing.status, ClockStatus::Advancing { target });
    assert!(
        tenure_engine::test_clocks::advance_next(&w.app)
            .await
            .expect("advanced")
    );
    assert!(
        !tenure_engine::test_clocks::advance_next(&w.app)
            .await
            .expect("nothing waits"),
    );
    let ready = test_clocks::get(&w.app, w.merchant, clock.id)
        .await
        .expect("clock");
    assert_eq!(ready.status, ClockStatus::Ready);
    assert_eq!(ready.frozen_time, target);

    // The first period's invoice and twelve renewals, each paid, month after month.
    let mut all = invoices::list_invoices(&w.app, w.merchant, filter(), page())
        .await
        .expect("invoices")
        .items;
    all.reverse();
    assert_eq!(all.len(), 13, "{all:?}");
    for (k, invoice) in all.iter().enumerate() {
        assert_eq!(invoice.status, InvoiceStatus::Paid, "{invoice:?}");
        assert_eq!(invoice.amount_paid.amount, 1999);
        let period = invoice.period.expect("a period");
        let months = u32::try_from(k).unwrap();
        assert_eq!(
            period.start,
            start().checked_add_months(Months::new(months)).unwrap()
        );
    }
    let s = subscriptions::get(&w.app, Scope::merchant(w.merchant), sub.subscription.id)
        .await
        .expect("subscription");
    assert_eq!(s.subscription.status, SubscriptionStatus::Active);
    assert_eq!(s.subscription.current_period.start, target);

    let events = tenure_app::events::list(
        &w.app,
        w.merchant,
        EventFilterParams {
            event_type: None,
            resource_id: None,
        },
        PageRequest {
            limit: 100,
            starting_after: None,
        },
    )
    .await
    .expect("events")
    .items;
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("subscription.renewed"), 12);
    assert_eq!(count("invoice.paid"), 13);
    assert_eq!(count("test_clock.advancing"), 1);
    assert_eq!(count("test_clock.ready"), 1);
    // Each renewal happened at the clock's time, at the period's end.
    let mut renewed_at: Vec<DateTime<Utc>> = events
        .iter()
        .filter(|e| e.event_type == "subscription.renewed")
        .map(|e| e.created_at)
        .collect();
    renewed_at.sort();
    for (k, at) in renewed_at.iter().enumerate() {
        let months = u32::try_from(k + 1).unwrap();
        assert_eq!(
            *at,
            start().checked_add_months(Months::new(months)).unwrap()
        );
    }
}
