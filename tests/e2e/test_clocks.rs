//! Test clocks over HTTP: a year of monthly renewals on a clock advanced by the worker
//! loop, a trial ending and dunning at the clock's time, real-time rounds leaving clock
//! customers alone, and the refusals.

use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, events, invoices_of, status, time};

/// A clock customer of `m` on a new clock at `frozen_time`, with `card` as its default
/// payment method: (clock, customer).
async fn clock_customer(
    app: &TestApp,
    m: &TestMerchant,
    frozen_time: DateTime<Utc>,
    card: &str,
) -> (String, String) {
    let (clock, customer) = clock_customer_without_card(app, m, frozen_time).await;
    fixtures::attach_default(app, m, &customer, card).await;
    (clock, customer)
}

/// [`clock_customer`] with no payment method yet: one added after subscribing leaves the
/// first invoice to the clock's rounds (a signup with a card pays it in the request).
async fn clock_customer_without_card(
    app: &TestApp,
    m: &TestMerchant,
    frozen_time: DateTime<Utc>,
) -> (String, String) {
    let clock = app
        .by(&m.key)
        .post(
            "/v1/test_clocks",
            &json!({"frozen_time": frozen_time, "name": "e2e"}),
        )
        .await
        .expect(201);
    assert_eq!(clock.body["object"], "test_clock");
    assert_eq!(clock.body["status"], "ready");
    assert_eq!(time(&clock.body["frozen_time"]), frozen_time);
    let clock = clock.id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": format!("on-{clock}"), "test_clock": clock}),
        )
        .await
        .expect(201);
    assert_eq!(customer.body["test_clock"], clock.as_str());
    assert_eq!(time(&customer.body["created_at"]), frozen_time);
    (clock, customer.id())
}

async fn advance(app: &TestApp, m: &TestMerchant, clock: &str, to: DateTime<Utc>) -> Value {
    let res = app
        .by(&m.key)
        .post(
            &format!("/v1/test_clocks/{clock}/advance"),
            &json!({"frozen_time": to}),
        )
        .await
        .expect(200);
    assert_eq!(res.body["status"], "advancing");
    assert_eq!(time(&res.body["advancing_to"]), to);
    res.body
}

/// Advances the clock to `to` and runs the clock worker's advance directly.
async fn advance_now(app: &TestApp, m: &TestMerchant, clock: &str, to: DateTime<Utc>) {
    advance(app, m, clock, to).await;
    assert!(
        tenure_engine::test_clocks::advance_next(&app.state.app)
            .await
            .expect("advance")
    );
    let clock = app
        .get_ok(&format!("/v1/test_clocks/{clock}"), &m.key)
        .await;
    assert_eq!(clock["status"], "ready");
    assert_eq!(time(&clock["frozen_time"]), to);
}

fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap()
}

