//! Webhooks: a real HTTP receiver on 127.0.0.1, the delivery worker's use case driven
//! with the test clock, signatures checked with the `standardwebhooks` crate.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Duration;
use diesel_async::AsyncConnection;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use tenure_domain::clock::Clock;
use tenure_domain::ids::MerchantId;
use tenure_domain::outbound::TargetPolicy;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::delivery::{DEFAULT_REQUEST_TIMEOUT, WebhookSender, deliver_due};
use tenure_store::StoreError;
use tenure_store::repo::events::{self, NewEvent};

use crate::fixtures;

/// One request the receiver got, and the status it answered with.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("header {name} missing"))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// The request's headers as the `standardwebhooks` crate takes them.
    fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in &self.headers {
            map.append(
                http::HeaderName::try_from(k.as_str()).expect("header name"),
                http::HeaderValue::from_str(v).expect("header value"),
            );
        }
        map
    }

    fn verifies_with(&self, secret: &str) -> bool {
        Webhook::new(secret)
            .expect("secret is whsec_ base64")
            .verify(&self.body, &self.header_map())
            .is_ok()
    }
}

#[derive(Clone)]
struct ReceiverState {
    requests: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

/// An HTTP server on 127.0.0.1 that records every request and answers with a status the
/// test can change.
pub(crate) struct Receiver {
    pub(crate) url: String,
    state: ReceiverState,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = ReceiverState {
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            state,
        }
    }

