//! Customer credit (balances per currency that invoices draw on before charging), credit
//! notes (part of a paid invoice refunded or credited), one-off invoice items, and
//! agents' overrides with their reasons (timeline, context, metrics).

use actix_web::http::Method;
use chrono::Duration;
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{Response, TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::billing::{invoice, pay};
use crate::fixtures::{self, attach_default, events, time};

const AGENT: &str = "support-bot";

/// `POST path` as `agent` (`Tenure-Agent`), or without the header.
async fn post_as(
    app: &TestApp,
    m: &TestMerchant,
    agent: Option<&str>,
    path: &str,
    body: Value,
) -> Response {
    let mut request = app.request(Method::POST, path).bearer(&m.key);
    if let Some(agent) = agent {
        request = request.header("tenure-agent", agent);
    }
    request.json(&body).send().await
}

async fn grant(app: &TestApp, m: &TestMerchant, customer: &str, amount: i64, currency: &str) {
    post_as(
        app,
        m,
        Some(AGENT),
        &format!("/v1/customers/{customer}/balance_transactions"),
        json!({"amount": {"amount": amount, "currency": currency}, "reason": "Late delivery"}),
    )
    .await
    .expect(201);
}

/// The customer's balance in `currency` (0 when it never had one).
async fn balance(app: &TestApp, m: &TestMerchant, customer: &str, currency: &str) -> i64 {
    let list = app
        .get_ok(&format!("/v1/customers/{customer}/balances"), &m.key)
        .await;
    list["data"]
        .as_array()
        .expect("balances")
        .iter()
        .find(|b| b["balance"]["currency"] == currency)
        .map_or(0, |b| amount(&b["balance"]))
}

fn amount(v: &Value) -> i64 {
    v["amount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no amount: {v}"))
}

fn lines_of(invoice: &Value, kind: &str) -> Vec<i64> {
    invoice["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == kind)
        .map(|l| amount(&l["amount"]))
        .collect()
}

async fn round(app: &TestApp) {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
}

async fn usd_plan(app: &TestApp, m: &TestMerchant, product: &str) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": "Dollar plan",
            "price": {"amount": 900, "currency": "USD"}, "interval": "month"}),
        )
        .await
        .expect(201)
        .id()
}

