//! Cross-cutting behaviour: malformed input, unknown routes, health, request ids, the
//! OpenAPI document and migrations.

use serde_json::json;
use tenure_e2e::{TestApp, TestDb};

use crate::fixtures;

#[actix_web::test]
async fn malformed_bodies_are_problems_never_500() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        ("application/json", b"{", 400, "invalid_json"),
        ("application/json", b"", 400, "invalid_json"),
        ("application/json", b"[1,2]", 422, "validation_failed"),
        ("application/json", b"null", 422, "validation_failed"),
        (
            "application/json",
            br#"{"external_id": 5}"#,
            422,
            "validation_failed",
        ),
        (
            "application/json",
            br#"{"external_id": "x", "unknown": 1}"#,
            422,
            "validation_failed",
        ),
        (
            "application/json",
            br#"{"email": "a@b.co"}"#,
            422,
            "validation_failed",
        ),
        ("application/json", b"\xff\xfe", 400, "invalid_json"),
        (
            "text/plain",
            br#"{"external_id": "x"}"#,
            415,
            "unsupported_media_type",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let res = app
            .post("/v1/customers")
            .bearer(&m.key)
            .raw(content_type, body)
            .send()
            .await;
        assert_eq!(
            res.status.as_u16(),
            status,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            res.body
        );
        assert_eq!(res.body["code"], code);
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
    }
    let huge = format!(r#"{{"external_id": "{}"}}"#, "x".repeat(300_000));
    app.post("/v1/customers")
        .bearer(&m.key)
        .raw("application/json", huge)
        .send()
        .await
        .expect_problem(413, "payload_too_large");
    let long_name = json!({"external_id": "x", "name": "n".repeat(10_000)});
    app.by(&m.key)
        .post("/v1/customers", &long_name)
        .await
        .expect_problem(422, "validation_failed");
    let sql_ish = json!({"external_id": "'; DROP TABLE customers; --", "name": "Robert'); DROP TABLE customers;--"});
    let res = app
        .by(&m.key)
        .post("/v1/customers", &sql_ish)
        .await
        .expect(201);
    assert_eq!(res.body["external_id"], "'; DROP TABLE customers; --");
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
    // The account's test and live tenants.
    assert_eq!(app.count("SELECT count(*) AS n FROM merchants").await, 2);
}

#[actix_web::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    app.get("/v1/nothing-here")
        .send()
        .await
        .expect_problem(404, "route_not_found");
    let res = app
        .by(&m.key)
        .delete("/v1/customers")
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("GET, POST"));
    // The portal's routes live in their own scope; its misses answer the same way.
    app.get("/v1/portal/nothing-here")
        .send()
        .await
        .expect_problem(404, "route_not_found");
    let res = app
        .delete("/v1/portal/subscriptions/sub_01jf9zb3f4e3a8r7m2k4t5n6bc")
        .send()
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(res.header("allow"), Some("GET"));
    app.by(&m.key)
        .get("/v1/customers/not-an-id")
        .await
        .expect_problem(404, "resource_missing");
    app.by(&m.key)
        .get("/v1/customers/cus_01jf9zb3f4e3a8r7m2k4t5n6bc")
        .await
        .expect_problem(404, "resource_missing");
}

