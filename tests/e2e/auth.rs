//! Credentials: who may call what, and every way a token can be wrong.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tenure_e2e::{Response, TestApp, TestMerchant};

use crate::fixtures;

#[actix_web::test]
async fn merchant_routes_require_a_valid_secret_key() {
    let app = TestApp::new().await;
    app.get("/v1/customers")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    app.by("sk_test_doesnotexist")
        .get("/v1/customers")
        .await
        .expect_problem(401, "unauthenticated");
    app.get("/v1/customers")
        .header("authorization", "Basic c2s6")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    let res = app.get("/v1/customers").send().await;
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
}

#[actix_web::test]
async fn credentials_of_the_wrong_kind_are_refused_clearly() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    app.by(&m.key)
        .get("/v1/portal/me")
        .await
        .expect_problem(403, "merchant_key_not_allowed");
    app.by(&token)
        .get("/v1/customers")
        .await
        .expect_problem(403, "customer_token_not_allowed");
    let me = app.get_ok("/v1/portal/me", &token).await;
    assert_eq!(me["id"], customer);
}

#[actix_web::test]
async fn bad_tokens_are_unauthenticated() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let now = app.clock_now();
    let claims = |iss: &str, aud: &str, nbf: i64, exp: i64| json!({"iss": iss, "aud": aud, "sub": customer, "mer": m.id, "iat": nbf, "nbf": nbf, "exp": exp});
    let forge = |claims: &serde_json::Value, secret: &[u8], alg: Algorithm| {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(claims("tenure", "tenure-portal", now, now + 600).to_string());
    let mut tampered = token.clone();
    let dot = tampered.rfind('.').unwrap();
    tampered.replace_range(
        dot + 1..dot + 3,
        if &token[dot + 1..dot + 3] == "AA" {
            "BB"
        } else {
            "AA"
        },
    );

    let cases = vec![
        ("garbage", "not-a-token".to_owned()),
        ("alg none", format!("{header_none}.{payload}.")),
        ("tampered signature", tampered),
        (
            "wrong key",
            forge(
                &claims("tenure", "tenure-portal", now, now + 600),
                &[9; 32],
                Algorithm::HS256,
            ),
        ),
        (
            "wrong audience",
            forge(
                &claims("tenure", "somebody-else", now, now + 600),
                &[9; 32],
                Algorithm::HS256,
            ),
        ),
        (
            "unknown issuer",
            forge(
                &claims("https://evil.example", "tenure-portal", now, now + 600),
                &[9; 32],
                Algorithm::HS256,
            ),
        ),
        ("oversized", "a".repeat(10_000)),
    ];
    for (what, bad) in cases {
        let res = app.by(&bad).get("/v1/portal/me").await;
        assert_eq!(res.status.as_u16(), 401, "{what}: {}", res.body);
        assert_eq!(res.body["code"], "unauthenticated", "{what}");
    }

    // A genuine token stops working once it expires on Tenure's clock.
    app.by(&token).get("/v1/portal/me").await.expect(200);
    app.clock.advance(Duration::hours(2));
    let res = app.by(&token).get("/v1/portal/me").await.expect(401);
    assert_eq!(res.body["detail"], "the session token has expired");
}

#[actix_web::test]
async fn tenants_cannot_see_each_other() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    let product = fixtures::product(&app, &a, json!({})).await;
    let plan = fixtures::plan(&app, &a, &product, 1000).await;
    let customer = fixtures::customer(&app, &a, "c1").await;
    let event = app.get_ok("/v1/events", &a.key).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for path in [
        format!("/v1/products/{product}"),
        format!("/v1/plans/{plan}"),
        format!("/v1/customers/{customer}"),
        format!("/v1/events/{event}"),
    ] {
        app.by(&a.key).get(&path).await.expect(200);
        app.by(&b.key)
            .get(&path)
            .await
            .expect_problem(404, "resource_missing");
    }
    app.by(&b.key)
        .patch(
            &format!("/v1/customers/{customer}"),
            &json!({"name": "hijacked"}),
        )
        .await
        .expect_problem(404, "resource_missing");
    app.by(&b.key)
        .post_empty(&format!("/v1/products/{product}/archive"))
        .await
        .expect(404);
    app.by(&b.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": "x",
                "price": {"amount": 1, "currency": "EUR"}, "interval": "month"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    app.by(&b.key)
        .post("/v1/customer_sessions", &json!({"customer_id": customer}))
        .await
        .expect(422);
    for list in ["/v1/products", "/v1/plans", "/v1/customers", "/v1/events"] {
        let res = app.get_ok(list, &b.key).await;
        assert_eq!(res["data"], json!([]), "{list} leaks across tenants");
    }
}

