//! Secret keys over the API (create, list, roll, revoke; restricted keys and their
//! scopes on every route), the operator's merchants, and the audit trail (docs/keys.md).

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::Method;
use serde_json::{Value, json};
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures::customer;

/// Creates a key with `scopes` (None: unrestricted) using `m`'s key; returns (id, secret).
async fn key(
    app: &TestApp,
    m: &TestMerchant,
    name: &str,
    scopes: Option<&[&str]>,
) -> (String, String) {
    let mut body = json!({"name": name});
    if let Some(scopes) = scopes {
        body["scopes"] = json!(scopes);
    }
    let res = app.by(&m.key).post("/v1/api_keys", &body).await.expect(201);
    (
        res.id(),
        res.body["secret"].as_str().expect("the secret").to_owned(),
    )
}

async fn listed(app: &TestApp, secret: &str) -> Vec<Value> {
    app.get_ok("/v1/api_keys?limit=100", secret).await["data"]
        .as_array()
        .expect("data")
        .clone()
}

#[actix_web::test]
async fn keys_are_created_listed_rolled_and_revoked() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;

    // Created: the secret is shown once, with what is listed.
    let res = app
        .by(&m.key)
        .post(
            "/v1/api_keys",
            &json!({"name": "support desk", "scopes": ["customers:read", "customer_sessions:write"]}),
        )
        .await
        .expect(201);
    let secret = res.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_test_"));
    assert_eq!(res.body["object"], "api_key");
    assert_eq!(res.body["name"], "support desk");
    assert_eq!(
        res.body["scopes"],
        json!(["customers:read", "customer_sessions:write"])
    );
    assert_eq!(res.body["status"], "active");
    assert_eq!(res.body["prefix"], &secret[..12]);
    let restricted = res.id();

    // Listed, never with a secret: the operator's first key and the new one.
    let keys = listed(&app, &m.key).await;
    assert_eq!(keys.len(), 2);
    for k in &keys {
        assert!(k.get("secret").is_none(), "{k}");
        assert!(
            !k.to_string().contains(&secret[12..]),
            "no part of a secret is listed"
        );
    }
    assert_eq!(keys[0]["id"], restricted.as_str());
    assert_eq!(keys[1]["id"], m.key_id.as_str());
    assert_eq!(
        keys[1]["scopes"],
        Value::Null,
        "the first key is unrestricted"
    );
    assert_eq!(keys[0]["last_used_at"], Value::Null);

    // Used: last_used_at is written (in the background, once a minute at most).
    app.get_ok("/v1/customers", &secret).await;
    let mut used = Value::Null;
    for _ in 0..50 {
        used = app
            .get_ok(&format!("/v1/api_keys/{restricted}"), &m.key)
            .await["last_used_at"]
            .clone();
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used.is_string(), "last_used_at is set after a use");
    let writes_before = app
        .count("SELECT count(*) AS n FROM api_keys WHERE last_used_at IS NOT NULL")
        .await;
    for _ in 0..20 {
        app.get_ok("/v1/customers", &secret).await;
    }
    assert_eq!(
        app.get_ok(&format!("/v1/api_keys/{restricted}"), &m.key)
            .await["last_used_at"],
        used,
        "not written again within the minute"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM api_keys WHERE last_used_at IS NOT NULL")
            .await,
        writes_before
    );

    // Rolled: a new key with the same name and scopes; the old one works for an hour.
    let res = app
        .by(&m.key)
        .post(
            &format!("/v1/api_keys/{restricted}/roll"),
            &json!({"expires_in_secs": 3600}),
        )
        .await
        .expect(201);
    let rolled_secret = res.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(res.body["name"], "support desk");
    assert_eq!(
        res.body["scopes"],
        json!(["customers:read", "customer_sessions:write"])
    );
    let old = app
        .get_ok(&format!("/v1/api_keys/{restricted}"), &m.key)
        .await;
    assert_eq!(old["status"], "expiring");
    app.get_ok("/v1/customers", &secret).await;
    app.get_ok("/v1/customers", &rolled_secret).await;
    app.clock.advance(chrono::Duration::minutes(61));
    app.by(&secret)
        .get("/v1/customers")
        .await
        .expect_problem(401, "unauthenticated");
    app.get_ok("/v1/customers", &rolled_secret).await;
    let old = app
        .get_ok(&format!("/v1/api_keys/{restricted}"), &m.key)
        .await;
    assert_eq!(old["status"], "expired");
    app.by(&m.key)
        .post_empty(&format!("/v1/api_keys/{restricted}/roll"))
        .await
        .expect_problem(409, "api_key_expired");

    // The expiry of a roll is bounded.
    for bad in [
        json!({"expires_in_secs": -1}),
        json!({"expires_in_secs": 604_801}),
    ] {
        let res = app
            .by(&m.key)
            .post(&format!("/v1/api_keys/{}/roll", res.id()), &bad)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "expires_in_secs");
    }

    // Revoked: refused at once.
    let rolled = res.id();
    let revoked = app
        .by(&m.key)
        .post_empty(&format!("/v1/api_keys/{rolled}/revoke"))
        .await
        .expect(200);
    assert_eq!(revoked.body["status"], "revoked");
    app.by(&rolled_secret)
        .get("/v1/customers")
        .await
        .expect_problem(401, "unauthenticated");
    app.by(&m.key)
        .post_empty(&format!("/v1/api_keys/{rolled}/revoke"))
        .await
        .expect_problem(409, "api_key_revoked");

    // The last unrestricted key that works for good cannot be revoked by accident…
    let res = app
        .by(&m.key)
        .post_empty(&format!("/v1/api_keys/{}/revoke", m.key_id))
        .await
        .expect_problem(409, "last_unrestricted_key");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("create or roll")
    );
    // …but once another exists, it can (even by itself).
    let (_, second) = key(&app, &m, "second", None).await;
    app.by(&m.key)
        .post_empty(&format!("/v1/api_keys/{}/revoke", m.key_id))
        .await
        .expect(200);
    app.by(&m.key)
        .get("/v1/customers")
        .await
        .expect_problem(401, "unauthenticated");
    app.get_ok("/v1/customers", &second).await;

    // Another merchant's key is nobody's here.
    let other = app.merchant("Other").await;
    app.by(&other.key)
        .post_empty(&format!("/v1/api_keys/{restricted}/revoke"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&other.key)
        .get(&format!("/v1/api_keys/{restricted}"))
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn a_restricted_key_cannot_grant_more_than_it_holds() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let (_, keys_admin) = key(
        &app,
        &m,
        "keys",
        Some(&["api_keys:write", "customers:write"]),
    )
    .await;
    // Within its own scopes: allowed (write implies read).
    let res = app
        .by(&keys_admin)
        .post("/v1/api_keys", &json!({"scopes": ["customers:read"]}))
        .await
        .expect(201);
    let narrower = res.id();
    // More than it holds, or unrestricted: refused.
    for body in [json!({"scopes": ["catalog:read"]}), json!({})] {
        app.by(&keys_admin)
            .post("/v1/api_keys", &body)
            .await
            .expect_problem(403, "scope_exceeds_key");
    }
    // It cannot roll or revoke a key that grants more than it holds either.
    app.by(&keys_admin)
        .post_empty(&format!("/v1/api_keys/{}/roll", m.key_id))
        .await
        .expect_problem(403, "scope_exceeds_key");
    app.by(&keys_admin)
        .post_empty(&format!("/v1/api_keys/{}/revoke", m.key_id))
        .await
        .expect_problem(403, "scope_exceeds_key");
    app.by(&keys_admin)
        .post_empty(&format!("/v1/api_keys/{narrower}/revoke"))
        .await
        .expect(200);
    // Unknown scopes and empty lists are refused with the field named.
    for scopes in [
        json!(["customers:delete"]),
        json!([]),
        json!(["everything:read"]),
    ] {
        let res = app
            .by(&m.key)
            .post("/v1/api_keys", &json!({"scopes": scopes}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "scopes");
    }
}

/// Every merchant operation of the document, with the scope it requires.
fn merchant_operations() -> Vec<(String, String, String)> {
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !tenure_api::openapi::is_merchant_path(path) {
            continue;
        }
        for (method, operation) in item.as_object().expect("operation") {
            let scope = operation["x-required-scope"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} names no scope"))
                .to_owned();
            assert_eq!(
                operation["security"][0]["merchant_key"],
                json!([scope]),
                "{method} {path}: the security requirement names the scope"
            );
            operations.push((method.to_uppercase(), path.clone(), scope));
        }
    }
    assert!(operations.len() > 80);
    operations
}

