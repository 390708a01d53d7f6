//! Hostile input: forged and confused tokens, SQL-looking, huge and odd-unicode strings in
//! every text field, oversized bodies, and floods that must meet the rate limits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel_async::RunQueryDsl;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tenure_api::extract::MAX_BODY_BYTES;
use tenure_api::middleware::rate_limit::{Limit, RateLimitConfig};
use tenure_e2e::{Response, TestApp, TestMerchant};

use crate::fixtures;

const RSA_PRIVATE: &str = include_str!("../fixtures/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../fixtures/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("../fixtures/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../fixtures/ec_public.pem");

fn now(app: &TestApp) -> i64 {
    use tenure_domain::clock::Clock;
    app.clock.now().timestamp()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
}

/// A token with any header, any payload and any signature bytes.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[track_caller]
fn assert_refused(what: &str, res: &Response) {
    assert_eq!(res.status.as_u16(), 401, "{what}: {}", res.body);
    assert_eq!(res.body["code"], "unauthenticated", "{what}");
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
}

async fn register_provider(app: &TestApp, m: &TestMerchant, issuer: &str, alg: &str, key: &str) {
    app.post("/v1/identity_providers")
        .bearer(&m.key)
        .json(
            &json!({"issuer": issuer, "audience": "shop-portal", "algorithm": alg,
            "verification_key": key, "customer_claim": "sub"}),
        )
        .send()
        .await
        .expect(201);
}

#[actix_web::test]
async fn algorithm_confusion_with_a_registered_public_key_is_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "user-1").await;
    register_provider(&app, &m, "https://rsa.example", "RS256", RSA_PUBLIC).await;
    register_provider(&app, &m, "https://ec.example", "ES256", EC_PUBLIC).await;
    let t = now(&app);
    let claims = |iss: &str| json!({"iss": iss, "aud": "shop-portal", "sub": "user-1", "iat": t, "exp": t + 600});

    // The genuine tokens work, so every refusal below is about the one thing changed.
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("ec key");
    for token in [
        sign(Algorithm::RS256, &rsa, &claims("https://rsa.example")),
        sign(Algorithm::ES256, &ec, &claims("https://ec.example")),
    ] {
        let me = app
            .get("/v1/portal/me")
            .bearer(&token)
            .send()
            .await
            .expect(200);
        assert_eq!(me.body["id"], customer);
    }

    // HS256 keyed with the public key's PEM text (the classic confusion), with and
    // without the trailing newline, and HS384/HS512 likewise.
    for (issuer, pem) in [
        ("https://rsa.example", RSA_PUBLIC),
        ("https://ec.example", EC_PUBLIC),
    ] {
        for secret in [pem, pem.trim_end()] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let token = sign(
                    alg,
                    &EncodingKey::from_secret(secret.as_bytes()),
                    &claims(issuer),
                );
                let res = app.get("/v1/portal/me").bearer(&token).send().await;
                assert_refused(&format!("{alg:?} keyed with {issuer}'s PEM"), &res);
            }
        }
    }
    // The other asymmetric algorithm, and `none`, with a registered issuer.
    let swapped = sign(Algorithm::ES256, &ec, &claims("https://rsa.example"));
    assert_refused(
        "ES256 token for an RS256 provider",
        &app.get("/v1/portal/me").bearer(&swapped).send().await,
    );
    let none = raw_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("https://rsa.example"),
        b"",
    );
    assert_refused(
        "alg none for a provider",
        &app.get("/v1/portal/me").bearer(&none).send().await,
    );
}

/// Tenure's own signing secret, read from the database, so tests can forge tokens that
/// are wrong in exactly one way.
async fn tenure_secret(app: &TestApp) -> Vec<u8> {
    #[derive(diesel::QueryableByName)]
    struct Secret {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        value: Vec<u8>,
    }
    let mut conn = app.sql().await;
    let row: Secret =
        diesel::sql_query("SELECT value FROM server_secrets WHERE name = 'customer_session_hs256'")
            .get_result(&mut conn)
            .await
            .expect("the session secret is kept in the database");
    row.value
}