/// A query parameter an operation does not document is refused by name, never ignored:
/// a misspelt filter would otherwise answer the unfiltered list as if it were filtered.
#[actix_web::test]
async fn unknown_query_parameters_are_refused_by_name() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let customer = fixtures::customer(&app, &m, "q").await;
    let token = fixtures::session(&app, &m, &customer).await;

    // Stripe's name for the filter, where Tenure's is `customer_id`.
    let res = app
        .by(&m.key)
        .get(&format!("/v1/invoices?customer={customer}&limit=5"))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "customer");
    let message = res.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("customer_id"), "{message}");
    assert!(message.contains("starting_after"), "{message}");
    app.by(&m.key)
        .get(&format!("/v1/invoices?customer_id={customer}&limit=5"))
        .await
        .expect(200);

    // Before the credential is looked at, and on routes that take no query at all.
    for (path, credential) in [
        (
            "/v1/customers?expand=subscriptions".to_owned(),
            m.key.as_str(),
        ),
        (format!("/v1/customers/{customer}?expand=x"), m.key.as_str()),
        (
            "/v1/portal/subscriptions?customer_id=x".to_owned(),
            token.as_str(),
        ),
        ("/v1/portal/me?debug=1".to_owned(), "not-a-credential"),
    ] {
        let res = app
            .by(credential)
            .get(&path)
            .await
            .expect_problem(422, "validation_failed");
        let field = res.body["errors"][0]["field"].as_str().unwrap();
        assert!(path.contains(&format!("?{field}=")), "{path}: {field}");
    }
    let res = app
        .by(&m.key)
        .post(
            "/v1/customers?dry_run=true",
            &json!({"external_id": "never"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        res.body["errors"][0]["message"],
        "is not a query parameter here: this operation takes no query parameters"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM customers WHERE external_id = 'never'")
            .await,
        0
    );
    // Unknown routes stay 404, whatever their query; probes may bust caches.
    app.get("/v1/nothing-here?x=1")
        .send()
        .await
        .expect_problem(404, "route_not_found");
    app.get("/healthz?t=1").send().await.expect(200);
}

#[actix_web::test]
async fn health_readiness_metrics_docs_and_request_ids() {
    let app = TestApp::new().await;
    let health = app.get("/healthz").send().await.expect(200);
    assert!(health.header("x-request-id").is_some());
    app.get("/readyz").send().await.expect(200);
    let echoed = app
        .get("/healthz")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc-123"));
    let metrics = app.get("/metrics").send().await.expect(200);
    assert!(String::from_utf8_lossy(&metrics.raw).contains("tenure_http_requests_total"));
    let docs = app.get("/docs").send().await.expect(308);
    assert_eq!(docs.header("location"), Some("/docs/"));
    let page = app.get("/docs/").send().await.expect(200);
    assert!(String::from_utf8_lossy(&page.raw).contains("swagger"));
    let spec = app.get("/openapi.json").send().await.expect(200);
    assert_eq!(spec.body["info"]["title"], "Tenure API");
}

#[test]
fn committed_openapi_matches_the_handlers() {
    let generated = tenure_api::openapi_document().to_pretty_json().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_problem_responses_and_examples() {
    let spec: serde_json::Value =
        serde_json::from_str(&tenure_api::openapi_document().to_json().unwrap()).unwrap();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("500"),
                "{method} {path} lacks error responses"
            );
            // A gateway's events are signed, not authenticated (no 401).
            if path.starts_with("/v1/") && !path.starts_with("/v1/gateway_events/") {
                assert!(responses.contains_key("401"), "{method} {path}");
                assert!(
                    op["security"].is_array(),
                    "{method} {path} names no security"
                );
            }
        }
    }
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let resources = [
        "Problem",
        "ProductDto",
        "PlanDto",
        "CustomerDto",
        "EventDto",
        "CustomerSessionDto",
    ];
    for (name, schema) in schemas {
        let needs_example = name.starts_with("Create")
            || name.starts_with("Update")
            || resources.contains(&name.as_str());
        if needs_example {
            assert!(
                schema.get("example").is_some() || schema.get("examples").is_some(),
                "{name} has no example"
            );
        }
    }
}