/// Fills a path's parameters with well-formed ids that name nothing.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{tag}" => "vip".to_owned(),
            s if s.starts_with('{') => "x".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A restricted key is refused (403 `missing_scope`, naming the scope) on every merchant
/// route outside its scopes and let through on every route inside them, for every
/// operation of the OpenAPI document.
#[actix_web::test]
async fn restricted_keys_are_refused_outside_their_scopes_on_every_route() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let operations = merchant_operations();
    let scopes: BTreeSet<&str> = operations.iter().map(|(_, _, s)| s.as_str()).collect();
    let mut keys = BTreeMap::new();
    for scope in &scopes {
        keys.insert(*scope, key(&app, &m, scope, Some(&[scope])).await.1);
    }
    // A key holding only scopes no operation of this resource needs.
    let resource = |scope: &str| scope.split(':').next().unwrap().to_owned();
    for (method, path, scope) in &operations {
        let path = concrete(path);
        let other = scopes
            .iter()
            .find(|s| resource(s) != resource(scope))
            .unwrap();
        let outsiders = [
            keys[other].clone(),
            // Read access to the same resource does not allow a change.
            if scope.ends_with(":write") {
                keys.get(format!("{}:read", resource(scope)).as_str())
                    .cloned()
                    .unwrap_or_else(|| keys[other].clone())
            } else {
                keys[other].clone()
            },
        ];
        for outsider in outsiders {
            let res = app
                .by(&outsider)
                .send(method, &path, Some(&json!({})))
                .await
                .expect_problem(403, "missing_scope");
            assert!(
                res.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains(scope.as_str()),
                "{method} {path}: {}",
                res.body
            );
        }
        // Inside: past the scope check (whatever the request itself then gets; a key
        // asking to create an unrestricted key is refused for that, not for its scope).
        let let_through = |res: &tenure_e2e::Response| {
            res.status.as_u16() != 401 && res.body["code"] != "missing_scope"
        };
        let res = app
            .by(&keys[scope.as_str()])
            .send(method, &path, Some(&json!({})))
            .await;
        assert!(
            let_through(&res),
            "{method} {path} with {scope}: {} {}",
            res.status,
            res.body
        );
        // Write implies read.
        if scope.ends_with(":read")
            && let Some(writer) = keys.get(format!("{}:write", resource(scope)).as_str())
        {
            let res = app.by(writer).send(method, &path, Some(&json!({}))).await;
            assert!(let_through(&res), "{method} {path}: {}", res.body);
        }
    }
}

