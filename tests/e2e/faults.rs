//! Faults: the database goes away while requests run, and comes back. The shared
//! PostgreSQL server is never stopped: most tests cut only their own database (it refuses
//! connections, `ALLOW_CONNECTIONS false`, and loses the ones it had,
//! `pg_terminate_backend`); the crash test runs a server of its own and crashes that.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use serde_json::json;
use tenure_api::middleware::rate_limit::RateLimitConfig;
use tenure_e2e::{PrivateServer, RequestBuilder, Response, TestApp, TestDb, server_url};
use tenure_store::migrate::quote_identifier;

use crate::fixtures;

/// Longest acceptable answer while the database is down: the pool's wait and create
/// timeouts (5 s each) with some slack, so "unavailable" never becomes a hang.
const MAX_WAIT: Duration = Duration::from_secs(12);

async fn admin(sql: &str) {
    let mut conn = AsyncPgConnection::establish(&server_url())
        .await
        .expect("admin connection");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn cut(db: &str) {
    let quoted = quote_identifier(db);
    admin(&format!("ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")).await;
    let literal = db.replace('\'', "''");
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{literal}' AND pid <> pg_backend_pid()"
    ))
    .await;
}

async fn restore(db: &str) {
    admin(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        quote_identifier(db)
    ))
    .await;
}

#[track_caller]
fn assert_unavailable(what: &str, res: &Response, took: Duration) {
    assert_eq!(res.status.as_u16(), 503, "{what}: {}", res.body);
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    assert_eq!(res.body["code"], "service_unavailable", "{what}");
    assert!(res.header("retry-after").is_some(), "{what}: Retry-After");
    assert!(took < MAX_WAIT, "{what}: took {took:?}");
}

#[actix_web::test]
async fn a_lost_database_is_503_and_the_service_recovers_by_itself() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    // Warm the pool so that the outage hits live pooled connections, not only new ones.
    let warm = (0..8).map(|_| app.get("/v1/customers").bearer(&m.key).send());
    for res in join_all(warm).await {
        assert_eq!(res.status.as_u16(), 200);
    }

    cut(&app.db.name).await;
    let customer_path = format!("/v1/customers/{customer}");
    for round in 0..3 {
        let started = Instant::now();
        let requests = vec![
            app.get("/v1/customers").bearer(&m.key),
            app.get(&customer_path).bearer(&m.key),
            app.post("/v1/customers")
                .bearer(&m.key)
                .json(&json!({"external_id": format!("during-{round}")})),
            app.post("/v1/customers")
                .bearer(&m.key)
                .header("idempotency-key", &format!("outage-{round}"))
                .json(&json!({"external_id": format!("idem-{round}")})),
            app.patch(&customer_path)
                .bearer(&m.key)
                .json(&json!({"name": "x"})),
            app.get("/v1/portal/me").bearer(&token),
            app.get("/readyz"),
        ];
        let responses = join_all(requests.into_iter().map(|r| r.send())).await;
        let took = started.elapsed();
        for res in &responses {
            assert_unavailable(&format!("round {round}"), res, took);
        }
    }
    // Liveness does not depend on the database.
    app.get("/healthz").send().await.expect(200);

    restore(&app.db.name).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = app.by(&m.key).get("/v1/customers").await;
        if res.status.as_u16() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: {} {}",
            res.status,
            res.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.get("/readyz").send().await.expect(200);
    app.by(&m.key)
        .post("/v1/customers", &json!({"external_id": "after"}))
        .await
        .expect(201);
    // The idempotency keys used during the outage were not burnt.
    app.by(&m.key)
        .idempotency_key("outage-0")
        .post("/v1/customers", &json!({"external_id": "idem-0"}))
        .await
        .expect(201);
}

/// A steady stream of writes runs through an outage: every write answered 201 before,
/// during or after it is in the database afterwards (acknowledged means durable), every
/// other answer is a 503 the client may retry, and the stream recovers by itself.
#[actix_web::test]
async fn writes_acknowledged_around_an_outage_are_all_kept() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let restored = std::cell::Cell::new(false);
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut refused = 0;
    let writes = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        // Runs until 20 writes in a row succeed after the database is back.
        let mut healthy_after = 0;
        let mut i = 0;
        while healthy_after < 20 {
            assert!(Instant::now() < deadline, "no recovery after the outage");
            let external_id = format!("w-{i}");
            let started = Instant::now();
            let res = app
                .by(&m.key)
                .post("/v1/customers", &json!({"external_id": external_id}))
                .await;
            if res.status.as_u16() == 201 {
                acknowledged.push((external_id, res.id()));
                if restored.get() {
                    healthy_after += 1;
                }
            } else {
                assert_unavailable(&format!("write {i}"), &res, started.elapsed());
                refused += 1;
                healthy_after = 0;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cut(&app.db.name).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        restore(&app.db.name).await;
        restored.set(true);
    };
    tokio::join!(writes, outage);
    assert!(refused > 0, "the outage fell inside the stream");
    assert!(
        acknowledged.len() > 20,
        "writes succeeded before the outage too"
    );
    for (external_id, id) in &acknowledged {
        let customer = app.get_ok(&format!("/v1/customers/{id}"), &m.key).await;
        assert_eq!(customer["external_id"], external_id.as_str());
    }
    // A refused write may still have committed just before its connection was cut (the
    // client then retries with an Idempotency-Key); nothing acknowledged is missing.
    let stored = app
        .count("SELECT count(*) AS n FROM customers WHERE external_id LIKE 'w-%'")
        .await;
    assert!(
        stored >= i64::try_from(acknowledged.len()).unwrap(),
        "{stored} stored, {} acknowledged",
        acknowledged.len()
    );
}

