//! CORS on the customer-facing routes (`/v1/portal/…`, `/openapi.json`, `/docs`): origins
//! allowed per merchant (`/v1/cors_settings`) and by the operator
//! (`TENURE_CORS_ALLOWED_ORIGINS`); merchant routes answer no CORS at all.

use actix_web::http::Method;
use serde_json::json;
use tenure_api::middleware::cors::OperatorOrigins;
use tenure_app::cors_settings::AllowedOriginsCache;
use tenure_domain::cors::Origin;
use tenure_e2e::{Response, TestApp, TestMerchant};
use tenure_test_support::TestDb;

use crate::fixtures::{catalog, customer, session, status, subscribe_id};

const SHOP: &str = "https://shop.example.com";
const OTHER_SHOP: &str = "https://other-shop.example.com";
const OPERATOR_PORTAL: &str = "https://portal.example.net";
const NOBODY: &str = "https://evil.example.org";

/// The application with `OPERATOR_PORTAL` in the operator's list.
async fn app_with_operator_origin() -> TestApp {
    TestApp::configured(
        TestDb::new().await,
        tenure_api::middleware::rate_limit::RateLimitConfig::disabled(),
        |state| {
            state.cors_allowed_origins =
                OperatorOrigins::new([Origin::allowed(OPERATOR_PORTAL).expect("an origin")]);
        },
    )
    .await
}

async fn allow(app: &TestApp, m: &TestMerchant, origins: &[&str]) {
    app.by(&m.key)
        .put("/v1/cors_settings", &json!({"allowed_origins": origins}))
        .await
        .expect(200);
}

/// A browser's preflight for `method` on `path` from `origin`.
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Response {
    app.request(Method::OPTIONS, path)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
}

/// A signed-in customer of a merchant with a subscription.
struct Subscriber {
    merchant: TestMerchant,
    token: String,
    subscription: String,
}

async fn subscriber(app: &TestApp, name: &str) -> Subscriber {
    let merchant = app.merchant(name).await;
    let cat = catalog(app, &merchant, json!({})).await;
    let cus = customer(app, &merchant, &format!("{name}-1")).await;
    let subscription = subscribe_id(app, &merchant, &cus, &cat.base).await;
    let token = session(app, &merchant, &cus).await;
    Subscriber {
        merchant,
        token,
        subscription,
    }
}

#[track_caller]
fn assert_preflight_answered(res: &Response, origin: &str) {
    assert_eq!(
        res.status.as_u16(),
        204,
        "{}",
        String::from_utf8_lossy(&res.raw)
    );
    assert_eq!(res.header("access-control-allow-origin"), Some(origin));
    let methods = res
        .header("access-control-allow-methods")
        .unwrap_or_default();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = res
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for header in [
        "authorization",
        "content-type",
        "idempotency-key",
        "if-match",
        "if-none-match",
        "tenure-merchant",
        "tenure-consistency-token",
    ] {
        assert!(headers.contains(header), "{headers} lacks {header}");
    }
    assert_eq!(res.header("access-control-max-age"), Some("7200"));
    assert_eq!(res.header("vary"), Some("Origin"));
}

#[track_caller]
fn assert_cors_answer(res: &Response, origin: &str) {
    assert_eq!(res.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        res.header("access-control-expose-headers"),
        Some("ETag, Retry-After, X-Request-Id, Idempotent-Replayed, Tenure-Consistency-Token")
    );
    assert_eq!(res.header("vary"), Some("Origin"));
}

#[track_caller]
fn assert_no_cors(res: &Response) {
    let cors: Vec<_> = res
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "CORS headers {cors:?} on {}", res.status);
}