    fn answer(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// The requests answered 2xx.
    pub(crate) fn accepted(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

/// Status the receiver "answers" by hanging for 15 s before a 200.
const HANG: u16 = 999;

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let mut status = state.status.load(Ordering::SeqCst);
    if status == HANG {
        actix_web::rt::time::sleep(std::time::Duration::from_secs(15)).await;
        status = 200;
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    state.requests.lock().expect("lock").push(Received {
        headers,
        body: body.to_vec(),
        answered: status,
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("valid status"))
        .finish()
}

/// A URL on 127.0.0.1 where nothing listens.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hooks")
}

/// The delivery client `tenure worker` uses by default (10 s per request), allowed to
/// reach the receivers on 127.0.0.1.
fn sender() -> WebhookSender {
    WebhookSender::new(DEFAULT_REQUEST_TIMEOUT, TargetPolicy::AllowPrivate).expect("webhook client")
}

/// Runs delivery rounds until nothing is due now; returns the attempts made.
pub(crate) async fn deliver_all(app: &TestApp) -> usize {
    deliver_all_with(app, &sender()).await
}

async fn deliver_all_with(app: &TestApp, sender: &WebhookSender) -> usize {
    let mut total = 0;
    for _ in 0..100 {
        let n = deliver_due(&app.state.app, sender, app.clock.now(), 50)
            .await
            .expect("deliver_due");
        if n == 0 {
            return total;
        }
        total += n;
    }
    panic!("deliveries never ran out");
}

async fn endpoint(app: &TestApp, m: &TestMerchant, body: Value) -> (String, String) {
    let res = app
        .by(&m.key)
        .post("/v1/webhook_endpoints", &body)
        .await
        .expect(201);
    let secret = res.body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    (res.id(), secret)
}

/// A receiver, and an endpoint of the merchant's sending it `enabled_events`: the
/// receiver, the endpoint's id and its signing secret.
async fn receiving(
    app: &TestApp,
    m: &TestMerchant,
    enabled_events: Value,
) -> (Receiver, String, String) {
    let receiver = Receiver::start().await;
    let (id, secret) = endpoint(
        app,
        m,
        json!({"url": receiver.url, "enabled_events": enabled_events}),
    )
    .await;
    (receiver, id, secret)
}

async fn event_ids(app: &TestApp, m: &TestMerchant, query: &str) -> Vec<(String, String)> {
    let res = app
        .get_ok(&format!("/v1/events?limit=100{query}"), &m.key)
        .await;
    res["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id").to_owned(),
                e["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

async fn deliveries(app: &TestApp, m: &TestMerchant, endpoint: &str) -> Vec<Value> {
    app.get_ok(
        &format!("/v1/webhook_endpoints/{endpoint}/deliveries?limit=100"),
        &m.key,
    )
    .await["data"]
        .as_array()
        .expect("data")
        .clone()
}

#[actix_web::test]
async fn every_event_arrives_once_per_change_and_its_signature_verifies() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let all = Receiver::start().await;
    let some = Receiver::start().await;
    let (all_id, all_secret) =
        endpoint(&app, &m, json!({"url": all.url, "enabled_events": ["*"]})).await;
    let (_, some_secret) = endpoint(
        &app,
        &m,
        json!({"url": some.url, "enabled_events": ["customer.updated", "product.archived"],
            "description": "only some"}),
    )
    .await;
    // The secret is shown at creation only.
    let shown = app
        .get_ok(&format!("/v1/webhook_endpoints/{all_id}"), &m.key)
        .await;
    assert!(shown.get("secret").is_none(), "{}", shown);
    let listed = app.get_ok("/v1/webhook_endpoints", &m.key).await;
    assert!(listed["data"][0].get("secret").is_none());

    let customer = fixtures::customer(&app, &m, "ada").await;
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{customer}"),
            &json!({"name": "Ada Lovelace"}),
        )
        .await
        .expect(200);
    let product = fixtures::product(&app, &m, json!({})).await;
    app.by(&m.key)
        .patch(
            &format!("/v1/products/{product}"),
            &json!({"name": "Coffee club deluxe"}),
        )
        .await
        .expect(200);
    app.by(&m.key)
        .post_empty(&format!("/v1/products/{product}/archive"))
        .await
        .expect(200);

    let events = event_ids(&app, &m, "").await;
    let types: HashSet<&str> = events.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types,
        HashSet::from([
            "customer.created",
            "customer.updated",
            "product.created",
            "product.updated",
            "product.archived"
        ])
    );
    assert_eq!(deliver_all(&app).await, events.len() + 2);
    // Nothing is sent twice, however often the worker runs.
    assert_eq!(deliver_all(&app).await, 0);

    let got = all.requests();
    assert_eq!(got.len(), events.len(), "one request per event");
    let mut seen = HashMap::new();
    for r in &got {
        assert!(r.verifies_with(&all_secret), "signature verifies");
        assert!(!r.verifies_with(&some_secret), "and only with its secret");
        let body = r.json();
        assert_eq!(body["id"], r.header("webhook-id"));
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("webhook-signature").starts_with("v1,"));
        assert!(body["data"]["object"].is_object());
        assert!(body["created_at"].is_string());
        *seen.entry(fixtures::id(&body)).or_insert(0) += 1;
        let (_, t) = events
            .iter()
            .find(|(id, _)| id == body["id"].as_str().unwrap())
            .expect("a recorded event");
        assert_eq!(body["type"], t.as_str());
    }
    assert!(seen.values().all(|&n| n == 1));
    assert_eq!(seen.len(), events.len());
    let updated = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "customer.updated")
        .expect("customer.updated");
    assert_eq!(updated["data"]["object"]["name"], "Ada Lovelace");
    // Made with the merchant's key: the payload names it, as the API's event does.
    assert_eq!(updated["request"]["api_key"], m.key_id.as_str());
    let from_api = app
        .get_ok(
            &format!("/v1/events/{}", updated["id"].as_str().unwrap()),
            &m.key,
        )
        .await;
    assert_eq!(updated["request"], from_api["request"]);
    assert_eq!(
        updated["data"]["previous_attributes"]["name"],
        Value::Null,
        "the name was unset before"
    );
    assert!(
        updated["data"]["previous_attributes"]
            .as_object()
            .unwrap()
            .contains_key("name")
    );

    let filtered: Vec<String> = some
        .requests()
        .iter()
        .inspect(|r| assert!(r.verifies_with(&some_secret)))
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    let mut filtered = filtered;
    filtered.sort();
    assert_eq!(filtered, ["customer.updated", "product.archived"]);

    let log = deliveries(&app, &m, &all_id).await;
    assert_eq!(log.len(), events.len());
    for d in &log {
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["response_status"], 200);
        assert!(d["latency_ms"].is_u64());
        assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1);
        assert!(d["id"].as_str().unwrap().starts_with("whdel_"));
    }
}

