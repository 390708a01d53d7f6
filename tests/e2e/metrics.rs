//! `GET /v1/metrics` against a hand-built history in two currencies, with every expected
//! figure computed by hand (see the comments), plus tenant isolation and bad ranges.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use tenure_domain::billing::Interval;
use tenure_domain::clock::Clock;
use tenure_domain::context::monthly_amount;
use tenure_domain::ids::GenerateId;
use tenure_e2e::{TestApp, TestMerchant};

use crate::fixtures;

async fn plan(
    app: &TestApp,
    m: &TestMerchant,
    product: &str,
    price: (i64, &str),
    interval: &str,
    trial_days: u32,
) -> String {
    app.by(&m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": product, "name": format!("{} {} {interval}", price.0, price.1),
            "price": {"amount": price.0, "currency": price.1}, "interval": interval,
            "trial_days": trial_days}),
        )
        .await
        .expect(201)
        .id()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn metrics_path(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> String {
    let from = rfc3339(from).replace('+', "%2B");
    match to {
        Some(to) => format!("/v1/metrics?from={from}&to={}", rfc3339(to)),
        None => format!("/v1/metrics?from={from}"),
    }
}

fn currency<'a>(body: &'a Value, code: &str) -> &'a Value {
    body["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == code)
        .unwrap_or_else(|| panic!("no {code} in {body}"))
}

/// A cancellation request of `reason` made now (by SQL: the portal flow is tested
/// elsewhere; here only its row matters).
async fn cancellation_request(app: &TestApp, sub: &str, reason: &str, at: DateTime<Utc>) {
    let sub = fixtures::subscription_uuid(sub);
    let (ticket, request) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    app.exec(format!(
            "INSERT INTO support_tickets (merchant_id, id, customer_id, subscription_id, subject, status, channel, created_at, updated_at)
             SELECT merchant_id, '{ticket}', customer_id, id, 'Cancellation', 'open', 'portal', '{at}', '{at}'
               FROM subscriptions WHERE id = '{sub}'"
        ),
    )
    .await;
    app.exec(format!(
            "INSERT INTO cancellation_requests (merchant_id, id, subscription_id, customer_id, ticket_id, reason, status, effective_at, created_at, updated_at)
             SELECT merchant_id, '{request}', id, customer_id, '{ticket}', '{reason}', 'pending', '{at}', '{at}', '{at}'
               FROM subscriptions WHERE id = '{sub}'"
        ),
    )
    .await;
}

/// An offer presentation with `outcome`, made at `at`.
async fn offer_outcome(
    app: &TestApp,
    sub: &str,
    offer: uuid::Uuid,
    outcome: &str,
    at: DateTime<Utc>,
) {
    let sub = fixtures::subscription_uuid(sub);
    app.exec(format!(
            "INSERT INTO retention_offer_outcomes (merchant_id, id, offer_id, customer_id, subscription_id, outcome, created_at)
             SELECT merchant_id, '{}', '{offer}', customer_id, id, '{outcome}', '{at}'
               FROM subscriptions WHERE id = '{sub}'",
            uuid::Uuid::now_v7()
        ),
    )
    .await;
}

