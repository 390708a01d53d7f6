//! Retention offers over HTTP: merchant CRUD and validation, presentation on a portal
//! cancellation (exactly the eligible offers, best first, recorded as `presented`),
//! accepting instead of cancelling (discount, pause), declining, and the refusals.

use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_e2e::{Response, TestApp, TestMerchant};

use crate::fixtures::{self, events, time};

/// A customer `days` old with `ltv_eur` paid (one paid invoice) and `tags`.
async fn customer(
    app: &TestApp,
    m: &TestMerchant,
    name: &str,
    days: i64,
    ltv_eur: i64,
    tags: &[&str],
) -> String {
    let id = fixtures::customer(app, m, name).await;
    let c = fixtures::customer_uuid(&id);
    app.exec(format!(
        "UPDATE customers SET created_at = now() - interval '{days} days 1 hour' WHERE id = '{c}'"
    ))
    .await;
    if ltv_eur > 0 {
        let (inv, pay) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        app.exec(format!(
            "INSERT INTO invoices (merchant_id, id, number, customer_id, status, currency, total, amount_paid, amount_refunded)
             SELECT merchant_id, '{inv}', 1000 + (random() * 100000)::int, id, 'paid', 'EUR', {ltv_eur}, {ltv_eur}, 0 FROM customers WHERE id = '{c}'"
        )).await;
        app.exec(format!(
            "INSERT INTO payments (merchant_id, id, invoice_id, customer_id, amount, currency, status, gateway, gateway_ref, idempotency_key, amount_refunded)
             SELECT merchant_id, '{pay}', '{inv}', id, {ltv_eur}, 'EUR', 'succeeded', 'sandbox', 'gw_1', 'k{pay}', 0 FROM customers WHERE id = '{c}'"
        )).await;
    }
    for tag in tags {
        app.by(&m.key)
            .post(&format!("/v1/customers/{id}/tags"), &json!({"tag": tag}))
            .await
            .expect(200);
    }
    id
}

async fn offer(app: &TestApp, m: &TestMerchant, body: Value) -> String {
    app.by(&m.key)
        .post("/v1/retention_offers", &body)
        .await
        .expect(201)
        .id()
}

/// The portal cancellation: (request id, offer ids presented in order).
async fn cancel(app: &TestApp, token: &str, sub: &str, reason: &str) -> (String, Vec<String>) {
    let res = fixtures::portal_cancel(app, token, sub, json!({"reason": reason})).await;
    let offers = res["retention_offers"]
        .as_array()
        .expect("retention_offers")
        .iter()
        .map(|o| {
            assert_eq!(o["outcome"], "presented");
            fixtures::id(o)
        })
        .collect();
    (fixtures::id(&res["cancellation_request"]), offers)
}

/// A customer who subscribed to the base plan and, signed in, asked to cancel.
struct Leaving {
    token: String,
    sub: String,
    /// The cancellation request.
    request: String,
    /// The offers presented, best first.
    presented: Vec<String>,
}

async fn leaving(app: &TestApp, s: &Setup, customer: &str, reason: &str) -> Leaving {
    let token = fixtures::session(app, &s.m, customer).await;
    let sub = fixtures::subscribe_id(app, &s.m, customer, &s.base).await;
    let (request, presented) = cancel(app, &token, &sub, reason).await;
    Leaving {
        token,
        sub,
        request,
        presented,
    }
}

/// A customer's answer to an offer presented for their cancellation request: `accept`
/// or `decline`, sent with `credential`.
async fn decide(
    app: &TestApp,
    credential: &str,
    request: &str,
    offer: &str,
    decision: &str,
) -> Response {
    app.by(credential)
        .post_empty(&format!(
            "/v1/portal/cancellation_requests/{request}/retention_offers/{offer}/{decision}"
        ))
        .await
}

async fn outcomes(app: &TestApp, request: &str) -> Vec<(String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        offer_id: uuid::Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        outcome: String,
    }
    let req = request
        .parse::<tenure_domain::ids::CancellationRequestId>()
        .unwrap()
        .uuid();
    let mut conn = app.sql().await;
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT offer_id, outcome FROM retention_offer_outcomes
             WHERE cancellation_request_id = '{req}' AND reason IS NOT NULL ORDER BY id"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    rows.into_iter()
        .map(|r| {
            (
                tenure_domain::ids::RetentionOfferId::from_uuid(r.offer_id).to_string(),
                r.outcome,
            )
        })
        .collect()
}