#[actix_web::test]
async fn a_receiver_outage_loses_nothing_and_retries_keep_the_webhook_id() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (id, secret) = endpoint(
        &app,
        &m,
        json!({"url": receiver.url, "enabled_events": ["customer.created"],
            "retry_schedule_secs": [10, 20, 40, 80]}),
    )
    .await;
    let (dead_id, _) = endpoint(
        &app,
        &m,
        json!({"url": dead_url(), "enabled_events": ["customer.created"],
            "retry_schedule_secs": [10, 20, 40, 80]}),
    )
    .await;
    for ext in ["a", "b", "c"] {
        fixtures::customer(&app, &m, ext).await;
    }
    let created: HashSet<String> = event_ids(&app, &m, "&type=customer.created")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(created.len(), 3);

    // Down: 500 from one endpoint, connection refused at the other.
    assert_eq!(deliver_all(&app).await, 6);
    assert_eq!(receiver.requests().len(), 3);
    // Not due again before the first retry delay (10 s ± 10 %).
    app.clock.advance(Duration::seconds(5));
    assert_eq!(deliver_all(&app).await, 0);
    app.clock.advance(Duration::seconds(7));
    assert_eq!(deliver_all(&app).await, 6);
    assert_eq!(receiver.requests().len(), 6);
    for d in deliveries(&app, &m, &id).await {
        assert_eq!(d["status"], "pending");
        assert_eq!(d["attempts"], 2);
        assert_eq!(d["response_status"], 500);
        assert!(d["next_attempt_at"].is_string());
    }
    for d in deliveries(&app, &m, &dead_id).await {
        assert_eq!(d["status"], "pending");
        assert_eq!(d["response_status"], Value::Null);
        // Generic: not the transport's "Connection refused", which would make the log a
        // port scanner.
        assert_eq!(d["error"], "connection failed", "{d}");
    }

    // Up again: the next retries all land.
    receiver.answer(200);
    app.clock.advance(Duration::seconds(23));
    assert_eq!(deliver_all(&app).await, 6);
    assert_eq!(deliver_all(&app).await, 0);
    let accepted = receiver.accepted();
    let delivered: Vec<String> = accepted
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(delivered.len(), 3, "each event accepted exactly once");
    assert_eq!(delivered.iter().cloned().collect::<HashSet<_>>(), created);
    // Every attempt of an event carried the same webhook-id, and each verified.
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests() {
        assert!(r.verifies_with(&secret));
        assert!(created.contains(r.header("webhook-id")));
        *per_id.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 3), "{per_id:?}");
    for d in deliveries(&app, &m, &id).await {
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"], 3);
        let codes: Vec<&Value> = d["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| &a["response_status"])
            .collect();
        assert_eq!(codes, [&json!(500), &json!(500), &json!(200)]);
    }
    // The endpoint that stayed down is still retrying, not disabled yet.
    let dead = app
        .get_ok(&format!("/v1/webhook_endpoints/{dead_id}"), &m.key)
        .await;
    assert_eq!(dead["disabled"], false);
    assert!(dead["failing_since"].is_string());
}

