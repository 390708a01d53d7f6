//! Test and live mode (docs/keys.md#test-and-live-mode): an account's two tenants never
//! see each other's objects through any route, list, event or webhook; every object says
//! its mode; keys and customer sessions carry theirs; the sandbox is for test mode only.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_domain::ids::{CustomerId, GenerateId, InvoiceId, MerchantId, TestClockId};
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures;
use crate::webhooks::{Receiver, deliver_all};

/// One tenant with one object of every kind that a `GET` route names by id, and a
/// webhook receiver that got everything the tenant's endpoint was sent.
struct Tenant {
    merchant: TestMerchant,
    live: bool,
    /// A portal session of the tenant's customer.
    token: String,
    /// The id of each kind of object, by the path segment that names its kind.
    ids: BTreeMap<&'static str, String>,
    receiver: Receiver,
}

impl Tenant {
    /// Whose credential reads `path`: the portal's session or the secret key.
    fn credential(&self, path: &str) -> &str {
        if path.starts_with("/v1/portal/") {
            &self.token
        } else {
            &self.merchant.key
        }
    }

    /// `path` with each parameter filled with this tenant's object of that kind.
    fn fill(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        segments
            .iter()
            .enumerate()
            .map(|(i, segment)| {
                if !segment.starts_with('{') {
                    return (*segment).to_owned();
                }
                let kind = segments[i - 1];
                self.ids
                    .get(kind)
                    .unwrap_or_else(|| {
                        panic!("{path}: no {kind} object made in modes::populate; add one")
                    })
                    .clone()
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Every id of this tenant, its own included.
    fn every_id(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.ids.values().cloned().collect();
        ids.push(self.merchant.id.clone());
        ids
    }
}

/// Fills a tenant through the API (with its own key), except the live tenant's card:
/// live mode has no sandbox, so the card is written as a gateway would have left it.
async fn populate(app: &TestApp, merchant: TestMerchant, live: bool) -> Tenant {
    let key = merchant.key.clone();
    let receiver = Receiver::start().await;
    let endpoint = app
        .by(&key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": receiver.url, "enabled_events": ["*"]}),
        )
        .await
        .expect(201)
        .id();
    let product = fixtures::product(app, &merchant, json!({})).await;
    let plan = fixtures::plan(app, &merchant, &product, 1000).await;
    let offer = app
        .by(&key)
        .post(
            "/v1/retention_offers",
            &json!({"name": "Stay a while", "kind": {"type": "pause_instead", "days": 30}}),
        )
        .await
        .expect(201)
        .id();
    let customer = fixtures::customer(app, &merchant, "ada").await;
    // Subscribed before the card is added, so that the first invoice stays open (a signup
    // with a card pays it in the request).
    let subscription = fixtures::subscribe_id(app, &merchant, &customer, &plan).await;
    // An address and the order of a subscription to a product that ships.
    let address = app
        .by(&key)
        .post(
            &format!("/v1/customers/{customer}/addresses"),
            &json!({"name": "Ada", "line1": "1 Main St", "city": "Springfield", "country": "US"}),
        )
        .await
        .expect(201)
        .id();
    let shipped = app
        .by(&key)
        .post("/v1/products", &json!({"name": "Beans", "shippable": true}))
        .await
        .expect(201)
        .id();
    let shipped_plan = fixtures::plan(app, &merchant, &shipped, 1200).await;
    let shipping = app
        .by(&key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": shipped_plan, "shipping_address_id": address}),
        )
        .await
        .expect(201)
        .id();
    let order = fixtures::id(
        &app.get_ok(&format!("/v1/orders?subscription_id={shipping}"), &key)
            .await["data"][0],
    );
    let card = if live {
        let mut conn = app.sql().await;
        let merchant_id: MerchantId = merchant.id.parse().expect("merchant id");
        let customer_id: CustomerId = customer.parse().expect("customer id");
        tenure_test_support::fixtures::payment_method(
            &mut conn,
            merchant_id,
            customer_id,
            "pm_card_visa",
            app.clock.now(),
        )
        .await
        .id
        .to_string()
    } else {
        fixtures::attach_card(app, &merchant, &customer, "pm_card_visa").await
    };
    let invoice = fixtures::id(&fixtures::invoices_of(app, &merchant, &customer).await[0]);
    let token = fixtures::session(app, &merchant, &customer).await;
    let request = fixtures::id(
        &fixtures::request_cancellation(app, &token, &subscription, "too_expensive").await,
    );
    let ticket = fixtures::id(&app.get_ok("/v1/support_tickets", &key).await["data"][0]);
    let coupon = app
        .by(&key)
        .post(
            "/v1/coupons",
            &json!({"name": "Ten off", "percent_off": 10, "duration": "once"}),
        )
        .await
        .expect(201)
        .id();
    let code = if live { "LIVE10" } else { "TEST10" };
    let promotion_code = app
        .by(&key)
        .post(
            "/v1/promotion_codes",
            &json!({"coupon_id": coupon, "code": code}),
        )
        .await
        .expect(201)
        .id();
    let invoice_item = app
        .by(&key)
        .post(
            &format!("/v1/subscriptions/{subscription}/invoice_items"),
            &json!({"amount": 250, "description": "Gift wrap"}),
        )
        .await
        .expect(201)
        .id();
    // A credit note needs a paid invoice: the test tenant pays through the sandbox, the
    // live one's invoice is marked paid as a gateway would have left it.
    if live {
        app.exec(format!(
            "UPDATE invoices SET status = 'paid', amount_paid = total, paid_at = now() \
              WHERE id = '{}'",
            invoice.parse::<InvoiceId>().expect("invoice id").uuid()
        ))
        .await;
    } else {
        app.by(&key)
            .post(&format!("/v1/invoices/{invoice}/pay"), &json!({}))
            .await
            .expect(200);
    }
    let credit_note = app
        .by(&key)
        .post(
            &format!("/v1/invoices/{invoice}/credit_notes"),
            &json!({"amount": 100, "reason": "goodwill", "destination": "balance"}),
        )
        .await
        .expect(201)
        .id();
    // Clocks are test mode's only; the live tenant's is written directly, so that
    // reading it from test mode (and the reverse) is tried too.
    let clock = if live {
        let id = TestClockId::generate();
        app.exec(format!(
            "INSERT INTO test_clocks (merchant_id, id, frozen_time, status, created_at, updated_at) \
             VALUES ('{}', '{}', now(), 'ready', now(), now())",
            merchant.id.parse::<MerchantId>().expect("merchant id").uuid(),
            id.uuid()
        ))
        .await;
        id.to_string()
    } else {
        app.by(&key)
            .post(
                "/v1/test_clocks",
                &json!({"frozen_time": "2027-01-01T00:00:00Z"}),
            )
            .await
            .expect(201)
            .id()
    };
    let stock_notice = app
        .by(&key)
        .post(
            &format!("/v1/plans/{plan}/stock"),
            &json!({"status": "low"}),
        )
        .await
        .expect(202)
        .id();
    let event = fixtures::id(&app.get_ok("/v1/events?limit=1", &key).await["data"][0]);
    let ids = BTreeMap::from([
        ("addresses", address),
        ("api_keys", merchant.key_id.clone()),
        ("cancellation_requests", request),
        ("coupons", coupon),
        ("credit_notes", credit_note),
        ("customers", customer),
        ("events", event),
        ("invoice_items", invoice_item),
        ("invoices", invoice),
        ("orders", order),
        ("payment_methods", card),
        ("plans", plan),
        ("products", product),
        ("promotion_codes", promotion_code),
        ("retention_offers", offer),
        ("stock_notices", stock_notice),
        ("subscriptions", subscription),
        ("support_tickets", ticket),
        ("test_clocks", clock),
        ("webhook_endpoints", endpoint),
    ]);
    Tenant {
        merchant,
        live,
        token,
        ids,
        receiver,
    }
}

async fn account(app: &TestApp) -> (Tenant, Tenant) {
    let (test, live) = app.account("Acme").await;
    assert!(test.key.starts_with("sk_test_"));
    assert!(live.key.starts_with("sk_live_"));
    let test = populate(app, test, false).await;
    let live = populate(app, live, true).await;
    (test, live)
}

/// Every object of a response says the reader's mode: the object itself, or each item
/// of a page or an array.
#[track_caller]
fn assert_mode(path: &str, body: &Value, live: bool) {
    let items = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(page) if page.contains_key("has_more") => page["data"]
            .as_array()
            .expect("a page's data")
            .iter()
            .collect(),
        object => vec![object],
    };
    for item in items {
        assert_eq!(item["livemode"], json!(live), "{path}: {body}");
    }
}

/// The `GET` operations of the document whose credential reaches one tenant: the
/// merchant's routes and the portal's.
fn moded_reads() -> Vec<String> {
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let reads: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, item)| {
            tenure_api::openapi::renders_livemode(path) && item.get("get").is_some()
        })
        .map(|(path, _)| path.clone())
        .collect();
    assert!(reads.len() > 40, "{reads:?}");
    reads
}