async fn audit_events(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    app.get_ok(&format!("/v1/audit_events?limit=100&{query}"), key)
        .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every mutating merchant operation of the document leaves an audit entry naming its
/// key, agent, route, resource, request id, idempotency key and status.
#[actix_web::test]
async fn every_mutating_merchant_operation_is_audited() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let mutating: Vec<_> = merchant_operations()
        .into_iter()
        .filter(|(method, _, _)| method != "GET")
        .collect();
    let mut statuses = Vec::with_capacity(mutating.len());
    for (i, (method, path, _)) in mutating.iter().enumerate() {
        let res = app
            .request(method.parse().unwrap(), &concrete(path))
            .bearer(&m.key)
            .header("tenure-agent", "audit sweeper")
            .header("idempotency-key", &format!("sweep-{i}"))
            .header("x-request-id", &format!("req-sweep-{i}"))
            .json(&json!({}))
            .send()
            .await;
        assert!(res.status.as_u16() < 500, "{method} {path}: {}", res.body);
        statuses.push(res.status.as_u16());
    }
    let mut seen = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .get_ok(
                &format!(
                    "/v1/audit_events?limit=100&agent=audit%20sweeper&starting_after={cursor}"
                ),
                &m.key,
            )
            .await;
        for e in page["data"].as_array().unwrap() {
            seen.insert(
                (
                    e["method"].as_str().unwrap().to_owned(),
                    e["route"].as_str().unwrap().to_owned(),
                ),
                e.clone(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    for (i, (method, path, _)) in mutating.iter().enumerate() {
        let entry = seen
            .get(&(method.clone(), path.clone()))
            .unwrap_or_else(|| panic!("no audit entry for {method} {path}"));
        assert_eq!(entry["api_key"], m.key_id.as_str());
        assert_eq!(entry["agent"], "audit sweeper");
        assert_eq!(entry["request_id"], format!("req-sweep-{i}"));
        if method == "POST" {
            assert_eq!(
                entry["idempotency_key"],
                format!("sweep-{i}"),
                "{method} {path}"
            );
        }
        if path.contains("{id}") {
            assert_eq!(entry["resource_id"], "x", "{method} {path}");
        }
        assert_eq!(
            entry["status"].as_u64(),
            Some(u64::from(statuses[i])),
            "{method} {path}"
        );
    }
    assert_eq!(seen.len(), mutating.len());

    // A change that succeeds on an existing resource has its entry too, with its status
    // and the resource.
    let ada = customer(&app, &m, "ada").await;
    app.request(Method::PATCH, &format!("/v1/customers/{ada}"))
        .bearer(&m.key)
        .header("tenure-agent", "crm sync")
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .expect(200);
    let entries = audit_events(&app, &m.key, "agent=crm%20sync").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["method"], "PATCH");
    assert_eq!(entries[0]["route"], "/v1/customers/{id}");
    assert_eq!(entries[0]["resource_id"], ada.as_str());
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[0]["request_body"], json!({"name": "Ada"}));
}

/// What the audit trail, the events and the customer timeline say about a change: who
/// (key and agent), what (route, resource, redacted body), and they can be filtered.
#[actix_web::test]
async fn changes_name_their_key_and_agent_in_the_audit_trail_events_and_timeline() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let (bot_key_id, bot) = key(
        &app,
        &m,
        "bot",
        Some(&["customers:write", "audit_events:read"]),
    )
    .await;

    let created = app
        .request(Method::POST, "/v1/customers")
        .bearer(&bot)
        .header("tenure-agent", "retention-bot")
        .header("idempotency-key", "create-ada")
        .json(&json!({"external_id": "ada", "email": "ada@example.com",
            "metadata": {"api_token": "abc", "note": "hello"}}))
        .send()
        .await
        .expect(201);
    let ada = created.id();
    let request_id = created.header("x-request-id").unwrap().to_owned();
    // A replay is not recorded again.
    app.request(Method::POST, "/v1/customers")
        .bearer(&bot)
        .header("tenure-agent", "retention-bot")
        .header("idempotency-key", "create-ada")
        .json(&json!({"external_id": "ada", "email": "ada@example.com",
            "metadata": {"api_token": "abc", "note": "hello"}}))
        .send()
        .await
        .expect(201);
    let bob = customer(&app, &m, "bob").await;

    let entries = audit_events(&app, &bot, "").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(
        entries[2]["route"], "/v1/api_keys",
        "the bot's key was made with the first"
    );
    assert_eq!(entries[2]["resource_id"], bot_key_id.as_str());
    let entry = &entries[1];
    assert_eq!(entry["object"], "audit_event");
    assert_eq!(entry["api_key"], bot_key_id.as_str());
    assert_eq!(entry["agent"], "retention-bot");
    assert_eq!(entry["method"], "POST");
    assert_eq!(entry["route"], "/v1/customers");
    assert_eq!(entry["resource_id"], ada.as_str());
    assert_eq!(entry["request_id"], request_id.as_str());
    assert_eq!(entry["idempotency_key"], "create-ada");
    assert_eq!(entry["status"], 201);
    assert_eq!(entry["request_body"]["metadata"]["api_token"], "[redacted]");
    assert_eq!(entry["request_body"]["metadata"]["note"], "hello");
    assert_eq!(entry["request_body"]["email"], "ada@example.com");
    assert_eq!(entries[0]["resource_id"], bob.as_str());
    assert_eq!(entries[0]["agent"], Value::Null);
    assert_eq!(entries[0]["api_key"], m.key_id.as_str());

    // Filters: by key, agent, resource, time.
    assert_eq!(
        audit_events(&app, &bot, &format!("api_key={bot_key_id}"))
            .await
            .len(),
        1
    );
    assert_eq!(
        audit_events(&app, &bot, "agent=retention-bot").await.len(),
        1
    );
    assert_eq!(audit_events(&app, &bot, "agent=nobody").await.len(), 0);
    assert_eq!(
        audit_events(&app, &bot, &format!("resource_id={bob}"))
            .await
            .len(),
        1
    );
    let at = entry["created_at"].as_str().unwrap();
    let later = (chrono::DateTime::parse_from_rfc3339(at).unwrap() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        audit_events(&app, &bot, &format!("created_from={later}"))
            .await
            .len(),
        0
    );
    assert_eq!(
        audit_events(&app, &bot, &format!("created_to={later}"))
            .await
            .len(),
        3
    );
    app.by(&bot)
        .get("/v1/audit_events?api_key=cus_nope")
        .await
        .expect_problem(422, "validation_failed");
    // Pages, newest first.
    let first = app.get_ok("/v1/audit_events?limit=1", &bot).await;
    assert_eq!(first["has_more"], true);
    let next = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_ok(
            &format!("/v1/audit_events?limit=1&starting_after={next}"),
            &bot,
        )
        .await;
    assert_eq!(second["data"][0]["resource_id"], ada.as_str());
    assert_eq!(second["has_more"], true);

    // The event names the request, its key and agent; the timeline too.
    let events = app
        .get_ok(&format!("/v1/events?resource_id={ada}"), &m.key)
        .await;
    let event = &events["data"][0];
    assert_eq!(event["type"], "customer.created");
    assert_eq!(
        event["request"],
        json!({"id": request_id, "api_key": bot_key_id, "agent": "retention-bot"})
    );
    let timeline = app
        .get_ok(&format!("/v1/customers/{ada}/timeline"), &m.key)
        .await;
    assert_eq!(timeline["data"][0]["request"]["agent"], "retention-bot");
    assert_eq!(
        timeline["data"][0]["request"]["api_key"],
        bot_key_id.as_str()
    );
    let bob_events = app
        .get_ok(&format!("/v1/events?resource_id={bob}"), &m.key)
        .await;
    assert_eq!(bob_events["data"][0]["request"]["agent"], Value::Null);
    assert_eq!(
        bob_events["data"][0]["request"]["api_key"],
        m.key_id.as_str()
    );
}