#[actix_web::test]
async fn an_origin_the_merchant_allows_gets_preflights_and_answers() {
    let app = TestApp::new().await;
    let s = subscriber(&app, "shop").await;
    // Nobody allows it yet: the preflight is refused and carries no CORS header.
    let res = preflight(&app, "/v1/portal/subscriptions", SHOP, "GET").await;
    let res = res.expect_problem(403, "origin_not_allowed");
    assert_no_cors(&res);
    let detail = res.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("PUT /v1/cors_settings"), "{detail}");

    allow(&app, &s.merchant, &[SHOP]).await;
    let res = preflight(&app, "/v1/portal/subscriptions", SHOP, "GET").await;
    assert_preflight_answered(&res, SHOP);
    let res = preflight(
        &app,
        &format!("/v1/portal/subscriptions/{}/pause", s.subscription),
        SHOP,
        "POST",
    )
    .await;
    assert_preflight_answered(&res, SHOP);

    // The read itself, with the headers a page needs to see.
    let res = app
        .get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .header("origin", SHOP)
        .send()
        .await
        .expect(200);
    assert_cors_answer(&res, SHOP);
    assert_eq!(res.body["data"].as_array().map(Vec::len), Some(1));
    assert!(res.header("x-request-id").is_some());

    // A write, replayed under its idempotency key: the page can read that it was.
    let pause = |key: &'static str| {
        app.post(&format!(
            "/v1/portal/subscriptions/{}/pause",
            s.subscription
        ))
        .bearer(&s.token)
        .header("origin", SHOP)
        .header("idempotency-key", key)
        .json(&json!({"start": {"type": "now"}}))
        .send()
    };
    let res = pause("pause-1").await.expect(200);
    assert_cors_answer(&res, SHOP);
    let res = pause("pause-1").await.expect(200);
    assert_cors_answer(&res, SHOP);
    assert_eq!(res.header("idempotent-replayed"), Some("true"));
    assert_eq!(status(&app, &s.merchant, &s.subscription).await, "paused");

    // An error answer is readable too (an expired or wrong token: 401).
    let res = app
        .get("/v1/portal/subscriptions")
        .bearer("not-a-token")
        .header("origin", SHOP)
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    assert_cors_answer(&res, SHOP);
}

#[actix_web::test]
async fn an_origin_the_operator_allows_serves_every_merchant() {
    let app = app_with_operator_origin().await;
    let s = subscriber(&app, "shop").await;
    let res = preflight(&app, "/v1/portal/subscriptions", OPERATOR_PORTAL, "GET").await;
    assert_preflight_answered(&res, OPERATOR_PORTAL);
    let res = app
        .get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .header("origin", OPERATOR_PORTAL)
        .send()
        .await
        .expect(200);
    assert_cors_answer(&res, OPERATOR_PORTAL);
    // The browser's own spelling of the same origin matches.
    let res = app
        .get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .header("origin", "https://PORTAL.example.net:443")
        .send()
        .await
        .expect(200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some(OPERATOR_PORTAL)
    );
    // The public document and the API reference.
    for path in ["/openapi.json", "/docs/"] {
        let res = preflight(&app, path, OPERATOR_PORTAL, "GET").await;
        assert_preflight_answered(&res, OPERATOR_PORTAL);
    }
    let res = app
        .get("/openapi.json")
        .header("origin", OPERATOR_PORTAL)
        .send()
        .await
        .expect(200);
    assert_cors_answer(&res, OPERATOR_PORTAL);
}

#[actix_web::test]
async fn an_origin_nobody_allows_is_refused_and_gets_no_cors_headers() {
    let app = app_with_operator_origin().await;
    let s = subscriber(&app, "shop").await;
    allow(&app, &s.merchant, &[SHOP]).await;
    for origin in [NOBODY, "null", "http://shop.example.com"] {
        let res = preflight(&app, "/v1/portal/subscriptions", origin, "GET").await;
        assert_no_cors(&res.expect_problem(403, "origin_not_allowed"));
        let res = app
            .post(&format!(
                "/v1/portal/subscriptions/{}/pause",
                s.subscription
            ))
            .bearer(&s.token)
            .header("origin", origin)
            .json(&json!({"start": {"type": "now"}}))
            .send()
            .await
            .expect_problem(403, "origin_not_allowed");
        assert_no_cors(&res);
        assert_eq!(res.header("vary"), Some("Origin"));
    }
    assert_eq!(status(&app, &s.merchant, &s.subscription).await, "active");
    // The public document is served, but without CORS headers the browser keeps it from
    // the page.
    let res = app
        .get("/openapi.json")
        .header("origin", NOBODY)
        .send()
        .await
        .expect(200);
    assert_no_cors(&res);
}