#[actix_web::test]
async fn a_customer_token_sees_only_its_customer() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let c1 = fixtures::customer(&app, &m, "c1").await;
    let c2 = fixtures::customer(&app, &m, "c2").await;
    let t1 = fixtures::session(&app, &m, &c1).await;
    let t2 = fixtures::session(&app, &m, &c2).await;
    assert_eq!(app.by(&t1).get("/v1/portal/me").await.body["id"], c1);
    assert_eq!(app.by(&t2).get("/v1/portal/me").await.body["id"], c2);
}

#[actix_web::test]
async fn identity_provider_tokens_are_accepted_for_their_merchant_only() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "user-17").await;
    let secret = "a-very-long-shared-secret-of-the-merchant-idp";
    app.by(&m.key)
        .post(
            "/v1/identity_providers",
            &json!({"issuer": "https://id.shop.example", "audience": "shop-portal",
            "algorithm": "HS256", "verification_key": secret, "customer_claim": "sub"}),
        )
        .await
        .expect(201);
    for (algorithm, key, detail) in [
        (
            "none",
            secret,
            "algorithm must be one of HS256, RS256, ES256, EdDSA",
        ),
        (
            "HS256",
            "short",
            "verification_key must be at least 32 bytes for HS256",
        ),
        (
            "RS256",
            secret,
            "verification_key is not a valid PEM public key for RS256",
        ),
    ] {
        let res = app
            .by(&m.key)
            .post(
                "/v1/identity_providers",
                &json!({"issuer": "https://x", "audience": "a", "algorithm": algorithm,
                "verification_key": key}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["detail"], detail);
    }

    let now = app.clock_now();
    let sign = |sub: &str, aud: &str, exp: i64| {
        let claims = json!({"iss": "https://id.shop.example", "aud": aud, "sub": sub, "exp": exp, "iat": now});
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let me = app
        .by(&sign("user-17", "shop-portal", now + 600))
        .merchant(&m.id)
        .get("/v1/portal/me")
        .await
        .expect(200);
    assert_eq!(me.body["id"], customer);
    for (token, merchant) in [
        (sign("user-17", "other-aud", now + 600), Some(m.id.as_str())),
        (sign("unknown-user", "shop-portal", now + 600), Some(&m.id)),
        (sign("user-17", "shop-portal", now - 600), Some(&m.id)),
        // The genuine token, but without its merchant, or with one that is not an id.
        (sign("user-17", "shop-portal", now + 600), None),
        (sign("user-17", "shop-portal", now + 600), Some("shop")),
    ] {
        let caller = app.by(&token);
        let caller = match merchant {
            Some(merchant) => caller.merchant(merchant),
            None => caller,
        };
        caller
            .get("/v1/portal/me")
            .await
            .expect_problem(401, "unauthenticated");
    }
    let missing = app
        .by(&sign("user-17", "shop-portal", now + 600))
        .get("/v1/portal/me")
        .await;
    assert_eq!(
        missing.body["detail"],
        "a token from your identity provider needs the Tenure-Merchant header naming your merchant id"
    );
    // Tenure's own session tokens name their merchant already and need no header.
    let session = fixtures::session(&app, &m, &customer).await;
    app.by(&session).get("/v1/portal/me").await.expect(200);
}

/// A shared issuer (Google's, Apple's) signs tokens for every application that uses it,
/// told apart by the audience: two merchants register it with their own audiences and
/// each token signs in to the merchant the request names, only if that merchant's key
/// verifies it; a token addressed to two of one merchant's audiences is refused.
#[actix_web::test]
async fn merchants_sharing_an_issuer_are_told_apart_by_audience() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    register_provider(&app, &a, "app-a", A_SECRET)
        .await
        .expect(201);
    register_provider(&app, &a, "app-a2", A_SECRET)
        .await
        .expect(201);
    register_provider(&app, &b, "app-b", B_SECRET)
        .await
        .expect(201);
    // Both merchants have a customer known to the issuer as "user-1".
    let a_customer = fixtures::customer(&app, &a, "user-1").await;
    let b_customer = fixtures::customer(&app, &b, "user-1").await;

    let sign = |aud: Value, secret: &str| shared_issuer_token(&app, aud, secret);
    let me = async |token: String, merchant: &TestMerchant| {
        app.by(&token)
            .merchant(&merchant.id)
            .get("/v1/portal/me")
            .await
    };
    let signed_in_a = me(sign(json!("app-a"), A_SECRET), &a).await.expect(200);
    assert_eq!(signed_in_a.body["id"], a_customer);
    let signed_in_b = me(sign(json!(["app-b"]), B_SECRET), &b).await.expect(200);
    assert_eq!(signed_in_b.body["id"], b_customer);
    // Merchant B's key cannot sign in to merchant A's audience, and a token for one
    // merchant's application does not sign in to the other merchant.
    me(sign(json!("app-a"), B_SECRET), &a).await.expect(401);
    me(sign(json!("app-a"), A_SECRET), &b).await.expect(401);
    me(sign(json!("app-b"), B_SECRET), &a).await.expect(401);
    // Addressed to two of A's applications: not the token's to choose.
    me(sign(json!(["app-a", "app-a2"]), A_SECRET), &a)
        .await
        .expect(401);
    // Nothing registered for this audience, or no audience at all.
    me(sign(json!("app-c"), A_SECRET), &a).await.expect(401);
    me(sign(Value::Null, A_SECRET), &a).await.expect(401);
}

