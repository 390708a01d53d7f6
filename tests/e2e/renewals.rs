//! The renewal engine: a year of monthly renewals on the test clock, dunning with
//! recovery and both final states, four concurrent workers on ten thousand due
//! subscriptions, workers killed mid-batch (dropped futures, and real `tenure worker`
//! processes SIGKILLed and restarted), upcoming-renewal notices, and charges: no lock
//! held during a gateway call, a stalled charge taken over after its lease, a slow
//! batch releasing what it did not send.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use diesel::sql_types::{Array, Text, Uuid};
use diesel_async::RunQueryDsl;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tenure_app::App;
use tenure_domain::billing::gateway::{
    CardDetails, ChargeOutcome, ChargeRequest, GatewayCall, PaymentGateway, RefundOutcome,
    RefundRequest, SandboxGateway,
};
use tenure_domain::clock::Clock;
use tenure_domain::ids::{GenerateId, SubscriptionId};
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::{run_due_renewals, run_until_idle};
use tenure_store::Db;

use crate::fixtures::{self, events, invoices_of, status, time};

const PRICE: i64 = 1250;

struct Setup {
    m: TestMerchant,
    customer: String,
    plan: String,
}

async fn setup(app: &TestApp, token: Option<&str>) -> Setup {
    let m = app.merchant("Renewals").await;
    let product = fixtures::product(app, &m, json!({})).await;
    let plan = fixtures::plan(app, &m, &product, PRICE).await;
    let customer = fixtures::customer(app, &m, "u-renew").await;
    if let Some(token) = token {
        fixtures::attach_default(app, &m, &customer, token).await;
    }
    Setup { m, customer, plan }
}

async fn subscribe(app: &TestApp, s: &Setup) -> Value {
    fixtures::subscribe(app, &s.m, &s.customer, &s.plan).await
}

/// Adds a working card after subscribing: a signup with a card pays its first invoice in
/// the request, one without leaves it for the engine's round, which these tests watch.
async fn add_card(app: &TestApp, s: &Setup) {
    fixtures::attach_default(app, &s.m, &s.customer, "pm_card_visa").await;
}

async fn round(app: &TestApp) -> usize {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round")
}

