//! "Send now" over HTTP (docs/lifecycle.md, "Sending now"): the portal's and the
//! merchant's send now keeping the anchor (the next period billed now, its renewal
//! billing nothing) and resetting it (a period from now, the schedule following it), the
//! order it makes for a product that ships, what the portal offers, every refusal, a
//! declined charge going into dunning, and test clocks running the renewals after each.

use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, count_events, time};

async fn shipping_product(app: &TestApp, m: &TestMerchant, policy: Value) -> String {
    app.by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Beans", "shippable": true, "portal_policy": policy}),
        )
        .await
        .expect(201)
        .id()
}

async fn orders_of(app: &TestApp, m: &TestMerchant, sub: &str) -> Vec<Value> {
    let mut list = app
        .get_ok(
            &format!("/v1/orders?subscription_id={sub}&limit=100"),
            &m.key,
        )
        .await["data"]
        .as_array()
        .expect("orders")
        .clone();
    list.reverse();
    list
}

async fn renew(app: &TestApp) {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
}

/// `at` is `expected` give or take the time the harness's clock ran between setting it
/// and the request (it flows, as the wall clock does).
#[track_caller]
fn assert_near(at: DateTime<Utc>, expected: DateTime<Utc>) {
    assert!(
        (at - expected).num_seconds().abs() < 60,
        "{at} is not within a minute of {expected}"
    );
}

fn starts(list: &[Value]) -> Vec<DateTime<Utc>> {
    list.iter().map(|i| time(&i["period_start"])).collect()
}

#[actix_web::test]
async fn a_subscriber_sends_now_keeping_the_anchor_and_the_renewal_due_bills_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNow").await;
    let product = shipping_product(&app, &m, json!({"allow_send_now": true})).await;
    let shown = app.get_ok(&format!("/v1/products/{product}"), &m.key).await;
    assert_eq!(shown["portal_policy"]["allow_send_now"], true);
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "eager").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    let first_start = time(&sub["current_period"]["start"]);
    let first_end = time(&sub["current_period"]["end"]);
    assert!(sub["sent_now"].is_null());
    assert_eq!(orders_of(&app, &m, &id).await.len(), 1);

    // Ten days in, the portal offers both ways, naming the period each would bill.
    app.clock.advance_to(first_start + Duration::days(10));
    let token = fixtures::session(&app, &m, &customer).await;
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    let offer = &shown["available_actions"]["send_now"];
    assert_eq!(time(&offer["keep_period"]["start"]), first_end);
    let second_end = time(&offer["keep_period"]["end"]);
    assert!(second_end > first_end);
    assert_near(
        time(&offer["reset_period"]["start"]),
        first_start + Duration::days(10),
    );

    // The preview shows the invoice it would create, and changes nothing.
    let preview = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now/preview"))
        .await
        .expect(200)
        .body;
    assert_eq!(preview["anchor"], "keep");
    assert_eq!(time(&preview["period"]["start"]), first_end);
    assert_eq!(time(&preview["next_renewal_at"]), second_end);
    assert_near(
        time(&preview["invoiced_at"]),
        first_start + Duration::days(10),
    );
    assert_eq!(preview["total"]["amount"], 1000);
    assert_eq!(preview["livemode"], false);
    let reset = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/send_now/preview"),
            &json!({"anchor": "reset"}),
        )
        .await
        .expect(200)
        .body;
    assert_near(
        time(&reset["period"]["start"]),
        first_start + Duration::days(10),
    );
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 1);

    let sent = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{id}/send_now"),
            &json!({"anchor": "keep"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(sent["sent_now"]["anchor"], "keep");
    assert_eq!(sent["sent_now"]["requested_by"], "customer");
    assert_eq!(time(&sent["sent_now"]["period"]["start"]), first_end);
    assert_eq!(time(&sent["sent_now"]["period"]["end"]), second_end);
    // The current period runs on; nothing more to send, skip or pause until it ends.
    assert_eq!(time(&sent["current_period"]["end"]), first_end);
    assert!(sent["available_actions"]["send_now"].is_null());
    assert!(sent["available_actions"]["skip"].is_null());
    assert!(sent["available_actions"]["pause"].is_null());

    // The next period is invoiced now, with its order.
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(starts(&invoices), vec![first_start, first_end]);
    assert_eq!(invoices[1]["total"]["amount"], 1000);
    assert_near(
        time(&invoices[1]["created_at"]),
        first_start + Duration::days(10),
    );
    let orders = orders_of(&app, &m, &id).await;
    assert_eq!(starts(&orders), vec![first_start, first_end]);
    assert_eq!(orders[1]["invoice_id"], invoices[1]["id"]);
    assert_eq!(orders[1]["status"], "awaiting_payment");
    assert_eq!(count_events(&app, &id, "subscription.sent_now").await, 1);
    let event = &fixtures::events(&app, &m, "subscription.sent_now").await[0];
    assert_eq!(event["data"]["object"]["sent_now"]["anchor"], "keep");
    assert!(event["data"]["previous_attributes"]["sent_now"].is_null());

    // The engine charges it like a renewal's invoice; the order is paid.
    renew(&app).await;
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices[1]["status"], "paid");
    assert_eq!(orders_of(&app, &m, &id).await[1]["status"], "unfulfilled");

    // A second send now for the same renewal, and whatever would change the paid period.
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now"))
        .await
        .expect_problem(409, "already_sent_now");
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/skip"))
        .await
        .expect_problem(409, "renewal_sent_now");
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/pause"),
            &json!({"start": {"type": "now"}}),
        )
        .await
        .expect_problem(409, "renewal_sent_now");
    // The upcoming invoice is the renewal after the one paid ahead.
    let upcoming = app
        .get_ok(&format!("/v1/subscriptions/{id}/upcoming_invoice"), &m.key)
        .await;
    assert_eq!(time(&upcoming["period_start"]), second_end);

    // The renewal due comes: the period paid ahead begins, nothing billed or announced.
    app.clock.advance_to(first_end + Duration::minutes(1));
    renew(&app).await;
    let after = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(after["status"], "active");
    assert_eq!(time(&after["current_period"]["start"]), first_end);
    assert_eq!(time(&after["current_period"]["end"]), second_end);
    assert!(after["sent_now"].is_null());
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 2);
    assert_eq!(orders_of(&app, &m, &id).await.len(), 2);
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_prepaid").await,
        1
    );
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 0);
    assert_eq!(count_events(&app, &id, "invoice.upcoming").await, 0);

    // The renewal after bills on the old schedule.
    app.clock.advance_to(second_end + Duration::minutes(1));
    renew(&app).await;
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(starts(&invoices), vec![first_start, first_end, second_end]);
    assert!(invoices.iter().all(|i| i["status"] == "paid"));
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 1);
    assert_eq!(orders_of(&app, &m, &id).await.len(), 3);
}

