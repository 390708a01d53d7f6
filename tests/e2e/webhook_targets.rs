//! Where webhooks may go: never into the operator's own network (loopback, private,
//! link-local, shared, unspecified addresses, in any spelling), checked when an endpoint
//! is registered or changed and again at delivery on the addresses connected to, unless
//! the operator allows private targets (`TENURE_WEBHOOK_ALLOW_PRIVATE_TARGETS`), as the
//! other webhook tests do.

use std::net::TcpListener;

use serde_json::{Value, json};
use tenure_domain::clock::Clock;
use tenure_domain::outbound::TargetPolicy;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::delivery::{DEFAULT_REQUEST_TIMEOUT, WebhookSender, deliver_due};

use crate::fixtures;

/// Every way a tester reached the operator's network, as a URL.
const PRIVATE_TARGETS: &[&str] = &[
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:5432/",
    "http://localhost/hooks",
    "https://LOCALHOST./hooks",
    "http://api.localhost/hooks",
    "http://[::1]/hooks",
    "http://10.0.0.1/hooks",
    "http://192.168.1.1/hooks",
    "http://172.16.0.1/hooks",
    "http://100.64.0.1/hooks",
    "http://0.0.0.0/hooks",
    "http://0/hooks",
    "http://[::]/hooks",
    "http://2130706433/hooks",
    "http://0x7f000001/hooks",
    "http://127.1/hooks",
    "http://0177.0.0.1/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    "http://[::ffff:a9fe:a9fe]/hooks",
    "http://[64:ff9b::7f00:1]/hooks",
    "http://[fd00::1]/hooks",
    "http://[fe80::1]/hooks",
    "http://224.0.0.1/hooks",
];

#[track_caller]
fn assert_refused_url(body: &Value, target: &str) {
    assert_eq!(body["errors"][0]["field"], "url", "{target}: {body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("public addresses"),
        "{target}: the message says why: {body}"
    );
}

#[actix_web::test]
async fn every_spelling_of_a_private_target_is_refused_on_create_and_update() {
    let app = TestApp::with_defaults().await;
    let m = app.merchant("A").await;
    for target in PRIVATE_TARGETS {
        let res = app
            .by(&m.key)
            .post(
                "/v1/webhook_endpoints",
                &json!({"url": target, "enabled_events": ["*"]}),
            )
            .await
            .expect_problem(422, "url_not_allowed");
        assert_refused_url(&res.body, target);
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_endpoints")
            .await,
        0
    );

    // A public address, and a name that does not resolve here (checked again when a
    // delivery looks it up), are accepted.
    for public in ["https://93.184.215.14/hooks", "https://example.com/hooks"] {
        app.by(&m.key)
            .post(
                "/v1/webhook_endpoints",
                &json!({"url": public, "enabled_events": ["*"]}),
            )
            .await
            .expect(201);
    }
    let id = app
        .by(&m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "https://example.com/other", "enabled_events": ["*"]}),
        )
        .await
        .expect(201)
        .id();
    for target in PRIVATE_TARGETS {
        let res = app
            .by(&m.key)
            .patch(
                &format!("/v1/webhook_endpoints/{id}"),
                &json!({"url": target}),
            )
            .await
            .expect_problem(422, "url_not_allowed");
        assert_refused_url(&res.body, target);
    }
    let kept = app
        .get_ok(&format!("/v1/webhook_endpoints/{id}"), &m.key)
        .await;
    assert_eq!(kept["url"], "https://example.com/other");
}

#[actix_web::test]
async fn a_syntax_error_is_still_reported_as_one() {
    let app = TestApp::with_defaults().await;
    let m = app.merchant("A").await;
    app.by(&m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "ftp://127.0.0.1/", "enabled_events": ["*"]}),
        )
        .await
        .expect_problem(422, "validation_failed");
}

#[actix_web::test]
async fn the_development_setting_lets_private_targets_through() {
    // TestApp::new() runs as with TENURE_WEBHOOK_ALLOW_PRIVATE_TARGETS=true.
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    for target in ["http://127.0.0.1:5432/", "http://localhost:8080/hooks"] {
        app.by(&m.key)
            .post(
                "/v1/webhook_endpoints",
                &json!({"url": target, "enabled_events": ["*"]}),
            )
            .await
            .expect(201);
    }
}

/// A port on 127.0.0.1 that counts the connections made to it.
struct Listener(TcpListener);

impl Listener {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        Self(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().expect("local addr").port()
    }

    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.0.accept().ok()).count()
    }
}

async fn deliveries(app: &TestApp, m: &TestMerchant, endpoint: &str) -> Vec<Value> {
    app.get_ok(
        &format!("/v1/webhook_endpoints/{endpoint}/deliveries"),
        &m.key,
    )
    .await["data"]
        .as_array()
        .expect("data")
        .clone()
}

#[actix_web::test]
async fn a_delivery_to_a_private_address_is_refused_when_it_is_sent() {
    // Endpoints stored while private targets were allowed (or a name that resolved
    // elsewhere at registration): one names the address, one a name that resolves to
    // loopback now.
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let listener = Listener::start();
    let port = listener.port();
    let mut endpoints = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/hooks"),
        format!("http://localhost:{port}/hooks"),
        format!("http://[::ffff:127.0.0.1]:{port}/hooks"),
    ] {
        let id = app
            .by(&m.key)
            .post(
                "/v1/webhook_endpoints",
                &json!({"url": url, "enabled_events": ["customer.created"]}),
            )
            .await
            .expect(201)
            .id();
        endpoints.push(id);
    }
    fixtures::customer(&app, &m, "ada").await;

    let strict = WebhookSender::new(DEFAULT_REQUEST_TIMEOUT, TargetPolicy::PublicOnly)
        .expect("webhook client");
    let attempts = deliver_due(&app.state.app, &strict, app.clock.now(), 50)
        .await
        .expect("a delivery round");
    assert_eq!(attempts, 3);
    assert_eq!(listener.connections(), 0, "nothing reached the address");
    for id in &endpoints {
        let log = deliveries(&app, &m, id).await;
        assert_eq!(log.len(), 1, "{log:?}");
        // Generic: the log says the address is not allowed, not what answered there.
        assert_eq!(
            log[0]["error"], "not sent: the host's address is not allowed",
            "{id}: {log:?}"
        );
        assert_eq!(log[0]["response_status"], Value::Null);
    }
}
