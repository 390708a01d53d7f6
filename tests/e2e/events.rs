//! Every catalogued event is emitted where docs/events.md says: each test triggers the
//! behaviour over HTTP (or runs the engine's round) and reads the event back from
//! `GET /v1/events` with the data it must carry. `catalogue.rs` checks that no
//! catalogue entry goes without such a test.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::lifecycle::run_due_changes;
use tenure_engine::notices::run_due_notices;
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, events, time};

/// The only `event_type` event about `resource`, read through `GET /v1/events`.
async fn the_event(app: &TestApp, m: &TestMerchant, event_type: &str, resource: &str) -> Value {
    let found: Vec<Value> = events(app, m, event_type)
        .await
        .into_iter()
        .filter(|e| e["resource_id"] == resource)
        .collect();
    assert_eq!(found.len(), 1, "one {event_type} for {resource}: {found:?}");
    assert_eq!(found[0]["type"], event_type);
    found[0].clone()
}

/// How many `event_type` events the merchant has.
async fn how_many(app: &TestApp, m: &TestMerchant, event_type: &str) -> usize {
    events(app, m, event_type).await.len()
}

async fn notices(app: &TestApp) -> usize {
    run_due_notices(&app.state.app, app.clock.now(), 100)
        .await
        .expect("notice round")
}

async fn lifecycle(app: &TestApp) -> usize {
    run_due_changes(&app.state.app, app.clock.now(), 100)
        .await
        .expect("lifecycle round")
}

async fn renewals(app: &TestApp) -> usize {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round")
}

/// A merchant, a monthly plan of 10.00 EUR (default portal policy: cancellation by
/// request, effective at period end) and a customer paying with `card`.
struct World {
    m: TestMerchant,
    plan: String,
    customer: String,
}

async fn world(app: &TestApp, card: &str) -> World {
    let w = world_without_card(app).await;
    fixtures::attach_default(app, &w.m, &w.customer, card).await;
    w
}

/// A customer who adds a card only after subscribing: a signup with a card pays its
/// first invoice in the request, one without leaves it to the engine (and its dunning).
async fn world_without_card(app: &TestApp) -> World {
    let m = app.merchant("Events").await;
    let product = fixtures::product(app, &m, json!({})).await;
    let plan = fixtures::plan(app, &m, &product, 1000).await;
    let customer = fixtures::customer(app, &m, "ev-1").await;
    World { m, plan, customer }
}

#[actix_web::test]
async fn cancellation_requests_approved_declined_and_completed_are_events_with_their_ticket() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let token = fixtures::session(&app, &w.m, &w.customer).await;
    let mut requests = Vec::new();
    for _ in 0..3 {
        let sub = fixtures::subscribe_id(&app, &w.m, &w.customer, &w.plan).await;
        requests.push(fixtures::request_cancellation(&app, &token, &sub, "too_expensive").await);
    }
    let request_id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let ticket_of = |r: &Value| r["ticket_id"].as_str().unwrap().to_owned();

    // Approved early by the merchant.
    let approved = request_id(&requests[0]);
    app.by(&w.m.key)
        .post_empty(&format!("/v1/cancellation_requests/{approved}/approve"))
        .await
        .expect(200);
    let event = the_event(&app, &w.m, "cancellation_request.approved", &approved).await;
    assert_eq!(event["data"]["object"]["status"], "approved");

    // Declined with a message.
    let declined = request_id(&requests[1]);
    app.by(&w.m.key)
        .post(
            &format!("/v1/cancellation_requests/{declined}/decline"),
            &json!({"message": "Your contract runs for a year."}),
        )
        .await
        .expect(200);
    let event = the_event(&app, &w.m, "cancellation_request.declined", &declined).await;
    assert_eq!(event["data"]["object"]["status"], "declined");

    // Completed by the worker once its effective date passed.
    let completed = request_id(&requests[2]);
    let effective_at = time(&requests[2]["effective_at"]);
    assert_eq!(
        how_many(&app, &w.m, "cancellation_request.completed").await,
        0
    );
    app.clock.advance_to(effective_at + Duration::minutes(1));
    assert!(lifecycle(&app).await >= 1);
    let event = the_event(&app, &w.m, "cancellation_request.completed", &completed).await;
    assert_eq!(event["data"]["object"]["status"], "completed");

    // Each outcome posted a note to the request's ticket and resolved it.
    for request in &requests {
        let ticket = ticket_of(request);
        let event = the_event(&app, &w.m, "support_ticket.updated", &ticket).await;
        assert_eq!(event["data"]["object"]["id"], ticket.as_str());
        assert_eq!(event["data"]["object"]["status"], "resolved");
    }
}

