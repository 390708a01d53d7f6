//! Stock over HTTP (docs/orders.md, "Stock"): a plan's stock change, each refusal, the
//! notices the worker sends with the merchant's action (ship anyway, skip, swap), and the
//! subscriber's choice in the portal with its refusals.

use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures::{self, count_events, time};

/// Runs the worker's stock rounds until no notice is left.
pub(crate) async fn fan_out(app: &TestApp) -> usize {
    let mut notified = 0;
    loop {
        let round = tenure_engine::stock::run_stock_notices(&app.state.app, app.clock.now(), 10)
            .await
            .expect("a stock round");
        notified += round.notified;
        if round.batches == 0 {
            return notified;
        }
    }
}

struct Shop {
    product: String,
    plan: String,
    substitute: String,
    subs: Vec<(String, String)>,
}

/// A product with two EUR plans; `n` customers subscribed to the first, with a card.
async fn shop(app: &TestApp, m: &TestMerchant, n: usize) -> Shop {
    let product = fixtures::product(app, m, json!({})).await;
    let plan = fixtures::plan(app, m, &product, 1500).await;
    let substitute = fixtures::plan(app, m, &product, 1700).await;
    let mut subs = Vec::new();
    for i in 0..n {
        let customer = fixtures::customer(app, m, &format!("drinker-{i}")).await;
        fixtures::attach_default(app, m, &customer, "pm_card_visa").await;
        let sub = fixtures::subscribe_id(app, m, &customer, &plan).await;
        subs.push((customer, sub));
    }
    Shop {
        product,
        plan,
        substitute,
        subs,
    }
}

fn skipped(sub: &Value) -> usize {
    sub["skipped_renewals"]
        .as_array()
        .expect("skipped_renewals")
        .len()
}

fn scheduled_plan_changes(sub: &Value) -> Vec<Value> {
    sub["scheduled_changes"]
        .as_array()
        .expect("scheduled_changes")
        .iter()
        .filter(|c| c["type"] == "plan_change")
        .cloned()
        .collect()
}

#[actix_web::test]
async fn a_stock_change_is_validated_and_refused_where_it_cannot_apply() {
    let app = TestApp::new().await;
    let m = app.merchant("Stock").await;
    let s = shop(&app, &m, 0).await;
    let usd = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": s.product, "name": "Dollars",
                "price": {"amount": 1500, "currency": "USD"}, "interval": "month"}),
        )
        .await
        .expect(201)
        .id();
    let path = format!("/v1/plans/{}/stock", s.plan);
    let refusals = [
        (
            json!({"status": "in_stock", "expected_at": "2030-01-01T00:00:00Z"}),
            "expected_at",
        ),
        (json!({"status": "low", "next_order": "skip"}), "next_order"),
        (
            json!({"status": "in_stock", "choices": ["skip"]}),
            "choices",
        ),
        (
            json!({"status": "out_of_stock", "next_order": "swap"}),
            "substitute_plan_id",
        ),
        (
            json!({"status": "out_of_stock", "next_order": "skip", "substitute_plan_id": s.substitute}),
            "substitute_plan_id",
        ),
        (
            json!({"status": "out_of_stock", "next_order": "swap", "substitute_plan_id": s.plan}),
            "substitute_plan_id",
        ),
        (
            json!({"status": "out_of_stock", "next_order": "swap", "substitute_plan_id": usd}),
            "substitute_plan_id",
        ),
        (
            json!({"status": "discontinued", "next_order": "swap", "substitute_plan_id": "plan_nope"}),
            "substitute_plan_id",
        ),
        (
            json!({"status": "discontinued", "next_order": "swap",
            "substitute_plan_id": "plan_01jf9zd8f4e3a8r7m2k4t5n6bc"}),
            "substitute_plan_id",
        ),
    ];
    for (body, field) in refusals {
        let res = app
            .by(&m.key)
            .post(&path, &body)
            .await
            .expect_problem(422, "validation_failed");
        let fields: Vec<&str> = res.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    // An unknown status is refused before anything else.
    let res = app.by(&m.key).post(&path, &json!({"status": "gone"})).await;
    assert!(matches!(res.status.as_u16(), 400 | 422), "{}", res.status);
    // Another merchant's plan is not found.
    let other = app.merchant("Elsewhere").await;
    app.by(&other.key)
        .post(&path, &json!({"status": "low"}))
        .await
        .expect_problem(404, "resource_missing");
    // Nothing changed.
    let plan = app.get_ok(&format!("/v1/plans/{}", s.plan), &m.key).await;
    assert_eq!(
        plan["stock"],
        json!({"status": "in_stock", "expected_at": null})
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM stock_notices").await,
        0
    );
}

