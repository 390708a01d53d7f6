//! Skipping renewals over HTTP: merchant and portal skip and unskip, what the portal
//! offers, every refusal, the renewal that passes without an invoice, and a test clock's
//! year of monthly renewals with two skips and a quantity change.

use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, count_events, time};

fn skipped(sub: &Value) -> Vec<DateTime<Utc>> {
    sub["skipped_renewals"]
        .as_array()
        .expect("skipped_renewals")
        .iter()
        .map(|s| time(&s["renewal_at"]))
        .collect()
}

async fn skipping_product(app: &TestApp, m: &TestMerchant, policy: Value) -> String {
    let fields = json!({"min_quantity": 1, "max_quantity": 5, "portal_policy": policy});
    fixtures::shippable_product(app, m, "Beans", fields).await
}

#[actix_web::test]
async fn a_subscriber_skips_unskips_and_the_skipped_renewal_bills_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("Skip").await;
    let product = skipping_product(
        &app,
        &m,
        json!({"allow_skip": true, "max_consecutive_skips": 2}),
    )
    .await;
    let shown = app.get_ok(&format!("/v1/products/{product}"), &m.key).await;
    assert_eq!(shown["portal_policy"]["allow_skip"], true);
    assert_eq!(shown["portal_policy"]["max_consecutive_skips"], 2);
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::paying_customer(&app, &m, "skipper", "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    let first_end = time(&sub["current_period"]["end"]);
    assert!(skipped(&sub).is_empty());
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 1);

    // The portal offers the next renewal.
    let token = fixtures::session(&app, &m, &customer).await;
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(
        time(&shown["available_actions"]["skip"]["renewal_at"]),
        first_end
    );
    assert_eq!(
        shown["available_actions"]["skip"]["max_consecutive_skips"],
        2
    );
    assert_eq!(shown["available_actions"]["unskip"], false);

    // Skip twice: the next two renewals; a third is beyond the limit.
    let once = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200)
        .body;
    assert_eq!(skipped(&once), vec![first_end]);
    assert_eq!(once["skipped_renewals"][0]["requested_by"], "customer");
    assert_eq!(once["available_actions"]["unskip"], true);
    let second_end = time(&once["available_actions"]["skip"]["renewal_at"]);
    assert!(second_end > first_end);
    let twice = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200)
        .body;
    assert_eq!(skipped(&twice), vec![first_end, second_end]);
    assert!(twice["available_actions"]["skip"].is_null());
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect_problem(422, "too_many_consecutive_skips");
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_skip_scheduled").await,
        2
    );

    // Unskip gives back the last one; the merchant sees the same list.
    let back = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/unskip"))
        .await
        .expect(200)
        .body;
    assert_eq!(skipped(&back), vec![first_end]);
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_skip_removed").await,
        1
    );
    let merchant_view = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(skipped(&merchant_view), vec![first_end]);
    let removed = fixtures::events(&app, &m, "subscription.renewal_skip_removed").await;
    assert_eq!(
        removed[0]["data"]["previous_attributes"]["skipped_renewals"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Nothing to announce before a skipped renewal, and the upcoming invoice is the one
    // after it.
    let upcoming = app
        .get_ok(&format!("/v1/subscriptions/{id}/upcoming_invoice"), &m.key)
        .await;
    assert_eq!(time(&upcoming["period_start"]), second_end);

    // The skipped renewal comes: the period advances, no invoice, no charge.
    app.clock.advance_to(first_end + Duration::minutes(1));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    let after = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(after["status"], "active");
    assert_eq!(time(&after["current_period"]["start"]), first_end);
    assert_eq!(time(&after["current_period"]["end"]), second_end);
    assert!(skipped(&after).is_empty());
    assert_eq!(after["skipped_in_a_row"], 1);
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 1);
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_skipped").await,
        1
    );
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 0);
    assert_eq!(count_events(&app, &id, "invoice.upcoming").await, 0);

    // The renewal after it bills as usual.
    app.clock.advance_to(second_end + Duration::minutes(1));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(time(&invoices[1]["period_start"]), second_end);
    assert_eq!(invoices[1]["total"]["amount"], 1000);
    let after = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(after["skipped_in_a_row"], 0);
}

