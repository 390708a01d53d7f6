//! Quantities over HTTP: a product's limits, subscribing with a quantity, changing it
//! (merchant and portal) with a preview that matches what the next renewal bills, and
//! each refusal.

use chrono::Duration;
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;

use crate::fixtures::{self, count_events, time};

fn amounts(invoice: &Value, kind: &str) -> Vec<i64> {
    invoice["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == kind)
        .map(|l| l["amount"]["amount"].as_i64().expect("amount"))
        .collect()
}

async fn shippable_product(app: &TestApp, m: &TestMerchant, min: u32, max: u32) -> String {
    let res = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Beans", "shippable": true, "min_quantity": min, "max_quantity": max}),
        )
        .await
        .expect(201);
    assert_eq!(res.body["shippable"], true);
    assert_eq!(res.body["min_quantity"], min);
    assert_eq!(res.body["max_quantity"], max);
    res.id()
}

#[actix_web::test]
async fn a_quantity_change_is_previewed_prorated_and_billed_on_the_renewal() {
    let app = TestApp::new().await;
    let m = app.merchant("Q").await;
    let product = shippable_product(&app, &m, 1, 5).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "q").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;

    // Beyond the product's limits: refused, nothing created.
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan, "quantity": 6}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let sub = app
        .by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": plan, "quantity": 2}),
        )
        .await
        .expect(201);
    assert_eq!(sub.body["quantity"], 2);
    let id = sub.id();
    let period_end = time(&sub.body["current_period"]["end"]);
    let first = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(first.len(), 1);
    assert_eq!(amounts(&first[0], "plan"), vec![2000], "unit price × 2");
    let description = first[0]["lines"][0]["description"].as_str().unwrap();
    assert!(description.starts_with("Plan 1000 × 2 ("), "{description}");
    assert_eq!(first[0]["lines"][0]["quantity"], 2);
    assert_eq!(first[0]["lines"][0]["unit_amount"]["amount"], 1000);

    // The portal offers the product's limits.
    let token = fixtures::session(&app, &m, &customer).await;
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(
        shown["available_actions"]["change_quantity"],
        json!({"min": 1, "max": 5})
    );

    // Half way through the period the customer previews, then takes, 3 units.
    app.clock.advance(Duration::days(15));
    let token = fixtures::session(&app, &m, &customer).await;
    let preview = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{id}/change_quantity/preview"),
            &json!({"quantity": 3}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (preview["from"].clone(), preview["to"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(preview["period_price"]["amount"], 3000);
    assert_eq!(time(&preview["invoiced_at"]), period_end);
    let lines: Vec<i64> = preview["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"]["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0] < 0 && lines[1] > 0);
    assert_eq!(
        preview["amount_due_now"]["amount"].as_i64().unwrap(),
        lines[0] + lines[1]
    );
    let changed = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{id}/change_quantity"),
            &json!({"quantity": 3}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(changed["quantity"], 3);
    assert_eq!(
        count_events(&app, &id, "subscription.quantity_changed").await,
        1
    );
    let events = fixtures::events(&app, &m, "subscription.quantity_changed").await;
    assert_eq!(events[0]["data"]["object"]["quantity"], 3);
    assert_eq!(events[0]["data"]["previous_attributes"]["quantity"], 2);

    // Same quantity, beyond the limits: refused with a clear problem.
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{id}/change_quantity"),
            &json!({"quantity": 3}),
        )
        .await
        .expect_problem(409, "same_quantity");
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{id}/change_quantity"),
            &json!({"quantity": 9}),
        )
        .await
        .expect_problem(422, "validation_failed");

    // The renewal bills 3 units and the previewed proration, to the minor unit.
    app.clock.advance_to(period_end + Duration::minutes(1));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    let all = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(all.len(), 2);
    assert_eq!(amounts(&all[1], "plan"), vec![3000]);
    assert_eq!(all[1]["lines"][0]["quantity"], 3);
    assert!(
        all[1]["lines"].as_array().unwrap()[1..]
            .iter()
            .all(|l| l["quantity"] == 1),
        "proration lines count one"
    );
    assert_eq!(amounts(&all[1], "proration"), lines);
    assert_eq!(
        all[1]["total"]["amount"].as_i64().unwrap(),
        3000 + lines[0] + lines[1]
    );

    // The next renewal has nothing pending: the batch path bills 3 units too.
    let next_end = time(&all[1]["period_end"]);
    app.clock.advance_to(next_end + Duration::minutes(1));
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    let all = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(all.len(), 3);
    assert_eq!(amounts(&all[2], "plan"), vec![3000]);
    assert_eq!(all[2]["lines"][0]["quantity"], 3);
    assert_eq!(all[2]["lines"].as_array().unwrap().len(), 1);

    // MRR counts every unit.
    let from = (app.clock.now() - Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        .replace('+', "%2B");
    let metrics = app
        .get_ok(&format!("/v1/metrics?from={from}"), &m.key)
        .await;
    assert_eq!(metrics["currencies"][0]["currency"], "EUR");
    assert_eq!(metrics["currencies"][0]["mrr"], 3000, "{metrics}");
}

#[actix_web::test]
async fn a_product_sold_one_at_a_time_offers_no_quantity_change() {
    let app = TestApp::new().await;
    let m = app.merchant("Q1").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "one").await;
    let id = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(shown["quantity"], 1);
    assert!(shown["available_actions"]["change_quantity"].is_null());
    for (who, path) in [
        (&m.key, format!("/v1/subscriptions/{id}/change_quantity")),
        (
            &token,
            format!("/v1/portal/subscriptions/{id}/change_quantity/preview"),
        ),
    ] {
        app.by(who)
            .post(&path, &json!({"quantity": 2}))
            .await
            .expect_problem(422, "quantity_change_not_allowed");
    }
    // Limits that cannot hold are refused on their field.
    app.by(&m.key)
        .patch(
            &format!("/v1/products/{product}"),
            &json!({"min_quantity": 4, "max_quantity": 2}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let raised = app
        .by(&m.key)
        .patch(
            &format!("/v1/products/{product}"),
            &json!({"max_quantity": 4}),
        )
        .await
        .expect(200);
    assert_eq!(raised.body["max_quantity"], 4);
    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(
        shown["available_actions"]["change_quantity"],
        json!({"min": 1, "max": 4})
    );
}
