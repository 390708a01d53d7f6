//! Variants and swaps over HTTP (docs/orders.md, "Variants and swaps"; docs/lifecycle.md,
//! "Plan changes"): a plan's variant and its checks, a product's swappable products, the
//! portal offering only plans in the subscription's currency of its product and of the
//! products it may swap to, the refusals of a swap to another currency or to an unrelated
//! product (portal and merchant, change and preview), and a swap mid-period prorated to
//! the minor unit whose next order ships the new variant.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures::{self, count_events};

async fn product(app: &TestApp, m: &TestMerchant, body: Value) -> String {
    app.by(&m.key)
        .post("/v1/products", &body)
        .await
        .expect(201)
        .id()
}

/// A monthly plan of `product` at `amount` in `currency`, with `variant` (or none).
async fn plan(
    app: &TestApp,
    m: &TestMerchant,
    product: &str,
    amount: i64,
    currency: &str,
    variant: Value,
) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": format!("Plan {amount} {currency}"),
                "price": {"amount": amount, "currency": currency}, "interval": "month",
                "variant": variant}),
        )
        .await
        .expect(201)
        .id()
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect()
}

#[actix_web::test]
async fn a_plan_carries_a_checked_variant_and_a_sku_names_one_products_goods() {
    let app = TestApp::new().await;
    let m = app.merchant("Variants").await;
    let coffee = product(&app, &m, json!({"name": "Coffee", "shippable": true})).await;
    let tea = product(&app, &m, json!({"name": "Tea", "shippable": true})).await;
    let dark = json!({"name": "Dark roast 250 g", "sku": "COF-DARK-250",
        "options": {"roast": "dark", "size": "250 g"}});
    let monthly = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": coffee, "name": "Dark monthly",
                "price": {"amount": 1200, "currency": "EUR"}, "interval": "month",
                "variant": {"name": " Dark roast 250 g ", "sku": "COF-DARK-250",
                    "options": {"roast": "dark", "size": "250 g"}}}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(monthly["variant"], dark, "trimmed and shown");
    let id = fixtures::id(&monthly);
    assert_eq!(
        app.get_ok(&format!("/v1/plans/{id}"), &m.key).await["variant"],
        dark
    );
    let events = fixtures::events(&app, &m, "plan.created").await;
    assert_eq!(events[0]["data"]["object"]["variant"], dark);

    // Every invalid part is named in one problem.
    let bad = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": coffee, "name": "Bad",
                "price": {"amount": 1200, "currency": "EUR"}, "interval": "month",
                "variant": {"name": " ", "sku": "COF DARK",
                    "options": {"a": "1", "b": "2", "c": "3", "d": "4"}}}),
        )
        .await
        .expect_problem(422, "validation_failed")
        .body;
    assert_eq!(
        fields(&bad),
        ["variant.name", "variant.sku", "variant.options"]
    );

    // The same goods on another cadence or currency share the SKU; another product may not.
    let yearly_usd = plan(&app, &m, &coffee, 12000, "USD", dark.clone()).await;
    let taken = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": tea, "name": "Tea", "price": {"amount": 900, "currency": "EUR"},
                "interval": "month", "variant": {"name": "Earl Grey", "sku": "COF-DARK-250"}}),
        )
        .await
        .expect_problem(422, "validation_failed")
        .body;
    assert_eq!(fields(&taken), ["variant.sku"]);
    let earl_grey = plan(
        &app,
        &m,
        &tea,
        900,
        "EUR",
        json!({"name": "Earl Grey 100 g", "sku": "TEA-EG-100"}),
    )
    .await;
    app.by(&m.key)
        .patch(
            &format!("/v1/plans/{earl_grey}"),
            &json!({"variant": {"name": "Earl Grey", "sku": "COF-DARK-250"}}),
        )
        .await
        .expect_problem(422, "validation_failed");

    // A plan's variant is edited or removed like its name; no options is an empty map.
    let edited = app
        .by(&m.key)
        .patch(
            &format!("/v1/plans/{yearly_usd}"),
            &json!({"variant": {"name": "Dark roast 1 kg", "sku": "COF-DARK-1000"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        edited["variant"],
        json!({"name": "Dark roast 1 kg", "sku": "COF-DARK-1000", "options": {}})
    );
    let removed = app
        .by(&m.key)
        .patch(
            &format!("/v1/plans/{yearly_usd}"),
            &json!({"variant": null}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(removed["variant"], Value::Null);
    // A plan made without one shows null.
    let plain = fixtures::plan(&app, &m, &coffee, 1000).await;
    assert_eq!(
        app.get_ok(&format!("/v1/plans/{plain}"), &m.key).await["variant"],
        Value::Null
    );
}

#[actix_web::test]
async fn a_product_names_the_products_it_may_swap_to() {
    let app = TestApp::new().await;
    let m = app.merchant("Swaps").await;
    let other = app.merchant("Other").await;
    let tea = product(&app, &m, json!({"name": "Tea"})).await;
    let foreign = product(&app, &other, json!({"name": "Not yours"})).await;
    let refused = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Coffee", "swappable_product_ids": [tea, foreign]}),
        )
        .await
        .expect_problem(422, "validation_failed")
        .body;
    assert_eq!(fields(&refused), ["swappable_product_ids[1]"]);
    let malformed = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Coffee", "swappable_product_ids": ["plan_x", tea, tea]}),
        )
        .await
        .expect_problem(422, "validation_failed")
        .body;
    assert_eq!(
        fields(&malformed),
        ["swappable_product_ids[0]", "swappable_product_ids"]
    );
    let coffee = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Coffee", "swappable_product_ids": [tea]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(coffee["swappable_product_ids"], json!([tea]));
    let coffee = fixtures::id(&coffee);
    app.by(&m.key)
        .patch(
            &format!("/v1/products/{coffee}"),
            &json!({"swappable_product_ids": [coffee]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let cleared = app
        .by(&m.key)
        .patch(
            &format!("/v1/products/{coffee}"),
            &json!({"swappable_product_ids": []}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(cleared["swappable_product_ids"], json!([]));
    // Not symmetric: tea lets its subscribers swap nowhere.
    assert_eq!(
        app.get_ok(&format!("/v1/products/{tea}"), &m.key).await["swappable_product_ids"],
        json!([])
    );
}

/// The portal offers a EUR subscription the EUR plans of its product and of the products
/// it may swap to, never a USD plan or an unrelated product's; and what is not offered is
/// refused with a stable code on `plan_id`, to the customer and the merchant alike.
#[actix_web::test]
async fn swaps_stay_in_the_subscription_currency_and_within_the_allowed_products() {
    let app = TestApp::new().await;
    let m = app.merchant("Swaps").await;
    let tea = product(&app, &m, json!({"name": "Tea"})).await;
    let tea_eur = plan(&app, &m, &tea, 1500, "EUR", json!({"name": "Earl Grey"})).await;
    let tea_usd = plan(&app, &m, &tea, 1500, "USD", json!({"name": "Earl Grey"})).await;
    let cocoa = product(&app, &m, json!({"name": "Cocoa"})).await;
    let cocoa_eur = plan(&app, &m, &cocoa, 1500, "EUR", Value::Null).await;
    let coffee = product(
        &app,
        &m,
        json!({"name": "Coffee", "swappable_product_ids": [tea]}),
    )
    .await;
    let medium = plan(&app, &m, &coffee, 1200, "EUR", json!({"name": "Medium"})).await;
    let dark = plan(&app, &m, &coffee, 1200, "EUR", json!({"name": "Dark"})).await;
    let coffee_usd = plan(&app, &m, &coffee, 1200, "USD", json!({"name": "Dark"})).await;
    let customer = fixtures::customer(&app, &m, "eur").await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &medium).await;
    let token = fixtures::session(&app, &m, &customer).await;

    let shown = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(
        shown["available_actions"]["change_plan"]["plan_ids"],
        json!([dark, tea_eur]),
        "its own variants first, then the swap product's, in EUR only: {shown}"
    );

    // Another currency: refused on plan_id, whoever asks, change and preview alike.
    for plan in [&tea_usd, &coffee_usd] {
        for (caller, prefix) in [(&token, "/v1/portal"), (&m.key, "/v1")] {
            for action in ["change_plan/preview", "change_plan"] {
                let problem = app
                    .by(caller)
                    .post(
                        &format!("{prefix}/subscriptions/{sub}/{action}"),
                        &json!({"plan_id": plan}),
                    )
                    .await
                    .expect_problem(422, "currency_mismatch")
                    .body;
                assert_eq!(fields(&problem), ["plan_id"], "{problem}");
            }
        }
    }
    // An unrelated product: refused to the merchant too.
    for (caller, prefix) in [(&token, "/v1/portal"), (&m.key, "/v1")] {
        for action in ["change_plan/preview", "change_plan"] {
            let problem = app
                .by(caller)
                .post(
                    &format!("{prefix}/subscriptions/{sub}/{action}"),
                    &json!({"plan_id": cocoa_eur}),
                )
                .await
                .expect_problem(422, "product_not_swappable")
                .body;
            assert_eq!(fields(&problem), ["plan_id"], "{problem}");
        }
    }
    assert_eq!(
        count_events(&app, &sub, "subscription.plan_changed").await,
        0,
        "nothing changed"
    );

    // The offered swap is taken: the subscription now belongs to the other product,
    // whose terms the portal then offers (it lets its subscribers swap nowhere).
    let swapped = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": tea_eur}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(swapped["plan_id"], tea_eur.as_str(), "{swapped}");
    assert_eq!(swapped["product_id"], tea.as_str());
    assert_eq!(swapped["available_actions"]["change_plan"], Value::Null);
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": medium}),
        )
        .await
        .expect_problem(422, "product_not_swappable");
    assert_eq!(
        count_events(&app, &sub, "subscription.plan_changed").await,
        1
    );
}

/// A swap to another product mid-period is prorated like any plan change (to the minor
/// unit, on the next invoice), and the next order ships the new product's variant.
#[actix_web::test]
async fn a_swap_mid_period_is_prorated_exactly_and_the_next_order_ships_the_new_variant() {
    let app = TestApp::new().await;
    let m = app.merchant("SwapOrders").await;
    let tea = product(&app, &m, json!({"name": "Tea", "shippable": true})).await;
    let earl_grey =
        json!({"name": "Earl Grey 100 g", "sku": "TEA-EG-100", "options": {"leaf": "black"}});
    let tea_plan = plan(&app, &m, &tea, 1860, "EUR", earl_grey.clone()).await;
    let coffee = product(
        &app,
        &m,
        json!({"name": "Coffee", "shippable": true, "swappable_product_ids": [tea]}),
    )
    .await;
    let medium = json!({"name": "Medium roast 250 g", "sku": "COF-MED-250", "options": {}});
    let coffee_plan = plan(&app, &m, &coffee, 1200, "EUR", medium.clone()).await;

    // A customer on a test clock, from 1 January (a 31-day period).
    let anchor: DateTime<Utc> = Utc.with_ymd_and_hms(2027, 1, 1, 10, 0, 0).unwrap();
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
            &json!({"external_id": "swapper", "test_clock": clock}),
        )
        .await
        .expect(201)
        .id();
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let address = app
        .by(&m.key)
        .post(
            &format!("/v1/customers/{customer}/addresses"),
            &json!({"name": "Ada Lovelace", "line1": "12 Rue de la Paix", "city": "Paris",
                "country": "FR"}),
        )
        .await
        .expect(201)
        .id();
    let sub = app
        .by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": customer, "plan_id": coffee_plan,
                "shipping_address_id": address}),
        )
        .await
        .expect(201)
        .id();
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

    // Half way (15 of 31 days used) the subscriber previews and takes the swap.
    advance(anchor + Duration::days(15)).await;
    let token = fixtures::session(&app, &m, &customer).await;
    let preview = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/change_plan/preview"),
            &json!({"plan_id": tea_plan}),
        )
        .await
        .expect(200)
        .body;
    let lines: Vec<i64> = preview["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["amount"]["amount"].as_i64().expect("amount"))
        .collect();
    // 1200 × 15/31 = 580.6 used, so 620 back; 1860 × 15/31 = 900 used, so 960 due.
    assert_eq!(lines, [-620, 960], "{preview}");
    assert_eq!(preview["amount_due_now"]["amount"], 340);
    assert_eq!(preview["credit_carried"]["amount"], 0);
    let swapped = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": tea_plan}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(swapped["product_id"], tea.as_str());
    assert_eq!(swapped["price"]["amount"], 1860);
    let changed = fixtures::events(&app, &m, "subscription.plan_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["data"]["object"]["product_id"], tea.as_str());
    assert_eq!(
        changed[0]["data"]["previous_attributes"]["product_id"],
        coffee.as_str()
    );

    // The renewal on 1 February bills the tea and the proration, and ships the tea.
    advance(anchor + Duration::days(31) + Duration::hours(1)).await;
    let invoices = fixtures::invoices_of(&app, &m, &customer).await;
    assert_eq!(invoices.len(), 2, "the signup and the renewal");
    let renewal = &invoices[1];
    assert_eq!(renewal["total"]["amount"], 1860 - 620 + 960, "{renewal}");
    assert_eq!(renewal["status"], "paid");
    let mut orders = app
        .get_ok(&format!("/v1/orders?subscription_id={sub}"), &m.key)
        .await["data"]
        .as_array()
        .expect("orders")
        .clone();
    orders.reverse();
    assert_eq!(orders.len(), 2);
    let first = &orders[0]["lines"][0];
    assert_eq!(first["product_name"], "Coffee");
    assert_eq!(first["plan_id"], coffee_plan.as_str());
    assert_eq!(first["variant"], medium);
    let next = &orders[1];
    assert_eq!(next["invoice_id"], renewal["id"]);
    assert_eq!(next["amount_total"]["amount"], 2200);
    assert_eq!(next["lines"].as_array().map(Vec::len), Some(1));
    let line = &next["lines"][0];
    assert_eq!(line["product_id"], tea.as_str());
    assert_eq!(line["product_name"], "Tea");
    assert_eq!(line["plan_id"], tea_plan.as_str());
    assert_eq!(line["variant"], earl_grey);
    assert_eq!(line["quantity"], 1);
    assert_eq!(line["unit_amount"]["amount"], 1860);
    assert_eq!(line["amount"]["amount"], 1860);
    // The portal shows the subscriber the same order.
    let token = fixtures::session(&app, &m, &customer).await;
    let mine = app.get_ok("/v1/portal/orders", &token).await;
    assert_eq!(mine["data"][0]["lines"][0]["variant"], earl_grey);
}

#[actix_web::test]
async fn plans_of_two_products_created_at_once_with_one_sku_are_not_both_accepted() {
    let app = TestApp::new().await;
    let m = app.merchant("Variants").await;
    let coffee = product(&app, &m, json!({"name": "Coffee", "shippable": true})).await;
    let tea = product(&app, &m, json!({"name": "Tea", "shippable": true})).await;
    let create = |product: String, sku: String| {
        let app = &app;
        let key = m.key.clone();
        async move {
            app.by(&key)
                .post(
                    "/v1/plans",
                    &json!({"product_id": product, "name": "Monthly",
                        "price": {"amount": 900, "currency": "EUR"}, "interval": "month",
                        "variant": {"name": "Box", "sku": sku}}),
                )
                .await
        }
    };
    // Several pairs, each sent together: each pair's check and insert would interleave.
    for n in 0..6 {
        let sku = format!("BOX-{n}");
        let (a, b) = tokio::join!(
            create(coffee.clone(), sku.clone()),
            create(tea.clone(), sku.clone())
        );
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 422], "pair {n}: {:?} {:?}", a.body, b.body);
        let refused = if a.status.as_u16() == 422 {
            &a.body
        } else {
            &b.body
        };
        assert_eq!(refused["code"], "validation_failed");
        assert_eq!(fields(refused), ["variant.sku"]);
    }
}
