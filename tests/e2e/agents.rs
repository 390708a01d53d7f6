//! Agents held to the product's portal policy (docs/billing.md, "Agents held to the
//! policy"): a merchant request naming an agent (`Tenure-Agent`) is refused what the
//! portal would refuse a subscriber, unless it carries `override: {reason}`; then the
//! action is allowed and recorded as an override naming the agent and the limit (the
//! customer's overrides, timeline, context and `GET /v1/metrics/overrides`). A backend
//! without the header is unrestricted, as before.

use actix_web::http::Method;
use serde_json::{Value, json};
use tenure_e2e::{Response, TestApp, TestMerchant};

use crate::fixtures::{self, events};

const AGENT: &str = "desk-anna";

async fn post_as(
    app: &TestApp,
    m: &TestMerchant,
    agent: Option<&str>,
    path: &str,
    body: Value,
) -> Response {
    let mut request = app.request(Method::POST, path).bearer(&m.key);
    if let Some(agent) = agent {
        request = request.header("tenure-agent", agent);
    }
    request.json(&body).send().await
}

/// A product with `policy`, a 1000 EUR monthly plan of it, and `subscribers` customers
/// subscribed to it: (product, plan, [(customer, subscription)]).
async fn subscribers(
    app: &TestApp,
    m: &TestMerchant,
    policy: Value,
    subscribers: usize,
) -> (String, String, Vec<(String, String)>) {
    let product = fixtures::product(app, m, policy).await;
    let plan = fixtures::plan(app, m, &product, 1000).await;
    let mut subs = Vec::new();
    for n in 0..subscribers {
        let cus = fixtures::customer(app, m, &format!("agent-sub-{n}")).await;
        let sub = fixtures::subscribe_id(app, m, &cus, &plan).await;
        subs.push((cus, sub));
    }
    (product, plan, subs)
}

/// The refusal names the limit and says an override would allow it.
fn assert_refused(res: &Response, code: &str, limit: &str) {
    assert_eq!(res.body["code"], code, "{}", res.body);
    assert_eq!(res.body["limit"], limit, "{}", res.body);
    let detail = res.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(limit) && detail.contains("override"),
        "{detail}"
    );
}

/// The customer's overrides, newest first.
async fn overrides(app: &TestApp, m: &TestMerchant, cus: &str) -> Vec<Value> {
    app.get_ok(&format!("/v1/customers/{cus}/overrides"), &m.key)
        .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// The one override of `cus` names the agent, its kind, reason and limit, and shows in
/// the timeline, the context and the metrics under the agent's name.
async fn assert_recorded(
    app: &TestApp,
    m: &TestMerchant,
    cus: &str,
    sub: &str,
    kind: &str,
    limit: &str,
) {
    let listed = overrides(app, m, cus).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let recorded = &listed[0];
    assert_eq!(recorded["agent"], AGENT);
    assert_eq!(recorded["kind"], kind);
    assert_eq!(recorded["subscription_id"], sub);
    assert_eq!(recorded["limits"], json!([limit]));
    assert_eq!(recorded["reason"], "Valued subscriber");

    let timeline = app
        .get_ok(&format!("/v1/customers/{cus}/timeline?limit=100"), &m.key)
        .await;
    assert!(
        timeline["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "override.created"),
        "{timeline}"
    );
    let context = app
        .get_ok(&format!("/v1/customers/{cus}/context"), &m.key)
        .await;
    assert_eq!(context["overrides"][0]["id"], recorded["id"]);
    assert_eq!(context["overrides"][0]["limits"], json!([limit]));

    let metrics = app.get_ok("/v1/metrics/overrides", &m.key).await;
    let entry = metrics["granted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["agent"] == AGENT && g["kind"] == kind)
        .unwrap_or_else(|| panic!("{AGENT} {kind} in {metrics}"))
        .clone();
    assert_eq!(entry["count"], 1);
}

const OVERRIDE: &str = "Valued subscriber";

#[actix_web::test]
async fn an_agents_pause_beyond_the_maximum_is_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents pause").await;
    let (_, _, subs) = subscribers(&app, &m, json!({"max_pause_days": 30}), 2).await;
    let (cus, sub) = &subs[0];
    let pause = format!("/v1/subscriptions/{sub}/pause");
    let long = json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 6}});

    let res = post_as(&app, &m, Some(AGENT), &pause, long.clone())
        .await
        .expect(422);
    assert_refused(&res, "pause_too_long", "max_pause_days");
    assert_eq!(fixtures::status(&app, &m, sub).await, "active");
    assert!(overrides(&app, &m, cus).await.is_empty());

    // An open-ended pause ends at the limit, as the portal's does.
    let open = post_as(
        &app,
        &m,
        Some(AGENT),
        &pause,
        json!({"start": {"type": "now"}}),
    )
    .await
    .expect(200)
    .body;
    let started = fixtures::time(&open["pause"]["started_at"]);
    let resumes = fixtures::time(&open["pause"]["resumes_at"]);
    assert_eq!((resumes - started).num_days(), 30);
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{sub}/resume"))
        .await
        .expect(200);
    assert!(overrides(&app, &m, cus).await.is_empty());

    let mut overridden = long.clone();
    overridden["override"] = json!({"reason": OVERRIDE});
    let paused = post_as(&app, &m, Some(AGENT), &pause, overridden)
        .await
        .expect(200)
        .body;
    assert_eq!(paused["status"], "paused");
    assert_recorded(&app, &m, cus, sub, "pause", "max_pause_days").await;

    // The backend without an agent: unrestricted, nothing recorded.
    let (other_cus, other) = &subs[1];
    post_as(
        &app,
        &m,
        None,
        &format!("/v1/subscriptions/{other}/pause"),
        long,
    )
    .await
    .expect(200);
    assert!(overrides(&app, &m, other_cus).await.is_empty());
    assert_eq!(events(&app, &m, "override.created").await.len(), 1);
}

