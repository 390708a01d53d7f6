//! The Stripe connector against `localstripe`, a stateful Stripe emulator the tests start
//! themselves (`tenure_e2e::localstripe`): gateway settings, card collection through a
//! setup intent, renewals charged off session, declines, refunds, and the emulator
//! killed in the middle of a charge batch.

use std::sync::Arc;

use base64::Engine;
use chrono::Duration;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};
use tenure_api::middleware::rate_limit::RateLimitConfig;
use tenure_app::billing::gateways::{GatewayConnector, Gateways};
use tenure_app::secrets::Keyring;
use tenure_domain::billing::gateway::{
    CardDetails, ChargeOutcome, ChargeRequest, GatewayCall, OutcomeUnknown, PaymentGateway,
    RefundOutcome, RefundRequest, sandbox_card_details,
};
use tenure_domain::clock::Clock;
use tenure_e2e::localstripe::{LocalStripe, PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET};
use tenure_e2e::{TestApp, TestDb, TestMerchant};
use tenure_engine::renewals::run_until_idle;
use tenure_engine::stripe::StripeConnector;

use crate::fixtures::{
    self, StripeShop, connect_stripe, id, invoices_of, operator_key, stripe_app, time,
};

const PRICE: i64 = 1999;

async fn round(app: &TestApp) -> usize {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round")
}

/// A customer whose card (test number `number`) was collected the way a frontend does
/// it: a setup intent from Tenure, confirmed at the emulator as Stripe.js would, the
/// resulting payment method attached through the portal. The customer and the answer.
async fn customer_with_card(
    app: &TestApp,
    stripe: &LocalStripe,
    m: &TestMerchant,
    external_id: &str,
    number: &str,
) -> (String, Value) {
    let customer = fixtures::customer(app, m, external_id).await;
    let attached = collect_card(app, stripe, m, &customer, number).await;
    (customer, attached)
}

/// A customer subscribed to `plan` before a card was collected (an `active` subscription
/// whose first invoice is left to the engine, as a renewal's would be), and then the card
/// `number`, which makes that invoice due for the engine's next round.
async fn subscribed_then_card(
    app: &TestApp,
    stripe: &LocalStripe,
    m: &TestMerchant,
    external_id: &str,
    plan: &str,
    number: &str,
) -> (String, String, Value) {
    let customer = fixtures::customer(app, m, external_id).await;
    let sub = fixtures::subscribe(app, m, &customer, plan).await;
    assert_eq!(sub["status"], "active", "{sub}");
    let pm = collect_card(app, stripe, m, &customer, number).await;
    (customer, id(&sub), pm)
}