#[actix_web::test]
async fn session_tokens_wrong_in_one_claim_are_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let other = app.merchant("B").await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let genuine = fixtures::session(&app, &m, &customer).await;
    let secret = tenure_secret(&app).await;
    let key = EncodingKey::from_secret(&secret);
    let t = now(&app);
    let good = json!({"iss": "tenure", "aud": "tenure-portal", "sub": customer, "mer": m.id,
        "iat": t, "nbf": t, "exp": t + 600});
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };

    // Positive control: a token forged with the real secret and good claims is accepted.
    app.get("/v1/portal/me")
        .bearer(&sign(Algorithm::HS256, &key, &good))
        .send()
        .await
        .expect(200);

    // A genuine token whose `mer` is rewritten to another merchant: the signature breaks.
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["mer"] = json!(other.id);
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged_merchant = parts.join(".");

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                Algorithm::HS256,
                &key,
                &with("exp", json!(t - 3600)).clone(),
            ),
        ),
        (
            "not yet valid",
            sign(Algorithm::HS256, &key, &with("nbf", json!(t + 3600))),
        ),
        (
            "wrong issuer",
            sign(Algorithm::HS256, &key, &with("iss", json!("tenure-evil"))),
        ),
        (
            "wrong audience",
            sign(Algorithm::HS256, &key, &with("aud", json!("somebody-else"))),
        ),
        (
            "no audience",
            sign(Algorithm::HS256, &key, &{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("aud");
                c
            }),
        ),
        (
            "HS512 with the right secret",
            sign(Algorithm::HS512, &key, &good),
        ),
        (
            "HS384 with the right secret",
            sign(Algorithm::HS384, &key, &good),
        ),
        (
            "alg none",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &good, b""),
        ),
        (
            "alg NONE with a signature",
            raw_token(&json!({"alg": "NONE"}), &good, b"sig"),
        ),
        ("mer forged to another merchant", forged_merchant),
        (
            "sub is not a customer id",
            sign(Algorithm::HS256, &key, &with("sub", json!("' OR 1=1 --"))),
        ),
        (
            "oversized",
            sign(
                Algorithm::HS256,
                &key,
                &with("pad", json!("x".repeat(20_000))),
            ),
        ),
        ("oversized garbage", "e".repeat(100_000)),
        ("two parts", "eyJhbGciOiJIUzI1NiJ9.e30".to_owned()),
        ("non-ASCII in token", format!("{genuine}é")),
    ];
    for (what, token) in cases {
        let res = app
            .get("/v1/portal/me")
            .header("authorization", &format!("Bearer {token}"))
            .send()
            .await;
        assert_refused(what, &res);
    }

    // A token for another merchant's customer id (validly signed) finds nothing.
    let stranger = fixtures::customer(&app, &other, "c1").await;
    let res = app
        .get("/v1/portal/me")
        .bearer(&sign(
            Algorithm::HS256,
            &key,
            &with("sub", json!(stranger)).clone(),
        ))
        .send()
        .await;
    assert!(
        matches!(res.status.as_u16(), 401 | 404),
        "cross-tenant token: {}",
        res.body
    );
}

#[actix_web::test]
async fn provider_tokens_wrong_in_one_claim_are_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    fixtures::customer(&app, &m, "user-1").await;
    register_provider(&app, &m, "https://rsa.example", "RS256", RSA_PUBLIC).await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("rsa key");
    let t = now(&app);
    let good = json!({"iss": "https://rsa.example", "aud": "shop-portal", "sub": "user-1",
        "iat": t, "nbf": t, "exp": t + 600});
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    app.get("/v1/portal/me")
        .bearer(&sign(Algorithm::RS256, &rsa, &good))
        .send()
        .await
        .expect(200);
    for (what, claims) in [
        ("expired", with("exp", json!(t - 3600))),
        ("no exp", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("exp");
            c
        }),
        ("not yet valid", with("nbf", json!(t + 3600))),
        ("wrong audience", with("aud", json!("tenure-portal"))),
        ("unknown customer", with("sub", json!("user-2"))),
        ("customer claim not a string", with("sub", json!(17))),
    ] {
        let res = app
            .get("/v1/portal/me")
            .bearer(&sign(Algorithm::RS256, &rsa, &claims))
            .send()
            .await;
        assert_refused(what, &res);
    }
    // Signed by the provider's key but claiming to be Tenure itself.
    let res = app
        .get("/v1/portal/me")
        .bearer(&sign(Algorithm::RS256, &rsa, &with("iss", json!("tenure"))))
        .send()
        .await;
    assert_refused("provider key, Tenure's issuer", &res);
}