#[actix_web::test]
async fn a_clock_advanced_a_year_renews_a_monthly_subscription_exactly_twelve_times() {
    let app = TestApp::new().await;
    let m = app.merchant("Clocks").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1250).await;
    let (clock, customer) = clock_customer(&app, &m, anchor(), "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    assert_eq!(time(&sub["current_period"]["start"]), anchor());

    // The worker loop, as `tenure serve` runs it; the test polls the clock.
    let worker = actix_web::rt::spawn(tenure_engine::loops::test_clock_loop(
        app.state.app.clone(),
        std::time::Duration::from_millis(20),
    ));
    let target = anchor().checked_add_months(Months::new(12)).unwrap();
    advance(&app, &m, &clock, target).await;
    let mut seen = Value::Null;
    for _ in 0..1500 {
        seen = app
            .get_ok(&format!("/v1/test_clocks/{clock}"), &m.key)
            .await;
        if seen["status"] == "ready" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.abort();
    assert_eq!(seen["status"], "ready", "{seen}");
    assert_eq!(time(&seen["frozen_time"]), target);
    assert_eq!(seen["advancing_to"], Value::Null);

    // The first period and exactly twelve renewals, each invoiced at its period's start
    // (the 31st or the month's last day) and paid in full.
    let invoices = invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 13, "{invoices:?}");
    for (k, invoice) in invoices.iter().enumerate() {
        let months = u32::try_from(k).unwrap();
        assert_eq!(
            time(&invoice["period_start"]),
            anchor().checked_add_months(Months::new(months)).unwrap()
        );
        assert_eq!(invoice["status"], "paid", "{invoice}");
        assert_eq!(invoice["amount_paid"]["amount"], 1250);
        assert_eq!(invoice["total"]["amount"], 1250);
        assert_eq!(invoice["attempt_count"], 1);
    }
    let renewals = &invoices[1..];
    assert_eq!(renewals.len(), 12);
    let renewed = events(&app, &m, "subscription.renewed").await;
    assert_eq!(renewed.len(), 12);
    let mut renewed_at: Vec<DateTime<Utc>> =
        renewed.iter().map(|e| time(&e["created_at"])).collect();
    renewed_at.sort();
    for (k, at) in renewed_at.iter().enumerate() {
        let months = u32::try_from(k + 1).unwrap();
        assert_eq!(
            *at,
            anchor().checked_add_months(Months::new(months)).unwrap()
        );
    }
    assert_eq!(events(&app, &m, "invoice.paid").await.len(), 13);
    let id = fixtures::id(&sub);
    let now = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(now["status"], "active");
    assert_eq!(time(&now["current_period"]["start"]), target);

    let advancing = events(&app, &m, "test_clock.advancing").await;
    assert_eq!(advancing.len(), 1);
    assert_eq!(advancing[0]["data"]["object"]["status"], "advancing");
    assert_eq!(
        advancing[0]["data"]["previous_attributes"]["status"],
        "ready"
    );
    let ready = events(&app, &m, "test_clock.ready").await;
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0]["data"]["object"]["status"], "ready");
    assert_eq!(time(&ready[0]["data"]["object"]["frozen_time"]), target);
}

#[actix_web::test]
async fn a_trial_ends_at_the_clock_time() {
    let app = TestApp::new().await;
    let m = app.merchant("Trials").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan_with(&app, &m, &product, 900, 14).await;
    let (clock, customer) = clock_customer(&app, &m, anchor(), "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    assert_eq!(sub["status"], "trialing");
    let trial_end = anchor() + Duration::days(14);
    assert_eq!(time(&sub["trial_end"]), trial_end);

    advance_now(&app, &m, &clock, anchor() + Duration::days(10)).await;
    assert_eq!(status(&app, &m, &id).await, "trialing");
    assert!(invoices_of(&app, &m, &customer).await.is_empty());

    advance_now(&app, &m, &clock, anchor() + Duration::days(20)).await;
    assert_eq!(status(&app, &m, &id).await, "active");
    let ended = events(&app, &m, "subscription.trial_ended").await;
    assert_eq!(ended.len(), 1);
    assert_eq!(time(&ended[0]["created_at"]), trial_end);
    let invoices = invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(time(&invoices[0]["period_start"]), trial_end);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["amount_paid"]["amount"], 900);
    assert_eq!(time(&invoices[0]["paid_at"]), trial_end);
}

#[actix_web::test]
async fn a_declining_card_goes_through_dunning_as_clock_time_passes() {
    let app = TestApp::new().await;
    let m = app.merchant("Dunning").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1500).await;
    let (clock, customer) = clock_customer_without_card(&app, &m, anchor()).await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_chargeDeclined").await;
    let id = fixtures::id(&sub);

    // The default policy retries 1, 3 and 5 days after the first failure.
    advance_now(&app, &m, &clock, anchor() + Duration::days(2)).await;
    assert_eq!(status(&app, &m, &id).await, "past_due");
    let invoice = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["attempt_count"], 2);
    assert_eq!(
        time(&invoice["next_payment_attempt_at"]),
        anchor() + Duration::days(3)
    );

    advance_now(&app, &m, &clock, anchor() + Duration::days(10)).await;
    assert_eq!(status(&app, &m, &id).await, "canceled");
    let invoice = &invoices_of(&app, &m, &customer).await[0];
    assert_eq!(invoice["status"], "uncollectible");
    assert_eq!(invoice["attempt_count"], 4);
    assert_eq!(invoice["amount_paid"]["amount"], 0);
    let mut failed_at: Vec<DateTime<Utc>> = events(&app, &m, "invoice.payment_failed")
        .await
        .iter()
        .map(|e| time(&e["created_at"]))
        .collect();
    failed_at.sort();
    assert_eq!(
        failed_at,
        [0, 1, 3, 5].map(|d| anchor() + Duration::days(d)).to_vec()
    );
    assert_eq!(events(&app, &m, "subscription.past_due").await.len(), 1);
    let canceled = events(&app, &m, "subscription.canceled").await;
    assert_eq!(canceled.len(), 1);
    assert_eq!(
        time(&canceled[0]["created_at"]),
        anchor() + Duration::days(5)
    );
}