/// [`customer_with_card`] for an existing customer: the portal's answer.
async fn collect_card(
    app: &TestApp,
    stripe: &LocalStripe,
    m: &TestMerchant,
    customer: &str,
    number: &str,
) -> Value {
    let token = fixtures::session(app, m, customer).await;
    let intent = app
        .by(&token)
        .post_empty("/v1/portal/setup_intents")
        .await
        .expect(201)
        .body;
    assert_eq!(intent["object"], "setup_intent");
    assert_eq!(intent["provider"], "stripe");
    assert_eq!(intent["publishable_key"], PUBLISHABLE_KEY);
    let secret = intent["client_secret"].as_str().unwrap();
    let pm = stripe
        .confirm_setup_intent(intent["id"].as_str().unwrap(), secret, number)
        .await;
    app.by(&token)
        .post("/v1/portal/payment_methods", &json!({"token": pm}))
        .await
        .body
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

async fn texts(app: &TestApp, query: &str) -> Vec<String> {
    let mut conn = app.sql().await;
    diesel::sql_query(query)
        .load::<Text>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .map(|r| r.t)
        .collect()
}

#[actix_web::test]
async fn gateway_settings_are_sealed_never_shown_and_the_sandbox_is_the_default() {
    let Some(stripe) = LocalStripe::start().await else {
        return;
    };
    let app = stripe_app(&stripe).await;
    let m = app.merchant("Settings").await;
    let fresh = app.get_ok("/v1/gateway_settings", &m.key).await;
    assert_eq!(fresh["provider"], "sandbox");
    assert_eq!(fresh["updated_at"], Value::Null);

    // Every missing or malformed key is named at once; nothing is stored.
    let missing = app
        .by(&m.key)
        .put("/v1/gateway_settings", &json!({"provider": "stripe"}))
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<&str> = missing.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["secret_key", "publishable_key"]);
    let mixed = app
        .by(&m.key)
        .put(
            "/v1/gateway_settings",
            &json!({"provider": "stripe", "secret_key": "sk_live_abc",
                "publishable_key": "pk_test_abc", "webhook_secret": "nope"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(mixed.body["errors"].as_array().unwrap().len(), 2);
    app.by(&m.key)
        .put(
            "/v1/gateway_settings",
            &json!({"provider": "sandbox", "secret_key": SECRET_KEY}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_settings")
            .await,
        0
    );

    let set = connect_stripe(&app, &m).await;
    assert_eq!(set["provider"], "stripe");
    assert_eq!(set["secret_key_last4"], "0000");
    assert_eq!(set["webhook_secret_set"], true);
    assert_eq!(set["publishable_key"], PUBLISHABLE_KEY);
    let read = app.get_ok("/v1/gateway_settings", &m.key).await;
    assert_eq!(read, set);
    // Neither the answers nor the table hold a secret in the clear.
    for body in [&set, &read] {
        let text = body.to_string();
        assert!(
            !text.contains(SECRET_KEY) && !text.contains(WEBHOOK_SECRET),
            "{text}"
        );
    }
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM gateway_settings WHERE \
             position(convert_to('sk_test', 'UTF8') in secret_key_sealed) > 0 \
             OR position(convert_to('whsec', 'UTF8') in webhook_secret_sealed) > 0"
        )
        .await,
        0
    );

    // A server without the operator's key refuses to store Stripe keys.
    let keyless = TestApp::new().await;
    let other = keyless.merchant("Keyless").await;
    keyless
        .by(&other.key)
        .put(
            "/v1/gateway_settings",
            &json!({"provider": "stripe", "secret_key": SECRET_KEY,
                "publishable_key": PUBLISHABLE_KEY}),
        )
        .await
        .expect_problem(409, "secrets_key_not_configured");

    let back = app
        .by(&m.key)
        .delete("/v1/gateway_settings")
        .await
        .expect(200)
        .body;
    assert_eq!(back["provider"], "sandbox");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_settings")
            .await,
        0
    );
    // The sandbox takes its tokens again; setup intents are Stripe's.
    let customer = fixtures::customer(&app, &m, "u-sandbox").await;
    fixtures::attach(&app, &m, &customer, "pm_card_visa").await;
    let token = fixtures::session(&app, &m, &customer).await;
    app.by(&token)
        .post_empty("/v1/portal/setup_intents")
        .await
        .expect_problem(409, "setup_intents_not_supported");
}

#[actix_web::test]
async fn a_card_collected_through_a_setup_intent_is_charged_off_session_and_refunded() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Stripe shop").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, pm) = customer_with_card(&app, &stripe, &m, "u-visa", "4242424242424242").await;
    assert_eq!(pm["brand"], "visa", "{pm}");
    assert_eq!(pm["last4"], "4242");
    assert_eq!(pm["exp_year"], 2034);
    assert_eq!(pm["is_default"], true);

    // The gateway customer was made once, and the card is attached to it at Stripe.
    let cus = texts(&app, "SELECT gateway_ref AS t FROM gateway_customers").await;
    assert_eq!(cus.len(), 1);
    assert!(
        !pm.to_string().contains(&cus[0]),
        "the token is never shown: {pm}"
    );
    let token = texts(&app, "SELECT gateway_token AS t FROM payment_methods").await;
    let stripe_pm = token[0].split_once('/').unwrap().1.to_owned();
    let at_stripe = stripe
        .get(&format!("/v1/payment_methods/{stripe_pm}"))
        .await
        .unwrap();
    assert_eq!(at_stripe["customer"], cus[0].as_str());

    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    round(&app).await;
    app.clock
        .advance_to(time(&sub["current_period"]["end"]) + Duration::minutes(1));
    round(&app).await;
    let invoices = invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 2);
    for invoice in &invoices {
        assert_eq!(invoice["status"], "paid", "{invoice}");
    }
    assert_eq!(fixtures::status(&app, &m, &id(&sub)).await, "active");

    // One PaymentIntent per invoice, with the amount, currency, customer and card, and
    // the charge's key.
    let refs = texts(
        &app,
        "SELECT gateway_ref AS t FROM payments ORDER BY created_at",
    )
    .await;
    assert_eq!(refs.len(), 2);
    let intents = stripe.payment_intents().await;
    assert_eq!(intents.len(), 2);
    for (reference, invoice) in refs.iter().zip(&invoices) {
        let pi = intents
            .iter()
            .find(|pi| pi["id"] == reference.as_str())
            .unwrap();
        assert_eq!(pi["status"], "succeeded");
        assert_eq!(pi["amount"], PRICE);
        assert_eq!(pi["currency"], "eur");
        assert_eq!(pi["customer"], cus[0].as_str());
        assert_eq!(pi["payment_method"], stripe_pm.as_str());
        assert_eq!(
            pi["metadata"]["tenure_idempotency_key"],
            format!("{}:1", id(invoice))
        );
    }
    let payments = app
        .get_ok(&format!("/v1/payments?customer_id={customer}"), &m.key)
        .await;
    for payment in payments["data"].as_array().unwrap() {
        assert_eq!(payment["status"], "succeeded");
    }

    // A refund goes through Stripe, against the invoice's PaymentIntent.
    let renewal = id(&invoices[1]);
    let refunded = app
        .by(&m.key)
        .post(
            &format!("/v1/invoices/{renewal}/refund"),
            &json!({"amount": 500}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(refunded["refund"]["amount"]["amount"], 500, "{refunded}");
    assert_eq!(refunded["invoice"]["amount_refunded"]["amount"], 500);
    let refunds = stripe.get("/v1/refunds?limit=100").await.unwrap();
    let refunds = refunds["data"].as_array().unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], 500);
    assert_eq!(refunds[0]["payment_intent"], refs[1].as_str());
    assert_eq!(
        texts(&app, "SELECT gateway_ref AS t FROM refunds").await,
        [refunds[0]["id"].as_str().unwrap()]
    );
}

