//! Billing: payment methods by gateway token, the sandbox gateway, card-number refusal,
//! invoices (gapless numbers, one per subscription period), payments and refunds.

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use tenure_domain::billing::invoice::{InvoiceLine, InvoiceStatus, LineKind};
use tenure_domain::billing::period::Period;
use tenure_domain::clock::Clock;
use tenure_domain::ids::{CustomerId, GenerateId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_store::StoreError;
use tenure_store::repo::invoices::{self, NewInvoice, SUBSCRIPTION_PERIOD_UNIQUE};

use crate::fixtures::{self, attach};

fn merchant_id(m: &TestMerchant) -> MerchantId {
    m.id.parse().expect("merchant id")
}

fn new_invoice(
    customer: &str,
    subscription: Option<SubscriptionId>,
    start_days: i64,
    amount: i64,
) -> NewInvoice {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("date")
        .with_timezone(&Utc)
        + Duration::days(start_days);
    let eur = "EUR".parse().expect("EUR");
    NewInvoice {
        customer_id: customer.parse::<CustomerId>().expect("customer id"),
        subscription_id: subscription,
        period: Some(Period::new(start, start + Duration::days(30)).expect("period")),
        currency: eur,
        lines: vec![
            InvoiceLine::new(LineKind::Plan, "Gold", Money::new(amount, eur)).expect("line"),
        ],
        status: InvoiceStatus::Open,
    }
}

/// A subscription of the customer with nothing invoiced yet (it is in a trial), for the
/// invoices these tests make through the store.
async fn trialing_subscription(app: &TestApp, m: &TestMerchant, customer: &str) -> SubscriptionId {
    let product = fixtures::product(app, m, json!({})).await;
    let plan = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": "Trial",
            "price": {"amount": 1000, "currency": "EUR"}, "interval": "month", "trial_days": 30}),
        )
        .await
        .expect(201)
        .id();
    let sub = fixtures::subscribe(app, m, customer, &plan).await;
    assert_eq!(sub["status"], "trialing");
    sub["id"]
        .as_str()
        .unwrap()
        .parse()
        .expect("subscription id")
}

/// Creates an open invoice (of no subscription) through the store.
pub(crate) async fn invoice(
    app: &TestApp,
    m: &TestMerchant,
    customer: &str,
    amount: i64,
) -> InvoiceId {
    let mut conn = app.state.app.db.conn().await.expect("conn");
    invoices::create_invoice(
        &mut conn,
        merchant_id(m),
        new_invoice(customer, None, 0, amount),
        app.state.now(),
    )
    .await
    .expect("create invoice")
    .id
}

pub(crate) async fn pay(
    app: &TestApp,
    m: &TestMerchant,
    id: InvoiceId,
) -> (String, Option<String>) {
    let (_, payment) =
        tenure_app::billing::invoices::pay_invoice(&app.state.app, merchant_id(m), id, None)
            .await
            .expect("charge attempt recorded");
    let payment = payment.expect("an amount was due, so the gateway was charged");
    (
        payment.status.as_str().to_owned(),
        payment.failure_code.clone(),
    )
}