/// Every operation the document says honours If-Match answers a stale tag with 412, and
/// every GET it says sends an ETag does; the operations are read from the document so
/// that one added to `tenure_api::openapi::VERSIONED` is exercised here (or fails here
/// until it is given ids and a body below).
#[actix_web::test]
async fn documented_preconditions_are_honoured() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product =
        fixtures::product(&app, &m, json!({"allow_pause": true, "allow_cancel": true})).await;
    let plan = fixtures::plan(&app, &m, &product, 1000).await;
    let other_plan = fixtures::plan(&app, &m, &product, 2000).await;
    let customer = fixtures::customer(&app, &m, "c1").await;
    let token = fixtures::session(&app, &m, &customer).await;
    let sub = fixtures::subscribe_id(&app, &m, &customer, &plan).await;
    let paused = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{sub}/pause"),
            &json!({"start": {"type": "period_end"}}),
        )
        .await
        .expect(200);
    let change = paused.body["scheduled_changes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = app
        .by(&m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "https://example.com/hooks", "enabled_events": ["*"]}),
        )
        .await
        .expect(201)
        .id();
    let offer = app
        .by(&m.key)
        .post(
            "/v1/retention_offers",
            &json!({"name": "Half off", "priority": 1,
            "kind": {"type": "discount_percent", "percent": 50, "cycles": 1}}),
        )
        .await
        .expect(201)
        .id();
    let id_of = |path: &str| {
        let collection = path
            .strip_prefix("/v1/portal")
            .or_else(|| path.strip_prefix("/v1"))
            .and_then(|rest| rest.split('/').nth(1));
        let id = match collection {
            Some("products") => product.clone(),
            Some("plans") => plan.clone(),
            Some("customers") => customer.clone(),
            Some("subscriptions") => sub.clone(),
            Some("webhook_endpoints") => endpoint.clone(),
            Some("retention_offers") => offer.clone(),
            _ => return None,
        };
        let path = path
            .replace("{id}", &id)
            .replace("{change_id}", &change)
            .replace("{tag}", "vip");
        (!path.contains('{')).then_some(path)
    };
    let body_of = |path: &str| match path.rsplit('/').next() {
        Some("pause") => Some(json!({"start": {"type": "period_end"}})),
        Some("cancel") => Some(json!({"reason": "too_expensive"})),
        Some("change_plan") => Some(json!({"plan_id": other_plan})),
        Some("change_quantity") => Some(json!({"quantity": 2})),
        Some("tags") => Some(json!({"tag": "vip"})),
        Some("stock_choice") => Some(json!({"choice": "skip"})),
        Some("resume" | "skip" | "unskip" | "{change_id}") => None,
        _ => Some(json!({})),
    };

    let spec: serde_json::Value =
        serde_json::from_str(&tenure_api::openapi_document().to_json().unwrap()).unwrap();
    let (mut conditional, mut tagged) = (0, 0);
    let mut unconditional = Vec::new();
    for (template, item) in spec["paths"].as_object().unwrap() {
        let path = || {
            id_of(template)
                .unwrap_or_else(|| panic!("no fixture for {template}: add one to this test"))
        };
        let credential = if template.starts_with("/v1/portal/") {
            &token
        } else {
            &m.key
        };
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let honours_if_match = params
                .iter()
                .any(|p| p["$ref"] == "#/components/parameters/IfMatch");
            if honours_if_match {
                let method: actix_web::http::Method = method.to_uppercase().parse().unwrap();
                let mut req = app
                    .request(method.clone(), &path())
                    .bearer(credential)
                    .header("if-match", "\"stale\"");
                if let Some(body) = body_of(template) {
                    req = req.json(&body);
                }
                let res = req.send().await;
                assert_eq!(
                    res.status, 412,
                    "{method} {template} with a stale If-Match: {}",
                    res.body
                );
                assert_eq!(res.body["code"], "precondition_failed");
                conditional += 1;
            } else if method != "get"
                && let Some(path) = id_of(template)
            {
                unconditional.push((method.to_uppercase(), template.clone(), path, credential));
            }
            let sends_etag = op["responses"]["200"]["headers"]["ETag"].is_object();
            if method == "get" && sends_etag {
                let res = app.by(credential).get(&path()).await.expect(200);
                let etag = res.header("etag").unwrap_or_default().to_owned();
                assert!(etag.starts_with('"'), "GET {template} sent no ETag");
                // Asked again with that tag (weak or strong, alone or in a list): 304,
                // no body, the same tag; with another tag, the resource again.
                for if_none_match in [etag.clone(), format!("\"old\", W/{etag}")] {
                    let again = app
                        .request(actix_web::http::Method::GET, &path())
                        .bearer(credential)
                        .header("if-none-match", &if_none_match)
                        .send()
                        .await
                        .expect(304);
                    assert!(again.raw.is_empty(), "GET {template}: 304 with a body");
                    assert_eq!(again.header("etag"), Some(etag.as_str()));
                }
                app.request(actix_web::http::Method::GET, &path())
                    .bearer(credential)
                    .header("if-none-match", "\"old\"")
                    .send()
                    .await
                    .expect(200);
                tagged += 1;
            }
        }
    }

    // And the other way round: a change the document does not mark If-Match ignores a
    // stale one (any answer but 412; one whose body is refused first proves nothing).
    assert!(unconditional.len() > 10);
    for (method, template, path, credential) in unconditional {
        let mut req = app
            .request(method.parse().unwrap(), &path)
            .bearer(credential)
            .header("if-match", "\"stale\"");
        if let Some(body) = body_of(&template) {
            req = req.json(&body);
        }
        let res = req.send().await;
        assert_ne!(
            res.status, 412,
            "{method} {template} honours If-Match but the document does not say so"
        );
    }
    assert_eq!((conditional, tagged), (31, 7));
}

