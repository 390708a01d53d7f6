//! GDPR: a customer's export holds everything known about it; erasure anonymises the
//! personal data everywhere in the database (checked on a full dump) while invoices,
//! payments and refunds keep their amounts.

use serde_json::{Value, json};
use tenure_app::gdpr::complete_idempotent_request;
use tenure_domain::clock::Clock;
use tenure_domain::ids::MerchantId;
use tenure_e2e::{Response, TestApp, TestMerchant};
use tenure_store::repo::idempotency::{self, Claim, StoredResponse};

use crate::fixtures::{self, hex};

const EMAIL: &str = "ada.lovelace@example.org";
const NAME: &str = "Ada Lovelace";
const EXTERNAL_ID: &str = "ada-ext-4711";
const METADATA: &str = "ADA-SECRET-17";
const NOTE: &str = "Called about her cat Whiskers";
const MESSAGE: &str = "Private budget note from Ada";

/// Creates Ada, with the Idempotency-Key `create-ada` (the second time, a replay).
async fn create_ada(app: &TestApp, m: &TestMerchant) -> Response {
    app.by(&m.key)
        .idempotency_key("create-ada")
        .post(
            "/v1/customers",
            &json!({"external_id": EXTERNAL_ID, "email": EMAIL, "name": NAME,
            "locale": "en-GB", "metadata": {"crm": METADATA}, "tags": ["vip"]}),
        )
        .await
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct Totals {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    invoices: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    invoiced: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    paid: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    payments: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    payment_amounts: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    refunded: String,
}

async fn totals(app: &TestApp) -> Totals {
    let mut conn = app.sql().await;
    diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT (SELECT count(*) FROM invoices) AS invoices,
                    (SELECT coalesce(sum(total), 0)::text FROM invoices) AS invoiced,
                    (SELECT coalesce(sum(amount_paid), 0)::text FROM invoices) AS paid,
                    (SELECT count(*) FROM payments) AS payments,
                    (SELECT coalesce(sum(amount), 0)::text FROM payments) AS payment_amounts,
                    (SELECT coalesce(sum(amount), 0)::text FROM refunds) AS refunded",
        ),
        &mut conn,
    )
    .await
    .unwrap()
}

async fn export(app: &TestApp, m: &TestMerchant, customer: &str) -> Value {
    app.get_ok(&format!("/v1/customers/{customer}/export"), &m.key)
        .await
}

