//! The edit cutoff of the next order over HTTP (docs/orders.md, "The edit cutoff"), for
//! what holds it beyond a quantity or plan change: a send now (either way), an agent's
//! address change, an agent's override (recorded, naming the cutoff), the portal's stock
//! choice; and what the upcoming order and the send-now preview show.

use actix_web::http::Method;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{Response, TestApp, TestMerchant};

use crate::fixtures::{self, count_events, events, time};
use crate::order_notices::{advance, clocked_subscriber, lyon, settings};

const AGENT: &str = "desk-anna";

/// Locks each order 48 hours before its renewal.
fn cutoff_48h() -> Value {
    json!({"upcoming_notice_days": 7, "order_notice_days": 3, "order_cutoff_hours": 48})
}

/// A shippable product with `policy` and its 12 EUR monthly plan.
async fn shipping_plan(app: &TestApp, m: &TestMerchant, policy: Value) -> String {
    let product =
        fixtures::shippable_product(app, m, "Beans", json!({"portal_policy": policy})).await;
    fixtures::plan(app, m, &product, 1200).await
}

/// A merchant request naming the agent.
async fn as_agent(app: &TestApp, m: &TestMerchant, path: &str, body: Value) -> Response {
    app.request(Method::POST, path)
        .bearer(&m.key)
        .header("tenure-agent", AGENT)
        .json(&body)
        .send()
        .await
}

#[actix_web::test]
async fn an_agent_changing_the_shipping_address_after_the_cutoff_is_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("AddressCutoff").await;
    let plan = shipping_plan(&app, &m, json!({})).await;
    settings(&app, &m, cutoff_48h()).await;
    let start = Utc.with_ymd_and_hms(2027, 5, 3, 8, 0, 0).unwrap();
    let (clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 1).await;
    let id = fixtures::id(&sub);
    let renewal = time(&sub["current_period"]["end"]);
    let lyon = app
        .by(&m.key)
        .post(&format!("/v1/customers/{customer}/addresses"), &lyon())
        .await
        .expect(201)
        .id();
    let path = format!("/v1/subscriptions/{id}/shipping_address");

    advance(&app, &m, &clock, renewal - Duration::hours(47)).await;
    as_agent(&app, &m, &path, json!({"address_id": lyon}))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    let shown = app.get_ok(&path, &m.key).await;
    assert_eq!(shown["address"]["city"], "Paris", "{shown}");
    // The merchant's backend is not held.
    let moved = app
        .by(&m.key)
        .post(&path, &json!({"address_id": lyon}))
        .await
        .expect(200)
        .body;
    assert_eq!(moved["address"]["city"], "Lyon", "{moved}");
}

#[actix_web::test]
async fn the_send_now_preview_draws_on_the_credit_balance_as_the_invoice_does() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNowCredit").await;
    let product = fixtures::product(&app, &m, json!({"allow_send_now": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "credited").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    app.request(
        Method::POST,
        &format!("/v1/customers/{customer}/balance_transactions"),
    )
    .bearer(&m.key)
    .header("tenure-agent", AGENT)
    .json(&json!({"amount": {"amount": 300, "currency": "EUR"}, "reason": "Late delivery"}))
    .send()
    .await
    .expect(201);
    app.clock
        .advance_to(time(&sub["current_period"]["start"]) + Duration::days(10));
    let token = fixtures::session(&app, &m, &customer).await;

    let preview = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now/preview"))
        .await
        .expect(200)
        .body;
    assert_eq!(preview["total"]["amount"], 1000, "{preview}");
    assert_eq!(preview["credit_applied"]["amount"], -300, "{preview}");
    assert_eq!(preview["amount_due"]["amount"], 700, "{preview}");
    assert!(
        preview["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .any(|l| l["kind"] == "customer_balance" && l["amount"]["amount"] == -300),
        "{preview}"
    );

    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/send_now"))
        .await
        .expect(200);
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    let invoice = invoices.last().expect("the send now's invoice");
    assert_eq!(invoice["total"], preview["total"], "{invoice}");
    assert_eq!(invoice["credit_applied"], preview["credit_applied"]);
    assert_eq!(invoice["amount_due"], preview["amount_due"]);
}

#[actix_web::test]
async fn the_upcoming_order_ships_the_product_a_swap_moves_to() {
    let app = TestApp::new().await;
    let m = app.merchant("SwapOrder").await;
    let tea = fixtures::shippable_product(&app, &m, "Tea", json!({})).await;
    let tea_plan = fixtures::plan(&app, &m, &tea, 1100).await;
    let coffee =
        fixtures::shippable_product(&app, &m, "Coffee", json!({"swappable_product_ids": [tea]}))
            .await;
    let coffee_plan = fixtures::plan(&app, &m, &coffee, 1200).await;
    let customer = fixtures::customer(&app, &m, "swapped").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &coffee_plan).await;
    let path = format!("/v1/subscriptions/{id}/upcoming_order");
    let before = app.get_ok(&path, &m.key).await;
    assert_eq!(before["lines"][0]["product_name"], "Coffee");

    app.by(&m.key)
        .post(
            &format!("/v1/plans/{coffee_plan}/stock"),
            &json!({"status": "discontinued", "next_order": "swap",
                "substitute_plan_id": tea_plan}),
        )
        .await
        .expect(202);
    assert_eq!(crate::stock::fan_out(&app).await, 1);
    let upcoming = app.get_ok(&path, &m.key).await;
    let line = &upcoming["lines"][0];
    assert_eq!(line["plan_id"], tea_plan.as_str(), "{upcoming}");
    assert_eq!(line["product_id"], tea.as_str(), "{upcoming}");
    assert_eq!(line["product_name"], "Tea", "{upcoming}");
    assert_eq!(line["unit_amount"]["amount"], 1100);
}