#[actix_web::test]
async fn a_payment_method_of_another_customer_is_refused() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Owners").await else {
        return;
    };
    let (_alice, _) = customer_with_card(&app, &stripe, &m, "u-alice", "4242424242424242").await;
    let alices_pm = texts(&app, "SELECT gateway_token AS t FROM payment_methods").await[0]
        .split_once('/')
        .unwrap()
        .1
        .to_owned();
    let bob = fixtures::customer(&app, &m, "u-bob").await;
    let token = fixtures::session(&app, &m, &bob).await;
    for (sent, message) in [
        (alices_pm.as_str(), "belongs to another customer"),
        ("pm_doesNotExist123", "not a payment method known"),
        ("pm_card_visa/../x", "must be a payment method id"),
        ("tok_visa", "must be a payment method id"),
    ] {
        let refused = app
            .by(&token)
            .post("/v1/portal/payment_methods", &json!({"token": sent}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "token");
        let text = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(text.contains(message), "{sent}: {text}");
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payment_methods").await,
        1
    );
}

#[actix_web::test]
async fn declined_and_authentication_required_cards_enter_dunning_with_their_codes() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Declines").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    for (external, number, code) in [
        // Attaches, then every charge is declined.
        ("u-declined", "4000000000000341", "card_declined"),
        // Needs the cardholder's authentication on every charge: off session that is
        // Stripe's `authentication_required` decline.
        ("u-3ds", "4000002760003184", "authentication_required"),
    ] {
        // The engine's charge (a signup's own is in `a_signup_whose_first_payment_…`).
        let (customer, sub, pm) =
            subscribed_then_card(&app, &stripe, &m, external, &plan, number).await;
        assert_eq!(pm["last4"], &number[12..], "{pm}");
        round(&app).await;
        let invoice = &invoices_of(&app, &m, &customer).await[0];
        assert_eq!(invoice["status"], "open", "{invoice}");
        assert_eq!(invoice["attempt_count"], 1);
        assert!(
            invoice["next_payment_attempt_at"].is_string(),
            "a retry is scheduled"
        );
        assert_eq!(fixtures::status(&app, &m, &sub).await, "past_due");
        let payments = app
            .get_ok(&format!("/v1/payments?customer_id={customer}"), &m.key)
            .await;
        assert_eq!(payments["data"][0]["status"], "declined");
        assert_eq!(payments["data"][0]["failure_code"], code, "{payments}");
        let failed = fixtures::events(&app, &m, "invoice.payment_failed").await;
        assert!(
            failed
                .iter()
                .any(|e| e["data"]["object"]["id"] == invoice["id"])
        );
    }
}

#[actix_web::test]
async fn localstripe_declines_the_insufficient_funds_card_when_it_is_collected() {
    // localstripe declines 4000000000009995 when the setup intent is confirmed (real
    // Stripe attaches it and declines the charge with `insufficient_funds`, which the
    // client's unit tests cover): the frontend gets the decline, nothing reaches Tenure.
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Funds").await else {
        return;
    };
    let customer = fixtures::customer(&app, &m, "u-poor").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let intent = app
        .by(&token)
        .post_empty("/v1/portal/setup_intents")
        .await
        .expect(201)
        .body;
    let refused = stripe
        .post(
            &format!(
                "/v1/setup_intents/{}/confirm",
                intent["id"].as_str().unwrap()
            ),
            &[
                ("client_secret", intent["client_secret"].as_str().unwrap()),
                ("payment_method_data[type]", "card"),
                ("payment_method_data[card][number]", "4000000000009995"),
                ("payment_method_data[card][exp_month]", "12"),
                ("payment_method_data[card][exp_year]", "2034"),
                ("payment_method_data[card][cvc]", "123"),
            ],
        )
        .await
        .unwrap_err();
    assert!(refused.starts_with("402"), "{refused}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payment_methods").await,
        0
    );
}

