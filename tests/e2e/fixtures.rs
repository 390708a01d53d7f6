//! What many tests share: small builders for the resources most tests need (through the
//! API, as a merchant would make them), and the readers of what the API answers.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tenure_api::middleware::rate_limit::RateLimitConfig;
use tenure_app::billing::gateways::{GatewayConnector, Gateways};
use tenure_app::secrets::Keyring;
use tenure_domain::outbound::TargetPolicy;
use tenure_e2e::localstripe::{LocalStripe, PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET};
use tenure_e2e::{Caller, TestApp, TestDb, TestMerchant};
use tenure_engine::stripe::StripeConnector;

pub async fn product(app: &TestApp, m: &TestMerchant, policy: Value) -> String {
    app.by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Coffee club", "portal_policy": policy}),
        )
        .await
        .expect(201)
        .id()
}

pub async fn plan(app: &TestApp, m: &TestMerchant, product: &str, amount: i64) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": format!("Plan {amount}"),
            "price": {"amount": amount, "currency": "EUR"}, "interval": "month"}),
        )
        .await
        .expect(201)
        .id()
}

/// A monthly EUR plan with `trial_days` of trial.
pub async fn plan_with(
    app: &TestApp,
    m: &TestMerchant,
    product: &str,
    amount: i64,
    trial_days: u32,
) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": format!("Plan {amount}/{trial_days}"),
            "price": {"amount": amount, "currency": "EUR"}, "interval": "month",
            "trial_days": trial_days}),
        )
        .await
        .expect(201)
        .id()
}

/// A product with three plans: a trial plan, a base plan and a pricier one.
pub struct Catalog {
    pub product: String,
    pub trial: String,
    pub base: String,
    pub premium: String,
}

pub async fn catalog(app: &TestApp, m: &TestMerchant, policy: Value) -> Catalog {
    let product = product(app, m, policy).await;
    Catalog {
        trial: plan_with(app, m, &product, 1000, 14).await,
        base: plan_with(app, m, &product, 1000, 0).await,
        premium: plan_with(app, m, &product, 2000, 0).await,
        product,
    }
}

pub async fn customer(app: &TestApp, m: &TestMerchant, external_id: &str) -> String {
    app.by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": external_id, "email": format!("{external_id}@example.com")}),
        )
        .await
        .expect(201)
        .id()
}

/// Attaches a sandbox card (`pm_card_visa`, …) to the customer: the payment method.
pub async fn attach(app: &TestApp, m: &TestMerchant, customer: &str, token: &str) -> Value {
    attach_with(app, m, customer, json!({"token": token})).await
}

/// Attaches a sandbox card as the customer's default (`set_default`).
pub async fn attach_default(app: &TestApp, m: &TestMerchant, customer: &str, token: &str) -> Value {
    attach_with(
        app,
        m,
        customer,
        json!({"token": token, "set_default": true}),
    )
    .await
}

async fn attach_with(app: &TestApp, m: &TestMerchant, customer: &str, body: Value) -> Value {
    app.by(&m.key)
        .post(&format!("/v1/customers/{customer}/payment_methods"), &body)
        .await
        .expect(201)
        .body
}

/// Attaches a sandbox card (`pm_card_visa`, …) to the customer; its id.
pub async fn attach_card(app: &TestApp, m: &TestMerchant, customer: &str, token: &str) -> String {
    id(&attach(app, m, customer, token).await)
}

/// A portal token for one customer.
pub async fn session(app: &TestApp, m: &TestMerchant, customer: &str) -> String {
    let res = app
        .by(&m.key)
        .post("/v1/customer_sessions", &json!({"customer_id": customer}))
        .await
        .expect(201);
    res.body["token"].as_str().expect("token").to_owned()
}

/// The uuid behind a customer's TypeID, for hand-written SQL.
pub fn customer_uuid(customer: &str) -> uuid::Uuid {
    customer
        .parse::<tenure_domain::ids::CustomerId>()
        .expect("a customer id")
        .uuid()
}

/// The uuid behind a subscription's TypeID, for hand-written SQL.
pub fn subscription_uuid(sub: &str) -> uuid::Uuid {
    sub.parse::<tenure_domain::ids::SubscriptionId>()
        .expect("a subscription id")
        .uuid()
}

