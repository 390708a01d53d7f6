//! Small builders for the resources most tests need.

use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

pub async fn product(app: &TestApp, m: &TestMerchant, policy: Value) -> String {
    app.post("/v1/products")
        .bearer(&m.key)
        .json(&json!({"name": "Coffee club", "portal_policy": policy}))
        .send()
        .await
        .expect(201)
        .id()
}

pub async fn plan(app: &TestApp, m: &TestMerchant, product: &str, amount: i64) -> String {
    app.post("/v1/plans")
        .bearer(&m.key)
        .json(
            &json!({"product_id": product, "name": format!("Plan {amount}"),
            "price": {"amount": amount, "currency": "EUR"}, "interval": "month"}),
        )
        .send()
        .await
        .expect(201)
        .id()
}

pub async fn customer(app: &TestApp, m: &TestMerchant, external_id: &str) -> String {
    app.post("/v1/customers")
        .bearer(&m.key)
        .json(&json!({"external_id": external_id, "email": format!("{external_id}@example.com")}))
        .send()
        .await
        .expect(201)
        .id()
}

/// Attaches a sandbox card (`pm_card_visa`, …) to the customer; its id.
pub async fn attach_card(app: &TestApp, m: &TestMerchant, customer: &str, token: &str) -> String {
    app.post(&format!("/v1/customers/{customer}/payment_methods"))
        .bearer(&m.key)
        .json(&json!({"token": token}))
        .send()
        .await
        .expect(201)
        .id()
}

/// A portal token for one customer.
pub async fn session(app: &TestApp, m: &TestMerchant, customer: &str) -> String {
    let res = app
        .post("/v1/customer_sessions")
        .bearer(&m.key)
        .json(&json!({"customer_id": customer}))
        .send()
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
    app.post("/v1/subscriptions")
        .bearer(&m.key)
        .json(&json!({"customer_id": customer, "plan_id": plan}))
        .send()
        .await
        .expect(201)
        .body
}
