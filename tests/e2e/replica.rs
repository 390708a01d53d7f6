//! Reads from a PostgreSQL streaming replica (docs/scaling.md, "A read replica"), with a
//! real replica: a cluster of the test's own, streamed by `pg_basebackup -R` to a second
//! cluster, and `tenure serve` processes given both. Pausing the replica's replay makes
//! what it serves visibly stale, so each answer shows which server it came from.

use std::time::{Duration, Instant};

use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use tenure_api::middleware::rate_limit::RateLimitConfig;
use tenure_e2e::{PrivateServer, TestApp, TestDb};

use crate::fixtures::{self, customer_uuid};
use crate::platform::serve;

/// One answer of a served process.
struct Answer {
    status: u16,
    token: Option<String>,
    body: Value,
}

/// A served process's API, over HTTP.
struct Api {
    addr: String,
    client: reqwest::Client,
}

impl Api {
    fn at(addr: String) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            addr,
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        consistency: Option<&str>,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(bearer);
        if let Some(token) = consistency {
            request = request.header("Tenure-Consistency-Token", token);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let res = request.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let token = res
            .headers()
            .get("tenure-consistency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.bytes().await.expect("a body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            token,
            body,
        }
    }

    async fn get(&self, path: &str, bearer: &str, consistency: Option<&str>) -> Value {
        let answer = self
            .send(reqwest::Method::GET, path, bearer, consistency, None)
            .await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        answer.body
    }

    async fn post(&self, path: &str, bearer: &str, body: &Value) -> Answer {
        let answer = self
            .send(reqwest::Method::POST, path, bearer, None, Some(body))
            .await;
        assert_eq!(answer.status, 201, "POST {path}: {}", answer.body);
        answer
    }
}

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

#[derive(diesel::QueryableByName)]
struct Position {
    #[diesel(sql_type = Text)]
    lsn: String,
}

#[derive(diesel::QueryableByName)]
struct Holds {
    #[diesel(sql_type = Bool)]
    holds: bool,
}

/// The primary's WAL position now.
async fn written(primary: &mut AsyncPgConnection) -> String {
    diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
        .get_result::<Position>(primary)
        .await
        .expect("the primary's position")
        .lsn
}