/// A subscription change records its own events together at the end of its transaction.
/// They keep their place among the events its side effects record directly (the ticket
/// and the request of a cancellation), and each reaches only the endpoints that
/// subscribe to its type.
#[actix_web::test]
async fn a_change_s_events_keep_their_order_and_reach_the_endpoints_that_want_them() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let customer = fixtures::customer(&app, &m, "ada").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let (all, _) = endpoint(
        &app,
        &m,
        json!({"url": dead_url(), "enabled_events": ["*"]}),
    )
    .await;
    let wanted = ["subscription.paused", "cancellation_request.created"];
    let (some, _) = endpoint(
        &app,
        &m,
        json!({"url": dead_url(), "enabled_events": wanted}),
    )
    .await;
    let earlier = event_ids(&app, &m, "").await.len();

    let portal = |path: &str, body: Value| {
        app.post(&format!("/v1/portal/subscriptions/{sub}/{path}"))
            .bearer(&token)
            .json(&body)
    };
    portal("pause", json!({"start": {"type": "now"}}))
        .send()
        .await
        .expect(200);
    portal("resume", json!({})).send().await.expect(200);
    portal("cancel", json!({"reason": "unused"}))
        .send()
        .await
        .expect(200);

    let mut recorded = event_ids(&app, &m, "").await;
    recorded.reverse();
    let recorded = &recorded[earlier..];
    let types: Vec<&str> = recorded.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "subscription.paused",
            "subscription.resume_scheduled",
            "subscription.resumed",
            "subscription.cancellation_requested",
            "support_ticket.created",
            "cancellation_request.created",
        ],
        "in the order they happened"
    );
    let delivered = |list: Vec<Value>| {
        let mut pairs: Vec<(String, String)> = list
            .iter()
            .map(|d| {
                (
                    d["event_id"].as_str().expect("event_id").to_owned(),
                    d["event_type"].as_str().expect("event_type").to_owned(),
                )
            })
            .collect();
        pairs.sort();
        pairs
    };
    let mut expected_all = recorded.to_vec();
    expected_all.sort();
    assert_eq!(delivered(deliveries(&app, &m, &all).await), expected_all);
    let mut expected_some: Vec<(String, String)> = recorded
        .iter()
        .filter(|(_, t)| wanted.contains(&t.as_str()))
        .cloned()
        .collect();
    expected_some.sort();
    assert_eq!(expected_some.len(), 2);
    assert_eq!(delivered(deliveries(&app, &m, &some).await), expected_some);
}

#[actix_web::test]
async fn a_rolled_back_transaction_emits_no_event_and_no_delivery() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (receiver, _, _) = receiving(&app, &m, json!(["*"])).await;
    let merchant: MerchantId = m.id.parse().expect("merchant id");
    let new_event = || NewEvent {
        event_type: "customer.updated".to_owned(),
        resource_type: "customer",
        resource_id: "cus_01jf9zb3f4e3a8r7m2k4t5n6bc".to_owned(),
        data: json!({"id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc"}),
        previous_attributes: None,
        actor: None,
    };

    let mut conn = app.sql().await;
    let now = app.clock.now();
    let outcome = conn
        .transaction(async |conn| {
            events::record(conn, merchant, new_event(), now).await?;
            // Some later step of the use case fails: everything is rolled back.
            Err::<(), _>(StoreError::Contended)
        })
        .await;
    assert!(matches!(outcome, Err(StoreError::Contended)));
    assert_eq!(app.count("SELECT count(*) AS n FROM events").await, 0);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        0
    );
    assert_eq!(deliver_all(&app).await, 0);

    // A failed API change (a duplicate external_id) emits nothing either.
    fixtures::customer(&app, &m, "ada").await;
    app.by(&m.key)
        .post("/v1/customers", &json!({"external_id": "ada"}))
        .await
        .expect_problem(409, "external_id_taken");
    assert_eq!(app.count("SELECT count(*) AS n FROM events").await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        1
    );

    // The same write, committed, is delivered.
    conn.transaction(async |conn| {
        events::record(conn, merchant, new_event(), now).await?;
        Ok::<(), StoreError>(())
    })
    .await
    .expect("commit");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        2
    );
    assert_eq!(deliver_all(&app).await, 2);
    assert_eq!(receiver.accepted().len(), 2);
}