#[actix_web::test]
async fn a_year_of_monthly_renewals_anchored_on_the_31st() {
    let app = TestApp::new().await;
    let s = setup(&app, None).await;
    let year = app.clock.now().year() + 1;
    app.clock
        .advance_to(Utc.with_ymd_and_hms(year, 1, 31, 10, 0, 0).unwrap());
    let sub = subscribe(&app, &s).await;
    add_card(&app, &s).await;
    let id = fixtures::id(&sub);
    let mut period_end = time(&sub["current_period"]["end"]);
    // The first period (January 31st to February 28th) was invoiced at creation: charging
    // it is the only work due before the period ends.
    assert_eq!(
        round(&app).await,
        1,
        "only the first period's charge is due"
    );
    assert_eq!(round(&app).await, 0);
    // That invoice and eleven renewals make the year, up to next January 31st.
    for _ in 0..11 {
        app.clock.advance_to(period_end + Duration::minutes(1));
        round(&app).await;
        let now = app
            .get_ok(&format!("/v1/subscriptions/{id}"), &s.m.key)
            .await;
        assert_eq!(now["status"], "active");
        assert_eq!(time(&now["current_period"]["start"]), period_end);
        period_end = time(&now["current_period"]["end"]);
    }
    let start = time(&sub["current_period"]["start"]);
    assert_eq!(
        period_end,
        start.with_year(year + 1).unwrap(),
        "twelve periods are exactly one year"
    );
    let invoices = invoices_of(&app, &s.m, &s.customer).await;
    assert_eq!(invoices.len(), 12);
    let expected_starts: Vec<(i32, u32, u32)> = vec![
        (year, 1, 31),
        (year, 2, 28),
        (year, 3, 31),
        (year, 4, 30),
        (year, 5, 31),
        (year, 6, 30),
        (year, 7, 31),
        (year, 8, 31),
        (year, 9, 30),
        (year, 10, 31),
        (year, 11, 30),
        (year, 12, 31),
    ];
    assert_eq!(invoices.len(), expected_starts.len());
    let mut previous_end: Option<DateTime<Utc>> = None;
    for (invoice, (y, mo, d)) in invoices.iter().zip(&expected_starts) {
        assert_eq!(invoice["status"], "paid", "{invoice}");
        assert_eq!(invoice["subscription_id"], id.as_str());
        assert_eq!(invoice["total"]["amount"], PRICE);
        assert_eq!(invoice["amount_paid"]["amount"], PRICE);
        assert_eq!(invoice["attempt_count"], 1);
        let start = time(&invoice["period_start"]);
        assert_eq!(
            (start.year(), start.month(), start.day(), start.hour()),
            (*y, *mo, *d, 10),
            "month-end clamping from the 31st"
        );
        if let Some(end) = previous_end {
            assert_eq!(start, end, "periods are contiguous");
        }
        previous_end = Some(time(&invoice["period_end"]));
    }
    let total: i64 = invoices
        .iter()
        .map(|i| i["amount_paid"]["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 12 * PRICE);
    assert_eq!(
        time(&invoices[0]["period_start"]),
        time(&sub["current_period"]["start"])
    );
    assert_eq!(
        time(&invoices[0]["period_end"]),
        time(&sub["current_period"]["end"])
    );
    assert_eq!(previous_end, Some(period_end));
    assert_eq!(events(&app, &s.m, "subscription.renewed").await.len(), 11);
    assert_eq!(events(&app, &s.m, "invoice.paid").await.len(), 12);
    let payments = app.get_ok("/v1/payments?limit=100", &s.m.key).await;
    let payments = payments["data"].as_array().unwrap();
    assert_eq!(payments.len(), 12);
    assert!(payments.iter().all(|p| p["status"] == "succeeded"));
    // Running again at the same instant changes nothing.
    assert_eq!(round(&app).await, 0);
    assert_eq!(invoices_of(&app, &s.m, &s.customer).await.len(), 12);
}

/// Subscribes with a working card (the first period, invoiced at creation, is paid), then
/// makes a declining card the default and lets the first renewal fail.
async fn failing_renewal(app: &TestApp) -> (Setup, String, DateTime<Utc>) {
    let s = setup(app, Some("pm_card_visa")).await;
    let sub = subscribe(app, &s).await;
    let id = fixtures::id(&sub);
    round(app).await;
    let first = invoices_of(app, &s.m, &s.customer).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "paid");
    fixtures::attach_default(app, &s.m, &s.customer, "pm_card_chargeDeclined").await;
    let end = time(&sub["current_period"]["end"]);
    app.clock.advance_to(end + Duration::minutes(1));
    round(app).await;
    let failed_at = app.clock.now();
    assert_eq!(status(app, &s.m, &id).await, "past_due");
    let invoices = invoices_of(app, &s.m, &s.customer).await;
    assert_eq!(invoices.len(), 2);
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(time(&invoices[1]["period_start"]), end);
    assert_eq!(invoices[1]["status"], "open");
    assert_eq!(invoices[1]["attempt_count"], 1);
    (s, id, failed_at)
}

/// Charge attempts of the renewal invoice (the customer's latest).
async fn attempts(app: &TestApp, s: &Setup) -> i64 {
    invoices_of(app, &s.m, &s.customer).await[1]["attempt_count"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn a_declined_renewal_is_retried_and_recovers_when_the_customer_sets_a_working_card() {
    let app = TestApp::new().await;
    let (s, id, failed_at) = failing_renewal(&app).await;
    app.clock.advance_to(failed_at + Duration::hours(23));
    round(&app).await;
    assert_eq!(attempts(&app, &s).await, 1, "no retry before day 1");
    app.clock.advance_to(failed_at + Duration::days(1));
    round(&app).await;
    assert_eq!(attempts(&app, &s).await, 2, "retry on day 1");
    app.clock.advance_to(failed_at + Duration::days(2));
    round(&app).await;
    assert_eq!(attempts(&app, &s).await, 2, "no retry on day 2");
    app.clock.advance_to(failed_at + Duration::days(3));
    round(&app).await;
    assert_eq!(attempts(&app, &s).await, 3, "retry on day 3");
    assert_eq!(status(&app, &s.m, &id).await, "past_due");

    // The customer adds a working card in the portal: the open invoice is due at once,
    // and the next round retries it.
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    app.by(&token)
        .post(
            "/v1/portal/payment_methods",
            &json!({"token": "pm_card_visa", "set_default": true}),
        )
        .await
        .expect(201);
    let due = time(&invoices_of(&app, &s.m, &s.customer).await[1]["next_payment_attempt_at"]);
    assert!(due <= app.state.app.now_micros(), "due at {due}");
    assert_eq!(
        attempts(&app, &s).await,
        3,
        "nothing charged by the request"
    );
    round(&app).await;
    assert_eq!(status(&app, &s.m, &id).await, "active");
    let invoice = &invoices_of(&app, &s.m, &s.customer).await[1];
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["attempt_count"], 4);
    // Nothing more is retried on day 5.
    app.clock.advance_to(failed_at + Duration::days(5));
    round(&app).await;
    assert_eq!(attempts(&app, &s).await, 4);
    assert_eq!(status(&app, &s.m, &id).await, "active");

    assert_eq!(events(&app, &s.m, "invoice.payment_failed").await.len(), 3);
    assert_eq!(events(&app, &s.m, "subscription.past_due").await.len(), 1);
    assert_eq!(events(&app, &s.m, "subscription.recovered").await.len(), 1);
    // The first period's invoice and the recovered renewal.
    assert_eq!(events(&app, &s.m, "invoice.paid").await.len(), 2);
    // Payments (newest first) show every attempt with its status and failure code: the
    // recovery, three declines of the renewal, and the first period's payment.
    let payments = app.get_ok("/v1/payments?limit=100", &s.m.key).await;
    let payments = payments["data"].as_array().unwrap();
    assert_eq!(payments.len(), 5);
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(payments[0]["invoice_id"], invoice["id"]);
    for p in &payments[1..4] {
        assert_eq!(p["status"], "declined");
        assert_eq!(p["failure_code"], "card_declined");
        assert_eq!(p["invoice_id"], invoice["id"]);
    }
    assert_eq!(payments[4]["status"], "succeeded");
    assert_ne!(payments[4]["invoice_id"], invoice["id"]);
}

/// Seeds `n` copies of `template` (same customer, plan and period) with SQL.
async fn clone_subscriptions(app: &TestApp, template: &str, n: usize) {
    let template: SubscriptionId = template.parse().expect("sub id");
    let ids: Vec<SubscriptionId> = (0..n).map(|_| SubscriptionId::generate()).collect();
    let uuids: Vec<uuid::Uuid> = ids.iter().map(|i| i.uuid()).collect();
    let texts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut conn = app.sql().await;
    diesel::sql_query(
        "INSERT INTO subscriptions (merchant_id, id, customer_id, product_id, plan_id, status, \
         current_period_end, state, created_at, updated_at) \
         SELECT t.merchant_id, u.id, t.customer_id, t.product_id, t.plan_id, t.status, \
         t.current_period_end, jsonb_set(t.state, '{id}', to_jsonb(u.tid)), t.created_at, \
         t.updated_at FROM subscriptions t, unnest($1::uuid[], $2::text[]) AS u(id, tid) \
         WHERE t.id = $3",
    )
    .bind::<Array<Uuid>, _>(uuids)
    .bind::<Array<Text>, _>(texts)
    .bind::<Uuid, _>(template.uuid())
    .execute(&mut conn)
    .await
    .expect("seed subscriptions");
}

/// A worker with a connection pool of its own, as another `tenure` process would have.
fn worker_state(app: &TestApp) -> App {
    App {
        db: Db::connect(&app.db.url, 2).expect("pool"),
        ..app.state.app.clone()
    }
}

async fn drain(state: App, now: DateTime<Utc>) -> usize {
    let mut total = 0;
    loop {
        let n = run_due_renewals(&state, now, 50)
            .await
            .expect("worker round");
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Every subscription has exactly one invoice for the renewed period, one successful
/// payment and one of each event. On top: `first_invoices` first-period invoices of
/// subscriptions created through the API (the template the SQL clones copy; the clones
/// have none), charged by the same workers, exactly once too.
async fn assert_exactly_once(app: &TestApp, subs: i64, first_invoices: i64) {
    let invoices = subs + first_invoices;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices").await,
        invoices
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT (subscription_id, period_start)) AS n FROM invoices")
            .await,
        invoices
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices WHERE status = 'paid'")
            .await,
        invoices
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded'")
            .await,
        invoices
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments").await,
        invoices
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM (SELECT invoice_id FROM payments GROUP BY invoice_id \
             HAVING count(*) <> 1) x"
        )
        .await,
        0
    );
    for (event, n) in [("subscription.renewed", subs), ("invoice.paid", invoices)] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(DISTINCT resource_id) AS n FROM events WHERE event_type = '{event}'"
            ))
            .await,
            n,
            "{event}"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) AS n FROM events WHERE event_type = '{event}'"
            ))
            .await,
            n,
            "{event}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoices WHERE next_payment_attempt_at IS NOT NULL")
            .await,
        0
    );
}

