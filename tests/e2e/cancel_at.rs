//! A merchant cancels at a chosen date (`cancel_at`, as in Stripe): the subscription
//! carries on, renewing as usual, until the lifecycle worker ends it at that instant; the
//! date is a scheduled change that can be removed; a date not ahead or too far ahead is
//! refused.

use chrono::Duration;
use serde_json::json;
use tenure_domain::clock::Clock;
use tenure_domain::subscription::MAX_CANCEL_AT_DAYS;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::lifecycle::run_due_changes;
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, count_events, time};

struct World {
    m: TestMerchant,
    sub: String,
}

async fn world(app: &TestApp) -> World {
    let m = app.merchant("Cancel at").await;
    let product = fixtures::product(app, &m, json!({})).await;
    let plan = fixtures::plan(app, &m, &product, 1000).await;
    let customer = fixtures::customer(app, &m, "cancel-at").await;
    fixtures::attach_default(app, &m, &customer, "pm_card_visa").await;
    let sub = fixtures::subscribe_id(app, &m, &customer, &plan).await;
    World { m, sub }
}

/// What the worker does when the clock passes a date: due changes, then renewals.
async fn rounds(app: &TestApp) {
    run_due_changes(&app.state.app, app.clock.now(), 100)
        .await
        .expect("lifecycle round");
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
}

#[actix_web::test]
async fn a_merchant_cancels_at_a_chosen_date_and_the_worker_ends_it_then() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    // Forty-five days ahead: after the first renewal, in the middle of the second period.
    let cancel_at = tenure_domain::time::truncate_to_micros(app.clock.now() + Duration::days(45));
    let scheduled = fixtures::cancel(
        &app,
        &w.m,
        &w.sub,
        json!({"cancel_at": cancel_at.to_rfc3339(), "reason": "other", "message": "Contract ends"}),
    )
    .await;
    assert_eq!(scheduled["status"], "active");
    assert_eq!(time(&scheduled["cancel_at"]), cancel_at);
    assert_eq!(time(&scheduled["billing_ends_at"]), cancel_at);
    let change = &scheduled["scheduled_changes"][0];
    assert_eq!(change["type"], "cancel");
    assert_eq!(time(&change["due_at"]), cancel_at);
    assert_eq!(change["requested_by"], "merchant");
    assert_eq!(
        scheduled["cancellation_details"]["message"],
        "Contract ends"
    );
    let event = count_events(&app, &w.sub, "subscription.cancel_scheduled").await;
    assert_eq!(event, 1);

    // The subscription view shows it too, and it renews at its period's end meanwhile.
    let read = app
        .get_ok(&format!("/v1/subscriptions/{}", w.sub), &w.m.key)
        .await;
    assert_eq!(read["cancel_at"], scheduled["cancel_at"]);
    app.clock
        .advance_to(time(&read["current_period"]["end"]) + Duration::minutes(1));
    rounds(&app).await;
    let renewed = app
        .get_ok(&format!("/v1/subscriptions/{}", w.sub), &w.m.key)
        .await;
    assert_eq!(renewed["status"], "active");
    assert_eq!(count_events(&app, &w.sub, "subscription.renewed").await, 1);
    let second_period_end = time(&renewed["current_period"]["end"]);
    assert!(second_period_end > cancel_at, "{renewed}");
    // Access is projected through the period the date falls in, now that it began.
    assert_eq!(time(&renewed["access_until"]), second_period_end);

    // Just before the date nothing happens; once past, it ends at the date itself.
    app.clock.advance_to(cancel_at - Duration::minutes(1));
    rounds(&app).await;
    assert_eq!(fixtures::status(&app, &w.m, &w.sub).await, "active");
    app.clock.advance_to(cancel_at + Duration::hours(2));
    rounds(&app).await;
    let ended = app
        .get_ok(&format!("/v1/subscriptions/{}", w.sub), &w.m.key)
        .await;
    assert_eq!(ended["status"], "canceled");
    assert_eq!(time(&ended["ended_at"]), cancel_at);
    // Access runs through the period paid for (the default `access`).
    assert_eq!(time(&ended["access_until"]), second_period_end);
    assert_eq!(ended["scheduled_changes"], json!([]));
    let canceled = fixtures::events(&app, &w.m, "subscription.canceled").await;
    assert_eq!(canceled.len(), 1);
    assert_eq!(canceled[0]["resource_id"], w.sub.as_str());
    assert_eq!(time(&canceled[0]["data"]["object"]["ended_at"]), cancel_at);
}

#[actix_web::test]
async fn a_chosen_cancellation_date_can_be_removed_like_other_scheduled_changes() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let cancel_at = app.clock.now() + Duration::days(10);
    let scheduled = fixtures::cancel(
        &app,
        &w.m,
        &w.sub,
        json!({"cancel_at": cancel_at.to_rfc3339(), "access": "immediately"}),
    )
    .await;
    let change = scheduled["scheduled_changes"][0]["id"].as_str().unwrap();
    let kept = app
        .by(&w.m.key)
        .delete(&format!(
            "/v1/subscriptions/{}/scheduled_changes/{change}",
            w.sub
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(kept["cancel_at"], json!(null));
    assert_eq!(kept["scheduled_changes"], json!([]));
    // Removing a cancellation withdraws it (docs/events.md).
    assert_eq!(
        count_events(&app, &w.sub, "subscription.cancellation_withdrawn").await,
        1
    );
    app.clock.advance_to(cancel_at + Duration::days(1));
    rounds(&app).await;
    assert_eq!(fixtures::status(&app, &w.m, &w.sub).await, "active");
}

#[actix_web::test]
async fn a_cancellation_date_not_ahead_or_too_far_ahead_is_refused() {
    let app = TestApp::new().await;
    let w = world(&app).await;
    let path = format!("/v1/subscriptions/{}/cancel", w.sub);
    let now = app.clock.now();
    let too_far = now + Duration::days(i64::from(MAX_CANCEL_AT_DAYS) + 1);
    for body in [
        json!({"cancel_at": (now - Duration::days(1)).to_rfc3339()}),
        json!({"cancel_at": (now - Duration::seconds(1)).to_rfc3339()}),
        json!({"cancel_at": too_far.to_rfc3339()}),
        json!({"cancel_at": (now + Duration::days(3)).to_rfc3339(), "timing": "now"}),
    ] {
        let res = app
            .by(&w.m.key)
            .post(&path, &body)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["field"], "cancel_at",
            "{body}: {}",
            res.body
        );
    }
    app.by(&w.m.key)
        .post(&path, &json!({"cancel_at": "next tuesday"}))
        .await
        .expect_problem(422, "validation_failed");
    // Nothing was scheduled, and customers cannot choose a date at all.
    assert_eq!(fixtures::status(&app, &w.m, &w.sub).await, "active");
    assert_eq!(
        count_events(&app, &w.sub, "subscription.cancel_scheduled").await,
        0
    );
    let sub = app
        .get_ok(&format!("/v1/subscriptions/{}", w.sub), &w.m.key)
        .await;
    assert_eq!(sub["cancel_at"], json!(null));
    let customer = sub["customer_id"].as_str().unwrap();
    let token = fixtures::session(&app, &w.m, customer).await;
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{}/cancel", w.sub),
            &json!({"reason": "other", "cancel_at": (now + Duration::days(3)).to_rfc3339()}),
        )
        .await
        .expect_problem(422, "validation_failed");
}