/// Strings that have broken other services.
fn hostile_strings() -> Vec<String> {
    vec![
        "' OR '1'='1".to_owned(),
        "Robert'); DROP TABLE customers;--".to_owned(),
        "1; SELECT pg_sleep(10); --".to_owned(),
        "\\'; \\x00 $$ E'\\\\' %s %n {0} ${jndi:ldap://x}".to_owned(),
        "a\u{0}b".to_owned(),
        "\u{0}".to_owned(),
        "abc\u{202E}fed.exe".to_owned(),
        "\u{FEFF}bom".to_owned(),
        "🦀 crab 🎉 café ñ 中文 עברית".to_owned(),
        "👨\u{200D}👩\u{200D}👧\u{200D}👦".to_owned(),
        "e\u{301}\u{301}\u{301}".to_owned(),
        "<script>alert(1)</script>".to_owned(),
        "{\"$ne\": null}".to_owned(),
        "\u{FFFF}\u{10FFFF}".to_owned(),
        "x".repeat(10_000),
        "🦀".repeat(10_000),
    ]
}

/// One writable route: how to build a valid body for case `n`, which JSON pointers in
/// it are text, and where the result is read back.
struct TextRoute {
    method: &'static str,
    path: String,
    body: Box<dyn Fn(usize) -> Value>,
    /// (pointer into the body, pointer into the response where it is echoed, if it is)
    fields: Vec<(&'static str, Option<&'static str>)>,
    /// Read back with GET: `Some(path)` or the created id appended to this prefix.
    read_back: ReadBack,
}

enum ReadBack {
    Path(String),
    CreatedUnder(&'static str),
    None,
}

fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut target = value;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        target = match target {
            Value::Array(items) => {
                let index: usize = part.parse().expect("array index");
                if last {
                    items[index] = new;
                    return;
                }
                &mut items[index]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                let map = other.as_object_mut().expect("object");
                if last {
                    map.insert((*part).to_owned(), new);
                    return;
                }
                map.entry(*part).or_insert(json!({}))
            }
        };
    }
}

