//! Products and plans.

use serde_json::json;
use tenure_e2e::TestApp;

use crate::fixtures;

#[actix_web::test]
async fn products_carry_their_portal_policy() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let res = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "  Coffee club ", "description": "Beans",
                "portal_policy": {"allow_pause": false, "cancellation_mode": "immediate",
                    "notice_period_days": 30}}),
        )
        .await
        .expect(201);
    assert!(res.body["id"].as_str().unwrap().starts_with("prod_"));
    assert_eq!(res.body["name"], "Coffee club");
    let policy = &res.body["portal_policy"];
    assert_eq!(policy["allow_pause"], false);
    assert_eq!(
        policy["allow_cancel"], true,
        "defaults fill what is not given"
    );
    assert_eq!(policy["cancellation_mode"], "immediate");
    assert_eq!(policy["notice_period_days"], 30);
    assert!(res.header("etag").is_some());

    let id = res.id();
    let etag = res.header("etag").unwrap().to_owned();
    let updated = app
        .patch(&format!("/v1/products/{id}"))
        .bearer(&m.key)
        .header("if-match", &etag)
        .json(&json!({"portal_policy": {"allow_pause": true}, "description": null}))
        .send()
        .await
        .expect(200);
    assert_eq!(updated.body["portal_policy"]["allow_pause"], true);
    assert_eq!(
        updated.body["portal_policy"]["cancellation_mode"],
        "immediate"
    );
    assert_eq!(updated.body["description"], serde_json::Value::Null);
    app.patch(&format!("/v1/products/{id}"))
        .bearer(&m.key)
        .header("if-match", &etag)
        .json(&json!({"name": "stale"}))
        .send()
        .await
        .expect_problem(412, "precondition_failed");

    let archived = app
        .by(&m.key)
        .post_empty(&format!("/v1/products/{id}/archive"))
        .await
        .expect(200);
    assert_eq!(archived.body["active"], false);
    let listed = app.get_ok("/v1/products", &m.key).await;
    assert_eq!(listed["data"], json!([]));
    let all = app
        .get_ok("/v1/products?include_archived=true", &m.key)
        .await;
    assert_eq!(all["data"][0]["id"], id);

    let events = app
        .by(&m.key)
        .get(&format!("/v1/events?resource_id={id}"))
        .await;
    let types: Vec<_> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["product.archived", "product.updated", "product.created"]
    );
    let update = &events.body["data"][1]["data"];
    assert_eq!(update["previous_attributes"]["description"], "Beans");
}

#[actix_web::test]
async fn plans_validate_price_cadence_and_product() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let res = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": "Yearly",
                "price": {"amount": 500, "currency": "JPY"},
                "interval": "year", "interval_count": 1, "trial_days": 14}),
        )
        .await
        .expect(201);
    assert_eq!(res.body["price"], json!({"amount": 500, "currency": "JPY"}));
    assert_eq!(res.body["trial_days"], 14);

    let bad = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": "prod_nope", "name": "",
                "price": {"amount": -1, "currency": "EUR"},
                "interval": "month", "interval_count": 0}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<_> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["product_id", "name", "price.amount", "interval_count"]
    );

    for (price, field) in [
        (json!({"amount": 1, "currency": "eur"}), "price.currency"),
        (json!({"amount": 1.5, "currency": "EUR"}), "price.amount"),
        (json!({"amount": "1", "currency": "EUR"}), "price.amount"),
    ] {
        let res = app
            .by(&m.key)
            .post(
                "/v1/plans",
                &json!({"product_id": product, "name": "x", "price": price, "interval": "month"}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], field);
    }
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": "x",
                "price": {"amount": 1, "currency": "EUR"}, "interval": "fortnight"}),
        )
        .await
        .expect_problem(422, "validation_failed");
}

#[actix_web::test]
async fn the_portal_lists_only_purchasable_plans() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let live = fixtures::plan(&app, &m, &product, 1000).await;
    let retired = fixtures::plan(&app, &m, &product, 2000).await;
    app.by(&m.key)
        .post_empty(&format!("/v1/plans/{retired}/archive"))
        .await
        .expect(200);
    let other = fixtures::product(&app, &m, json!({})).await;
    fixtures::plan(&app, &m, &other, 3000).await;
    app.by(&m.key)
        .post_empty(&format!("/v1/products/{other}/archive"))
        .await
        .expect(200);

    let shipped = app
        .by(&m.key)
        .post("/v1/products", &json!({"name": "Beans", "shippable": true}))
        .await
        .expect(201)
        .id();
    let boxed = fixtures::plan(&app, &m, &shipped, 1500).await;

    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let res = app.by(&token).get("/v1/portal/plans").await.expect(200);
    let mut plans: Vec<_> = res
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap(),
                p["product_name"].as_str().unwrap(),
                // The portal offers a shipping address for the plans that ship.
                p["shippable"].as_bool().unwrap(),
            )
        })
        .collect();
    plans.sort();
    let mut expected = [
        (live.as_str(), "Coffee club", false),
        (boxed.as_str(), "Beans", true),
    ];
    expected.sort();
    assert_eq!(plans, expected);

    // Active: the live plan, the archived product's plan and the shipped one.
    let active = app.get_ok("/v1/plans?active=true", &m.key).await;
    assert_eq!(active["data"].as_array().unwrap().len(), 3);
    let of_product = app
        .get_ok(&format!("/v1/plans?product_id={product}"), &m.key)
        .await;
    assert_eq!(of_product["data"].as_array().unwrap().len(), 2);
}