struct Setup {
    m: TestMerchant,
    base: String,
    cheap: String,
    discount: String,
    pause: String,
    newbie: String,
    switch: String,
}

async fn setup(app: &TestApp) -> Setup {
    let m = app.merchant("A").await;
    let product = fixtures::product(app, &m, json!({})).await;
    let base = fixtures::plan(app, &m, &product, 2000).await;
    let cheap = fixtures::plan(app, &m, &product, 1000).await;
    // Long-standing, valuable VIPs who find it too expensive: 20% off three invoices.
    let discount = offer(
        app,
        &m,
        json!({
        "name": "20% off for 3 months", "priority": 1,
        "kind": {"type": "discount_percent", "percent": 20, "cycles": 3},
        "eligibility": {"min_tenure_days": 90, "ltv": {"currency": "EUR", "min": 10000},
                        "tags": ["VIP"], "reasons": ["too_expensive"]}}),
    )
    .await;
    // Anyone who finds it too expensive or does not use it: a month's pause.
    let pause = offer(
        app,
        &m,
        json!({
        "name": "Take a break", "kind": {"type": "pause_instead", "days": 30},
        "eligibility": {"reasons": ["too_expensive", "unused"]}}),
    )
    .await;
    // Newcomers (first 30 days): 5 EUR off twice, shown before the rest.
    let newbie = offer(app, &m, json!({
        "name": "Welcome back", "priority": 5,
        "kind": {"type": "discount_amount", "amount": {"amount": 500, "currency": "EUR"}, "cycles": 2},
        "eligibility": {"max_tenure_days": 30}})).await;
    // Beta testers only: the cheaper plan, shown first of all.
    let switch = offer(
        app,
        &m,
        json!({
        "name": "Go lighter", "priority": 10,
        "kind": {"type": "switch_plan", "plan_id": cheap},
        "eligibility": {"tags": ["beta"]}}),
    )
    .await;
    Setup {
        m,
        base,
        cheap,
        discount,
        pause,
        newbie,
        switch,
    }
}

#[actix_web::test]
async fn merchants_manage_offers_with_validation_and_events() {
    let app = TestApp::new().await;
    let s = setup(&app).await;
    let m = &s.m;

    let one = app
        .get_ok(&format!("/v1/retention_offers/{}", s.discount), &m.key)
        .await;
    assert_eq!(one["object"], "retention_offer");
    assert_eq!(
        one["kind"],
        json!({"type": "discount_percent", "percent": 20, "cycles": 3})
    );
    assert_eq!(
        one["eligibility"]["tags"],
        json!(["vip"]),
        "tags are normalised"
    );
    assert_eq!(
        one["eligibility"]["ltv"],
        json!({"currency": "EUR", "min": 10000, "max": null})
    );
    assert_eq!(
        one["stats"],
        json!({"presented": 0, "accepted": 0, "declined": 0})
    );
    assert_eq!(one["active"], true);

    // Cursor-paged, newest first.
    let page = app.get_ok("/v1/retention_offers?limit=3", &m.key).await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [s.switch.as_str(), s.newbie.as_str(), s.pause.as_str()]
    );
    assert_eq!(page["has_more"], true);
    let next = app
        .get_ok(
            &format!(
                "/v1/retention_offers?limit=3&starting_after={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &m.key,
        )
        .await;
    assert_eq!(next["data"][0]["id"], s.discount.as_str());
    assert_eq!(next["has_more"], false);

    // Validation through the domain: every bad field named.
    let res = app
        .by(&m.key)
        .post(
            "/v1/retention_offers",
            &json!({"name": " ", "kind": {"type": "discount_percent", "percent": 0, "cycles": 3},
                      "eligibility": {"min_tenure_days": 10, "max_tenure_days": 5}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "kind", "eligibility.max_tenure_days"]);
    for (body, field) in [
        (
            json!({"name": "x", "kind": {"type": "switch_plan", "plan_id": "plan_01jf9zb3f4e3a8r7m2k4t5n6bc"}}),
            "kind.plan_id",
        ),
        (
            json!({"name": "x", "kind": {"type": "pause_instead", "days": 30}, "eligibility": {"plan_ids": ["plan_01jf9zb3f4e3a8r7m2k4t5n6bc"]}}),
            "eligibility.plan_ids[0]",
        ),
        (
            json!({"name": "x", "kind": {"type": "pause_instead", "days": 30}, "eligibility": {"segments": ["royal"]}}),
            "eligibility.segments[0]",
        ),
        (
            json!({"name": "x", "kind": {"type": "refund_everything"}}),
            "kind",
        ),
        (
            json!({"name": "x", "kind": {"type": "pause_instead", "days": 30}, "colour": "red"}),
            "colour",
        ),
    ] {
        let res = app
            .by(&m.key)
            .post("/v1/retention_offers", &body)
            .await
            .expect_problem(422, "validation_failed");
        assert!(
            res.body["errors"][0]["field"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}: {}",
            res.body
        );
    }
    app.by(&m.key)
        .get("/v1/retention_offers/roff_nope")
        .await
        .expect_problem(404, "resource_missing");
    let other = app.merchant("B").await;
    app.by(&other.key)
        .get(&format!("/v1/retention_offers/{}", s.discount))
        .await
        .expect_problem(404, "resource_missing");

    // PATCH and DELETE (deactivation), each with its event.
    let res = app
        .by(&m.key)
        .patch(
            &format!("/v1/retention_offers/{}", s.pause),
            &json!({"priority": 3, "name": "Take a month off"}),
        )
        .await
        .expect(200);
    assert_eq!(res.body["priority"], 3);
    let res = app
        .by(&m.key)
        .delete(&format!("/v1/retention_offers/{}", s.pause))
        .await
        .expect(200);
    assert_eq!(res.body["active"], false);
    let listed = app.get_ok("/v1/retention_offers", &m.key).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        3,
        "inactive offers are hidden by default"
    );
    let listed = app
        .get_ok("/v1/retention_offers?include_inactive=true", &m.key)
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 4);
    assert_eq!(events(&app, m, "retention_offer.created").await.len(), 4);
    let updated = events(&app, m, "retention_offer.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["data"]["previous_attributes"]["priority"], 0);
    let deactivated = events(&app, m, "retention_offer.deactivated").await;
    assert_eq!(deactivated.len(), 1);
    assert_eq!(deactivated[0]["data"]["object"]["active"], false);
}

