//! Customer context, segments (and the segment filter), tags, notes and the timeline,
//! for hand-built customers with known histories in two currencies.

use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures;

/// One invoice of `currency` with a payment of `amount` (`status`), optionally refunded
/// by `refund`, all through SQL with known amounts. `n` is its invoice number: the
/// hand-built invoices use 101 and up, clear of the numbers the API gives the first-period
/// invoices of the subscriptions created below (1, 2, 3), since the SQL bypasses the
/// merchant's invoice counter.
async fn paid_invoice(
    app: &TestApp,
    customer: &str,
    n: i64,
    currency: &str,
    amount: i64,
    status: &str,
    refund: i64,
) {
    let c = fixtures::customer_uuid(customer);
    let (inv, pay) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let paid = if status == "succeeded" { amount } else { 0 };
    let gref = if status == "succeeded" {
        "'gw_1'"
    } else {
        "NULL"
    };
    app.exec(format!(
        "INSERT INTO invoices (merchant_id, id, number, customer_id, status, currency, total, amount_paid, amount_refunded)
         SELECT merchant_id, '{inv}', {n}, id, '{st}', '{currency}', {amount}, {paid}, {refund} FROM customers WHERE id = '{c}'",
        st = if status == "succeeded" { "paid" } else { "open" }
    )).await;
    app.exec(format!(
        "INSERT INTO payments (merchant_id, id, invoice_id, customer_id, amount, currency, status, gateway, gateway_ref, idempotency_key, amount_refunded)
         SELECT merchant_id, '{pay}', '{inv}', id, {amount}, '{currency}', '{status}', 'sandbox', {gref}, 'k{n}', {refund} FROM customers WHERE id = '{c}'"
    )).await;
    if refund > 0 {
        app.exec(format!(
            "INSERT INTO refunds (merchant_id, id, invoice_id, payment_id, amount, currency, gateway_ref)
             SELECT merchant_id, '{}', '{inv}', '{pay}', {refund}, '{currency}', 're_1' FROM customers WHERE id = '{c}'",
            uuid::Uuid::now_v7()
        )).await;
    }
}

async fn plan(
    app: &TestApp,
    m: &TestMerchant,
    product: &str,
    amount: i64,
    currency: &str,
    interval: &str,
) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": format!("{currency} {interval}"),
            "price": {"amount": amount, "currency": currency}, "interval": interval}),
        )
        .await
        .expect(201)
        .id()
}

async fn subscribe(app: &TestApp, m: &TestMerchant, customer: &str, plan: &str) -> String {
    fixtures::subscribe_id(app, m, customer, plan).await
}