#[actix_web::test]
async fn a_credit_is_used_by_the_next_invoice_of_its_currency_only_and_comes_back_when_voided() {
    let app = TestApp::new().await;
    let m = app.merchant("Credits").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let eur_plan = fixtures::plan(&app, &m, &product, 1000).await;
    usd_plan(&app, &m, &product).await;
    let cus = fixtures::customer(&app, &m, "u-credit").await;
    let path = format!("/v1/customers/{cus}/balance_transactions");

    // Refusals: no reason, an empty one, a currency nothing is billed in, a debit beyond
    // the balance, zero.
    for (body, status, field) in [
        (
            json!({"amount": {"amount": 300, "currency": "EUR"}}),
            422,
            "reason",
        ),
        (
            json!({"amount": {"amount": 300, "currency": "EUR"}, "reason": "  "}),
            422,
            "reason",
        ),
        (
            json!({"amount": {"amount": 300, "currency": "GBP"}, "reason": "x"}),
            422,
            "amount.currency",
        ),
        (
            json!({"amount": {"amount": 0, "currency": "EUR"}, "reason": "x"}),
            422,
            "amount",
        ),
    ] {
        let res = post_as(&app, &m, Some(AGENT), &path, body)
            .await
            .expect(status);
        assert_eq!(res.body["errors"][0]["field"], field, "{}", res.body);
    }
    post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": {"amount": -1, "currency": "EUR"}, "reason": "x"}),
    )
    .await
    .expect_problem(409, "balance_insufficient");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customer_balance_transactions")
            .await,
        0
    );

    let granted = post_as(
        &app,
        &m,
        Some(AGENT),
        &path,
        json!({"amount": {"amount": 300, "currency": "EUR"}, "reason": "Late delivery"}),
    )
    .await
    .expect(201)
    .body;
    assert_eq!(granted["object"], "customer_balance_transaction");
    assert_eq!(granted["source"], "adjustment");
    assert_eq!(granted["agent"], AGENT);
    assert_eq!(amount(&granted["balance_after"]), 300);
    // A credit in another currency the merchant bills in is kept, and never used by EUR.
    grant(&app, &m, &cus, 500, "USD").await;
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 300);
    assert_eq!(balance(&app, &m, &cus, "USD").await, 500);
    let changed = events(&app, &m, "customer.balance_changed").await;
    assert_eq!(changed.len(), 2);
    assert_eq!(changed[1]["data"]["object"]["customer_id"], cus.as_str());

    // No card: the first invoice stays open. It used the EUR credit before any charge.
    let sub = fixtures::subscribe_id(&app, &m, &cus, &eur_plan).await;
    let invoices = fixtures::invoices_of(&app, &m, &cus).await;
    let first = &invoices[0];
    assert_eq!(lines_of(first, "plan"), vec![1000]);
    assert_eq!(lines_of(first, "customer_balance"), vec![-300]);
    assert_eq!(amount(&first["total"]), 1000);
    assert_eq!(amount(&first["credit_applied"]), -300);
    assert_eq!(amount(&first["amount_due"]), 700);
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 0);
    assert_eq!(
        balance(&app, &m, &cus, "USD").await,
        500,
        "another currency: untouched"
    );
    let ledger = app.get_ok(&format!("{path}?limit=10"), &m.key).await;
    let newest = &ledger["data"][0];
    assert_eq!(newest["source"], "invoice");
    assert_eq!(amount(&newest["amount"]), -300);
    assert_eq!(newest["invoice_id"], first["id"]);
    assert!(newest["agent"].is_null() || newest["agent"] == AGENT);
    let _ = sub;

    // Voiding the invoice gives the credit back.
    let id = first["id"].as_str().unwrap();
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{id}/void"))
        .await
        .expect(200);
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 300);
    let ledger = app.get_ok(&format!("{path}?limit=10"), &m.key).await;
    assert_eq!(amount(&ledger["data"][0]["amount"]), 300);
    assert_eq!(ledger["data"].as_array().unwrap().len(), 4);
}