#[actix_web::test]
async fn out_of_stock_with_skip_notifies_each_subscriber_once_and_skips_their_next_order() {
    let app = TestApp::new().await;
    let m = app.merchant("Stock").await;
    let s = shop(&app, &m, 3).await;
    // A subscriber of the substitute plan is not affected.
    let bystander_customer = fixtures::customer(&app, &m, "bystander").await;
    let bystander = fixtures::subscribe_id(&app, &m, &bystander_customer, &s.substitute).await;

    let res = app
        .by(&m.key)
        .post(
            &format!("/v1/plans/{}/stock", s.plan),
            &json!({"status": "out_of_stock", "expected_at": "2030-02-01T00:00:00Z",
                "next_order": "skip"}),
        )
        .await
        .expect(202);
    let notice = res.body.clone();
    assert_eq!(notice["object"], "stock_notice");
    assert_eq!(notice["notified"], 0);
    assert!(notice["done_at"].is_null());
    assert_eq!(notice["livemode"], false);
    let plan = app.get_ok(&format!("/v1/plans/{}", s.plan), &m.key).await;
    assert_eq!(plan["stock"]["status"], "out_of_stock");
    assert_eq!(
        time(&plan["stock"]["expected_at"]),
        time(&json!("2030-02-01T00:00:00Z"))
    );
    let updated = fixtures::events(&app, &m, "plan.updated").await;
    assert_eq!(
        updated[0]["data"]["previous_attributes"]["stock"]["status"],
        "in_stock"
    );

    assert_eq!(fan_out(&app).await, 3);
    assert_eq!(fan_out(&app).await, 0, "nobody is notified twice");
    let id = notice["id"].as_str().expect("id");
    let progress = app
        .get_ok(&format!("/v1/plans/{}/stock_notices/{id}", s.plan), &m.key)
        .await;
    assert_eq!(progress["notified"], 3);
    assert!(!progress["done_at"].is_null());
    let listed = app
        .get_ok(&format!("/v1/plans/{}/stock_notices", s.plan), &m.key)
        .await;
    assert_eq!(listed[0]["id"], id);

    for (customer, sub) in &s.subs {
        assert_eq!(
            count_events(&app, sub, "subscription.stock_notice").await,
            1
        );
        assert_eq!(
            count_events(&app, sub, "subscription.renewal_skip_scheduled").await,
            1
        );
        let shown = app
            .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
            .await;
        assert_eq!(skipped(&shown), 1);
        assert_eq!(shown["skipped_renewals"][0]["requested_by"], "merchant");
        let token = fixtures::session(&app, &m, customer).await;
        let stock = app
            .get_ok(&format!("/v1/portal/subscriptions/{sub}/stock"), &token)
            .await;
        assert_eq!(stock["stock"]["status"], "out_of_stock");
        assert_eq!(stock["notice"]["next_order"], "skip");
        assert_eq!(stock["notice"]["merchant_action"], "skip");
        assert_eq!(
            stock["notice"]["choices"],
            json!([]),
            "nothing offered to pick"
        );
        // Nothing offered: a choice is refused.
        app.by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{sub}/stock_choice"),
                &json!({"choice": "ship_anyway"}),
            )
            .await
            .expect_problem(422, "validation_failed");
    }
    assert_eq!(
        count_events(&app, &bystander, "subscription.stock_notice").await,
        0
    );
    let event = &fixtures::events(&app, &m, "subscription.stock_notice").await[0];
    assert_eq!(
        event["data"]["object"]["object"],
        "subscription_stock_notice"
    );
    assert_eq!(event["data"]["object"]["stock"]["status"], "out_of_stock");
}

