//! Faults: the database goes away while requests run, and comes back. The shared
//! PostgreSQL server is never stopped: only this test's own database refuses connections
//! (`ALLOW_CONNECTIONS false`) and loses the ones it had (`pg_terminate_backend`).

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use serde_json::json;
use tenure_e2e::{Response, TestApp, server_url};
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
        let res = app.get("/v1/customers").bearer(&m.key).send().await;
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
    app.post("/v1/customers")
        .bearer(&m.key)
        .json(&json!({"external_id": "after"}))
        .send()
        .await
        .expect(201);
    // The idempotency keys used during the outage were not burnt.
    app.post("/v1/customers")
        .bearer(&m.key)
        .header("idempotency-key", "outage-0")
        .json(&json!({"external_id": "idem-0"}))
        .send()
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
                .post("/v1/customers")
                .bearer(&m.key)
                .json(&json!({"external_id": external_id}))
                .send()
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
        let customer = app
            .get(&format!("/v1/customers/{id}"))
            .bearer(&m.key)
            .send()
            .await
            .expect(200);
        assert_eq!(customer.body["external_id"], external_id.as_str());
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