#[actix_web::test]
async fn a_credit_note_for_part_of_a_paid_invoice_refunds_exactly_that_part() {
    let app = TestApp::new().await;
    let m = app.merchant("Notes").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    fixtures::plan(&app, &m, &product, 1000).await;
    let cus = fixtures::customer(&app, &m, "u-notes").await;
    attach_default(&app, &m, &cus, "pm_card_visa").await;
    let id = invoice(&app, &m, &cus, 1000).await;
    let path = format!("/v1/invoices/{id}/credit_notes");

    // Not paid yet: refused.
    post_as(
        &app,
        &m,
        Some(AGENT),
        &path,
        json!({"amount": 100, "reason": "goodwill", "destination": "balance"}),
    )
    .await
    .expect_problem(409, "invoice_not_paid");
    assert_eq!(pay(&app, &m, id).await.0, "succeeded");

    let note = post_as(
        &app,
        &m,
        Some(AGENT),
        &path,
        json!({"amount": 300, "reason": "product_unsatisfactory", "destination": "refund",
               "memo": "Box arrived damaged"}),
    )
    .await
    .expect(201)
    .body;
    assert_eq!(note["object"], "credit_note");
    assert_eq!(amount(&note["amount"]), 300);
    assert_eq!(note["destination"], "refund");
    assert_eq!(note["agent"], AGENT);
    let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
    assert_eq!(amount(&inv["amount_refunded"]), 300, "exactly that part");
    assert_eq!(inv["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(amount(&inv["refunds"][0]["amount"]), 300);
    assert_eq!(inv["refunds"][0]["id"], note["refund_id"]);
    assert_eq!(amount(&inv["payments"][0]["amount_refunded"]), 300);

    let to_balance = post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": 200, "reason": "goodwill", "destination": "balance"}),
    )
    .await
    .expect(201)
    .body;
    assert!(to_balance["refund_id"].is_null());
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 200);
    let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
    assert_eq!(
        amount(&inv["amount_refunded"]),
        300,
        "a credit is no refund"
    );

    // 1000 paid − 300 refunded − 200 credited: 500 remain. Over-crediting is refused,
    // by credit note and by a direct refund alike.
    post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": 501, "reason": "duplicate", "destination": "refund"}),
    )
    .await
    .expect_problem(409, "credit_note_exceeds_invoice");
    post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": 501, "reason": "duplicate", "destination": "balance"}),
    )
    .await
    .expect_problem(409, "credit_note_exceeds_invoice");
    app.by(&m.key)
        .post(
            &format!("/v1/invoices/{id}/refund"),
            &json!({"amount": 501}),
        )
        .await
        .expect_problem(422, "validation_failed");
    post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": 100, "reason": "because", "destination": "refund"}),
    )
    .await
    .expect(422);
    let last = post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": 500, "reason": "duplicate", "destination": "refund"}),
    )
    .await
    .expect(201)
    .body;
    let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
    assert_eq!(amount(&inv["amount_refunded"]), 800);
    app.by(&m.key)
        .post(&format!("/v1/invoices/{id}/refund"), &json!({}))
        .await
        .expect_problem(409, "invoice_fully_refunded");

    let listed = app.get_ok(&path, &m.key).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let by_customer = app
        .get_ok(&format!("/v1/credit_notes?customer_id={cus}"), &m.key)
        .await;
    assert_eq!(by_customer["data"][0]["id"], last["id"]);
    let got = app
        .get_ok(
            &format!("/v1/credit_notes/{}", note["id"].as_str().unwrap()),
            &m.key,
        )
        .await;
    assert_eq!(got["reason"], "product_unsatisfactory");
    assert_eq!(events(&app, &m, "credit_note.created").await.len(), 3);
    app.by(&m.key)
        .get("/v1/credit_notes/cn_01jf9zg3f4e3a8r7m2k4t5n6bc")
        .await
        .expect(404);
}

/// A card-paying customer subscribed to a 1000 EUR plan, its first invoice paid.
async fn paying_subscriber(
    app: &TestApp,
    m: &TestMerchant,
    policy: Value,
) -> (String, String, String) {
    let product = fixtures::product(app, m, policy).await;
    let plan = fixtures::plan(app, m, &product, 1000).await;
    let cus = fixtures::customer(app, m, "u-sub").await;
    attach_default(app, m, &cus, "pm_card_visa").await;
    let sub = fixtures::subscribe_id(app, m, &cus, &plan).await;
    round(app).await;
    (product, cus, sub)
}