#[actix_web::test]
async fn migrations_go_up_down_and_up_again() {
    let db = TestDb::new().await;
    let reverted = tenure_store::migrate::revert_all(&db.url)
        .await
        .expect("down");
    assert!(!reverted.is_empty());
    let applied = tenure_store::migrate::run_pending(&db.url)
        .await
        .expect("up again");
    assert_eq!(applied.len(), reverted.len());
}

/// The migrated schema can be distributed by merchant (Citus): the check CI runs
/// (`tenure check-distribution`) finds nothing.
#[actix_web::test]
async fn the_schema_can_be_distributed_by_merchant() {
    let db = TestDb::new().await;
    let violations = tenure_store::distribution::violations(&mut db.connect().await)
        .await
        .unwrap();
    assert_eq!(violations, Vec::new());
}

/// The same check names each table a careless migration could add: no merchant column,
/// a nullable one, a key or a unique index without it, a foreign key that does not pair
/// it, a reference table pointing at merchant data.
#[actix_web::test]
async fn the_distribution_check_names_each_table_that_breaks_it() {
    use diesel_async::SimpleAsyncConnection;
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    conn.batch_execute(
        "CREATE TABLE shipments (id uuid PRIMARY KEY, merchant_id uuid REFERENCES merchants (id));
         CREATE UNIQUE INDEX shipments_tracking ON shipments (id);
         CREATE TABLE tallies (n int);
         CREATE TABLE parcels (merchant_id uuid NOT NULL REFERENCES merchants (id), id uuid,
           shipment_id uuid REFERENCES shipments (id), PRIMARY KEY (merchant_id, id));
         ALTER TABLE merchants ADD COLUMN favourite_customer uuid;
         ALTER TABLE merchants ADD FOREIGN KEY (id, favourite_customer)
           REFERENCES customers (merchant_id, id);",
    )
    .await
    .unwrap();
    let found: Vec<String> = tenure_store::distribution::violations(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        [
            "merchants: reference table with foreign key merchants_id_favourite_customer_fkey \
             to the distributed table customers",
            "parcels: foreign key parcels_shipment_id_fkey to shipments does not pair \
             merchant_id with merchant_id",
            "shipments: merchant_id may be null",
            "shipments: unique index shipments_pkey does not include merchant_id",
            "shipments: unique index shipments_tracking does not include merchant_id",
            "tallies: no merchant_id column (distribute it by merchant, or name it a \
             reference or local table with the reason)",
            "tallies: no primary key",
        ]
    );
    // Mended, the schema passes again.
    conn.batch_execute(
        "DROP TABLE parcels, shipments, tallies; ALTER TABLE merchants DROP COLUMN favourite_customer",
    )
    .await
    .unwrap();
    assert!(
        tenure_store::distribution::violations(&mut conn)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `tenure serve` as deployed: two HTTP workers, each with a connection pool of its own,
/// answer every request of a burst over many connections, within the process's
/// connection budget (`TENURE_POOL_SIZE`; the key listener and the audit writer take one
/// each).
#[actix_web::test]
async fn served_http_workers_answer_within_the_connection_budget() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    // The application name tells the server's connections apart from the test's own.
    let url = format!("{}?application_name=tenure-served", app.db.url);
    let (server, addr) = serve(&url, &["--http-workers", "2"], 6).await;
    // A connection per request: the server hands its connections to the workers in turn,
    // so both workers' pools serve.
    let burst = (0..40).map(|_| status_of(&addr, "/v1/customers", Some(&m.key)));
    let statuses = futures_util::future::join_all(burst).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    let open = app
        .count(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE application_name = 'tenure-served' AND datname = current_database()",
        )
        .await;
    let listening = key_listeners(&app).await;
    assert_eq!(listening, 1, "the API key listener has its connection");
    assert!(
        (1..=5).contains(&open),
        "{open} connections and the listener's for a budget of 6"
    );
    drop(server);
}

/// Without the API key cache, `serve` opens no listener connection and gives its share
/// of the budget to HTTP: two workers fit in five connections (one is the audit
/// writer's), and keys still work.
#[actix_web::test]
async fn serve_without_the_key_cache_listens_for_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (server, addr) = serve(
        &app.db.url,
        &["--no-api-key-cache", "--http-workers", "2"],
        5,
    )
    .await;
    assert_eq!(
        status_of(&addr, "/v1/customers", Some(&m.key)).await.ok(),
        Some(200)
    );
    let listening = key_listeners(&app).await;
    assert_eq!(listening, 0);
    drop(server);
}