/// Waits until the replica has replayed `position`; how long that took.
async fn replayed(replica: &mut AsyncPgConnection, position: &str) -> Duration {
    let started = Instant::now();
    let query = format!("SELECT pg_last_wal_replay_lsn() >= '{position}'::pg_lsn AS holds");
    while started.elapsed() < Duration::from_secs(30) {
        let holds: Holds = diesel::sql_query(&query)
            .get_result(replica)
            .await
            .expect("the replica's position");
        if holds.holds {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the replica did not replay {position} within 30 s");
}

async fn run(conn: &mut AsyncPgConnection, statement: &str) {
    diesel::sql_query(statement)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// (a) a read is served by the replica; (b) a writer reads its write, in the process that
/// served it and, with the consistency token, in another; a replica too far behind serves
/// nothing; (c) with the replica stopped, every read is still answered.
#[actix_web::test]
async fn reads_come_from_the_replica_and_a_writer_reads_its_own_writes() {
    // Declared first, dropped last: both clusters are stopped and their directories
    // removed after the servers, however the test ends.
    let primary = PrivateServer::start();
    let db = TestDb::on_private(&primary).await;
    let app = TestApp::on(db, RateLimitConfig::disabled()).await;
    let m = app.merchant("A").await;
    let catalog = fixtures::catalog(&app, &m, json!({})).await;
    let x = fixtures::customer(&app, &m, "x").await;
    let y = fixtures::customer(&app, &m, "y").await;
    let x_token = fixtures::session(&app, &m, &x).await;
    let y_token = fixtures::session(&app, &m, &y).await;

    let replica = PrivateServer::replica_of(&primary);
    let replica_url = replica.url("tenure");
    let mut on_primary = connect(&app.db.url).await;
    let mut on_replica = connect(&replica_url).await;
    let lenient = [
        "--replica-url",
        &replica_url,
        "--replica-max-lag-ms",
        "600000",
    ];
    let (_one, one) = serve(&app.db.url, &lenient, 6).await;
    let (_two, two) = serve(&app.db.url, &lenient, 6).await;
    let strict = [
        "--replica-url",
        &replica_url,
        "--replica-max-lag-ms",
        "1000",
    ];
    let (_three, three) = serve(&app.db.url, &strict, 6).await;
    let (one, two, three) = (Api::at(one), Api::at(two), Api::at(three));

    // Streaming: what the primary committed reaches the replica within milliseconds.
    let lag = replayed(&mut on_replica, &written(&mut on_primary).await).await;
    eprintln!("replica caught up with the set-up in {lag:?}");
    // A process serves from the replica only once it has seen it hold a position the
    // primary had at one of its looks (a look per 100 ms, by the request that finds the
    // last one too old): a few reads apart, each process has.
    for _ in 0..3 {
        for api in [&one, &two, &three] {
            api.get("/v1/portal/me", &y_token, None).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // (a) Replay paused, a change made on the primary is not on the replica: a reader
    // who wrote nothing is served the replica's older value.
    run(&mut on_replica, "SELECT pg_wal_replay_pause()").await;
    run(
        &mut on_primary,
        &format!(
            "UPDATE customers SET email = 'moved@example.com' WHERE id = '{}'",
            customer_uuid(&y)
        ),
    )
    .await;
    let me = one.get("/v1/portal/me", &y_token, None).await;
    assert_eq!(
        me["email"], "y@example.com",
        "the portal read from the replica"
    );
    let seen = one.get(&format!("/v1/customers/{y}"), &m.key, None).await;
    assert_eq!(
        seen["email"], "y@example.com",
        "the merchant read from the replica"
    );
    let listed = two.get("/v1/customers?limit=100", &m.key, None).await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["email"] != "moved@example.com"),
        "{listed}"
    );
    // Behind by more than `--replica-max-lag-ms`, the replica serves nothing.
    let first = three.get("/v1/portal/me", &y_token, None).await;
    assert_eq!(first["email"], "y@example.com", "just behind: the replica");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = three.get("/v1/portal/me", &y_token, None).await;
    assert_eq!(
        later["email"], "moved@example.com",
        "too far behind: the primary"
    );
    // A process started while the replica is behind has never seen how far: it counts
    // the replica as unusable, not as current, however lenient its maximum lag. (Looking
    // at every read, it is also the one that shows below that a token covers the write's
    // audit row.)
    let eager = [
        "--replica-url",
        &replica_url,
        "--replica-max-lag-ms",
        "600000",
        "--replica-check-interval-ms",
        "1",
    ];
    let (_four, four) = serve(&app.db.url, &eager, 6).await;
    let four = Api::at(four);
    for _ in 0..3 {
        let fresh = four.get("/v1/portal/me", &y_token, None).await;
        assert_eq!(
            fresh["email"], "moved@example.com",
            "an unmeasured replica serves nothing"
        );
    }

    // (b) Read-your-writes, replay still paused. A customer subscribes through one
    // process and reads through it: the write is remembered for them, so the primary
    // answers.
    let subscribed = one
        .post(
            "/v1/portal/subscriptions",
            &x_token,
            &json!({"plan_id": catalog.trial}),
        )
        .await;
    let consistency = subscribed
        .token
        .expect("a write answers a consistency token");
    let theirs = |list: &Value| list["data"].as_array().map_or(0, Vec::len);
    let mine = one.get("/v1/portal/subscriptions", &x_token, None).await;
    assert_eq!(theirs(&mine), 1, "the writer reads its write: {mine}");
    // Another process knows nothing of it: without the token, the stale replica answers;
    // with it, the primary.
    let elsewhere = two.get("/v1/portal/subscriptions", &x_token, None).await;
    assert_eq!(theirs(&elsewhere), 0, "{elsewhere}");
    let with_token = two
        .get("/v1/portal/subscriptions", &x_token, Some(&consistency))
        .await;
    assert_eq!(theirs(&with_token), 1, "{with_token}");
    // Only the writer waits: another customer still reads from the replica.
    let other = one.get("/v1/portal/me", &y_token, None).await;
    assert_eq!(other["email"], "y@example.com");
    // A merchant's write is remembered for its tenant, whichever key reads next.
    let created = one
        .post(
            "/v1/customers",
            &m.key,
            &json!({"external_id": "z", "email": "z@example.com"}),
        )
        .await;
    let z = created.body["id"].as_str().expect("an id").to_owned();
    let token = created.token.expect("a consistency token");
    one.get(&format!("/v1/customers/{z}"), &m.key, None).await;
    let missing = two
        .send(
            reqwest::Method::GET,
            &format!("/v1/customers/{z}"),
            &m.key,
            None,
            None,
        )
        .await;
    assert_eq!(missing.status, 404, "the replica has not replayed it");
    two.get(&format!("/v1/customers/{z}"), &m.key, Some(&token))
        .await;
    // A token that is not one is refused, not guessed at.
    let refused = one
        .send(
            reqwest::Method::GET,
            "/v1/portal/me",
            &y_token,
            Some("yesterday"),
            None,
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.body["code"], "invalid_consistency_token");

    // Replay resumed, the replica catches up and serves the change.
    run(&mut on_replica, "SELECT pg_wal_replay_resume()").await;
    replayed(&mut on_replica, &written(&mut on_primary).await).await;
    let caught_up = two.get("/v1/portal/me", &y_token, None).await;
    assert_eq!(caught_up["email"], "moved@example.com");
    // A merchant's token covers the audit row of its write too, which is written after
    // the write's own transaction (and without waiting for its flush): a read with the
    // token, served by the replica as soon as it holds the token's position, finds it.
    for n in 0..10 {
        let created = one
            .post(
                "/v1/customers",
                &m.key,
                &json!({"external_id": format!("audited-{n}")}),
            )
            .await;
        let id = created.body["id"].as_str().expect("an id").to_owned();
        let token = created.token.expect("a consistency token");
        replayed(&mut on_replica, &token).await;
        let audited = four
            .get(
                &format!("/v1/audit_events?resource_id={id}"),
                &m.key,
                Some(&token),
            )
            .await;
        assert_eq!(theirs(&audited), 1, "write {n}: {audited}");
    }
    // The lag of one write, replica running.
    run(
        &mut on_primary,
        "UPDATE customers SET name = 'Why' WHERE external_id = 'y'",
    )
    .await;
    let lag = replayed(&mut on_replica, &written(&mut on_primary).await).await;
    eprintln!("one write replayed after {lag:?}");

    // (c) The replica stopped, every read is answered by the primary, at once.
    drop(on_replica);
    replica.stop();
    for api in [&one, &two, &three, &four] {
        let me = api.get("/v1/portal/me", &y_token, None).await;
        assert_eq!(me["name"], "Why");
        let subs = api.get("/v1/portal/subscriptions", &x_token, None).await;
        assert_eq!(theirs(&subs), 1);
        api.get(&format!("/v1/customers/{z}"), &m.key, None).await;
    }
    let written_without_replica = two
        .post("/v1/customers", &m.key, &json!({"external_id": "w"}))
        .await;
    assert!(written_without_replica.token.is_some());
}

/// A replica whose pool has no connection free is busy, not down: the read goes to the
/// primary, and the next one, with a connection free, to the replica again. (The
/// primary stands in for its own replica here: it is not replaying, so it holds
/// everything.)
#[actix_web::test]
async fn a_full_replica_pool_sends_a_read_to_the_primary_without_counting_the_replica_down() {
    use tenure_app::replica::{ReadSource, Replica, ReplicaSettings, source_of_read};

    let app = TestApp::new().await;
    let settings = ReplicaSettings {
        // No second look during the test: what one read concludes, the next one sees.
        check_interval: Duration::from_secs(3600),
        check_timeout: Duration::from_millis(200),
        ..ReplicaSettings::default()
    };
    let replica = Replica::new(app.db.pool(1), settings);
    let with_replica = tenure_app::App {
        replica: Some(replica.clone()),
        ..app.state.app.clone()
    };
    assert_eq!(
        source_of_read(&with_replica, None, None).await,
        ReadSource::Replica
    );
    let held = replica.db.conn().await.expect("the pool's one connection");
    assert_eq!(
        source_of_read(&with_replica, None, None).await,
        ReadSource::Primary,
        "no connection free"
    );
    drop(held);
    assert_eq!(
        source_of_read(&with_replica, None, None).await,
        ReadSource::Replica,
        "the replica was not counted down"
    );
}