#[actix_web::test]
async fn real_time_rounds_leave_clock_customers_alone() {
    let app = TestApp::new().await;
    let m = app.merchant("Apart").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 700).await;
    // Long before real time: a real-time round would see its periods as ended.
    let past = Utc.with_ymd_and_hms(2024, 6, 1, 8, 0, 0).unwrap();
    // Both add their card after subscribing, leaving the first charge to the rounds.
    let (clock, customer) = clock_customer_without_card(&app, &m, past).await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::id(&sub);
    // A customer in real time beside it is charged as ever.
    let real = fixtures::customer(&app, &m, "real").await;
    fixtures::subscribe(&app, &m, &real, &plan).await;
    fixtures::attach_default(&app, &m, &real, "pm_card_visa").await;

    app.clock.advance(Duration::days(1));
    let handled = run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("round");
    assert_eq!(handled, 1, "only the real-time customer's first charge");
    tenure_engine::lifecycle::run_due_changes(&app.state.app, app.clock.now(), 100)
        .await
        .expect("changes");
    tenure_engine::notices::run_due_notices(&app.state.app, app.clock.now(), 100)
        .await
        .expect("notices");
    assert_eq!(invoices_of(&app, &m, &real).await[0]["status"], "paid");
    let invoices = invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "open");
    assert_eq!(invoices[0]["attempt_count"], 0);
    let now = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(time(&now["current_period"]["start"]), past);

    // A second on the clock charges what was due at its time, and nothing more.
    advance_now(&app, &m, &clock, past + Duration::seconds(1)).await;
    let invoices = invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "paid");
}