#[actix_web::test]
async fn four_workers_renew_thousands_of_due_subscriptions_exactly_once() {
    let n: usize = std::env::var("TENURE_RENEWAL_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let app = TestApp::new().await;
    let s = setup(&app, Some("pm_card_visa")).await;
    let sub = subscribe(&app, &s).await;
    clone_subscriptions(&app, sub["id"].as_str().unwrap(), n).await;
    let subs = i64::try_from(n + 1).unwrap();
    app.clock
        .advance_to(time(&sub["current_period"]["end"]) + Duration::minutes(1));
    let now = app.clock.now();
    let workers: Vec<App> = (0..4).map(|_| worker_state(&app)).collect();
    let started = Instant::now();
    let handled = join_all(workers.into_iter().map(|w| drain(w, now))).await;
    let elapsed = started.elapsed();
    println!(
        "renewed {subs} subscriptions with 4 workers in {:.2}s ({:.0} renewals/s); work items per worker: {handled:?}",
        elapsed.as_secs_f64(),
        subs as f64 / elapsed.as_secs_f64()
    );
    assert!(
        handled.iter().filter(|h| **h > 0).count() > 1,
        "the work was shared"
    );
    assert_exactly_once(&app, subs, 1).await;
}

#[actix_web::test]
async fn workers_killed_mid_batch_lose_and_duplicate_nothing() {
    let app = TestApp::new().await;
    let s = setup(&app, Some("pm_card_visa")).await;
    let sub = subscribe(&app, &s).await;
    clone_subscriptions(&app, sub["id"].as_str().unwrap(), 299).await;
    app.clock
        .advance_to(time(&sub["current_period"]["end"]) + Duration::minutes(1));
    let now = app.clock.now();
    // Workers dropped a few milliseconds into their batch: whatever transaction was open
    // is rolled back (the pool discards the connection).
    // Whether a drop lands mid-batch depends on the machine's speed, so the timeouts
    // start small and the test only needs one drop before the work was done.
    let mut killed_unfinished = 0;
    for ms in [1, 2, 5, 10, 20, 40, 80] {
        let w = worker_state(&app);
        let finished = tokio::time::timeout(
            std::time::Duration::from_millis(ms),
            run_due_renewals(&w, now, 1000),
        )
        .await
        .is_ok();
        // 300 renewal invoices, plus the template's first-period invoice.
        let invoiced = app.count("SELECT count(*) AS n FROM invoices").await;
        if !finished && invoiced < 301 {
            killed_unfinished += 1;
        }
    }
    assert!(
        killed_unfinished > 0,
        "a worker was dropped before the renewals were done"
    );
    // The server rolls back a dropped connection's transaction (releasing its locks)
    // once it notices the closed socket.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let charged_before = app.count("SELECT count(*) AS n FROM payments").await;
    // Restarted workers finish whatever the dropped ones left (a later, undropped worker
    // may already have finished it all); either way each renewal happened exactly once.
    // A charge dropped between its two transactions waits for its lease to end.
    join_all((0..2).map(|_| drain(worker_state(&app), now))).await;
    // (The test clock runs on from `now` in real time, and leases count from it.)
    let after_lease = now + app.state.app.charge_lease + Duration::minutes(1);
    join_all((0..2).map(|_| drain(worker_state(&app), after_lease))).await;
    assert_exactly_once(&app, 300, 1).await;
    assert!(charged_before <= 301);
    // And every subscription moved exactly one period.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM subscriptions WHERE current_period_end > '{}'",
            now.to_rfc3339()
        ))
        .await,
        300
    );
}