/// Switchable plans must be plans of the product: another merchant's plan, another
/// product's, or an id that names nothing is refused (every other field naming a plan
/// refuses them too), rather than silently turning plan switching off.
#[actix_web::test]
async fn switchable_plans_must_be_plans_of_the_product() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    let product = fixtures::product(&app, &a, json!({})).await;
    let monthly = fixtures::plan(&app, &a, &product, 1000).await;
    let yearly = fixtures::plan(&app, &a, &product, 10_000).await;
    let other_product = fixtures::product(&app, &a, json!({})).await;
    let other_products_plan = fixtures::plan(&app, &a, &other_product, 500).await;
    let b_product = fixtures::product(&app, &b, json!({})).await;
    let b_plan = fixtures::plan(&app, &b, &b_product, 500).await;
    let nowhere = "plan_01jd0000000000000000000000";

    for foreign in [b_plan.as_str(), &other_products_plan, nowhere] {
        let res = app
            .by(&a.key)
            .patch(
                &format!("/v1/products/{product}"),
                &json!({"portal_policy": {"switchable_plan_ids": [monthly, foreign]}}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(
            res.body["errors"],
            json!([{"field": "portal_policy.switchable_plan_ids[1]",
                "message": "must be a plan of this product"}]),
            "{foreign}"
        );
        // A new product has no plans, so it names none either.
        app.by(&a.key)
            .post(
                "/v1/products",
                &json!({"name": "New", "portal_policy": {"switchable_plan_ids": [foreign]}}),
            )
            .await
            .expect_problem(422, "validation_failed");
    }
    let unchanged = app.get_ok(&format!("/v1/products/{product}"), &a.key).await;
    assert_eq!(unchanged["portal_policy"]["switchable_plan_ids"], json!([]));

    let res = app
        .by(&a.key)
        .patch(
            &format!("/v1/products/{product}"),
            &json!({"portal_policy": {"switchable_plan_ids": [yearly, monthly]}}),
        )
        .await
        .expect(200);
    assert_eq!(
        res.body["portal_policy"]["switchable_plan_ids"],
        json!([yearly, monthly])
    );
}

/// A subscription on a plan the merchant retired (and then on an archived product) still
/// names its plan and product in the portal, although the portal's plan list no longer
/// shows either: the portal subscription embeds the plan it is on (`plan`), as Stripe's
/// subscription item embeds its price. A rename shows at once.
#[actix_web::test]
async fn a_subscription_on_a_retired_plan_names_its_plan_in_the_portal() {
    let app = TestApp::new().await;
    let m = app.merchant("Retired").await;
    let product = fixtures::shippable_product(&app, &m, "Beans", json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1500).await;
    let customer = fixtures::customer(&app, &m, "ada").await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let token = fixtures::session(&app, &m, &customer).await;

    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(
        shown["plan"],
        json!({"id": plan, "name": "Plan 1500", "product_id": product,
            "product_name": "Beans", "active": true, "shippable": true, "variant": null})
    );

    app.by(&m.key)
        .post_empty(&format!("/v1/plans/{plan}/archive"))
        .await
        .expect(200);
    let offered = app.get_ok("/v1/portal/plans", &token).await;
    assert!(
        offered
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != plan.as_str()),
        "{offered}"
    );
    let retired = json!({"id": plan, "name": "Plan 1500", "product_id": product,
        "product_name": "Beans", "active": false, "shippable": true, "variant": null});
    let one = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(one["plan"], retired);
    assert_eq!(one["plan_id"], plan.as_str());
    assert_eq!(one["price"], json!({"amount": 1500, "currency": "EUR"}));
    let listed = app.get_ok("/v1/portal/subscriptions", &token).await;
    assert_eq!(listed["data"][0]["plan"], retired);

    // Renamed, then its product archived: still named, with the new name.
    app.by(&m.key)
        .patch(
            &format!("/v1/plans/{plan}"),
            &json!({"name": "Original blend"}),
        )
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&format!("/v1/products/{product}/archive"))
        .await
        .expect(200);
    let after = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(after["plan"]["name"], "Original blend");
    assert_eq!(after["plan"]["product_name"], "Beans");
    assert_eq!(after["plan"]["active"], false);
}
