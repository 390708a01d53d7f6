//! Hostile input: forged and confused tokens, SQL-looking, huge and odd-unicode strings in
//! every text field, oversized bodies, and floods that must meet the rate limits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel_async::RunQueryDsl;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tenure_api::extract::MAX_BODY_BYTES;
use tenure_api::middleware::rate_limit::{Limit, RateLimitConfig, RateLimitStore};
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
    app.by(&m.key)
        .post(
            "/v1/identity_providers",
            &json!({"issuer": issuer, "audience": "shop-portal", "algorithm": alg,
            "verification_key": key, "customer_claim": "sub"}),
        )
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
            .by(&token)
            .merchant(&m.id)
            .get("/v1/portal/me")
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
                let res = app.by(&token).merchant(&m.id).get("/v1/portal/me").await;
                assert_refused(&format!("{alg:?} keyed with {issuer}'s PEM"), &res);
            }
        }
    }
    // The other asymmetric algorithm, and `none`, with a registered issuer.
    let swapped = sign(Algorithm::ES256, &ec, &claims("https://rsa.example"));
    assert_refused(
        "ES256 token for an RS256 provider",
        &app.by(&swapped).merchant(&m.id).get("/v1/portal/me").await,
    );
    let none = raw_token(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("https://rsa.example"),
        b"",
    );
    assert_refused(
        "alg none for a provider",
        &app.by(&none).merchant(&m.id).get("/v1/portal/me").await,
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
    app.by(&sign(Algorithm::HS256, &key, &good))
        .get("/v1/portal/me")
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
        // Over the token limit (8 KiB), inside the header limit (32 KiB, then 431).
        ("oversized garbage", "e".repeat(20_000)),
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
        .by(&sign(
            Algorithm::HS256,
            &key,
            &with("sub", json!(stranger)).clone(),
        ))
        .get("/v1/portal/me")
        .await;
    assert!(
        matches!(res.status.as_u16(), 401 | 404),
        "cross-tenant token: {}",
        res.body
    );
}

/// Every table a portal request could write to, each as a digest of its rows, to show
/// that refused requests wrote nothing.
async fn portal_rows(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let mut digests = Vec::new();
    for table in [
        "customers",
        "subscriptions",
        "scheduled_changes",
        "support_tickets",
        "ticket_messages",
        "cancellation_requests",
        "retention_offer_outcomes",
        "subscription_discounts",
        "coupons",
        "promotion_codes",
        "payment_methods",
        "invoices",
        "payments",
        "charge_intents",
        "pending_invoice_items",
        "events",
    ] {
        let query =
            format!("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS v FROM {table} t");
        digests.push((table, sql_text(app, &query).await));
    }
    digests
}