#[actix_web::test]
async fn the_emulator_killed_mid_batch_and_restarted_charges_every_invoice_exactly_once() {
    let Some(StripeShop { mut stripe, app, m }) = fixtures::stripe_shop("Outage").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    const N: usize = 12;
    let mut customers = Vec::new();
    for i in 0..N {
        // Subscribed before the card is collected: the engine's batch charges them all.
        let (customer, _, _) = subscribed_then_card(
            &app,
            &stripe,
            &m,
            &format!("u-{i}"),
            &plan,
            "4242424242424242",
        )
        .await;
        customers.push(customer);
    }
    // The batch runs while the emulator is killed after a few charges.
    let worker = app.state.app.clone();
    let now = app.clock.now();
    let batch = actix_web::rt::spawn(async move { run_until_idle(&worker, now).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stripe.payment_intents().await.len() < N / 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no charges reached the emulator"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    stripe.kill();
    batch
        .await
        .unwrap()
        .expect("the round ends without the gateway");
    let paid_before = app
        .count("SELECT count(*) AS n FROM invoices WHERE status = 'paid'")
        .await;
    assert!(paid_before < N as i64, "some charges had no answer");
    // Nothing unknown was recorded as failed: those invoices wait, spoken for.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments WHERE status <> 'succeeded'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        N as i64 - paid_before
    );

    // Back up with what it had; once the leases end, the engine asks again under the same
    // keys and finds the charges that were made.
    stripe.resume().await;
    app.clock
        .advance_to(now + app.state.app.charge_lease + Duration::seconds(1));
    round(&app).await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices WHERE status = 'paid'")
            .await,
        N as i64
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments").await,
        N as i64
    );
    let intents = stripe.payment_intents().await;
    let mut keys: Vec<&str> = intents
        .iter()
        .filter(|pi| pi["status"] == "succeeded")
        .map(|pi| pi["metadata"]["tenure_idempotency_key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "a key charged twice");
    assert_eq!(keys.len(), N, "every invoice charged once at Stripe");
    let refs = texts(&app, "SELECT gateway_ref AS t FROM payments").await;
    for reference in refs {
        assert!(intents.iter().any(|pi| pi["id"] == reference.as_str()));
    }
}

/// Signs `body` as Stripe does (`t=…,v1=HMAC-SHA256(secret, "{t}.{body}")`).
fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = hmac_sha256::HMAC::new(secret.as_bytes());
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

async fn send_event(
    app: &TestApp,
    merchant: &str,
    event: &Value,
    signature: Option<String>,
) -> tenure_e2e::Response {
    let body = serde_json::to_vec(event).unwrap();
    let mut request = app
        .post(&format!("/v1/gateway_events/{merchant}/stripe"))
        .raw("application/json; charset=utf-8", body);
    if let Some(signature) = signature {
        request = request.header("stripe-signature", &signature);
    }
    request.send().await
}

async fn signed_event(app: &TestApp, merchant: &str, event: &Value) -> tenure_e2e::Response {
    let body = serde_json::to_vec(event).unwrap();
    let t = app.clock.now().timestamp();
    send_event(
        app,
        merchant,
        event,
        Some(stripe_signature(WEBHOOK_SECRET, t, &body)),
    )
    .await
}

#[actix_web::test]
async fn stripe_events_are_verified_applied_once_and_unknown_ones_acknowledged() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Events").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, pm) =
        customer_with_card(&app, &stripe, &m, "u-events", "4242424242424242").await;
    fixtures::subscribe(&app, &m, &customer, &plan).await;
    round(&app).await;
    let invoice = invoices_of(&app, &m, &customer).await[0].clone();
    assert_eq!(invoice["status"], "paid");
    let pi = texts(&app, "SELECT gateway_ref AS t FROM payments").await[0].clone();
    let stripe_pm = texts(&app, "SELECT gateway_token AS t FROM payment_methods").await[0]
        .split_once('/')
        .unwrap()
        .1
        .to_owned();

    // Forged, stale and unsigned events are refused before anything is read.
    let dispute = json!({"id": "evt_dispute_1", "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "payment_intent": pi,
            "amount": PRICE, "reason": "fraudulent", "status": "needs_response"}}});
    let body = serde_json::to_vec(&dispute).unwrap();
    let now = app.clock.now().timestamp();
    for signature in [
        None,
        Some(stripe_signature("whsec_forged", now, &body)),
        Some(stripe_signature(WEBHOOK_SECRET, now - 301, &body)),
        Some(format!("t={now},v1=00")),
    ] {
        send_event(&app, &m.id, &dispute, signature)
            .await
            .expect_problem(400, "signature_invalid");
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_events").await,
        0
    );
    // Another merchant's endpoint does not take this merchant's events; an unknown or
    // sandbox merchant has none.
    let other = app.merchant("Sandbox only").await;
    signed_event(&app, &other.id, &dispute)
        .await
        .expect_problem(404, "resource_missing");

    // Applied once: a dispute is recorded and announced.
    let first = signed_event(&app, &m.id, &dispute).await.expect(200);
    assert_eq!(
        first.body,
        json!({"received": true, "duplicate": false, "handled": true})
    );
    let replay = signed_event(&app, &m.id, &dispute).await.expect(200);
    assert_eq!(replay.body["duplicate"], true);
    let disputed = fixtures::events(&app, &m, "payment.disputed").await;
    assert_eq!(disputed.len(), 1);
    let data = &disputed[0]["data"]["object"];
    assert_eq!(data["id"], "dp_1");
    assert_eq!(data["invoice_id"], invoice["id"]);
    assert_eq!(data["reason"], "fraudulent");
    assert_eq!(data["amount"]["amount"], PRICE);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_disputes")
            .await,
        1
    );

    // A refund made in the Stripe dashboard is recorded on the invoice, once.
    let refunded = json!({"id": "evt_refund_1", "type": "charge.refunded",
        "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": pi,
            "amount": PRICE, "amount_refunded": 700,
            "refunds": {"data": [{"id": "re_dashboard_1", "amount": 700}]}}}});
    signed_event(&app, &m.id, &refunded).await.expect(200);
    signed_event(&app, &m.id, &refunded).await.expect(200);
    let after = app
        .get_ok(&format!("/v1/invoices/{}", id(&invoice)), &m.key)
        .await;
    assert_eq!(after["amount_refunded"]["amount"], 700, "{after}");
    assert_eq!(
        texts(&app, "SELECT gateway_ref AS t FROM refunds").await,
        ["re_dashboard_1"]
    );
    assert_eq!(
        fixtures::events(&app, &m, "invoice.refunded").await.len(),
        1
    );

    // A card network's update: the new expiry and number, with payment_method.updated.
    let updated = json!({"id": "evt_card_1", "type": "payment_method.automatically_updated",
        "data": {"object": {"id": stripe_pm, "object": "payment_method",
            "card": {"brand": "visa", "last4": "1881", "exp_month": 3, "exp_year": 2031}}}});
    signed_event(&app, &m.id, &updated).await.expect(200);
    let methods = app
        .get_ok(&format!("/v1/customers/{customer}/payment_methods"), &m.key)
        .await;
    assert_eq!(methods["data"][0]["last4"], "1881");
    assert_eq!(methods["data"][0]["exp_month"], 3);
    assert_eq!(methods["data"][0]["exp_year"], 2031);
    let card_events = fixtures::events(&app, &m, "payment_method.updated").await;
    let card_event = card_events
        .iter()
        .find(|e| e["data"]["object"]["id"] == pm["id"] && e["data"]["object"]["last4"] == "1881")
        .expect("payment_method.updated for the new card");
    assert_eq!(card_event["data"]["previous_attributes"]["last4"], "4242");

    // Unknown types are acknowledged and ignored.
    let unknown = json!({"id": "evt_other", "type": "customer.tax_id.created",
        "data": {"object": {}}});
    let ack = signed_event(&app, &m.id, &unknown).await.expect(200);
    assert_eq!(ack.body["handled"], false);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_events").await,
        4
    );
}