#[actix_web::test]
async fn the_subscriber_chooses_among_the_offered_actions() {
    let app = TestApp::new().await;
    let m = app.merchant("Stock").await;
    let s = shop(&app, &m, 2).await;
    let (customer, sub) = s.subs[0].clone();
    let (other_customer, other_sub) = s.subs[1].clone();
    let token = fixtures::session(&app, &m, &customer).await;
    let choice_path = format!("/v1/portal/subscriptions/{sub}/stock_choice");

    // Before any notice: nothing to choose.
    app.by(&token)
        .post(&choice_path, &json!({"choice": "skip"}))
        .await
        .expect_problem(409, "no_stock_notice");
    let stock = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}/stock"), &token)
        .await;
    assert!(stock["notice"].is_null());
    assert_eq!(stock["stock"]["status"], "in_stock");

    app.by(&m.key)
        .post(
            &format!("/v1/plans/{}/stock", s.plan),
            &json!({"status": "discontinued", "next_order": "swap",
                "substitute_plan_id": s.substitute, "choices": ["skip", "ship_anyway"]}),
        )
        .await
        .expect(202);
    assert_eq!(fan_out(&app).await, 2);
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let swaps = scheduled_plan_changes(&shown);
    assert_eq!(swaps.len(), 1, "the merchant's swap at the next renewal");
    assert_eq!(
        time(&swaps[0]["due_at"]),
        time(&shown["current_period"]["end"])
    );
    let stock = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}/stock"), &token)
        .await;
    assert_eq!(stock["notice"]["next_order"], "swap");
    assert_eq!(
        stock["notice"]["choices"],
        json!(["ship_anyway", "skip", "swap"])
    );

    // Another customer's subscription is not found; a stale If-Match is refused.
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{other_sub}/stock_choice"),
            &json!({"choice": "skip"}),
        )
        .await
        .expect_problem(404, "resource_missing");
    app.request(actix_web::http::Method::POST, &choice_path)
        .bearer(&token)
        .header("if-match", "\"stale\"")
        .json(&json!({"choice": "skip"}))
        .send()
        .await
        .expect_problem(412, "precondition_failed");

    // Skip instead: the swap is taken back, the next renewal skipped.
    let chosen = app
        .by(&token)
        .post(&choice_path, &json!({"choice": "skip"}))
        .await
        .expect(200);
    assert!(chosen.header("etag").is_some());
    assert_eq!(chosen.body["notice"]["choice"], "skip");
    assert_eq!(chosen.body["notice"]["next_order"], "skip");
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert!(scheduled_plan_changes(&shown).is_empty());
    assert_eq!(skipped(&shown), 1);
    // Ship anyway after all: the skip is taken back too.
    app.by(&token)
        .post(&choice_path, &json!({"choice": "ship_anyway"}))
        .await
        .expect(200);
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert!(scheduled_plan_changes(&shown).is_empty());
    assert_eq!(skipped(&shown), 0);
    // And back to the swap.
    let swapped = app
        .by(&token)
        .post(&choice_path, &json!({"choice": "swap"}))
        .await
        .expect(200);
    assert_eq!(swapped.body["notice"]["next_order"], "swap");
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(scheduled_plan_changes(&shown).len(), 1);
    assert_eq!(
        count_events(&app, &sub, "subscription.stock_choice_made").await,
        3
    );
    assert_eq!(
        count_events(&app, &sub, "subscription.stock_notice").await,
        1
    );
    // The other subscriber's next order is still the merchant's swap.
    let other = app
        .get_ok(&format!("/v1/subscriptions/{other_sub}"), &m.key)
        .await;
    assert_eq!(scheduled_plan_changes(&other).len(), 1);
    let _ = other_customer;

    // A newer change of the plan replaces the notice before it reaches the subscriber.
    app.by(&m.key)
        .post(
            &format!("/v1/plans/{}/stock", s.plan),
            &json!({"status": "in_stock"}),
        )
        .await
        .expect(202);
    app.by(&token)
        .post(&choice_path, &json!({"choice": "skip"}))
        .await
        .expect_problem(409, "stock_notice_superseded");
    assert_eq!(fan_out(&app).await, 2);
    let stock = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}/stock"), &token)
        .await;
    assert_eq!(stock["stock"]["status"], "in_stock");
    assert_eq!(stock["notice"]["merchant_action"], "ship_anyway");
    assert_eq!(stock["notice"]["choices"], json!([]));
}