#[actix_web::test]
async fn a_validly_signed_token_pairing_a_merchant_with_another_merchant_s_customer_gets_nothing() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    // A's customer has a card, a subscription with its first invoice, and a pending
    // cancellation request with its ticket; B's customer a subscription.
    let cat_a = fixtures::catalog(&app, &a, json!({})).await;
    let alice = fixtures::customer(&app, &a, "alice").await;
    let card = fixtures::attach_card(&app, &a, &alice, "pm_card_visa").await;
    let alice_subs = subscriptions(&app, &a, &alice, &cat_a.base, 2).await;
    let alice_sub = &alice_subs[0];
    let alice_token = fixtures::session(&app, &a, &alice).await;
    let request = request_cancellations(&app, &alice_token, &alice_subs[1..])
        .await
        .remove(0);
    let (request, ticket) = (
        request["id"].as_str().expect("request id").to_owned(),
        request["ticket_id"].as_str().expect("ticket id").to_owned(),
    );
    let invoice = app
        .get_ok(&format!("/v1/invoices?customer_id={alice}"), &a.key)
        .await["data"][0]["id"]
        .as_str()
        .expect("the first period's invoice")
        .to_owned();
    let cat_b = fixtures::catalog(&app, &b, json!({})).await;
    let bob = fixtures::customer(&app, &b, "bob").await;
    let bob_sub = fixtures::subscribe_id(&app, &b, &bob, &cat_b.base).await;

    let secret = tenure_secret(&app).await;
    let key = EncodingKey::from_secret(&secret);
    let t = now(&app);
    let token = |merchant: &TestMerchant, customer: &str| {
        sign(
            Algorithm::HS256,
            &key,
            &json!({"iss": "tenure", "aud": "tenure-portal", "sub": customer, "mer": merchant.id,
                "iat": t, "nbf": t, "exp": t + 600}),
        )
    };

    // Positive control: signed the same way, a matching pair is each customer's session.
    let bob_token = token(&b, &bob);
    assert_eq!(app.get_ok("/v1/portal/me", &bob_token).await["id"], bob);
    app.get_ok(&format!("/v1/portal/subscriptions/{bob_sub}"), &bob_token)
        .await;
    let alice_signed = token(&a, &alice);
    assert_eq!(
        app.get_ok("/v1/portal/me", &alice_signed).await["id"],
        alice
    );
    let mine = app.get_ok("/v1/portal/subscriptions", &alice_signed).await;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(2));

    let before = portal_rows(&app).await;
    for (what, forged, own_plan) in [
        (
            "merchant B, A's customer",
            token(&b, &alice),
            &cat_b.premium,
        ),
        ("merchant A, B's customer", token(&a, &bob), &cat_a.premium),
    ] {
        let requests: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", "/v1/portal/me".to_owned(), None),
            ("GET", "/v1/portal/subscriptions".to_owned(), None),
            ("GET", format!("/v1/portal/subscriptions/{alice_sub}"), None),
            ("GET", format!("/v1/portal/subscriptions/{bob_sub}"), None),
            (
                "GET",
                format!("/v1/portal/subscriptions/{alice_sub}/upcoming_invoice"),
                None,
            ),
            ("GET", "/v1/portal/invoices".to_owned(), None),
            ("GET", format!("/v1/portal/invoices/{invoice}"), None),
            ("GET", "/v1/portal/payments".to_owned(), None),
            ("GET", "/v1/portal/payment_methods".to_owned(), None),
            ("GET", "/v1/portal/support_tickets".to_owned(), None),
            (
                "GET",
                format!("/v1/portal/cancellation_requests/{request}/retention_offers"),
                None,
            ),
            (
                "POST",
                format!("/v1/portal/subscriptions/{alice_sub}/pause"),
                Some(json!({})),
            ),
            (
                "POST",
                format!("/v1/portal/subscriptions/{alice_sub}/cancel"),
                Some(json!({"reason": "other"})),
            ),
            (
                "POST",
                format!("/v1/portal/subscriptions/{bob_sub}/cancel"),
                Some(json!({"reason": "other"})),
            ),
            (
                "POST",
                format!("/v1/portal/subscriptions/{alice_sub}/change_plan"),
                Some(json!({"plan_id": cat_a.premium})),
            ),
            (
                "POST",
                format!("/v1/portal/cancellation_requests/{request}/withdraw"),
                None,
            ),
            (
                "POST",
                format!("/v1/portal/support_tickets/{ticket}/replies"),
                Some(json!({"body": "Please cancel everything."})),
            ),
            ("POST", format!("/v1/portal/invoices/{invoice}/pay"), None),
            (
                "POST",
                format!("/v1/portal/payment_methods/{card}/set_default"),
                None,
            ),
            ("DELETE", format!("/v1/portal/payment_methods/{card}"), None),
            (
                "POST",
                "/v1/portal/payment_methods".to_owned(),
                Some(json!({"token": "pm_card_visa"})),
            ),
            (
                "POST",
                "/v1/portal/subscriptions".to_owned(),
                Some(json!({"plan_id": own_plan})),
            ),
        ];
        for (method, path, body) in requests {
            let mut req = app.request(method.parse().unwrap(), &path).bearer(&forged);
            if let Some(body) = &body {
                req = req.json(body);
            }
            let res = req.send().await;
            // Tokens are stateless: the pair is not looked up, but every read and write is
            // scoped to both, so a list finds nothing and everything else is not found.
            if res.status.as_u16() == 200 && method == "GET" && path.ends_with('s') {
                assert_eq!(res.body["data"], json!([]), "{what}: {path}");
                continue;
            }
            assert!(
                matches!(res.status.as_u16(), 401 | 404),
                "{what}: {method} {path}: {} {}",
                res.status,
                res.body
            );
            assert_eq!(
                res.header("content-type"),
                Some("application/problem+json"),
                "{what}: {method} {path}"
            );
        }
    }
    assert_eq!(
        portal_rows(&app).await,
        before,
        "a mismatched token wrote rows"
    );
    // And the customers' own sessions are untouched by all this.
    app.get_ok(
        &format!("/v1/portal/subscriptions/{alice_sub}"),
        &alice_token,
    )
    .await;
    app.get_ok(&format!("/v1/portal/subscriptions/{bob_sub}"), &bob_token)
        .await;
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
    app.by(&sign(Algorithm::RS256, &rsa, &good))
        .merchant(&m.id)
        .get("/v1/portal/me")
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
            .by(&sign(Algorithm::RS256, &rsa, &claims))
            .merchant(&m.id)
            .get("/v1/portal/me")
            .await;
        assert_refused(what, &res);
    }
    // Signed by the provider's key but claiming to be Tenure itself.
    let res = app
        .by(&sign(Algorithm::RS256, &rsa, &with("iss", json!("tenure"))))
        .merchant(&m.id)
        .get("/v1/portal/me")
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
        "\u{3000}\u{A0} padded \t".to_owned(),
        "line one\nline two\r\n\ttabbed".to_owned(),
        "bell\u{7} and \u{1B}[31mred".to_owned(),
        "x".repeat(10_000),
        "🦀".repeat(10_000),
    ]
}

/// A card number written every way outside testers slipped past the filter: with dots,
/// slashes, underscores, non-breaking spaces, tabs, newlines, runs of spaces, and in
/// full-width digits. Every text field refuses each of them.
fn card_number_variants() -> Vec<String> {
    let groups = ["4242"; 4];
    let mut variants: Vec<String> = [
        ".", "/", "_", "\u{a0}", "\t", "\n", "\r\n", "      ", " / ", "\u{3000}", "\u{200b}",
    ]
    .iter()
    .map(|separator| format!("card {} exp 12/34", groups.join(separator)))
    .collect();
    variants.push("４２４２４２４２４２４２４２４２".to_owned());
    variants.push("card ５５５５ ５５５５ ５５５５ ４４４４".to_owned());
    variants
}

/// What a text field does with a hostile value. A refusal is always a 400 or 422
/// problem+json with a `code`.
#[derive(Clone, Copy)]
enum Keep {
    /// Always refused: the field has a format (URL, e-mail-like ids, currency, tag slug),
    /// is an enumeration or an id, or must be a token the payment gateway issued.
    Refused,
    /// Refused, or stored and read back exactly as sent.
    Verbatim(At),
    /// Refused, or stored and read back exactly as sent except that leading and trailing
    /// whitespace is trimmed: `tenure_domain::text::clean`, behind every name, description,
    /// note, reply and message, which also refuses control characters (and newlines and
    /// tabs in single-line fields).
    Trimmed(At),
    /// Refused, or stored trimmed and lower-cased: tags are slugs of `a-z`, `0-9`, `-`,
    /// `_`, `:` and `.` (`tenure_domain::customer::normalize_tag`).
    Slug(At),
}