/// For every `GET` route of the document: a path naming the other mode's object is 404
/// for both modes' credentials (keys and customer sessions), the own object is read in
/// the reader's mode, and no answer (lists included) holds an id of the other mode.
/// Events go only to the webhook endpoints of their own mode, marked with it.
#[actix_web::test]
async fn no_route_list_event_or_webhook_shows_one_mode_to_the_other() {
    let app = TestApp::new().await;
    let (test, live) = account(&app).await;
    for path in moded_reads() {
        for (reader, other) in [(&test, &live), (&live, &test)] {
            let credential = reader.credential(&path);
            if path.contains('{') {
                app.by(credential)
                    .get(&other.fill(&path))
                    .await
                    .expect_problem(404, "resource_missing");
            }
            let own = reader.fill(&path);
            let res = app.by(credential).get(&own).await;
            if res.status.as_u16() == 409 && res.body["code"] == "no_upcoming_invoice" {
                // The subscription may be ending (its customer asked to cancel).
                continue;
            }
            if res.status.as_u16() == 409 && res.body["code"] == "subscription_not_shippable" {
                // The tenant's subscription of record does not ship (its upcoming order is
                // read in order_notices.rs).
                continue;
            }
            let res = res.expect(200);
            assert_mode(&own, &res.body, reader.live);
            let text = res.body.to_string();
            for id in other.every_id() {
                assert!(
                    !text.contains(&id),
                    "{own} shows {id} of the other mode: {text}"
                );
            }
        }
    }

    assert!(deliver_all(&app).await > 0);
    for (tenant, other) in [(&test, &live), (&live, &test)] {
        let delivered = tenant.receiver.accepted();
        assert!(!delivered.is_empty());
        let events = app
            .get_ok("/v1/events?limit=100", &tenant.merchant.key)
            .await;
        let own_events = fixtures::ids(&events);
        let other_events = fixtures::ids(
            &app.get_ok("/v1/events?limit=100", &other.merchant.key)
                .await,
        );
        assert_mode("/v1/events", &events, tenant.live);
        for request in delivered {
            let event = request.json();
            assert_eq!(event["livemode"], json!(tenant.live), "{event}");
            let id = event["id"].as_str().expect("event id").to_owned();
            assert!(own_events.contains(&id), "{id} is not the tenant's");
            assert!(!other_events.contains(&id), "{id} reached the other mode");
        }
    }
}

