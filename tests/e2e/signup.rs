//! Signup with a synchronous first payment through the sandbox: paid at once (`active`),
//! declined (`incomplete` with what to do next, then a new card and the portal's pay make
//! it `active`), expired after 23 hours (`incomplete_expired`), and cancelled while
//! incomplete; a promotion code's discount and a credit balance on the first invoice
//! charged; a signup on a test clock.

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::lifecycle::run_incomplete_expiry;

use crate::fixtures::{self, Catalog, attach, attach_default, events, id, invoices_of, time};

struct Signup {
    app: TestApp,
    m: TestMerchant,
    catalog: Catalog,
    customer: String,
    token: String,
}

/// A merchant with the standard catalog and a customer whose default card is `card`.
async fn signup(card: &str) -> Signup {
    let app = TestApp::new().await;
    let m = app.merchant("Signups").await;
    let catalog = fixtures::catalog(&app, &m, json!({"cancellation_mode": "request"})).await;
    let customer = fixtures::customer(&app, &m, "newcomer").await;
    attach_default(&app, &m, &customer, card).await;
    let token = fixtures::session(&app, &m, &customer).await;
    Signup {
        app,
        m,
        catalog,
        customer,
        token,
    }
}

impl Signup {
    async fn portal_subscribe(&self) -> Value {
        self.app
            .by(&self.token)
            .post(
                "/v1/portal/subscriptions",
                &json!({"plan_id": self.catalog.base}),
            )
            .await
            .expect(201)
            .body
    }

    async fn merchant_subscribe(&self) -> Value {
        fixtures::subscribe(&self.app, &self.m, &self.customer, &self.catalog.base).await
    }

    async fn count(&self, event_type: &str) -> usize {
        events(&self.app, &self.m, event_type).await.len()
    }
}

#[actix_web::test]
async fn a_signup_whose_card_works_is_active_at_once() {
    let s = signup("pm_card_visa").await;
    let sub = s.merchant_subscribe().await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["next_action"], Value::Null);
    let invoice = &invoices_of(&s.app, &s.m, &s.customer).await[0];
    assert_eq!(invoice["status"], "paid", "{invoice}");
    assert_eq!(s.count("subscription.activated").await, 1);
    let created = events(&s.app, &s.m, "subscription.created").await;
    assert_eq!(created[0]["data"]["object"]["status"], "incomplete");
}

#[actix_web::test]
async fn a_declined_signup_is_incomplete_until_a_new_card_pays_it() {
    let s = signup("pm_card_chargeDeclined").await;
    let sub = s.portal_subscribe().await;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    let invoice = id(&invoices_of(&s.app, &s.m, &s.customer).await[0]);
    assert_eq!(
        sub["next_action"],
        json!({"type": "update_payment_method", "invoice_id": invoice,
            "decline_code": "card_declined"})
    );
    // Only leaving is offered, at once and with nothing to ask, whatever the policy.
    let actions = &sub["available_actions"];
    assert_eq!(actions["pause"], Value::Null, "{actions}");
    assert_eq!(actions["change_plan"], Value::Null, "{actions}");
    assert_eq!(actions["change_quantity"], Value::Null, "{actions}");
    assert_eq!(actions["cancel"]["mode"], "immediate", "{actions}");
    assert_eq!(actions["cancel"]["requires_reason"], false, "{actions}");
    let sub_id = id(&sub);
    s.app
        .by(&s.token)
        .post(
            &format!("/v1/portal/subscriptions/{sub_id}/pause"),
            &json!({}),
        )
        .await
        .expect_problem(409, "subscription_incomplete");
    let open = s
        .app
        .get_ok(&format!("/v1/invoices/{invoice}"), &s.m.key)
        .await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["attempt_count"], 1);
    assert_eq!(open["next_payment_attempt_at"], Value::Null, "not dunned");
    assert_eq!(s.count("subscription.past_due").await, 0);

    // A new card, then the portal's pay.
    s.app
        .by(&s.token)
        .post(
            "/v1/portal/payment_methods",
            &json!({"token": "pm_card_visa", "set_default": true}),
        )
        .await
        .expect(201);
    let paid = s
        .app
        .by(&s.token)
        .post_empty(&format!("/v1/portal/invoices/{invoice}/pay"))
        .await
        .expect(200)
        .body;
    assert_eq!(paid["status"], "paid", "{paid}");
    let active = s
        .app
        .get_ok(&format!("/v1/subscriptions/{sub_id}"), &s.m.key)
        .await;
    assert_eq!(active["status"], "active");
    assert_eq!(active["current_period"], sub["current_period"]);
    assert_eq!(s.count("subscription.activated").await, 1);
    // Past the deadline nothing changes: it is paid for.
    s.app.clock.advance(Duration::hours(24));
    let expired = run_incomplete_expiry(&s.app.state.app, s.app.clock.now(), 100)
        .await
        .unwrap();
    assert_eq!(expired, 0);
}