/// Starts `tenure serve --no-workers` with `args` against `database_url` and a pool of
/// `pool_size`, on a free port, and waits until it is ready; panics if it never is.
pub(crate) async fn serve(database_url: &str, args: &[&str], pool_size: u32) -> (Served, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = Served(
        std::process::Command::new(tenure_e2e::tenure_binary())
            .args(["serve", "--no-workers", "--bind", &addr])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("TENURE_POOL_SIZE", pool_size.to_string())
            .env("TENURE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start `tenure serve`"),
    );
    for _ in 0..100 {
        if let Ok(status) = status_of(&addr, "/readyz", None).await {
            assert_eq!(status, 200, "`tenure serve` is not ready");
            return (server, addr);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("`tenure serve` did not start");
}

/// Connections of the test database held by an API key listener.
async fn key_listeners(app: &TestApp) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE application_name = '{}' AND datname = current_database()",
        tenure_api::auth::key_cache::APPLICATION_NAME
    ))
    .await
}

/// A `tenure serve` process, killed when the test ends.
pub(crate) struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status of one `GET` on its own connection (HTTP/1.1, `Connection: close`).
pub(crate) async fn status_of(
    addr: &str,
    path: &str,
    bearer: Option<&str>,
) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = bearer.map_or(String::new(), |b| format!("Authorization: Bearer {b}\r\n"));
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP status line"))
}

/// Sends `request` on a connection of its own and reads the answer until the server
/// closes it (or 10 s pass).
async fn exchange(addr: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read all of an oversized request.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Over a real socket, request lines and heads past what actix-http parses (64 KiB of
/// URI, 128 KiB of head), which it would answer with a bare 400 or 431, get the
/// service's problem+json 414 or 431 like every smaller excess; on a keep-alive
/// connection too, after a request with a body.
#[actix_web::test]
async fn oversized_heads_on_the_wire_are_problems() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let (server, addr) = serve(&app.db.url, &[], 4).await;
    let problem = |answer: &str, status: &str, code: &str| {
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{}",
            &answer[..answer.len().min(300)]
        );
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{answer}");
    };
    for target_bytes in [20 * 1024, 70 * 1024, 300 * 1024] {
        let request = format!(
            "GET /v1/customers?starting_after={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "c".repeat(target_bytes)
        );
        problem(
            &exchange(&addr, request.as_bytes()).await,
            "414",
            "uri_too_long",
        );
    }
    for header_bytes in [40 * 1024, 100 * 1024, 200 * 1024] {
        let request = format!(
            "GET /v1/customers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\r\n",
            format!("X-Pad: {}\r\n", "p".repeat(1000)).repeat(header_bytes / 1000)
        );
        problem(
            &exchange(&addr, request.as_bytes()).await,
            "431",
            "headers_too_large",
        );
    }
    // A request with a body, then an oversized one on the same connection.
    let body = r#"{"external_id": "kept-alive"}"#;
    let pipelined = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}\
         GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        m.key,
        body.len(),
        "a".repeat(100 * 1024)
    );
    let answer = exchange(&addr, pipelined.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let second = answer.find("HTTP/1.1 414").expect("the second answer");
    problem(&answer[second..], "414", "uri_too_long");
    drop(server);
}
