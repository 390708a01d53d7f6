//! Idempotency keys: replay, reuse with another body, concurrent duplicates.

use futures_util::future::join_all;
use serde_json::json;
use tenure_e2e::TestApp;

#[actix_web::test]
async fn same_key_same_body_replays_the_first_response() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let body = json!({"external_id": "c1", "email": "c1@example.com"});
    let first = app
        .by(&m.key)
        .idempotency_key("key-1")
        .post("/v1/customers", &body)
        .await
        .expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = app
        .by(&m.key)
        .idempotency_key("key-1")
        .post("/v1/customers", &body)
        .await
        .expect(201);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), first.header("etag"));
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);

    app.by(&m.key)
        .idempotency_key("key-1")
        .post("/v1/customers", &json!({"external_id": "c2"}))
        .await
        .expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

#[actix_web::test]
async fn a_json_body_is_compared_by_value_not_by_bytes() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let post = |body: &'static str| {
        app.post("/v1/customers")
            .bearer(&m.key)
            .header("idempotency-key", "reserialised")
            .raw("application/json", body)
    };
    let first =
        post(r#"{"external_id":"c1","email":"c1@example.com","metadata":{"a":"1","b":"2"}}"#)
            .send()
            .await
            .expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);

    // A client re-serialising on retry: other whitespace, other key order, nested too.
    let retry = post(
        "{ \"metadata\": {\"b\": \"2\", \"a\": \"1\"},\n  \"email\": \"c1@example.com\", \"external_id\" : \"c1\" }",
    )
    .send()
    .await
    .expect(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);

    // Another value under the same keys is another request.
    post(r#"{"external_id":"c1","email":"c1@example.com","metadata":{"a":"1","b":"3"}}"#)
        .send()
        .await
        .expect_problem(422, "idempotency_key_reused");
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 1);
}

#[actix_web::test]
async fn keys_are_scoped_to_the_caller() {
    let app = TestApp::new().await;
    let a = app.merchant("A").await;
    let b = app.merchant("B").await;
    for m in [&a, &b] {
        app.by(&m.key)
            .idempotency_key("shared")
            .post("/v1/customers", &json!({"external_id": "c1"}))
            .await
            .expect(201);
    }
    assert_eq!(app.count("SELECT count(*) AS n FROM customers").await, 2);
}

#[actix_web::test]
async fn validation_failures_are_replayed_too_but_not_transient_errors() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let bad = json!({"external_id": ""});
    for _ in 0..2 {
        app.by(&m.key)
            .idempotency_key("k")
            .post("/v1/customers", &bad)
            .await
            .expect_problem(422, "validation_failed");
    }
    // A conflict (409) is not final: once the conflicting customer is renamed, the same
    // key and body succeed.
    let existing = app
        .by(&m.key)
        .post("/v1/customers", &json!({"external_id": "taken"}))
        .await
        .expect(201)
        .id();
    let body = json!({"external_id": "taken"});
    app.by(&m.key)
        .idempotency_key("k2")
        .post("/v1/customers", &body)
        .await
        .expect_problem(409, "external_id_taken");
    app.by(&m.key)
        .patch(
            &format!("/v1/customers/{existing}"),
            &json!({"name": "renamed"}),
        )
        .await
        .expect(200);
    let mut conn = app.sql().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query("UPDATE customers SET external_id = 'was-taken'"),
        &mut conn,
    )
    .await
    .unwrap();
    app.by(&m.key)
        .idempotency_key("k2")
        .post("/v1/customers", &body)
        .await
        .expect(201);
}

#[actix_web::test]
async fn twenty_concurrent_identical_posts_create_exactly_one_resource() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let body = json!({"name": "Concurrent product"});
    let responses = join_all((0..20).map(|_| {
        app.by(&m.key)
            .idempotency_key("concurrent-1")
            .post("/v1/products", &body)
    }))
    .await;
    let created: Vec<_> = responses.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty());
    for r in &responses {
        assert!(
            r.status == 201 || (r.status == 409 && r.body["code"] == "idempotency_key_in_use"),
            "unexpected {}: {}",
            r.status,
            r.body
        );
    }
    let ids: std::collections::HashSet<_> = created.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), 1, "every success names the same product");
    assert_eq!(app.count("SELECT count(*) AS n FROM products").await, 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM events WHERE event_type = 'product.created'")
            .await,
        1
    );
}

#[actix_web::test]
async fn malformed_keys_are_refused() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    app.by(&m.key)
        .idempotency_key(&"k".repeat(300))
        .post("/v1/customers", &json!({"external_id": "c1"}))
        .await
        .expect_problem(400, "invalid_idempotency_key");
}