/// A secret key's mode is its tenant's: keys it makes and rolls are of that mode, it
/// lists its mode's keys only, and it mints customer sessions of its mode, which read
/// only that tenant's customers.
#[actix_web::test]
async fn keys_and_customer_sessions_carry_their_mode() {
    let app = TestApp::new().await;
    let (test, live) = app.account("Acme").await;
    for (m, prefix, livemode) in [(&test, "sk_test_", false), (&live, "sk_live_", true)] {
        let made = app
            .by(&m.key)
            .post("/v1/api_keys", &json!({"name": "backend"}))
            .await
            .expect(201);
        assert_eq!(made.body["livemode"], livemode);
        let secret = made.body["secret"].as_str().unwrap();
        assert!(secret.starts_with(prefix), "{secret}");
        assert!(made.body["prefix"].as_str().unwrap().starts_with(prefix));
        let rolled = app
            .by(secret)
            .post(&format!("/v1/api_keys/{}/roll", made.id()), &json!({}))
            .await
            .expect(201);
        assert!(rolled.body["secret"].as_str().unwrap().starts_with(prefix));
        let keys = app.get_ok("/v1/api_keys?limit=100", &m.key).await;
        assert_eq!(keys["data"].as_array().unwrap().len(), 3, "{keys}");
        assert_mode("/v1/api_keys", &keys, livemode);
        for key in keys["data"].as_array().unwrap() {
            assert!(key["prefix"].as_str().unwrap().starts_with(prefix));
        }
    }
    // The other mode's key records are not found, so neither rolled nor revoked.
    for (m, other) in [(&test, &live), (&live, &test)] {
        for action in ["roll", "revoke"] {
            app.by(&m.key)
                .post(
                    &format!("/v1/api_keys/{}/{action}", other.key_id),
                    &json!({}),
                )
                .await
                .expect_problem(404, "resource_missing");
        }
    }

    let test_customer = fixtures::customer(&app, &test, "ada").await;
    let live_customer = fixtures::customer(&app, &live, "ada").await;
    // A customer id of the other mode gets no session.
    app.by(&test.key)
        .post(
            "/v1/customer_sessions",
            &json!({"customer_id": live_customer}),
        )
        .await
        .expect_problem(422, "validation_failed");
    for (m, customer, other_customer, livemode) in [
        (&test, &test_customer, &live_customer, false),
        (&live, &live_customer, &test_customer, true),
    ] {
        let res = app
            .by(&m.key)
            .post("/v1/customer_sessions", &json!({"customer_id": customer}))
            .await
            .expect(201);
        assert_eq!(res.body["livemode"], livemode);
        let token = res.body["token"].as_str().unwrap();
        assert_eq!(claims(token)["livemode"], livemode);
        let me = app.get_ok("/v1/portal/me", token).await;
        assert_eq!(me["livemode"], livemode);
        assert_eq!(fixtures::id(&me), *customer);
        assert!(!me.to_string().contains(other_customer.as_str()));
    }
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The sandbox is test mode's: a live tenant without a gateway of its own is refused a
/// sandbox card (by the merchant and in the portal), cannot choose the sandbox, and
/// cannot charge; the same calls work in test mode.
#[actix_web::test]
async fn live_mode_refuses_the_sandbox_gateway() {
    let app = TestApp::new().await;
    let (test, live) = app.account("Acme").await;
    let live_customer = fixtures::customer(&app, &live, "ada").await;
    app.by(&live.key)
        .post(
            &format!("/v1/customers/{live_customer}/payment_methods"),
            &json!({"token": "pm_card_visa"}),
        )
        .await
        .expect_problem(422, "live_mode_requires_gateway");
    let token = fixtures::session(&app, &live, &live_customer).await;
    app.by(&token)
        .post(
            "/v1/portal/payment_methods",
            &json!({"token": "pm_card_visa"}),
        )
        .await
        .expect_problem(422, "live_mode_requires_gateway");
    app.by(&live.key)
        .put("/v1/gateway_settings", &json!({"provider": "sandbox"}))
        .await
        .expect_problem(422, "live_mode_requires_gateway");
    // Nothing was attached or recorded for the refused cards.
    let methods = app
        .get_ok(
            &format!("/v1/customers/{live_customer}/payment_methods"),
            &live.key,
        )
        .await;
    assert_eq!(methods["data"], json!([]));
    assert_eq!(methods["livemode"], true);

    // An invoice of the live tenant cannot be charged through the sandbox, even with a
    // card on file (written as a gateway would have left it), nor can a signup's first
    // payment.
    let product = fixtures::product(&app, &live, json!({})).await;
    let plan = fixtures::plan(&app, &live, &product, 1000).await;
    fixtures::subscribe_id(&app, &live, &live_customer, &plan).await;
    let mut conn = app.sql().await;
    tenure_test_support::fixtures::payment_method(
        &mut conn,
        live.id.parse().expect("merchant id"),
        live_customer.parse().expect("customer id"),
        "pm_card_visa",
        app.clock.now(),
    )
    .await;
    app.by(&live.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": live_customer, "plan_id": plan}),
        )
        .await
        .expect_problem(422, "live_mode_requires_gateway");
    let invoice = fixtures::id(&fixtures::invoices_of(&app, &live, &live_customer).await[0]);
    app.by(&live.key)
        .post_empty(&format!("/v1/invoices/{invoice}/pay"))
        .await
        .expect_problem(422, "live_mode_requires_gateway");

    // Test mode keeps the sandbox.
    let test_customer = fixtures::customer(&app, &test, "ada").await;
    let card = fixtures::attach(&app, &test, &test_customer, "pm_card_visa").await;
    assert_eq!(card["livemode"], false);
    let settings = app.get_ok("/v1/gateway_settings", &test.key).await;
    assert_eq!(settings["provider"], "sandbox");
    assert_eq!(settings["livemode"], false);
}

/// The operator's new merchant is an account of two tenants, each with its first key.
#[actix_web::test]
async fn the_operator_creates_a_test_and_a_live_tenant() {
    const OPERATOR: &str = "op_test_0123456789abcdef0123456789abcdef";
    let app = TestApp::configured(
        tenure_test_support::TestDb::new().await,
        tenure_api::middleware::rate_limit::RateLimitConfig::disabled(),
        |state| {
            state.operator_token =
                tenure_api::auth::operator::OperatorToken::new(OPERATOR).unwrap();
        },
    )
    .await;
    let created = app
        .by(OPERATOR)
        .post("/v1/operator/merchants", &json!({"name": "Acme"}))
        .await
        .expect(201)
        .body;
    let live = &created["live"];
    assert_eq!(created["livemode"], false);
    assert_eq!(live["livemode"], true);
    assert_eq!(created["account_id"], live["account_id"]);
    assert!(created["account_id"].as_str().unwrap().starts_with("acct_"));
    assert_ne!(created["id"], live["id"]);
    for (tenant, prefix, livemode) in [(&created, "sk_test_", false), (live, "sk_live_", true)] {
        let secret = tenant["secret_key"].as_str().unwrap();
        assert!(secret.starts_with(prefix), "{secret}");
        let keys = app.get_ok("/v1/api_keys", secret).await;
        assert_eq!(keys["data"][0]["id"], tenant["api_key"]);
        assert_eq!(keys["data"][0]["livemode"], livemode);
        assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    }
}

/// Test clocks are for test mode: a live key can neither create one nor a customer on
/// one (422 `test_mode_only`), and finds none of the test tenant's.
#[actix_web::test]
async fn test_clocks_exist_in_test_mode_only() {
    let app = TestApp::new().await;
    let (test, live) = app.account("Acme").await;
    let body = json!({"frozen_time": "2027-01-01T00:00:00Z", "name": "renewals"});
    let clock = app
        .by(&test.key)
        .post("/v1/test_clocks", &body)
        .await
        .expect(201)
        .body;
    assert_eq!(clock["livemode"], false);
    let clock_id = clock["id"].as_str().unwrap();
    app.by(&live.key)
        .post("/v1/test_clocks", &body)
        .await
        .expect_problem(422, "test_mode_only");
    app.by(&live.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "live-1", "test_clock": clock_id}),
        )
        .await
        .expect_problem(422, "test_mode_only");
    app.by(&live.key)
        .get(&format!("/v1/test_clocks/{clock_id}"))
        .await
        .expect(404);
    let listed = app.get_ok("/v1/test_clocks", &live.key).await;
    assert_eq!(listed["data"], json!([]));
    // Nothing was made in the live tenant.
    let customers = app.get_ok("/v1/customers", &live.key).await;
    assert_eq!(customers["data"], json!([]));
}