#[actix_web::test]
async fn scheduling_and_removing_changes_are_subscription_events() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &w.m, &w.customer, &w.plan).await;
    let id = fixtures::id(&sub);
    let period_end = sub["current_period"]["end"].clone();

    // A pause at period end is scheduled, not started.
    let paused = app
        .by(&w.m.key)
        .post(
            &format!("/v1/subscriptions/{id}/pause"),
            &json!({"start": {"type": "period_end"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(paused["status"], "active");
    let event = the_event(&app, &w.m, "subscription.pause_scheduled", &id).await;
    let change = &event["data"]["object"]["scheduled_changes"][0];
    assert_eq!(change["type"], "pause");
    assert_eq!(change["due_at"], period_end);

    // Removing it is an event too, with the subscription as it is without the change.
    let change_id = change["id"].as_str().unwrap();
    app.by(&w.m.key)
        .delete(&format!(
            "/v1/subscriptions/{id}/scheduled_changes/{change_id}"
        ))
        .await
        .expect(200);
    let event = the_event(&app, &w.m, "subscription.scheduled_change_removed", &id).await;
    assert_eq!(event["data"]["object"]["scheduled_changes"], json!([]));

    // A merchant's cancellation at period end.
    let canceled = fixtures::cancel(&app, &w.m, &id, json!({"timing": "period_end"})).await;
    assert_eq!(canceled["status"], "active");
    let event = the_event(&app, &w.m, "subscription.cancel_scheduled", &id).await;
    assert_eq!(event["data"]["object"]["cancel_at"], period_end);
    assert_eq!(
        event["data"]["object"]["scheduled_changes"][0]["type"],
        "cancel"
    );
}

#[actix_web::test]
async fn dunning_that_ends_unpaid_emits_subscription_unpaid() {
    let app = TestApp::new().await;
    let w = world_without_card(&app).await;
    app.by(&w.m.key)
        .put(
            "/v1/dunning_policy",
            &json!({"retry_after_days": [1], "final_state": "unpaid"}),
        )
        .await
        .expect(200);
    let id = fixtures::subscribe_id(&app, &w.m, &w.customer, &w.plan).await;
    fixtures::attach_default(&app, &w.m, &w.customer, "pm_card_chargeDeclined").await;
    renewals(&app).await;
    assert_eq!(fixtures::status(&app, &w.m, &id).await, "past_due");
    assert_eq!(how_many(&app, &w.m, "subscription.unpaid").await, 0);
    app.clock.advance(Duration::days(2));
    renewals(&app).await;
    let event = the_event(&app, &w.m, "subscription.unpaid", &id).await;
    assert_eq!(event["data"]["object"]["status"], "unpaid");
}

#[actix_web::test]
async fn erasing_a_customer_emits_customer_erased_without_the_erased_values() {
    let app = TestApp::new().await;
    let m = app.merchant("Erasure").await;
    let customer = fixtures::customer(&app, &m, "to-forget").await;
    app.by(&m.key)
        .post_empty(&format!("/v1/customers/{customer}/erase"))
        .await
        .expect(200);
    let event = the_event(&app, &m, "customer.erased", &customer).await;
    let object = &event["data"]["object"];
    assert_eq!(object["email"], Value::Null);
    assert_eq!(object["external_id"], format!("erased_{customer}"));
    assert!(object["erased_at"].is_string(), "{object}");
    assert!(
        !event.to_string().contains("to-forget"),
        "no erased value in the event: {event}"
    );
}

#[actix_web::test]
async fn a_refund_emits_invoice_refunded_with_the_amount_before() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    fixtures::subscribe_id(&app, &w.m, &w.customer, &w.plan).await;
    renewals(&app).await;
    let invoice = fixtures::invoices_of(&app, &w.m, &w.customer).await[0].clone();
    assert_eq!(invoice["status"], "paid");
    let id = fixtures::id(&invoice);
    app.by(&w.m.key)
        .post(
            &format!("/v1/invoices/{id}/refund"),
            &json!({"amount": 400}),
        )
        .await
        .expect(201);
    let event = the_event(&app, &w.m, "invoice.refunded", &id).await;
    assert_eq!(event["data"]["object"]["amount_refunded"]["amount"], 400);
    assert_eq!(
        event["data"]["previous_attributes"]["amount_refunded"]["amount"],
        0
    );
}

#[actix_web::test]
async fn a_renewal_coming_up_emits_invoice_upcoming_once_per_period() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &w.m, &w.customer, &w.plan).await;
    let id = fixtures::id(&sub);
    renewals(&app).await;
    assert_eq!(how_many(&app, &w.m, "invoice.upcoming").await, 0, "not yet");
    // The default lead time is seven days.
    app.clock
        .advance_to(time(&sub["current_period"]["end"]) - Duration::days(3));
    renewals(&app).await;
    renewals(&app).await;
    let event = the_event(&app, &w.m, "invoice.upcoming", &id).await;
    let upcoming = &event["data"]["object"];
    assert_eq!(upcoming["object"], "upcoming_invoice");
    assert_eq!(upcoming["subscription_id"], id.as_str());
    assert_eq!(upcoming["period_start"], sub["current_period"]["end"]);
    assert_eq!(upcoming["amount_due"]["amount"], 1000);
}