#[actix_web::test]
async fn customers_accept_an_offer_instead_of_cancelling() {
    let app = TestApp::new().await;
    let s = setup(&app).await;
    let m = &s.m;

    // Ada: 200 days, 150 EUR LTV, VIP, too expensive → discount (priority 1), pause.
    let ada = customer(&app, m, "ada", 200, 15_000, &["vip"]).await;
    let Leaving {
        token: ada_token,
        sub: ada_sub,
        request: ada_req,
        presented,
    } = leaving(&app, &s, &ada, "too_expensive").await;
    assert_eq!(presented, [s.discount.clone(), s.pause.clone()]);
    assert_eq!(
        outcomes(&app, &ada_req).await,
        [
            (s.discount.clone(), "presented".to_owned()),
            (s.pause.clone(), "presented".to_owned())
        ]
    );
    // Re-listed by the portal, best first.
    let open = app
        .get_ok(
            &format!("/v1/portal/cancellation_requests/{ada_req}/retention_offers"),
            &ada_token,
        )
        .await;
    assert_eq!(fixtures::ids(&open), [s.discount.clone(), s.pause.clone()]);
    assert!(
        open["data"][0].get("eligibility").is_none(),
        "the portal sees no rules"
    );

    // Bob: 10 days, no LTV, no tags, unused → newbie (priority 5), pause.
    let bob = customer(&app, m, "bob", 10, 0, &[]).await;
    let Leaving {
        token: bob_token,
        sub: bob_sub,
        request: bob_req,
        presented,
    } = leaving(&app, &s, &bob, "unused").await;
    assert_eq!(presented, [s.newbie.clone(), s.pause.clone()]);

    // Another customer's request is a 404, as is an offer never presented for it.
    app.by(&bob_token)
        .get(&format!(
            "/v1/portal/cancellation_requests/{ada_req}/retention_offers"
        ))
        .await
        .expect_problem(404, "resource_missing");
    decide(&app, &bob_token, &ada_req, &s.discount, "accept")
        .await
        .expect_problem(404, "resource_missing");
    for never in [&s.newbie, &s.switch] {
        decide(&app, &ada_token, &ada_req, never, "accept")
            .await
            .expect_problem(404, "resource_missing");
    }
    // The merchant key cannot accept for a customer.
    decide(&app, &m.key, &ada_req, &s.discount, "accept")
        .await
        .expect_problem(403, "merchant_key_not_allowed");

    // Ada accepts the discount: the cancellation is withdrawn and the discount granted.
    let res = decide(&app, &ada_token, &ada_req, &s.discount, "accept")
        .await
        .expect(200);
    assert_eq!(res.body["cancellation_request"]["status"], "withdrawn");
    assert_eq!(res.body["subscription"]["status"], "active");
    assert!(res.body["subscription"]["cancel_at"].is_null());
    assert_eq!(res.body["offer"]["outcome"], "accepted");
    assert_eq!(res.body["discount"]["percent"], 20);
    assert_eq!(res.body["discount"]["cycles_remaining"], 3);
    let sub = app
        .get_ok(&format!("/v1/subscriptions/{ada_sub}"), &m.key)
        .await;
    assert!(sub["cancel_at"].is_null());
    assert!(
        sub["scheduled_changes"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{sub}"
    );
    let req = app
        .get_ok(&format!("/v1/cancellation_requests/{ada_req}"), &m.key)
        .await;
    assert_eq!(req["status"], "withdrawn");
    let sub_uuid = fixtures::subscription_uuid(&ada_sub);
    let offer_uuid = s
        .discount
        .parse::<tenure_domain::ids::RetentionOfferId>()
        .unwrap()
        .uuid();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM subscription_discounts WHERE subscription_id = '{sub_uuid}'
             AND offer_id = '{offer_uuid}' AND percent = 20 AND amount IS NULL AND cycles = 3 AND cycles_remaining = 3"
        )).await,
        1
    );
    assert_eq!(
        outcomes(&app, &ada_req).await,
        [
            (s.discount.clone(), "accepted".to_owned()),
            (s.pause.clone(), "declined".to_owned())
        ]
    );
    assert_eq!(
        app.count(&format!("SELECT count(*) AS n FROM retention_offer_outcomes WHERE subscription_id = '{sub_uuid}' AND decided_at IS NULL")).await,
        0
    );
    let accepted = events(&app, m, "retention_offer.accepted").await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0]["data"]["object"]["offer_id"],
        s.discount.as_str()
    );
    assert_eq!(
        accepted[0]["data"]["object"]["cancellation_request_id"],
        ada_req.as_str()
    );
    assert_eq!(accepted[0]["data"]["object"]["customer_id"], ada.as_str());
    assert_eq!(events(&app, m, "retention_offer.declined").await.len(), 1);
    let withdrawn = events(&app, m, "subscription.cancellation_withdrawn").await;
    assert_eq!(withdrawn.len(), 1);
    assert_eq!(withdrawn[0]["resource_id"], ada_sub.as_str());
    assert_eq!(
        events(&app, m, "cancellation_request.withdrawn")
            .await
            .len(),
        1
    );
    let open = app
        .get_ok(
            &format!("/v1/portal/cancellation_requests/{ada_req}/retention_offers"),
            &ada_token,
        )
        .await;
    assert_eq!(open["data"], json!([]));

    // Retries are safe: nothing is applied twice.
    decide(&app, &ada_token, &ada_req, &s.discount, "accept")
        .await
        .expect_problem(409, "retention_offer_already_accepted");
    decide(&app, &ada_token, &ada_req, &s.pause, "accept")
        .await
        .expect_problem(409, "retention_offer_declined");
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM subscription_discounts WHERE subscription_id = '{sub_uuid}'"
        ))
        .await,
        1
    );
    assert_eq!(events(&app, m, "retention_offer.accepted").await.len(), 1);

    // Bob declines the newcomer discount: the cancellation stays in place.
    let res = decide(&app, &bob_token, &bob_req, &s.newbie, "decline")
        .await
        .expect(200);
    assert_eq!(res.body["outcome"], "declined");
    let req = app
        .get_ok(&format!("/v1/cancellation_requests/{bob_req}"), &m.key)
        .await;
    assert_eq!(req["status"], "pending");
    let sub = app
        .get_ok(&format!("/v1/subscriptions/{bob_sub}"), &m.key)
        .await;
    assert!(!sub["cancel_at"].is_null(), "still cancelling: {sub}");
    decide(&app, &bob_token, &bob_req, &s.newbie, "accept")
        .await
        .expect_problem(409, "retention_offer_declined");
    let open = app
        .get_ok(
            &format!("/v1/portal/cancellation_requests/{bob_req}/retention_offers"),
            &bob_token,
        )
        .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 1);
    assert_eq!(open["data"][0]["id"], s.pause.as_str());

    // …then takes the pause instead: paused now for 30 days, cancellation withdrawn.
    let res = decide(&app, &bob_token, &bob_req, &s.pause, "accept")
        .await
        .expect(200);
    assert_eq!(res.body["subscription"]["status"], "paused");
    assert_eq!(res.body["cancellation_request"]["status"], "withdrawn");
    assert!(res.body["discount"].is_null());
    let paused = events(&app, m, "subscription.paused").await;
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0]["resource_id"], bob_sub.as_str());
    assert_eq!(
        outcomes(&app, &bob_req).await,
        [
            (s.newbie.clone(), "declined".to_owned()),
            (s.pause.clone(), "accepted".to_owned())
        ]
    );

    // Cy is like Ada, but loses the tag and the merchant withdraws the pause before Cy
    // decides: neither can be accepted any more.
    let cy = customer(&app, m, "cy", 400, 20_000, &["vip", "beta"]).await;
    let Leaving {
        token: cy_token,
        request: cy_req,
        presented,
        ..
    } = leaving(&app, &s, &cy, "too_expensive").await;
    assert_eq!(
        presented,
        [s.switch.clone(), s.discount.clone(), s.pause.clone()]
    );
    app.by(&m.key)
        .delete(&format!("/v1/customers/{cy}/tags/vip"))
        .await
        .expect(200);
    decide(&app, &cy_token, &cy_req, &s.discount, "accept")
        .await
        .expect_problem(409, "retention_offer_not_eligible");
    app.by(&m.key)
        .delete(&format!("/v1/retention_offers/{}", s.pause))
        .await
        .expect(200);
    decide(&app, &cy_token, &cy_req, &s.pause, "accept")
        .await
        .expect_problem(409, "retention_offer_inactive");
    let req = app
        .get_ok(&format!("/v1/cancellation_requests/{cy_req}"), &m.key)
        .await;
    assert_eq!(req["status"], "pending", "a refused accept changes nothing");
    // The plan switch still works: the downgrade is scheduled by the domain's rules.
    let res = decide(&app, &cy_token, &cy_req, &s.switch, "accept")
        .await
        .expect(200);
    assert_eq!(res.body["cancellation_request"]["status"], "withdrawn");
    let changed = events(&app, m, "subscription.plan_change_scheduled")
        .await
        .len()
        + events(&app, m, "subscription.plan_changed").await.len();
    assert_eq!(changed, 1);
    let _ = &s.cheap;

    // The merchant's view of the outcomes.
    let stats = |id: String| {
        let app = &app;
        async move {
            app.get_ok(&format!("/v1/retention_offers/{id}"), &m.key)
                .await["stats"]
                .clone()
        }
    };
    assert_eq!(
        stats(s.discount.clone()).await,
        json!({"presented": 2, "accepted": 1, "declined": 1})
    );
    assert_eq!(
        stats(s.pause.clone()).await,
        json!({"presented": 3, "accepted": 1, "declined": 2})
    );
    assert_eq!(
        stats(s.newbie.clone()).await,
        json!({"presented": 1, "accepted": 0, "declined": 1})
    );

    // A merchant-side cancellation presents nothing.
    let before = app
        .count("SELECT count(*) AS n FROM retention_offer_outcomes")
        .await;
    fixtures::cancel(
        &app,
        m,
        &ada_sub,
        json!({"timing": "period_end", "reason": "too_expensive"}),
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM retention_offer_outcomes")
            .await,
        before
    );
}