/// Stripe keys follow the tenant's mode: test mode (where clocks make months pass in
/// minutes) never charges through live keys, live mode never through Stripe's test mode.
#[actix_web::test]
async fn stripe_keys_must_be_of_the_tenant_s_mode() {
    let app = TestApp::new().await;
    let (test, live) = app.account("Acme").await;
    let keys = |mode: &str| {
        json!({"provider": "stripe", "secret_key": format!("sk_{mode}_abc123"),
            "publishable_key": format!("pk_{mode}_abc123")})
    };
    let refused = app
        .by(&test.key)
        .put("/v1/gateway_settings", &keys("live"))
        .await
        .expect(422)
        .body;
    assert_eq!(refused["errors"][0]["field"], "secret_key", "{refused}");
    let refused = app
        .by(&live.key)
        .put("/v1/gateway_settings", &keys("test"))
        .await
        .expect(422)
        .body;
    assert_eq!(refused["errors"][0]["field"], "secret_key", "{refused}");
    // Nothing was saved: both tenants still use their defaults.
    for tenant in [&test, &live] {
        let settings = app.get_ok("/v1/gateway_settings", &tenant.key).await;
        assert_eq!(settings["provider"], "sandbox", "{settings}");
        assert_eq!(settings["updated_at"], Value::Null);
    }
}