/// `tenure worker` processes against one test database, killed when dropped.
struct Workers {
    bin: std::path::PathBuf,
    url: String,
    children: Vec<std::process::Child>,
}

impl Workers {
    fn start(url: &str, n: usize) -> Self {
        let mut w = Self {
            bin: tenure_e2e::tenure_binary(),
            url: url.to_owned(),
            children: Vec::new(),
        };
        for _ in 0..n {
            let child = w.spawn();
            w.children.push(child);
        }
        w
    }

    fn spawn(&self) -> std::process::Child {
        std::process::Command::new(&self.bin)
            .arg("worker")
            .env("DATABASE_URL", &self.url)
            .env("TENURE_POOL_SIZE", "4")
            .env("TENURE_WORKER_INTERVAL_MS", "50")
            // A killed worker's prepared charges are sent again by another once their
            // lease ends; the default (5 min) would outlast the test.
            .env("TENURE_CHARGE_LEASE_SECS", "2")
            .env("TENURE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start `tenure worker`")
    }

    /// SIGKILL: no shutdown code runs, open transactions are cut off mid-flight.
    fn kill(&mut self, k: usize) {
        let child = &mut self.children[k];
        child.kill().expect("SIGKILL the worker");
        child.wait().expect("reap the worker");
    }

    fn restart(&mut self, k: usize) {
        self.children[k] = self.spawn();
    }