#[actix_web::test]
async fn export_holds_everything_and_erase_anonymises_but_keeps_the_money() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let control = fixtures::customer(&app, &m, "control").await;

    let ada = create_ada(&app, &m).await.expect(201).id();
    fixtures::attach(&app, &m, &ada, "pm_card_visa").await;
    let sub = fixtures::subscribe_id(&app, &m, &ada, &plan).await;
    // A paid invoice with a partial refund, known amounts (the billing engine's own
    // invoices, if any, are counted the same way).
    let (inv, pay) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let ada_uuid = fixtures::customer_uuid(&ada);
    app.exec(format!(
        "INSERT INTO invoices (merchant_id, id, number, customer_id, status, currency, total, amount_paid, amount_refunded)
         SELECT merchant_id, '{inv}', 900, id, 'paid', 'EUR', 4200, 4200, 200 FROM customers WHERE id = '{ada_uuid}'"
    )).await;
    app.exec(format!(
        "INSERT INTO invoice_lines (merchant_id, invoice_id, position, kind, description, amount)
         SELECT merchant_id, '{inv}', 0, 'plan', 'Plan 4200', 4200 FROM customers WHERE id = '{ada_uuid}'"
    )).await;
    app.exec(format!(
        "INSERT INTO payments (merchant_id, id, invoice_id, customer_id, amount, currency, status, gateway, gateway_ref, idempotency_key, amount_refunded)
         SELECT merchant_id, '{pay}', '{inv}', id, 4200, 'EUR', 'succeeded', 'sandbox', 'gw_9', 'k900', 200 FROM customers WHERE id = '{ada_uuid}'"
    )).await;
    app.exec(format!(
        "INSERT INTO refunds (merchant_id, id, invoice_id, payment_id, amount, currency, gateway_ref)
         SELECT merchant_id, '{}', '{inv}', '{pay}', 200, 'EUR', 're_9' FROM customers WHERE id = '{ada_uuid}'",
        uuid::Uuid::now_v7()
    )).await;
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{ada}/notes"),
            &json!({"body": NOTE, "channel": "phone", "author": "Bob (support)"}),
        )
        .await
        .expect(201);
    let token = fixtures::session(&app, &m, &ada).await;
    let request = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/cancel"),
            &json!({"reason": "too_expensive", "message": MESSAGE}),
        )
        .await
        .expect(200)
        .body["cancellation_request"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let offer = uuid::Uuid::now_v7();
    app.exec(format!(
        "INSERT INTO retention_offers (merchant_id, id, name, kind, eligibility)
         SELECT merchant_id, '{offer}', 'Half off', '{{\"type\": \"discount_percent\", \"percent\": 50, \"cycles\": 3}}', '{{}}'
           FROM customers WHERE id = '{ada_uuid}'"
    )).await;
    app.exec(format!(
        "INSERT INTO retention_offer_outcomes (merchant_id, id, offer_id, customer_id, subscription_id, reason, outcome)
         SELECT merchant_id, '{}', '{offer}', customer_id, id, 'too_expensive', 'declined'
           FROM subscriptions WHERE customer_id = '{ada_uuid}'",
        uuid::Uuid::now_v7()
    )).await;

    // The export: everything, and nothing of another customer or a gateway token.
    let doc = export(&app, &m, &ada).await;
    assert_eq!(doc["object"], "customer_export");
    assert_eq!(doc["customer"]["email"], EMAIL);
    assert_eq!(doc["customer"]["metadata"]["crm"], METADATA);
    assert_eq!(doc["notes"][0]["body"], NOTE);
    assert_eq!(doc["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["subscriptions"][0]["id"], sub.as_str());
    assert_eq!(doc["cancellation_requests"][0]["id"], request.as_str());
    assert_eq!(doc["cancellation_requests"][0]["message"], MESSAGE);
    let ticket = &doc["support_tickets"][0];
    assert!(
        ticket["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|msg| msg["body"].as_str().unwrap().contains(MESSAGE)),
        "{ticket}"
    );
    assert_eq!(doc["payment_methods"][0]["last4"], "4242");
    assert_eq!(doc["payment_methods"][0]["brand"], "visa");
    let ours = doc["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == 900)
        .expect("the paid invoice");
    assert_eq!(ours["total"]["amount"], 4200);
    assert_eq!(ours["payments"][0]["amount"]["amount"], 4200);
    assert_eq!(ours["refunds"][0]["amount"]["amount"], 200);
    let before = totals(&app).await;
    assert_eq!(
        doc["invoices"].as_array().unwrap().len() as i64,
        before.invoices,
        "every invoice is Ada's"
    );
    let types: Vec<&str> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"customer.created"), "{types:?}");
    assert!(types.contains(&"subscription.created"), "{types:?}");
    assert!(
        types.contains(&"subscription.cancellation_requested"),
        "{types:?}"
    );
    assert_eq!(doc["retention_offer_outcomes"][0]["outcome"], "declined");
    assert_eq!(doc["retention_offer_outcomes"][0]["offer_name"], "Half off");
    let text = doc.to_string();
    assert!(!text.contains("gateway_token") && !text.contains("pm_card_visa"));
    assert!(!text.contains(&control), "another customer's data leaked");

    // Another merchant sees nothing of Ada.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .get(&format!("/v1/customers/{ada}/export"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&other.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect_problem(404, "resource_missing");

    // Erasure waits until every subscription has ended.
    app.by(&m.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect_problem(409, "customer_has_live_subscriptions");
    app.by(&m.key)
        .post_empty(&format!("/v1/cancellation_requests/{request}/approve"))
        .await
        .expect(200);

    let erased = app
        .by(&m.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect(200)
        .body;
    assert_eq!(erased["id"], ada.as_str());
    assert!(erased["email"].is_null() && erased["name"].is_null() && erased["locale"].is_null());
    assert_eq!(erased["metadata"], json!({}));
    assert_eq!(erased["tags"], json!([]));
    assert_eq!(erased["external_id"], format!("erased_{ada}"));
    assert!(erased["erased_at"].is_string());
    // Idempotent: the same customer, no second event.
    let again = app
        .by(&m.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect(200)
        .body;
    assert_eq!(again, erased);
    let events = app.get_ok("/v1/events?type=customer.erased", &m.key).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    let event = &events["data"][0];
    assert_eq!(event["resource_id"], ada.as_str());
    // The snapshot is the customer as rendered, without the reader's `livemode`.
    let mut snapshot = erased.clone();
    snapshot.as_object_mut().unwrap().remove("livemode");
    assert_eq!(event["data"]["object"], snapshot);
    assert!(event["data"].get("previous_attributes").is_none());

    // Nothing personal is left anywhere in the database; the control customer is.
    let dump = app.db.dump_data();
    assert!(
        dump.contains("control@example.com"),
        "the dump has the test's data"
    );
    for secret in [
        EMAIL,
        NAME,
        EXTERNAL_ID,
        METADATA,
        NOTE,
        MESSAGE,
        "pm_card_visa",
    ] {
        assert!(
            !dump.contains(secret),
            "the database still holds {secret:?}"
        );
        assert!(
            !dump.contains(&hex(secret)),
            "the database still holds {secret:?} as bytes"
        );
    }
    // Money is untouched.
    assert_eq!(totals(&app).await, before);
    // A retry of the customer's creation replays it, anonymised, rather than creating a
    // second customer with the erased data.
    let customers_before = app.count("SELECT count(*) AS n FROM customers").await;
    let replay = create_ada(&app, &m).await.expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], ada.as_str());
    assert!(replay.body["email"].is_null() && replay.body["name"].is_null());
    assert_eq!(replay.body["external_id"], format!("erased_{ada}"));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customers").await,
        customers_before
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM payment_methods WHERE customer_id = '{ada_uuid}' AND detached_at IS NOT NULL AND NOT is_default"
        ))
        .await,
        1
    );

    // The export still answers, with what is left.
    let doc = export(&app, &m, &ada).await;
    assert_eq!(doc["customer"], snapshot);
    assert_eq!(doc["livemode"], false);
    assert_eq!(doc["notes"][0]["body"], "[erased]");
    assert!(doc["cancellation_requests"][0]["message"].is_null());
    assert_eq!(
        doc["invoices"].as_array().unwrap().len() as i64,
        before.invoices
    );
    let text = doc.to_string();
    for secret in [EMAIL, NAME, EXTERNAL_ID, METADATA, NOTE, MESSAGE] {
        assert!(!text.contains(secret), "the export still holds {secret:?}");
    }

    // An erased customer cannot come back through the side doors.
    app.by(&m.key)
        .post("/v1/customer_sessions", &json!({"customer_id": ada}))
        .await
        .expect_problem(409, "customer_erased");
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": ada, "plan_id": plan}),
        )
        .await
        .expect_problem(409, "customer_erased");
    app.by(&m.key)
        .patch(&format!("/v1/customers/{ada}"), &json!({"email": EMAIL}))
        .await
        .expect_problem(409, "customer_erased");
    app.by(&m.key)
        .post(&format!("/v1/customers/{ada}/tags"), &json!({"tag": "vip"}))
        .await
        .expect_problem(409, "customer_erased");
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{ada}/notes"),
            &json!({"body": "hello", "channel": "email", "author": "Bob"}),
        )
        .await
        .expect_problem(409, "customer_erased");
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{ada}/payment_methods"),
            &json!({"token": "pm_card_visa"}),
        )
        .await
        .expect_problem(409, "customer_erased");
    // Nor through a reply on one of their tickets, which would store new personal text.
    let ticket = doc["support_tickets"][0]["id"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    app.by(&m.key)
        .post(
            &format!("/v1/support_tickets/{ticket}/replies"),
            &json!({"body": "Hi Ada, about your account"}),
        )
        .await
        .expect_problem(409, "customer_erased");
    // The control customer is untouched.
    let control = app
        .get_ok(&format!("/v1/customers/{control}"), &m.key)
        .await;
    assert_eq!(control["email"], "control@example.com");
    assert!(control["erased_at"].is_null());
}