/// A refused request is audited with its body as sent, whatever JSON it is: Schemathesis
/// found a number listed against a schema that allowed only objects. A number that looks
/// like a card number is still redacted.
#[actix_web::test]
async fn a_refused_body_is_audited_as_sent_whatever_json_it_is() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let ada = customer(&app, &m, "ada").await;
    for body in [json!(-4039232606604170752i64), json!(4242424242424242u64)] {
        let res = app
            .request(Method::POST, &format!("/v1/customers/{ada}/tags"))
            .bearer(&m.key)
            .json(&body)
            .send()
            .await;
        assert_eq!(res.status, 422, "{:?}", res.body);
    }
    let entries = audit_events(&app, &m.key, "").await;
    let bodies: Vec<&Value> = entries
        .iter()
        .filter(|e| e["route"] == "/v1/customers/{id}/tags")
        .map(|e| &e["request_body"])
        .collect();
    assert_eq!(
        bodies,
        [&json!("[redacted]"), &json!(-4039232606604170752i64)],
        "{entries:?}"
    );
}

#[actix_web::test]
async fn a_bad_agent_name_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    for bad in [" lead", "trail ", &"a".repeat(65), "tab\there"] {
        let res = app
            .request(Method::POST, "/v1/customers")
            .bearer(&m.key)
            .header("tenure-agent", bad)
            .json(&json!({"external_id": "ada"}))
            .send()
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], "Tenure-Agent");
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 0);
    assert_eq!(app.count("SELECT count(*) AS n FROM audit_events").await, 0);
    // An unknown key with a bad agent is a 401: the credential is judged first.
    app.request(Method::GET, "/v1/customers")
        .bearer("sk_test_nope")
        .header("tenure-agent", " bad")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
}