/// Subscribes `customer` to `plan` as the merchant; the created subscription.
pub async fn subscribe(app: &TestApp, m: &TestMerchant, customer: &str, plan: &str) -> Value {
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan}),
        )
        .await
        .expect(201)
        .body
}

/// [`subscribe`]: the subscription's id.
pub async fn subscribe_id(app: &TestApp, m: &TestMerchant, customer: &str, plan: &str) -> String {
    id(&subscribe(app, m, customer, plan).await)
}

/// A product that ships (`shippable: true`) named `name`, with `fields` added to its
/// body (quantity limits, a portal policy).
pub async fn shippable_product(
    app: &TestApp,
    m: &TestMerchant,
    name: &str,
    fields: Value,
) -> String {
    let mut body = json!({"name": name, "shippable": true});
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    app.by(&m.key)
        .post("/v1/products", &body)
        .await
        .expect(201)
        .id()
}

/// A monthly EUR 12.00 plan of a new shippable product ("Coffee") taking at most
/// `max_quantity` per subscription.
pub async fn shippable_plan(app: &TestApp, m: &TestMerchant, max_quantity: u32) -> String {
    let product = shippable_product(app, m, "Coffee", json!({"max_quantity": max_quantity})).await;
    plan(app, m, &product, 1200).await
}

/// The address the shipping tests send to.
pub fn paris() -> Value {
    json!({"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "city": "Paris",
        "postal_code": "75002", "country": "fr"})
}

/// Adds [`paris`] to the customer's address book, as the merchant: the address's id.
pub async fn add_address(app: &TestApp, m: &TestMerchant, customer: &str) -> String {
    app.by(&m.key)
        .post(&format!("/v1/customers/{customer}/addresses"), &paris())
        .await
        .expect(201)
        .id()
}

/// A customer whose default payment method is the sandbox card `card`.
pub async fn paying_customer(
    app: &TestApp,
    m: &TestMerchant,
    external_id: &str,
    card: &str,
) -> String {
    let customer = customer(app, m, external_id).await;
    attach_default(app, m, &customer, card).await;
    customer
}

/// Subscribes `customer` to `plan` as the merchant, shipping to `address`: the
/// subscription's id.
pub async fn subscribe_shipping(
    app: &TestApp,
    m: &TestMerchant,
    customer: &str,
    plan: &str,
    address: &str,
) -> String {
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan, "shipping_address_id": address}),
        )
        .await
        .expect(201)
        .id()
}

/// A monthly EUR plan at `amount` of a new product with the default portal policy.
pub async fn product_plan(app: &TestApp, m: &TestMerchant, amount: i64) -> String {
    let product = product(app, m, json!({})).await;
    plan(app, m, &product, amount).await
}

/// The operator's secrets key of the Stripe tests (base64 of 32 bytes).
pub fn operator_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

/// The application with an operator secrets key and Stripe pointed at `stripe`.
pub async fn stripe_app(stripe: &LocalStripe) -> TestApp {
    let base = stripe.base();
    TestApp::configured(TestDb::new().await, RateLimitConfig::disabled(), |state| {
        state.app.webhook_targets = TargetPolicy::AllowPrivate;
        let connector: Arc<dyn GatewayConnector> =
            Arc::new(StripeConnector::new(&base, std::time::Duration::from_secs(5)).unwrap());
        state.app.gateways = Gateways::new(
            Some(Keyring::new(&operator_key(), &[]).unwrap()),
            Some(connector),
        );
    })
    .await
}

/// Sets the merchant's gateway to Stripe with localstripe's keys: the settings answered.
pub async fn connect_stripe(app: &TestApp, m: &TestMerchant) -> Value {
    app.by(&m.key)
        .put(
            "/v1/gateway_settings",
            &json!({"provider": "stripe", "secret_key": SECRET_KEY,
                "webhook_secret": WEBHOOK_SECRET, "publishable_key": PUBLISHABLE_KEY}),
        )
        .await
        .expect(200)
        .body
}

