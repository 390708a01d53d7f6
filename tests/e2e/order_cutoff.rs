//! The edit cutoff of the next order over HTTP (docs/orders.md, "The edit cutoff"), for
//! what holds it beyond a quantity or plan change: a send now (either way), an agent's
//! address change, an agent's override (recorded, naming the cutoff), the portal's stock
//! choice; and what the upcoming order and the send-now preview show.

use actix_web::http::Method;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
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
async fn a_send_now_after_the_cutoff_is_refused_in_the_portal_and_to_an_agent() {
    let app = TestApp::new().await;
    let m = app.merchant("SendNowCutoff").await;
    let plan = shipping_plan(&app, &m, json!({"allow_send_now": true})).await;
    settings(&app, &m, cutoff_48h()).await;
    let start = Utc.with_ymd_and_hms(2027, 5, 3, 8, 0, 0).unwrap();
    let (clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 1).await;
    let id = fixtures::id(&sub);
    let renewal = time(&sub["current_period"]["end"]);
    let cutoff = renewal - Duration::hours(48);
    let token = fixtures::session(&app, &m, &customer).await;
    let portal = format!("/v1/portal/subscriptions/{id}/send_now");
    let merchant = format!("/v1/subscriptions/{id}/send_now");

    advance(&app, &m, &clock, cutoff + Duration::hours(1)).await;
    // Keeping the anchor ships nothing at the locked renewal; resetting it moves the
    // renewal: either changes the locked order.
    for anchor in ["keep", "reset"] {
        let body = json!({"anchor": anchor});
        let refused = app
            .by(&token)
            .post(&portal, &body)
            .await
            .expect_problem(409, "order_edit_cutoff_passed");
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&cutoff.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            "{detail}"
        );
        app.by(&token)
            .post(&format!("{portal}/preview"), &body)
            .await
            .expect_problem(409, "order_edit_cutoff_passed");
        let refused = as_agent(&app, &m, &merchant, body)
            .await
            .expect_problem(409, "order_edit_cutoff_passed");
        let detail = refused.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("override"), "{detail}");
    }
    let shown = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert!(shown["sent_now"].is_null(), "{shown}");
    assert_eq!(time(&shown["current_period"]["end"]), renewal);
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 1);

    // After the renewal, before the next cutoff: the subscriber sends now.
    advance(&app, &m, &clock, renewal + Duration::hours(1)).await;
    let sent = app
        .by(&token)
        .post(&portal, &json!({"anchor": "keep"}))
        .await
        .expect(200)
        .body;
    assert_eq!(sent["sent_now"]["anchor"], "keep");
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 3);
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
async fn an_agents_override_passes_the_cutoff_and_is_recorded_naming_it() {
    let app = TestApp::new().await;
    let m = app.merchant("OverrideCutoff").await;
    let plan = shipping_plan(&app, &m, json!({"allow_skip": true})).await;
    settings(&app, &m, cutoff_48h()).await;
    let start = Utc.with_ymd_and_hms(2027, 5, 3, 8, 0, 0).unwrap();
    let (clock, customer, sub) = clocked_subscriber(&app, &m, &plan, start, 1).await;
    let id = fixtures::id(&sub);
    let renewal = time(&sub["current_period"]["end"]);
    let path = format!("/v1/subscriptions/{id}/skip");

    advance(&app, &m, &clock, renewal - Duration::hours(47)).await;
    let refused = as_agent(&app, &m, &path, json!({}))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("override") && detail.contains("order_cutoff_hours"),
        "{detail}"
    );
    assert!(events(&app, &m, "override.created").await.is_empty());

    let skipped = as_agent(
        &app,
        &m,
        &path,
        json!({"override": {"reason": "Away that week"}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(
        skipped["skipped_renewals"].as_array().map(Vec::len),
        Some(1),
        "{skipped}"
    );
    let created = events(&app, &m, "override.created").await;
    assert_eq!(created.len(), 1, "{created:?}");
    let recorded = &created[0]["data"]["object"];
    assert_eq!(recorded["kind"], "skip");
    assert_eq!(recorded["agent"], AGENT);
    assert_eq!(recorded["limits"], json!(["order_cutoff_hours"]));
    let listed = app
        .get_ok(&format!("/v1/customers/{customer}/overrides"), &m.key)
        .await;
    assert_eq!(listed["data"][0]["limits"], json!(["order_cutoff_hours"]));
    assert_eq!(listed["data"][0]["subscription_id"], id.as_str());
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM agent_overrides \
             WHERE limits = ARRAY['order_cutoff_hours']::text[]"
        )
        .await,
        1
    );
}

#[actix_web::test]
async fn the_portals_stock_choice_is_held_to_the_cutoff() {
    let app = TestApp::new().await;
    let m = app.merchant("StockCutoff").await;
    let product = fixtures::shippable_product(&app, &m, "Beans", json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1500).await;
    settings(&app, &m, cutoff_48h()).await;
    let mut subs = Vec::new();
    for n in 0..2 {
        let customer = fixtures::customer(&app, &m, &format!("chooser-{n}")).await;
        fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
        let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
        subs.push((customer, sub));
    }
    app.by(&m.key)
        .post(
            &format!("/v1/plans/{plan}/stock"),
            &json!({"status": "out_of_stock", "next_order": "ship_anyway", "choices": ["skip"]}),
        )
        .await
        .expect(202);
    assert_eq!(crate::stock::fan_out(&app).await, 2);
    let choose = |sub: &Value| {
        format!(
            "/v1/portal/subscriptions/{}/stock_choice",
            fixtures::id(sub)
        )
    };

    // Before the cutoff the first subscriber skips.
    let (customer, sub) = &subs[0];
    let token = fixtures::session(&app, &m, customer).await;
    app.by(&token)
        .post(&choose(sub), &json!({"choice": "skip"}))
        .await
        .expect(200);

    // After it the second one cannot: the choice would empty the locked order.
    let (customer, sub) = &subs[1];
    let renewal = time(&sub["current_period"]["end"]);
    app.clock.advance_to(renewal - Duration::hours(47));
    let token = fixtures::session(&app, &m, customer).await;
    app.by(&token)
        .post(&choose(sub), &json!({"choice": "skip"}))
        .await
        .expect_problem(409, "order_edit_cutoff_passed");
    let id = fixtures::id(sub);
    let shown = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(shown["skipped_renewals"], json!([]), "{shown}");
    assert_eq!(
        count_events(&app, &id, "subscription.stock_choice_made").await,
        0
    );
    // Choosing what the merchant applied changes nothing, and is taken.
    app.by(&token)
        .post(&choose(sub), &json!({"choice": "ship_anyway"}))
        .await
        .expect(200);
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