/// Where a stored value is found.
#[derive(Clone, Copy)]
enum At {
    /// At this pointer of the stored object, in the write's answer and in its read-back.
    Answer(&'static str),
    /// Among the entries of the list at this pointer, likewise (lists of tags are sorted).
    Among(&'static str),
    /// Never answered (a secret): in this column of this table, in the stored object's row.
    Column(&'static str, &'static str),
}

/// One writable route: where to send case `n` (`i`-th hostile value) with which
/// credential, a valid body, which JSON pointers in it are text, and where the result is
/// read back.
struct TextRoute {
    method: &'static str,
    /// Routes whose write uses up their resource (a subscription's one pending
    /// cancellation, a request's one decline) get a fresh one for each hostile value.
    path: Box<dyn Fn(usize) -> String>,
    /// A merchant key, or a customer session token for the portal.
    credential: String,
    body: Box<dyn Fn(usize) -> Value>,
    fields: Vec<(&'static str, Keep)>,
    /// The stored object within the write's answer.
    stored: fn(&Value) -> Value,
    read_back: ReadBack,
    /// Created resources a merchant may have only a few of are deleted under this prefix.
    delete_under: Option<&'static str>,
}

impl TextRoute {
    fn new(
        method: &'static str,
        path: impl Fn(usize) -> String + 'static,
        credential: &str,
        body: impl Fn(usize) -> Value + 'static,
        fields: Vec<(&'static str, Keep)>,
    ) -> Self {
        Self {
            method,
            path: Box::new(path),
            credential: credential.to_owned(),
            body: Box::new(body),
            fields,
            stored: Value::clone,
            read_back: ReadBack::None,
            delete_under: None,
        }
    }

    fn read_back(self, read_back: ReadBack) -> Self {
        Self { read_back, ..self }
    }

    fn stored(self, stored: fn(&Value) -> Value) -> Self {
        Self { stored, ..self }
    }
}

/// Always this path.
fn fixed(path: String) -> impl Fn(usize) -> String {
    move |_| path.clone()
}

/// How the stored object is read back, with the merchant's key.
enum ReadBack {
    /// GET this path: it answers what the write answered.
    Same(String),
    /// GET this prefix and the stored object's id: it answers the stored object.
    ById(&'static str),
    /// GET this list: the stored object is its entry with the same id.
    Listed(String),
    /// Answered by no read: the stored object's database row in this table, as JSON.
    Row(&'static str),
    None,
}

/// The one text column `v` of a query's one row.
async fn sql_text(app: &TestApp, query: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        v: Option<String>,
    }
    let mut conn = app.sql().await;
    let row: Text = diesel::sql_query(query)
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    row.v
}

/// The database row of a resource, by its TypeID, as JSON.
async fn row(app: &TestApp, table: &str, id: &str) -> Value {
    let (prefix, _) = id.rsplit_once('_').expect("a TypeID");
    let query = format!(
        "SELECT row_to_json(t)::text AS v FROM {table} t WHERE tenure_typeid('{prefix}', t.id) = '{id}'"
    );
    let text = sql_text(app, &query)
        .await
        .unwrap_or_else(|| panic!("no {table} row {id}"));
    serde_json::from_str(&text).expect("row_to_json is JSON")
}

async fn read_back(app: &TestApp, key: &str, route: &TextRoute, object: &Value) -> Option<Value> {
    let id = object["id"].as_str().unwrap_or_default();
    Some(match &route.read_back {
        ReadBack::Same(path) => (route.stored)(&app.get_ok(path, key).await),
        ReadBack::ById(prefix) => app.get_ok(&format!("{prefix}{id}"), key).await,
        ReadBack::Listed(path) => {
            let list = app.get_ok(path, key).await;
            let entries = list.get("data").unwrap_or(&list).as_array().cloned();
            entries
                .unwrap_or_default()
                .into_iter()
                .find(|entry| entry["id"] == id)
                .unwrap_or_else(|| panic!("{id} is not listed in {path}"))
        }
        ReadBack::Row(table) => row(app, table, id).await,
        ReadBack::None => return None,
    })
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
                // A missing array would be made an object, refused for its type alone.
                assert!(
                    map.contains_key(*part) || parts[i + 1].parse::<usize>().is_err(),
                    "{pointer}: the base body must hold the array"
                );
                map.entry(*part).or_insert(json!({}))
            }
        };
    }
}

/// `count` subscriptions of `customer` to `plan`: their ids.
async fn subscriptions(
    app: &TestApp,
    m: &TestMerchant,
    customer: &str,
    plan: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(fixtures::subscribe_id(app, m, customer, plan).await);
    }
    ids
}

/// A portal cancellation (request mode) of each subscription: the requests' answers.
async fn request_cancellations(app: &TestApp, token: &str, subs: &[String]) -> Vec<Value> {
    let mut requests = Vec::new();
    for sub in subs {
        requests.push(fixtures::request_cancellation(app, token, sub, "other").await);
    }
    requests
}

/// The last message of a support ticket.
fn last_message(ticket: &Value) -> Value {
    ticket["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null)
}

/// Sends every hostile string to every text field of each route (its body otherwise
/// valid) and checks what [`Keep`] says of the field: a refusal is a 400 or 422
/// problem+json that blames that field; a stored value is answered and read back as
/// kept. A field said to keep values must keep some. The count of stored values: each
/// test below asks for about a quarter of what its routes store today (together more
/// than the 100 that one test once asked of all of them).
async fn send_hostile_strings(app: &TestApp, key: &str, routes: &[TextRoute]) -> usize {
    use Keep::{Refused, Slug, Trimmed, Verbatim};
    let mut n = 0;
    let mut stored = 0;
    for route in routes {
        for (field, keep) in &route.fields {
            let stored_before = stored;
            for (i, hostile) in hostile_strings().into_iter().enumerate() {
                n += 1;
                let path = (route.path)(i);
                let mut body = (route.body)(n);
                set_pointer(&mut body, field, json!(hostile));
                let what = format!(
                    "{} {path} {field} = {:?}",
                    route.method,
                    hostile.chars().take(40).collect::<String>()
                );
                let res = app
                    .request(route.method.parse().unwrap(), &path)
                    .bearer(&route.credential)
                    .json(&body)
                    .send()
                    .await;
                let status = res.status.as_u16();
                if status >= 400 {
                    assert!(
                        matches!(status, 400 | 422),
                        "{what}: refused with {status}: {}",
                        res.body
                    );
                    assert_eq!(
                        res.header("content-type"),
                        Some("application/problem+json"),
                        "{what}"
                    );
                    assert!(res.body["code"].is_string(), "{what}: {}", res.body);
                    // Refused for this field, not for something else in the body.
                    let names: Vec<&str> = field
                        .split('/')
                        .filter(|s| !s.is_empty() && s.parse::<usize>().is_err())
                        .collect();
                    let blamed = res.body["errors"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["field"].as_str())
                        .any(|f| names.iter().any(|name| f.contains(name)));
                    assert!(blamed, "{what}: refused for another field: {}", res.body);
                    continue;
                }
                assert!(status < 300, "{what}: {status} {}", res.body);
                let (expected, at) = match keep {
                    Refused => panic!("{what}: accepted with {status}: {}", res.body),
                    Verbatim(at) => (hostile.clone(), *at),
                    Trimmed(at) => (hostile.trim().to_owned(), *at),
                    Slug(at) => (hostile.trim().to_lowercase(), *at),
                };
                stored += 1;
                let object = (route.stored)(&res.body);
                let id = object["id"].as_str().unwrap_or_default().to_owned();
                let back = match at {
                    At::Answer(pointer) => {
                        assert_eq!(
                            object.pointer(pointer),
                            Some(&json!(expected)),
                            "{what}: not answered verbatim"
                        );
                        read_back(app, key, route, &object)
                            .await
                            .map(|back| back.pointer(pointer).cloned())
                    }
                    At::Among(pointer) => {
                        let among = |v: &Value| {
                            v.pointer(pointer)
                                .and_then(Value::as_array)
                                .is_some_and(|items| items.contains(&json!(expected)))
                        };
                        assert!(among(&object), "{what}: not answered verbatim: {object}");
                        if let Some(back) = read_back(app, key, route, &object).await {
                            assert!(among(&back), "{what}: not read back verbatim: {back}");
                        }
                        None
                    }
                    At::Column(table, column) => {
                        Some(row(app, table, &id).await.get(column).cloned())
                    }
                };
                if let Some(back) = back {
                    assert_eq!(
                        back,
                        Some(json!(expected)),
                        "{what}: not read back verbatim"
                    );
                }
                if let Some(prefix) = route.delete_under {
                    app.by(key)
                        .delete(&format!("{prefix}{id}"))
                        .await
                        .expect(200);
                }
            }
            // Whatever the field keeps, it never keeps a card number, however written.
            for variant in card_number_variants() {
                let mut body = (route.body)(n);
                set_pointer(&mut body, field, json!(variant));
                let path = (route.path)(0);
                let res = app
                    .request(route.method.parse().unwrap(), &path)
                    .bearer(&route.credential)
                    .json(&body)
                    .send()
                    .await;
                let what = format!("{} {path} {field} = {variant:?}", route.method);
                assert_eq!(res.status.as_u16(), 422, "{what}: {}", res.body);
                assert_eq!(res.body["code"], "card_number_not_allowed", "{what}");
                assert!(
                    !String::from_utf8_lossy(&res.raw).contains("4242"),
                    "{what}: the problem echoes the number"
                );
            }
            // A field said to keep values must have kept some, or its read-back went untried.
            if matches!(keep, Verbatim(_) | Trimmed(_) | Slug(_)) {
                assert!(
                    stored > stored_before,
                    "{} {field}: no hostile value was stored",
                    route.method
                );
            }
        }
    }
    stored
}

/// Products and plans: names and descriptions keep what they are given (trimmed); ids,
/// enumerations and currencies refuse it.
#[actix_web::test]
async fn hostile_strings_in_product_and_plan_fields_are_refused_or_kept() {
    use Keep::{Refused, Trimmed};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let (plan_, product_) = (plan.clone(), product.clone());
    let routes = vec![
        TextRoute::new(
            "POST",
            fixed("/v1/products".to_owned()),
            key,
            |_| json!({"name": "P", "description": "D", "portal_policy": {}}),
            vec![
                ("/name", Trimmed(At::Answer("/name"))),
                ("/description", Trimmed(At::Answer("/description"))),
                ("/portal_policy/cancellation_mode", Refused),
            ],
        )
        .read_back(ReadBack::ById("/v1/products/")),
        TextRoute::new(
            "PATCH",
            fixed(format!("/v1/products/{product}")),
            key,
            move |_| {
                json!({"name": "P2", "description": "D2",
                    "portal_policy": {"switchable_plan_ids": [plan_]}})
            },
            vec![
                ("/name", Trimmed(At::Answer("/name"))),
                ("/description", Trimmed(At::Answer("/description"))),
                ("/portal_policy/switchable_plan_ids/0", Refused),
                ("/portal_policy/notice_rule", Refused),
            ],
        )
        .read_back(ReadBack::Same(format!("/v1/products/{product}"))),
        TextRoute::new(
            "POST",
            fixed("/v1/plans".to_owned()),
            key,
            move |_| {
                json!({"product_id": product_, "name": "Monthly",
                    "price": {"amount": 999, "currency": "EUR"}, "interval": "month"})
            },
            vec![
                ("/name", Trimmed(At::Answer("/name"))),
                ("/product_id", Refused),
                ("/price/currency", Refused),
                ("/interval", Refused),
            ],
        )
        .read_back(ReadBack::ById("/v1/plans/")),
        TextRoute::new(
            "PATCH",
            fixed(format!("/v1/plans/{plan}")),
            key,
            |_| json!({"name": "Renamed"}),
            vec![("/name", Trimmed(At::Answer("/name")))],
        )
        .read_back(ReadBack::Same(format!("/v1/plans/{plan}"))),
    ];
    let stored = send_hostile_strings(&app, key, &routes).await;
    assert!(stored >= 22, "only {stored} hostile values were stored");
}

/// Customers (their notes, tags and sessions) and identity providers, whose secret is
/// kept exactly as given and never answered.
#[actix_web::test]
async fn hostile_strings_in_customer_and_identity_provider_fields_are_refused_or_kept() {
    use Keep::{Refused, Slug, Trimmed, Verbatim};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let customer = fixtures::customer(&app, &m, "base").await;
    let customer_ = customer.clone();
    let routes = vec![
        TextRoute::new(
            "POST",
            fixed("/v1/customers".to_owned()),
            key,
            |n| {
                json!({"external_id": format!("ext-{n}"), "email": format!("c{n}@example.com"),
                    "name": "N", "locale": "en", "metadata": {"note": "x"}, "tags": ["vip"]})
            },
            vec![
                ("/external_id", Trimmed(At::Answer("/external_id"))),
                // None of these strings is an e-mail address.
                ("/email", Refused),
                ("/name", Trimmed(At::Answer("/name"))),
                ("/locale", Refused),
                // Metadata is the merchant's own: stored as given, whitespace and all.
                ("/metadata/note", Verbatim(At::Answer("/metadata/note"))),
                (
                    "/metadata/nested/deeper",
                    Verbatim(At::Answer("/metadata/nested/deeper")),
                ),
                ("/tags/0", Slug(At::Among("/tags"))),
            ],
        )
        .read_back(ReadBack::ById("/v1/customers/")),
        TextRoute::new(
            "PATCH",
            fixed(format!("/v1/customers/{customer}")),
            key,
            |_| json!({"name": "N2", "tags": ["vip"]}),
            vec![
                // None of these strings is an e-mail address.
                ("/email", Refused),
                ("/name", Trimmed(At::Answer("/name"))),
                ("/locale", Refused),
                ("/metadata/note", Verbatim(At::Answer("/metadata/note"))),
                ("/tags/0", Slug(At::Among("/tags"))),
            ],
        )
        .read_back(ReadBack::Same(format!("/v1/customers/{customer}"))),
        TextRoute::new(
            "POST",
            fixed(format!("/v1/customers/{customer}/notes")),
            key,
            |_| json!({"body": "Called.", "channel": "phone", "author": "agent:maria"}),
            vec![
                ("/body", Trimmed(At::Answer("/body"))),
                ("/author", Trimmed(At::Answer("/author"))),
                ("/channel", Refused),
            ],
        )
        .read_back(ReadBack::Listed(format!(
            "/v1/customers/{customer}/timeline?limit=100"
        ))),
        TextRoute::new(
            "POST",
            fixed(format!("/v1/customers/{customer}/tags")),
            key,
            |_| json!({"tag": "vip"}),
            vec![("/tag", Slug(At::Among("/tags")))],
        )
        .read_back(ReadBack::Same(format!("/v1/customers/{customer}"))),
        TextRoute::new(
            "POST",
            fixed("/v1/customer_sessions".to_owned()),
            key,
            move |_| json!({"customer_id": customer_}),
            vec![("/customer_id", Refused)],
        ),
        TextRoute::new(
            "POST",
            fixed("/v1/identity_providers".to_owned()),
            key,
            |n| {
                json!({"issuer": format!("https://idp{n}.example"), "audience": "aud",
                    "algorithm": "HS256", "verification_key": "k".repeat(40), "customer_claim": "sub"})
            },
            vec![
                ("/issuer", Trimmed(At::Answer("/issuer"))),
                ("/audience", Trimmed(At::Answer("/audience"))),
                ("/algorithm", Refused),
                // A secret: never answered, kept exactly as given.
                (
                    "/verification_key",
                    Verbatim(At::Column("identity_providers", "verification_key")),
                ),
                ("/customer_claim", Trimmed(At::Answer("/customer_claim"))),
            ],
        )
        .read_back(ReadBack::Listed("/v1/identity_providers".to_owned())),

    ];
    let stored = send_hostile_strings(&app, key, &routes).await;
    assert!(stored >= 43, "only {stored} hostile values were stored");
}

/// Retention offers, webhook endpoints and event redelivery.
#[actix_web::test]
async fn hostile_strings_in_retention_offer_webhook_and_event_fields_are_refused_or_kept() {
    use Keep::{Refused, Slug, Trimmed};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let offer = app
        .by(key)
        .post(
            "/v1/retention_offers",
            &json!({"name": "Stay", "kind": {"type": "pause_instead", "days": 30}}),
        )
        .await
        .expect(201)
        .id();
    let endpoint = app
        .by(key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "https://example.com/hook", "enabled_events": ["*"]}),
        )
        .await
        .expect(201)
        .id();
    let event = fixtures::id(&app.get_ok("/v1/events?limit=1", key).await["data"][0]);
    let (plan_, plan__) = (plan.clone(), plan.clone());
    let routes = vec![
        TextRoute::new(
            "POST",
            fixed("/v1/retention_offers".to_owned()),
            key,
            move |_| {
                json!({"name": "Stay", "kind": {"type": "discount_percent", "percent": 10, "cycles": 1},
                    "eligibility": {"tags": ["vip"], "segments": ["loyal"], "reasons": ["other"],
                        "plan_ids": [plan_], "ltv": {"currency": "EUR", "min": 0}}})
            },
            vec![
                ("/name", Trimmed(At::Answer("/name"))),
                ("/kind/type", Refused),
                ("/eligibility/tags/0", Slug(At::Among("/eligibility/tags"))),
                ("/eligibility/segments/0", Refused),
                ("/eligibility/reasons/0", Refused),
                ("/eligibility/plan_ids/0", Refused),
                ("/eligibility/ltv/currency", Refused),
            ],
        )
        .read_back(ReadBack::ById("/v1/retention_offers/")),
        TextRoute::new(
            "POST",
            fixed("/v1/retention_offers".to_owned()),
            key,
            move |_| json!({"name": "Switch", "kind": {"type": "switch_plan", "plan_id": plan__}}),
            vec![("/kind/plan_id", Refused)],
        ),
        TextRoute::new(
            "PATCH",
            fixed(format!("/v1/retention_offers/{offer}")),
            key,
            |_| json!({"name": "Stay longer"}),
            vec![("/name", Trimmed(At::Answer("/name")))],
        )
        .read_back(ReadBack::Same(format!("/v1/retention_offers/{offer}"))),
        TextRoute {
            // At most 16 endpoints per merchant: each one stored is deleted once read.
            delete_under: Some("/v1/webhook_endpoints/"),
            ..TextRoute::new(
                "POST",
                fixed("/v1/webhook_endpoints".to_owned()),
                key,
                |_| {
                    json!({"url": "https://example.com/hook", "enabled_events": ["customer.created"],
                        "description": "CRM"})
                },
                vec![
                    // Only an absolute http(s) URL with a host is an endpoint.
                    ("/url", Refused),
                    ("/enabled_events/0", Refused),
                    ("/description", Trimmed(At::Answer("/description"))),
                ],
            )
            .read_back(ReadBack::ById("/v1/webhook_endpoints/"))
        },
        TextRoute::new(
            "PATCH",
            fixed(format!("/v1/webhook_endpoints/{endpoint}")),
            key,
            |_| json!({"description": "CRM 2", "enabled_events": ["customer.created"]}),
            vec![
                ("/url", Refused),
                ("/enabled_events/0", Refused),
                ("/description", Trimmed(At::Answer("/description"))),
            ],
        )
        .read_back(ReadBack::Same(format!("/v1/webhook_endpoints/{endpoint}"))),
        TextRoute::new(
            "POST",
            fixed(format!("/v1/events/{event}/redeliver")),
            key,
            |_| json!({}),
            vec![("/endpoint_id", Refused)],
        ),
    ];
    let stored = send_hostile_strings(&app, key, &routes).await;
    assert!(stored >= 14, "only {stored} hostile values were stored");
}