/// A response naming the customer, as a request that read it just before the erasure
/// committed would store it.
fn stale_response(customer: &str) -> StoredResponse {
    StoredResponse {
        status: 200,
        headers: json!({"content-type": "application/json"}),
        body: json!({"id": customer, "object": "customer", "email": EMAIL, "name": NAME})
            .to_string()
            .into_bytes(),
    }
}

#[actix_web::test]
async fn a_response_stored_after_the_erasure_committed_is_kept_only_anonymised() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let merchant: MerchantId = m.id.parse().unwrap();
    let ada = fixtures::customer(&app, &m, "ada").await;
    let control = fixtures::customer(&app, &m, "control").await;
    let mut conn = app.sql().await;
    let stored_body = async |key: &str| -> String {
        #[derive(diesel::QueryableByName)]
        struct Body {
            #[diesel(sql_type = diesel::sql_types::Bytea)]
            response_body: Vec<u8>,
        }
        let mut conn = app.sql().await;
        let row: Body = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(
                "SELECT response_body FROM idempotency_keys WHERE idempotency_key = $1",
            )
            .bind::<diesel::sql_types::Text, _>(key),
            &mut conn,
        )
        .await
        .expect("the key is kept");
        String::from_utf8(row.response_body).unwrap()
    };

    // Two requests began before the erasure: one about Ada, one about someone else.
    let claimed_at = app.clock.now();
    for key in ["about-ada", "about-control"] {
        let claim = idempotency::claim(&mut conn, merchant, &m.id, key, b"hash", claimed_at).await;
        assert!(matches!(claim, Ok(Claim::Acquired)), "{claim:?}");
    }
    app.by(&m.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect(200);

    // They store their responses only now, after the erasure anonymised those naming Ada.
    for (key, customer, anonymised) in [
        ("about-ada", &ada, true),
        ("about-control", &control, false),
    ] {
        let done = complete_idempotent_request(
            &mut conn,
            merchant,
            (&m.id, key, claimed_at),
            &stale_response(customer),
            app.clock.now(),
        )
        .await
        .unwrap();
        assert_eq!(done, anonymised, "{key}");
    }
    // Ada's is kept, so a retry replays it rather than running again, but without her data.
    let about_ada = stored_body("about-ada").await;
    assert!(about_ada.contains(&ada), "{about_ada}");
    assert!(
        !about_ada.contains(EMAIL) && !about_ada.contains(NAME),
        "{about_ada}"
    );
    assert!(stored_body("about-control").await.contains(EMAIL));
    assert_eq!(
        app.count("SELECT count(*) AS n FROM idempotency_keys WHERE completed_at IS NOT NULL")
            .await,
        2
    );
}