#[actix_web::test]
async fn a_payment_intent_event_settles_a_charge_whose_answer_was_lost() {
    let Some(StripeShop { mut stripe, app, m }) = fixtures::stripe_shop("Lost answer").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, _, _) =
        subscribed_then_card(&app, &stripe, &m, "u-lost", &plan, "4242424242424242").await;
    // The gateway is gone for the round: the charge's outcome is unknown and it waits.
    stripe.kill();
    round(&app).await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        1
    );
    assert_eq!(invoices_of(&app, &m, &customer).await[0]["status"], "open");
    stripe.resume().await;
    // Stripe's event about the intent (here, made outside Tenure under the same key as a
    // stand-in for the lost call) makes the charge due now, before its lease ends; the
    // engine asks under the key and records the charge that was made.
    let key = format!("{}:1", id(&invoices_of(&app, &m, &customer).await[0]));
    let token = texts(&app, "SELECT gateway_token AS t FROM payment_methods").await[0].clone();
    let (cus, pm) = token.split_once('/').unwrap();
    let made = stripe
        .post(
            "/v1/payment_intents",
            &[
                ("amount", &PRICE.to_string()),
                ("currency", "eur"),
                ("customer", cus),
                ("payment_method", pm),
                ("confirm", "true"),
                ("off_session", "true"),
                ("metadata[tenure_idempotency_key]", &key),
            ],
        )
        .await
        .unwrap();
    let event = json!({"id": "evt_pi_1", "type": "payment_intent.succeeded",
        "data": {"object": made}});
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    let invoice = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(invoice["status"], "paid", "{invoice}");
    assert_eq!(
        texts(&app, "SELECT gateway_ref AS t FROM payments").await,
        [made["id"].as_str().unwrap()]
    );
    assert_eq!(stripe.payment_intents().await.len(), 1, "charged once");
}

/// Renews `n` subscriptions of one customer due at once and returns renewals per second
/// of the round (renewal, invoice, charge and settlement of each).
async fn renewal_rate(app: &TestApp, m: &TestMerchant, customer: &str, n: usize) -> f64 {
    let product = fixtures::product(app, m, json!({})).await;
    let plan = fixtures::plan(app, m, &product, PRICE).await;
    let mut end = None;
    for _ in 0..n {
        let sub = fixtures::subscribe(app, m, customer, &plan).await;
        end = Some(time(&sub["current_period"]["end"]));
    }
    round(app).await;
    app.clock.advance_to(end.unwrap() + Duration::minutes(1));
    let started = std::time::Instant::now();
    round(app).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices WHERE status = 'paid'")
            .await,
        2 * n as i64
    );
    n as f64 / elapsed
}

