//! The subscription lifecycle over HTTP: the transition table (status × action ×
//! policy), the portal's available actions, concurrency, and the worker applying
//! scheduled cancellations and resumes when the test clock passes them.

use chrono::Duration;
use diesel_async::RunQueryDsl;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_domain::ids::GenerateId;
use tenure_e2e::{Response, TestApp, TestMerchant};
use tenure_engine::lifecycle::run_due_changes;

use crate::fixtures::{self, Catalog, catalog, count_events, plan_with, time};

async fn worker(app: &TestApp) -> usize {
    run_due_changes(&app.state.app, app.clock.now(), 100)
        .await
        .expect("worker round")
}

/// Checks the stored domain state of a subscription against the domain's invariants.
async fn assert_invariants(app: &TestApp, sub: &str) -> tenure_domain::subscription::Subscription {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        state: Value,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let id: tenure_domain::ids::SubscriptionId = sub.parse().expect("sub id");
    let mut conn = app.sql().await;
    let row: Row = diesel::sql_query("SELECT state, status FROM subscriptions WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(id.uuid())
        .get_result(&mut conn)
        .await
        .expect("subscription row");
    let s: tenure_domain::subscription::Subscription =
        serde_json::from_value(row.state).expect("state deserializes");
    assert_eq!(
        s.status.as_str(),
        row.status,
        "status column mirrors the state"
    );
    s.check_invariants()
        .unwrap_or_else(|e| panic!("invariant broken: {e}: {s:?}"));
    s
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Merchant,
    /// A customer under a policy that allows pause, cancel and plan change.
    Allowed,
    /// A customer under a policy that allows none of them.
    Forbidden,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Pause,
    Resume,
    Cancel,
    ChangePlan,
}

/// The expected outcome: `None` for success, else the status and code.
fn expected(status: &str, who: Who, act: Act) -> Option<(u16, &'static str)> {
    let customer_policy = |code| (who == Who::Forbidden).then_some((422, code));
    match act {
        Act::Pause => match status {
            "active" => customer_policy("pause_not_allowed"),
            "trialing" => Some((409, "subscription_trialing")),
            "past_due" => Some((409, "subscription_past_due")),
            "paused" => Some((409, "already_paused")),
            "canceled" => Some((409, "subscription_canceled")),
            "unpaid" => Some((409, "subscription_unpaid")),
            _ => unreachable!(),
        },
        Act::Resume => match status {
            // The forbidden-policy customer's subscription was paused by the merchant.
            "paused" => customer_policy("resume_not_allowed"),
            "canceled" => Some((409, "subscription_canceled")),
            _ => Some((409, "not_paused")),
        },
        Act::Cancel => match status {
            "canceled" => Some((409, "already_canceled")),
            _ => customer_policy("cancel_not_allowed"),
        },
        Act::ChangePlan => match status {
            "trialing" | "active" => customer_policy("plan_change_not_allowed"),
            "past_due" => Some((409, "subscription_past_due")),
            "paused" => Some((409, "subscription_paused")),
            "canceled" => Some((409, "subscription_canceled")),
            "unpaid" => Some((409, "subscription_unpaid")),
            _ => unreachable!(),
        },
    }
}

#[actix_web::test]
async fn every_row_of_the_transition_table_over_http() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let open = catalog(&app, &m, json!({})).await;
    let closed = catalog(
        &app,
        &m,
        json!({"allow_pause": false, "allow_cancel": false, "allow_plan_change": false}),
    )
    .await;
    let customer = fixtures::customer(&app, &m, "table").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let statuses = [
        "trialing", "active", "past_due", "paused", "canceled", "unpaid",
    ];
    let acts = [Act::Pause, Act::Resume, Act::Cancel, Act::ChangePlan];
    let mut rows = 0;
    for who in [Who::Merchant, Who::Allowed, Who::Forbidden] {
        let cat = if who == Who::Forbidden {
            &closed
        } else {
            &open
        };
        for status in statuses {
            for act in acts {
                // Reach the status through the API (and SQL for the billing engine's
                // statuses, which no API call reaches yet).
                let plan = if status == "trialing" {
                    &cat.trial
                } else {
                    &cat.base
                };
                let sub = fixtures::subscribe_id(&app, &m, &customer, plan).await;
                let merchant = ("/v1/subscriptions", m.key.as_str());
                let (base, credential) = match who {
                    Who::Merchant => merchant,
                    _ => ("/v1/portal/subscriptions", token.as_str()),
                };
                match status {
                    // The customer whose policy forbids pausing is paused by the merchant.
                    "paused" => {
                        let (base, credential) = match who {
                            Who::Allowed => (base, credential),
                            _ => merchant,
                        };
                        app.by(credential)
                            .post(
                                &format!("{base}/{sub}/pause"),
                                &json!({"start": {"type": "now"}}),
                            )
                            .await
                            .expect(200);
                    }
                    "canceled" => {
                        app.by(&m.key)
                            .post_empty(&format!("/v1/subscriptions/{sub}/cancel"))
                            .await
                            .expect(200);
                    }
                    "past_due" | "unpaid" => {
                        app.exec(&format!(
                                "UPDATE subscriptions SET status = '{status}', \
                                 state = jsonb_set(state, '{{status}}', '\"{status}\"') WHERE id = '{}'",
                                fixtures::subscription_uuid(&sub)
                            ),
                        )
                        .await;
                    }
                    _ => {}
                }
                let caller = app.by(credential);
                let path = |action: &str| format!("{base}/{sub}/{action}");
                let res = match act {
                    Act::Pause => {
                        caller
                            .post(&path("pause"), &json!({"start": {"type": "now"}}))
                            .await
                    }
                    Act::Resume => caller.post_empty(&path("resume")).await,
                    Act::Cancel if who == Who::Merchant => {
                        caller.post(&path("cancel"), &json!({})).await
                    }
                    Act::Cancel => {
                        caller
                            .post(&path("cancel"), &json!({"reason": "too_expensive"}))
                            .await
                    }
                    Act::ChangePlan => {
                        caller
                            .post(&path("change_plan"), &json!({"plan_id": cat.premium}))
                            .await
                    }
                };
                let context = format!("{who:?} {act:?} on {status}");
                match expected(status, who, act) {
                    Some((code, name)) => {
                        assert_eq!(res.status.as_u16(), code, "{context}: {}", res.body);
                        assert_eq!(res.body["code"], name, "{context}: {}", res.body);
                        assert_eq!(res.header("content-type"), Some("application/problem+json"));
                    }
                    None => {
                        assert_eq!(res.status.as_u16(), 200, "{context}: {}", res.body);
                        assert!(res.header("etag").is_some(), "{context}: ETag");
                        let body = if who == Who::Merchant || !matches!(act, Act::Cancel) {
                            res.body.clone()
                        } else {
                            res.body["subscription"].clone()
                        };
                        match act {
                            Act::Pause => assert_eq!(body["status"], "paused", "{context}"),
                            Act::Resume => assert_eq!(body["status"], "active", "{context}"),
                            Act::Cancel if who == Who::Merchant => {
                                assert_eq!(body["status"], "canceled", "{context}")
                            }
                            Act::Cancel => {
                                assert!(body["cancel_at"].is_string(), "{context}: {body}");
                                assert_eq!(
                                    res.body["cancellation_request"]["status"], "pending",
                                    "{context}"
                                );
                            }
                            Act::ChangePlan => {
                                assert_eq!(body["plan_id"], cat.premium.as_str(), "{context}")
                            }
                        }
                    }
                }
                assert_invariants(&app, &sub).await;
                rows += 1;
            }
        }
    }
    assert_eq!(rows, 72);
}