const OPERATOR: &str = "op_test_0123456789abcdef0123456789abcdef";

async fn app_with_operator() -> TestApp {
    TestApp::configured(
        tenure_test_support::TestDb::new().await,
        tenure_api::middleware::rate_limit::RateLimitConfig::disabled(),
        |state| {
            state.operator_token =
                tenure_api::auth::operator::OperatorToken::new(OPERATOR).unwrap();
        },
    )
    .await
}

#[actix_web::test]
async fn the_operator_creates_and_lists_merchants_over_the_api() {
    let app = app_with_operator().await;
    let res = app
        .by(OPERATOR)
        .post("/v1/operator/merchants", &json!({"name": "Acme"}))
        .await
        .expect(201);
    assert_eq!(res.body["object"], "merchant");
    assert_eq!(res.body["name"], "Acme");
    let secret = res.body["secret_key"].as_str().unwrap().to_owned();
    let acme = res.id();
    // The new merchant's key works and is unrestricted.
    app.get_ok("/v1/customers", &secret).await;
    let keys = listed(&app, &secret).await;
    assert_eq!(keys[0]["id"], res.body["api_key"]);
    assert_eq!(keys[0]["scopes"], Value::Null);

    app.by(OPERATOR)
        .post("/v1/operator/merchants", &json!({"name": "Bolt"}))
        .await
        .expect(201);
    // Each account is two tenants, its live one made after its test one.
    let page = app.get_ok("/v1/operator/merchants?limit=1", OPERATOR).await;
    assert_eq!(page["data"][0]["name"], "Bolt");
    assert_eq!(page["data"][0]["livemode"], true);
    assert_eq!(page["has_more"], true);
    let next = page["next_cursor"].as_str().unwrap();
    let page = app
        .get_ok(
            &format!("/v1/operator/merchants?starting_after={next}"),
            OPERATOR,
        )
        .await;
    let names: Vec<(&str, bool)> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["livemode"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("Bolt", false), ("Acme", true), ("Acme", false)],
        "{page}"
    );
    assert_eq!(page["data"][2]["id"], acme.as_str());
    assert_eq!(page["data"][1]["account_id"], page["data"][2]["account_id"]);
    assert!(page["data"][2].get("secret_key").is_none());
    app.by(OPERATOR)
        .post("/v1/operator/merchants", &json!({"name": "  "}))
        .await
        .expect_problem(422, "validation_failed");

    // Refused without the token, with a merchant's key, or a wrong token; and the
    // operator token is no merchant key.
    app.get("/v1/operator/merchants")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    app.by(&secret)
        .get("/v1/operator/merchants")
        .await
        .expect_problem(403, "operator_token_required");
    app.by("op_test_0123456789abcdef0123456789abcdeX")
        .get("/v1/operator/merchants")
        .await
        .expect(401);
    app.by(OPERATOR)
        .get("/v1/customers")
        .await
        .expect_problem(403, "operator_token_not_allowed");
    // No CORS: a preflight is a plain 405, without Access-Control headers.
    let res = app
        .request(Method::OPTIONS, "/v1/operator/merchants")
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert_eq!(res.status.as_u16(), 405);
    assert!(
        res.headers
            .keys()
            .all(|h| !h.as_str().starts_with("access-control-")),
        "{:?}",
        res.headers
    );
}