/// A localstripe of the test's own, the application pointed at it, and a merchant named
/// `name` whose gateway is Stripe. Keep `stripe` alive: dropping it stops the emulator.
pub struct StripeShop {
    pub stripe: LocalStripe,
    pub app: TestApp,
    pub m: TestMerchant,
}

/// [`StripeShop`], or `None` when localstripe does not start here (the Stripe tests then
/// return at once, as `LocalStripe::start` documents).
pub async fn stripe_shop(name: &str) -> Option<StripeShop> {
    let stripe = LocalStripe::start().await?;
    let app = stripe_app(&stripe).await;
    let m = app.merchant(name).await;
    connect_stripe(&app, &m).await;
    Some(StripeShop { stripe, app, m })
}

/// The `id` of a resource.
pub fn id(resource: &Value) -> String {
    resource["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {resource}"))
        .to_owned()
}

/// The ids of a list's `data`, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(id)
        .collect()
}

/// An RFC 3339 timestamp of a response.
pub fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

/// The merchant's events of one type (at most 100), newest first.
pub async fn events(app: &TestApp, m: &TestMerchant, event_type: &str) -> Vec<Value> {
    app.get_ok(&format!("/v1/events?type={event_type}&limit=100"), &m.key)
        .await["data"]
        .as_array()
        .expect("events")
        .clone()
}

/// How many `event_type` events the outbox holds for one resource.
pub async fn count_events(app: &TestApp, resource: &str, event_type: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM events WHERE resource_id = '{resource}' \
         AND event_type = '{event_type}'"
    ))
    .await
}

/// A subscription's status, as the merchant reads it.
pub async fn status(app: &TestApp, m: &TestMerchant, sub: &str) -> String {
    app.get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// A customer's invoices, oldest first.
pub async fn invoices_of(app: &TestApp, m: &TestMerchant, customer: &str) -> Vec<Value> {
    let mut list = app
        .get_ok(
            &format!("/v1/invoices?customer_id={customer}&limit=100"),
            &m.key,
        )
        .await["data"]
        .as_array()
        .expect("invoices")
        .clone();
    list.reverse();
    list
}

/// A merchant's cancellation of a subscription with `body` (`{"timing": "period_end"}`,
/// …): the subscription.
pub async fn cancel(app: &TestApp, m: &TestMerchant, sub: &str, body: Value) -> Value {
    app.by(&m.key)
        .post(&format!("/v1/subscriptions/{sub}/cancel"), &body)
        .await
        .expect(200)
        .body
}

/// A customer's cancellation from the portal with `body` (`{"reason": …}`, …): the answer,
/// the `subscription` and, in request mode, its `cancellation_request`.
pub async fn portal_cancel(app: &TestApp, token: &str, sub: &str, body: Value) -> Value {
    app.by(token)
        .post(&format!("/v1/portal/subscriptions/{sub}/cancel"), &body)
        .await
        .expect(200)
        .body
}

/// A customer's request (the product's default mode) to cancel for `reason`: the
/// `cancellation_request`.
pub async fn request_cancellation(app: &TestApp, token: &str, sub: &str, reason: &str) -> Value {
    portal_cancel(app, token, sub, json!({"reason": reason})).await["cancellation_request"].clone()
}

/// Each request (a method, a path and maybe a JSON body) sent by `caller` is answered 404
/// `resource_missing`: it names nothing that caller may see.
pub async fn assert_missing(caller: Caller<'_>, requests: &[(&str, String, Option<Value>)]) {
    for (method, path, body) in requests {
        let res = caller.send(method, path, body.as_ref()).await;
        assert_eq!(res.status.as_u16(), 404, "{method} {path}: {}", res.body);
        res.expect_problem(404, "resource_missing");
    }
}

/// A list's `data` is empty.
#[track_caller]
pub fn assert_empty(list: &Value) {
    assert_eq!(list["data"], json!([]), "{list}");
}

/// The bytes of `s` in hex, as `pg_dump` writes a `bytea`.
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Waits until `n` sessions of this test's database wait for a lock (a transaction the
/// test holds open has stopped them where it wants them); panics after 30 s.
pub async fn wait_for_lock_waiters(app: &TestApp, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = app
            .count(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} sessions to wait for a lock ({waiting} do)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
