//! `GET /v1/metrics` against a hand-built history in two currencies, with every expected
//! figure computed by hand (see the comments), plus tenant isolation and bad ranges.

use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};
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

/// A small seeded generator (SplitMix64), so that a failing history can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One merchant's history made of random steps through the real use cases, the test
/// clock moving between them and the engine's rounds (renewals, dunning retries,
/// scheduled changes, trial ends, signup expiry) running at each new time.
struct History {
    merchant: TestMerchant,
    /// The clock's time after each step.
    instants: Vec<DateTime<Utc>>,
}

async fn engine_rounds(app: &TestApp) {
    let (state, now) = (&app.state.app, app.clock.now());
    tenure_engine::renewals::run_until_idle(state, now)
        .await
        .expect("renewals");
    while tenure_engine::lifecycle::run_due_changes(state, now, 100)
        .await
        .expect("scheduled changes")
        == 100
    {}
    tenure_engine::lifecycle::run_incomplete_expiry(state, now, 100)
        .await
        .expect("incomplete expiry");
}

async fn random_history(app: &TestApp, seed: u64, steps: usize) -> History {
    let mut rng = Rng(seed);
    let m = app.merchant("Random").await;
    app.by(&m.key)
        .put(
            "/v1/dunning_policy",
            &json!({"retry_after_days": [1, 2], "final_state": "unpaid"}),
        )
        .await
        .expect(200);
    let product = app
        .by(&m.key)
        .post(
            "/v1/products",
            &json!({"name": "Boxes", "shippable": true, "min_quantity": 1, "max_quantity": 5}),
        )
        .await
        .expect(201)
        .id();
    let mut plans: Vec<(String, &str)> = Vec::new();
    for (price, interval, trial) in [
        ((1000, "EUR"), "month", 0),
        ((2500, "EUR"), "month", 0),
        ((12006, "EUR"), "year", 0),
        ((700, "EUR"), "week", 7),
        ((500, "USD"), "month", 0),
        ((1500, "USD"), "month", 14),
        ((3000, "JPY"), "month", 0),
    ] {
        plans.push((
            plan(app, &m, &product, price, interval, trial).await,
            price.1,
        ));
    }
    // Customers pay by card from the start, but for two billed without one (who fall
    // into dunning); cards are swapped for declining ones along the way.
    let mut customers = Vec::new();
    for n in 0..10 {
        let customer = fixtures::customer(app, &m, &format!("r{n}")).await;
        if n < 8 {
            fixtures::attach_default(app, &m, &customer, "pm_card_visa").await;
        }
        customers.push(customer);
    }
    let cards = [
        "pm_card_visa",
        "pm_card_visa",
        "pm_card_visa",
        "pm_card_chargeDeclined",
        "pm_card_insufficientFunds",
    ];
    // Each subscription with its currency; the ones known to have ended are left alone
    // (mostly: a change refused by the state is part of the history too).
    let mut subscriptions: Vec<(String, &str)> = Vec::new();
    let mut ended: Vec<String> = Vec::new();
    let mut paused: Vec<String> = Vec::new();
    let mut instants = vec![app.clock.now()];
    for step in 0..steps {
        let caller = app.by(&m.key);
        let mut live: Vec<&(String, &str)> = subscriptions
            .iter()
            .filter(|(id, _)| !ended.contains(id))
            .collect();
        if live.is_empty() || rng.below(10) == 0 {
            live = subscriptions.iter().collect();
        }
        let sub = (!live.is_empty()).then(|| (*rng.pick(&live)).clone());
        let currency = sub.as_ref().map(|(_, c)| *c);
        let sub = sub.map(|(id, _)| id);
        let same_currency: Vec<&String> = plans
            .iter()
            .filter(|(_, c)| Some(*c) == currency)
            .map(|(id, _)| id)
            .collect();
        let action = rng.below(12);
        let response = match (action, sub.as_ref()) {
            (0..=2, _) | (_, None) => {
                let customer = rng.pick(&customers).clone();
                let (plan, currency) = rng.pick(&plans).clone();
                let body = json!({"customer_id": customer, "plan_id": plan,
                    "quantity": 1 + rng.below(3)});
                let res = caller.post("/v1/subscriptions", &body).await;
                if res.status == 201 {
                    subscriptions.push((res.id(), currency));
                }
                Some(res)
            }
            (3, _) => {
                let customer = rng.pick(&customers).clone();
                let card = *rng.pick(&cards);
                fixtures::attach_default(app, &m, &customer, card).await;
                None
            }
            (4 | 5, Some(sub)) => {
                let body = json!({"plan_id": rng.pick(&same_currency)});
                Some(
                    caller
                        .post(&format!("/v1/subscriptions/{sub}/change_plan"), &body)
                        .await,
                )
            }
            (6, Some(sub)) => {
                let body = json!({"quantity": 1 + rng.below(5)});
                Some(
                    caller
                        .post(&format!("/v1/subscriptions/{sub}/change_quantity"), &body)
                        .await,
                )
            }
            (7, Some(sub)) => {
                let start = if rng.below(2) == 0 {
                    "now"
                } else {
                    "period_end"
                };
                Some(
                    caller
                        .post(
                            &format!("/v1/subscriptions/{sub}/pause"),
                            &json!({"start": {"type": start}}),
                        )
                        .await,
                )
            }
            (8, Some(sub)) => {
                let sub = if paused.is_empty() {
                    sub.clone()
                } else {
                    paused.swap_remove(rng.below(paused.len()))
                };
                Some(
                    caller
                        .post_empty(&format!("/v1/subscriptions/{sub}/resume"))
                        .await,
                )
            }
            (9 | 10, Some(sub)) => {
                let body = if rng.below(2) == 0 {
                    json!({"timing": "now", "access": "immediately", "reason": "unused"})
                } else {
                    json!({"timing": "period_end"})
                };
                Some(
                    caller
                        .post(&format!("/v1/subscriptions/{sub}/cancel"), &body)
                        .await,
                )
            }
            _ => None,
        };
        // Whatever the answer, never a server error.
        if let Some(res) = response {
            assert!(
                res.status.as_u16() < 500,
                "step {step}: {} {}",
                res.status,
                res.body
            );
            match res.body["status"].as_str() {
                Some("canceled" | "incomplete_expired") => ended.push(fixtures::id(&res.body)),
                Some("paused") => paused.push(fixtures::id(&res.body)),
                _ => {}
            }
        }
        // Time moves on by minutes to weeks (renewals, retries and trial ends fall due),
        // now and then not at all (several changes at one instant).
        let minutes = match rng.below(4) {
            0 => 0,
            1 => 1 + rng.below(600),
            2 => 60 * 24 * (1 + rng.below(3)),
            _ => 60 * 24 * (4 + rng.below(20)),
        };
        app.clock
            .advance(Duration::minutes(i64::try_from(minutes).unwrap()));
        if minutes > 0 || step % 5 == 0 {
            engine_rounds(app).await;
        }
        instants.push(app.clock.now());
    }
    History {
        merchant: m,
        instants,
    }
}