#[actix_web::test]
async fn sandbox_tokens_attach_with_the_gateways_card_details() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let expected = [
        ("pm_card_visa", "visa", "4242", false),
        ("pm_card_mastercard", "mastercard", "4444", false),
        ("pm_card_amex", "amex", "8431", false),
        ("pm_card_chargeDeclined", "visa", "0002", false),
        ("pm_card_insufficientFunds", "visa", "9995", false),
        ("pm_card_expired", "visa", "0069", true),
        ("pm_card_processingError", "visa", "0119", false),
    ];
    for (i, (token, brand, last4, expired)) in expected.iter().enumerate() {
        let pm = attach(&app, &m, &cus, token).await;
        assert!(pm["id"].as_str().unwrap().starts_with("pm_"));
        assert_eq!(pm["brand"], *brand, "{token}");
        assert_eq!(pm["last4"], *last4, "{token}");
        assert_eq!(pm["expired"], *expired, "{token}");
        assert_eq!(pm["expiring_soon"], *expired, "{token}");
        assert_eq!(pm["is_default"], i == 0, "only the first becomes default");
        assert!(pm.get("gateway_token").is_none() && pm.get("token").is_none());
    }
    // Unknown tokens are refused; brand and last4 cannot be supplied by the caller.
    for body in [
        json!({"token": "tok_unknown"}),
        json!({"token": ""}),
        json!({"token": "pm_card_visa", "last4": "1234"}),
        json!({"token": "pm_card_visa", "brand": "visa"}),
    ] {
        app.by(&m.key)
            .post(&format!("/v1/customers/{cus}/payment_methods"), &body)
            .await
            .expect_problem(422, "validation_failed");
    }
    let list = app
        .get_ok(&format!("/v1/customers/{cus}/payment_methods"), &m.key)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), expected.len());
    assert_eq!(list["data"][0]["last4"], "0119", "newest first");
    // Another tenant's customer is a 404.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .post(
            &format!("/v1/customers/{cus}/payment_methods"),
            &json!({"token": "pm_card_visa"}),
        )
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn each_sandbox_token_charges_as_documented() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    for (i, (token, status, code)) in [
        ("pm_card_visa", "succeeded", None),
        ("pm_card_mastercard", "succeeded", None),
        ("pm_card_amex", "succeeded", None),
        ("pm_card_chargeDeclined", "declined", Some("card_declined")),
        (
            "pm_card_insufficientFunds",
            "declined",
            Some("insufficient_funds"),
        ),
        ("pm_card_expired", "declined", Some("expired_card")),
        (
            "pm_card_processingError",
            "failed",
            Some("processing_error"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cus = fixtures::customer(&app, &m, &format!("u{i}")).await;
        attach(&app, &m, &cus, token).await;
        let id = invoice(&app, &m, &cus, 1999).await;
        let (got_status, got_code) = pay(&app, &m, id).await;
        assert_eq!(got_status, status, "{token}");
        assert_eq!(got_code.as_deref(), code, "{token}");

        let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
        let paid = status == "succeeded";
        assert_eq!(inv["status"], if paid { "paid" } else { "open" });
        assert_eq!(inv["attempt_count"], 1);
        assert_eq!(inv["amount_paid"]["amount"], if paid { 1999 } else { 0 });
        assert_eq!(inv["total"], json!({"amount": 1999, "currency": "EUR"}));
        assert_eq!(inv["lines"][0]["kind"], "plan");
        assert_eq!(inv["payments"][0]["status"], status);
        assert_eq!(inv["payments"][0]["failure_code"], json!(code));
        assert!(inv["number"].as_i64().unwrap() == i64::try_from(i).unwrap() + 1);

        if !paid {
            // A failed invoice stays open; a retry is a new attempt.
            let (again, _) = pay(&app, &m, id).await;
            assert_eq!(again, status);
            let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
            assert_eq!(inv["attempt_count"], 2);
            assert_eq!(inv["payments"].as_array().unwrap().len(), 2);
        } else {
            // A paid invoice is not charged again.
            let err = tenure_app::billing::invoices::pay_invoice(
                &app.state.app,
                merchant_id(&m),
                id,
                None,
            )
            .await
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    tenure_app::AppError::Conflict {
                        code: "invoice_not_payable",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }
    let events = app.get_ok("/v1/events?type=invoice.paid", &m.key).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 3);
    let payments = app.get_ok("/v1/payments?limit=100", &m.key).await;
    assert_eq!(payments["data"].as_array().unwrap().len(), 3 + 2 * 4);
}

/// A tracing subscriber writing into a buffer, for the logs of one test thread.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const PANS: [&str; 4] = [
    "4242424242424242",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
];

fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[actix_web::test]
async fn card_numbers_are_refused_everywhere_and_never_stored_or_logged() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let token = fixtures::session(&app, &m, &cus).await;
    let product = fixtures::product(&app, &m, json!({})).await;

    let attempts: Vec<(&str, String, String, Value)> = vec![
        // Customer metadata, as a string and as a bare number.
        (
            "POST",
            "/v1/customers".into(),
            m.key.clone(),
            json!({"external_id": "u2", "metadata": {"card": "4242424242424242"}}),
        ),
        (
            "POST",
            "/v1/customers".into(),
            m.key.clone(),
            json!({"external_id": "u3", "metadata": {"card": 5555555555554444u64}}),
        ),
        // A name with spaces between the groups.
        (
            "PATCH",
            format!("/v1/customers/{cus}"),
            m.key.clone(),
            json!({"name": "Ada 3782 822463 10005"}),
        ),
        // Deeply nested, dashes.
        (
            "PATCH",
            format!("/v1/customers/{cus}"),
            m.key.clone(),
            json!({"metadata": {"a": [{"b": {"c": ["x", "6011-1111-1111-1117"]}}]}}),
        ),
        // In an object key.
        (
            "PATCH",
            format!("/v1/customers/{cus}"),
            m.key.clone(),
            json!({"metadata": {"4242 4242 4242 4242": "card"}}),
        ),
        // The payment method token field, merchant and portal.
        (
            "POST",
            format!("/v1/customers/{cus}/payment_methods"),
            m.key.clone(),
            json!({"token": "4242424242424242"}),
        ),
        (
            "POST",
            "/v1/portal/payment_methods".into(),
            token.clone(),
            json!({"token": "5555 5555 5555 4444", "set_default": true}),
        ),
        // Another resource entirely.
        (
            "POST",
            "/v1/products".into(),
            m.key.clone(),
            json!({"name": "Card 378282246310005", "portal_policy": {}}),
        ),
        (
            "PATCH",
            format!("/v1/products/{product}"),
            m.key.clone(),
            json!({"description": "6011111111111117"}),
        ),
    ];
    for (method, path, credential, body) in &attempts {
        let res = app
            .request(method.parse().unwrap(), path)
            .bearer(credential)
            .json(body)
            .send()
            .await
            .expect_problem(422, "card_number_not_allowed");
        let text = String::from_utf8_lossy(&res.raw);
        for pan in PANS {
            assert!(
                !digits_only(&text).contains(pan),
                "{path}: problem echoes the number: {text}"
            );
        }
        assert!(!res.body["errors"].as_array().unwrap().is_empty());
    }
    // The same with an Idempotency-Key, so the idempotency layer sees the body too.
    app.by(&m.key)
        .idempotency_key("pan-1")
        .post(
            "/v1/customers",
            &json!({"external_id": "u9", "email": "4242424242424242@example.com"}),
        )
        .await
        .expect_problem(422, "card_number_not_allowed");
    // Raw JSON the parser cannot represent exactly, and broken JSON.
    for raw in [
        r#"{"external_id": "u5", "metadata": {"n": -4242424242424242.5e0}}"#,
        r#"{"external_id": "u6", "name": 4242424242424242"#,
    ] {
        app.post("/v1/customers")
            .bearer(&m.key)
            .raw("application/json", raw)
            .send()
            .await
            .expect_problem(422, "card_number_not_allowed");
    }
    // The customer is untouched.
    let after = app.get_ok(&format!("/v1/customers/{cus}"), &m.key).await;
    assert_eq!(after["metadata"], json!({}));

    // Nothing of it reached the database: dump all of it.
    let dump = app.db.dump_data();
    assert!(
        dump.contains("u1@example.com"),
        "the dump has the test's data"
    );
    let squashed = dump.replace([' ', '-'], "");
    for pan in PANS {
        assert!(!squashed.contains(pan), "the database holds {pan}");
        // bytea columns (stored idempotent responses) are dumped as hex.
        assert!(
            !squashed.contains(&fixtures::hex(pan)),
            "the database holds {pan} as bytes"
        );
    }
    // The refused idempotent request was remembered (its problem, not its body).
    assert_eq!(
        app.count("SELECT count(*) AS n FROM idempotency_keys WHERE response_status = 422")
            .await,
        1
    );

    // Nor the logs (the request log line of every refused request was written).
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("card_number") || logs.contains("status=422"),
        "logs were captured: {logs}"
    );
    let squashed = logs.replace([' ', '-'], "");
    for pan in PANS {
        assert!(!squashed.contains(pan), "the logs hold {pan}");
    }
}