#[actix_web::test]
async fn one_off_items_go_on_the_next_invoice_and_may_be_deleted_until_then() {
    let app = TestApp::new().await;
    let m = app.merchant("Items").await;
    let (_, cus, sub) = paying_subscriber(&app, &m, json!({})).await;
    let path = format!("/v1/subscriptions/{sub}/invoice_items");
    let charge = post_as(
        &app,
        &m,
        Some(AGENT),
        &path,
        json!({"amount": 500, "description": "Express shipping"}),
    )
    .await
    .expect(201)
    .body;
    assert_eq!(charge["object"], "invoice_item");
    assert!(charge["id"].as_str().unwrap().starts_with("ii_"));
    assert_eq!(charge["agent"], AGENT);
    assert_eq!(charge["amount"], json!({"amount": 500, "currency": "EUR"}));
    assert!(charge["invoice_id"].is_null());
    let credit = post_as(
        &app,
        &m,
        None,
        &path,
        json!({"amount": -200, "description": "Sorry"}),
    )
    .await
    .expect(201)
    .body;
    assert!(
        credit["agent"].as_str().unwrap().starts_with("key_"),
        "the key acts"
    );
    for bad in [
        json!({"amount": 0, "description": "x"}),
        json!({"amount": 100, "description": " "}),
        json!({"amount": -100, "description": "x", "invoice_now": true}),
        json!({"amount": 10_000_000_000_001_i64, "description": "x"}),
    ] {
        post_as(&app, &m, None, &path, bad).await.expect(422);
    }
    let listed = app.get_ok(&path, &m.key).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let credit_path = format!("{path}/{}", credit["id"].as_str().unwrap());
    app.by(&m.key).delete(&credit_path).await.expect(200);
    app.by(&m.key).delete(&credit_path).await.expect(404);
    assert_eq!(events(&app, &m, "invoice_item.deleted").await.len(), 1);
    assert_eq!(events(&app, &m, "invoice_item.created").await.len(), 2);

    // The renewal takes the charge as a one-off line, once.
    let read = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let end = time(&read["current_period"]["end"]);
    app.clock.advance_to(end + Duration::minutes(1));
    round(&app).await;
    let invoices = fixtures::invoices_of(&app, &m, &cus).await;
    let renewal = invoices.last().unwrap();
    assert_eq!(lines_of(renewal, "plan"), vec![1000]);
    assert_eq!(lines_of(renewal, "one_off"), vec![500]);
    assert_eq!(amount(&renewal["subtotal"]), 1500);
    assert_eq!(amount(&renewal["amount_paid"]), 1500);
    let charge_path = format!("{path}/{}", charge["id"].as_str().unwrap());
    app.by(&m.key)
        .delete(&charge_path)
        .await
        .expect_problem(409, "invoice_item_invoiced");
    let listed = app.get_ok(&path, &m.key).await;
    assert_eq!(listed["data"][0]["invoice_id"], renewal["id"]);

    // Invoiced now: alone, and charged in the same request.
    let now = post_as(
        &app,
        &m,
        Some(AGENT),
        &path,
        json!({"amount": 700, "description": "Replacement grinder", "invoice_now": true}),
    )
    .await
    .expect(201)
    .body;
    assert_eq!(now["invoice"]["status"], "paid", "{now}");
    assert_eq!(lines_of(&now["invoice"], "one_off"), vec![700]);
    assert_eq!(amount(&now["invoice"]["amount_paid"]), 700);
    assert_eq!(now["invoice_id"], now["invoice"]["id"]);
}

/// A credit larger than the charges of its invoice is not lost: the invoice is paid
/// with nothing charged and the rest goes to the customer's balance, which the next
/// invoice draws on.
#[actix_web::test]
async fn a_credit_larger_than_its_invoice_moves_to_the_balance() {
    let app = TestApp::new().await;
    let m = app.merchant("Leftover").await;
    let (_, cus, sub) = paying_subscriber(&app, &m, json!({})).await;
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/subscriptions/{sub}/invoice_items"),
        json!({"amount": -1500, "description": "Missed two boxes"}),
    )
    .await
    .expect(201);
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 0);
    let read = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let end = time(&read["current_period"]["end"]);
    app.clock.advance_to(end + Duration::minutes(1));
    round(&app).await;
    let renewal = fixtures::invoices_of(&app, &m, &cus).await.pop().unwrap();
    assert_eq!(renewal["status"], "paid", "{renewal}");
    assert_eq!(amount(&renewal["amount_paid"]), 0);
    assert_eq!(lines_of(&renewal, "one_off"), vec![-1500]);
    // 1000 for the plan, 1500 off: 500 left over, on the balance.
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 500);
    let changed = events(&app, &m, "customer.balance_changed").await;
    assert_eq!(changed.len(), 1);

    // The next renewal draws the 500 and charges the other 500.
    let read = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let end = time(&read["current_period"]["end"]);
    app.clock.advance_to(end + Duration::minutes(1));
    round(&app).await;
    let next = fixtures::invoices_of(&app, &m, &cus).await.pop().unwrap();
    assert_eq!(amount(&next["credit_applied"]), -500, "{next}");
    assert_eq!(amount(&next["amount_paid"]), 500);
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 0);
}

