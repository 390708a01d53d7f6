//! Upcoming orders over HTTP (docs/orders.md, "Upcoming orders"): the merchant's notice
//! and cutoff settings, `order.upcoming` over a test clock's advance, the edit cutoff
//! refusing a subscriber's changes of the locked order, the upcoming order shown to the
//! merchant and in the portal, and the customer's channel preference
//! (docs/customers.md).

use actix_web::http::Method;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures::{self, events, time};

fn paris() -> Value {
    json!({"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "city": "Paris",
        "postal_code": "75002", "country": "FR"})
}

pub(crate) fn lyon() -> Value {
    json!({"name": "Ada Lovelace", "line1": "1 Place Bellecour", "city": "Lyon",
        "country": "FR"})
}

/// A shippable product whose subscribers may skip and hold 1 to 5 units, and its 12 EUR
/// monthly plan.
async fn coffee(app: &TestApp, m: &TestMerchant) -> String {
    let product = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Coffee", "shippable": true, "min_quantity": 1, "max_quantity": 5,
                "portal_policy": {"allow_skip": true, "max_consecutive_skips": 2}}),
        )
        .await
        .expect(201)
        .id();
    fixtures::plan(app, m, &product, 1200).await
}

pub(crate) async fn settings(app: &TestApp, m: &TestMerchant, body: Value) -> Value {
    app.by(&m.key)
        .put("/v1/billing_settings", &body)
        .await
        .expect(200)
        .body
}

/// A clock at `start`, a customer on it with a card and an address in Paris, subscribed
/// to `plan` with `quantity` units: (clock, customer, subscription).
pub(crate) async fn clocked_subscriber(
    app: &TestApp,
    m: &TestMerchant,
    plan: &str,
    start: DateTime<Utc>,
    quantity: u32,
) -> (String, String, Value) {
    let clock = app
        .by(&m.key)
        .post("/v1/test_clocks", &json!({"frozen_time": start}))
        .await
        .expect(201)
        .id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": format!("on-{clock}"), "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    fixtures::attach_default(app, m, &customer, "pm_card_visa").await;
    let address = app
        .by(&m.key)
        .post(&format!("/v1/customers/{customer}/addresses"), &paris())
        .await
        .expect(201)
        .id();
    let sub = app
        .by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan, "quantity": quantity,
                "shipping_address_id": address}),
        )
        .await
        .expect(201)
        .body;
    (clock, customer, sub)
}

pub(crate) async fn advance(app: &TestApp, m: &TestMerchant, clock: &str, to: DateTime<Utc>) {
    app.by(&m.key)
        .post(
            &format!("/v1/test_clocks/{clock}/advance"),
            &json!({"frozen_time": to}),
        )
        .await
        .expect(200);
    while tenure_engine::test_clocks::advance_next(&app.state.app)
        .await
        .expect("advance")
    {}
}

/// The `order.upcoming` events of one subscription, oldest first.
async fn notices(app: &TestApp, m: &TestMerchant, sub: &str) -> Vec<Value> {
    let mut list: Vec<Value> = events(app, m, "order.upcoming")
        .await
        .into_iter()
        .filter(|e| e["data"]["object"]["subscription_id"] == sub)
        .collect();
    list.reverse();
    list
}

#[actix_web::test]
async fn order_notice_settings_are_shown_and_checked() {
    let app = TestApp::new().await;
    let m = app.merchant("Settings").await;
    let shown = app.get_ok("/v1/billing_settings", &m.key).await;
    assert_eq!(shown["order_notice_days"], 3, "default lead time");
    assert_eq!(shown["order_cutoff_hours"], 0, "no cutoff by default");

    let saved = settings(
        &app,
        &m,
        json!({"upcoming_notice_days": 7, "order_notice_days": 5, "order_cutoff_hours": 48}),
    )
    .await;
    assert_eq!(saved["order_notice_days"], 5);
    assert_eq!(saved["order_cutoff_hours"], 48);
    // Omitted, they stay.
    let kept = settings(&app, &m, json!({"upcoming_notice_days": 6})).await;
    assert_eq!(kept["order_notice_days"], 5);
    assert_eq!(kept["order_cutoff_hours"], 48);

    for (body, field) in [
        (
            json!({"upcoming_notice_days": 7, "order_notice_days": 61}),
            "order_notice_days",
        ),
        (
            json!({"upcoming_notice_days": 7, "order_cutoff_hours": 1441}),
            "order_cutoff_hours",
        ),
        // The cutoff after the notice: 2 days' notice, locked 3 days ahead.
        (
            json!({"upcoming_notice_days": 7, "order_notice_days": 2, "order_cutoff_hours": 72}),
            "order_cutoff_hours",
        ),
    ] {
        let refused = app
            .by(&m.key)
            .put("/v1/billing_settings", &body)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], field, "{body}");
    }
    let unchanged = app.get_ok("/v1/billing_settings", &m.key).await;
    assert_eq!(unchanged["order_notice_days"], 5);
    assert_eq!(unchanged["order_cutoff_hours"], 48);
    assert_eq!(unchanged["upcoming_notice_days"], 6);
}