#[actix_web::test]
async fn default_and_removal_rules() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let token = fixtures::session(&app, &m, &cus).await;
    let visa = fixtures::attach_card(&app, &m, &cus, "pm_card_visa").await;
    // The portal adds a second card and makes it the default.
    let mc = app
        .by(&token)
        .post(
            "/v1/portal/payment_methods",
            &json!({"token": "pm_card_mastercard", "set_default": true}),
        )
        .await
        .expect(201);
    assert_eq!(mc.body["is_default"], true);
    let mc = mc.id();
    let defaults = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pm| pm["is_default"] == true)
            .map(fixtures::id)
            .collect()
    };
    let list = app.get_ok("/v1/portal/payment_methods", &token).await;
    assert_eq!(defaults(&list), [mc.as_str()]);

    // Set default back to visa (merchant route).
    let res = app
        .by(&m.key)
        .post_empty(&format!(
            "/v1/customers/{cus}/payment_methods/{visa}/set_default"
        ))
        .await
        .expect(200);
    assert_eq!(res.body["is_default"], true);
    let list = app
        .get_ok(&format!("/v1/customers/{cus}/payment_methods"), &m.key)
        .await;
    assert_eq!(defaults(&list), [visa.as_str()]);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payment_methods WHERE is_default")
            .await,
        1
    );

    // Removing the default promotes the remaining card.
    app.by(&token)
        .delete(&format!("/v1/portal/payment_methods/{visa}"))
        .await
        .expect(200);
    let list = app.get_ok("/v1/portal/payment_methods", &token).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(defaults(&list), [mc.as_str()]);
    // A removed card is gone: no default, no second removal.
    app.by(&token)
        .post_empty(&format!("/v1/portal/payment_methods/{visa}/set_default"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .delete(&format!("/v1/customers/{cus}/payment_methods/{visa}"))
        .await
        .expect_problem(404, "resource_missing");

    // Another customer's card is invisible to this customer's portal.
    let other = fixtures::customer(&app, &m, "u2").await;
    let theirs = fixtures::attach_card(&app, &m, &other, "pm_card_amex").await;
    app.by(&token)
        .delete(&format!("/v1/portal/payment_methods/{theirs}"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .post_empty(&format!(
            "/v1/customers/{cus}/payment_methods/{theirs}/set_default"
        ))
        .await
        .expect_problem(404, "resource_missing");
    // Malformed ids are 404s, wrong credentials 403s.
    app.by(&token)
        .delete("/v1/portal/payment_methods/not-an-id")
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .get("/v1/portal/payment_methods")
        .await
        .expect_problem(403, "merchant_key_not_allowed");

    // Without a renewing subscription (none exist on this branch) the last card may go.
    app.by(&m.key)
        .delete(&format!("/v1/customers/{cus}/payment_methods/{mc}"))
        .await
        .expect(200);
    let list = app.get_ok("/v1/portal/payment_methods", &token).await;
    assert_eq!(list["data"], json!([]));

    for (event, n) in [
        ("payment_method.attached", 3),
        ("payment_method.detached", 2),
    ] {
        let res = app
            .get_ok(&format!("/v1/events?type={event}"), &m.key)
            .await;
        assert_eq!(res["data"].as_array().unwrap().len(), n, "{event}");
    }
    let updated = app
        .by(&m.key)
        .get("/v1/events?type=payment_method.updated&limit=100")
        .await
        .expect(200);
    let updated = updated.body["data"].as_array().unwrap();
    assert!(
        updated.len() >= 4,
        "default changes are events: {updated:?}"
    );
    assert!(
        updated
            .iter()
            .all(|e| e["data"]["previous_attributes"]["is_default"].is_boolean())
    );
}

#[actix_web::test]
async fn invoice_numbers_have_no_gaps_under_concurrent_creation() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let merchant = merchant_id(&m);
    // 20 distinct invoices and, racing with them, 5 duplicates of one period that must
    // fail without burning a number.
    let contested = Some(trialing_subscription(&app, &m, &cus).await);
    let mut jobs = Vec::new();
    for i in 0..25 {
        let (subscription, offset) = if i < 20 { (None, i) } else { (contested, 100) };
        let new = new_invoice(&cus, subscription, offset, 1000 + i);
        let url = app.db.url.clone();
        let now = app.state.now();
        jobs.push(async move {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(&url)
                .await
                .expect("connect");
            invoices::create_invoice(&mut conn, merchant, new, now).await
        });
    }
    let results = futures_util::future::join_all(jobs).await;
    let mut numbers: Vec<i64> = Vec::new();
    let mut conflicts = 0;
    for result in results {
        match result {
            Ok(inv) => numbers.push(inv.number),
            Err(StoreError::Conflict { constraint }) => {
                assert_eq!(constraint, SUBSCRIPTION_PERIOD_UNIQUE);
                conflicts += 1;
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(conflicts, 4, "one of the five duplicates wins");
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=21).collect::<Vec<i64>>());
    // Over HTTP too, every number once.
    let res = app.get_ok("/v1/invoices?limit=100", &m.key).await;
    let mut seen: Vec<i64> = res["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=21).collect::<Vec<i64>>());
    // Another merchant counts from 1.
    let other = app.merchant("B").await;
    let other_cus = fixtures::customer(&app, &other, "x").await;
    let mut conn = app.state.app.db.conn().await.unwrap();
    let first = invoices::create_invoice(
        &mut conn,
        merchant_id(&other),
        new_invoice(&other_cus, None, 0, 5),
        app.state.now(),
    )
    .await
    .unwrap();
    assert_eq!(first.number, 1);
}

#[actix_web::test]
async fn a_second_invoice_for_the_same_period_is_a_conflict() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let sub = Some(trialing_subscription(&app, &m, &cus).await);
    let mut conn = app.state.app.db.conn().await.unwrap();
    let now = app.state.now();
    let first = invoices::create_invoice(
        &mut conn,
        merchant_id(&m),
        new_invoice(&cus, sub, 0, 100),
        now,
    )
    .await
    .unwrap();
    assert_eq!(first.number, 1);
    let again = invoices::create_invoice(
        &mut conn,
        merchant_id(&m),
        new_invoice(&cus, sub, 0, 100),
        now,
    )
    .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict { constraint }) if constraint == SUBSCRIPTION_PERIOD_UNIQUE),
        "{again:?}"
    );
    // The next period is fine, and takes the next number: the conflict left no gap.
    let next = invoices::create_invoice(
        &mut conn,
        merchant_id(&m),
        new_invoice(&cus, sub, 30, 100),
        now,
    )
    .await
    .unwrap();
    assert_eq!(next.number, 2);
    assert_eq!(app.count("SELECT count(*) AS n FROM invoices").await, 2);
}