    /// Every worker dies at once: nobody is left to finish what any of them began.
    fn kill_all(&mut self) {
        for child in &mut self.children {
            child.kill().expect("SIGKILL the worker");
        }
        for child in &mut self.children {
            child.wait().expect("reap the worker");
        }
    }

    fn restart_all(&mut self) {
        for k in 0..self.children.len() {
            self.restart(k);
        }
    }

    fn assert_running(&mut self) {
        for (k, c) in self.children.iter_mut().enumerate() {
            if let Some(status) = c.try_wait().expect("worker status") {
                panic!("worker {k} exited by itself: {status}");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Seeds `n` monthly subscriptions of the customer whose period ended a moment ago by
/// the real clock (the worker processes use the system clock, not the test clock).
async fn seed_due_by_the_real_clock(app: &TestApp, s: &Setup, product: &str, n: usize) {
    use tenure_domain::billing::period::{Cadence, Interval};
    use tenure_domain::ids::{CustomerId, MerchantId, PlanId, ProductId};
    use tenure_domain::money::{Currency, Money};
    use tenure_domain::subscription::{NewSubscription, PlanTerms, Subscription};
    let plan: PlanId = s.plan.parse().expect("plan id");
    let eur: Currency = "EUR".parse().expect("EUR");
    let terms = PlanTerms::new(
        plan,
        Money::new(PRICE, eur),
        Cadence::new(Interval::Month, 1).expect("cadence"),
    )
    .expect("terms");
    let now = Utc::now();
    let (mut ids, mut states, mut ends, mut starts) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        // 31 days back (a month is at most that long), spread over a second.
        let start = chrono::SubsecRound::trunc_subsecs(
            now - Duration::days(31) - Duration::microseconds(i64::try_from(i).unwrap() * 100),
            6,
        );
        let id = SubscriptionId::generate();
        let sub = Subscription::create(
            NewSubscription {
                id,
                plan: terms,
                trial_days: 0,
                quantity: 1,
                pay_at_signup: false,
            },
            start,
        )
        .expect("subscription")
        .subscription;
        assert!(sub.current_period.end <= now);
        ids.push(id.uuid());
        states.push(serde_json::to_string(&sub).unwrap());
        ends.push(sub.current_period.end);
        starts.push(start);
    }
    let merchant: MerchantId = s.m.id.parse().expect("merchant id");
    let customer: CustomerId = s.customer.parse().expect("customer id");
    let product: ProductId = product.parse().expect("product id");
    let mut conn = app.sql().await;
    diesel::sql_query(
        "INSERT INTO subscriptions (merchant_id, id, customer_id, product_id, plan_id, status, \
         current_period_end, state, created_at, updated_at) \
         SELECT $1, u.id, $2, $3, $4, 'active', u.period_end, u.state::jsonb, u.started, \
           u.started \
         FROM unnest($5::uuid[], $6::text[], $7::timestamptz[], $8::timestamptz[]) \
           AS u(id, state, period_end, started)",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(customer.uuid())
    .bind::<Uuid, _>(product.uuid())
    .bind::<Uuid, _>(plan.uuid())
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Array<Text>, _>(states)
    .bind::<Array<diesel::sql_types::Timestamptz>, _>(ends)
    .bind::<Array<diesel::sql_types::Timestamptz>, _>(starts)
    .execute(&mut conn)
    .await
    .expect("seed due subscriptions");
}

/// Polls `sql` (a count) until `done` accepts it; panics after `timeout`.
async fn wait_for(
    app: &TestApp,
    workers: &mut Workers,
    what: &str,
    sql: &str,
    timeout: std::time::Duration,
    done: impl Fn(i64) -> bool,
) -> i64 {
    let started = Instant::now();
    loop {
        let n = app.count(sql).await;
        if done(n) {
            return n;
        }
        workers.assert_running();
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for {what} (last count {n})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn sigkilled_worker_processes_lose_and_duplicate_nothing() {
    const N: usize = 3_000;
    let app = TestApp::new().await;
    let m = app.merchant("Renewals").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, PRICE).await;
    let customer = fixtures::customer(&app, &m, "u-renew").await;
    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let s = Setup { m, customer, plan };
    seed_due_by_the_real_clock(&app, &s, &product, N).await;
    let n = i64::try_from(N).unwrap();

    let mut workers = Workers::start(&app.db.url, 2);
    // First the whole fleet dies while a charge batch is between its gateway calls and
    // their settlement (charge intents exist), until one such kill leaves prepared
    // charges that nobody alive can settle: the window in which money may have been
    // taken with nothing recorded yet.
    let mut stranded = 0;
    for _ in 0..20 {
        wait_for(
            &app,
            &mut workers,
            "a charge batch in flight",
            "SELECT count(*) AS n FROM charge_intents",
            std::time::Duration::from_secs(120),
            |c| c > 0,
        )
        .await;
        workers.kill_all();
        stranded = app.count("SELECT count(*) AS n FROM charge_intents").await;
        workers.restart_all();
        if stranded > 0 {
            break;
        }
    }
    assert!(
        stranded > 0,
        "a kill left prepared charges for the restarted workers"
    );
    // Then worker 0 alone, as soon as payments go on again and after a third of what is
    // left to pay.
    const PAID: &str = "SELECT count(*) AS n FROM invoices WHERE status = 'paid'";
    let paid = app.count(PAID).await;
    let mut kills = 0;
    for threshold in [paid + 1, paid + (n - paid) / 3] {
        let seen = wait_for(
            &app,
            &mut workers,
            "more invoices paid",
            PAID,
            std::time::Duration::from_secs(120),
            |c| c >= threshold,
        )
        .await;
        if seen >= n {
            break;
        }
        workers.kill(0);
        kills += 1;
        workers.restart(0);
    }
    assert!(
        kills > 0,
        "a worker was killed while renewals were under way"
    );
    wait_for(
        &app,
        &mut workers,
        "every invoice paid",
        PAID,
        std::time::Duration::from_secs(300),
        |c| c >= n,
    )
    .await;
    // Let any straggler finish before counting (nothing may be due any more).
    wait_for(
        &app,
        &mut workers,
        "nothing due",
        "SELECT count(*) AS n FROM subscriptions WHERE current_period_end <= now()",
        std::time::Duration::from_secs(60),
        |c| c == 0,
    )
    .await;
    drop(workers);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        0,
        "every stranded charge was settled"
    );

    // Seeded by SQL: no subscription was created through the API.
    assert_exactly_once(&app, n, 0).await;
    // Gapless numbers 1..=N (a killed transaction gave its numbers back).
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM invoices WHERE number BETWEEN 1 AND {n}"
        ))
        .await,
        n
    );
    assert_eq!(
        app.count("SELECT max(number) AS n FROM invoices").await,
        n,
        "no number was skipped"
    );
    // Every subscription moved exactly one period, and every invoice bills its own.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM subscriptions s JOIN invoices i \
             ON i.subscription_id = s.id AND i.period_end = s.current_period_end \
             WHERE s.status = 'active'"
        )
        .await,
        n
    );
    assert_eq!(
        app.count("SELECT coalesce(sum(amount_paid), 0)::bigint AS n FROM invoices")
            .await,
        n * PRICE
    );
}