/// Periods between the history's instants: exactly at changes, between them, from
/// before the first to after the last, short and long.
fn random_periods(
    rng: &mut Rng,
    instants: &[DateTime<Utc>],
    n: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let first = instants[0] - Duration::days(1);
    let last = *instants.last().unwrap();
    let mut periods = Vec::new();
    while periods.len() < n {
        let mut at = || match rng.below(3) {
            0 => *rng.pick(instants),
            1 => *rng.pick(instants) - Duration::microseconds(1),
            _ => {
                let span = (last - first).num_seconds().max(1);
                first + Duration::seconds(i64::try_from(rng.next() % span.unsigned_abs()).unwrap())
            }
        };
        let (a, b) = (at(), at());
        let (from, to) = (a.min(b), a.max(b));
        if from < to && to - from <= Duration::days(366) {
            periods.push((from, to));
        }
    }
    periods.push((first.max(last - Duration::days(366)), last));
    periods
}

fn event_count(merchant: tenure_domain::ids::MerchantId, event_type: &str) -> String {
    format!(
        "SELECT count(*) AS n FROM events WHERE merchant_id = '{}' AND event_type = '{event_type}'",
        merchant.uuid()
    )
}

/// The rollups answer what the full computation does, for any period of a random history
/// through every kind of change (the reconciliation `tenure metrics reconcile` runs).
#[actix_web::test]
async fn rollup_metrics_equal_the_full_computation_after_a_random_history() {
    let app = TestApp::new().await;
    // Another history: METRICS_HISTORY_SEED=<n> (each seed must reconcile too).
    let seed = std::env::var("METRICS_HISTORY_SEED").map_or(22, |v| v.parse().unwrap());
    let history = random_history(&app, seed, 160).await;
    let m = &history.merchant;
    let merchant: tenure_domain::ids::MerchantId = m.id.parse().unwrap();
    // The history went through what the metrics must follow.
    for event_type in [
        "subscription.created",
        "subscription.paused",
        "subscription.resumed",
        "subscription.canceled",
        "subscription.plan_changed",
        "subscription.quantity_changed",
        "subscription.past_due",
        "subscription.unpaid",
        "subscription.trial_ended",
        "subscription.renewed",
    ] {
        let n = app.count(&event_count(merchant, event_type)).await;
        assert!(n > 0, "no {event_type} in the history");
    }
    let mut rng = Rng(7);
    let periods = random_periods(&mut rng, &history.instants, 150);
    let differences = tenure_app::metrics::reconcile(&app.state.app, merchant, &periods)
        .await
        .unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
    // Not a history where nothing happens: customers came and went in the periods.
    let mut seen = std::collections::BTreeMap::new();
    for &(from, to) in &periods {
        let body = app.get_ok(&metrics_path(from, Some(to)), &m.key).await;
        for currency in body["currencies"].as_array().unwrap() {
            for figure in [
                "new_subscribers",
                "churned_subscribers",
                "active_subscribers",
            ] {
                *seen
                    .entry((figure, currency["currency"].to_string()))
                    .or_insert(0) += currency[figure].as_i64().unwrap();
            }
        }
    }
    for figure in [
        "new_subscribers",
        "churned_subscribers",
        "active_subscribers",
    ] {
        let currencies = seen.iter().filter(|((f, _), n)| *f == figure && **n > 0);
        assert!(currencies.count() >= 2, "{figure}: {seen:?}");
    }
    // Over HTTP too: the response is the full computation's, figure for figure.
    for &(from, to) in periods.iter().take(10) {
        let body = app.get_ok(&metrics_path(from, Some(to)), &m.key).await;
        let full = tenure_app::metrics::recompute(&app.state.app, merchant, from, to)
            .await
            .unwrap();
        assert_eq!(
            body["currencies"],
            serde_json::to_value(&full.currencies).unwrap()
        );
        assert_eq!(body["pauses"], serde_json::to_value(&full.pauses).unwrap());
    }
}