/// A merchant that registers another's issuer and audience first, with its own key,
/// neither blocks the rightful merchant's registration, nor learns it exists, nor
/// captures its subscribers' tokens; its own registration stays its own business.
#[actix_web::test]
async fn another_merchants_issuer_and_audience_can_be_neither_squatted_nor_probed() {
    let app = TestApp::new().await;
    let rightful = app.merchant("Rightful").await;
    let squatter = app.merchant("Squatter").await;
    let customer = fixtures::customer(&app, &rightful, "user-1").await;
    let decoy = fixtures::customer(&app, &squatter, "user-1").await;

    register_provider(&app, &squatter, "app-a", B_SECRET)
        .await
        .expect(201);
    // The rightful merchant registers the same pair afterwards: accepted, and the answer
    // says nothing of the squatter (the same body as a first registration).
    let registered = register_provider(&app, &rightful, "app-a", A_SECRET)
        .await
        .expect(201);
    assert_eq!(registered.body["issuer"], SHARED_ISSUER);
    assert_eq!(registered.body["audience"], "app-a");
    // Registering it twice is refused, about the merchant's own registration only.
    let again = register_provider(&app, &rightful, "app-a", A_SECRET)
        .await
        .expect_problem(409, "identity_provider_exists");
    assert!(
        !again.body.to_string().contains(&squatter.id),
        "{}",
        again.body
    );
    let listed = app.get_ok("/v1/identity_providers", &rightful.key).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Genuine tokens sign in to the rightful merchant's customer, not the squatter's.
    let genuine = shared_issuer_token(&app, json!("app-a"), A_SECRET);
    let me = app
        .by(&genuine)
        .merchant(&rightful.id)
        .get("/v1/portal/me")
        .await
        .expect(200);
    assert_eq!(me.body["id"], customer);
    // Pointed at the squatter, a genuine token fails its key; the squatter's own tokens
    // reach only the squatter's customers, never the rightful merchant's.
    app.by(&genuine)
        .merchant(&squatter.id)
        .get("/v1/portal/me")
        .await
        .expect(401);
    let forged = shared_issuer_token(&app, json!("app-a"), B_SECRET);
    app.by(&forged)
        .merchant(&rightful.id)
        .get("/v1/portal/me")
        .await
        .expect(401);
    let own = app
        .by(&forged)
        .merchant(&squatter.id)
        .get("/v1/portal/me")
        .await
        .expect(200);
    assert_eq!(own.body["id"], decoy);
}

const SHARED_ISSUER: &str = "https://accounts.shared.example";
const A_SECRET: &str = "merchant-a-application-secret-0123456789";
const B_SECRET: &str = "merchant-b-application-secret-0123456789";

async fn register_provider(
    app: &TestApp,
    m: &TestMerchant,
    audience: &str,
    secret: &str,
) -> Response {
    app.by(&m.key)
        .post(
            "/v1/identity_providers",
            &json!({"issuer": SHARED_ISSUER, "audience": audience, "algorithm": "HS256",
            "verification_key": secret, "customer_claim": "sub"}),
        )
        .await
}

/// A token of the shared issuer for its user "user-1", valid for ten minutes.
fn shared_issuer_token(app: &TestApp, aud: Value, secret: &str) -> String {
    let now = app.clock_now();
    let claims =
        json!({"iss": SHARED_ISSUER, "aud": aud, "sub": "user-1", "exp": now + 600, "iat": now});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        use tenure_domain::clock::Clock;
        self.clock.now().timestamp()
    }
}