#[actix_web::test]
async fn without_an_operator_token_the_operator_routes_refuse_everyone() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    app.by(OPERATOR)
        .get("/v1/operator/merchants")
        .await
        .expect_problem(401, "unauthenticated");
    app.by(&m.key)
        .post("/v1/operator/merchants", &json!({"name": "x"}))
        .await
        .expect_problem(403, "operator_token_required");
}

/// The other process holds the key in its cache; a revocation made through this one is
/// refused there within a second (its listener hears the trigger's NOTIFY).
#[actix_web::test]
async fn a_revoked_key_is_refused_within_a_second_on_a_second_server_process() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let (id, secret) = key(&app, &m, "deploy", Some(&["customers:read"])).await;
    let (server, addr) = crate::platform::serve(&app.db.url, &[], 4).await;
    let status = |addr: &str, secret: &str| {
        let (addr, secret) = (addr.to_owned(), secret.to_owned());
        async move {
            crate::platform::status_of(&addr, "/v1/customers", Some(&secret))
                .await
                .expect("an answer")
        }
    };
    // Accepted there, and kept in its cache (its listener vouches for it).
    for _ in 0..3 {
        assert_eq!(status(&addr, &secret).await, 200);
    }
    // It answers from its cache: revoked in the database behind the triggers' back (in
    // one statement, so the listener's probe never sees them disabled), the key is
    // still accepted there; the database alone would refuse it. Then put back, silently.
    let silently = |change: &str| {
        format!(
            "DO $$ BEGIN \
               ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify; \
               UPDATE api_keys SET revoked_at = {change} WHERE id = '{}'; \
               ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify; \
             END $$",
            id.parse::<tenure_domain::ids::ApiKeyId>().unwrap().uuid()
        )
    };
    app.exec(silently("now()")).await;
    for _ in 0..3 {
        assert_eq!(
            status(&addr, &secret).await,
            200,
            "the second process did not answer from its cache"
        );
    }
    app.exec(silently("NULL")).await;
    assert_eq!(status(&addr, &secret).await, 200);
    let revoked_at = std::time::Instant::now();
    app.by(&m.key)
        .post_empty(&format!("/v1/api_keys/{id}/revoke"))
        .await
        .expect(200);
    loop {
        let answer = status(&addr, &secret).await;
        if answer == 401 {
            break;
        }
        assert_eq!(answer, 200);
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(1),
            "the other process still accepts the revoked key after a second"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1));
    drop(server);
}

/// Idempotency keys are kept per secret key: another key of the merchant that learnt
/// the Idempotency-Key (the audit trail shows it) and sends the same body gets no
/// stored response. Its request runs as its own, and is refused for its scope.
#[actix_web::test]
async fn an_idempotent_response_is_replayed_only_to_the_key_that_made_the_request() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let (_, auditor) = key(&app, &m, "auditor", Some(&["audit_events:read"])).await;
    let body = json!({"name": "ci"});
    let first = app
        .by(&m.key)
        .idempotency_key("create-ci")
        .post("/v1/api_keys", &body)
        .await
        .expect(201);
    let secret = first.body["secret"].as_str().unwrap().to_owned();
    let trail = audit_events(&app, &auditor, "").await;
    let entry = trail
        .iter()
        .find(|e| e["route"] == "/v1/api_keys" && e["idempotency_key"] == "create-ci")
        .expect("the owner's create in the audit trail");
    let stolen = entry["idempotency_key"].as_str().unwrap();
    let res = app
        .by(&auditor)
        .idempotency_key(stolen)
        .post("/v1/api_keys", &body)
        .await
        .expect_problem(403, "missing_scope");
    assert_eq!(res.header("idempotent-replayed"), None);
    assert!(!String::from_utf8_lossy(&res.raw).contains(&secret));
    // Another unrestricted key with the same Idempotency-Key makes a key of its own.
    let (_, other) = key(&app, &m, "other", None).await;
    let second = app
        .by(&other)
        .idempotency_key(stolen)
        .post("/v1/api_keys", &body)
        .await
        .expect(201);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(second.id(), first.id());
    assert_ne!(second.body["secret"], first.body["secret"]);
}