/// A customer subscribed to the base plan of a new catalog, signed in.
struct Subscriber {
    cat: Catalog,
    customer: String,
    /// Their portal session.
    token: String,
    /// The subscription's id.
    sub: String,
}

/// A [`Subscriber`] known as `external_id`, to a catalog with the portal `policy`.
async fn subscriber(
    app: &TestApp,
    m: &TestMerchant,
    policy: Value,
    external_id: &str,
) -> Subscriber {
    let cat = catalog(app, m, policy).await;
    let customer = fixtures::customer(app, m, external_id).await;
    let token = fixtures::session(app, m, &customer).await;
    let sub = fixtures::subscribe_id(app, m, &customer, &cat.base).await;
    Subscriber {
        cat,
        customer,
        token,
        sub,
    }
}

/// The portal's read of one subscription, as its customer.
async fn portal_read(app: &TestApp, token: &str, sub: &str) -> Value {
    app.get_ok(&format!("/v1/portal/subscriptions/{sub}"), token)
        .await
}

/// The portal's reads keep each product's terms briefly in the process; a change of the
/// product or its plans must show at once, in the single read and the list alike,
/// including when the product is archived (nothing to switch to).
#[actix_web::test]
async fn the_portal_read_and_list_show_catalog_changes_at_once() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber {
        cat, token, sub, ..
    } = subscriber(&app, &m, json!({"allow_plan_change": true}), "c-archived").await;
    let read = |token: String, sub: String| {
        let app = &app;
        async move {
            let one = portal_read(app, &token, &sub).await;
            let list = app.get_ok("/v1/portal/subscriptions", &token).await;
            assert_eq!(one, list["data"][0], "the read and the list render alike");
            one
        }
    };
    let before = read(token.clone(), sub.clone()).await;
    assert_eq!(
        before["available_actions"]["change_plan"]["plan_ids"],
        json!([cat.premium, cat.trial])
    );
    let extra = plan_with(&app, &m, &cat.product, 3000, 0).await;
    let added = read(token.clone(), sub.clone()).await;
    assert_eq!(
        added["available_actions"]["change_plan"]["plan_ids"],
        json!([extra, cat.premium, cat.trial]),
        "a new plan is offered at once"
    );
    app.by(&m.key)
        .patch(&format!("/v1/plans/{extra}"), &json!({"active": false}))
        .await
        .expect(200);
    let withdrawn = read(token.clone(), sub.clone()).await;
    assert_eq!(
        withdrawn["available_actions"]["change_plan"]["plan_ids"],
        json!([cat.premium, cat.trial]),
        "an archived plan is no longer offered"
    );
    assert!(withdrawn["available_actions"]["pause"].is_object());
    app.by(&m.key)
        .patch(
            &format!("/v1/products/{}", cat.product),
            &json!({"portal_policy": {"allow_pause": false}}),
        )
        .await
        .expect(200);
    let unpausable = read(token.clone(), sub.clone()).await;
    assert!(
        unpausable["available_actions"]["pause"].is_null(),
        "a policy change shows at once: {}",
        unpausable["available_actions"]
    );
    app.by(&m.key)
        .post_empty(&format!("/v1/products/{}/archive", cat.product))
        .await
        .expect(200);
    let after = read(token.clone(), sub.clone()).await;
    assert!(
        after["available_actions"]["change_plan"].is_null(),
        "{}",
        after["available_actions"]
    );
    // Another customer's subscription stays invisible to this read.
    let other = fixtures::customer(&app, &m, "c-other").await;
    let other_token = fixtures::session(&app, &m, &other).await;
    app.by(&other_token)
        .get(&format!("/v1/portal/subscriptions/{sub}"))
        .await
        .expect_problem(404, "resource_missing");
}

/// A policy changed behind this process's back (another process, here plain SQL) may
/// show late in the portal's reads, but an action is always checked against the policy
/// in the database.
#[actix_web::test]
async fn actions_are_checked_against_the_stored_policy_not_the_portal_cache() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber {
        cat, token, sub, ..
    } = subscriber(&app, &m, json!({"allow_pause": true}), "c-cache").await;
    let shown = portal_read(&app, &token, &sub).await;
    assert!(shown["available_actions"]["pause"].is_object());
    app.exec(&format!(
        "UPDATE products SET portal_policy = portal_policy || '{{\"allow_pause\": false}}' \
         WHERE id = '{}'",
        cat.product
            .parse::<tenure_domain::ids::ProductId>()
            .expect("a product id")
            .uuid()
    ))
    .await;
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/pause"),
            &json!({"start": {"type": "now"}}),
        )
        .await
        .expect_problem(422, "pause_not_allowed");
}

/// Regression: a EUR subscription was offered its product's USD plan, and the switch the
/// button promised then failed with 422 `currency_mismatch`.
#[actix_web::test]
async fn the_portal_offers_plan_changes_only_in_the_subscription_currency() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber {
        cat, token, sub, ..
    } = subscriber(&app, &m, json!({}), "eur").await;
    let usd = app
        .by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": cat.product, "name": "Premium (USD)",
            "price": {"amount": 2500, "currency": "USD"}, "interval": "month"}),
        )
        .await
        .expect(201)
        .id();
    let shown = portal_read(&app, &token, &sub).await;
    assert_eq!(
        shown["available_actions"]["change_plan"]["plan_ids"],
        json!([cat.premium, cat.trial]),
        "the USD plan is not offered: {shown}"
    );
    // Every plan offered can be previewed and taken.
    for plan in [&cat.premium, &cat.trial] {
        app.by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{sub}/change_plan/preview"),
                &json!({"plan_id": plan}),
            )
            .await
            .expect(200);
    }
    // And the one not offered is still refused, as before.
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": usd}),
        )
        .await
        .expect_problem(422, "currency_mismatch");
}