#[actix_web::test]
async fn a_new_default_card_emits_payment_method_updated_for_the_one_replaced() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let first = fixtures::id(
        &app.get_ok(
            &format!("/v1/customers/{}/payment_methods", w.customer),
            &w.m.key,
        )
        .await["data"][0],
    );
    fixtures::attach_default(&app, &w.m, &w.customer, "pm_card_mastercard").await;
    let event = the_event(&app, &w.m, "payment_method.updated", &first).await;
    assert_eq!(event["data"]["object"]["is_default"], false);
    assert_eq!(event["data"]["previous_attributes"]["is_default"], true);
    assert_eq!(event["data"]["object"]["last4"], "4242");
}

#[actix_web::test]
async fn changing_and_archiving_a_plan_are_plan_events() {
    let app = TestApp::new().await;
    let m = app.merchant("Catalog").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1500).await;
    app.by(&m.key)
        .patch(
            &format!("/v1/plans/{plan}"),
            &json!({"name": "Roaster's pick"}),
        )
        .await
        .expect(200);
    let event = the_event(&app, &m, "plan.updated", &plan).await;
    assert_eq!(event["data"]["object"]["name"], "Roaster's pick");
    assert_eq!(event["data"]["previous_attributes"]["name"], "Plan 1500");

    app.by(&m.key)
        .post_empty(&format!("/v1/plans/{plan}/archive"))
        .await
        .expect(200);
    let event = the_event(&app, &m, "plan.archived", &plan).await;
    assert_eq!(event["data"]["object"]["active"], false);
    assert_eq!(event["data"]["previous_attributes"]["active"], true);
}

#[actix_web::test]
async fn access_ending_is_announced_a_week_ahead_once() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &w.m, &w.customer, &w.plan).await;
    let id = fixtures::id(&sub);
    let other = fixtures::subscribe_id(&app, &w.m, &w.customer, &w.plan).await;
    let period_end = time(&sub["current_period"]["end"]);
    fixtures::cancel(&app, &w.m, &id, json!({"timing": "period_end"})).await;

    // A month ahead: too early.
    notices(&app).await;
    assert_eq!(how_many(&app, &w.m, "subscription.access_ending").await, 0);

    // Within the seven days (tenure_domain::subscription::ACCESS_ENDING_NOTICE_DAYS).
    app.clock.advance_to(period_end - Duration::days(6));
    assert_eq!(notices(&app).await, 1);
    let event = the_event(&app, &w.m, "subscription.access_ending", &id).await;
    let object = &event["data"]["object"];
    assert_eq!(object["status"], "active");
    assert_eq!(time(&object["access_until"]), period_end);
    assert_eq!(time(&object["cancel_at"]), period_end);

    // A rerun sends nothing more; the subscription that is not ending gets nothing.
    assert_eq!(notices(&app).await, 0);
    app.clock.advance(Duration::days(1));
    assert_eq!(notices(&app).await, 0);
    assert_eq!(how_many(&app, &w.m, "subscription.access_ending").await, 1);
    assert_eq!(
        fixtures::count_events(&app, &other, "subscription.access_ending").await,
        0
    );
}

/// The first instant of the month after the one `t` falls in.
fn start_of_next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (year, month) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap()
}

#[actix_web::test]
async fn a_default_card_expiring_within_thirty_days_is_announced_once() {
    let app = TestApp::new().await;
    let w = world(&app, "pm_card_visa").await;
    let spare = fixtures::attach_card(&app, &w.m, &w.customer, "pm_card_mastercard").await;
    let default = fixtures::id(
        &app.get_ok(
            &format!("/v1/customers/{}/payment_methods", w.customer),
            &w.m.key,
        )
        .await["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pm| pm["is_default"] == true)
            .unwrap()
            .clone(),
    );
    // Both cards expire at the end of the month two months from now.
    let expiry_month = start_of_next_month(app.clock.now() + Duration::days(40));
    let invalid_from = start_of_next_month(expiry_month);
    app.exec(format!(
        "UPDATE payment_methods SET exp_month = {}, exp_year = {}",
        expiry_month.month(),
        expiry_month.year()
    ))
    .await;
    notices(&app).await;
    assert_eq!(
        how_many(&app, &w.m, "payment_method.expiring").await,
        0,
        "too early"
    );

    // Within EXPIRING_SOON_DAYS (30) of the end of the expiry month.
    app.clock.advance_to(invalid_from - Duration::days(20));
    assert_eq!(notices(&app).await, 1);
    let event = the_event(&app, &w.m, "payment_method.expiring", &default).await;
    let object = &event["data"]["object"];
    assert_eq!(object["expiring_soon"], true);
    assert_eq!(object["expired"], false);
    assert_eq!(object["exp_month"], expiry_month.month());
    assert!(!event.to_string().contains("gateway_token"), "{event}");

    // Once per card; the card that is not the default is not announced.
    assert_eq!(notices(&app).await, 0);
    assert_eq!(how_many(&app, &w.m, "payment_method.expiring").await, 1);
    assert_eq!(
        fixtures::count_events(&app, &spare, "payment_method.expiring").await,
        0
    );
}