#[actix_web::test]
async fn merchants_skip_without_the_policy_and_customers_are_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("SkipM").await;
    // Skipping is off unless the merchant allows it.
    let product = skipping_product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "no-skip").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert!(shown["available_actions"]["skip"].is_null());
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect_problem(422, "skip_not_allowed");
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/unskip"))
        .await
        .expect_problem(409, "no_renewal_skipped");

    // The merchant skips; the customer may not take the merchant's skip back.
    let skipped_by_merchant = app
        .by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/skip"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        skipped_by_merchant["skipped_renewals"][0]["requested_by"],
        "merchant"
    );
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(shown["available_actions"]["unskip"], false);
    assert_eq!(skipped(&shown).len(), 1, "the portal shows the skip too");
    app.by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/unskip"))
        .await
        .expect_problem(422, "skip_not_removable");
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/unskip"))
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/unskip"))
        .await
        .expect_problem(409, "no_renewal_skipped");

    // A pending cancellation or pause stands in the way, as does a paused subscription.
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/pause"),
            &json!({"start": {"type": "period_end"}}),
        )
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/skip"))
        .await
        .expect_problem(409, "pause_scheduled");
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/pause"),
            &json!({"start": {"type": "now"}}),
        )
        .await
        .expect_problem(409, "pause_scheduled");

    // Another customer's subscription is not found.
    let other = fixtures::customer(&app, &m, "other").await;
    let other_token = fixtures::session(&app, &m, &other).await;
    app.by(&other_token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn a_test_clock_year_with_two_skips_and_a_quantity_change_bills_exactly() {
    let app = TestApp::new().await;
    let m = app.merchant("SkipClock").await;
    let product = skipping_product(&app, &m, json!({"allow_skip": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let anchor = Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap();
    let month = |k: u32| anchor.checked_add_months(Months::new(k)).unwrap();
    let clock = app
        .by(&m.key)
        .post("/v1/test_clocks", &json!({"frozen_time": anchor}))
        .await
        .expect(201)
        .id();
    let customer = app
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "clocked", "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let advance = async |to: DateTime<Utc>| {
        app.by(&m.key)
            .post(
                &format!("/v1/test_clocks/{clock}/advance"),
                &json!({"frozen_time": to}),
            )
            .await
            .expect(200);
        assert!(
            tenure_engine::test_clocks::advance_next(&app.state.app)
                .await
                .expect("advance")
        );
    };

    // Skip the first renewal (month 1) at the clock's time.
    let first = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200)
        .body;
    assert_eq!(skipped(&first), vec![month(1)]);
    // In month 4, three units from then on; in month 5, skip the month-6 renewal.
    advance(month(3) + Duration::days(3)).await;
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/change_quantity"),
            &json!({"quantity": 3}),
        )
        .await
        .expect(200);
    advance(month(5) + Duration::days(3)).await;
    let second = app
        .by(&token)
        .post_empty(&format!("/v1/portal/subscriptions/{id}/skip"))
        .await
        .expect(200)
        .body;
    assert_eq!(skipped(&second), vec![month(6)]);
    advance(month(12) + Duration::hours(1)).await;

    // The first period and eleven renewals of the twelve: months 1 and 6 passed unbilled.
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    let starts: Vec<DateTime<Utc>> = invoices.iter().map(|i| time(&i["period_start"])).collect();
    let expected: Vec<DateTime<Utc>> = (0..=12)
        .filter(|k| ![1, 6].contains(k))
        .map(month)
        .collect();
    assert_eq!(starts, expected);
    assert!(invoices.iter().all(|i| i["status"] == "paid"));
    let plan_amounts: Vec<i64> = invoices
        .iter()
        .map(|i| i["lines"][0]["amount"]["amount"].as_i64().unwrap())
        .collect();
    // One unit until month 3 (invoiced at months 0, 2, 3), three units from month 4 on.
    assert_eq!(
        plan_amounts,
        vec![
            1000, 1000, 1000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000
        ]
    );
    assert_eq!(
        count_events(&app, &id, "subscription.renewal_skipped").await,
        2
    );
    assert_eq!(count_events(&app, &id, "subscription.renewed").await, 10);
    let now = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
    assert_eq!(now["status"], "active");
    assert_eq!(time(&now["current_period"]["start"]), month(12));
}

#[actix_web::test]
async fn a_renewal_unskipped_after_its_notice_window_opened_is_announced_before_it_bills() {
    let app = TestApp::new().await;
    let m = app.merchant("SkipNotice").await;
    let product = skipping_product(&app, &m, json!({"allow_skip": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::paying_customer(&app, &m, "unskipper", "pm_card_visa").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    let id = fixtures::id(&sub);
    let first_end = time(&sub["current_period"]["end"]);
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/skip"))
        .await
        .expect(200);

    // Inside the 7-day notice window: nothing is announced for a skipped renewal.
    app.clock.advance_to(first_end - Duration::days(3));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("notice round");
    assert_eq!(count_events(&app, &id, "invoice.upcoming").await, 0);

    // Taken back: the renewal bills after all, so it is announced first.
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{id}/unskip"))
        .await
        .expect(200);
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("notice round");
    assert_eq!(count_events(&app, &id, "invoice.upcoming").await, 1);
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("notice round");
    assert_eq!(count_events(&app, &id, "invoice.upcoming").await, 1);

    app.clock.advance_to(first_end + Duration::minutes(1));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    assert_eq!(fixtures::invoices_of(&app, &m, &customer).await.len(), 2);
}