/// A request that read Ada before her erasure stores its response while the erasure is
/// between its pass over the stored responses and its commit. Driven step by step with
/// locks the test holds: the events table (the erasure stops just before its commit)
/// and the key's row (whatever writes to it stops there).
#[actix_web::test]
async fn a_response_racing_the_erasure_is_never_replayed_with_pre_erasure_data() {
    use diesel_async::SimpleAsyncConnection;

    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let merchant: MerchantId = m.id.parse().unwrap();
    let ada = fixtures::customer(&app, &m, "ada").await;
    let claimed_at = app.clock.now();
    let mut conn = app.sql().await;
    let claim = idempotency::claim(&mut conn, merchant, &m.id, "racing", b"hash", claimed_at).await;
    assert!(matches!(claim, Ok(Claim::Acquired)), "{claim:?}");
    let replayed_body = async || -> Option<String> {
        let mut conn = app.sql().await;
        match idempotency::claim(
            &mut conn,
            merchant,
            &m.id,
            "racing",
            b"hash",
            app.clock.now(),
        )
        .await
        {
            Ok(Claim::Replay(stored)) => Some(String::from_utf8(stored.body).unwrap()),
            Ok(Claim::InProgress) => None,
            other => panic!("{other:?}"),
        }
    };

    // The erasure runs up to its events, after anonymising the stored responses (none
    // yet), holding Ada's row lock.
    let mut events_lock = app.sql().await;
    events_lock
        .batch_execute("BEGIN; LOCK TABLE events IN SHARE MODE")
        .await
        .unwrap();
    let state = app.state.app.clone();
    let ada_id = ada.parse().unwrap();
    let erasure = actix_web::rt::spawn(async move {
        tenure_app::gdpr::erase(&state, merchant, ada_id, None).await
    });
    fixtures::wait_for_lock_waiters(&app, 1).await;

    // The request stores what it read before.
    let response = stale_response(&ada);
    let (scope, now) = (m.id.clone(), app.clock.now());
    let store = actix_web::rt::spawn(async move {
        complete_idempotent_request(
            &mut conn,
            merchant,
            (&scope, "racing", claimed_at),
            &response,
            now,
        )
        .await
    });
    while !store.is_finished()
        && app
            .count(
                "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
            < 2
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Nothing writes the key's row until the test lets it.
    let mut key_lock = app.sql().await;
    key_lock
        .batch_execute(
            "BEGIN; SELECT 1 FROM idempotency_keys WHERE idempotency_key = 'racing' FOR UPDATE",
        )
        .await
        .unwrap();

    // The erasure commits.
    events_lock.batch_execute("COMMIT").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app
        .count(&format!(
            "SELECT count(*) AS n FROM customers WHERE id = '{}' AND erased_at IS NOT NULL",
            ada.parse::<tenure_domain::ids::CustomerId>()
                .unwrap()
                .uuid()
        ))
        .await
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the erasure never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // From the erasure's commit on, a retry never gets Ada's data back.
    if let Some(body) = replayed_body().await {
        assert!(
            !body.contains(EMAIL) && !body.contains(NAME),
            "replayed after the erasure: {body}"
        );
    }
    key_lock.batch_execute("COMMIT").await.unwrap();
    erasure.await.unwrap().expect("the erasure");
    store.await.unwrap().expect("the response is stored");
    let body = replayed_body().await.expect("the response is kept");
    assert!(body.contains(&ada), "{body}");
    assert!(!body.contains(EMAIL) && !body.contains(NAME), "{body}");
}

/// Erasure scrubs the audit trail: the bodies of requests about the customer, and of
/// those that named it without making anything of it (a create refused as a duplicate
/// or invalid still carried its email, name and external id), lose their body; other
/// customers' entries keep theirs, even one whose external id merely starts alike.
#[actix_web::test]
async fn erasure_scrubs_the_customer_s_data_from_the_audit_trail() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let ada = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": EXTERNAL_ID, "email": EMAIL, "name": NAME}),
        )
        .await
        .expect(201)
        .id();
    // A duplicate external id, refused: the body names Ada but no resource of hers.
    app.by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": EXTERNAL_ID, "email": "other@example.org", "name": "Someone"}),
        )
        .await
        .expect(409);
    // Invalid, refused: the email (in another case) and name only.
    app.by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "", "email": EMAIL.to_uppercase(), "name": NAME}),
        )
        .await
        .expect(422);
    // Another customer whose external id begins with Ada's.
    let bob_external = format!("{EXTERNAL_ID}0");
    app.by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": bob_external, "email": "bob@example.org"}),
        )
        .await
        .expect(201);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_events WHERE request_body IS NOT NULL")
            .await,
        4
    );
    app.by(&m.key)
        .post_empty(&format!("/v1/customers/{ada}/erase"))
        .await
        .expect(200);
    for personal in [EMAIL, &EMAIL.to_uppercase(), NAME, EXTERNAL_ID] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM audit_events \
                  WHERE strpos(request_body::text, '{personal}') > 0 \
                    AND NOT strpos(request_body::text, '{bob_external}') > 0"
            ))
            .await,
            0,
            "{personal} is still in the audit trail"
        );
    }
    // Bob's entry keeps its body; every entry keeps who did what.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM audit_events WHERE request_body->>'external_id' = '{bob_external}'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_events WHERE request_body IS NOT NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM audit_events WHERE route = '/v1/customers'")
            .await,
        4
    );
}
