//! Coupons and promotion codes over HTTP: merchant CRUD and validation, codes matched
//! without case, redeeming at subscribe and at a plan change (merchant and portal) with
//! the previews, every refusal, the events, and the last redemption raced for.

use chrono::Duration;
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures::{self, events, id};

async fn coupon(app: &TestApp, m: &TestMerchant, body: Value) -> Value {
    app.by(&m.key)
        .post("/v1/coupons", &body)
        .await
        .expect(201)
        .body
}

async fn code(app: &TestApp, m: &TestMerchant, body: Value) -> Value {
    app.by(&m.key)
        .post("/v1/promotion_codes", &body)
        .await
        .expect(201)
        .body
}

/// A 20 % coupon for one invoice named "Summer sale", with extra fields from `extra`, and
/// a code `word` for it with the limits in `limits`.
async fn summer(app: &TestApp, m: &TestMerchant, word: &str, extra: Value, limits: Value) -> Value {
    let mut body = json!({"name": "Summer sale", "percent_off": 20, "duration": "once"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let c = coupon(app, m, body).await;
    let mut code_body = json!({"coupon_id": id(&c), "code": word});
    for (k, v) in limits.as_object().unwrap() {
        code_body[k] = v.clone();
    }
    code(app, m, code_body).await
}

fn fields(res: &tenure_e2e::Response) -> Vec<String> {
    let mut f: Vec<String> = res.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    f.sort();
    f
}

fn lines_of(invoice: &Value, kind: &str) -> Vec<Value> {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == kind)
        .cloned()
        .collect()
}

#[actix_web::test]
async fn coupons_are_validated_created_read_renamed_and_deleted() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let by = app.by(&m.key);

    let res = by
        .post(
            "/v1/coupons",
            &json!({"percent_off": 0, "duration": "repeating", "max_redemptions": 0,
                    "redeem_by": "2001-01-01T00:00:00Z"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        fields(&res),
        [
            "duration_in_cycles",
            "max_redemptions",
            "percent_off",
            "redeem_by"
        ]
    );
    let res = by
        .post(
            "/v1/coupons",
            &json!({"amount_off": 500, "duration": "once"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(fields(&res), ["currency"]);
    let res = by
        .post(
            "/v1/coupons",
            &json!({"percent_off": 10, "amount_off": 500, "currency": "EUR", "duration": "forever",
                    "duration_in_cycles": 2, "applies_to": {"product_ids": ["plan_x"]}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        fields(&res),
        [
            "applies_to.product_ids[0]",
            "duration_in_cycles",
            "percent_off"
        ]
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM coupons").await, 0);

    let c = coupon(
        &app,
        &m,
        json!({"amount_off": 500, "currency": "EUR", "duration": "repeating",
               "duration_in_cycles": 3, "max_redemptions": 10, "metadata": {"campaign": "q4"}}),
    )
    .await;
    assert_eq!(c["object"], "coupon");
    assert_eq!(c["name"], "5.00 EUR off");
    assert_eq!(c["amount_off"], 500);
    assert_eq!(c["currency"], "EUR");
    assert_eq!(c["duration"], "repeating");
    assert_eq!(c["duration_in_cycles"], 3);
    assert_eq!(c["times_redeemed"], 0);
    assert_eq!(c["valid"], true);
    let cid = id(&c);
    assert!(cid.starts_with("coupon_"));
    let created = events(&app, &m, "coupon.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["object"]["id"], cid);

    let renamed = by
        .patch(&format!("/v1/coupons/{cid}"), &json!({"name": "Five off"}))
        .await
        .expect(200)
        .body;
    assert_eq!(renamed["name"], "Five off");
    assert_eq!(renamed["amount_off"], 500);
    let res = by
        .patch(&format!("/v1/coupons/{cid}"), &json!({"percent_off": 50}))
        .await;
    assert!(res.status.is_client_error(), "{}", res.body);
    assert_eq!(events(&app, &m, "coupon.updated").await.len(), 1);

    let forever = coupon(&app, &m, json!({"percent_off": 10, "duration": "forever"})).await;
    let list = app.get_ok("/v1/coupons", &m.key).await;
    assert_eq!(fixtures::ids(&list), [id(&forever), cid.clone()]);

    let deleted = by
        .delete(&format!("/v1/coupons/{cid}"))
        .await
        .expect(200)
        .body;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["valid"], false);
    assert_eq!(events(&app, &m, "coupon.deleted").await.len(), 1);
    let list = app.get_ok("/v1/coupons", &m.key).await;
    assert_eq!(fixtures::ids(&list), [id(&forever)]);
    let list = app.get_ok("/v1/coupons?include_deleted=true", &m.key).await;
    assert_eq!(fixtures::ids(&list).len(), 2);
    // A deleted coupon gets no new codes.
    by.post(
        "/v1/promotion_codes",
        &json!({"coupon_id": cid, "code": "FIVE"}),
    )
    .await
    .expect_problem(422, "validation_failed");

    // Another merchant sees none of it.
    let other = app.merchant("B").await;
    app.by(&other.key)
        .get(&format!("/v1/coupons/{cid}"))
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn codes_are_matched_without_case_and_unique_among_active_codes() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let by = app.by(&m.key);
    let first = summer(&app, &m, "Summer20", json!({}), json!({})).await;
    assert_eq!(first["object"], "promotion_code");
    assert_eq!(first["code"], "Summer20");
    assert_eq!(first["coupon"]["percent_off"], 20);
    assert_eq!(first["active"], true);
    let created = events(&app, &m, "promotion_code.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["data"]["object"]["code"], "Summer20");
    let coupon_id = first["coupon"]["id"].as_str().unwrap().to_owned();

    by.post(
        "/v1/promotion_codes",
        &json!({"coupon_id": coupon_id, "code": "SUMMER20"}),
    )
    .await
    .expect_problem(409, "promotion_code_taken");
    let res = by
        .post(
            "/v1/promotion_codes",
            &json!({"coupon_id": coupon_id, "code": "no spaces!", "max_redemptions_per_customer": 0}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(fields(&res), ["code", "max_redemptions_per_customer"]);

    // Deactivated, the word is free again; the old code cannot come back while taken.
    let first_id = id(&first);
    by.patch(
        &format!("/v1/promotion_codes/{first_id}"),
        &json!({"active": false}),
    )
    .await
    .expect(200);
    let second = code(
        &app,
        &m,
        json!({"coupon_id": coupon_id, "code": "summer20"}),
    )
    .await;
    by.patch(
        &format!("/v1/promotion_codes/{first_id}"),
        &json!({"active": true}),
    )
    .await
    .expect_problem(409, "promotion_code_taken");
    assert_eq!(events(&app, &m, "promotion_code.updated").await.len(), 1);

    let found = app
        .get_ok("/v1/promotion_codes?code=SUMMER20", &m.key)
        .await;
    assert_eq!(fixtures::ids(&found), [id(&second), first_id]);
}

#[actix_web::test]
async fn a_code_at_subscribe_is_previewed_then_discounts_the_first_invoice() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1999).await;
    let promo = summer(&app, &m, "SUMMER20", json!({}), json!({})).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let token = fixtures::session(&app, &m, &ada).await;

    let preview = app
        .by(&token)
        .post(
            "/v1/portal/subscriptions/preview",
            &json!({"plan_id": plan, "promotion_code": "summer20"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(preview["subtotal"]["amount"], 1999);
    assert_eq!(preview["discount"]["amount"], -400);
    assert_eq!(preview["total"]["amount"], 1599);
    assert_eq!(preview["promotion_code"]["amount_off"]["amount"], 400);
    assert_eq!(preview["promotion_code"]["coupon"]["name"], "Summer sale");
    // The subscriber sees the coupon's terms, not the merchant's metadata or counts.
    let shown = preview["promotion_code"]["coupon"].as_object().unwrap();
    for hidden in [
        "metadata",
        "times_redeemed",
        "max_redemptions",
        "applies_to",
    ] {
        assert!(!shown.contains_key(hidden), "{hidden} shown: {preview}");
    }
    assert_eq!(
        lines_of(&preview, "discount")[0]["description"],
        "Discount: Summer sale (SUMMER20): 20% off"
    );
    // A preview redeems nothing.
    assert_eq!(
        app.count("SELECT times_redeemed::bigint AS n FROM promotion_codes")
            .await,
        0
    );

    let sub = app
        .by(&token)
        .post(
            "/v1/portal/subscriptions",
            &json!({"plan_id": plan, "promotion_code": "summer20"}),
        )
        .await
        .expect(201)
        .body;
    // Once: the first invoice, made in the same transaction, used it up.
    assert_eq!(sub["discounts"], json!([]));

    let invoices = fixtures::invoices_of(&app, &m, &ada).await;
    assert_eq!(invoices.len(), 1);
    let line = &lines_of(&invoices[0], "discount")[0];
    assert_eq!(
        line["description"],
        "Discount: Summer sale (SUMMER20): 20% off"
    );
    assert_eq!(line["amount"]["amount"], -400);
    assert_eq!(invoices[0]["total"]["amount"], 1599);
    let applied = events(&app, &m, "subscription.discount_applied").await;
    assert_eq!(applied.len(), 1);
    let object = &applied[0]["data"]["object"];
    assert_eq!(object["subscription_id"], sub["id"]);
    assert_eq!(object["percent"], 20);
    assert_eq!(object["cycles"], 1);
    assert_eq!(object["coupon_id"], promo["coupon"]["id"]);
    assert_eq!(object["promotion_code_id"], promo["id"]);
    assert_eq!(object["description"], "Summer sale (SUMMER20)");
    let got = app
        .get_ok(&format!("/v1/promotion_codes/{}", id(&promo)), &m.key)
        .await;
    assert_eq!(got["times_redeemed"], 1);
    assert_eq!(got["coupon"]["times_redeemed"], 1);
}

#[actix_web::test]
async fn the_merchant_redeems_a_forever_amount_code_at_subscribe_and_at_a_plan_change() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = fixtures::catalog(&app, &m, json!({})).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let promo = summer(
        &app,
        &m,
        "TENOFF",
        json!({"percent_off": null, "amount_off": 300, "currency": "EUR", "duration": "forever"}),
        json!({}),
    )
    .await;
    let merchant_preview = app
        .by(&m.key)
        .post(
            "/v1/subscriptions/preview",
            &json!({"customer_id": ada, "plan_id": cat.base, "promotion_code": "tenoff"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(merchant_preview["total"]["amount"], 700);
    let sub = app
        .by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": ada, "plan_id": cat.base, "promotion_code": "TENOFF"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(sub["discounts"][0]["forever"], true);
    let sid = id(&sub);

    // A second coupon at a plan change, previewed on top of the first.
    summer(&app, &m, "UPGRADE", json!({}), json!({})).await;
    let preview = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sid}/change_plan/preview"),
            &json!({"plan_id": cat.premium, "promotion_code": "upgrade"}),
        )
        .await
        .expect(200)
        .body;
    let d = &preview["discount"];
    assert_eq!(d["promotion_code"], "UPGRADE");
    // The next renewal at the premium plan (2000) plus the upgrade's proration.
    let subtotal = d["subtotal"]["amount"].as_i64().unwrap();
    assert!(subtotal > 2000, "{preview}");
    let percent = (subtotal * 20 + 50) / 100;
    assert_eq!(d["amount_off"]["amount"], percent);
    assert_eq!(d["total"]["amount"], subtotal - 300 - percent);

    let changed = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sid}/change_plan"),
            &json!({"plan_id": cat.premium, "promotion_code": "upgrade"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(changed["plan_id"], cat.premium);
    let discounts = changed["discounts"].as_array().unwrap();
    assert_eq!(discounts.len(), 2);
    assert_eq!(discounts[1]["percent"], 20);
    // The events come after the change's own.
    let applied = events(&app, &m, "subscription.discount_applied").await;
    assert_eq!(applied.len(), 2);
    assert_eq!(events(&app, &m, "subscription.plan_changed").await.len(), 1);

    // The same code again, changing back: it would stack a second forever discount on
    // the first, so it is refused and nothing changes.
    for path in ["change_plan/preview", "change_plan"] {
        app.by(&m.key)
            .post(
                &format!("/v1/subscriptions/{sid}/{path}"),
                &json!({"plan_id": cat.base, "promotion_code": "TENOFF"}),
            )
            .await
            .expect_problem(409, "promotion_code_already_applied");
    }
    let after = app
        .get_ok(&format!("/v1/subscriptions/{sid}"), &m.key)
        .await;
    assert_eq!(after["plan_id"], cat.premium);
    assert_eq!(after["discounts"].as_array().unwrap().len(), 2);
    let _ = promo;
}

#[actix_web::test]
async fn every_refusal_has_its_code_and_redeems_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = fixtures::catalog(&app, &m, json!({"allow_plan_change": true})).await;
    let other_product = fixtures::product(&app, &m, json!({})).await;
    let other_plan = fixtures::plan(&app, &m, &other_product, 500).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let bob = fixtures::customer(&app, &m, "bob").await;
    let ada_token = fixtures::session(&app, &m, &ada).await;
    let bob_token = fixtures::session(&app, &m, &bob).await;

    summer(
        &app,
        &m,
        "LATER",
        json!({}),
        json!({"expires_at": (app.clock.now() + Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    summer(&app, &m, "ONE", json!({}), json!({"max_redemptions": 1})).await;
    summer(
        &app,
        &m,
        "EACH",
        json!({}),
        json!({"max_redemptions_per_customer": 1}),
    )
    .await;
    summer(
        &app,
        &m,
        "ELSEWHERE",
        json!({"applies_to": {"product_ids": [other_product]}}),
        json!({}),
    )
    .await;
    summer(
        &app,
        &m,
        "NEWBIE",
        json!({}),
        json!({"first_time_subscribers_only": true}),
    )
    .await;
    summer(
        &app,
        &m,
        "DOLLARS",
        json!({"percent_off": null, "amount_off": 100, "currency": "USD"}),
        json!({}),
    )
    .await;
    let gone = summer(&app, &m, "GONE", json!({}), json!({})).await;
    app.by(&m.key)
        .delete(&format!(
            "/v1/coupons/{}",
            gone["coupon"]["id"].as_str().unwrap()
        ))
        .await
        .expect(200);

    let subscribe = async |token: &str, plan: &str, code: &str| {
        app.by(token)
            .post(
                "/v1/portal/subscriptions",
                &json!({"plan_id": plan, "promotion_code": code}),
            )
            .await
    };
    let preview = async |token: &str, plan: &str, code: &str| {
        app.by(token)
            .post(
                "/v1/portal/subscriptions/preview",
                &json!({"plan_id": plan, "promotion_code": code}),
            )
            .await
    };

    // Each refusal, the same in the preview and at subscribe.
    for (code, problem) in [
        ("NOPE", "promotion_code_invalid"),
        ("gone", "promotion_code_invalid"),
        ("elsewhere", "promotion_code_not_applicable"),
        ("dollars", "promotion_code_currency_mismatch"),
    ] {
        preview(&ada_token, &cat.base, code)
            .await
            .expect_problem(409, problem);
        subscribe(&ada_token, &cat.base, code)
            .await
            .expect_problem(409, problem);
    }
    subscribe(&ada_token, &cat.base, "bad code!")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM subscriptions").await,
        0
    );

    // The code for another product is fine there.
    subscribe(&ada_token, &other_plan, "elsewhere")
        .await
        .expect(201);
    // Ada has subscribed before: first-time codes refuse her, not Bob.
    subscribe(&ada_token, &cat.base, "newbie")
        .await
        .expect_problem(409, "promotion_code_first_time_only");
    subscribe(&bob_token, &cat.base, "newbie").await.expect(201);

    // Exhausted after one redemption in all.
    subscribe(&ada_token, &cat.base, "one").await.expect(201);
    subscribe(&bob_token, &cat.base, "one")
        .await
        .expect_problem(409, "promotion_code_exhausted");
    // Once per customer.
    subscribe(&ada_token, &cat.base, "each").await.expect(201);
    subscribe(&ada_token, &cat.base, "each")
        .await
        .expect_problem(409, "promotion_code_already_redeemed");
    subscribe(&bob_token, &cat.base, "each").await.expect(201);

    // Expired (the sessions too: new ones).
    app.clock.advance(Duration::hours(2));
    let bob_token = fixtures::session(&app, &m, &bob).await;
    preview(&bob_token, &cat.base, "later")
        .await
        .expect_problem(409, "promotion_code_expired");
    subscribe(&bob_token, &cat.base, "later")
        .await
        .expect_problem(409, "promotion_code_expired");

    // At a plan change too, and the plan stays as it was.
    let bob_sub = app.get_ok("/v1/portal/subscriptions", &bob_token).await["data"][0].clone();
    let sid = id(&bob_sub);
    app.by(&bob_token)
        .post(
            &format!("/v1/portal/subscriptions/{sid}/change_plan/preview"),
            &json!({"plan_id": cat.premium, "promotion_code": "one"}),
        )
        .await
        .expect_problem(409, "promotion_code_exhausted");
    app.by(&bob_token)
        .post(
            &format!("/v1/portal/subscriptions/{sid}/change_plan"),
            &json!({"plan_id": cat.premium, "promotion_code": "elsewhere"}),
        )
        .await
        .expect_problem(409, "promotion_code_not_applicable");
    let read = app
        .get_ok(&format!("/v1/subscriptions/{sid}"), &m.key)
        .await;
    assert_eq!(read["plan_id"], bob_sub["plan_id"]);

    // Exactly the successful redemptions were counted.
    assert_eq!(
        app.count("SELECT sum(times_redeemed)::bigint AS n FROM promotion_codes")
            .await,
        5
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM subscription_discounts WHERE promotion_code_id IS NOT NULL"
        )
        .await,
        5
    );
}

#[actix_web::test]
async fn two_redemptions_racing_for_the_last_slot_give_it_to_exactly_one() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    summer(&app, &m, "LAST", json!({"max_redemptions": 1}), json!({})).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let bob = fixtures::customer(&app, &m, "bob").await;

    // Both redemptions wait on the code's row until the test lets them go together.
    let mut lock = app.sql().await;
    lock.batch_execute("BEGIN; SELECT 1 FROM promotion_codes FOR UPDATE")
        .await
        .unwrap();
    let redeem = async |customer: &str| {
        app.by(&m.key)
            .post(
                "/v1/subscriptions",
                &json!({"customer_id": customer, "plan_id": plan, "promotion_code": "last"}),
            )
            .await
    };
    let release = async {
        fixtures::wait_for_lock_waiters(&app, 2).await;
        lock.batch_execute("COMMIT").await.unwrap();
    };
    let (a, b, ()) = tokio::join!(redeem(&ada), redeem(&bob), release);
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "{} / {}", a.body, b.body);
    let loser = if a.status.as_u16() == 409 { &a } else { &b };
    assert_eq!(loser.body["code"], "promotion_code_exhausted");
    assert_eq!(
        app.count("SELECT times_redeemed::bigint AS n FROM coupons")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM subscription_discounts")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM subscriptions").await,
        1
    );
}

#[actix_web::test]
async fn a_retention_discount_refers_to_an_internal_coupon_that_is_not_listed() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let ada = fixtures::customer(&app, &m, "ada").await;
    let sub = fixtures::subscribe_id(&app, &m, &ada, &plan).await;
    let mut conn = app.sql().await;
    tenure_store::repo::discounts::grant(
        &mut conn,
        m.id.parse().unwrap(),
        tenure_store::repo::discounts::NewDiscount {
            subscription_id: sub.parse().unwrap(),
            offer_id: None,
            value: tenure_store::repo::discounts::DiscountValue::Percent(10),
            cycles: 2,
        },
        app.clock.now(),
    )
    .await
    .expect("grant");
    let read = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let coupon_id = read["discounts"][0]["coupon_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let internal = app
        .get_ok(&format!("/v1/coupons/{coupon_id}"), &m.key)
        .await;
    assert_eq!(internal["percent_off"], 10);
    assert_eq!(internal["duration"], "repeating");
    assert_eq!(internal["duration_in_cycles"], 2);
    fixtures::assert_empty(&app.get_ok("/v1/coupons", &m.key).await);
}