#[actix_web::test]
async fn metrics_of_a_hand_built_history_in_two_currencies() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let eur_month = plan(&app, &m, &product, (1000, "EUR"), "month", 0).await;
    let eur_month_1500 = plan(&app, &m, &product, (1500, "EUR"), "month", 0).await;
    let eur_month_2000 = plan(&app, &m, &product, (2000, "EUR"), "month", 0).await;
    let eur_month_4000 = plan(&app, &m, &product, (4000, "EUR"), "month", 0).await;
    let eur_year = plan(&app, &m, &product, (12006, "EUR"), "year", 0).await;
    let eur_week = plan(&app, &m, &product, (700, "EUR"), "week", 0).await;
    let usd_month = plan(&app, &m, &product, (500, "USD"), "month", 0).await;
    let usd_month_1500 = plan(&app, &m, &product, (1500, "USD"), "month", 0).await;
    let usd_trial = plan(&app, &m, &product, (900, "USD"), "month", 30).await;

    // The SQL monthly value is the domain's rule (one division, half up).
    assert_eq!(monthly_amount(12006, Interval::Year, 1), 1001);
    assert_eq!(monthly_amount(700, Interval::Week, 1), 3033);

    let c1 = fixtures::customer(&app, &m, "c1").await;
    let c2 = fixtures::customer(&app, &m, "c2").await;
    let c3 = fixtures::customer(&app, &m, "c3").await;
    let c4 = fixtures::customer(&app, &m, "c4").await;
    let c5 = fixtures::customer(&app, &m, "c5").await;
    let c6 = fixtures::customer(&app, &m, "c6").await;
    let c7 = fixtures::customer(&app, &m, "c7").await;

    // Day 0: EUR c1 (1000 monthly + 700 weekly = 1000 + 3033), c2 (12006 yearly = 1001),
    // c3 (2000); USD c4 (500), c5 (1500).
    let s1 = fixtures::subscribe_id(&app, &m, &c1, &eur_month).await;
    fixtures::subscribe(&app, &m, &c1, &eur_week).await;
    fixtures::subscribe(&app, &m, &c2, &eur_year).await;
    let s3 = fixtures::subscribe_id(&app, &m, &c3, &eur_month_2000).await;
    fixtures::subscribe(&app, &m, &c4, &usd_month).await;
    let u2 = fixtures::subscribe_id(&app, &m, &c5, &usd_month_1500).await;

    // Day 10: the period starts.
    app.clock.advance(Duration::days(10));
    let from = app.clock.now();
    app.clock.advance(Duration::days(2));

    // Day 12: c7 starts a 30-day trial (pays nothing through the period).
    fixtures::subscribe(&app, &m, &c7, &usd_trial).await;
    // Day 15: c3 asks to cancel (too expensive) and is canceled; c6 subscribes (4000);
    // c5 pauses; c1 upgrades 1000 -> 1500.
    app.clock.advance(Duration::days(3));
    cancellation_request(&app, &s3, "too_expensive", app.clock.now()).await;
    fixtures::cancel(
        &app,
        &m,
        &s3,
        json!({"timing": "now", "access": "immediately", "reason": "too_expensive"}),
    )
    .await;
    fixtures::subscribe(&app, &m, &c6, &eur_month_4000).await;
    app.by(&m.key)
        .post(
            &format!("/v1/subscriptions/{u2}/pause"),
            &json!({"start": {"type": "now"}}),
        )
        .await
        .expect(200);
    let changed = app
        .by(&m.key)
        .post(
            &format!("/v1/subscriptions/{s1}/change_plan"),
            &json!({"plan_id": eur_month_1500}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(changed["plan_id"], eur_month_1500.as_str(), "{changed}");
    // Reasons and save offers in the period: two more requests, three presentations.
    cancellation_request(&app, &u2, "unused", app.clock.now()).await;
    cancellation_request(&app, &s1, "too_expensive", app.clock.now()).await;
    let offer = uuid::Uuid::now_v7();
    app.exec(format!(
        "INSERT INTO retention_offers (merchant_id, id, name, kind, eligibility)
             SELECT merchant_id, '{offer}', 'Half off', '{{}}', '{{}}' FROM subscriptions LIMIT 1"
    ))
    .await;
    offer_outcome(&app, &s1, offer, "accepted", app.clock.now()).await;
    offer_outcome(&app, &u2, offer, "declined", app.clock.now()).await;
    offer_outcome(&app, &s3, offer, "presented", app.clock.now()).await;
    // Before the period: neither a reason nor an offer counts.
    offer_outcome(&app, &s3, offer, "accepted", from - Duration::days(1)).await;
    cancellation_request(&app, &s3, "other", from - Duration::days(1)).await;

    // Day 40: the period ends now.
    app.clock.advance(Duration::days(25));
    let to = app.clock.now();

    let body = app.get_ok(&metrics_path(from, Some(to)), &m.key).await;
    assert_eq!(body["object"], "metrics");
    assert_eq!(body["currencies"].as_array().unwrap().len(), 2, "{body}");

    // EUR at the start: c1 1000 + 3033, c2 1001, c3 2000 = 7034 from 3 subscribers.
    // At the end: c1 1500 + 3033, c2 1001, c6 4000 = 9534 from 3 subscribers (4 subs).
    // New: c6. Churned: c3 (2000 of MRR). Logo churn 1/3; revenue churn 2000/7034 =
    // 0.28433… ARPU 9534/3 = 3178. LTV: the period is 30 days, so the monthly churn is
    // 1/3 and LTV = 3178 × 3 = 9534.
    assert_eq!(
        currency(&body, "EUR"),
        &json!({"currency": "EUR", "mrr": 9534, "mrr_at_start": 7034,
            "active_subscriptions": 4, "active_subscribers": 3, "active_subscribers_at_start": 3,
            "new_subscribers": 1, "churned_subscribers": 1, "churned_mrr": 2000,
            "logo_churn_rate": "0.3333", "revenue_churn_rate": "0.2843",
            "arpu": 3178, "ltv_estimate": 9534})
    );
    // USD at the start: c4 500, c5 1500 = 2000 from 2. At the end: c4 500 (c5 paused, c7
    // trialing: neither pays, neither churned).
    assert_eq!(
        currency(&body, "USD"),
        &json!({"currency": "USD", "mrr": 500, "mrr_at_start": 2000,
            "active_subscriptions": 1, "active_subscribers": 1, "active_subscribers_at_start": 2,
            "new_subscribers": 0, "churned_subscribers": 0, "churned_mrr": 0,
            "logo_churn_rate": "0.0000", "revenue_churn_rate": "0.0000",
            "arpu": 500, "ltv_estimate": null})
    );
    assert_eq!(body["pauses"], json!({"paused": 1, "pauses_started": 1}));
    assert_eq!(
        body["cancellation_reasons"],
        json!({"too_expensive": 2, "unused": 1})
    );
    assert_eq!(
        body["save_offers"],
        json!({"presented": 3, "accepted": 1, "declined": 1, "acceptance_rate": "0.3333"})
    );

    // The same figures whatever happens later: history, not the current rows, decides.
    app.clock.advance(Duration::days(1));
    app.by(&m.key)
        .post_empty(&format!("/v1/subscriptions/{u2}/resume"))
        .await
        .expect(200);
    let again = app.get_ok(&metrics_path(from, Some(to)), &m.key).await;
    assert_eq!(again["currencies"], body["currencies"]);
    assert_eq!(again["pauses"], body["pauses"]);

    // A period before anything changed: only the day-0 subscriptions, all paying.
    let early = app
        .get_ok(&metrics_path(from - Duration::days(5), Some(from)), &m.key)
        .await;
    let eur = currency(&early, "EUR");
    assert_eq!(eur["mrr"], 7034);
    assert_eq!(eur["mrr_at_start"], 7034);
    assert_eq!(eur["new_subscribers"], 0);
    assert_eq!(eur["churned_subscribers"], 0);
    assert_eq!(currency(&early, "USD")["mrr"], 2000);

    // Before any subscription existed: no currency at all.
    let none = app
        .get_ok(
            &metrics_path(from - Duration::days(60), Some(from - Duration::days(30))),
            &m.key,
        )
        .await;
    assert_eq!(none["currencies"], json!([]));
    assert_eq!(none["save_offers"]["acceptance_rate"], Value::Null);

    // Tenant isolation: another merchant sees none of it.
    let other = app.merchant("B").await;
    let theirs = app.get_ok(&metrics_path(from, Some(to)), &other.key).await;
    assert_eq!(theirs["currencies"], json!([]));
    assert_eq!(theirs["pauses"], json!({"paused": 0, "pauses_started": 0}));
    assert_eq!(theirs["cancellation_reasons"], json!({}));
    assert_eq!(theirs["save_offers"]["presented"], 0);
}

#[actix_web::test]
async fn metrics_default_to_the_last_30_days_and_refuse_bad_ranges() {
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let body = app.get_ok("/v1/metrics", &m.key).await;
    let from: DateTime<Utc> = body["from"].as_str().unwrap().parse().unwrap();
    let to: DateTime<Utc> = body["to"].as_str().unwrap().parse().unwrap();
    assert_eq!(to - from, Duration::days(30));
    assert!((app.clock.now() - to).num_seconds().abs() < 60);

    // A `to` in the future is capped at now.
    let future = app
        .get_ok(
            &metrics_path(
                app.clock.now() - Duration::days(1),
                Some(app.clock.now() + Duration::days(10)),
            ),
            &m.key,
        )
        .await;
    let capped: DateTime<Utc> = future["to"].as_str().unwrap().parse().unwrap();
    assert!(capped <= app.clock.now());

    let now = app.clock.now();
    for (path, field) in [
        ("/v1/metrics?from=yesterday".to_owned(), "from"),
        ("/v1/metrics?to=2026-13-01T00:00:00Z".to_owned(), "to"),
        (
            metrics_path(now - Duration::days(1), Some(now - Duration::days(2))),
            "from",
        ),
        (
            metrics_path(now - Duration::days(1), Some(now - Duration::days(1))),
            "from",
        ),
        (metrics_path(now - Duration::days(400), Some(now)), "from"),
        (
            "/v1/metrics?from=-262143-01-01T00:00:00Z".to_owned(),
            "from",
        ),
    ] {
        let res = app
            .by(&m.key)
            .get(&path)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(
            res.body["errors"][0]["field"], field,
            "{path}: {}",
            res.body
        );
    }
    // Extreme but valid instants are answered, never a 500; offsets are converted to UTC.
    let ancient = app
        .get_ok("/v1/metrics?to=0000-01-01T00:00:00Z", &m.key)
        .await;
    assert_eq!(ancient["currencies"], json!([]));
    let offset = app
        .get_ok(
            "/v1/metrics?from=2026-01-01T02:00:00%2B02:00&to=2026-01-02T00:00:00Z",
            &m.key,
        )
        .await;
    assert_eq!(offset["from"], "2026-01-01T00:00:00Z");
    // Merchant-only.
    app.get("/v1/metrics").send().await.expect(401);
}

/// The SQL helpers agree with the domain: TypeIDs as the API renders them, and the
/// monthly value of every cadence (the rule MRR is built on).
#[actix_web::test]
async fn sql_helpers_agree_with_the_domain() {
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let app = TestApp::new().await;
    let mut conn = app.sql().await;
    for _ in 0..50 {
        let id = tenure_domain::ids::SubscriptionId::generate();
        let row: Text = diesel_async::RunQueryDsl::get_result(
            diesel::sql_query(format!("SELECT tenure_typeid('sub', '{}') AS t", id.uuid())),
            &mut conn,
        )
        .await
        .unwrap();
        assert_eq!(row.t, id.to_string());
    }
    let prices = [
        0i64,
        1,
        5,
        6,
        999,
        1000,
        12006,
        9_999_999,
        10_000_000_000_000,
    ];
    for interval in [
        Interval::Day,
        Interval::Week,
        Interval::Month,
        Interval::Year,
    ] {
        for count in [1u32, 2, 3, 7, 12] {
            for price in prices {
                let row: Text = diesel_async::RunQueryDsl::get_result(
                    diesel::sql_query(format!(
                        "SELECT tenure_monthly_amount({price}, '{}', {count})::text AS t",
                        interval.as_str()
                    )),
                    &mut conn,
                )
                .await
                .unwrap();
                assert_eq!(
                    row.t,
                    monthly_amount(price, interval, count).to_string(),
                    "{price} every {count} {interval:?}"
                );
            }
        }
    }
}