#[actix_web::test]
async fn during_a_rotation_both_secrets_sign_until_the_overlap_ends() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (receiver, id, old) = receiving(&app, &m, json!(["*"])).await;
    let rotated = app
        .by(&m.key)
        .post(
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            &json!({"overlap_secs": 3600}),
        )
        .await
        .expect(200);
    let new = rotated.body["secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    assert!(rotated.body["secret_overlap_ends_at"].is_string());
    let shown = app
        .get_ok(&format!("/v1/webhook_endpoints/{id}"), &m.key)
        .await;
    assert!(shown.get("secret").is_none());

    fixtures::customer(&app, &m, "ada").await;
    deliver_all(&app).await;
    let first = receiver.requests().pop().expect("a request");
    let signatures: Vec<&str> = first.header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "both signatures during the overlap");
    assert!(first.verifies_with(&new));
    assert!(first.verifies_with(&old));
    // Each signature on its own verifies with exactly one of the secrets.
    let alone = |sig: &str| {
        let mut r = first.clone();
        for (k, v) in &mut r.headers {
            if k == "webhook-signature" {
                *v = sig.to_owned();
            }
        }
        (r.verifies_with(&new), r.verifies_with(&old))
    };
    assert_eq!(alone(signatures[0]), (true, false));
    assert_eq!(alone(signatures[1]), (false, true));

    // After the overlap only the new secret signs.
    app.clock.advance(Duration::seconds(3601));
    fixtures::customer(&app, &m, "bob").await;
    deliver_all(&app).await;
    let second = receiver.requests().pop().expect("a request");
    assert_eq!(second.header("webhook-signature").split(' ').count(), 1);
    assert!(second.verifies_with(&new));
    assert!(!second.verifies_with(&old));
    let shown = app
        .get_ok(&format!("/v1/webhook_endpoints/{id}"), &m.key)
        .await;
    assert_eq!(shown["secret_overlap_ends_at"], Value::Null);

    // overlap_secs 0 retires the old secret at once; the body is optional.
    let again = app
        .by(&m.key)
        .post_empty(&format!("/v1/webhook_endpoints/{id}/rotate_secret"))
        .await
        .expect(200);
    assert!(
        again.body["secret_overlap_ends_at"].is_string(),
        "default 24 h"
    );
    app.by(&m.key)
        .post(
            &format!("/v1/webhook_endpoints/{id}/rotate_secret"),
            &json!({"overlap_secs": 999_999_999}),
        )
        .await
        .expect_problem(422, "validation_failed");
}