#[actix_web::test]
async fn refunds_never_exceed_what_was_paid() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    attach(&app, &m, &cus, "pm_card_visa").await;
    let id = invoice(&app, &m, &cus, 1000).await;
    let path = format!("/v1/invoices/{id}/refund");
    let refund = async |body: Value| app.by(&m.key).post(&path, &body).await;

    // Not paid yet.
    refund(json!({}))
        .await
        .expect_problem(409, "invoice_not_paid");
    assert_eq!(pay(&app, &m, id).await.0, "succeeded");

    let part = refund(json!({"amount": 300, "reason": "requested_by_customer"}))
        .await
        .expect(201);
    assert!(
        part.body["refund"]["id"]
            .as_str()
            .unwrap()
            .starts_with("re_")
    );
    assert_eq!(
        part.body["refund"]["amount"],
        json!({"amount": 300, "currency": "EUR"})
    );
    assert_eq!(part.body["invoice"]["amount_refunded"]["amount"], 300);
    assert_eq!(part.body["invoice"]["status"], "paid");

    for bad in [
        json!({"amount": 701}),
        json!({"amount": 0}),
        json!({"amount": -5}),
    ] {
        refund(bad).await.expect_problem(422, "validation_failed");
    }
    // Five concurrent refunds of 300 against the 700 left: at most two succeed.
    let requests = (0..5).map(|_| refund(json!({"amount": 300})));
    let results = futures_util::future::join_all(requests).await;
    let ok = results.iter().filter(|r| r.status.as_u16() == 201).count();
    assert!(ok <= 2, "{ok} refunds of 300 out of 700");
    for r in &results {
        assert!([201, 409, 422].contains(&r.status.as_u16()), "{:?}", r.body);
    }
    // The rest, in full.
    let rest = refund(json!({})).await.expect(201);
    assert_eq!(rest.body["invoice"]["amount_refunded"]["amount"], 1000);
    refund(json!({}))
        .await
        .expect_problem(409, "invoice_fully_refunded");

    let inv = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
    let refunded: i64 = inv["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"]["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(refunded, 1000);
    assert_eq!(inv["payments"][0]["amount_refunded"]["amount"], 1000);
    assert_eq!(
        app.count("SELECT coalesce(sum(amount), 0)::bigint AS n FROM refunds")
            .await,
        1000
    );
    let events = app
        .get_ok("/v1/events?type=invoice.refunded&limit=100", &m.key)
        .await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        inv["refunds"].as_array().unwrap().len()
    );
    // Unknown and other tenants' invoices are 404s.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .post(&path, &json!({}))
        .await
        .expect_problem(404, "resource_missing");
}