#[actix_web::test]
async fn an_origin_allowed_only_by_another_merchant_is_refused_with_this_merchant_s_token() {
    let app = TestApp::new().await;
    let mine = subscriber(&app, "mine").await;
    let theirs = subscriber(&app, "theirs").await;
    allow(&app, &mine.merchant, &[SHOP]).await;
    allow(&app, &theirs.merchant, &[OTHER_SHOP]).await;
    // A preflight names no merchant: another merchant's origin passes it…
    let res = preflight(&app, "/v1/portal/subscriptions", OTHER_SHOP, "POST").await;
    assert_preflight_answered(&res, OTHER_SHOP);
    // …but a request with this merchant's token does not, and changes nothing.
    let res = app
        .post(&format!(
            "/v1/portal/subscriptions/{}/pause",
            mine.subscription
        ))
        .bearer(&mine.token)
        .header("origin", OTHER_SHOP)
        .header("idempotency-key", "k1")
        .json(&json!({"start": {"type": "now"}}))
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
    let detail = res.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&mine.merchant.id), "{detail}");
    assert!(detail.contains("allowed_origins"), "{detail}");
    assert_eq!(
        status(&app, &mine.merchant, &mine.subscription).await,
        "active"
    );
    app.get("/v1/portal/subscriptions")
        .bearer(&mine.token)
        .header("origin", OTHER_SHOP)
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
    // The other merchant's own customers are served from there.
    app.get("/v1/portal/subscriptions")
        .bearer(&theirs.token)
        .header("origin", OTHER_SHOP)
        .send()
        .await
        .expect(200);
    // Once this merchant drops its origin, its own page is refused too.
    allow(&app, &mine.merchant, &[]).await;
    app.get("/v1/portal/subscriptions")
        .bearer(&mine.token)
        .header("origin", SHOP)
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
}

#[actix_web::test]
async fn merchant_routes_answer_no_cors_at_all() {
    let app = app_with_operator_origin().await;
    let s = subscriber(&app, "shop").await;
    allow(&app, &s.merchant, &[SHOP]).await;
    for (i, origin) in [SHOP, OPERATOR_PORTAL].into_iter().enumerate() {
        for path in [
            "/v1/subscriptions",
            "/v1/customer_sessions",
            "/v1/cors_settings",
        ] {
            let res = preflight(&app, path, origin, "POST").await;
            assert_no_cors(&res.expect_problem(405, "method_not_allowed"));
        }
        let res = app
            .get("/v1/subscriptions")
            .bearer(&s.merchant.key)
            .header("origin", origin)
            .send()
            .await
            .expect(200);
        assert_no_cors(&res);
        assert_eq!(res.header("vary"), None);
        let res = app
            .post("/v1/customers")
            .bearer(&s.merchant.key)
            .header("origin", origin)
            .json(&json!({"external_id": format!("c{i}"), "email": format!("c{i}@example.com")}))
            .send()
            .await
            .expect(201);
        assert_no_cors(&res);
    }
}

#[actix_web::test]
async fn requests_without_origin_are_unaffected() {
    let app = TestApp::new().await;
    let s = subscriber(&app, "shop").await;
    // No origin allowed anywhere, and apps and servers send none: served as before.
    let res = app
        .get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .send()
        .await
        .expect(200);
    assert_no_cors(&res);
    assert_eq!(res.header("vary"), Some("Origin"));
    let res = app
        .get("/v1/subscriptions")
        .bearer(&s.merchant.key)
        .send()
        .await
        .expect(200);
    assert_no_cors(&res);
    assert_eq!(res.header("vary"), None);
}