#[actix_web::test]
async fn a_merchant_sends_now_resetting_the_anchor() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNowReset").await;
    // The policy binds the portal, not a merchant's backend.
    let product = shipping_product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "reset").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    let first_start = time(&sub["current_period"]["start"]);
    let reset_at = first_start + Duration::days(12);
    app.clock.advance_to(reset_at);

    let sent = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/send_now"),
            &json!({"anchor": "reset"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(sent["sent_now"]["anchor"], "reset");
    assert_eq!(sent["sent_now"]["requested_by"], "merchant");
    // The period starts when the request ran, a moment after the clock was set.
    assert_near(time(&sent["current_period"]["start"]), reset_at);
    let reset_at = time(&sent["current_period"]["start"]);
    assert_eq!(time(&sent["billing_anchor"]), reset_at);
    let new_end = time(&sent["current_period"]["end"]);
    // Billed in full from now: the rest of the first period is not credited.
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(starts(&invoices), vec![first_start, reset_at]);
    assert_eq!(invoices[1]["total"]["amount"], 1000);
    assert_eq!(invoices[1]["lines"].as_array().unwrap().len(), 1);
    assert_eq!(
        starts(&orders_of(&app, &m, &id).await),
        vec![first_start, reset_at]
    );
    // Once per period.
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/send_now"),
            &json!({"anchor": "reset"}),
        )
        .await
        .expect_problem(409, "already_sent_now");

    // The next renewal follows the new anchor.
    app.clock.advance_to(new_end + Duration::minutes(1));
    renew(&app).await;
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(starts(&invoices), vec![first_start, reset_at, new_end]);
    assert!(invoices.iter().all(|i| i["status"] == "paid"));
    let after = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert!(after["sent_now"].is_null());
    assert_eq!(count_events(&app, &id, "subscription.sent_now").await, 1);
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 1);
}

#[actix_web::test]
async fn sending_now_is_refused_by_the_policy_and_the_state() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNowNo").await;
    let product = shipping_product(&app, &m, json!({"allow_skip": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "refused").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let send = format!("/v1/portal/subscriptions/{id}/send_now");
    let merchant_send = format!("/v1/subscriptions/{id}/send_now");

    // Off by default: no button, and a 422 naming the limit.
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert!(shown["available_actions"]["send_now"].is_null());
    let res = app.by(&token).post_empty(&send).await;
    let res = res.expect_problem(422, "send_now_not_allowed");
    assert_eq!(res.body["limit"], "allow_send_now");
    app.by(&token)
        .post_empty(&format!("{send}/preview"))
        .await
        .expect_problem(422, "send_now_not_allowed");
    // A bad anchor or an override in the portal is refused before anything happens.
    app.by(&m.key)
        .post(&merchant_send, &json!({"anchor": "later"}))
        .await
        .expect_problem(422, "validation_failed");
    app.by(&token)
        .post(&send, &json!({"override": {"reason": "x"}}))
        .await
        .expect_problem(422, "validation_failed");

    // A skip pending on the next renewal: unskip first.
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&merchant_send)
        .await
        .expect_problem(409, "renewal_skipped");
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/unskip"))
        .await
        .expect(200);

    // A pending cancellation, then a paused subscription.
    let cancel = fixtures::cancel(&app, &m, &id, json!({"timing": "period_end"})).await;
    let change = cancel["scheduled_changes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.by(&m.key)
        .post_empty(&merchant_send)
        .await
        .expect_problem(409, "cancellation_pending");
    app.by(&m.key)
        .delete(&format!(
            "/v1/subscriptions/{id}/scheduled_changes/{change}"
        ))
        .await
        .expect(200);
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/pause"),
            &json!({"start": {"type": "now"}}),
        )
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&merchant_send)
        .await
        .expect_problem(409, "subscription_paused");
    assert_eq!(count_events(&app, &id, "subscription.sent_now").await, 0);
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 1);
}