#[actix_web::test]
async fn renewals_per_second_through_the_emulator_beside_the_sandbox() {
    // TENURE_STRIPE_BENCH_N renews more (the figures in docs/stripe.md).
    let n: usize = std::env::var("TENURE_STRIPE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let Some(stripe) = LocalStripe::start().await else {
        return;
    };
    let sandbox = TestApp::new().await;
    let sm = sandbox.merchant("Sandbox rate").await;
    let customer = fixtures::customer(&sandbox, &sm, "u-rate").await;
    fixtures::attach(&sandbox, &sm, &customer, "pm_card_visa").await;
    let sandbox_rate = renewal_rate(&sandbox, &sm, &customer, n).await;

    let app = stripe_app(&stripe).await;
    let m = app.merchant("Stripe rate").await;
    connect_stripe(&app, &m).await;
    let (customer, _) = customer_with_card(&app, &stripe, &m, "u-rate", "4242424242424242").await;
    let stripe_rate = renewal_rate(&app, &m, &customer, n).await;
    assert_eq!(stripe.payment_intents().await.len(), 2 * n);
    eprintln!(
        "renewals per second, {n} due at once, one worker loop: sandbox {sandbox_rate:.0}, \
         Stripe through localstripe {stripe_rate:.1}"
    );
}

#[actix_web::test]
async fn the_operator_key_rotates_and_reseal_moves_every_secret_to_the_new_key() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Rotation").await else {
        return;
    };
    let sealed_before = app
        .count("SELECT count(*) AS n FROM gateway_settings WHERE secret_key_sealed IS NOT NULL")
        .await;
    assert_eq!(sealed_before, 1);
    let new_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let connector: Arc<dyn GatewayConnector> =
        Arc::new(StripeConnector::new(&stripe.base(), std::time::Duration::from_secs(5)).unwrap());
    // Step 1: the new key current, the old one still accepted: the merchant's gateway
    // still opens (a setup intent reaches Stripe with the stored key).
    let rotating = tenure_app::App {
        gateways: Gateways::new(
            Some(Keyring::new(&new_key, &[&operator_key()]).unwrap()),
            Some(connector.clone()),
        ),
        ..app.state.app.clone()
    };
    let merchant: tenure_domain::ids::MerchantId = m.id.parse().unwrap();
    let customer = fixtures::customer(&app, &m, "u-rotate").await;
    let customer_id: tenure_domain::ids::CustomerId = customer.parse().unwrap();
    tenure_app::billing::gateways::create_setup_intent(&rotating, merchant, customer_id)
        .await
        .expect("opens with the old key");
    // Step 2: reseal; step 3: the old key can go.
    assert_eq!(
        tenure_app::billing::gateways::reseal_all(&rotating)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tenure_app::billing::gateways::reseal_all(&rotating)
            .await
            .unwrap(),
        0,
        "nothing left on the old key"
    );
    let rotated = tenure_app::App {
        gateways: Gateways::new(Some(Keyring::new(&new_key, &[]).unwrap()), Some(connector)),
        ..app.state.app.clone()
    };
    tenure_app::billing::gateways::create_setup_intent(&rotated, merchant, customer_id)
        .await
        .expect("opens with the new key alone");
    // The old key alone no longer opens them: the secrets really moved.
    let old_only = tenure_app::App {
        gateways: Gateways::new(Some(Keyring::new(&operator_key(), &[]).unwrap()), None),
        ..app.state.app.clone()
    };
    assert!(
        tenure_app::billing::gateways::reseal_all(&old_only)
            .await
            .is_err()
    );
}

#[actix_web::test]
async fn a_pay_request_without_an_answer_is_503_and_settled_once_after_the_lease() {
    let Some(StripeShop { mut stripe, app, m }) = fixtures::stripe_shop("Pay outage").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, _, _) =
        subscribed_then_card(&app, &stripe, &m, "u-pay", &plan, "4242424242424242").await;
    let invoice = id(&invoices_of(&app, &m, &customer).await[0]);
    stripe.kill();
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(503, "service_unavailable");
    // Spoken for until the engine has asked again.
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(409, "payment_in_progress");
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);
    stripe.resume().await;
    app.clock
        .advance(app.state.app.charge_lease + Duration::seconds(1));
    round(&app).await;
    let paid = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 1);
    assert_eq!(stripe.payment_intents().await.len(), 1);
}

#[actix_web::test]
async fn a_card_that_needs_authentication_waits_for_the_customer_and_then_settles() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("3DS").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, sub, _) =
        subscribed_then_card(&app, &stripe, &m, "u-sca", &plan, "4000002760003184").await;
    // Off session (the engine) nobody can authenticate: declined, and the
    // PaymentIntent canceled so a late authentication cannot take money.
    round(&app).await;
    assert_eq!(fixtures::status(&app, &m, &sub).await, "past_due");
    let first = stripe.payment_intents().await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "canceled");

    // The customer pays from the portal: the card asks for 3-D Secure.
    let token = fixtures::session(&app, &m, &customer).await;
    let invoice = id(&invoices_of(&app, &m, &customer).await[0]);
    let action = app
        .by(&token)
        .post_empty(&format!("/v1/portal/invoices/{invoice}/pay"))
        .await
        .expect(202)
        .body;
    assert_eq!(action["object"], "payment_action");
    assert_eq!(action["type"], "authenticate");
    assert_eq!(action["invoice_id"], invoice.as_str());
    assert_eq!(action["publishable_key"], PUBLISHABLE_KEY);
    let secret = action["client_secret"].as_str().unwrap();
    let waiting = fixtures::events(&app, &m, "invoice.payment_action_required").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["data"]["object"]["id"], invoice.as_str());
    assert_eq!(invoices_of(&app, &m, &customer).await[0]["status"], "open");
    // The merchant cannot charge it meanwhile.
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(409, "payment_in_progress");

    // The customer authenticates; Stripe reports it; the engine settles the invoice.
    let pi = stripe.authenticate_payment(secret).await;
    assert_eq!(pi["status"], "succeeded");
    let event = json!({"id": "evt_sca_1", "type": "payment_intent.succeeded",
        "data": {"object": pi}});
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    let paid = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(fixtures::status(&app, &m, &sub).await, "active");
    let payments = texts(
        &app,
        "SELECT status || ':' || coalesce(gateway_ref, '') AS t FROM payments ORDER BY created_at",
    )
    .await;
    assert_eq!(payments.len(), 2, "{payments:?}");
    assert!(payments[0].starts_with("declined:"));
    assert_eq!(
        payments[1],
        format!("succeeded:{}", pi["id"].as_str().unwrap())
    );
    assert_eq!(stripe.payment_intents().await.len(), 2);
}