#[actix_web::test]
async fn agents_overrides_need_a_reason_and_show_in_the_timeline_context_and_metrics() {
    let app = TestApp::new().await;
    let m = app.merchant("Overrides").await;
    let (product, cus, sub) = paying_subscriber(
        &app,
        &m,
        json!({"max_pause_days": 30, "notice_period_days": 30, "allow_plan_change": false}),
    )
    .await;
    let other = fixtures::plan(&app, &m, &product, 2500).await;
    let pause = format!("/v1/subscriptions/{sub}/pause");
    let long_pause = |reason: Value| {
        json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 6},
               "override": reason})
    };
    // Without a reason, or with an empty one: 422, nothing changed.
    let res = post_as(&app, &m, Some(AGENT), &pause, long_pause(json!({})))
        .await
        .expect(422);
    assert_eq!(
        res.body["errors"][0]["field"], "override.reason",
        "{}",
        res.body
    );
    let res = post_as(
        &app,
        &m,
        Some(AGENT),
        &pause,
        long_pause(json!({"reason": ""})),
    )
    .await
    .expect(422);
    assert_eq!(
        res.body["errors"][0]["field"], "override.reason",
        "{}",
        res.body
    );
    assert_eq!(fixtures::status(&app, &m, &sub).await, "active");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM agent_overrides").await,
        0
    );

    let paused = post_as(
        &app,
        &m,
        Some(AGENT),
        &pause,
        long_pause(json!({"reason": "Three-year subscriber travelling"})),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(paused["status"], "paused");
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{sub}/resume"))
        .await
        .expect(200);
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/subscriptions/{sub}/change_plan"),
        json!({"plan_id": other, "override": {"reason": "Legacy price kept"}}),
    )
    .await
    .expect(200);
    post_as(&app, &m, Some("retention-desk"), &format!("/v1/subscriptions/{sub}/discount_grants"),
        json!({"amount": {"amount": 250, "currency": "EUR"}, "cycles": 2, "reason": "Keeps a valued subscriber"}))
        .await
        .expect(201);
    post_as(
        &app,
        &m,
        Some("retention-desk"),
        &format!("/v1/subscriptions/{sub}/discount_grants"),
        json!({"percent": 10, "cycles": 1}),
    )
    .await
    .expect(422);
    post_as(
        &app,
        &m,
        None,
        &format!("/v1/subscriptions/{sub}/cancel"),
        json!({"timing": "now", "override": {"reason": "Moved abroad, no notice"}}),
    )
    .await
    .expect(200);
    // Granted after the cancellation: nothing invoices it any more.
    grant(&app, &m, &cus, 400, "EUR").await;
    grant(&app, &m, &cus, 100, "EUR").await;

    let listed = app
        .get_ok(&format!("/v1/customers/{cus}/overrides"), &m.key)
        .await;
    let kinds: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "credit",
            "credit",
            "cancel",
            "discount",
            "plan_change",
            "pause"
        ]
    );
    let cancel = &listed["data"][2];
    assert!(cancel["agent"].as_str().unwrap().starts_with("key_"));
    assert_eq!(cancel["reason"], "Moved abroad, no notice");
    assert_eq!(listed["data"][5]["agent"], AGENT);
    // Each policy override names the limit it exceeded; money grants none.
    let limits: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["limits"])
        .collect();
    assert_eq!(
        limits,
        [
            &json!([]),
            &json!([]),
            &json!(["cancellation_notice"]),
            &json!([]),
            &json!(["allow_plan_change"]),
            &json!(["max_pause_days"])
        ]
    );
    assert_eq!(listed["data"][5]["subscription_id"], sub.as_str());

    let created = events(&app, &m, "override.created").await;
    assert_eq!(created.len(), 6);
    let timeline = app
        .get_ok(&format!("/v1/customers/{cus}/timeline?limit=100"), &m.key)
        .await;
    let overrides_in_timeline = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "override.created")
        .count();
    assert_eq!(overrides_in_timeline, 6);
    let context = app
        .get_ok(&format!("/v1/customers/{cus}/context"), &m.key)
        .await;
    assert_eq!(context["overrides"].as_array().unwrap().len(), 6);
    assert_eq!(
        context["credit_balances"],
        json!([{"amount": 500, "currency": "EUR"}])
    );

    let metrics = app.get_ok("/v1/metrics/overrides", &m.key).await;
    let granted = metrics["granted"].as_array().unwrap();
    let find = |agent: &str, kind: &str| {
        granted
            .iter()
            .find(|g| g["agent"] == agent && g["kind"] == kind)
            .unwrap_or_else(|| panic!("{agent} {kind} in {metrics}"))
    };
    let credits = find(AGENT, "credit");
    assert_eq!(
        (credits["count"].as_i64(), credits["amount"].as_i64()),
        (Some(2), Some(500))
    );
    assert_eq!(credits["currency"], "EUR");
    let discount = find("retention-desk", "discount");
    assert_eq!(discount["amount"], 500, "250 × 2 cycles at most");
    let pause = find(AGENT, "pause");
    assert!(pause["currency"].is_null() && pause["amount"].is_null());
    assert_eq!(pause["count"], 1);
    assert_eq!(find(AGENT, "plan_change")["count"], 1);
}