/// Subscriptions, their cancellation (by the customer, and the merchant's decline or
/// cancellation) and the replies on a support ticket.
#[actix_web::test]
async fn hostile_strings_in_subscription_cancellation_and_ticket_fields_are_refused_or_kept() {
    use Keep::{Refused, Trimmed};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "base").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let hostile_count = hostile_strings().len();
    // One subscription per hostile value for each route that uses one up, and one more
    // whose cancellation request's ticket takes the replies.
    let subs = subscriptions(&app, &m, &customer, &plan, 2 * hostile_count + 2).await;
    let requests = request_cancellations(&app, &token, &subs[hostile_count..]).await;
    let ticket = requests[hostile_count]["ticket_id"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let to_decline: Vec<String> = requests[..hostile_count].iter().map(fixtures::id).collect();
    let to_cancel = subs[..hostile_count].to_vec();
    let merchant_canceled = subs[2 * hostile_count + 1].clone();
    let routes = vec![
        TextRoute::new(
            "POST",
            fixed(format!("/v1/support_tickets/{ticket}/replies")),
            key,
            |_| json!({"body": "Thanks."}),
            vec![
                ("/body", Trimmed(At::Answer("/body"))),
                ("/status", Refused),
            ],
        )
        .stored(last_message)
        .read_back(ReadBack::Same(format!("/v1/support_tickets/{ticket}"))),
        TextRoute::new(
            "POST",
            fixed(format!("/v1/portal/support_tickets/{ticket}/replies")),
            &token,
            |_| json!({"body": "Thanks."}),
            vec![("/body", Trimmed(At::Answer("/body")))],
        )
        .stored(last_message)
        .read_back(ReadBack::Same(format!("/v1/support_tickets/{ticket}"))),
        TextRoute::new(
            "POST",
            move |i| format!("/v1/portal/subscriptions/{}/cancel", to_cancel[i]),
            &token,
            |_| json!({"reason": "other", "message": "Going on a budget."}),
            vec![
                ("/message", Trimmed(At::Answer("/message"))),
                ("/reason", Refused),
            ],
        )
        .stored(|answer| answer["cancellation_request"].clone())
        .read_back(ReadBack::ById("/v1/cancellation_requests/")),
        TextRoute::new(
            "POST",
            move |i| format!("/v1/cancellation_requests/{}/decline", to_decline[i]),
            key,
            |_| json!({"message": "Your contract runs until March."}),
            vec![("/message", Trimmed(At::Answer("/decline_message")))],
        )
        .read_back(ReadBack::ById("/v1/cancellation_requests/")),
        // Each accepted cancellation replaces the pending one, with its message.
        TextRoute::new(
            "POST",
            fixed(format!("/v1/subscriptions/{merchant_canceled}/cancel")),
            key,
            |_| json!({"timing": "period_end", "reason": "other", "message": "Account closed"}),
            vec![
                (
                    "/message",
                    Trimmed(At::Answer("/cancellation_details/message")),
                ),
                ("/reason", Refused),
                ("/timing", Refused),
                ("/access", Refused),
            ],
        )
        .read_back(ReadBack::Same(format!(
            "/v1/subscriptions/{merchant_canceled}"
        ))),
        TextRoute::new(
            "POST",
            fixed(format!(
                "/v1/subscriptions/{}/pause",
                subs[2 * hostile_count]
            )),
            key,
            |_| json!({"start": {"type": "period_end"}, "on_resume": "keep_anchor"}),
            vec![("/start/type", Refused), ("/on_resume", Refused)],
        ),
        TextRoute::new(
            "POST",
            fixed(format!("/v1/subscriptions/{merchant_canceled}/change_plan")),
            key,
            |_| json!({}),
            vec![("/plan_id", Refused)],
        ),
        TextRoute::new(
            "POST",
            fixed("/v1/subscriptions".to_owned()),
            key,
            {
                let (customer, plan) = (customer.clone(), plan.clone());
                move |_| json!({"customer_id": customer, "plan_id": plan})
            },
            vec![("/customer_id", Refused), ("/plan_id", Refused)],
        ),
        TextRoute::new(
            "POST",
            fixed("/v1/portal/subscriptions".to_owned()),
            &token,
            |_| json!({}),
            vec![("/plan_id", Refused)],
        ),
    ];
    let stored = send_hostile_strings(&app, key, &routes).await;
    assert!(stored >= 19, "only {stored} hostile values were stored");
}