/// The ids of a whole list, walked one item per page through `next_cursor`; `query`
/// is the path with its filters (`/v1/invoices?status=open`).
async fn ids_page_by_page(app: &TestApp, query: &str, credential: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .get_ok(&format!("{query}&limit=1{after}"), credential)
            .await;
        ids.extend(page["data"].as_array().unwrap().iter().map(fixtures::id));
        if page["has_more"] != true {
            return ids;
        }
        after = format!("&starting_after={}", page["next_cursor"].as_str().unwrap());
    }
}

/// Merchant A with customers ada and bob, and merchant B with carol.
struct TwoTenants {
    m: TestMerchant,
    other: TestMerchant,
    ada: String,
    bob: String,
    carol: String,
}

async fn two_tenants(app: &TestApp) -> TwoTenants {
    let m = app.merchant("A").await;
    let other = app.merchant("B").await;
    let ada = fixtures::customer(app, &m, "ada").await;
    let bob = fixtures::customer(app, &m, "bob").await;
    let carol = fixtures::customer(app, &other, "carol").await;
    TwoTenants {
        m,
        other,
        ada,
        bob,
        carol,
    }
}

/// A `created_from`/`created_to` window lists exactly its invoices, newest first,
/// combined with the other filters and across pages; a page of several reads each
/// invoice in full, as `GET /v1/invoices/{id}` does, and another merchant's invoices
/// stay out.
#[actix_web::test]
async fn a_created_window_lists_exactly_its_invoices_newest_first_across_pages() {
    let app = TestApp::new().await;
    let TwoTenants {
        m,
        other,
        ada,
        bob,
        carol,
    } = two_tenants(&app).await;
    let start = app.state.now();
    let mut made = Vec::new();
    for day in 0..6_i64 {
        app.clock.advance_to(start + Duration::days(10 * day));
        let who = if day % 2 == 0 { &ada } else { &bob };
        let id = invoice(&app, &m, who, 100 + day).await;
        // A charge schedule on some, so the page's read of it is checked too.
        if day % 2 == 1 {
            app.exec(format!(
                "UPDATE invoices SET next_payment_attempt_at = created_at + interval '1 day' \
                 WHERE id = '{}'",
                id.uuid()
            ))
            .await;
        }
        made.push(id.to_string());
        invoice(&app, &other, &carol, 900 + day).await;
    }
    let iso = |days: i64| {
        (start + Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let list = |query: String| {
        let app = &app;
        let key = m.key.clone();
        async move { ids_page_by_page(app, &format!("/v1/invoices?{query}"), &key).await }
    };
    // Days 10, 20 and 30 fall in [5, 35): newest first, one per page.
    let window = format!("created_from={}&created_to={}", iso(5), iso(35));
    assert_eq!(
        list(window.clone()).await,
        [made[3].clone(), made[2].clone(), made[1].clone()]
    );
    // The bounds: from is inclusive, to exclusive.
    assert_eq!(
        list(format!("created_from={}&created_to={}", iso(10), iso(20))).await,
        [made[1].clone()]
    );
    // Combined with a customer and a status.
    assert_eq!(
        list(format!("{window}&customer_id={ada}")).await,
        [made[2].clone()]
    );
    assert_eq!(list(format!("{window}&status=open")).await.len(), 3);
    assert!(list(format!("{window}&status=paid")).await.is_empty());
    // Only one bound.
    assert_eq!(
        list(format!("created_from={}", iso(40))).await,
        [made[5].clone(), made[4].clone()]
    );
    assert_eq!(
        list(format!("created_to={}", iso(10))).await,
        [made[0].clone()]
    );
    // Pages of two: in order, each invoice whole (lines, totals, schedule), the cursor
    // the page's last id.
    let first = app
        .by(&m.key)
        .get(&format!("/v1/invoices?limit=2&{window}"))
        .await
        .expect(200);
    assert_eq!(first.body["has_more"], true);
    assert_eq!(first.body["next_cursor"], made[2].as_str());
    let second = app
        .by(&m.key)
        .get(&format!(
            "/v1/invoices?limit=2&{window}&starting_after={}",
            made[2]
        ))
        .await
        .expect(200);
    assert_eq!(second.body["has_more"], false);
    let listed: Vec<Value> = [first, second]
        .iter()
        .flat_map(|p| p.body["data"].as_array().unwrap().clone())
        .collect();
    let ids: Vec<&str> = listed.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [&made[3], &made[2], &made[1]]);
    for (listed, day) in listed.iter().zip([3_i64, 2, 1]) {
        assert_eq!(listed["total"]["amount"], 100 + day);
        assert_eq!(listed["lines"][0]["amount"]["amount"], 100 + day);
        assert_eq!(listed["next_payment_attempt_at"].is_null(), day % 2 == 0);
        let mut one = app
            .get_ok(
                &format!("/v1/invoices/{}", listed["id"].as_str().unwrap()),
                &m.key,
            )
            .await;
        let one = one.as_object_mut().unwrap();
        one.remove("payments");
        one.remove("refunds");
        assert_eq!(listed, &Value::Object(one.clone()));
    }
}

/// Invoices list by creation time, not by id (an invoice's `created_at` is the billing
/// clock's, which need not follow the order its id was minted in); equal times fall back
/// to the id, across pages too. A cursor that names nothing in the list is refused rather
/// than answered with an empty page, while the last item's cursor ends the list quietly.
#[actix_web::test]
async fn invoices_list_by_creation_time_and_refuse_a_cursor_outside_the_list() {
    let app = TestApp::new().await;
    let TwoTenants {
        m,
        other,
        ada,
        bob,
        carol,
    } = two_tenants(&app).await;
    let [a, b, c] = [
        invoice(&app, &m, &ada, 100).await,
        invoice(&app, &m, &ada, 200).await,
        invoice(&app, &m, &ada, 300).await,
    ];
    let elsewhere = invoice(&app, &other, &carol, 400).await;
    // Minted a < b < c; created b = c < a.
    let start = app.state.now();
    for (id, days) in [(a, 2), (b, 1), (c, 1)] {
        app.exec(format!(
            "UPDATE invoices SET created_at = '{}' WHERE id = '{}'",
            (start + Duration::days(days)).to_rfc3339(),
            id.uuid()
        ))
        .await;
    }
    let newest_first = [a.to_string(), c.to_string(), b.to_string()];
    assert_eq!(
        ids_page_by_page(&app, "/v1/invoices?", &m.key).await,
        newest_first
    );
    assert_eq!(
        ids_page_by_page(&app, "/v1/invoices?status=open", &m.key).await,
        newest_first
    );
    let ada_session = fixtures::session(&app, &m, &ada).await;
    assert_eq!(
        ids_page_by_page(&app, "/v1/portal/invoices?", &ada_session).await,
        newest_first
    );
    let window = format!(
        "/v1/invoices?created_from={}&created_to={}",
        (start + Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (start + Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let in_window = app.get_ok(&window, &m.key).await;
    let ids: Vec<&str> = in_window["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [c.to_string(), b.to_string()]);

    // After the last item: an empty page, not an error.
    let end = app
        .get_ok(&format!("/v1/invoices?starting_after={b}"), &m.key)
        .await;
    assert_eq!(end["data"], json!([]));
    assert_eq!(end["has_more"], false);
    // Another merchant's invoice, one that never existed, and (in the portal) another
    // customer's invoice name nothing in the list.
    let bob_session = fixtures::session(&app, &m, &bob).await;
    for (path, credential) in [
        (format!("/v1/invoices?starting_after={elsewhere}"), &m.key),
        (
            format!("/v1/invoices?starting_after={}", InvoiceId::generate()),
            &m.key,
        ),
        (
            format!("/v1/invoices?customer_id={bob}&starting_after={a}"),
            &m.key,
        ),
        (
            format!("/v1/portal/invoices?starting_after={a}"),
            &bob_session,
        ),
    ] {
        let refused = app
            .by(credential)
            .get(&path)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(
            refused.body["errors"][0]["field"], "starting_after",
            "{path}"
        );
    }
}

#[actix_web::test]
async fn invoices_are_listed_filtered_and_private_to_their_customer() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let bob = fixtures::customer(&app, &m, "bob").await;
    attach(&app, &m, &ada, "pm_card_visa").await;
    attach(&app, &m, &bob, "pm_card_chargeDeclined").await;
    let ada_inv = invoice(&app, &m, &ada, 500).await;
    let bob_inv = invoice(&app, &m, &bob, 700).await;
    pay(&app, &m, ada_inv).await;
    pay(&app, &m, bob_inv).await;

    let ids = |r: &tenure_e2e::Response| fixtures::ids(&r.body);
    let paid = app
        .by(&m.key)
        .get("/v1/invoices?status=paid")
        .await
        .expect(200);
    assert_eq!(ids(&paid), [ada_inv.to_string()]);
    let by_customer = app
        .by(&m.key)
        .get(&format!("/v1/invoices?customer_id={bob}"))
        .await
        .expect(200);
    assert_eq!(ids(&by_customer), [bob_inv.to_string()]);
    let all = app
        .get_ok(
            "/v1/invoices?created_from=2000-01-01T00:00:00Z&limit=1",
            &m.key,
        )
        .await;
    assert_eq!(all["has_more"], true);
    let cursor = all["next_cursor"].as_str().unwrap();
    let second = app
        .get_ok(
            &format!("/v1/invoices?limit=1&starting_after={cursor}"),
            &m.key,
        )
        .await;
    assert_eq!(second["has_more"], false);
    let none = app
        .by(&m.key)
        .get("/v1/invoices?created_to=2000-01-01T00:00:00Z")
        .await
        .expect(200);
    assert_eq!(none.body["data"], json!([]));
    for bad in [
        "status=unpaid",
        "customer_id=prod_01jf9z7q6ve3a8r7m2k4t5n6bc",
        "created_from=yesterday",
        "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
    ] {
        app.by(&m.key)
            .get(&format!("/v1/invoices?{bad}"))
            .await
            .expect_problem(422, "validation_failed");
    }

    let token = fixtures::session(&app, &m, &ada).await;
    let mine = app.by(&token).get("/v1/portal/invoices").await.expect(200);
    assert_eq!(ids(&mine), [ada_inv.to_string()]);
    let one = app
        .get_ok(&format!("/v1/portal/invoices/{ada_inv}"), &token)
        .await;
    assert_eq!(one["payments"][0]["status"], "succeeded");
    app.by(&token)
        .get(&format!("/v1/portal/invoices/{bob_inv}"))
        .await
        .expect_problem(404, "resource_missing");
    let payments = app.by(&token).get("/v1/portal/payments").await.expect(200);
    assert_eq!(payments.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(payments.body["data"][0]["invoice_id"], ada_inv.to_string());
    let bob_payments = app
        .get_ok(&format!("/v1/payments?customer_id={bob}"), &m.key)
        .await;
    assert_eq!(bob_payments["data"][0]["failure_code"], "card_declined");
    // Another tenant sees none of it.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .get(&format!("/v1/invoices/{ada_inv}"))
        .await
        .expect_problem(404, "resource_missing");
    let theirs = app.get_ok("/v1/invoices", &other.key).await;
    assert_eq!(theirs["data"], json!([]));
}

#[actix_web::test]
async fn cards_expiring_within_30_days_are_flagged() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    attach(&app, &m, &cus, "pm_card_visa").await; // 12/2034
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .expect("date")
            .with_timezone(&Utc)
    };
    let flags = |body: &Value| {
        (
            body["data"][0]["expired"].clone(),
            body["data"][0]["expiring_soon"].clone(),
        )
    };
    let path = format!("/v1/customers/{cus}/payment_methods");
    let res = app.get_ok(&path, &m.key).await;
    assert_eq!(flags(&res), (json!(false), json!(false)));
    app.clock.advance_to(at("2034-12-02T00:00:00Z"));
    let res = app.get_ok(&path, &m.key).await;
    assert_eq!(
        flags(&res),
        (json!(false), json!(true)),
        "valid through Dec 31st"
    );
    app.clock.advance_to(at("2035-01-01T00:00:00Z"));
    let res = app.get_ok(&path, &m.key).await;
    assert_eq!(flags(&res), (json!(true), json!(true)));
}

#[actix_web::test]
async fn an_invoice_with_nothing_due_is_paid_without_a_charge() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cus = fixtures::customer(&app, &m, "u1").await;
    let eur = "EUR".parse().expect("EUR");
    let mut new = new_invoice(&cus, None, 0, 1000);
    new.lines.push(
        InvoiceLine::new(LineKind::Discount, "100% off", Money::new(-1000, eur)).expect("line"),
    );
    let mut conn = app.state.app.db.conn().await.unwrap();
    let inv = invoices::create_invoice(&mut conn, merchant_id(&m), new, app.state.now())
        .await
        .unwrap();
    // No payment method needed, no payment recorded.
    let (paid, payment) =
        tenure_app::billing::invoices::pay_invoice(&app.state.app, merchant_id(&m), inv.id, None)
            .await
            .unwrap();
    assert!(payment.is_none());
    assert_eq!(paid.status, InvoiceStatus::Paid);
    let res = app
        .get_ok(&format!("/v1/invoices/{}", inv.id), &m.key)
        .await;
    assert_eq!(res["discount"]["amount"], -1000);
    assert_eq!(res["amount_due"]["amount"], 0);
    assert_eq!(res["status"], "paid");
    assert_eq!(res["payments"], json!([]));
}

#[actix_web::test]
async fn the_last_payment_method_of_a_renewing_subscription_stays() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let cus = fixtures::customer(&app, &m, "c1").await;
    let pm = fixtures::attach_card(&app, &m, &cus, "pm_card_visa").await;
    let sub = fixtures::subscribe_id(&app, &m, &cus, &plan).await;
    app.by(&m.key)
        .delete(&format!("/v1/customers/{cus}/payment_methods/{pm}"))
        .await
        .expect_problem(409, "last_payment_method");
    fixtures::cancel(&app, &m, &sub, json!({"timing": "now"})).await;
    app.by(&m.key)
        .delete(&format!("/v1/customers/{cus}/payment_methods/{pm}"))
        .await
        .expect(200);
}

/// The portal's invoice list takes the merchant's filters that make sense for one
/// customer: subscription, status and creation window; `customer_id` is not one of them.
#[actix_web::test]
async fn the_portal_filters_a_customers_invoices() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let catalog = fixtures::catalog(&app, &m, json!({})).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    // Subscribed before the card is added, so that the first invoices stay open (a signup
    // with a card pays in the request).
    let base = fixtures::subscribe_id(&app, &m, &ada, &catalog.base).await;
    let premium = fixtures::subscribe_id(&app, &m, &ada, &catalog.premium).await;
    fixtures::attach_default(&app, &m, &ada, "pm_card_visa").await;
    let invoices = fixtures::invoices_of(&app, &m, &ada).await;
    assert_eq!(invoices.len(), 2);
    let invoice_of = |sub: &str| {
        invoices
            .iter()
            .find(|i| i["subscription_id"] == sub)
            .map(fixtures::id)
            .expect("an invoice of the subscription")
    };
    // One paid, one still open (it waits for the collection round).
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{}/pay", invoice_of(&base)))
        .await
        .expect(200);
    let token = fixtures::session(&app, &m, &ada).await;
    let list = async |query: &str| {
        fixtures::ids(
            &app.by(&token)
                .get(&format!("/v1/portal/invoices?{query}"))
                .await
                .expect(200)
                .body,
        )
    };
    assert_eq!(
        list(&format!("subscription_id={base}")).await,
        [invoice_of(&base)]
    );
    assert_eq!(
        list(&format!("subscription_id={premium}")).await,
        [invoice_of(&premium)]
    );
    assert_eq!(list("status=paid").await, [invoice_of(&base)]);
    assert_eq!(list("status=open").await, [invoice_of(&premium)]);
    assert_eq!(list("status=void").await, Vec::<String>::new());
    assert_eq!(
        list("created_to=2000-01-01T00:00:00Z").await,
        Vec::<String>::new()
    );
    assert_eq!(list("created_from=2000-01-01T00:00:00Z").await.len(), 2);
    // Another customer's subscription filters to nothing of theirs.
    let bob = fixtures::customer(&app, &m, "bob").await;
    fixtures::attach_default(&app, &m, &bob, "pm_card_visa").await;
    let bobs = fixtures::subscribe_id(&app, &m, &bob, &catalog.base).await;
    assert_eq!(
        list(&format!("subscription_id={bobs}")).await,
        Vec::<String>::new()
    );
    for bad in [
        "status=unpaid",
        "subscription_id=cus_01jf9z7q6ve3a8r7m2k4t5n6bc",
        &format!("customer_id={bob}"),
        "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
    ] {
        app.by(&token)
            .get(&format!("/v1/portal/invoices?{bad}"))
            .await
            .expect_problem(422, "validation_failed");
    }
}