#[actix_web::test]
async fn sustained_failure_disables_the_endpoint_and_says_so() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (watcher, watcher_id, watcher_secret) =
        receiving(&app, &m, json!(["webhook_endpoint.disabled"])).await;
    let (dead_id, _) = endpoint(
        &app,
        &m,
        json!({"url": dead_url(), "enabled_events": ["*"], "retry_schedule_secs": [1, 2]}),
    )
    .await;
    fixtures::customer(&app, &m, "ada").await;
    fixtures::customer(&app, &m, "bob").await;

    assert_eq!(deliver_all(&app).await, 2);
    app.clock.advance(Duration::milliseconds(1200));
    assert_eq!(deliver_all(&app).await, 2);
    app.clock.advance(Duration::milliseconds(2300));
    // The third attempt exhausts the schedule: the first delivery to fail for good
    // disables the endpoint, which cancels the other one; then the watcher gets
    // webhook_endpoint.disabled.
    assert_eq!(deliver_all(&app).await, 3);

    let dead = app
        .get_ok(&format!("/v1/webhook_endpoints/{dead_id}"), &m.key)
        .await;
    assert_eq!(dead["disabled"], true);
    assert_eq!(dead["disabled_reason"], "failing");
    let statuses: Vec<String> = deliveries(&app, &m, &dead_id)
        .await
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert!(statuses.contains(&"failed".to_owned()), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s == "failed" || s == "canceled"),
        "{statuses:?}"
    );
    let failed = deliveries(&app, &m, &dead_id)
        .await
        .into_iter()
        .find(|d| d["status"] == "failed")
        .unwrap();
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["attempt_log"].as_array().unwrap().len(), 3);

    let disabled = event_ids(&app, &m, "&type=webhook_endpoint.disabled").await;
    assert_eq!(disabled.len(), 1, "exactly one webhook_endpoint.disabled");
    let got = watcher.requests();
    assert_eq!(got.len(), 1);
    assert!(got[0].verifies_with(&watcher_secret));
    let body = got[0].json();
    assert_eq!(body["type"], "webhook_endpoint.disabled");
    assert_eq!(body["id"], disabled[0].0.as_str());
    assert_eq!(body["data"]["object"]["id"], dead_id.as_str());
    assert_eq!(body["data"]["object"]["disabled_reason"], "failing");
    assert!(body["data"]["object"].get("secret").is_none());
    assert_eq!(body["data"]["previous_attributes"]["disabled"], false);

    // A disabled endpoint gets no new deliveries…
    fixtures::customer(&app, &m, "cy").await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
            .await,
        0
    );
    app.by(&m.key)
        .post(
            &format!("/v1/webhook_endpoints/{dead_id}/redeliver"),
            &json!({"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
        )
        .await
        .expect_problem(409, "endpoint_disabled");
    // …until it is enabled again, healthy, and asked for what it missed.
    let enabled = app
        .by(&m.key)
        .patch(
            &format!("/v1/webhook_endpoints/{dead_id}"),
            &json!({"disabled": false, "url": watcher.url}),
        )
        .await
        .expect(200);
    assert_eq!(enabled.body["disabled"], false);
    assert_eq!(enabled.body["failing_since"], Value::Null);
    let queued = app
        .by(&m.key)
        .post(
            &format!("/v1/webhook_endpoints/{dead_id}/redeliver"),
            &json!({"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
        )
        .await
        .expect(202);
    // 3 customer.created and the disabled event itself.
    assert_eq!(queued.body["deliveries_created"], 4);
    assert_eq!(deliver_all(&app).await, 4);
    assert_eq!(watcher.requests().len(), 5);
    let _ = watcher_id;
}

#[actix_web::test]
async fn endpoints_are_validated_isolated_managed_and_events_redelivered() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let other = app.merchant("B").await;
    let receiver = Receiver::start().await;
    for (body, field) in [
        (
            json!({"url": "ftp://example.com/x", "enabled_events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "enabled_events": ["*"]}), "url"),
        (
            json!({"url": "https://user:pw@example.com/", "enabled_events": ["*"]}),
            "url",
        ),
        (
            json!({"url": format!("https://example.com/{}", "x".repeat(2100)), "enabled_events": ["*"]}),
            "url",
        ),
        (
            json!({"url": "https://example.com/", "enabled_events": []}),
            "enabled_events",
        ),
        (
            json!({"url": "https://example.com/", "enabled_events": ["customer.deleted"]}),
            "enabled_events[0]",
        ),
        (
            json!({"url": "https://example.com/", "enabled_events": ["*"], "retry_schedule_secs": [0]}),
            "retry_schedule_secs[0]",
        ),
        (
            json!({"url": "https://example.com/", "enabled_events": ["*"], "retry_schedule_secs": [-1]}),
            "retry_schedule_secs[0]",
        ),
    ] {
        let res = app
            .by(&m.key)
            .post("/v1/webhook_endpoints", &body)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(res.body["errors"][0]["field"], field, "{body}");
    }
    let (id, secret) = endpoint(
        &app,
        &m,
        json!({"url": receiver.url, "enabled_events": ["customer.created"]}),
    )
    .await;
    // Another merchant sees nothing of it.
    for path in [
        format!("/v1/webhook_endpoints/{id}"),
        format!("/v1/webhook_endpoints/{id}/deliveries"),
    ] {
        app.by(&other.key)
            .get(&path)
            .await
            .expect_problem(404, "resource_missing");
    }
    app.by(&other.key)
        .delete(&format!("/v1/webhook_endpoints/{id}"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .get("/v1/webhook_endpoints/whep_nonsense")
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .get(&format!(
            "/v1/webhook_endpoints/{id}/deliveries?status=lost"
        ))
        .await
        .expect_problem(422, "validation_failed");

    let patched = app
        .by(&m.key)
        .patch(
            &format!("/v1/webhook_endpoints/{id}"),
            &json!({"description": "CRM",
                "enabled_events": ["customer.created", "customer.updated"]}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["description"], "CRM");
    assert_eq!(
        patched.body["enabled_events"],
        json!(["customer.created", "customer.updated"])
    );
    app.by(&m.key)
        .patch(
            &format!("/v1/webhook_endpoints/{id}"),
            &json!({"url": "javascript:alert(1)"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    // Redeliver one event, already delivered: same webhook-id, a new delivery.
    fixtures::customer(&app, &m, "ada").await;
    assert_eq!(deliver_all(&app).await, 1);
    let (event, _) = event_ids(&app, &m, "").await.remove(0);
    let res = app
        .by(&m.key)
        .post_empty(&format!("/v1/events/{event}/redeliver"))
        .await
        .expect(202);
    assert_eq!(res.body["deliveries_created"], 1);
    let res = app
        .by(&m.key)
        .post(
            &format!("/v1/events/{event}/redeliver"),
            &json!({"endpoint_id": id}),
        )
        .await
        .expect(202);
    assert_eq!(res.body["deliveries_created"], 1);
    assert_eq!(deliver_all(&app).await, 2);
    let got = receiver.requests();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.header("webhook-id") == event));
    assert!(got.iter().all(|r| r.verifies_with(&secret)));
    app.by(&other.key)
        .post_empty(&format!("/v1/events/{event}/redeliver"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .post(
            &format!("/v1/events/{event}/redeliver"),
            &json!({"endpoint_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    app.by(&m.key)
        .post(
            &format!("/v1/webhook_endpoints/{id}/redeliver"),
            &json!({"from": "2030-01-01T00:00:00Z", "to": "2020-01-01T00:00:00Z"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    // Two workers at once never send the same delivery twice.
    for i in 0..12 {
        fixtures::customer(&app, &m, &format!("c{i}")).await;
    }
    let now = app.clock.now();
    let sender = sender();
    let (a, b) = futures_util::future::join(
        deliver_due(&app.state.app, &sender, now, 8),
        deliver_due(&app.state.app, &sender, now, 8),
    )
    .await;
    let sent = a.expect("worker a") + b.expect("worker b");
    assert_eq!(sent + deliver_all(&app).await, 12);
    let ids: Vec<String> = receiver
        .requests()
        .iter()
        .skip(3)
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), 12);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 12);

    // At most 16 endpoints per merchant.
    for _ in 0..15 {
        endpoint(
            &app,
            &m,
            json!({"url": dead_url(), "enabled_events": ["plan.created"]}),
        )
        .await;
    }
    app.by(&m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": dead_url(), "enabled_events": ["plan.created"]}),
        )
        .await
        .expect_problem(409, "too_many_endpoints");

    let deleted = app
        .by(&m.key)
        .delete(&format!("/v1/webhook_endpoints/{id}"))
        .await
        .expect(200);
    assert_eq!(deleted.body["deleted"], true);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM webhook_deliveries")
            .await,
        0
    );
    app.by(&m.key)
        .get(&format!("/v1/webhook_endpoints/{id}"))
        .await
        .expect_problem(404, "resource_missing");
}

#[actix_web::test]
async fn the_background_loop_delivers_and_the_delivery_log_pages() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (receiver, id, _) = receiving(&app, &m, json!(["customer.created"])).await;
    // The same loop `tenure serve` and `tenure worker` run.
    let worker = actix_web::rt::spawn(tenure_engine::loops::webhook_loop(
        app.state.app.clone(),
        sender(),
        std::time::Duration::from_millis(20),
    ));
    for i in 0..5 {
        fixtures::customer(&app, &m, &format!("c{i}")).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Delivered means answered and recorded, which comes after the receiver saw it.
    let delivered = "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered'";
    while app.count(delivered).await < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop delivered {} of 5",
            receiver.requests().len()
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.abort();
    assert_eq!(receiver.requests().len(), 5);

    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/webhook_endpoints/{id}/deliveries?limit=2&starting_after={c}"),
            None => format!("/v1/webhook_endpoints/{id}/deliveries?limit=2"),
        };
        let page = app.get_ok(&path, &m.key).await;
        pages += 1;
        for d in page["data"].as_array().unwrap() {
            assert_eq!(d["status"], "delivered");
            assert!(seen.insert(fixtures::id(d)));
        }
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page["has_more"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }
    assert_eq!((pages, seen.len()), (3, 5));
    app.by(&m.key)
        .get(&format!(
            "/v1/webhook_endpoints/{id}/deliveries?starting_after=cus_01jf9zb3f4e3a8r7m2k4t5n6bc"
        ))
        .await
        .expect_problem(422, "validation_failed");

    // PATCH honours If-Match.
    let current = app
        .by(&m.key)
        .get(&format!("/v1/webhook_endpoints/{id}"))
        .await
        .expect(200);
    let etag = current.header("etag").expect("etag").to_owned();
    app.patch(&format!("/v1/webhook_endpoints/{id}"))
        .bearer(&m.key)
        .header("if-match", "\"stale\"")
        .json(&json!({"description": "x"}))
        .send()
        .await
        .expect_problem(412, "precondition_failed");
    app.patch(&format!("/v1/webhook_endpoints/{id}"))
        .bearer(&m.key)
        .header("if-match", &etag)
        .json(&json!({"description": "x"}))
        .send()
        .await
        .expect(200);
}

#[actix_web::test]
async fn a_crashed_worker_s_delivery_is_sent_after_its_lease_and_slow_receivers_time_out() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let receiver = Receiver::start().await;
    let (id, secret) = endpoint(
        &app,
        &m,
        json!({"url": receiver.url, "enabled_events": ["customer.created"]}),
    )
    .await;
    fixtures::customer(&app, &m, "ada").await;

    // A worker claims the delivery and dies before sending it.
    let mut conn = app.sql().await;
    let now = app.clock.now();
    let claimed =
        tenure_store::repo::webhooks::claim_due(&mut conn, now, now + Duration::seconds(60), 10)
            .await
            .expect("claim");
    assert_eq!(claimed.len(), 1);
    // While its lease runs, no other worker takes it…
    assert_eq!(deliver_all(&app).await, 0);
    // …and after it, another one does: at least once, with the same webhook-id.
    app.clock.advance(Duration::seconds(61));
    assert_eq!(deliver_all(&app).await, 1);
    let got = receiver.accepted();
    assert_eq!(got.len(), 1);
    assert!(got[0].verifies_with(&secret));
    assert_eq!(
        got[0].header("webhook-id"),
        tenure_domain::ids::EventId::from_uuid(claimed[0].event_id).to_string()
    );
    let log = deliveries(&app, &m, &id).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 2, "the lost attempt counts");

    // A receiver that does not answer within the request timeout (configured to 1 s
    // here; 10 s by default): a failed attempt, retried later.
    receiver.answer(HANG);
    fixtures::customer(&app, &m, "bob").await;
    let timeout = std::time::Duration::from_secs(1);
    let impatient =
        WebhookSender::new(timeout, TargetPolicy::AllowPrivate).expect("webhook client");
    let started = std::time::Instant::now();
    assert_eq!(deliver_all_with(&app, &impatient).await, 1);
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < timeout + std::time::Duration::from_secs(3),
        "{waited:?}"
    );
    let slow = deliveries(&app, &m, &id)
        .await
        .into_iter()
        .find(|d| d["status"] == "pending")
        .expect("the slow delivery is pending a retry");
    assert_eq!(slow["response_status"], Value::Null);
    assert!(
        slow["error"].as_str().unwrap().starts_with("timed out"),
        "{slow}"
    );
    assert!(slow["latency_ms"].as_u64().unwrap() >= 1_000);
}

/// The events list refuses a type it does not know, as endpoints' `enabled_events` do:
/// a misspelt filter must not read as "no such events".
#[actix_web::test]
async fn the_events_list_refuses_unknown_types() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    fixtures::customer(&app, &m, "c").await;
    let res = app
        .by(&m.key)
        .get("/v1/events?type=customer.create")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "type");
    let listed = app.get_ok("/v1/events?type=customer.created", &m.key).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_delivery_answered_2xx_reads_delivered_while_a_slower_one_is_in_flight() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (fast, fast_id, _) = receiving(&app, &m, json!(["customer.created"])).await;
    let (slow, _, _) = receiving(&app, &m, json!(["customer.created"])).await;
    slow.answer(HANG);
    fixtures::customer(&app, &m, "ada").await;

    // One round sends both; the slow receiver keeps its request for 15 s.
    let round = actix_web::rt::spawn({
        let state = app.state.app.clone();
        let now = app.clock.now();
        async move { deliver_due(&state, &sender(), now, 50).await }
    });
    let waited = std::time::Instant::now();
    while fast.accepted().is_empty() {
        assert!(
            waited.elapsed().as_secs() < 5,
            "the fast receiver got nothing"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Its answer is on record at once, not when the round's slowest request ends.
    let answered = std::time::Instant::now();
    loop {
        let log = deliveries(&app, &m, &fast_id).await;
        if log[0]["status"] == "delivered" {
            assert_eq!(log[0]["response_status"], 200);
            break;
        }
        assert!(
            answered.elapsed().as_secs() < 3,
            "still {} after the receiver answered 200",
            log[0]["status"]
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        slow.accepted().is_empty(),
        "the slow receiver is still answering"
    );
    round.abort();
}