#[actix_web::test]
async fn hostile_strings_in_every_text_field_are_refused_or_kept_verbatim() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "base").await;
    let product_for_body = product.clone();
    let plan_for_body = plan.clone();
    let customer_for_body = customer.clone();
    let routes = vec![
        TextRoute {
            method: "POST",
            path: "/v1/products".to_owned(),
            body: Box::new(move |_| {
                json!({"name": "P", "description": "D",
                    "portal_policy": {"switchable_plan_ids": [plan_for_body]}})
            }),
            fields: vec![
                ("/name", Some("/name")),
                ("/description", Some("/description")),
                ("/portal_policy/switchable_plan_ids/0", None),
                ("/portal_policy/cancellation_mode", None),
            ],
            read_back: ReadBack::CreatedUnder("/v1/products/"),
        },
        TextRoute {
            method: "PATCH",
            path: format!("/v1/products/{product}"),
            body: Box::new(|_| json!({"name": "P2", "description": "D2"})),
            fields: vec![
                ("/name", Some("/name")),
                ("/description", Some("/description")),
                ("/portal_policy/notice_rule", None),
            ],
            read_back: ReadBack::Path(format!("/v1/products/{product}")),
        },
        TextRoute {
            method: "POST",
            path: "/v1/plans".to_owned(),
            body: Box::new(move |_| {
                json!({"product_id": product_for_body, "name": "Monthly",
                    "price": {"amount": 999, "currency": "EUR"}, "interval": "month"})
            }),
            fields: vec![
                ("/name", Some("/name")),
                ("/product_id", None),
                ("/price/currency", None),
                ("/interval", None),
            ],
            read_back: ReadBack::CreatedUnder("/v1/plans/"),
        },
        TextRoute {
            method: "PATCH",
            path: format!("/v1/plans/{plan}"),
            body: Box::new(|_| json!({"name": "Renamed"})),
            fields: vec![("/name", Some("/name"))],
            read_back: ReadBack::Path(format!("/v1/plans/{plan}")),
        },
        TextRoute {
            method: "POST",
            path: "/v1/customers".to_owned(),
            body: Box::new(|n| {
                json!({"external_id": format!("ext-{n}"), "email": format!("c{n}@example.com"),
                    "name": "N", "locale": "en", "metadata": {"note": "x"}, "tags": ["vip"]})
            }),
            fields: vec![
                ("/external_id", Some("/external_id")),
                ("/email", Some("/email")),
                ("/name", Some("/name")),
                ("/locale", Some("/locale")),
                ("/metadata/note", Some("/metadata/note")),
                ("/metadata/nested/deeper", Some("/metadata/nested/deeper")),
                ("/tags/0", None),
            ],
            read_back: ReadBack::CreatedUnder("/v1/customers/"),
        },
        TextRoute {
            method: "PATCH",
            path: format!("/v1/customers/{customer}"),
            body: Box::new(|_| json!({"name": "N2"})),
            fields: vec![
                ("/email", Some("/email")),
                ("/name", Some("/name")),
                ("/locale", Some("/locale")),
                ("/metadata/note", Some("/metadata/note")),
                ("/tags/0", None),
            ],
            read_back: ReadBack::Path(format!("/v1/customers/{customer}")),
        },
        TextRoute {
            method: "POST",
            path: "/v1/customer_sessions".to_owned(),
            body: Box::new(move |_| json!({"customer_id": customer_for_body})),
            fields: vec![("/customer_id", None)],
            read_back: ReadBack::None,
        },
        TextRoute {
            method: "POST",
            path: "/v1/identity_providers".to_owned(),
            body: Box::new(|n| {
                json!({"issuer": format!("https://idp{n}.example"), "audience": "aud",
                    "algorithm": "HS256", "verification_key": "k".repeat(40), "customer_claim": "sub"})
            }),
            fields: vec![
                ("/issuer", Some("/issuer")),
                ("/audience", Some("/audience")),
                ("/algorithm", None),
                ("/verification_key", None),
                ("/customer_claim", Some("/customer_claim")),
            ],
            read_back: ReadBack::None,
        },
    ];

    let mut n = 0;
    let mut stored = 0;
    for route in &routes {
        for (field, echoed_at) in &route.fields {
            for hostile in hostile_strings() {
                n += 1;
                let mut body = (route.body)(n);
                set_pointer(&mut body, field, json!(hostile));
                let what = format!(
                    "{} {} {field} = {:?}",
                    route.method,
                    route.path,
                    hostile.chars().take(40).collect::<String>()
                );
                let res = app
                    .request(route.method.parse().unwrap(), &route.path)
                    .bearer(&m.key)
                    .json(&body)
                    .send()
                    .await;
                let status = res.status.as_u16();
                assert!(status < 500, "{what}: {status} {}", res.body);
                if status >= 400 {
                    assert_eq!(
                        res.header("content-type"),
                        Some("application/problem+json"),
                        "{what}"
                    );
                    assert!(res.body["code"].is_string(), "{what}: {}", res.body);
                    continue;
                }
                let Some(echoed_at) = echoed_at else { continue };
                stored += 1;
                assert_eq!(
                    res.body.pointer(echoed_at),
                    Some(&json!(hostile)),
                    "{what}: not echoed verbatim"
                );
                let read_path = match &route.read_back {
                    ReadBack::Path(p) => p.clone(),
                    ReadBack::CreatedUnder(prefix) => format!("{prefix}{}", res.id()),
                    ReadBack::None => continue,
                };
                let back = app.get(&read_path).bearer(&m.key).send().await.expect(200);
                assert_eq!(
                    back.body.pointer(echoed_at),
                    Some(&json!(hostile)),
                    "{what}: not read back verbatim"
                );
            }
        }
    }
    assert!(stored > 20, "only {stored} hostile values were stored");

    // An empty cursor (as a client may build from a null `next_cursor`) is the first page.
    for list in ["/v1/customers", "/v1/products", "/v1/plans", "/v1/events"] {
        app.get(&format!("{list}?starting_after="))
            .bearer(&m.key)
            .send()
            .await
            .expect(200);
    }

    // Hostile values in query strings and paths: never a server error.
    for hostile in hostile_strings() {
        let q: String = url_encode(&hostile);
        if q.len() > 30_000 {
            // Longer than a URI may be (the http crate stops at 64 KiB).
            continue;
        }
        for path in [
            format!("/v1/customers?email={q}"),
            format!("/v1/customers?external_id={q}"),
            format!("/v1/customers?tag={q}"),
            format!("/v1/customers?starting_after={q}"),
            format!("/v1/products?starting_after={q}&limit=5"),
            format!("/v1/events?type={q}"),
            format!("/v1/events?resource_id={q}"),
            format!("/v1/customers/{q}"),
            format!("/v1/plans/{q}"),
        ] {
            let res = app.get(&path).bearer(&m.key).send().await;
            assert!(
                res.status.as_u16() < 500,
                "GET {}: {} {}",
                path.chars().take(80).collect::<String>(),
                res.status,
                res.body
            );
        }
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const TEN_MB: usize = 10 * 1024 * 1024;

#[actix_web::test]
async fn ten_megabyte_bodies_are_refused_without_being_read() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    // A streamed body may be read up to the limit plus one chunk before it is refused.
    let read_at_most = MAX_BODY_BYTES + 64 * 1024;
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("POST", "/v1/customers".to_owned(), m.key.as_str(), None),
        ("POST", "/v1/customers".to_owned(), &m.key, Some("idem-1")),
        ("PATCH", format!("/v1/customers/{customer}"), &m.key, None),
        ("GET", "/v1/customers".to_owned(), &m.key, None),
        (
            "DELETE",
            "/v1/identity_providers/idp_x".to_owned(),
            &m.key,
            None,
        ),
        (
            "POST",
            format!("/v1/products/{product}/archive"),
            &m.key,
            None,
        ),
        (
            "POST",
            format!("/v1/products/{product}/archive"),
            &m.key,
            Some("idem-2"),
        ),
        ("GET", "/v1/portal/me".to_owned(), &token, None),
        ("GET", "/healthz".to_owned(), "", None),
        ("POST", "/v1/no-such-route".to_owned(), &m.key, None),
    ];
    for (method, path, credential, idempotency_key) in cases {
        for declare_length in [true, false] {
            let mut req = app.request(method.parse().unwrap(), &path);
            if !credential.is_empty() {
                req = req.bearer(credential);
            }
            if let Some(key) = idempotency_key {
                req = req.header("idempotency-key", key);
            }
            let (res, pulled) = req
                .send_streaming("application/json", TEN_MB, declare_length)
                .await;
            let what = format!(
                "{method} {path} (content-length: {declare_length}, idempotency key: {idempotency_key:?})"
            );
            if !declare_length && path.contains("no-such-route") {
                // Nothing reads the body of an unknown route; it is simply not found.
                assert_eq!(res.status.as_u16(), 404, "{what}");
                continue;
            }
            let res = res.expect_problem(413, "payload_too_large");
            assert!(res.body["detail"].is_string(), "{what}");
            if declare_length {
                assert_eq!(
                    pulled, 0,
                    "{what}: read {pulled} bytes of a declared 10 MB body"
                );
            } else {
                assert!(
                    pulled <= read_at_most,
                    "{what}: read {pulled} bytes before refusing"
                );
            }
        }
    }
    // Nothing was created or archived along the way.
    assert_eq!(
        app.count("SELECT count(*) AS n FROM products WHERE archived_at IS NOT NULL")
            .await,
        0
    );
    // Bodies just under the limit still work.
    let name = "n".repeat(150);
    let metadata = json!({"blob": "b".repeat(MAX_BODY_BYTES / 2)});
    let res = app
        .post("/v1/customers")
        .bearer(&m.key)
        .json(&json!({"external_id": "big", "name": name, "metadata": metadata}))
        .send()
        .await;
    assert!(res.status.as_u16() < 500, "{}", res.body);
}