/// A customer whose default card declines, with `n` open invoices of one subscription
/// (one per period) waiting for their next retry in three days, and a working card
/// attached but not the default. Returns the merchant, the customer, the working card
/// and the invoices.
async fn open_invoices_and_a_spare_card(
    app: &TestApp,
    n: i64,
    amount: i64,
) -> (TestMerchant, String, String, Vec<InvoiceId>) {
    let m = app.merchant("A").await;
    let cus = fixtures::customer(app, &m, "c1").await;
    fixtures::attach_card(app, &m, &cus, "pm_card_chargeDeclined").await;
    let visa = fixtures::attach_card(app, &m, &cus, "pm_card_visa").await;
    let sub = Some(trialing_subscription(app, &m, &cus).await);
    let mut conn = app.state.app.db.conn().await.expect("conn");
    let mut ids = Vec::new();
    for period in 0..n {
        let invoice = invoices::create_invoice(
            &mut conn,
            merchant_id(&m),
            new_invoice(&cus, sub, period * 30, amount),
            app.state.now(),
        )
        .await
        .expect("create invoice");
        ids.push(invoice.id);
    }
    let retry_at = app.state.now() + Duration::days(3);
    tenure_store::repo::renewals::schedule_attempts(
        &mut conn,
        merchant_id(&m),
        &ids,
        Some(retry_at),
    )
    .await
    .expect("schedule");
    (m, cus, visa, ids)
}