#[actix_web::test]
async fn stripe_keys_are_tried_when_saved_and_nothing_is_saved_unless_accepted() {
    let Some(mut stripe) = LocalStripe::start().await else {
        return;
    };
    let app = stripe_app(&stripe).await;
    let m = app.merchant("Key check").await;
    let put = |secret: &'static str| {
        json!({"provider": "stripe", "secret_key": secret,
            "publishable_key": PUBLISHABLE_KEY, "webhook_secret": WEBHOOK_SECRET})
    };
    // localstripe accepts any `sk_` key but answers 401 to a restricted `rk_` one, as
    // Stripe answers a wrong key: the field is named, nothing is saved.
    let refused = app
        .by(&m.key)
        .put("/v1/gateway_settings", &put("rk_test_tenure_e2e_0000"))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        refused.body["errors"][0]["field"], "secret_key",
        "{:?}",
        refused.body
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_settings")
            .await,
        0
    );
    // Stripe out of reach: 503, nothing saved.
    stripe.kill();
    app.by(&m.key)
        .put("/v1/gateway_settings", &put(SECRET_KEY))
        .await
        .expect_problem(503, "service_unavailable");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM gateway_settings")
            .await,
        0
    );
    stripe.resume().await;
    assert_eq!(connect_stripe(&app, &m).await["provider"], "stripe");
}

#[actix_web::test]
async fn a_signup_whose_first_payment_fails_stays_incomplete_until_another_card_pays() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Signup decline").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, _) = customer_with_card(&app, &stripe, &m, "u-signup", "4000000000000341").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let sub = app
        .by(&token)
        .post("/v1/portal/subscriptions", &json!({"plan_id": plan}))
        .await
        .expect(201)
        .body;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    let invoice = id(&invoices_of(&app, &m, &customer).await[0]);
    assert_eq!(
        sub["next_action"],
        json!({"type": "update_payment_method", "invoice_id": invoice,
            "decline_code": "card_declined"})
    );
    // Nothing retries it: the engine's rounds leave it as it is.
    round(&app).await;
    let sub_id = id(&sub);
    assert_eq!(fixtures::status(&app, &m, &sub_id).await, "incomplete");
    let declined = stripe.payment_intents().await.len();

    // Another card, collected the same way, becomes the default and pays the invoice.
    let intent = app
        .by(&token)
        .post_empty("/v1/portal/setup_intents")
        .await
        .expect(201)
        .body;
    let pm = stripe
        .confirm_setup_intent(
            intent["id"].as_str().unwrap(),
            intent["client_secret"].as_str().unwrap(),
            "4242424242424242",
        )
        .await;
    app.by(&token)
        .post(
            "/v1/portal/payment_methods",
            &json!({"token": pm, "set_default": true}),
        )
        .await
        .expect(201);
    round(&app).await;
    assert_eq!(fixtures::status(&app, &m, &sub_id).await, "active");
    let paid = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(paid["status"], "paid", "{paid}");
    let intents = stripe.payment_intents().await;
    assert_eq!(
        intents.len(),
        declined + 1,
        "one more charge, for the new card"
    );
    let succeeded: Vec<&Value> = intents
        .iter()
        .filter(|pi| pi["status"] == "succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0]["amount"], PRICE);
    assert_eq!(
        fixtures::events(&app, &m, "subscription.activated")
            .await
            .len(),
        1
    );
}