#[actix_web::test]
async fn the_four_portal_policy_cases_show_exactly_the_allowed_buttons() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    for (allow_pause, allow_cancel) in [(true, true), (true, false), (false, true), (false, false)]
    {
        let cat = catalog(
            &app,
            &m,
            json!({"allow_pause": allow_pause, "allow_cancel": allow_cancel}),
        )
        .await;
        let customer =
            fixtures::customer(&app, &m, &format!("c-{allow_pause}-{allow_cancel}")).await;
        let token = fixtures::session(&app, &m, &customer).await;
        let res = app
            .by(&token)
            .post("/v1/portal/subscriptions", &json!({"plan_id": cat.base}))
            .await
            .expect(201);
        let sub = res.id();
        assert_eq!(res.body["product_id"], cat.product.as_str());
        let context = format!("pause={allow_pause} cancel={allow_cancel}");
        let actions = &res.body["available_actions"];
        assert_eq!(
            actions["pause"].is_object(),
            allow_pause,
            "{context}: {actions}"
        );
        assert_eq!(
            actions["cancel"].is_object(),
            allow_cancel,
            "{context}: {actions}"
        );
        assert_eq!(actions["resume"], false);
        assert_eq!(actions["withdraw_cancellation"], false);
        assert_eq!(
            actions["change_plan"]["plan_ids"],
            json!([cat.premium, cat.trial]),
            "{context}: {actions}"
        );
        if allow_cancel {
            assert_eq!(actions["cancel"]["mode"], "request");
            assert_eq!(actions["cancel"]["requires_reason"], true);
        }
        // The same answer from GET and from the list.
        let got = app
            .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
            .await;
        assert_eq!(got["available_actions"], *actions);
        let list = app.get_ok("/v1/portal/subscriptions", &token).await;
        assert_eq!(list["data"][0]["available_actions"], *actions);

        let pause = app
            .by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{sub}/pause"),
                &json!({"start": {"type": "period_end"}}),
            )
            .await;
        if allow_pause {
            let body = pause.expect(200).body;
            assert_eq!(body["scheduled_changes"][0]["type"], "pause");
            assert_eq!(body["scheduled_changes"][0]["removable"], true);
            // Undo the scheduled pause so cancelling is judged on its own.
            let change = body["scheduled_changes"][0]["id"].as_str().unwrap();
            app.by(&token)
                .delete(&format!(
                    "/v1/portal/subscriptions/{sub}/scheduled_changes/{change}"
                ))
                .await
                .expect(200);
        } else {
            pause.expect_problem(422, "pause_not_allowed");
        }
        let cancel = app
            .by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{sub}/cancel"),
                &json!({"reason": "unused"}),
            )
            .await;
        if allow_cancel {
            let body = cancel.expect(200).body;
            assert_eq!(body["cancellation_request"]["status"], "pending");
            let after = &body["subscription"]["available_actions"];
            assert!(after["cancel"].is_null(), "no second cancel button");
            assert_eq!(after["withdraw_cancellation"], true);
            assert!(
                after["pause"].is_null(),
                "no pause while a cancellation is pending"
            );
        } else {
            cancel.expect_problem(422, "cancel_not_allowed");
        }
    }
}