/// Polls `done` for up to ten seconds.
async fn eventually(mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A secret key is looked up once and then answered from the process's cache, which
/// forgets it as soon as its `api_keys` row changes (a trigger notifies the listener),
/// forgets every key on a `TRUNCATE`, and answers nothing while its listener cannot
/// prove it hears: triggers disabled, or its connection lost.
#[actix_web::test]
async fn a_cached_key_is_forgotten_when_its_row_changes_and_unused_while_unheard() {
    use diesel_async::SimpleAsyncConnection;
    use tenure_api::auth::key_cache::{self, APPLICATION_NAME};
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    let cache = app.state.api_keys.clone();
    let listener = tokio::spawn(key_cache::keep_current(cache.clone(), app.db.url.clone()));
    assert!(eventually(async || cache.is_listening()).await);
    let revoke = |key: &str| {
        format!("UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256('{key}'::bytea)")
    };
    let status = |key: String| {
        let app = &app;
        async move { app.by(&key).get("/v1/customers").await.status }
    };

    // Once accepted, the key is answered for without reading api_keys: the request
    // passes while another transaction holds the table locked.
    app.get_ok("/v1/customers", &a.key).await;
    let mut locker = app.state.app.db.conn().await.expect("conn");
    locker
        .batch_execute("BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let answered =
        tokio::time::timeout(std::time::Duration::from_secs(2), status(a.key.clone())).await;
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(answered.ok().map(|s| s.as_u16()), Some(200));
    // A revocation is heard as it commits.
    app.exec(revoke(&a.key)).await;
    assert!(eventually(async || status(a.key.clone()).await == 401).await);

    // With a trigger disabled the listener stops vouching, so a revocation it cannot
    // hear still holds at once.
    app.get_ok("/v1/customers", &b.key).await;
    app.exec("ALTER TABLE api_keys DISABLE TRIGGER api_keys_notify")
        .await;
    assert!(eventually(async || !cache.is_listening()).await);
    app.exec(revoke(&b.key)).await;
    assert_eq!(status(b.key.clone()).await, 401);
    app.exec("ALTER TABLE api_keys ENABLE ALWAYS TRIGGER api_keys_notify")
        .await;
    assert!(eventually(async || cache.is_listening()).await);

    // A lost connection: unused until the listener is back, by itself.
    app.exec(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = '{APPLICATION_NAME}' AND datname = current_database()"
    ))
    .await;
    assert!(eventually(async || !cache.is_listening()).await);
    assert!(eventually(async || cache.is_listening()).await);

    // A TRUNCATE forgets every key.
    let c = app.merchant("C").await;
    app.get_ok("/v1/customers", &c.key).await;
    app.exec("TRUNCATE api_keys").await;
    assert!(eventually(async || status(c.key.clone()).await == 401).await);
    listener.abort();
    let _ = listener.await;
    assert!(
        !cache.is_listening(),
        "a stopped listener vouches for nothing"
    );
}

/// Every operation that takes a body checks the credential first, whether rate limits
/// are on or off: an unknown key with a body that would be refused is a 401, never the
/// 422 or 400 that would confirm which fields the route takes.
#[actix_web::test]
async fn an_unknown_credential_is_refused_before_the_body_is_read_in_every_configuration() {
    use tenure_api::middleware::rate_limit::RateLimitConfig;
    let doc = serde_json::to_value(tenure_api::openapi_document()).expect("document");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            // A gateway's events carry its signature instead of a credential.
            if path.starts_with("/v1/")
                && !path.starts_with("/v1/gateway_events/")
                && op.get("requestBody").is_some()
            {
                operations.push((method.to_uppercase(), path.replace(['{', '}'], "")));
            }
        }
    }
    assert!(
        operations.len() > 25,
        "only {} operations",
        operations.len()
    );
    for app in [
        TestApp::new().await,
        TestApp::with_rate_limits(RateLimitConfig::default()).await,
    ] {
        let token = forged_provider_token();
        let merchant = app.merchant("A").await;
        for (method, path) in &operations {
            for (credential, body) in [
                ("sk_test_unknownunknownunknown", r#"{"no_such_field": ["#),
                ("sk_test_unknownunknownunknown", r#"{"no_such_field": 1}"#),
                (token.as_str(), r#"{"no_such_field": 1}"#),
            ] {
                let res = app
                    .request(method.parse().expect("method"), path)
                    .bearer(credential)
                    .header("tenure-merchant", &merchant.id)
                    .raw("application/json", body)
                    .send()
                    .await;
                assert_eq!(
                    res.status.as_u16(),
                    401,
                    "{method} {path} with {body}: {}",
                    res.body
                );
                assert_eq!(res.body["code"], "unauthenticated", "{method} {path}");
            }
        }
    }
}

/// A token of a provider nobody registered (sent naming a merchant): refused only after a
/// database lookup, the slow path a body error could once overtake.
fn forged_provider_token() -> String {
    let claims =
        json!({"iss": "https://nobody.example", "aud": "x", "sub": "u", "exp": 4_000_000_000i64});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"a-secret-that-nobody-registered-anywhere"),
    )
    .unwrap()
}