#[actix_web::test]
async fn an_agents_cancellation_without_notice_is_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents cancel").await;
    let (_, _, subs) = subscribers(&app, &m, json!({"notice_period_days": 30}), 2).await;
    let (cus, sub) = &subs[0];
    let cancel = format!("/v1/subscriptions/{sub}/cancel");

    let res = post_as(&app, &m, Some(AGENT), &cancel, json!({"timing": "now"}))
        .await
        .expect(422);
    assert_refused(&res, "cancellation_notice_required", "cancellation_notice");
    // An override without a reason is a 422 on its field, and changes nothing.
    let res = post_as(
        &app,
        &m,
        Some(AGENT),
        &cancel,
        json!({"timing": "now", "override": {"reason": " "}}),
    )
    .await
    .expect(422);
    assert_eq!(res.body["errors"][0]["field"], "override.reason");
    assert_eq!(fixtures::status(&app, &m, sub).await, "active");

    let canceled = post_as(
        &app,
        &m,
        Some(AGENT),
        &cancel,
        json!({"timing": "now", "override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(canceled["status"], "canceled");
    assert_recorded(&app, &m, cus, sub, "cancel", "cancellation_notice").await;

    let (other_cus, other) = &subs[1];
    let canceled = post_as(
        &app,
        &m,
        None,
        &format!("/v1/subscriptions/{other}/cancel"),
        json!({"timing": "now"}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(canceled["status"], "canceled");
    assert!(overrides(&app, &m, other_cus).await.is_empty());
}

#[actix_web::test]
async fn an_agents_switch_to_a_plan_the_policy_does_not_offer_is_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents plans").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let offered = fixtures::plan(&app, &m, &product, 1500).await;
    let hidden = fixtures::plan(&app, &m, &product, 2500).await;
    app.by(&m.key)
        .patch(
            &format!("/v1/products/{product}"),
            &json!({"portal_policy": {"switchable_plan_ids": [offered]}}),
        )
        .await
        .expect(200);
    let basic = fixtures::plan(&app, &m, &product, 1000).await;
    let mut subs = Vec::new();
    for n in 0..2 {
        let cus = fixtures::customer(&app, &m, &format!("plans-{n}")).await;
        let sub = fixtures::subscribe_id(&app, &m, &cus, &basic).await;
        subs.push((cus, sub));
    }
    let (cus, sub) = &subs[0];
    let change = format!("/v1/subscriptions/{sub}/change_plan");

    // The preview is held as the change is.
    let res = post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("{change}/preview"),
        json!({"plan_id": hidden}),
    )
    .await
    .expect(422);
    assert_refused(&res, "plan_not_allowed", "switchable_plan_ids");
    let res = post_as(&app, &m, Some(AGENT), &change, json!({"plan_id": hidden}))
        .await
        .expect(422);
    assert_refused(&res, "plan_not_allowed", "switchable_plan_ids");
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("{change}/preview"),
        json!({"plan_id": hidden, "override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200);
    assert!(
        overrides(&app, &m, cus).await.is_empty(),
        "a preview records nothing"
    );

    let changed = post_as(
        &app,
        &m,
        Some(AGENT),
        &change,
        json!({"plan_id": hidden, "override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(changed["plan_id"], hidden.as_str());
    assert_recorded(&app, &m, cus, sub, "plan_change", "switchable_plan_ids").await;

    // The plan the policy offers needs no override; the backend may switch to any.
    let (other_cus, other) = &subs[1];
    let other_change = format!("/v1/subscriptions/{other}/change_plan");
    post_as(&app, &m, None, &other_change, json!({"plan_id": hidden}))
        .await
        .expect(200);
    assert!(overrides(&app, &m, other_cus).await.is_empty());
}

#[actix_web::test]
async fn the_customer_context_shows_billing_data_only_to_keys_that_read_billing() {
    let app = TestApp::new().await;
    let m = app.merchant("Context scopes").await;
    let (_, _, subs) = subscribers(&app, &m, json!({}), 1).await;
    let (cus, _) = &subs[0];
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/customers/{cus}/balance_transactions"),
        json!({"amount": {"amount": 300, "currency": "EUR"}, "reason": "Late box"}),
    )
    .await
    .expect(201);
    let key = |scopes: &[&str]| json!({"name": format!("{} key", scopes.len()), "scopes": scopes});
    let customers_only = app
        .by(&m.key)
        .post("/v1/api_keys", &key(&["customers:read"]))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let with_billing = app
        .by(&m.key)
        .post("/v1/api_keys", &key(&["customers:read", "billing:read"]))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/customers/{cus}/context");

    let restricted = app.get_ok(&path, &customers_only).await;
    assert_eq!(restricted["customer_id"], cus.as_str());
    assert!(restricted.get("credit_balances").is_none(), "{restricted}");
    assert!(restricted.get("overrides").is_none(), "{restricted}");
    app.request(Method::GET, &format!("/v1/customers/{cus}/overrides"))
        .bearer(&customers_only)
        .send()
        .await
        .expect(403);

    let full = app.get_ok(&path, &with_billing).await;
    assert_eq!(
        full["credit_balances"],
        json!([{"amount": 300, "currency": "EUR"}])
    );
    assert_eq!(full["overrides"][0]["kind"], "credit");
    assert_eq!(full["overrides"][0]["amount"]["amount"], 300);
}

#[actix_web::test]
async fn an_agents_skip_the_policy_forbids_is_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents skip").await;
    let (_, _, subs) = subscribers(&app, &m, json!({}), 2).await;
    let (cus, sub) = &subs[0];
    let skip = format!("/v1/subscriptions/{sub}/skip");

    let res = post_as(&app, &m, Some(AGENT), &skip, json!({}))
        .await
        .expect(422);
    assert_refused(&res, "skip_not_allowed", "allow_skip");
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(shown["skipped_renewals"], json!([]));

    let skipped = post_as(
        &app,
        &m,
        Some(AGENT),
        &skip,
        json!({"override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(skipped["skipped_renewals"][0]["requested_by"], "merchant");
    assert_recorded(&app, &m, cus, sub, "skip", "allow_skip").await;
    // Taking it back exceeds nothing: no second override.
    post_as(
        &app,
        &m,
        Some(AGENT),
        &format!("/v1/subscriptions/{sub}/unskip"),
        json!({"override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200);
    assert_eq!(overrides(&app, &m, cus).await.len(), 1);

    // The backend without an agent, with no body: unrestricted, nothing recorded.
    let (other_cus, other) = &subs[1];
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{other}/skip"))
        .await
        .expect(200);
    assert!(overrides(&app, &m, other_cus).await.is_empty());
    assert_eq!(events(&app, &m, "override.created").await.len(), 1);
}

#[actix_web::test]
async fn an_agents_skips_beyond_the_limit_in_a_row_are_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents skips").await;
    let (_, _, subs) = subscribers(
        &app,
        &m,
        json!({"allow_skip": true, "max_consecutive_skips": 1}),
        2,
    )
    .await;
    let (cus, sub) = &subs[0];
    let skip = format!("/v1/subscriptions/{sub}/skip");
    // The first is within the policy: nothing to override, nothing recorded.
    post_as(&app, &m, Some(AGENT), &skip, json!({}))
        .await
        .expect(200);
    let res = post_as(&app, &m, Some(AGENT), &skip, json!({}))
        .await
        .expect(422);
    assert_refused(&res, "too_many_consecutive_skips", "max_consecutive_skips");
    assert!(overrides(&app, &m, cus).await.is_empty());

    let twice = post_as(
        &app,
        &m,
        Some(AGENT),
        &skip,
        json!({"override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(twice["skipped_renewals"].as_array().unwrap().len(), 2);
    assert_recorded(&app, &m, cus, sub, "skip", "max_consecutive_skips").await;

    let (other_cus, other) = &subs[1];
    for _ in 0..2 {
        post_as(
            &app,
            &m,
            None,
            &format!("/v1/subscriptions/{other}/skip"),
            json!({}),
        )
        .await
        .expect(200);
    }
    assert!(overrides(&app, &m, other_cus).await.is_empty());
}

#[actix_web::test]
async fn an_agents_send_now_the_policy_forbids_is_refused_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents send now").await;
    let (_, _, subs) = subscribers(&app, &m, json!({}), 2).await;
    let (cus, sub) = &subs[0];
    let send = format!("/v1/subscriptions/{sub}/send_now");

    let res = post_as(&app, &m, Some(AGENT), &send, json!({"anchor": "keep"}))
        .await
        .expect(422);
    assert_refused(&res, "send_now_not_allowed", "allow_send_now");
    assert_eq!(
        fixtures::count_events(&app, sub, "subscription.sent_now").await,
        0
    );

    let sent = post_as(
        &app,
        &m,
        Some(AGENT),
        &send,
        json!({"anchor": "keep", "override": {"reason": OVERRIDE}}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(sent["sent_now"]["anchor"], "keep");
    assert_recorded(&app, &m, cus, sub, "send_now", "allow_send_now").await;

    let (other_cus, other) = &subs[1];
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{other}/send_now"))
        .await
        .expect(200);
    assert!(overrides(&app, &m, other_cus).await.is_empty());
    assert_eq!(events(&app, &m, "subscription.sent_now").await.len(), 2);
}

#[actix_web::test]
async fn an_agent_removing_a_pauses_resume_is_held_to_the_maximum_unless_overridden() {
    let app = TestApp::new().await;
    let m = app.merchant("Agents resume").await;
    let (_, _, subs) = subscribers(&app, &m, json!({"max_pause_days": 60}), 2).await;
    // Each paused by the backend for one cycle, with an automatic resume.
    let mut resumes = Vec::new();
    for (_, sub) in &subs {
        let paused = app
            .by(&m.key)
            .post(
                &format!("/v1/subscriptions/{sub}/pause"),
                &json!({"start": {"type": "now"}, "end": {"type": "after_cycles", "cycles": 1}}),
            )
            .await
            .expect(200)
            .body;
        let resume = paused["scheduled_changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "resume")
            .expect("a scheduled resume")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        resumes.push(resume);
    }
    let (cus, sub) = &subs[0];
    let remove = format!("/v1/subscriptions/{sub}/scheduled_changes/{}", resumes[0]);
    let delete_as = async |path: &str| {
        app.request(Method::DELETE, path)
            .bearer(&m.key)
            .header("tenure-agent", AGENT)
            .send()
            .await
    };

    let res = delete_as(&remove).await.expect(422);
    assert_refused(&res, "pause_too_long", "max_pause_days");
    // A blank reason is refused on its parameter.
    let res = delete_as(&format!("{remove}?override_reason=%20"))
        .await
        .expect(422);
    assert_eq!(res.body["errors"][0]["field"], "override_reason");
    let shown = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert!(!shown["pause"]["resumes_at"].is_null());

    let open = delete_as(&format!("{remove}?override_reason=Valued%20subscriber"))
        .await
        .expect(200)
        .body;
    assert!(open["pause"]["resumes_at"].is_null());
    assert_eq!(open["scheduled_changes"], json!([]));
    assert_recorded(&app, &m, cus, sub, "pause", "max_pause_days").await;

    // The backend without an agent: unrestricted, nothing recorded.
    let (other_cus, other) = &subs[1];
    app.by(&m.key)
        .delete(&format!(
            "/v1/subscriptions/{other}/scheduled_changes/{}",
            resumes[1]
        ))
        .await
        .expect(200);
    assert!(overrides(&app, &m, other_cus).await.is_empty());
}