/// Refunds, payment methods (gateway tokens only), the dunning policy and the segment
/// settings.
#[actix_web::test]
async fn hostile_strings_in_billing_fields_are_refused_or_kept() {
    use Keep::{Refused, Trimmed};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let customer = fixtures::customer(&app, &m, "base").await;
    let token = fixtures::session(&app, &m, &customer).await;
    fixtures::attach_card(&app, &m, &customer, "pm_card_visa").await;
    let invoice = crate::billing::invoice(&app, &m, &customer, 100_000).await;
    assert_eq!(crate::billing::pay(&app, &m, invoice).await.0, "succeeded");
    let routes = vec![
        TextRoute::new(
            "POST",
            fixed(format!("/v1/invoices/{invoice}/refund")),
            key,
            |_| json!({"amount": 1, "reason": "requested_by_customer"}),
            vec![("/reason", Trimmed(At::Answer("/reason")))],
        )
        .stored(|answer| answer["refund"].clone())
        .read_back(ReadBack::Row("refunds")),
        // Only tokens the payment gateway issued are payment methods.
        TextRoute::new(
            "POST",
            fixed(format!("/v1/customers/{customer}/payment_methods")),
            key,
            |_| json!({"token": "pm_card_visa"}),
            vec![("/token", Refused)],
        ),
        TextRoute::new(
            "POST",
            fixed("/v1/portal/payment_methods".to_owned()),
            &token,
            |_| json!({"token": "pm_card_visa"}),
            vec![("/token", Refused)],
        ),
        TextRoute::new(
            "PUT",
            fixed("/v1/dunning_policy".to_owned()),
            key,
            |_| json!({"retry_after_days": [3], "final_state": "canceled"}),
            vec![("/final_state", Refused)],
        ),
        TextRoute::new(
            "PUT",
            fixed("/v1/segment_settings".to_owned()),
            key,
            |_| json!({"high_ltv_thresholds": [{"amount": 100, "currency": "EUR"}]}),
            vec![("/high_ltv_thresholds/0/currency", Refused)],
        ),
    ];
    let stored = send_hostile_strings(&app, key, &routes).await;
    assert!(stored >= 4, "only {stored} hostile values were stored");
}