#[actix_web::test]
async fn advances_are_refused_backwards_too_far_while_advancing_and_for_unknown_clocks() {
    let app = TestApp::new().await;
    let m = app.merchant("Refusals").await;
    let by = app.by(&m.key);
    let clock = by
        .post("/v1/test_clocks", &json!({"frozen_time": anchor()}))
        .await
        .expect(201)
        .id();
    let path = format!("/v1/test_clocks/{clock}/advance");
    for to in [
        anchor(),
        anchor() - Duration::days(1),
        anchor().checked_add_months(Months::new(24)).unwrap() + Duration::seconds(1),
        Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap(),
    ] {
        let res = by
            .post(&path, &json!({"frozen_time": to}))
            .await
            .expect_problem(422, "validation_failed");
        assert!(res.body.to_string().contains("frozen_time"), "{}", res.body);
    }
    for body in [
        json!({"frozen_time": "tomorrow"}),
        json!({}),
        json!({"frozen_time": 5}),
    ] {
        let res = by.post(&path, &body).await;
        assert!(res.status.is_client_error(), "{body}: {}", res.status);
    }
    by.post(
        "/v1/test_clocks",
        &json!({"frozen_time": "1999-12-31T23:59:59Z"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Two years is the most one call may move it.
    let two_years = anchor().checked_add_months(Months::new(24)).unwrap();
    advance(&app, &m, &clock, two_years).await;
    by.post(
        &path,
        &json!({"frozen_time": two_years + Duration::days(1)}),
    )
    .await
    .expect_problem(409, "test_clock_advancing");
    by.delete(&format!("/v1/test_clocks/{clock}"))
        .await
        .expect_problem(409, "test_clock_advancing");
    assert!(
        tenure_engine::test_clocks::advance_next(&app.state.app)
            .await
            .expect("advance")
    );
    let ready = app
        .get_ok(&format!("/v1/test_clocks/{clock}"), &m.key)
        .await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(time(&ready["frozen_time"]), two_years);

    // Unknown clocks, another merchant's, and deleted ones.
    let unknown = "clock_01jf9zb3f4e3a8r7m2k4t5n6bc";
    by.get(&format!("/v1/test_clocks/{unknown}"))
        .await
        .expect_problem(404, "resource_missing");
    by.post(
        &format!("/v1/test_clocks/{unknown}/advance"),
        &json!({"frozen_time": two_years}),
    )
    .await
    .expect_problem(404, "resource_missing");
    let other = app.merchant("Other").await;
    app.by(&other.key)
        .get(&format!("/v1/test_clocks/{clock}"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&other.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "theirs", "test_clock": clock}),
        )
        .await
        .expect(422);
    let listed = app.get_ok("/v1/test_clocks", &m.key).await;
    assert_eq!(fixtures::ids(&listed), vec![clock.clone()]);
    let deleted = by
        .delete(&format!("/v1/test_clocks/{clock}"))
        .await
        .expect(200);
    assert_eq!(deleted.body["deleted"], true);
    by.get(&format!("/v1/test_clocks/{clock}"))
        .await
        .expect_problem(404, "resource_missing");
    by.post(
        "/v1/customers",
        &json!({"external_id": "late", "test_clock": clock}),
    )
    .await
    .expect(422);
    by.post(
        "/v1/customers",
        &json!({"external_id": "bad", "test_clock": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc"}),
    )
    .await
    .expect(422);
    fixtures::assert_empty(&app.get_ok("/v1/test_clocks", &m.key).await);
}

#[actix_web::test]
async fn a_merchant_s_changes_to_a_clock_customer_happen_at_the_clock_s_time() {
    let app = TestApp::new().await;
    let m = app.merchant("Clock changes").await;
    let product = fixtures::product(&app, &m, json!({"max_pause_days": 30})).await;
    let plan = fixtures::plan(&app, &m, &product, 1250).await;
    let (_clock, customer) = clock_customer(&app, &m, anchor(), "pm_card_visa").await;
    let sub = fixtures::id(&fixtures::subscribe(&app, &m, &customer, &plan).await);
    let pause = format!("/v1/subscriptions/{sub}/pause");
    let body = |extra: Value| {
        let mut body =
            json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 1}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // A plain change, then one an agent makes beyond the policy with an override: both
    // at the clock's time, not the real time of the request.
    for extra in [
        json!({}),
        json!({"override": {"reason": "Travelling for a while"}}),
    ] {
        let paused = app
            .by(&m.key)
            .post(&pause, &body(extra))
            .await
            .expect(200)
            .body;
        assert_eq!(paused["status"], "paused", "{paused}");
        assert!(at_clock_time(&paused["updated_at"]), "{paused}");
        app.by(&m.key)
            .post_empty(&format!("/v1/subscriptions/{sub}/resume"))
            .await
            .expect(200);
    }
    let paused = events(&app, &m, "subscription.paused").await;
    assert_eq!(paused.len(), 2);
    for event in &paused {
        assert!(at_clock_time(&event["created_at"]), "{event}");
    }
    let resumed = events(&app, &m, "subscription.resumed").await;
    assert_eq!(resumed.len(), 2);
    assert!(resumed.iter().all(|e| at_clock_time(&e["created_at"])));

    // Money an agent adds for the customer is dated in the clock's time as well.
    let item = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/invoice_items"),
            &json!({"amount": 300, "description": "Gift wrap"}),
        )
        .await
        .expect(201)
        .body;
    assert!(at_clock_time(&item["created_at"]), "{item}");
    let credit = app
        .by(&m.key)
        .post(
            &format!("/v1/customers/{customer}/balance_transactions"),
            &json!({"amount": {"amount": 200, "currency": "EUR"}, "reason": "Late delivery"}),
        )
        .await
        .expect(201)
        .body;
    assert!(at_clock_time(&credit["created_at"]), "{credit}");
}

/// Whether `value` is the clock's frozen [`anchor`]: successive changes of one row at a
/// frozen time are stamped a microsecond apart (a row's `updated_at` only increases, so
/// that its `If-Match` tag changes), and real time is a month away.
fn at_clock_time(value: &Value) -> bool {
    let at = time(value);
    at >= anchor() && at - anchor() < Duration::milliseconds(1)
}