/// The sandbox, recording every key and card it is called with, whose first charge stops
/// until the test lets it go on: a gateway that takes its time, or a worker that dies
/// there.
#[derive(Debug)]
struct HeldGateway {
    sandbox: SandboxGateway,
    calls: Mutex<Vec<(String, String)>>,
    hold: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl HeldGateway {
    /// The gateway, and the ends the test holds: told when the first charge arrived, and
    /// the signal that lets it go on.
    fn new() -> (Arc<Self>, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (arrived_tx, arrived_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let gateway = Self {
            sandbox: SandboxGateway::new(),
            calls: Mutex::new(Vec::new()),
            hold: Mutex::new(Some((arrived_tx, go_rx))),
        };
        (Arc::new(gateway), arrived_rx, go_tx)
    }

    /// `(idempotency key, card token)` of every charge so far.
    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl PaymentGateway for HeldGateway {
    fn name(&self) -> &'static str {
        self.sandbox.name()
    }

    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        self.sandbox.card_details(token)
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        self.calls.lock().unwrap().push((
            request.idempotency_key.clone(),
            request.payment_method_token.clone(),
        ));
        let hold = self.hold.lock().unwrap().take();
        if let Some((arrived, go)) = hold {
            // Blocks the stalled worker's own thread, as a hung call would hold it.
            arrived.send(()).unwrap();
            go.recv().unwrap();
        }
        self.sandbox.charge(request)
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        self.sandbox.refund(request)
    }
}

#[actix_web::test]
async fn no_lock_is_held_while_the_gateway_charges_and_a_stalled_charge_is_taken_over_once() {
    let app = TestApp::new().await;
    let s = setup(&app, None).await;
    let sub = subscribe(&app, &s).await;
    add_card(&app, &s).await;
    let sub_id = fixtures::id(&sub);
    let invoice = invoices_of(&app, &s.m, &s.customer).await.remove(0);
    let id = fixtures::id(&invoice);
    let (gateway, arrived, go) = HeldGateway::new();
    // Microseconds, as the engine and the database keep time.
    let now = chrono::SubsecRound::trunc_subsecs(app.clock.now(), 6);

    // A worker of its own (pool, runtime and thread), whose charge stops at the gateway.
    let stalled = App {
        gateway: gateway.clone(),
        ..worker_state(&app)
    };
    let worker = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_due_renewals(&stalled, now, 100))
    });
    arrived
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the charge reached the gateway");

    // Meanwhile no transaction is open, so nothing waits for the gateway…
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND backend_type = 'client backend' AND xact_start IS NOT NULL \
             AND pid <> pg_backend_pid()"
        )
        .await,
        0
    );
    fixtures::cancel(&app, &s.m, &sub_id, json!({"timing": "period_end"})).await;
    // …but the invoice is spoken for: it cannot be charged, voided or given up, and its
    // customer's card cannot be erased.
    for action in ["pay", "void", "mark_uncollectible"] {
        app.by(&s.m.key)
            .post_empty(&format!("/v1/invoices/{id}/{action}"))
            .await
            .expect_problem(409, "payment_in_progress");
    }
    app.by(&s.m.key)
        .post_empty(&format!("/v1/customers/{}/erase", s.customer))
        .await
        .expect_problem(409, "payment_in_progress");
    // A new default card retries the customer's open invoices at once, but not this one.
    fixtures::attach_default(&app, &s.m, &s.customer, "pm_card_mastercard").await;
    let leased = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(leased["status"], "open");
    assert_eq!(leased["attempt_count"], 0);
    // The lease runs from when the charge was prepared (the clock moves on meanwhile).
    let lease_end = time(&leased["next_payment_attempt_at"]);
    assert!(
        lease_end >= now + app.state.app.charge_lease
            && lease_end < now + app.state.app.charge_lease + Duration::minutes(1),
        "{leased}"
    );

    // Once the lease ends another worker sends the same request again and records it.
    let later = lease_end + Duration::seconds(1);
    let taking_over = App {
        gateway: gateway.clone(),
        ..worker_state(&app)
    };
    run_until_idle(&taking_over, later)
        .await
        .expect("takeover round");
    // The same key and the same card, although the customer's default changed meanwhile.
    let key = format!("{id}:1");
    let first = (key.clone(), "pm_card_visa".to_owned());
    assert_eq!(gateway.calls(), [first.clone(), first]);
    let paid = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["attempt_count"], 1);
    assert!(paid["next_payment_attempt_at"].is_null());

    // The stalled worker goes on at last: its charge was settled, so it records nothing.
    go.send(()).unwrap();
    worker
        .join()
        .expect("the stalled worker")
        .expect("its round ends without an error");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded'")
            .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS n FROM payments WHERE idempotency_key = '{key}'"
        ))
        .await,
        1
    );
    assert_eq!(events(&app, &s.m, "invoice.paid").await.len(), 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        0
    );
}