/// Metadata keys are the merchant's text too: refused, or kept verbatim like the values.
#[actix_web::test]
async fn hostile_metadata_keys_are_refused_or_kept_verbatim() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let key = m.key.as_str();
    let mut keys_kept = 0;
    for (n, hostile) in hostile_strings().into_iter().enumerate() {
        let mut metadata = serde_json::Map::new();
        metadata.insert(hostile.clone(), json!("v"));
        let res = app
            .by(key)
            .post(
                "/v1/customers",
                &json!({"external_id": format!("keys-{n}"), "metadata": metadata}),
            )
            .await;
        let what = format!(
            "metadata key {:?}",
            hostile.chars().take(40).collect::<String>()
        );
        if res.status.as_u16() >= 400 {
            let res = res.expect_problem(422, "validation_failed");
            assert_eq!(res.body["errors"][0]["field"], "metadata", "{what}");
            continue;
        }
        assert_eq!(res.status.as_u16(), 201, "{what}: {}", res.body);
        let back = app
            .get_ok(&format!("/v1/customers/{}", res.id()), key)
            .await;
        for customer in [&res.body, &back] {
            assert_eq!(customer["metadata"], json!(metadata), "{what}");
        }
        keys_kept += 1;
    }
    assert!(keys_kept > 10, "only {keys_kept} metadata keys were kept");
}