#[actix_web::test]
async fn a_clock_advance_sends_order_upcoming_once_per_renewal_with_what_ships() {
    let app = TestApp::new().await;
    let m = app.merchant("Notices").await;
    let plan = coffee(&app, &m).await;
    settings(
        &app,
        &m,
        json!({"upcoming_notice_days": 7, "order_notice_days": 3, "order_cutoff_hours": 24}),
    )
    .await;
    let start = Utc.with_ymd_and_hms(2027, 3, 1, 10, 0, 0).unwrap();
    let (clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 2).await;
    let id = fixtures::id(&sub);
    let renewal = time(&sub["current_period"]["end"]);
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}"),
            &json!({"channel_preference": "sms"}),
        )
        .await
        .expect(200);

    advance(&app, &m, &clock, renewal - Duration::days(4)).await;
    assert!(notices(&app, &m, &id).await.is_empty(), "not yet");

    advance(
        &app,
        &m,
        &clock,
        renewal - Duration::days(3) + Duration::hours(1),
    )
    .await;
    let sent = notices(&app, &m, &id).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let order = &sent[0]["data"]["object"];
    assert_eq!(order["object"], "upcoming_order");
    assert_eq!(order["customer_id"], customer.as_str());
    assert_eq!(time(&order["renewal_at"]), renewal);
    assert_eq!(time(&order["period_start"]), renewal);
    assert_eq!(order["lines"].as_array().map(Vec::len), Some(1));
    let line = &order["lines"][0];
    assert_eq!(line["plan_id"], plan.as_str());
    assert_eq!(line["product_name"], "Coffee");
    assert_eq!(line["quantity"], 2);
    assert_eq!(line["unit_amount"]["amount"], 1200);
    assert_eq!(line["amount"]["amount"], 2400);
    assert_eq!(
        order["amount_total"],
        json!({"amount": 2400, "currency": "EUR"})
    );
    assert_eq!(order["shipping_address"]["city"], "Paris");
    assert_eq!(time(&order["cutoff_at"]), renewal - Duration::hours(24));
    assert_eq!(order["editable"], true);
    assert_eq!(order["channel_preference"], "sms");
    assert_eq!(time(&sent[0]["created_at"]), renewal - Duration::days(3));

    // Once: further steps before the renewal send nothing more.
    advance(&app, &m, &clock, renewal - Duration::hours(2)).await;
    assert_eq!(notices(&app, &m, &id).await.len(), 1);

    // The next renewal gets its own notice, and a skipped one none.
    let token = fixtures::session(&app, &m, &customer).await;
    advance(&app, &m, &clock, renewal + Duration::hours(1)).await;
    let next = time(
        &app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await["current_period"]["end"],
    );
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200);
    advance(&app, &m, &clock, next - Duration::days(1)).await;
    assert_eq!(notices(&app, &m, &id).await.len(), 1, "the skipped renewal");
    // The renewal after it is a month later (31 days, from 1 May to 1 June).
    advance(&app, &m, &clock, next + Duration::days(29)).await;
    let sent = notices(&app, &m, &id).await;
    assert_eq!(sent.len(), 2, "the renewal after the skipped one");
    assert!(time(&sent[1]["data"]["object"]["renewal_at"]) > next);
}