/// What one client of the crash test had acknowledged: customers (external id, id),
/// subscriptions, and the subscriptions whose pause was acknowledged.
#[derive(Default)]
struct Acknowledged {
    customers: Vec<(String, String)>,
    subscriptions: Vec<String>,
    paused: Vec<String>,
    /// Rounds acknowledged before the crash.
    before_crash: usize,
    refused: usize,
}

/// Sends one write of the crash test: the acknowledgement (`ok`), or `None` for a 503
/// the client may retry. Anything else fails the test.
async fn acknowledged(what: &str, request: RequestBuilder<'_>, ok: u16) -> Option<Response> {
    let started = Instant::now();
    let res = request.send().await;
    if res.status.as_u16() == ok {
        return Some(res);
    }
    assert_unavailable(what, &res, started.elapsed());
    None
}

/// A real PostgreSQL server crashes (`pg_ctl stop -m immediate`: no checkpoint, every
/// connection dropped) and restarts with crash recovery while six clients create
/// customers, subscribe them and pause the subscriptions. Meanwhile every answer is an
/// acknowledgement or a 503 with Retry-After; the service recovers by itself; and every
/// acknowledged write, with the event it recorded, survived the crash.
#[actix_web::test]
async fn acknowledged_writes_survive_a_postgresql_crash_and_restart_under_load() {
    const CLIENTS: usize = 6;
    let server = Arc::new(PrivateServer::start());
    let app = TestApp::on(
        TestDb::on_private(&server).await,
        RateLimitConfig::disabled(),
    )
    .await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1500).await;

    let (crashed, restarted) = (Cell::new(false), Cell::new(false));
    let rounds_before_crash = Cell::new(0);
    let client = |n: usize| {
        let (app, m, plan) = (&app, &m, &plan);
        let (crashed, restarted, rounds_before_crash) =
            (&crashed, &restarted, &rounds_before_crash);
        async move {
            let mut acked = Acknowledged::default();
            let deadline = Instant::now() + Duration::from_secs(90);
            // Until ten rounds in a row are acknowledged after the restart.
            let mut healthy_after = 0;
            let mut round = 0;
            while healthy_after < 10 {
                assert!(Instant::now() < deadline, "client {n}: no recovery");
                round += 1;
                let what = format!("client {n} round {round}");
                let external_id = format!("crash-{n}-{round}");
                let acknowledged_round = async {
                    let customer = app.post("/v1/customers").bearer(&m.key);
                    let customer = customer.json(&json!({"external_id": external_id}));
                    let customer = acknowledged(&what, customer, 201).await?.id();
                    acked
                        .customers
                        .push((external_id.clone(), customer.clone()));
                    let subscribe = app.post("/v1/subscriptions").bearer(&m.key);
                    let subscribe =
                        subscribe.json(&json!({"customer_id": customer, "plan_id": plan}));
                    let subscription = acknowledged(&what, subscribe, 201).await?.id();
                    acked.subscriptions.push(subscription.clone());
                    let pause = app.post(&format!("/v1/subscriptions/{subscription}/pause"));
                    let pause = pause
                        .bearer(&m.key)
                        .json(&json!({"start": {"type": "now"}}));
                    acknowledged(&what, pause, 200).await?;
                    acked.paused.push(subscription);
                    Some(())
                };
                if acknowledged_round.await.is_some() {
                    if restarted.get() {
                        healthy_after += 1;
                    } else if !crashed.get() {
                        acked.before_crash += 1;
                        rounds_before_crash.set(rounds_before_crash.get() + 1);
                    }
                } else {
                    acked.refused += 1;
                    healthy_after = 0;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            acked
        }
    };
    let outage = async {
        // Crash once the load is well under way, whatever the machine's speed.
        while rounds_before_crash.get() < CLIENTS * 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        crashed.set(true);
        let s = Arc::clone(&server);
        tokio::task::spawn_blocking(move || s.crash())
            .await
            .unwrap();
        // Down for a while: requests meanwhile must be answered, with 503.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = Arc::clone(&server);
        tokio::task::spawn_blocking(move || s.start_again())
            .await
            .unwrap();
        restarted.set(true);
    };
    let (clients, ()) = tokio::join!(join_all((0..CLIENTS).map(client)), outage);

    let refused: usize = clients.iter().map(|c| c.refused).sum();
    assert!(refused > 0, "the crash fell inside the load");
    let customers: Vec<_> = clients.iter().flat_map(|c| &c.customers).collect();
    let subscriptions: Vec<_> = clients.iter().flat_map(|c| &c.subscriptions).collect();
    let paused: Vec<_> = clients.iter().flat_map(|c| &c.paused).collect();
    let before_crash: usize = clients.iter().map(|c| c.before_crash).sum();
    assert!(
        before_crash >= CLIENTS * 3,
        "{before_crash} rounds acknowledged before the crash"
    );
    for (external_id, id) in &customers {
        let customer = app.get_ok(&format!("/v1/customers/{id}"), &m.key).await;
        assert_eq!(customer["external_id"], external_id.as_str());
    }
    for id in &subscriptions {
        let subscription = app.get_ok(&format!("/v1/subscriptions/{id}"), &m.key).await;
        let status = subscription["status"].as_str().unwrap_or_default();
        if paused.contains(id) {
            assert_eq!(status, "paused", "{id}");
        } else {
            // A pause answered 503 may still have committed just before the crash.
            assert!(matches!(status, "active" | "paused"), "{id}: {status}");
        }
    }
    // Each acknowledged pause kept the event recorded in its transaction.
    let listed = paused
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    let events = app
        .count(&format!(
            "SELECT count(*) AS n FROM events \
             WHERE event_type = 'subscription.paused' AND resource_id IN ({listed})"
        ))
        .await;
    assert_eq!(events, i64::try_from(paused.len()).unwrap());
}