/// An empty cursor (as a client may build from a null `next_cursor`) is the first page.
#[actix_web::test]
async fn an_empty_cursor_lists_the_first_page() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    for list in ["/v1/customers", "/v1/products", "/v1/plans", "/v1/events"] {
        app.by(&m.key)
            .get(&format!("{list}?starting_after="))
            .await
            .expect(200);
    }
}

/// Hostile values in query strings and paths: never a server error.
#[actix_web::test]
async fn hostile_strings_in_query_strings_and_paths_never_answer_a_server_error() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
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
            let res = app.by(&m.key).get(&path).await;
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
        .by(&m.key)
        .post(
            "/v1/customers",
            &json!({"external_id": "big", "name": name, "metadata": metadata}),
        )
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
        store: RateLimitStore::Postgres,
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

/// Two applications on one database stand for two `tenure serve` processes behind a
/// balancer: with the buckets in PostgreSQL they share one budget (a flood spread over
/// both gets the burst once, not twice), a refusal's `Retry-After` holds on the other
/// process too, and a blocked client address is blocked on both. The same flood with
/// per-process buckets gets twice the burst, which is what this test would catch.
#[actix_web::test]
async fn rate_limits_are_shared_by_every_process_on_the_database() {
    const BURST: u32 = 6;
    let limits = |store| RateLimitConfig {
        merchant: Limit::new(1, BURST),
        customer: Limit::new(1, 2),
        unauthenticated: Limit::new(1, 2),
        trust_forwarded_for: false,
        store,
    };
    /// Sends 4 × BURST requests alternating between the two processes: how many were
    /// allowed, the 429s, and how many whole seconds (rounded up) the flood took.
    async fn flood(a: &TestApp, b: &TestApp, key: &str) -> (u32, Vec<Response>, u32) {
        let started = std::time::Instant::now();
        let (mut allowed, mut limited) = (0, Vec::new());
        for i in 0..4 * BURST {
            let app = if i % 2 == 0 { a } else { b };
            let res = app.get("/v1/products").bearer(key).send().await;
            match res.status.as_u16() {
                200 => allowed += 1,
                429 => limited.push(res),
                other => panic!("{other}: {}", res.body),
            }
        }
        let secs = started.elapsed().as_secs_f64().ceil() as u32;
        (allowed, limited, secs)
    }

    // Per process: each has its own burst.
    let a = TestApp::with_rate_limits(limits(RateLimitStore::Memory)).await;
    let b = TestApp::on(a.db.share(), limits(RateLimitStore::Memory)).await;
    let m = a.merchant("per process").await;
    let (allowed, _, _) = flood(&a, &b, &m.key).await;
    assert!(
        allowed >= 2 * BURST,
        "per-process buckets allowed {allowed}"
    );
    drop((b, a));

    // Shared: one burst, plus what the rate refilled while the flood ran.
    let a = TestApp::with_rate_limits(limits(RateLimitStore::Postgres)).await;
    let b = TestApp::on(a.db.share(), limits(RateLimitStore::Postgres)).await;
    let m = a.merchant("shared").await;
    let (allowed, limited, secs) = flood(&a, &b, &m.key).await;
    assert!(
        (BURST..=BURST + secs).contains(&allowed),
        "shared buckets allowed {allowed} in {secs} s"
    );
    for res in &limited {
        assert_eq!(res.body["code"], "rate_limited");
        assert_eq!(res.header("retry-after"), Some("1"), "one request a second");
    }
    // After the wait one request passes, whichever process takes it, and then the
    // bucket is empty again for both (the refusing process asked the database).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    b.get("/v1/products")
        .bearer(&m.key)
        .send()
        .await
        .expect(200);
    let res = a
        .get("/v1/products")
        .bearer(&m.key)
        .send()
        .await
        .expect_problem(429, "rate_limited");
    assert_eq!(res.header("retry-after"), Some("1"));
    b.get("/v1/products")
        .bearer(&m.key)
        .send()
        .await
        .expect_problem(429, "rate_limited");

    // A client address's budget of refused credentials is shared too: spent half on each
    // process, the next refused credential is 429 on either, and from then on that
    // process blocks the address, even with a valid key. (A process learns of the block
    // when it counts a refused credential; a valid key is not looked up in the buckets.)
    let other = a.merchant("bystander").await;
    for app in [&a, &b] {
        app.get("/v1/products")
            .bearer("sk_test_guess")
            .peer("192.0.2.66:4000")
            .send()
            .await
            .expect(401);
    }
    a.get("/v1/products")
        .bearer("sk_test_guess")
        .peer("192.0.2.66:4000")
        .send()
        .await
        .expect_problem(429, "rate_limited");
    b.get("/v1/products")
        .bearer("sk_test_guess")
        .peer("192.0.2.66:4001")
        .send()
        .await
        .expect_problem(429, "rate_limited");
    b.get("/v1/products")
        .bearer(&other.key)
        .peer("192.0.2.66:4002")
        .send()
        .await
        .expect_problem(429, "rate_limited");
    b.get("/v1/products")
        .bearer(&other.key)
        .peer("192.0.2.67:4000")
        .send()
        .await
        .expect(200);
}