#[actix_web::test]
async fn after_the_cutoff_the_subscriber_cannot_change_the_next_order_and_before_it_can() {
    let app = TestApp::new().await;
    let m = app.merchant("Cutoff").await;
    let plan = coffee(&app, &m).await;
    settings(
        &app,
        &m,
        json!({"upcoming_notice_days": 7, "order_notice_days": 3, "order_cutoff_hours": 48}),
    )
    .await;
    let start = Utc.with_ymd_and_hms(2027, 5, 3, 8, 0, 0).unwrap();
    let (clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 1).await;
    let id = fixtures::id(&sub);
    let renewal = time(&sub["current_period"]["end"]);
    let cutoff = renewal - Duration::hours(48);
    let token = fixtures::session(&app, &m, &customer).await;
    let lyon = app
        .by(&token)
        .post("/v1/portal/addresses", &lyon())
        .await
        .expect(201)
        .id();
    let portal = |path: &str| format!("/v1/portal/subscriptions/{id}/{path}");

    // Before the cutoff: the subscriber changes the order.
    advance(&app, &m, &clock, cutoff - Duration::hours(1)).await;
    app.by(&token)
        .post(&portal("change_quantity"), &json!({"quantity": 2}))
        .await
        .expect(200);
    let upcoming = app.get_ok(&portal("upcoming_order"), &token).await;
    assert_eq!(upcoming["editable"], true);
    assert_eq!(upcoming["lines"][0]["quantity"], 2);
    assert_eq!(time(&upcoming["cutoff_at"]), cutoff);

    // After it: every change of the locked order is refused, naming the cutoff.
    advance(&app, &m, &clock, cutoff + Duration::hours(1)).await;
    let refused = app
        .by(&token)
        .post(&portal("change_quantity"), &json!({"quantity": 3}))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&cutoff.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        "{detail}"
    );
    app.by(&token)
        .post_empty(&portal("skip"))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    app.by(&token)
        .post(&portal("shipping_address"), &json!({"address_id": lyon}))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    // An agent is held too; the merchant's backend is not.
    app.request(
        Method::POST,
        &format!("/v1/subscriptions/{id}/change_quantity"),
    )
    .bearer(&m.key)
    .header("tenure-agent", "desk-anna")
    .json(&json!({"quantity": 3}))
    .send()
    .await
    .expect_problem(409, "order_edit_cutoff_passed");
    let shown = app.get_ok(&portal("upcoming_order"), &token).await;
    assert_eq!(shown["editable"], false);
    assert_eq!(shown["lines"][0]["quantity"], 2, "nothing changed");
    assert_eq!(shown["shipping_address"]["city"], "Paris");
    assert_eq!(
        fixtures::count_events(&app, &id, "subscription.quantity_changed").await,
        1,
        "only the change before the cutoff"
    );
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/change_quantity"),
            &json!({"quantity": 4}),
        )
        .await
        .expect(200);

    // The renewal ships the order; the next one is open again.
    advance(&app, &m, &clock, renewal + Duration::hours(1)).await;
    let orders = app
        .get_ok(&format!("/v1/orders?subscription_id={id}"), &m.key)
        .await;
    assert_eq!(orders["data"][0]["lines"][0]["quantity"], 4);
    assert_eq!(orders["data"][0]["shipping_address"]["city"], "Paris");
    app.by(&token)
        .post(&portal("change_quantity"), &json!({"quantity": 3}))
        .await
        .expect(200);
    app.by(&token)
        .post(&portal("shipping_address"), &json!({"address_id": lyon}))
        .await
        .expect(200);
    let next = app.get_ok(&portal("upcoming_order"), &token).await;
    assert_eq!(next["editable"], true);
    assert_eq!(next["lines"][0]["quantity"], 3);
    assert_eq!(next["shipping_address"]["city"], "Lyon");
}