#[actix_web::test]
async fn fifty_concurrent_conflicting_actions_leave_a_valid_state() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber {
        cat, token, sub, ..
    } = subscriber(&app, &m, json!({}), "busy").await;
    // Mostly pauses, resumes and plan changes by both audiences; two cancellations late
    // in the batch, so the earlier actions race each other rather than a cancellation.
    let requests = (0..50).map(|i| {
        let merchant = i % 2 == 0;
        let (base, credential) = if merchant {
            ("/v1/subscriptions", m.key.as_str())
        } else {
            ("/v1/portal/subscriptions", token.as_str())
        };
        let req = match (i, i % 6) {
            (40, _) => app
                .post(&format!("{base}/{sub}/cancel"))
                .json(&json!({"timing": "period_end"})),
            (45, _) => app
                .post(&format!("{base}/{sub}/cancel"))
                .json(&json!({"reason": "other"})),
            (_, 0 | 1) => app
                .post(&format!("{base}/{sub}/pause"))
                .json(&json!({"start": {"type": "now"}})),
            (_, 2 | 3) => app.post(&format!("{base}/{sub}/resume")),
            (_, 4) => app
                .post(&format!("{base}/{sub}/change_plan"))
                .json(&json!({"plan_id": cat.premium})),
            _ => app
                .post(&format!("{base}/{sub}/change_plan"))
                .json(&json!({"plan_id": cat.base})),
        };
        req.bearer(credential).send()
    });
    let responses: Vec<Response> = join_all(requests).await;
    let policy_codes = ["resume_not_allowed", "change_not_removable"];
    let mut successes = 0;
    for r in &responses {
        let code = r.body["code"].as_str().unwrap_or_default();
        match r.status.as_u16() {
            200 => successes += 1,
            409 => {}
            422 if policy_codes.contains(&code) => {}
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(successes > 1, "several actions won: {successes}");
    let final_state = assert_invariants(&app, &sub).await;
    let current = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    let count = |event: &'static str| count_events(&app, &sub, event);
    let paused = count("subscription.paused").await;
    let resumed = count("subscription.resumed").await;
    let is_paused = i64::from(current["status"] == "paused");
    assert_eq!(
        paused - resumed,
        is_paused,
        "paused/resumed events vs {current}"
    );
    assert_eq!(count("subscription.created").await, 1);
    let canceled = count("subscription.canceled").await;
    assert_eq!(canceled, i64::from(current["status"] == "canceled"));
    let requested = count("subscription.cancellation_requested").await;
    assert!(requested <= 1, "one customer cancellation at most");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM cancellation_requests")
            .await,
        requested
    );
    // The latest subscription event shows the final state.
    #[derive(diesel::QueryableByName)]
    struct Last {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        data: Value,
    }
    let mut conn = app.sql().await;
    let last: Last = diesel::sql_query(format!(
        "SELECT data FROM events WHERE resource_id = '{sub}' ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(last.data["status"], current["status"]);
    assert_eq!(last.data["plan_id"], current["plan_id"]);
    assert_eq!(last.data["updated_at"], current["updated_at"]);
    assert_eq!(final_state.status.as_str(), current["status"]);
    // Scheduled-change rows mirror the state exactly.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scheduled_changes WHERE kind <> 'trial_end'")
            .await,
        i64::try_from(final_state.scheduled_changes.len()).unwrap()
    );
}

#[actix_web::test]
async fn a_requested_cancellation_takes_effect_when_due_and_resolves_its_ticket() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = catalog(&app, &m, json!({"notice_period_days": 30})).await;
    let customer = fixtures::customer(&app, &m, "leaver").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let sub = app
        .by(&token)
        .post("/v1/portal/subscriptions", &json!({"plan_id": cat.base}))
        .await
        .expect(201);
    let period_end = time(&sub.body["current_period"]["end"]);
    let sub = sub.id();
    let cancel = |body: Value| {
        app.post(&format!("/v1/portal/subscriptions/{sub}/cancel"))
            .bearer(&token)
            .json(&body)
            .send()
    };
    cancel(json!({}))
        .await
        .expect_problem(422, "validation_failed");
    let bad = cancel(json!({"reason": "bored"}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(bad.body["errors"][0]["field"], "reason");
    cancel(json!({"reason": "too_expensive", "confirm": "yes"}))
        .await
        .expect_problem(422, "validation_failed");
    let asked_at = app.clock.now();
    let res = cancel(json!({"reason": "too_expensive", "message": "Budget cuts."}))
        .await
        .expect(200);
    let request = res.body["cancellation_request"].clone();
    let effective_at = time(&request["effective_at"]);
    assert_eq!(request["status"], "pending");
    assert_eq!(request["reason"], "too_expensive");
    assert!(effective_at >= asked_at + Duration::days(30));
    assert!(effective_at >= period_end);
    let subscription = &res.body["subscription"];
    assert_eq!(
        subscription["status"], "active",
        "runs through the notice period"
    );
    assert_eq!(time(&subscription["cancel_at"]), effective_at);
    assert_eq!(time(&subscription["billing_ends_at"]), effective_at);
    assert!(time(&subscription["access_until"]) >= effective_at);
    assert_eq!(subscription["scheduled_changes"][0]["type"], "cancel");
    assert_eq!(
        subscription["scheduled_changes"][0]["details"]["cancellation_request_id"],
        request["id"]
    );
    let again = cancel(json!({"reason": "other"}))
        .await
        .expect_problem(409, "cancellation_pending");
    assert_eq!(
        again.body["detail"],
        "cannot cancel a subscription with a pending cancellation"
    );
    let pause = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/pause"),
            &json!({"start": {"type": "period_end"}}),
        )
        .await
        .expect_problem(409, "cancellation_pending");
    assert_eq!(
        pause.body["detail"], "cannot pause a subscription with a pending cancellation",
        "the detail states the code's reason, not the status"
    );

    // The merchant sees the request and its ticket; the customer sees the ticket too.
    let pending = app
        .get_ok("/v1/cancellation_requests?status=pending", &m.key)
        .await;
    assert_eq!(pending["data"][0]["id"], request["id"]);
    let ticket_id = request["ticket_id"].as_str().unwrap();
    let ticket = app
        .get_ok(&format!("/v1/support_tickets/{ticket_id}"), &m.key)
        .await;
    assert_eq!(ticket["status"], "open");
    assert!(
        ticket["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|msg| msg["author"] == "customer" && msg["body"] == "Budget cuts.")
    );
    let mine = app.get_ok("/v1/portal/support_tickets", &token).await;
    assert_eq!(mine["data"][0]["id"], ticket_id);

    // Nothing happens before the date…
    app.clock.advance(Duration::days(29));
    assert_eq!(worker(&app).await, 0);
    // …and the worker ends it once the clock passes effective_at.
    app.clock.advance_to(effective_at + Duration::minutes(1));
    assert_eq!(worker(&app).await, 1);
    assert_eq!(worker(&app).await, 0, "applied exactly once");
    let after = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(after["status"], "canceled");
    assert_eq!(
        time(&after["ended_at"]),
        effective_at,
        "ends at its own due time"
    );
    assert!(after["scheduled_changes"].as_array().unwrap().is_empty());
    let request = app
        .get_ok(
            &format!(
                "/v1/cancellation_requests/{}",
                request["id"].as_str().unwrap()
            ),
            &m.key,
        )
        .await;
    assert_eq!(request["status"], "completed");
    let ticket = app
        .get_ok(&format!("/v1/support_tickets/{ticket_id}"), &m.key)
        .await;
    assert_eq!(ticket["status"], "resolved");
    assert_eq!(count_events(&app, &sub, "subscription.canceled").await, 1);
    assert_invariants(&app, &sub).await;
}

#[actix_web::test]
async fn customers_withdraw_and_merchants_approve_or_decline_requests() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = catalog(&app, &m, json!({"notice_period_days": 14})).await;
    let mut setups = Vec::new();
    for name in ["withdraws", "approved", "declined"] {
        let customer = fixtures::customer(&app, &m, name).await;
        let token = fixtures::session(&app, &m, &customer).await;
        let sub = fixtures::subscribe_id(&app, &m, &customer, &cat.base).await;
        let request = fixtures::request_cancellation(&app, &token, &sub, "missing_features").await;
        setups.push((token, sub, fixtures::id(&request)));
    }
    let decline = async |request: &str, message: &str| {
        app.by(&m.key)
            .post(
                &format!("/v1/cancellation_requests/{request}/decline"),
                &json!({"message": message}),
            )
            .await
    };

    let (token, sub, request) = &setups[0];
    let withdraw = async || {
        app.by(token)
            .post_empty(&format!(
                "/v1/portal/cancellation_requests/{request}/withdraw"
            ))
            .await
    };
    let res = withdraw().await.expect(200);
    assert_eq!(res.body["cancellation_request"]["status"], "withdrawn");
    assert!(res.body["subscription"]["cancel_at"].is_null());
    assert_eq!(res.body["subscription"]["status"], "active");
    assert!(res.body["subscription"]["available_actions"]["cancel"].is_object());
    withdraw()
        .await
        .expect_problem(409, "cancellation_request_not_pending");
    assert_invariants(&app, sub).await;

    let (_, sub, request) = &setups[1];
    let res = app
        .by(&m.key)
        .post_empty(&format!("/v1/cancellation_requests/{request}/approve"))
        .await
        .expect(200);
    assert_eq!(res.body["status"], "approved");
    let approved = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(approved["status"], "canceled");
    assert!(time(&approved["access_until"]) >= time(&approved["ended_at"]));
    let ticket = res.body["ticket_id"].as_str().unwrap();
    let t = app
        .get_ok(&format!("/v1/support_tickets/{ticket}"), &m.key)
        .await;
    assert_eq!(t["status"], "resolved");
    decline(request, "too late")
        .await
        .expect_problem(409, "cancellation_request_not_pending");

    let (token, sub, request) = &setups[2];
    decline(request, "   ")
        .await
        .expect_problem(422, "validation_failed");
    let res = decline(request, "Your contract runs until March.")
        .await
        .expect(200);
    assert_eq!(res.body["status"], "declined");
    assert_eq!(
        res.body["decline_message"],
        "Your contract runs until March."
    );
    let continued = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), token)
        .await;
    assert_eq!(continued["status"], "active");
    assert!(continued["cancel_at"].is_null());
    // The customer reads the answer and replies, which reopens the ticket.
    let ticket = res.body["ticket_id"].as_str().unwrap();
    let mine = app.get_ok("/v1/portal/support_tickets", token).await;
    let messages = mine["data"][0]["messages"].as_array().unwrap().clone();
    assert!(
        messages
            .iter()
            .any(|msg| msg["author"] == "merchant"
                && msg["body"] == "Your contract runs until March.")
    );
    let reply = app
        .by(token)
        .post(
            &format!("/v1/portal/support_tickets/{ticket}/replies"),
            &json!({"body": "OK, understood."}),
        )
        .await
        .expect(201);
    assert_eq!(reply.body["status"], "open");
    let closed = app
        .by(&m.key)
        .post(
            &format!("/v1/support_tickets/{ticket}/replies"),
            &json!({"body": "Closing.", "status": "closed"}),
        )
        .await
        .expect(201);
    assert_eq!(closed.body["status"], "closed");
    app.by(token)
        .post(
            &format!("/v1/portal/support_tickets/{ticket}/replies"),
            &json!({"body": "one more"}),
        )
        .await
        .expect_problem(409, "ticket_closed");
    let open = app
        .get_ok("/v1/support_tickets?status=closed", &m.key)
        .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_pause_resumes_by_itself_when_the_clock_passes_its_end() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber {
        customer,
        token,
        sub,
        ..
    } = subscriber(&app, &m, json!({"max_pause_days": 30}), "napper").await;
    let pause = |body: Value| {
        app.post(&format!("/v1/portal/subscriptions/{sub}/pause"))
            .bearer(&token)
            .json(&body)
            .send()
    };
    let too_long = (app.clock.now() + Duration::days(45)).to_rfc3339();
    pause(json!({"start": {"type": "now"}, "end": {"type": "at", "date": too_long}}))
        .await
        .expect_problem(422, "pause_too_long");
    pause(json!({"start": {"type": "sometime"}}))
        .await
        .expect_problem(422, "validation_failed");
    let resumes = (app.clock.now() + Duration::days(10)).to_rfc3339();
    let res = pause(json!({"start": {"type": "now"}, "end": {"type": "at", "date": resumes}}))
        .await
        .expect(200);
    assert_eq!(res.body["status"], "paused");
    assert_eq!(res.body["pause"]["requested_by"], "customer");
    let resume_change = &res.body["scheduled_changes"][0];
    assert_eq!(resume_change["type"], "resume");
    assert_eq!(
        resume_change["removable"], false,
        "the automatic resume stays"
    );
    assert_eq!(res.body["available_actions"]["resume"], true);
    let change = resume_change["id"].as_str().unwrap();
    app.by(&token)
        .delete(&format!(
            "/v1/portal/subscriptions/{sub}/scheduled_changes/{change}"
        ))
        .await
        .expect_problem(422, "change_not_removable");

    app.clock.advance(Duration::days(9));
    assert_eq!(worker(&app).await, 0);
    app.clock.advance(Duration::days(2));
    assert_eq!(worker(&app).await, 1);
    // Session tokens expire by the same clock; sign in again.
    let token = fixtures::session(&app, &m, &customer).await;
    let after = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(after["status"], "active");
    assert!(after["pause"].is_null());
    assert_eq!(after["available_actions"]["pause"]["max_pause_days"], 30);
    assert_eq!(count_events(&app, &sub, "subscription.resumed").await, 1);
    assert_invariants(&app, &sub).await;
}