#[actix_web::test]
async fn a_signup_with_a_3ds_card_waits_incomplete_for_the_confirmation_and_then_settles() {
    let Some(StripeShop { stripe, app, m }) = fixtures::stripe_shop("Signup 3DS").await else {
        return;
    };
    let plan = fixtures::product_plan(&app, &m, PRICE).await;
    let (customer, _) =
        customer_with_card(&app, &stripe, &m, "u-signup-sca", "4000002760003184").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    let invoice = id(&invoices_of(&app, &m, &customer).await[0]);
    let action = &sub["next_action"];
    assert_eq!(action["type"], "confirm_payment", "{action}");
    assert_eq!(action["invoice_id"], invoice.as_str());
    assert_eq!(action["provider"], "stripe");
    assert_eq!(action["publishable_key"], PUBLISHABLE_KEY);
    let secret = action["client_secret"].as_str().unwrap();
    assert_eq!(
        fixtures::events(&app, &m, "invoice.payment_action_required")
            .await
            .len(),
        1
    );
    // The merchant cannot charge it while it waits for the customer.
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(409, "payment_in_progress");

    // The frontend confirms it; Stripe reports it; the engine settles it once.
    let pi = stripe.authenticate_payment(secret).await;
    assert_eq!(pi["status"], "succeeded");
    let event = json!({"id": "evt_signup_sca", "type": "payment_intent.succeeded",
        "data": {"object": pi}});
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    let sub_id = id(&sub);
    assert_eq!(fixtures::status(&app, &m, &sub_id).await, "active");
    assert_eq!(
        texts(
            &app,
            "SELECT status || ':' || gateway_ref AS t FROM payments"
        )
        .await,
        [format!("succeeded:{}", pi["id"].as_str().unwrap())]
    );
    assert_eq!(stripe.payment_intents().await.len(), 1);
    // The same event again changes nothing.
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 1);
}

/// A gateway standing in for Stripe that answers `processing` to a charge's first call
/// (what a bank debit answers; localstripe cannot produce it for cards) and `succeeded`
/// when the charge is sent again after Stripe's event, under the same key. Counts calls.
#[derive(Debug, Default)]
struct ProcessingGateway {
    calls: std::sync::atomic::AtomicUsize,
}

impl PaymentGateway for ProcessingGateway {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        Box::pin(async move { sandbox_card_details(token) })
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        Box::pin(async move {
            ChargeOutcome::Succeeded {
                gateway_ref: format!("pi_{}", request.idempotency_key),
            }
        })
    }

    fn refund<'a>(&'a self, _: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        Box::pin(async {
            RefundOutcome::Failed {
                code: "not_supported".to_owned(),
            }
        })
    }

    fn try_charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> GatewayCall<'a, Result<ChargeOutcome, OutcomeUnknown>> {
        Box::pin(async move {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !request.resend {
                return Err(OutcomeUnknown {
                    reason: "payment_intent processing".to_owned(),
                    action: None,
                });
            }
            Ok(self.charge(request).await)
        })
    }
}

impl ProcessingGateway {
    /// How many charges reached it (`load` by path: diesel's `RunQueryDsl` is in scope).
    fn calls(&self) -> usize {
        std::sync::atomic::AtomicUsize::load(&self.calls, std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Always(Arc<ProcessingGateway>);

impl GatewayConnector for Always {
    fn stripe(&self, _: &str) -> Arc<dyn PaymentGateway> {
        self.0.clone()
    }
}

#[actix_web::test]
async fn a_processing_first_payment_is_settled_once_by_the_gateways_event() {
    let double = Arc::new(ProcessingGateway::default());
    let connector: Arc<dyn GatewayConnector> = Arc::new(Always(double.clone()));
    let app = TestApp::configured(TestDb::new().await, RateLimitConfig::disabled(), |state| {
        state.app.gateways = Gateways::new(
            Some(Keyring::new(&operator_key(), &[]).unwrap()),
            Some(connector),
        );
    })
    .await;
    let m = app.merchant("Processing").await;
    connect_stripe(&app, &m).await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, PRICE).await;
    let customer = fixtures::customer(&app, &m, "u-processing").await;
    fixtures::attach(&app, &m, &customer, "pm_card_visa").await;

    // The signup's charge is processing: no outcome yet, nothing to do but wait.
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    assert_eq!(sub["next_action"], Value::Null);
    let invoice = id(&invoices_of(&app, &m, &customer).await[0]);
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        1
    );
    // Nothing else may charge it meanwhile, and the engine leaves it to its lease.
    app.by(&m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(409, "payment_in_progress");
    round(&app).await;
    assert_eq!(double.calls(), 1);

    // Stripe's event: the charge is due now; the engine asks again under the key.
    let event = json!({"id": "evt_processing_done", "type": "payment_intent.succeeded",
        "data": {"object": {"id": format!("pi_{invoice}:1"), "object": "payment_intent",
            "status": "succeeded", "metadata": {"tenure_idempotency_key": format!("{invoice}:1")}}}});
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    let sub_id = id(&sub);
    assert_eq!(fixtures::status(&app, &m, &sub_id).await, "active");
    assert_eq!(
        texts(
            &app,
            "SELECT status || ':' || gateway_ref AS t FROM payments"
        )
        .await,
        [format!("succeeded:pi_{invoice}:1")]
    );
    // Exactly once, however often the event comes or the rounds run.
    let again = json!({"id": "evt_processing_again", "type": "payment_intent.succeeded",
        "data": {"object": {"metadata": {"tenure_idempotency_key": format!("{invoice}:1")}}}});
    signed_event(&app, &m.id, &again).await.expect(200);
    signed_event(&app, &m.id, &event).await.expect(200);
    round(&app).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 1);
    assert_eq!(double.calls(), 2);
    assert_eq!(fixtures::events(&app, &m, "invoice.paid").await.len(), 1);
    assert_eq!(
        fixtures::events(&app, &m, "subscription.activated")
            .await
            .len(),
        1
    );
}
