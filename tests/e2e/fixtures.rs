//! Small builders for the resources most tests need.

use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

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

/// Attaches a sandbox card (`pm_card_visa`, …) to the customer; its id.
pub async fn attach_card(app: &TestApp, m: &TestMerchant, customer: &str, token: &str) -> String {
    app.by(&m.key)
        .post(
            &format!("/v1/customers/{customer}/payment_methods"),
            &json!({"token": token}),
        )
        .await
        .expect(201)
        .id()
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