#[actix_web::test]
async fn trials_end_and_scheduled_pauses_start_through_the_worker() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = catalog(&app, &m, json!({})).await;
    let customer = fixtures::customer(&app, &m, "trial").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &cat.trial).await;
    assert_eq!(sub["status"], "trialing");
    let trial_end = time(&sub["trial_end"]);
    let sub = fixtures::id(&sub);
    app.clock.advance_to(trial_end + Duration::seconds(1));
    assert_eq!(worker(&app).await, 1);
    let active = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(active["status"], "active");
    assert_eq!(time(&active["current_period"]["start"]), trial_end);
    // A pause at period end is visible before it starts, then starts on time.
    let scheduled = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/pause"),
            &json!({"end": {"type": "after_cycles", "cycles": 1}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(scheduled["status"], "active");
    assert_eq!(scheduled["scheduled_changes"][0]["type"], "pause");
    let starts = time(&scheduled["scheduled_changes"][0]["due_at"]);
    app.clock.advance_to(starts + Duration::seconds(1));
    assert_eq!(worker(&app).await, 1);
    let paused = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["scheduled_changes"][0]["type"], "resume");
    assert_invariants(&app, &sub).await;
}

#[actix_web::test]
async fn plan_changes_preview_prorate_and_downgrades_wait_for_period_end() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = catalog(&app, &m, json!({})).await;
    let customer = fixtures::customer(&app, &m, "switcher").await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &cat.base).await;
    app.clock.advance(Duration::days(10));
    let token = fixtures::session(&app, &m, &customer).await;
    let portal = app.by(&token);
    // `POST …/{action}` to the plan: `change_plan` or `change_plan/preview`.
    let plan_change = async |action: &str, plan: &str| {
        portal
            .post(
                &format!("/v1/portal/subscriptions/{sub}/{action}"),
                &json!({"plan_id": plan}),
            )
            .await
    };
    let preview = plan_change("change_plan/preview", &cat.premium)
        .await
        .expect(200)
        .body;
    assert_eq!(preview["timing"], "now");
    let lines = preview["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2);
    let sum: i64 = lines
        .iter()
        .map(|l| l["amount"]["amount"].as_i64().unwrap())
        .sum();
    let due = preview["amount_due_now"]["amount"].as_i64().unwrap();
    let credit = preview["credit_carried"]["amount"].as_i64().unwrap();
    assert_eq!(sum, due - credit);
    assert!(due > 0 && due < 1000, "{preview}");
    assert_eq!(preview["amount_due_now"]["currency"], "EUR");
    plan_change("change_plan", &cat.base)
        .await
        .expect_problem(409, "same_plan");
    let up = plan_change("change_plan", &cat.premium)
        .await
        .expect(200)
        .body;
    assert_eq!(up["plan_id"], cat.premium.as_str());
    assert_eq!(up["price"]["amount"], 2000);
    // The preview's lines read as the invoice's will.
    let upcoming = app
        .get_ok(
            &format!("/v1/portal/subscriptions/{sub}/upcoming_invoice"),
            &token,
        )
        .await;
    let described = |lines: &Value| -> Vec<String> {
        let mut out: Vec<String> = lines
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["description"].as_str())
            .filter(|d| d.contains(" time on "))
            .map(str::to_owned)
            .collect();
        out.sort();
        out
    };
    let previewed = described(&preview["lines"]);
    assert_eq!(previewed.len(), 2, "{preview}");
    assert!(
        previewed.iter().all(|d| d.contains("Plan ")),
        "{previewed:?}"
    );
    assert_eq!(described(&upcoming["lines"]), previewed, "{upcoming}");
    let down = plan_change("change_plan/preview", &cat.base)
        .await
        .expect(200)
        .body;
    assert_eq!(down["timing"], "period_end");
    assert!(down["lines"].as_array().unwrap().is_empty());
    let scheduled = plan_change("change_plan", &cat.base).await.expect(200).body;
    assert_eq!(
        scheduled["plan_id"],
        cat.premium.as_str(),
        "still premium until period end"
    );
    let change = &scheduled["scheduled_changes"][0];
    assert_eq!(change["type"], "plan_change");
    assert_eq!(change["details"]["plan_id"], cat.base.as_str());
    assert_eq!(change["removable"], true);
    assert!(scheduled["available_actions"]["change_plan"].is_null());
    let id = change["id"].as_str().unwrap();
    let removed = app
        .by(&token)
        .delete(&format!(
            "/v1/portal/subscriptions/{sub}/scheduled_changes/{id}"
        ))
        .await
        .expect(200)
        .body;
    assert!(removed["scheduled_changes"].as_array().unwrap().is_empty());
    // A plan of another merchant, or junk, is a validation error, never a 500.
    plan_change("change_plan", "plan_nope")
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/change_plan"),
            &json!({"plan_id": tenure_domain::ids::PlanId::generate().to_string()}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_invariants(&app, &sub).await;
}