/// Concurrent accepts (a double click, a retry racing the first try) and a decline of the
/// same request: exactly one accept applies, the others are refused with 409.
#[actix_web::test]
async fn concurrent_accepts_apply_the_offer_once() {
    let app = TestApp::new().await;
    let s = setup(&app).await;
    let m = &s.m;
    let ada = customer(&app, m, "ada", 200, 15_000, &["vip"]).await;
    let Leaving {
        token,
        sub,
        request: req,
        presented,
    } = leaving(&app, &s, &ada, "too_expensive").await;
    assert_eq!(presented, [s.discount.clone(), s.pause.clone()]);
    let decisions = ["accept", "accept", "accept", "accept", "decline"]
        .map(|decision| decide(&app, &token, &req, &s.discount, decision));
    let results = futures_util::future::join_all(decisions).await;
    let ok: Vec<_> = results
        .iter()
        .filter(|r| r.status.as_u16() == 200)
        .collect();
    assert_eq!(ok.len(), 1, "exactly one decision wins");
    for r in &results {
        assert!([200, 409].contains(&r.status.as_u16()), "{:?}", r.body);
    }
    let sub_uuid = fixtures::subscription_uuid(&sub);
    let granted = app
        .count(&format!(
            "SELECT count(*) AS n FROM subscription_discounts WHERE subscription_id = '{sub_uuid}'"
        ))
        .await;
    let accepted = events(&app, m, "retention_offer.accepted").await.len();
    let status = app
        .get_ok(&format!("/v1/cancellation_requests/{req}"), &m.key)
        .await["status"]
        .clone();
    if ok[0].body.get("discount").is_some() {
        // An accept won: one discount, one event, the request withdrawn.
        assert_eq!((granted, accepted), (1, 1));
        assert_eq!(status, "withdrawn");
    } else {
        // The decline won: nothing applied, the cancellation stands.
        assert_eq!((granted, accepted), (0, 0));
        assert_eq!(status, "pending");
    }
}