/// The days of every period read as whole weeks plus the ragged days at both ends
/// (`flip_sums`, what `GET /v1/metrics` reads) give exactly what every day row of the
/// period gives (`flip_sums_by_day`), for random periods of a random history of more than
/// a year, among them periods starting or ending at midnight and on Mondays; and each week
/// row is the sum of its days' rows.
#[actix_web::test]
async fn week_rows_sum_what_the_day_rows_do() {
    use tenure_store::repo::metrics::{flip_sums, flip_sums_by_day};
    let app = TestApp::new().await;
    let history = random_history(&app, 41, 130).await;
    let merchant: tenure_domain::ids::MerchantId = history.merchant.id.parse().unwrap();
    let (first, last) = (history.instants[0], *history.instants.last().unwrap());
    assert!(last - first > Duration::days(366), "{first} .. {last}");

    // The week rows (over their shards) are their days' rows summed.
    const BY_WEEK: &str = "SELECT coalesce(string_agg(r, ';' ORDER BY r), '') FROM (
        SELECT concat_ws(',', currency, a_week, y_week, sum(new_w), sum(churn_w),
                         sum(churn_mrr_w)) AS r
          FROM metric_flip_weeks GROUP BY currency, a_week, y_week
        HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0) t";
    const DAYS_BY_WEEK: &str = "SELECT coalesce(string_agg(r, ';' ORDER BY r), '') FROM (
        SELECT concat_ws(',', currency, tenure_week(a_day), tenure_week(y_day), sum(new_w),
                         sum(churn_w), sum(churn_mrr_w)) AS r
          FROM metric_flip_days GROUP BY currency, tenure_week(a_day), tenure_week(y_day)
        HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0) t";
    let weeks = text(&app, BY_WEEK).await;
    assert_eq!(weeks, text(&app, DAYS_BY_WEEK).await);
    assert!(
        app.count("SELECT count(*) AS n FROM metric_flip_weeks WHERE a_week < y_week")
            .await
            > 10,
        "{weeks}"
    );

    let mut rng = Rng(17);
    let mut periods = random_periods(&mut rng, &history.instants, 150);
    // Ends at midnight and on Mondays (the weeks' own boundaries), and a day either side.
    let midnight = |t: DateTime<Utc>| t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let monday = |t: DateTime<Utc>| {
        midnight(t) - Duration::days(i64::from(t.weekday().num_days_from_monday()))
    };
    while periods.len() < 250 {
        let mut at = || {
            let t = *rng.pick(&history.instants);
            let t = if rng.below(2) == 0 {
                midnight(t)
            } else {
                monday(t)
            };
            t + Duration::days(i64::try_from(rng.below(3)).unwrap() - 1)
        };
        let (a, b) = (at(), at());
        if a < b && b - a <= Duration::days(366) {
            periods.push((a, b));
        }
    }

    let mut conn = app.sql().await;
    let mut long_with_flips = 0;
    let mut with_week_rows = 0;
    for &(from, to) in &periods {
        let coarse = flip_sums(&mut conn, merchant, from, to).await.unwrap();
        let by_day = flip_sums_by_day(&mut conn, merchant, from, to)
            .await
            .unwrap();
        assert_eq!(coarse, by_day, "{from} .. {to}");
        if to - from > Duration::days(14) && by_day.iter().any(|r| r.churn_w != 0) {
            long_with_flips += 1;
        }
        let week_rows = app
            .count(&format!(
                "SELECT count(*) AS n FROM metric_flip_weeks
                  WHERE merchant_id = '{}' AND (new_w <> 0 OR churn_w <> 0)
                    AND a_week >= tenure_week(('{}'::timestamptz AT TIME ZONE 'UTC')::date) + 7
                    AND y_week < tenure_week(('{}'::timestamptz AT TIME ZONE 'UTC')::date)",
                merchant.uuid(),
                rfc3339(from),
                rfc3339(to)
            ))
            .await;
        if week_rows > 0 {
            with_week_rows += 1;
        }
    }
    // Not vacuous: many periods counted churn, and read week rows that are not zero.
    assert!(
        long_with_flips > 40,
        "{long_with_flips} of {}",
        periods.len()
    );
    assert!(with_week_rows > 40, "{with_week_rows} of {}", periods.len());
}