/// After the engine's round: every invoice paid by exactly one charge of `amount`.
async fn assert_each_paid_once(app: &TestApp, n: i64, amount: i64) {
    tenure_engine::renewals::run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("collection round");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices WHERE status = 'paid'")
            .await,
        n
    );
    assert_eq!(
        app.count("SELECT coalesce(sum(amount_paid), 0)::bigint AS n FROM invoices")
            .await,
        n * amount
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded'")
            .await,
        n
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM (SELECT invoice_id FROM payments \
             GROUP BY invoice_id HAVING count(*) > 1) AS twice"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM events WHERE event_type = 'invoice.paid'")
            .await,
        n
    );
}

#[actix_web::test]
async fn a_new_default_card_hands_the_open_invoices_to_the_next_collection_round() {
    let app = TestApp::new().await;
    let (m, cus, visa, ids) = open_invoices_and_a_spare_card(&app, 3, 1999).await;
    app.by(&m.key)
        .post_empty(&format!(
            "/v1/customers/{cus}/payment_methods/{visa}/set_default"
        ))
        .await
        .expect(200);
    // The request charged nothing: every open invoice is due now instead of in 3 days.
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);
    let now = app.state.now();
    for id in &ids {
        let invoice = app.get_ok(&format!("/v1/invoices/{id}"), &m.key).await;
        assert_eq!(invoice["status"], "open", "{invoice}");
        assert_eq!(invoice["attempt_count"], 0, "{invoice}");
        let due: chrono::DateTime<Utc> = invoice["next_payment_attempt_at"]
            .as_str()
            .expect("a next attempt")
            .parse()
            .expect("a time");
        assert!(due <= now, "{invoice}");
    }
    // The next round charges each one, once, with the new default card.
    assert_each_paid_once(&app, 3, 1999).await;
}

/// Not a timed assertion: prints how long setting a default card takes with 330 open
/// invoices (run with `--no-capture`), and checks each is paid exactly once after the
/// next collection round.
#[actix_web::test]
async fn setting_a_default_card_with_330_open_invoices() {
    const N: i64 = 330;
    let app = TestApp::new().await;
    let (m, cus, visa, _) = open_invoices_and_a_spare_card(&app, N, 1999).await;
    let path = format!("/v1/customers/{cus}/payment_methods/{visa}/set_default");
    let started = std::time::Instant::now();
    app.by(&m.key).post_empty(&path).await.expect(200);
    println!(
        "set_default with {N} open invoices answered in {:?}",
        started.elapsed()
    );
    assert_each_paid_once(&app, N, 1999).await;
}