#[actix_web::test]
async fn merchants_list_filter_and_guard_subscriptions_with_etags() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cat = catalog(&app, &m, json!({})).await;
    let a = fixtures::customer(&app, &m, "a").await;
    let b = fixtures::customer(&app, &m, "b").await;
    let s1 = fixtures::subscribe(&app, &m, &a, &cat.trial).await;
    assert_eq!(s1["status"], "trialing");
    assert!(s1["trial_end"].is_string());
    let s2 = fixtures::subscribe(&app, &m, &a, &cat.base).await;
    let s3 = fixtures::subscribe(&app, &m, &b, &cat.premium).await;
    let app = &app;
    let list = |query: &str| {
        let path = format!("/v1/subscriptions{query}");
        let key = m.key.clone();
        async move { app.get_ok(&path, &key).await }
    };
    assert_eq!(list("").await["data"].as_array().unwrap().len(), 3);
    assert_eq!(list("?status=trialing").await["data"][0]["id"], s1["id"]);
    assert_eq!(
        list(&format!("?customer_id={b}")).await["data"][0]["id"],
        s3["id"]
    );
    let by_plan = list(&format!("?plan_id={}", cat.base)).await;
    assert_eq!(by_plan["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_plan["data"][0]["id"], s2["id"]);
    let page = list("?limit=2").await;
    assert_eq!(page["has_more"], true);
    let next = list(&format!(
        "?limit=2&starting_after={}",
        page["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    app.by(&m.key)
        .get("/v1/subscriptions?status=bogus")
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .get("/v1/subscriptions?customer_id=plan_x")
        .await
        .expect_problem(422, "validation_failed");

    let id = s2["id"].as_str().unwrap();
    let got = app
        .by(&m.key)
        .get(&format!("/v1/subscriptions/{id}"))
        .await
        .expect(200);
    let etag = got.header("etag").unwrap().to_owned();
    let paused = app
        .post(&format!("/v1/subscriptions/{id}/pause"))
        .bearer(&m.key)
        .header("if-match", &etag)
        .json(&json!({"start": {"type": "now"}}))
        .send()
        .await
        .expect(200);
    assert_ne!(paused.header("etag"), Some(etag.as_str()));
    app.post(&format!("/v1/subscriptions/{id}/resume"))
        .bearer(&m.key)
        .header("if-match", &etag)
        .send()
        .await
        .expect_problem(412, "precondition_failed");

    // Only active plans of active products can be subscribed to.
    app.by(&m.key)
        .patch(
            &format!("/v1/plans/{}", cat.premium),
            &json!({"active": false}),
        )
        .await
        .expect(200);
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": a, "plan_id": cat.premium}),
        )
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .post(
            "/v1/subscriptions",
            &json!({"customer_id": "cus_nope", "plan_id": "nope"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    // Merchants always cancel, and choose access.
    let canceled = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{}/cancel", s3["id"].as_str().unwrap()),
            &json!({"access": "immediately", "reason": "other"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["access_until"], canceled["ended_at"]);
}

#[actix_web::test]
async fn other_tenants_and_other_customers_get_404() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    let cat = catalog(&app, &a, json!({})).await;
    let owner = fixtures::customer(&app, &a, "owner").await;
    let other = fixtures::customer(&app, &a, "other").await;
    let owner_token = fixtures::session(&app, &a, &owner).await;
    let other_token = fixtures::session(&app, &a, &other).await;
    let sub = fixtures::subscribe_id(&app, &a, &owner, &cat.base).await;
    let request = fixtures::request_cancellation(&app, &owner_token, &sub, "unused").await;
    let ticket = request["ticket_id"].as_str().unwrap().to_owned();
    let request = fixtures::id(&request);
    let pause = json!({"start": {"type": "now"}});

    fixtures::assert_missing(
        app.by(&b.key),
        &[
            ("GET", format!("/v1/subscriptions/{sub}"), None),
            ("GET", format!("/v1/cancellation_requests/{request}"), None),
            ("GET", format!("/v1/support_tickets/{ticket}"), None),
            (
                "POST",
                format!("/v1/subscriptions/{sub}/pause"),
                Some(pause.clone()),
            ),
            (
                "POST",
                format!("/v1/cancellation_requests/{request}/approve"),
                None,
            ),
        ],
    )
    .await;
    fixtures::assert_empty(&app.get_ok("/v1/subscriptions", &b.key).await);

    fixtures::assert_missing(
        app.by(&other_token),
        &[
            ("GET", format!("/v1/portal/subscriptions/{sub}"), None),
            (
                "POST",
                format!("/v1/portal/subscriptions/{sub}/pause"),
                Some(pause),
            ),
            (
                "POST",
                format!("/v1/portal/subscriptions/{sub}/change_plan/preview"),
                Some(json!({"plan_id": cat.premium})),
            ),
            (
                "POST",
                format!("/v1/portal/cancellation_requests/{request}/withdraw"),
                None,
            ),
            (
                "POST",
                format!("/v1/portal/support_tickets/{ticket}/replies"),
                Some(json!({"body": "hi"})),
            ),
        ],
    )
    .await;
    for path in ["/v1/portal/subscriptions", "/v1/portal/support_tickets"] {
        fixtures::assert_empty(&app.get_ok(path, &other_token).await);
    }
    // Malformed ids are 404s too, and merchant keys stay out of the portal.
    app.by(&owner_token)
        .get("/v1/portal/subscriptions/sub_garbage")
        .await
        .expect_problem(404, "resource_missing");
    app.by(&a.key)
        .get(&format!("/v1/portal/subscriptions/{sub}"))
        .await
        .expect_problem(403, "merchant_key_not_allowed");
    // The owner still sees it, unchanged by the others.
    let mine = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &owner_token)
        .await;
    assert_eq!(mine["status"], "active");
    assert!(mine["cancel_at"].is_string());
}

/// `n` subscriptions of one customer (`external_id`), each cancelled by the merchant at
/// its period's end: their ids.
async fn cancelling_at_period_end(
    app: &TestApp,
    m: &TestMerchant,
    external_id: &str,
    n: usize,
) -> Vec<String> {
    let cat = catalog(app, m, json!({})).await;
    let customer = fixtures::customer(app, m, external_id).await;
    let mut subs = Vec::new();
    for _ in 0..n {
        let sub = fixtures::subscribe_id(app, m, &customer, &cat.base).await;
        fixtures::cancel(app, m, &sub, json!({"timing": "period_end"})).await;
        subs.push(sub);
    }
    subs
}

#[actix_web::test]
async fn concurrent_workers_apply_each_due_change_exactly_once() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let subs = cancelling_at_period_end(&app, &m, "many", 12).await;
    app.clock.advance(Duration::days(32));
    let now = app.clock.now();
    let rounds = join_all((0..4).map(|_| run_due_changes(&app.state.app, now, 100))).await;
    let applied: usize = rounds.into_iter().map(|r| r.expect("worker round")).sum();
    assert_eq!(
        applied, 12,
        "every subscription once, whichever worker got it"
    );
    assert_eq!(worker(&app).await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM events WHERE event_type = 'subscription.canceled'")
            .await,
        12
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scheduled_changes")
            .await,
        0
    );
    for sub in &subs {
        assert_eq!(
            assert_invariants(&app, sub).await.status.as_str(),
            "canceled"
        );
    }
}

#[actix_web::test]
async fn the_server_worker_loop_applies_due_changes_in_the_background() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let sub = cancelling_at_period_end(&app, &m, "looped", 1)
        .await
        .remove(0);
    let task = actix_web::rt::spawn(tenure_engine::loops::lifecycle_loop(
        app.state.app.clone(),
        std::time::Duration::from_millis(20),
    ));
    app.clock.advance(Duration::days(32));
    let mut status = Value::Null;
    for _ in 0..250 {
        status = app
            .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
            .await["status"]
            .clone();
        if status == "canceled" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(status, "canceled");
}

#[actix_web::test]
async fn immediate_mode_needs_confirmation_and_notice_only_ignores_the_period() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let immediate = catalog(&app, &m, json!({"cancellation_mode": "immediate"})).await;
    let notice_only = catalog(
        &app,
        &m,
        json!({"notice_rule": "notice_only", "notice_period_days": 3}),
    )
    .await;
    let customer = fixtures::customer(&app, &m, "quick").await;
    let token = fixtures::session(&app, &m, &customer).await;

    let sub = fixtures::subscribe_id(&app, &m, &customer, &immediate.base).await;
    let view = app
        .get_ok(&format!("/v1/portal/subscriptions/{sub}"), &token)
        .await;
    assert_eq!(view["available_actions"]["cancel"]["mode"], "immediate");
    assert_eq!(
        view["available_actions"]["cancel"]["requires_confirmation"],
        true
    );
    let refused = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/cancel"),
            &json!({}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "confirm");
    // The same request replays under its Idempotency-Key, with the same ETag.
    let send = || {
        app.post(&format!("/v1/portal/subscriptions/{sub}/cancel"))
            .bearer(&token)
            .header("idempotency-key", "cancel-once")
            .json(&json!({"confirm": true, "reason": "switched_service"}))
            .send()
    };
    let done = send().await.expect(200);
    assert_eq!(done.body["subscription"]["status"], "canceled");
    assert!(done.body["cancellation_request"].is_null());
    assert!(time(&done.body["subscription"]["access_until"]) > app.clock.now());
    let again = send().await.expect(200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("etag"), done.header("etag"));
    assert!(done.body["subscription"]["available_actions"]["cancel"].is_null());

    let sub = fixtures::subscribe_id(&app, &m, &customer, &notice_only.base).await;
    let asked = app.clock.now();
    let res = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/cancel"),
            &json!({"reason": "other"}),
        )
        .await
        .expect(200);
    let effective_at = time(&res.body["cancellation_request"]["effective_at"]);
    assert!(effective_at >= asked + Duration::days(3));
    assert!(
        effective_at < asked + Duration::days(4),
        "notice only, mid-period"
    );
    // Access still runs to the end of the paid period.
    assert!(time(&res.body["subscription"]["access_until"]) > effective_at);
    assert_eq!(
        time(&res.body["subscription"]["billing_ends_at"]),
        effective_at
    );
}

#[actix_web::test]
async fn workers_and_requests_racing_on_due_subscriptions_cancel_each_once() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let subs = cancelling_at_period_end(&app, &m, "racer", 10).await;
    app.clock.advance(Duration::days(32));
    let now = app.clock.now();
    let requests = join_all(subs.iter().map(|sub| {
        app.post(&format!("/v1/subscriptions/{sub}/cancel"))
            .bearer(&m.key)
            .json(&json!({}))
            .send()
    }));
    let workers = join_all((0..2).map(|_| run_due_changes(&app.state.app, now, 100)));
    let (responses, rounds) = futures_util::future::join(requests, workers).await;
    for r in &responses {
        assert!(
            r.status == 200 || (r.status == 409 && r.body["code"] == "already_canceled"),
            "{}: {}",
            r.status,
            r.body
        );
    }
    for round in rounds {
        round.expect("worker round");
    }
    for sub in &subs {
        assert_eq!(
            assert_invariants(&app, sub).await.status.as_str(),
            "canceled"
        );
        assert_eq!(
            count_events(&app, sub, "subscription.canceled").await,
            1,
            "{sub} ended once"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM scheduled_changes")
            .await,
        0
    );
}

#[actix_web::test]
async fn a_merchant_removing_a_requested_cancellation_declines_the_request() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber { token, sub, .. } =
        subscriber(&app, &m, json!({"notice_period_days": 10}), "kept").await;
    let res = fixtures::portal_cancel(&app, &token, &sub, json!({"reason": "low_quality"})).await;
    let request = fixtures::id(&res["cancellation_request"]);
    let change = fixtures::id(&res["subscription"]["scheduled_changes"][0]);
    let merchant_view = app
        .get_ok(&format!("/v1/subscriptions/{sub}"), &m.key)
        .await;
    assert_eq!(merchant_view["scheduled_changes"][0]["removable"], true);
    let after = app
        .by(&m.key)
        .delete(&format!(
            "/v1/subscriptions/{sub}/scheduled_changes/{change}"
        ))
        .await
        .expect(200)
        .body;
    assert!(after["cancel_at"].is_null());
    assert!(after["scheduled_changes"].as_array().unwrap().is_empty());
    // The change is gone: its id in the path names nothing, like any unknown id.
    for (path, key) in [
        (
            format!("/v1/subscriptions/{sub}/scheduled_changes/{change}"),
            &m.key,
        ),
        (
            format!("/v1/portal/subscriptions/{sub}/scheduled_changes/{change}"),
            &token,
        ),
    ] {
        let gone = app
            .by(key)
            .delete(&path)
            .await
            .expect_problem(404, "resource_missing");
        assert_eq!(gone.body["detail"], "no such scheduled_change", "{path}");
        assert!(gone.body["errors"].as_array().is_none_or(Vec::is_empty));
    }
    let request = app
        .get_ok(&format!("/v1/cancellation_requests/{request}"), &m.key)
        .await;
    assert_eq!(request["status"], "declined");
    assert_eq!(
        count_events(&app, &sub, "subscription.cancellation_withdrawn").await,
        1
    );
    // The portal filters by status.
    let active = app
        .get_ok("/v1/portal/subscriptions?status=active", &token)
        .await;
    assert_eq!(active["data"][0]["id"], sub.as_str());
    let none = app
        .get_ok("/v1/portal/subscriptions?status=canceled", &token)
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());
}