#[actix_web::test]
async fn an_unpaid_signup_expires_after_23_hours_and_owes_nothing() {
    let s = signup("pm_card_insufficientFunds").await;
    let sub = s.merchant_subscribe().await;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    assert_eq!(sub["next_action"]["type"], "update_payment_method");
    assert_eq!(sub["next_action"]["decline_code"], "insufficient_funds");
    let sub_id = id(&sub);
    s.app
        .clock
        .advance(Duration::hours(23) - Duration::seconds(1));
    let app = &s.app.state.app;
    assert_eq!(
        run_incomplete_expiry(app, s.app.clock.now(), 100)
            .await
            .unwrap(),
        0
    );
    s.app.clock.advance(Duration::seconds(1));
    assert_eq!(
        run_incomplete_expiry(app, s.app.clock.now(), 100)
            .await
            .unwrap(),
        1
    );
    let expired = s
        .app
        .get_ok(&format!("/v1/subscriptions/{sub_id}"), &s.m.key)
        .await;
    assert_eq!(expired["status"], "incomplete_expired", "{expired}");
    assert!(expired["ended_at"].is_string());
    let invoice = &invoices_of(&s.app, &s.m, &s.customer).await[0];
    assert_eq!(invoice["status"], "void", "{invoice}");
    let announced = events(&s.app, &s.m, "subscription.incomplete_expired").await;
    assert_eq!(announced.len(), 1);
    assert_eq!(
        announced[0]["data"]["object"]["status"],
        "incomplete_expired"
    );
    assert_eq!(s.count("invoice.voided").await, 1);
    // Nothing can be paid or done any more.
    s.app
        .by(&s.m.key)
        .post_empty(&format!("/v1/invoices/{}/pay", id(invoice)))
        .await
        .expect_problem(409, "invoice_not_payable");
    s.app
        .by(&s.m.key)
        .post(&format!("/v1/subscriptions/{sub_id}/cancel"), &json!({}))
        .await
        .expect_problem(409, "subscription_incomplete_expired");
    let listed = s
        .app
        .get_ok("/v1/subscriptions?status=incomplete_expired", &s.m.key)
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn an_incomplete_signup_cancelled_from_the_portal_ends_at_once_and_owes_nothing() {
    let s = signup("pm_card_chargeDeclined").await;
    let sub = s.portal_subscribe().await;
    let sub_id = id(&sub);
    let canceled = fixtures::portal_cancel(&s.app, &s.token, &sub_id, json!({})).await;
    assert_eq!(canceled["subscription"]["status"], "canceled", "{canceled}");
    assert_eq!(canceled["cancellation_request"], Value::Null, "{canceled}");
    let invoice = &invoices_of(&s.app, &s.m, &s.customer).await[0];
    assert_eq!(invoice["status"], "void", "{invoice}");
    assert_eq!(s.count("cancellation_request.created").await, 0);
    // A second card attached later has nothing to pay.
    attach(&s.app, &s.m, &s.customer, "pm_card_visa").await;
    assert_eq!(
        s.app
            .count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded'")
            .await,
        0
    );
}

#[actix_web::test]
async fn a_signup_redeeming_a_code_is_charged_the_discounted_first_invoice() {
    let s = signup("pm_card_visa").await;
    let coupon = s
        .app
        .by(&s.m.key)
        .post(
            "/v1/coupons",
            &json!({"name": "Welcome", "percent_off": 20, "duration": "once"}),
        )
        .await
        .expect(201)
        .id();
    s.app
        .by(&s.m.key)
        .post(
            "/v1/promotion_codes",
            &json!({"coupon_id": coupon, "code": "WELCOME"}),
        )
        .await
        .expect(201);
    let sub = s
        .app
        .by(&s.token)
        .post(
            "/v1/portal/subscriptions",
            &json!({"plan_id": s.catalog.base, "promotion_code": "welcome"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["next_action"], Value::Null);
    let invoice = &invoices_of(&s.app, &s.m, &s.customer).await[0];
    assert_eq!(invoice["status"], "paid", "{invoice}");
    // The base plan costs 1000: the charge took the 20 % off.
    assert_eq!(invoice["total"]["amount"], 800, "{invoice}");
    assert_eq!(invoice["amount_paid"]["amount"], 800, "{invoice}");
    assert_eq!(
        s.app
            .count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded' AND amount = 800")
            .await,
        1
    );
    assert_eq!(s.count("subscription.activated").await, 1);
}

#[actix_web::test]
async fn a_first_invoice_the_credit_balance_pays_activates_the_signup_without_a_charge() {
    let s = signup("pm_card_visa").await;
    s.app
        .request(
            actix_web::http::Method::POST,
            &format!("/v1/customers/{}/balance_transactions", s.customer),
        )
        .bearer(&s.m.key)
        .header("tenure-agent", "support-bot")
        .json(&json!({"amount": {"amount": 1500, "currency": "EUR"}, "reason": "Goodwill"}))
        .send()
        .await
        .expect(201);
    let sub = s.merchant_subscribe().await;
    assert_eq!(sub["status"], "active", "{sub}");
    assert_eq!(sub["next_action"], Value::Null);
    let invoice = &invoices_of(&s.app, &s.m, &s.customer).await[0];
    assert_eq!(invoice["status"], "paid", "{invoice}");
    assert_eq!(invoice["amount_due"]["amount"], 0, "{invoice}");
    assert_eq!(invoice["attempt_count"], 0, "{invoice}");
    assert_eq!(s.app.count("SELECT count(*) AS n FROM payments").await, 0);
    assert_eq!(s.count("subscription.activated").await, 1);
    let created = events(&s.app, &s.m, "subscription.created").await;
    assert_eq!(created[0]["data"]["object"]["status"], "incomplete");
}

#[actix_web::test]
async fn a_signup_on_a_test_clock_is_charged_at_the_clock_s_time_and_expires_as_it_advances() {
    let app = TestApp::new().await;
    let m = app.merchant("Clock signups").await;
    let catalog = fixtures::catalog(&app, &m, json!({})).await;
    let at = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
    let clock = app
        .by(&m.key)
        .post("/v1/test_clocks", &json!({"frozen_time": at}))
        .await
        .expect(201)
        .id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "on-a-clock", "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    attach_default(&app, &m, &customer, "pm_card_chargeDeclined").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &catalog.base).await;
    assert_eq!(sub["status"], "incomplete", "{sub}");
    assert_eq!(sub["next_action"]["type"], "update_payment_method");
    assert_eq!(time(&sub["created_at"]), at);
    let sub_id = id(&sub);
    let invoice = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(invoice["attempt_count"], 1, "{invoice}");
    assert_eq!(time(&invoice["created_at"]), at);

    // Real time passing the deadline leaves the clock's signup alone.
    let later = app.clock.now() + Duration::days(2);
    assert_eq!(
        run_incomplete_expiry(&app.state.app, later, 100)
            .await
            .unwrap(),
        0
    );
    // The clock's advance steps to the deadline itself, and expires it there.
    let target = at + Duration::days(2);
    app.by(&m.key)
        .post(
            &format!("/v1/test_clocks/{clock}/advance"),
            &json!({"frozen_time": target}),
        )
        .await
        .expect(200);
    assert!(
        tenure_engine::test_clocks::advance_next(&app.state.app)
            .await
            .expect("advance")
    );
    let expired = app
        .get_ok(&format!("/v1/subscriptions/{sub_id}"), &m.key)
        .await;
    assert_eq!(expired["status"], "incomplete_expired", "{expired}");
    assert_eq!(time(&expired["ended_at"]), at + Duration::hours(23));
    let invoice = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(invoice["status"], "void", "{invoice}");
    let announced = events(&app, &m, "subscription.incomplete_expired").await;
    assert_eq!(announced.len(), 1);
    assert_eq!(time(&announced[0]["created_at"]), at + Duration::hours(23));
}