/// A trialing customer offered more trial: the trial end (and the first paid period)
/// moves, the cancellation is withdrawn.
#[actix_web::test]
async fn extend_trial_offers_move_the_trial_end() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan_with(&app, &m, &product, 2000, 14).await;
    let extend = offer(
        &app,
        &m,
        json!({"name": "Two more weeks",
        "kind": {"type": "extend_trial", "days": 14}}),
    )
    .await;
    let pause = offer(
        &app,
        &m,
        json!({"name": "Pause", "kind": {"type": "pause_instead", "days": 30}}),
    )
    .await;
    let c = customer(&app, &m, "trier", 3, 0, &[]).await;
    let token = fixtures::session(&app, &m, &c).await;
    let sub = fixtures::subscribe_id(&app, &m, &c, &plan).await;
    let before = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(before["status"], "trialing");
    let (req, presented) = cancel(&app, &token, &sub, "other").await;
    // A trial can be extended; a trialing subscription cannot pause.
    assert_eq!(presented, std::slice::from_ref(&extend));
    let _ = pause;
    let res = decide(&app, &token, &req, &extend, "accept")
        .await
        .expect(200);
    assert_eq!(res.body["subscription"]["status"], "trialing");
    assert_eq!(res.body["cancellation_request"]["status"], "withdrawn");
    let moved = time(&res.body["subscription"]["trial_end"]) - time(&before["trial_end"]);
    assert_eq!(moved, chrono::Duration::days(14));
    let extended = events(&app, &m, "subscription.trial_extended").await;
    assert_eq!(extended.len(), 1);
    assert_eq!(
        extended[0]["data"]["previous_attributes"]["trial_end"],
        before["trial_end"]
    );
}