/// One invoice carrying a proration, a discount, a one-off charge and a credit balance:
/// the lines, the discount and the credit applied account for what was charged, to the
/// minor unit, and what the invoice did not need stays on the balance.
#[actix_web::test]
async fn one_invoice_with_a_proration_a_discount_a_one_off_charge_and_credit_totals_exactly() {
    let app = TestApp::new().await;
    let m = app.merchant("Everything").await;
    let (product, cus, sub) = paying_subscriber(&app, &m, json!({})).await;
    let premium = fixtures::plan(&app, &m, &product, 3333).await;
    app.clock.advance(Duration::days(9) + Duration::hours(5));
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": premium}),
        )
        .await
        .expect(200);
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/subscriptions/{sub}/discount_grants"),
        json!({"percent": 15, "cycles": 1, "reason": "Sorry for the delay"}),
    )
    .await
    .expect(201);
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/subscriptions/{sub}/invoice_items"),
        json!({"amount": 457, "description": "Gift wrap"}),
    )
    .await
    .expect(201);
    grant(&app, &m, &cus, 777, "EUR").await;

    let read = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let end = time(&read["current_period"]["end"]);
    let upcoming = app
        .get_ok(&format!("/v1/subscriptions/{sub}/upcoming_invoice"), &m.key)
        .await;
    assert_eq!(amount(&upcoming["credit_applied"]), -777);
    app.clock.advance_to(end + Duration::minutes(1));
    round(&app).await;
    let renewal = fixtures::invoices_of(&app, &m, &cus).await.pop().unwrap();
    let plan = lines_of(&renewal, "plan");
    let prorations = lines_of(&renewal, "proration");
    let one_off = lines_of(&renewal, "one_off");
    let discount = lines_of(&renewal, "discount");
    let credit = lines_of(&renewal, "customer_balance");
    assert_eq!(plan, vec![3333]);
    assert_eq!(prorations.len(), 2, "{renewal}");
    assert_eq!(one_off, vec![457]);
    let subtotal: i64 = plan.iter().chain(&prorations).chain(&one_off).sum();
    assert_eq!(amount(&renewal["subtotal"]), subtotal);
    // 15 % of the subtotal, rounded half up.
    assert_eq!(discount, vec![-((subtotal * 15 + 50) / 100)]);
    let total = subtotal + discount[0];
    assert_eq!(amount(&renewal["total"]), total);
    assert_eq!(credit, vec![-777.min(total)]);
    assert_eq!(amount(&renewal["credit_applied"]), credit[0]);
    let due = subtotal + discount[0] + credit[0];
    assert_eq!(amount(&renewal["amount_due"]), due);
    assert_eq!(
        renewal["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| amount(&l["amount"]))
            .sum::<i64>(),
        due
    );
    assert_eq!(renewal["status"], "paid");
    assert_eq!(
        amount(&renewal["amount_paid"]),
        due,
        "charged exactly what was due"
    );
    assert_eq!(balance(&app, &m, &cus, "EUR").await, 777 - (-credit[0]));
}