/// The reason and message given with a cancellation stay on the subscription (its
/// `cancellation_details`) and go out with its events: a customer's in immediate mode, a
/// customer's request kept while it is pending, and a merchant's cancellation, which
/// replaces the words of the one it replaces.
#[actix_web::test]
async fn a_cancellation_keeps_who_cancelled_and_why() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let details = |sub: &str| {
        let path = format!("/v1/subscriptions/{sub}");
        let app = &app;
        let key = m.key.clone();
        async move { app.get_ok(&path, &key).await["cancellation_details"].clone() }
    };

    let Subscriber {
        token,
        sub: at_once,
        ..
    } = subscriber(
        &app,
        &m,
        json!({"cancellation_mode": "immediate"}),
        "leaver",
    )
    .await;
    assert_eq!(details(&at_once).await, Value::Null);
    let said = json!({"confirm": true, "reason": "switched_service",
        "message": "  Found a cheaper roaster.\n "});
    app.by(&token)
        .post(&format!("/v1/portal/subscriptions/{at_once}/cancel"), &said)
        .await
        .expect(200);
    let customer_said = json!({"reason": "switched_service",
        "message": "Found a cheaper roaster.", "requested_by": "customer"});
    assert_eq!(details(&at_once).await, customer_said);
    let portal = portal_read(&app, &token, &at_once).await;
    assert_eq!(
        portal["cancellation_details"], customer_said,
        "their own words"
    );
    let canceled = app
        .get_ok("/v1/events?type=subscription.canceled", &m.key)
        .await;
    assert_eq!(canceled["data"][0]["resource_id"], at_once.as_str());
    assert_eq!(
        canceled["data"][0]["data"]["object"]["cancellation_details"],
        customer_said
    );

    // A request with notice: kept while pending, then replaced by the merchant's.
    let Subscriber {
        token,
        sub: requested,
        ..
    } = subscriber(&app, &m, json!({"notice_period_days": 30}), "asker").await;
    app.by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{requested}/cancel"),
            &json!({"reason": "too_expensive", "message": "Too dear"}),
        )
        .await
        .expect(200);
    assert_eq!(
        details(&requested).await,
        json!({"reason": "too_expensive", "message": "Too dear", "requested_by": "customer"})
    );
    fixtures::cancel(
        &app,
        &m,
        &requested,
        json!({"timing": "now", "reason": "other", "message": "Chargeback filed"}),
    )
    .await;
    assert_eq!(
        details(&requested).await,
        json!({"reason": "other", "message": "Chargeback filed", "requested_by": "merchant"})
    );
    let portal = portal_read(&app, &token, &requested).await;
    assert_eq!(portal["status"], "canceled");
    assert_eq!(
        portal["cancellation_details"],
        Value::Null,
        "the merchant's words are not shown to the customer"
    );

    // A request the merchant approves early ends as the customer's cancellation.
    let Subscriber {
        token,
        sub: approved,
        ..
    } = subscriber(&app, &m, json!({"notice_period_days": 30}), "approved").await;
    let asked = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{approved}/cancel"),
            &json!({"reason": "unused", "message": "Never open it"}),
        )
        .await
        .expect(200);
    let request = asked.body["cancellation_request"]["id"].as_str().unwrap();
    app.by(&m.key)
        .post_empty(&format!("/v1/cancellation_requests/{request}/approve"))
        .await
        .expect(200);
    let their_words =
        json!({"reason": "unused", "message": "Never open it", "requested_by": "customer"});
    assert_eq!(details(&approved).await, their_words);
    let portal = portal_read(&app, &token, &approved).await;
    assert_eq!(portal["status"], "canceled");
    assert_eq!(portal["cancellation_details"], their_words);
}

