//! `/metrics` for the operator: the background work waiting (renewals, charges, scheduled
//! changes, webhook deliveries) beside the HTTP figures, a token that protects the
//! scrape, and an address of its own.

use actix_web::test;
use chrono::Duration;
use serde_json::json;
use tenure_api::Metrics;
use tenure_api::middleware::metrics::MetricsAccess;
use tenure_api::middleware::rate_limit::RateLimitConfig;
use tenure_e2e::{TestApp, TestDb};

use crate::fixtures;

/// The value of an unlabelled series in a scrape.
fn gauge(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{scrape}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in:\n{scrape}"))
}

async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics").send().await.expect(200);
    String::from_utf8(res.raw.to_vec()).expect("utf-8 scrape")
}

#[actix_web::test]
async fn the_backlog_appears_and_moves_with_the_data() {
    let app = TestApp::new().await;
    let idle = scrape(&app).await;
    for name in [
        "tenure_renewals_due",
        "tenure_renewals_overdue",
        "tenure_charges_in_flight",
        "tenure_scheduled_changes_due",
        "tenure_webhook_deliveries_pending",
        "tenure_webhook_deliveries_oldest_pending_age_seconds",
    ] {
        assert_eq!(gauge(&idle, name), 0.0, "{name}");
        assert!(idle.contains(&format!("# TYPE {name} gauge")), "{idle}");
    }

    let m = app.merchant("A").await;
    let catalog = fixtures::catalog(&app, &m, json!({})).await;
    let customer = fixtures::customer(&app, &m, "ada").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &catalog.base).await;
    let period_end = fixtures::time(&sub["current_period"]["end"]);
    let sub = fixtures::id(&sub);
    fixtures::cancel(&app, &m, &sub, json!({"timing": "period_end"})).await;
    app.by(&m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "http://127.0.0.1:9/hooks", "enabled_events": ["*"]}),
        )
        .await
        .expect(201);
    fixtures::customer(&app, &m, "grace").await;
    let before = scrape(&app).await;
    assert!(before.contains("tenure_http_requests_total"), "{before}");
    assert_eq!(gauge(&before, "tenure_renewals_due"), 0.0);
    assert_eq!(gauge(&before, "tenure_scheduled_changes_due"), 0.0);
    assert_eq!(gauge(&before, "tenure_webhook_deliveries_pending"), 1.0);

    // A worker that crashed between preparing a charge and settling it.
    app.exec(
        "INSERT INTO charge_intents (merchant_id, invoice_id, attempt, idempotency_key, \
         amount, mode, created_at) \
         SELECT merchant_id, id, 1, 'stranded', 0, 'scheduled', now() FROM invoices LIMIT 1",
    )
    .await;
    // One minute past the period's end: due, not yet overdue.
    app.clock.advance_to(period_end + Duration::minutes(1));
    let due = scrape(&app).await;
    assert_eq!(gauge(&due, "tenure_renewals_due"), 1.0);
    assert_eq!(gauge(&due, "tenure_renewals_overdue"), 0.0);
    assert_eq!(gauge(&due, "tenure_scheduled_changes_due"), 1.0);
    assert_eq!(gauge(&due, "tenure_charges_in_flight"), 1.0);
    assert!(
        gauge(&due, "tenure_webhook_deliveries_oldest_pending_age_seconds") > 86_400.0,
        "the delivery has waited since before the period ended: {due}"
    );
    app.clock.advance(Duration::minutes(10));
    let overdue = scrape(&app).await;
    assert_eq!(gauge(&overdue, "tenure_renewals_overdue"), 1.0);
}

async fn guarded(access: MetricsAccess) -> TestApp {
    TestApp::configured(TestDb::new().await, RateLimitConfig::disabled(), |state| {
        state.metrics_access = access;
    })
    .await
}

#[actix_web::test]
async fn a_metrics_token_is_required_once_set() {
    let app = guarded(MetricsAccess::new(Some("scrape-me-7f2c"), false)).await;
    app.get("/metrics")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    app.get("/metrics")
        .bearer("scrape-me-7f2")
        .send()
        .await
        .expect_problem(401, "unauthenticated");
    let res = app
        .get("/metrics")
        .bearer("scrape-me-7f2c")
        .send()
        .await
        .expect(200);
    assert!(String::from_utf8_lossy(&res.raw).contains("tenure_renewals_due"));
}

#[actix_web::test]
async fn metrics_on_an_address_of_their_own_leave_the_api_s() {
    let app = guarded(MetricsAccess::new(None, true)).await;
    app.get("/metrics")
        .send()
        .await
        .expect_problem(404, "route_not_found");
    // What `serve` runs on TENURE_METRICS_BIND.
    let own = test::init_service(tenure_api::metrics_app(
        app.state.clone(),
        Metrics::new().expect("metrics"),
    ))
    .await;
    let res = test::call_service(&own, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), 200);
    let body = test::read_body(res).await;
    assert!(String::from_utf8_lossy(&body).contains("tenure_webhook_deliveries_pending"));
    let other = test::call_service(
        &own,
        test::TestRequest::get().uri("/v1/customers").to_request(),
    )
    .await;
    assert_eq!(other.status(), 404);
}