/// The accepted discount shows on the next invoice. Needs the renewal engine's discount
/// lines.
#[actix_web::test]
async fn an_accepted_discount_shows_on_the_next_invoice() {
    let app = TestApp::new().await;
    let s = setup(&app).await;
    let m = &s.m;
    let ada = customer(&app, m, "ada", 200, 15_000, &["vip"]).await;
    fixtures::attach_default(&app, m, &ada, "pm_card_visa").await;
    let Leaving {
        token,
        sub,
        request: req,
        ..
    } = leaving(&app, &s, &ada, "too_expensive").await;
    decide(&app, &token, &req, &s.discount, "accept")
        .await
        .expect(200);
    let body = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let end = time(&body["current_period"]["end"]);
    app.clock.advance_to(end + chrono::Duration::minutes(1));
    tenure_engine::renewals::run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
    // The customer's LTV invoice was hand-inserted; read the subscription's own.
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let sub_uuid = fixtures::subscription_uuid(&sub);
    let mut conn = app.sql().await;
    let rows: Vec<Row> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT id FROM invoices WHERE subscription_id = '{sub_uuid}' ORDER BY id DESC LIMIT 1"
        )),
        &mut conn,
    )
    .await
    .unwrap();
    let invoice = tenure_domain::ids::InvoiceId::from_uuid(rows[0].id);
    let renewal = &app.get_ok(&format!("/v1/invoices/{invoice}"), &m.key).await;
    let lines = renewal["lines"].as_array().unwrap();
    let discount: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "discount").collect();
    assert_eq!(discount.len(), 1, "{renewal}");
    // 20% of 20.00 EUR.
    assert_eq!(
        discount[0]["amount"],
        json!({"amount": -400, "currency": "EUR"})
    );
    assert_eq!(renewal["total"], json!({"amount": 1600, "currency": "EUR"}));
}