/// A customer reads their own cancellation request and its ticket one by one (after the
/// cancel answered them), and nobody else's.
#[actix_web::test]
async fn customers_read_their_own_request_and_ticket() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let Subscriber { token, sub, .. } =
        subscriber(&app, &m, json!({"notice_period_days": 30}), "reader").await;
    let Subscriber {
        token: other_token, ..
    } = subscriber(&app, &m, json!({}), "other").await;
    let asked = app
        .by(&token)
        .post(
            &format!("/v1/portal/subscriptions/{sub}/cancel"),
            &json!({"reason": "unused", "message": "Please confirm by mail"}),
        )
        .await
        .expect(200);
    let request = asked.body["cancellation_request"]["id"].as_str().unwrap();
    let ticket = asked.body["cancellation_request"]["ticket_id"]
        .as_str()
        .unwrap();

    let mut read = app
        .get_ok(
            &format!("/v1/portal/cancellation_requests/{request}"),
            &token,
        )
        .await;
    // Read on its own, the request says its mode; nested in the cancellation's answer,
    // the answer does.
    assert_eq!(
        read.as_object_mut().unwrap().remove("livemode"),
        Some(json!(false))
    );
    assert_eq!(read, asked.body["cancellation_request"]);
    let read = app
        .get_ok(&format!("/v1/portal/support_tickets/{ticket}"), &token)
        .await;
    assert_eq!(read["id"], ticket);
    assert_eq!(read["status"], "open");
    let bodies: Vec<&str> = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|msg| msg["body"].as_str())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("Please confirm by mail")),
        "{bodies:?}"
    );
    for path in [
        format!("/v1/portal/cancellation_requests/{request}"),
        format!("/v1/portal/support_tickets/{ticket}"),
    ] {
        app.by(&other_token)
            .get(&path)
            .await
            .expect_problem(404, "resource_missing");
    }
}

/// Cancellation requests are listed by customer and by subscription as well as by
/// status, each filter alone or together.
#[actix_web::test]
async fn cancellation_requests_filter_by_customer_and_subscription() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let catalog = catalog(&app, &m, json!({"cancellation_mode": "request"})).await;
    let mut requests = Vec::new();
    for name in ["ada", "bob"] {
        let customer = fixtures::customer(&app, &m, name).await;
        fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
        let token = fixtures::session(&app, &m, &customer).await;
        for plan in [&catalog.base, &catalog.premium] {
            let sub = fixtures::subscribe_id(&app, &m, &customer, plan).await;
            let request = fixtures::request_cancellation(&app, &token, &sub, "other").await;
            requests.push((customer.clone(), sub, fixtures::id(&request)));
        }
    }
    let list = async |query: String| {
        fixtures::ids(
            &app.get_ok(&format!("/v1/cancellation_requests?{query}"), &m.key)
                .await,
        )
    };
    let (ada, ada_base, ada_base_request) = &requests[0];
    let ada_requests: Vec<String> = requests[..2].iter().rev().map(|r| r.2.clone()).collect();
    assert_eq!(list(format!("customer_id={ada}")).await, ada_requests);
    assert_eq!(
        list(format!("subscription_id={ada_base}")).await,
        [ada_base_request.as_str()]
    );
    assert_eq!(
        list(format!(
            "customer_id={ada}&subscription_id={ada_base}&status=pending"
        ))
        .await,
        [ada_base_request.as_str()]
    );
    let (bob, ..) = &requests[2];
    assert_eq!(
        list(format!("customer_id={bob}&subscription_id={ada_base}")).await,
        Vec::<String>::new()
    );
    assert_eq!(list("status=pending".to_owned()).await.len(), 4);
    for bad in [
        "customer_id=sub_01jf9z7q6ve3a8r7m2k4t5n6bc",
        "subscription_id=nope",
    ] {
        app.by(&m.key)
            .get(&format!("/v1/cancellation_requests?{bad}"))
            .await
            .expect_problem(422, "validation_failed");
    }
}