#[actix_web::test]
async fn a_declined_send_now_goes_into_dunning_like_a_renewal() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNowDeclined").await;
    let product = shipping_product(&app, &m, json!({"allow_send_now": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "declined").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_chargeDeclined").await;
    let token = fixtures::session(&app, &m, &customer).await;
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now"))
        .await
        .expect(200);
    renew(&app).await;
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[1]["status"], "open");
    assert_eq!(invoices[1]["attempt_count"], 1);
    assert!(!invoices[1]["next_payment_attempt_at"].is_null());
    assert_eq!(fixtures::status(&app, &m, &id).await, "past_due");
    assert_eq!(orders_of(&app, &m, &id).await[1]["status"], "on_hold");
    // Nothing more to send while it is owed.
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now"))
        .await
        .expect_problem(409, "subscription_past_due");
}

/// A clock customer's monthly subscription from 31 January 2027: (app, merchant, clock,
/// customer, subscription, portal token).
async fn clocked(name: &str) -> (TestApp, TestMerchant, String, String, String, String) {
    let app = TestApp::new().await;
    let m = app.merchant(name).await;
    let product = shipping_product(&app, &m, json!({"allow_send_now": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let clock = app
        .by(&m.key)
        .post("/v1/test_clocks", &json!({"frozen_time": anchor()}))
        .await
        .expect(201)
        .id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "clocked", "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;
    (app, m, clock, customer, id, token)
}

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap()
}

fn month(k: u32) -> DateTime<Utc> {
    anchor().checked_add_months(Months::new(k)).unwrap()
}

async fn advance(app: &TestApp, m: &TestMerchant, clock: &str, to: DateTime<Utc>) {
    app.by(&m.key)
        .post(
            &format!("/v1/test_clocks/{clock}/advance"),
            &json!({"frozen_time": to}),
        )
        .await
        .expect(200);
    assert!(
        tenure_engine::test_clocks::advance_next(&app.state.app)
            .await
            .expect("advance")
    );
}

#[actix_web::test]
async fn a_test_clock_bills_exactly_after_a_send_now_keeping_the_anchor() {
    let (app, m, clock, customer, id, token) = clocked("SendNowClockKeep").await;
    let sent_at = month(1) + Duration::days(3);
    advance(&app, &m, &clock, sent_at).await;
    let sent = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now"))
        .await
        .expect(200)
        .body;
    assert_eq!(sent["sent_now"]["anchor"], "keep");
    assert_eq!(time(&sent["sent_now"]["requested_at"]), sent_at);
    advance(&app, &m, &clock, month(5) + Duration::hours(1)).await;

    // Months 0 to 5, each once: month 2's at the clock's time of the send now.
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(starts(&invoices), (0..=5).map(month).collect::<Vec<_>>());
    assert_eq!(time(&invoices[2]["created_at"]), sent_at);
    assert!(
        invoices
            .iter()
            .all(|i| i["status"] == "paid" && i["total"]["amount"] == 1000),
        "{invoices:?}"
    );
    assert_eq!(
        starts(&orders_of(&app, &m, &id).await),
        (0..=5).map(month).collect::<Vec<_>>()
    );
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 4);
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_prepaid").await,
        1
    );
    let now = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(time(&now["current_period"]["start"]), month(5));
    assert_eq!(time(&now["billing_anchor"]), anchor());
}

#[actix_web::test]
async fn a_test_clock_bills_exactly_after_a_send_now_resetting_the_anchor() {
    let (app, m, clock, customer, id, token) = clocked("SendNowClockReset").await;
    let reset_at = month(1) + Duration::days(10);
    advance(&app, &m, &clock, reset_at).await;
    let sent = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{id}/send_now"),
            &json!({"anchor": "reset"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(time(&sent["billing_anchor"]), reset_at);
    let after_reset = |k: u32| reset_at.checked_add_months(Months::new(k)).unwrap();
    advance(&app, &m, &clock, after_reset(3) + Duration::hours(1)).await;

    // Months 0 and 1 on the old anchor, then a full period from the reset and monthly
    // from it.
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    let mut expected = vec![month(0), month(1)];
    expected.extend((0..=3).map(after_reset));
    assert_eq!(starts(&invoices), expected);
    assert!(
        invoices
            .iter()
            .all(|i| i["status"] == "paid" && i["total"]["amount"] == 1000),
        "{invoices:?}"
    );
    assert_eq!(time(&invoices[2]["created_at"]), reset_at);
    assert_eq!(starts(&orders_of(&app, &m, &id).await), expected);
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 4);
    assert_eq!(count_events(&app, &id, "subscription.sent_now").await, 1);
}