async fn external_ids(app: &TestApp, m: &TestMerchant, query: &str) -> Vec<String> {
    let res = app.get_ok(&format!("/v1/customers?{query}"), &m.key).await;
    res["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn context_and_segments_of_hand_built_customers() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let eur_month = plan(&app, &m, &product, 1000, "EUR", "month").await;
    let usd_year = plan(&app, &m, &product, 12006, "USD", "year").await;

    // loyal: 400 days, subscriptions in EUR and USD, payments in both currencies, a refund
    // and one declined payment this month.
    let loyal = fixtures::customer(&app, &m, "loyal").await;
    subscribe(&app, &m, &loyal, &eur_month).await;
    subscribe(&app, &m, &loyal, &usd_year).await;
    app.exec(format!(
        "UPDATE customers SET created_at = now() - interval '400 days 1 hour' WHERE id = '{}'",
        fixtures::customer_uuid(&loyal)
    ))
    .await;
    paid_invoice(&app, &loyal, 101, "EUR", 5000, "succeeded", 500).await;
    paid_invoice(&app, &loyal, 102, "EUR", 2000, "succeeded", 0).await;
    paid_invoice(&app, &loyal, 103, "USD", 12006, "succeeded", 0).await;
    paid_invoice(&app, &loyal, 104, "EUR", 1000, "declined", 0).await;

    // fresh: created now, nothing else.
    let fresh = fixtures::customer(&app, &m, "fresh").await;
    // gone: 100 days, one canceled subscription, EUR 3000 paid.
    let gone = fixtures::customer(&app, &m, "gone").await;
    let gone_sub = subscribe(&app, &m, &gone, &eur_month).await;
    fixtures::cancel(
        &app,
        &m,
        &gone_sub,
        json!({"timing": "now", "access": "immediately", "reason": "other"}),
    )
    .await;
    app.exec(format!(
        "UPDATE customers SET created_at = now() - interval '100 days' WHERE id = '{}'",
        fixtures::customer_uuid(&gone)
    ))
    .await;
    paid_invoice(&app, &gone, 105, "EUR", 3000, "succeeded", 0).await;

    // Each subscription (no trial) was invoiced for its first period at creation: EUR 1000
    // and USD 12006 for loyal, EUR 1000 for gone. No worker ran and none of them has a
    // payment method, so all three are open and unpaid: lifetime value counts money paid
    // (succeeded payments minus refunds), so they add nothing to the figures below, and
    // with no charge attempted there is no failed payment either.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM invoices WHERE subscription_id IS NOT NULL \
             AND status = 'open' AND amount_paid = 0 AND number IN (1, 2, 3)"
        )
        .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM invoices i JOIN payments p ON p.invoice_id = i.id \
             WHERE i.subscription_id IS NOT NULL"
        )
        .await,
        0
    );

    app.by(&m.key)
        .put(
            "/v1/segment_settings",
            &json!({"high_ltv_thresholds": [{"amount": 6500, "currency": "EUR"},
                {"amount": 20000, "currency": "USD"}]}),
        )
        .await
        .expect(200);

    let ctx = app
        .get_ok(&format!("/v1/customers/{loyal}/context"), &m.key)
        .await;
    assert_eq!(ctx["tenure"]["days"], 400);
    assert_eq!(
        ctx["lifetime_value"],
        json!([{"currency": "EUR", "paid": 7000, "refunded": 500, "net": 6500},
               {"currency": "USD", "paid": 12006, "refunded": 0, "net": 12006}])
    );
    // 12006 / 12 = 1000.5, rounded half up.
    assert_eq!(
        ctx["mrr"],
        json!([{"currency": "EUR", "amount": 1000}, {"currency": "USD", "amount": 1001}])
    );
    assert_eq!(ctx["subscriptions"]["by_status"], json!({"active": 2}));
    assert_eq!(
        ctx["subscriptions"]["current_plans"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(ctx["payment_health"]["status"], "at_risk");
    assert_eq!(ctx["payment_health"]["failed_payments_30d"], 1);
    assert_eq!(ctx["segments"], json!(["loyal", "high_ltv", "at_risk"]));

    let ctx = app
        .get_ok(&format!("/v1/customers/{fresh}/context"), &m.key)
        .await;
    assert_eq!(ctx["tenure"]["days"], 0);
    assert_eq!(ctx["lifetime_value"], json!([]));
    assert_eq!(ctx["mrr"], json!([]));
    assert_eq!(ctx["payment_health"]["status"], "ok");
    assert_eq!(ctx["segments"], json!(["new"]));

    let ctx = app
        .get_ok(&format!("/v1/customers/{gone}/context"), &m.key)
        .await;
    assert_eq!(ctx["tenure"]["days"], 100);
    assert_eq!(ctx["subscriptions"]["by_status"], json!({"canceled": 1}));
    assert_eq!(ctx["mrr"], json!([]));
    assert_eq!(ctx["segments"], json!(["churned"]));
    assert!(
        ctx["pause_history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "subscription.canceled")
    );

    // The list filter agrees with the computed segments.
    assert_eq!(external_ids(&app, &m, "segment=loyal").await, ["loyal"]);
    assert_eq!(external_ids(&app, &m, "segment=high_ltv").await, ["loyal"]);
    assert_eq!(external_ids(&app, &m, "segment=at_risk").await, ["loyal"]);
    assert_eq!(external_ids(&app, &m, "segment=new").await, ["fresh"]);
    assert_eq!(external_ids(&app, &m, "segment=churned").await, ["gone"]);
    assert!(external_ids(&app, &m, "segment=paused").await.is_empty());
    app.by(&m.key)
        .get("/v1/customers?segment=vip")
        .await
        .expect_problem(422, "validation_failed");

    // Another merchant sees nothing.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .get(&format!("/v1/customers/{loyal}/context"))
        .await
        .expect(404);

    // The portal shows tenure and the subscription summary, no money figures.
    let token = fixtures::session(&app, &m, &loyal).await;
    let me = app.get_ok("/v1/portal/me", &token).await;
    assert_eq!(me["tenure_days"], 400);
    assert_eq!(me["subscriptions"]["by_status"], json!({"active": 2}));
    assert!(me.get("lifetime_value").is_none());
}

#[actix_web::test]
async fn tags_notes_and_timeline() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let c = fixtures::customer(&app, &m, "c").await;
    let res = app
        .by(&m.key)
        .post(&format!("/v1/customers/{c}/tags"), &json!({"tag": "VIP"}))
        .await
        .expect(200);
    assert_eq!(res.body["tags"], json!(["vip"]));
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{c}/tags"),
            &json!({"tag": "has space"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let events = app
        .get_ok(
            &format!("/v1/events?type=customer.updated&resource_id={c}"),
            &m.key,
        )
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        events["data"][0]["data"]["previous_attributes"]["tags"],
        json!([])
    );
    assert_eq!(external_ids(&app, &m, "tag=vip").await, ["c"]);
    let res = app
        .by(&m.key)
        .delete(&format!("/v1/customers/{c}/tags/vip"))
        .await
        .expect(200);
    assert_eq!(res.body["tags"], json!([]));

    app.by(&m.key)
        .post(
            &format!("/v1/customers/{c}/notes"),
            &json!({"body": "Called about the price", "channel": "fax", "author": "maria"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let note = app
        .by(&m.key)
        .post(
            &format!("/v1/customers/{c}/notes"),
            &json!({"body": "Called about the price", "channel": "phone", "author": "maria"}),
        )
        .await
        .expect(201)
        .body;
    assert!(note["id"].as_str().unwrap().starts_with("note_"));

    let page = app
        .get_ok(&format!("/v1/customers/{c}/timeline?limit=2"), &m.key)
        .await;
    let types: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["note", "customer.updated"]);
    assert_eq!(page["data"][0]["channel"], "phone");
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get_ok(
            &format!("/v1/customers/{c}/timeline?starting_after={cursor}"),
            &m.key,
        )
        .await;
    let types: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["customer.updated", "customer.created"]);
    app.by(&m.key)
        .get(&format!("/v1/customers/{c}/timeline?starting_after=bogus"))
        .await
        .expect_problem(422, "validation_failed");
}