/// A refusal for the credential (403 `missing_scope`) or a header (422 on
/// `Tenure-Agent`) changed nothing: it is not kept as the key's answer, and a retry
/// with the same Idempotency-Key runs.
#[actix_web::test]
async fn refusals_of_the_credential_or_a_header_are_not_kept_for_the_idempotency_key() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let (_, reader) = key(&app, &m, "reader", Some(&["customers:read"])).await;
    let body = json!({"external_id": "ada"});
    for _ in 0..2 {
        let res = app
            .by(&reader)
            .idempotency_key("refused")
            .post("/v1/customers", &body)
            .await
            .expect_problem(403, "missing_scope");
        assert_eq!(res.header("idempotent-replayed"), None);
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM idempotency_keys WHERE idempotency_key = 'refused'")
            .await,
        0
    );
    app.request(Method::POST, "/v1/customers")
        .bearer(&m.key)
        .header("idempotency-key", "agent")
        .header("tenure-agent", " bad")
        .json(&body)
        .send()
        .await
        .expect_problem(422, "validation_failed");
    let res = app
        .request(Method::POST, "/v1/customers")
        .bearer(&m.key)
        .header("idempotency-key", "agent")
        .header("tenure-agent", "crm sync")
        .json(&body)
        .send()
        .await
        .expect(201);
    assert_eq!(res.header("idempotent-replayed"), None);
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
    // That success is final: its retry is a replay.
    app.request(Method::POST, "/v1/customers")
        .bearer(&m.key)
        .header("idempotency-key", "agent")
        .header("tenure-agent", "crm sync")
        .json(&body)
        .send()
        .await
        .expect(201);
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

/// Rows of `idempotency_keys` whose stored body holds `text`.
async fn stored_bodies_holding(app: &TestApp, text: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM idempotency_keys \
          WHERE position(convert_to('{text}', 'UTF8') IN response_body) > 0"
    ))
    .await
}

/// A response holding a secret shown once (a new key, a roll, a webhook endpoint and
/// its rotated signing secret) says `Cache-Control: no-store`; its body is not kept for
/// the idempotency key, and a retry gets 409 `idempotent_replay_withheld` and creates
/// nothing.
#[actix_web::test]
async fn secrets_are_not_kept_for_idempotent_replays() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let withheld = |res: tenure_e2e::Response| {
        let res = res.expect_problem(409, "idempotent_replay_withheld");
        assert_eq!(res.header("idempotent-replayed"), Some("true"));
        assert!(
            res.body["detail"]
                .as_str()
                .unwrap()
                .contains("does not keep"),
            "{}",
            res.body
        );
    };

    let body = json!({"name": "deploy", "scopes": ["customers:read"]});
    let created = app
        .by(&m.key)
        .idempotency_key("new-key")
        .post("/v1/api_keys", &body)
        .await
        .expect(201);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let keys = listed(&app, &m.key).await.len();
    withheld(
        app.by(&m.key)
            .idempotency_key("new-key")
            .post("/v1/api_keys", &body)
            .await,
    );
    assert_eq!(listed(&app, &m.key).await.len(), keys);

    let roll = json!({"expires_in_secs": 60});
    let rolled = app
        .by(&m.key)
        .idempotency_key("roll")
        .post(&format!("/v1/api_keys/{}/roll", created.id()), &roll)
        .await
        .expect(201);
    assert_eq!(rolled.header("cache-control"), Some("no-store"));
    let rolled_secret = rolled.body["secret"].as_str().unwrap().to_owned();
    withheld(
        app.by(&m.key)
            .idempotency_key("roll")
            .post(&format!("/v1/api_keys/{}/roll", created.id()), &roll)
            .await,
    );
    assert_eq!(listed(&app, &m.key).await.len(), keys + 1);

    let endpoint = json!({"url": "https://example.com/hooks", "enabled_events": ["*"]});
    let made = app
        .by(&m.key)
        .idempotency_key("endpoint")
        .post("/v1/webhook_endpoints", &endpoint)
        .await
        .expect(201);
    assert_eq!(made.header("cache-control"), Some("no-store"));
    let signing = made.body["secret"].as_str().unwrap().to_owned();
    withheld(
        app.by(&m.key)
            .idempotency_key("endpoint")
            .post("/v1/webhook_endpoints", &endpoint)
            .await,
    );
    let rotated = app
        .by(&m.key)
        .idempotency_key("rotate")
        .post_empty(&format!(
            "/v1/webhook_endpoints/{}/rotate_secret",
            made.id()
        ))
        .await
        .expect(200);
    assert_eq!(rotated.header("cache-control"), Some("no-store"));
    let rotated_signing = rotated.body["secret"].as_str().unwrap().to_owned();
    withheld(
        app.by(&m.key)
            .idempotency_key("rotate")
            .post_empty(&format!(
                "/v1/webhook_endpoints/{}/rotate_secret",
                made.id()
            ))
            .await,
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_endpoints")
            .await,
        1
    );
    let listed_endpoint = app
        .get_ok(&format!("/v1/webhook_endpoints/{}", made.id()), &m.key)
        .await;
    assert_eq!(listed_endpoint["id"], made.id().as_str());

    for secret in [&secret, &rolled_secret, &signing, &rotated_signing] {
        assert_eq!(stored_bodies_holding(&app, secret).await, 0, "{secret}");
    }
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM idempotency_keys \
              WHERE idempotency_key IN ('new-key', 'roll', 'endpoint', 'rotate') \
                AND response_status = 409"
        )
        .await,
        4
    );
}