/// The migration's backfill rebuilds from history exactly the rollups the trigger kept,
/// and a reconciliation finds rows changed around the trigger until they are rebuilt.
#[actix_web::test]
async fn the_backfill_rebuilds_the_rollups_the_changes_kept() {
    // Day rows summed over their shards; points summed per customer, a and y (the trigger
    // and the rebuild may group a flip's points differently at one instant).
    const ROLLUPS: &str = "SELECT coalesce(string_agg(r, ';' ORDER BY r), '') FROM (
        SELECT concat_ws(',', currency, customer_id, subscription_id, at, mrr, subscriptions,
                         subscribers, live, paused, pauses_started, customer_paying,
                         customer_live, customer_mrr) AS r FROM metric_changes
        UNION ALL SELECT concat_ws(',', currency, day, sum(mrr), sum(subscriptions),
                                   sum(subscribers), sum(paused), sum(pauses_started))
                    FROM metric_days GROUP BY currency, day
        UNION ALL SELECT concat_ws(',', customer_id, currency, paying, live, mrr)
                    FROM metric_customer_counts WHERE paying <> 0
        UNION ALL SELECT concat_ws(',', 'point', currency, customer_id, a, y, sum(new_w),
                                   sum(churn_w), sum(churn_mrr_w))
                    FROM metric_flip_points GROUP BY currency, customer_id, a, y
                  HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0
        UNION ALL SELECT concat_ws(',', 'days', currency, a_day, y_day, sum(new_w),
                                   sum(churn_w), sum(churn_mrr_w))
                    FROM metric_flip_days GROUP BY currency, a_day, y_day
                  HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0
        UNION ALL SELECT concat_ws(',', 'weeks', currency, a_week, y_week, sum(new_w),
                                   sum(churn_w), sum(churn_mrr_w))
                    FROM metric_flip_weeks GROUP BY currency, a_week, y_week
                  HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0
        UNION ALL SELECT 'pending' FROM metric_pending) t";
    let app = TestApp::new().await;
    let history = random_history(&app, 5, 60).await;
    let m = &history.merchant;
    let merchant: tenure_domain::ids::MerchantId = m.id.parse().unwrap();
    let kept = text(&app, ROLLUPS).await;
    assert!(!kept.is_empty());

    assert!(kept.contains("point,"), "no flip in the history: {kept}");
    assert!(kept.contains("weeks,"), "no week row: {kept}");

    // The migrations, down and up again on this history: the same rows.
    let mut conn = app.sql().await;
    for script in [
        include_str!("../../migrations/2026-12-10-210000_metric_flip_weeks/down.sql"),
        include_str!("../../migrations/2026-12-09-050000_metric_flips/down.sql"),
        include_str!("../../migrations/2026-12-08-120001_metric_rollups/down.sql"),
        include_str!("../../migrations/2026-12-08-120001_metric_rollups/up.sql"),
        include_str!("../../migrations/2026-12-09-050000_metric_flips/up.sql"),
        include_str!("../../migrations/2026-12-10-210000_metric_flip_weeks/up.sql"),
    ] {
        diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, script)
            .await
            .unwrap();
    }
    assert_eq!(text(&app, ROLLUPS).await, kept);

    // A change made around the trigger is found by the reconciliation, then repaired.
    let mut rng = Rng(3);
    let periods = random_periods(&mut rng, &history.instants, 20);
    app.exec("ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_metrics_update")
        .await;
    app.exec(format!(
        "UPDATE subscriptions SET status = 'canceled', updated_at = '{}'
          WHERE merchant_id = '{}' AND status IN ('active', 'past_due')",
        rfc3339(history.instants[history.instants.len() - 1] - Duration::microseconds(1)),
        merchant.uuid()
    ))
    .await;
    app.exec("ALTER TABLE subscriptions ENABLE TRIGGER subscriptions_metrics_update")
        .await;
    let found = tenure_app::metrics::reconcile(&app.state.app, merchant, &periods)
        .await
        .unwrap();
    assert!(
        found.iter().any(|d| d.figure.ends_with(".mrr")),
        "{found:#?}"
    );
    tenure_app::metrics::rebuild(&app.state.app, merchant)
        .await
        .unwrap();
    let after = tenure_app::metrics::reconcile(&app.state.app, merchant, &periods)
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:#?}");
}