#[actix_web::test]
async fn floods_meet_429_with_retry_after_for_both_credentials() {
    let app = TestApp::with_rate_limits(RateLimitConfig {
        merchant: Limit::new(1, 3),
        customer: Limit::new(1, 2),
        unauthenticated: Limit::new(1, 2),
        trust_forwarded_for: false,
    })
    .await;
    let setup = app.merchant("setup").await;
    let flooder = app.merchant("flooder").await;
    let bystander = app.merchant("bystander").await;
    // Setup takes two of `setup`'s three.
    let customer = fixtures::customer(&app, &setup, "c1").await;
    let token = fixtures::session(&app, &setup, &customer).await;

    async fn flood(app: &TestApp, path: &str, credential: &str, peer: &str) -> Vec<Response> {
        let mut responses = Vec::new();
        for _ in 0..10 {
            responses.push(app.get(path).bearer(credential).peer(peer).send().await);
        }
        responses
    }
    #[track_caller]
    fn assert_limited(what: &str, responses: &[Response], allowed: usize, ok: u16) {
        for res in &responses[..allowed] {
            assert_eq!(
                res.status.as_u16(),
                ok,
                "{what}: within the burst: {}",
                res.body
            );
        }
        let limited: Vec<&Response> = responses
            .iter()
            .filter(|r| r.status.as_u16() == 429)
            .collect();
        assert!(
            limited.len() >= 5,
            "{what}: only {} of 10 limited",
            limited.len()
        );
        for res in limited {
            assert_eq!(res.header("content-type"), Some("application/problem+json"));
            assert_eq!(res.body["code"], "rate_limited");
            assert_eq!(res.body["status"], 429);
            let retry: u64 = res
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .expect("Retry-After is whole seconds");
            assert!((1..=2).contains(&retry), "{what}: Retry-After {retry}");
        }
    }

    let merchant = flood(&app, "/v1/products", &flooder.key, "192.0.2.1:1000").await;
    assert_limited("merchant key", &merchant, 3, 200);
    let portal = flood(&app, "/v1/portal/me", &token, "192.0.2.1:1000").await;
    assert_limited("customer token", &portal, 2, 200);
    // Others are not affected by a flooder.
    app.get("/v1/products")
        .bearer(&bystander.key)
        .peer("192.0.2.1:1000")
        .send()
        .await
        .expect(200);

    // Refused credentials are limited per client address; once blocked, even a valid
    // key from that address is not looked at until the block ends, while other
    // addresses are unaffected.
    let stuffing = flood(&app, "/v1/products", "sk_test_guess", "192.0.2.66:4000").await;
    assert_limited("refused credentials", &stuffing, 2, 401);
    app.get("/v1/products")
        .bearer(&bystander.key)
        .peer("192.0.2.66:4001")
        .send()
        .await
        .expect_problem(429, "rate_limited");
    app.get("/v1/products")
        .bearer(&bystander.key)
        .peer("192.0.2.67:4000")
        .send()
        .await
        .expect(200);
    // Routes outside /v1 (health checks, docs) are never limited.
    for _ in 0..5 {
        app.get("/healthz")
            .bearer("sk_test_guess")
            .peer("192.0.2.66:4000")
            .send()
            .await
            .expect(200);
    }
}