/// A customer's export reaches beyond `customers`, and the portal's identity providers
/// and CORS origins beyond minting sessions: each needs a scope of its own.
#[actix_web::test]
async fn exports_and_portal_settings_need_scopes_of_their_own() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    let ada = customer(&app, &m, "ada").await;
    let (_, reader) = key(&app, &m, "reader", Some(&["customers:write"])).await;
    let res = app
        .by(&reader)
        .get(&format!("/v1/customers/{ada}/export"))
        .await
        .expect_problem(403, "missing_scope");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("customer_exports:read")
    );
    let (_, exporter) = key(&app, &m, "exporter", Some(&["customer_exports:read"])).await;
    app.by(&exporter)
        .get(&format!("/v1/customers/{ada}/export"))
        .await
        .expect(200);

    let (_, minter) = key(&app, &m, "minter", Some(&["customer_sessions:write"])).await;
    let provider = json!({
        "issuer": "https://id.example.com", "audience": "portal",
        "algorithm": "HS256", "verification_key": "k".repeat(40),
    });
    app.by(&minter)
        .post("/v1/identity_providers", &provider)
        .await
        .expect_problem(403, "missing_scope");
    app.by(&minter)
        .put(
            "/v1/cors_settings",
            &json!({"allowed_origins": ["https://shop.example.com"]}),
        )
        .await
        .expect_problem(403, "missing_scope");
    let (_, settings) = key(&app, &m, "settings", Some(&["portal_settings:write"])).await;
    app.by(&settings)
        .put(
            "/v1/cors_settings",
            &json!({"allowed_origins": ["https://shop.example.com"]}),
        )
        .await
        .expect(200);
    app.by(&settings)
        .get("/v1/identity_providers")
        .await
        .expect(200);
}

#[actix_web::test]
async fn a_body_with_nul_is_audited_with_it_replaced_beside_concurrent_requests() {
    let app = TestApp::new().await;
    let m = app.merchant("Acme").await;
    // PostgreSQL's jsonb refuses "\u0000": the entry of a request carrying it must neither
    // be lost nor take the entries written in the same batch with it.
    let send = |n: usize| {
        let body = if n == 7 {
            json!({"external_id": 7, "na\u{0}me": "A\u{0}da"})
        } else {
            json!({"external_id": format!("c{n}"), "email": format!("c{n}@example.com")})
        };
        let app = &app;
        let key = m.key.clone();
        async move {
            app.request(Method::POST, "/v1/customers")
                .bearer(&key)
                .json(&body)
                .send()
                .await
        }
    };
    let answers = futures_util::future::join_all((0..24).map(send)).await;
    for (n, res) in answers.into_iter().enumerate() {
        res.expect(if n == 7 { 422 } else { 201 });
    }
    let entries = audit_events(&app, &m.key, "").await;
    let ours: Vec<&Value> = entries
        .iter()
        .filter(|e| e["route"] == "/v1/customers")
        .collect();
    assert_eq!(ours.len(), 24, "every request's entry landed: {entries:?}");
    let nul = ours
        .iter()
        .find(|e| e["status"] == 422)
        .expect("the refused request's entry");
    assert_eq!(
        nul["request_body"],
        json!({"external_id": 7, "na\u{FFFD}me": "A\u{FFFD}da"})
    );
}