#[actix_web::test]
async fn cors_settings_keep_normalised_origins_and_name_each_bad_entry() {
    let app = TestApp::new().await;
    let m = app.merchant("shop").await;
    let fresh = app.get_ok("/v1/cors_settings", &m.key).await;
    assert_eq!(fresh["object"], "cors_settings");
    assert_eq!(fresh["allowed_origins"], json!([]));
    assert_eq!(fresh["updated_at"], json!(null));

    let res = app
        .by(&m.key)
        .put(
            "/v1/cors_settings",
            &json!({"allowed_origins": ["HTTPS://Shop.Example.com:443", "http://localhost:3000"]}),
        )
        .await
        .expect(200);
    let expected = json!(["https://shop.example.com", "http://localhost:3000"]);
    assert_eq!(res.body["allowed_origins"], expected);
    assert!(res.body["updated_at"].is_string());
    let read = app.get_ok("/v1/cors_settings", &m.key).await;
    assert_eq!(read["allowed_origins"], expected);

    let res = app
        .by(&m.key)
        .put(
            "/v1/cors_settings",
            &json!({"allowed_origins": [
                "https://ok.example.com",
                "http://shop.example.com",
                "https://shop.example.com/portal",
                "*",
                "https://ok.example.com"
            ]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<&str> = res.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "allowed_origins[1]",
            "allowed_origins[2]",
            "allowed_origins[3]",
            "allowed_origins[4]"
        ]
    );
    let too_many: Vec<String> = (0..21)
        .map(|i| format!("https://s{i}.example.com"))
        .collect();
    app.by(&m.key)
        .put("/v1/cors_settings", &json!({"allowed_origins": too_many}))
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .put(
            "/v1/cors_settings",
            &json!({"allowed_origins": "https://a.example"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    // Nothing of a refused list was kept.
    let read = app.get_ok("/v1/cors_settings", &m.key).await;
    assert_eq!(read["allowed_origins"], expected);
    // A customer token cannot read or change them.
    let cus = customer(&app, &m, "c1").await;
    let token = session(&app, &m, &cus).await;
    app.by(&token)
        .get("/v1/cors_settings")
        .await
        .expect_problem(403, "customer_token_not_allowed");
}

/// The application with the allowed-origins set kept for `ttl`.
async fn app_keeping_origins_for(ttl: std::time::Duration) -> TestApp {
    TestApp::configured(
        TestDb::new().await,
        tenure_api::middleware::rate_limit::RateLimitConfig::disabled(),
        |state| state.app.allowed_origins = AllowedOriginsCache::new(ttl),
    )
    .await
}

/// What another process does: change a merchant's origins behind this one's back.
async fn allow_elsewhere(app: &TestApp, m: &TestMerchant, origin: &str) {
    let merchant =
        m.id.parse::<tenure_domain::ids::MerchantId>()
            .expect("a merchant id")
            .uuid();
    app.exec(format!(
        "UPDATE cors_settings SET allowed_origins = ARRAY['{origin}'] WHERE merchant_id = '{merchant}'"
    ))
    .await;
}

#[actix_web::test]
async fn browsers_requests_are_checked_without_a_query_while_the_set_is_fresh() {
    let app = app_keeping_origins_for(std::time::Duration::from_secs(3600)).await;
    let s = subscriber(&app, "shop").await;
    // This process's own change shows at once.
    allow(&app, &s.merchant, &[SHOP]).await;
    assert_preflight_answered(
        &preflight(&app, "/v1/portal/subscriptions", SHOP, "GET").await,
        SHOP,
    );
    // Another process's change is not read again while the set is fresh: no query per
    // request.
    allow_elsewhere(&app, &s.merchant, OTHER_SHOP).await;
    preflight(&app, "/v1/portal/subscriptions", OTHER_SHOP, "GET")
        .await
        .expect_problem(403, "origin_not_allowed");
    app.get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .header("origin", SHOP)
        .send()
        .await
        .expect(200);
}

#[actix_web::test]
async fn another_process_s_change_shows_once_the_set_is_stale() {
    let app = app_keeping_origins_for(std::time::Duration::from_millis(200)).await;
    let s = subscriber(&app, "shop").await;
    allow(&app, &s.merchant, &[SHOP]).await;
    assert_preflight_answered(
        &preflight(&app, "/v1/portal/subscriptions", SHOP, "GET").await,
        SHOP,
    );
    allow_elsewhere(&app, &s.merchant, OTHER_SHOP).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = app
            .get("/v1/portal/subscriptions")
            .bearer(&s.token)
            .header("origin", OTHER_SHOP)
            .send()
            .await;
        if res.status.as_u16() == 200 {
            assert_cors_answer(&res, OTHER_SHOP);
            break;
        }
        res.expect_problem(403, "origin_not_allowed");
        assert!(
            std::time::Instant::now() < deadline,
            "the change never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // And the origin it dropped is refused now.
    app.get("/v1/portal/subscriptions")
        .bearer(&s.token)
        .header("origin", SHOP)
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
}