/// A request target or header block over the service's limits is refused with a
/// problem, 414 or 431, before anything else reads the request.
#[actix_web::test]
async fn oversized_request_targets_and_headers_are_problems() {
    use tenure_api::middleware::input_limits::{MAX_HEADER_BYTES, MAX_TARGET_BYTES};
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let long_query = format!(
        "/v1/customers?limit=1&starting_after={}",
        "c".repeat(MAX_TARGET_BYTES)
    );
    let res = app
        .request(actix_web::http::Method::GET, &long_query)
        .bearer(&m.key)
        .send()
        .await
        .expect_problem(414, "uri_too_long");
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(res.body["title"], "URI too long");
    let long_path = format!("/v1/customers/{}", "c".repeat(MAX_TARGET_BYTES));
    app.request(actix_web::http::Method::GET, &long_path)
        .bearer(&m.key)
        .send()
        .await
        .expect_problem(414, "uri_too_long");
    let res = app
        .request(actix_web::http::Method::GET, "/v1/customers")
        .bearer(&m.key)
        .header("x-padding", &"p".repeat(MAX_HEADER_BYTES))
        .send()
        .await
        .expect_problem(431, "headers_too_large");
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(res.body["title"], "Request headers too large");
    // Just inside both limits: served.
    let inside = format!(
        "/v1/customers?limit=1&x={}",
        "c".repeat(MAX_TARGET_BYTES - "/v1/customers?limit=1&x=".len())
    );
    let res = app
        .request(actix_web::http::Method::GET, &inside)
        .bearer(&m.key)
        .send()
        .await;
    assert_ne!(res.status.as_u16(), 414, "{}", res.body);
}