/// The sandbox, whose first charge takes `delay`.
#[derive(Debug)]
struct SlowGateway {
    sandbox: SandboxGateway,
    keys: Mutex<Vec<String>>,
    delay: std::time::Duration,
}

impl PaymentGateway for SlowGateway {
    fn name(&self) -> &'static str {
        self.sandbox.name()
    }

    fn card_details<'a>(&'a self, token: &'a str) -> GatewayCall<'a, Option<CardDetails>> {
        self.sandbox.card_details(token)
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> GatewayCall<'a, ChargeOutcome> {
        let first = {
            let mut keys = self.keys.lock().unwrap();
            keys.push(request.idempotency_key.clone());
            keys.len() == 1
        };
        Box::pin(async move {
            if first {
                tokio::time::sleep(self.delay).await;
            }
            self.sandbox.charge(request).await
        })
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> GatewayCall<'a, RefundOutcome> {
        self.sandbox.refund(request)
    }
}

#[actix_web::test]
async fn a_batch_stops_sending_at_half_its_lease_and_releases_the_rest() {
    let app = TestApp::new().await;
    let s = setup(&app, None).await;
    for _ in 0..3 {
        subscribe(&app, &s).await;
    }
    add_card(&app, &s).await;
    let gateway = Arc::new(SlowGateway {
        sandbox: SandboxGateway::new(),
        keys: Mutex::new(Vec::new()),
        delay: std::time::Duration::from_millis(1200),
    });
    let worker = App {
        gateway: gateway.clone(),
        gateways: Default::default(),
        charge_lease: Duration::seconds(2),
        ..worker_state(&app)
    };
    let now = app.clock.now();

    // The first call takes more than half the lease: the other two are not sent, and
    // the round says there is more to do.
    assert!(run_due_renewals(&worker, now, 100).await.unwrap() > 0);
    assert_eq!(gateway.keys.lock().unwrap().len(), 1);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM charge_intents").await,
        0
    );
    let invoices = invoices_of(&app, &s.m, &s.customer).await;
    let statuses: Vec<&str> = invoices
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "paid").count(), 1);
    for open in invoices.iter().filter(|i| i["status"] == "open") {
        assert_eq!(open["attempt_count"], 0, "{open}");
        // Released, not leased: due again now.
        assert!(time(&open["next_payment_attempt_at"]) <= now, "{open}");
    }

    // The next round sends them.
    run_until_idle(&worker, now).await.unwrap();
    let mut keys = gateway.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3, "three calls in all");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "each key once");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments WHERE status = 'succeeded'")
            .await,
        3
    );
    assert!(
        invoices_of(&app, &s.m, &s.customer)
            .await
            .iter()
            .all(|i| i["status"] == "paid")
    );
}