/// Two transactions of one merchant changing subscriptions of the same customers in
/// opposite orders, one of them moving a subscription to the other's customer, both
/// commit: the customers' counts rows are the only rows locked before commit, and the
/// shared day rows are written at commit in one order (a deadlock before: one held the
/// day row and waited for a customer, the other the reverse). The rollups still agree
/// with the full computation.
#[actix_web::test]
async fn concurrent_changes_and_a_move_between_customers_do_not_deadlock() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::new().await;
    let m = app.merchant("A").await;
    let merchant: tenure_domain::ids::MerchantId = m.id.parse().unwrap();
    let product = fixtures::product(&app, &m, json!({})).await;
    let eur = plan(&app, &m, &product, (1000, "EUR"), "month", 0).await;
    let eur_2500 = plan(&app, &m, &product, (2500, "EUR"), "month", 0).await;
    let c1 = fixtures::customer(&app, &m, "c1").await;
    let c2 = fixtures::customer(&app, &m, "c2").await;
    let s1 = fixtures::subscribe_id(&app, &m, &c1, &eur).await;
    let s2 = fixtures::subscribe_id(&app, &m, &c2, &eur_2500).await;
    let (s1, s2) = (
        fixtures::subscription_uuid(&s1),
        fixtures::subscription_uuid(&s2),
    );
    let c2 = fixtures::customer_uuid(&c2);
    let from = app.clock.now();
    app.clock.advance(Duration::hours(1));
    let at = rfc3339(app.clock.now());

    // T1 pauses c1's subscription (c1's counts row, and before: the day's row).
    let mut t1 = app.sql().await;
    t1.batch_execute(&format!(
        "BEGIN; UPDATE subscriptions SET status = 'paused', updated_at = '{at}'
          WHERE merchant_id = '{}' AND id = '{s1}'",
        merchant.uuid()
    ))
    .await
    .unwrap();
    // T2 pauses c2's (c2's counts row, then the day's row: it waited for T1 before) ...
    let mut t2 = app.sql().await;
    let second = async {
        t2.batch_execute(&format!(
            "BEGIN; UPDATE subscriptions SET status = 'paused', updated_at = '{at}'
              WHERE merchant_id = '{}' AND id = '{s2}'; COMMIT",
            merchant.uuid()
        ))
        .await
    };
    // ... while T1 resumes its subscription and moves it to c2 (c2's counts row).
    let first = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        t1.batch_execute(&format!(
            "UPDATE subscriptions SET status = 'active', customer_id = '{c2}',
                    updated_at = '{at}'
              WHERE merchant_id = '{}' AND id = '{s1}'; COMMIT",
            merchant.uuid()
        ))
        .await
    };
    let (second, first) = tokio::join!(second, first);
    second.unwrap();
    first.unwrap();

    // c1 has nothing left (churned with its 1000), c2 pays 1000 (s1) with s2 paused: one
    // subscriber, not new (it paid 2500 at the start).
    let after = app.clock.now() + Duration::microseconds(1);
    app.clock.advance(Duration::hours(1));
    let body = app
        .get_ok(&metrics_path(from, Some(app.clock.now())), &m.key)
        .await;
    let eur = currency(&body, "EUR");
    assert_eq!(eur["mrr_at_start"], 3500, "{body}");
    assert_eq!(eur["mrr"], 1000, "{body}");
    assert_eq!(eur["active_subscribers_at_start"], 2, "{body}");
    assert_eq!(eur["active_subscribers"], 1, "{body}");
    assert_eq!(eur["new_subscribers"], 0, "{body}");
    assert_eq!(eur["churned_subscribers"], 1, "{body}");
    assert_eq!(eur["churned_mrr"], 1000, "{body}");
    assert_eq!(body["pauses"]["paused"], 1, "{body}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM metric_pending").await,
        0
    );
    // The full computation places a moved subscription at its current customer for all
    // time (it has no history of customers): compared after the move.
    let differences =
        tenure_app::metrics::reconcile(&app.state.app, merchant, &[(after, app.clock.now())])
            .await
            .unwrap();
    assert!(differences.is_empty(), "{differences:#?}");
}

async fn text(app: &TestApp, query: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
    }
    let mut conn = app.sql().await;
    let row: Row = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(format!("SELECT ({query}) AS t")),
        &mut conn,
    )
    .await
    .unwrap();
    row.t
}