#[actix_web::test]
async fn the_upcoming_order_is_shown_and_refused_clearly_without_one() {
    let app = TestApp::new().await;
    let m = app.merchant("Upcoming").await;
    let plan = coffee(&app, &m).await;
    let start = Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap();
    let (_clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 3).await;
    let id = fixtures::id(&sub);
    let token = fixtures::session(&app, &m, &customer).await;

    let merchant = app
        .get_ok(&format!("/v1/subscriptions/{id}/upcoming_order"), &m.key)
        .await;
    let portal = app
        .get_ok(
            &format!("/v1/portal/subscriptions/{id}/upcoming_order"),
            &token,
        )
        .await;
    assert_eq!(merchant, portal, "the same order for both");
    assert_eq!(portal["object"], "upcoming_order");
    assert_eq!(
        time(&portal["renewal_at"]),
        time(&sub["current_period"]["end"])
    );
    assert_eq!(portal["lines"][0]["quantity"], 3);
    assert_eq!(portal["amount_total"]["amount"], 3600);
    assert_eq!(portal["shipping_address"]["line1"], "12 Rue de la Paix");
    assert_eq!(portal["cutoff_at"], Value::Null);
    assert_eq!(portal["editable"], true);
    assert_eq!(portal["channel_preference"], "email");

    // Another customer's subscription is not found from the portal.
    let other = fixtures::customer(&app, &m, "other").await;
    let others = fixtures::session(&app, &m, &other).await;
    app.by(&others)
        .get(&format!("/v1/portal/subscriptions/{id}/upcoming_order"))
        .await
        .expect(404);

    // A product that does not ship has no orders.
    let product = fixtures::product(&app, &m, json!({})).await;
    let digital = fixtures::plan(&app, &m, &product, 500).await;
    fixtures::attach_default(&app, &m, &other, "pm_card_visa").await;
    let plain = fixtures::subscribe_id(&app, &m, &other, &digital).await;
    app.by(&m.key)
        .get(&format!("/v1/subscriptions/{plain}/upcoming_order"))
        .await
        .expect_problem(409, "subscription_not_shippable");

    // Canceled now: no renewal to ship.
    fixtures::cancel(&app, &m, &id, json!({"timing": "now"})).await;
    app.by(&token)
        .get(&format!("/v1/portal/subscriptions/{id}/upcoming_order"))
        .await
        .expect_problem(409, "no_upcoming_order");
}

#[actix_web::test]
async fn the_channel_preference_round_trips_through_merchant_portal_and_context() {
    let app = TestApp::new().await;
    let m = app.merchant("Channels").await;
    let plain = fixtures::customer(&app, &m, "plain").await;
    let shown = app.get_ok(&format!("/v1/customers/{plain}"), &m.key).await;
    assert_eq!(shown["channel_preference"], "email", "the default");

    let refused = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "fax", "channel_preference": "fax"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "channel_preference");
    let created = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "texter", "channel_preference": "sms"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["channel_preference"], "sms");
    let customer = created.id();

    let updated = app
        .by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}"),
            &json!({"channel_preference": "none"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.body["channel_preference"], "none");
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}"),
            &json!({"channel_preference": "SMS"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let context = app
        .get_ok(&format!("/v1/customers/{customer}/context"), &m.key)
        .await;
    assert_eq!(context["channel_preference"], "none");

    // The subscriber sees and changes their own.
    let token = fixtures::session(&app, &m, &customer).await;
    assert_eq!(
        app.get_ok("/v1/portal/me", &token).await["channel_preference"],
        "none"
    );
    let me = app
        .by(&token)
        .patch("/v1/portal/me", &json!({"channel_preference": "push"}))
        .await
        .expect(200);
    assert_eq!(me.body["channel_preference"], "push");
    assert_eq!(me.body["id"], customer.as_str());
    let refused = app
        .by(&token)
        .patch("/v1/portal/me", &json!({"channel_preference": "pigeon"}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "channel_preference");
    app.by(&token)
        .patch("/v1/portal/me", &json!({"email": "x@example.com"}))
        .await
        .expect_problem(422, "validation_failed");
    let merchant_view = app
        .get_ok(&format!("/v1/customers/{customer}"), &m.key)
        .await;
    assert_eq!(merchant_view["channel_preference"], "push");
    assert_eq!(merchant_view["email"], Value::Null, "nothing else changed");
    let changes = events(&app, &m, "customer.updated").await;
    let latest = &changes[0];
    assert_eq!(latest["data"]["object"]["channel_preference"], "push");
    assert_eq!(
        latest["data"]["previous_attributes"]["channel_preference"],
        "none"
    );
    // The same again changes nothing and records nothing.
    app.by(&token)
        .patch("/v1/portal/me", &json!({"channel_preference": "push"}))
        .await
        .expect(200);
    assert_eq!(
        events(&app, &m, "customer.updated").await.len(),
        changes.len()
    );
}
