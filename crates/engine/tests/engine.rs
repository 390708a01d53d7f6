//! The engine's rounds below HTTP, against a database of each test's own: a renewal
//! round that invoices and charges, a declined charge settled into dunning, and a webhook
//! delivered, signed, to a real receiver on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, Months};
use tenure_app::App;
use tenure_app::billing::invoices;
use tenure_app::dto::events::EventFilterParams;
use tenure_app::sessions::tokens::SessionSigner;
use tenure_app::subscriptions::{self, Scope};
use tenure_domain::billing::gateway::SandboxGateway;
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus};
use tenure_domain::ids::{CustomerId, MerchantId, PlanId};
use tenure_domain::outbound::TargetPolicy;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::SubscriptionStatus;
use tenure_engine::delivery::{WebhookSender, deliver_due};
use tenure_engine::renewals::run_due_renewals;
use tenure_store::PageRequest;
use tenure_store::repo::invoices::InvoiceFilter;
use tenure_test_support::{Clock, TestClock, TestDb, fixtures};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod clocks;

struct World {
    _db: TestDb,
    app: App,
    clock: TestClock,
    merchant: MerchantId,
    customer: CustomerId,
    plan: PlanId,
}

#[path = "engine/incomplete.rs"]
mod incomplete;
#[path = "engine/stock.rs"]
mod stock;

/// A merchant with a monthly plan of 19.99 EUR and a customer paying with `card`.
async fn world(card: &str) -> World {
    world_with(Some(card)).await
}

/// [`world`], the customer without a payment method when `card` is `None`.
async fn world_with(card: Option<&str>) -> World {
    let db = TestDb::new().await;
    let clock = TestClock::new();
    let now = tenure_domain::time::truncate_to_micros(clock.now());
    let mut conn = db.connect().await;
    let merchant = fixtures::merchant(&mut conn, "Roastery").await.id;
    let product = fixtures::product(&mut conn, merchant, PortalPolicy::default(), now).await;
    let plan = fixtures::plan(&mut conn, merchant, product.id, 1999, 0, now).await;
    let customer = fixtures::customer(&mut conn, merchant, "ada", now).await.id;
    if let Some(card) = card {
        fixtures::payment_method(&mut conn, merchant, customer, card, now).await;
    }
    let app = App {
        // The receivers of these tests listen on 127.0.0.1.
        webhook_targets: TargetPolicy::AllowPrivate,
        ..App::new(
            db.pool(4),
            Arc::new(clock.clone()),
            SessionSigner::new(&[7; 32], Duration::hours(1)),
            Arc::new(SandboxGateway::new()),
        )
    };
    World {
        _db: db,
        app,
        clock,
        merchant,
        customer,
        plan: plan.id,
    }
}

impl World {
    /// Runs engine rounds at the clock's time until nothing is due.
    async fn run_rounds(&self) -> usize {
        let mut handled = 0;
        loop {
            let n = run_due_renewals(&self.app, self.clock.now(), 100)
                .await
                .expect("a renewal round");
            if n == 0 {
                return handled;
            }
            handled += n;
        }
    }

    /// The customer's invoices, oldest first.
    async fn invoices(&self) -> Vec<Invoice> {
        let filter = InvoiceFilter {
            customer: Some(self.customer),
            ..InvoiceFilter::default()
        };
        let page = PageRequest {
            limit: 100,
            starting_after: None,
        };
        let mut items = invoices::list_invoices(&self.app, self.merchant, filter, page)
            .await
            .expect("invoices")
            .items;
        items.reverse();
        items
    }

    async fn event_types(&self) -> Vec<String> {
        let filter = EventFilterParams {
            event_type: None,
            resource_id: None,
        };
        let page = PageRequest {
            limit: 100,
            starting_after: None,
        };
        let mut types: Vec<String> =
            tenure_app::events::list(&self.app, self.merchant, filter, page)
                .await
                .expect("events")
                .items
                .into_iter()
                .map(|e| e.event_type)
                .collect();
        types.reverse();
        types
    }
}

#[tokio::test]
async fn a_renewal_round_invoices_the_new_period_and_charges_it_once() {
    let w = world("pm_card_visa").await;
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");
    // The first period was invoiced and paid by subscribing: nothing is left to charge.
    assert_eq!(sub.subscription.status, SubscriptionStatus::Active);
    assert_eq!(w.run_rounds().await, 0);
    let first = w.invoices().await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, InvoiceStatus::Paid);
    assert_eq!(first[0].amount_paid.amount, 1999);

    // A month later the round renews: one new invoice for the next period, paid.
    let period_end = sub.subscription.current_period.end;
    w.clock.advance_to(period_end + Duration::minutes(1));
    w.run_rounds().await;
    let all = w.invoices().await;
    assert_eq!(all.len(), 2, "{all:?}");
    let renewal = &all[1];
    assert_eq!(renewal.status, InvoiceStatus::Paid);
    assert_eq!(renewal.totals.amount_due.amount, 1999);
    assert_eq!(renewal.attempt_count, 1);
    let period = renewal.period.expect("a renewal bills a period");
    assert_eq!(period.start, period_end);
    assert_eq!(
        period.end,
        period_end.checked_add_months(Months::new(1)).unwrap()
    );

    // Nothing more is due, however often the round runs.
    assert_eq!(w.run_rounds().await, 0);
    assert_eq!(w.invoices().await.len(), 2);
    let renewed = subscriptions::get(&w.app, Scope::merchant(w.merchant), sub.subscription.id)
        .await
        .expect("subscription");
    assert_eq!(renewed.subscription.status, SubscriptionStatus::Active);
    assert_eq!(renewed.subscription.current_period.start, period_end);
    let events = w.event_types().await;
    assert_eq!(
        events
            .iter()
            .filter(|t| *t == "subscription.renewed")
            .count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|t| *t == "invoice.paid").count(),
        2,
        "{events:?}"
    );
}

#[tokio::test]
async fn a_declined_charge_is_settled_into_dunning() {
    // Subscribed without a card, the subscription is active with its first invoice due
    // for the engine (a card given at signup would be charged by the signup itself); the
    // card the engine then charges declines.
    let w = world_with(None).await;
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");
    assert_eq!(sub.subscription.status, SubscriptionStatus::Active);
    let mut conn = w._db.connect().await;
    fixtures::payment_method(
        &mut conn,
        w.merchant,
        w.customer,
        "pm_card_chargeDeclined",
        w.clock.now(),
    )
    .await;
    w.run_rounds().await;
    let invoice = &w.invoices().await[0];
    assert_eq!(invoice.status, InvoiceStatus::Open);
    assert_eq!(invoice.attempt_count, 1);
    assert_eq!(invoice.amount_paid.amount, 0);
    let retry = invoice
        .next_payment_attempt_at
        .expect("dunning schedules a retry");
    assert!(retry > w.clock.now(), "the retry is in the future");
    let (_, payments, _) = invoices::get_invoice(&w.app, w.merchant, invoice.id, None)
        .await
        .expect("invoice");
    assert_eq!(payments.len(), 1, "one attempt, recorded once");
    let s = subscriptions::get(&w.app, Scope::merchant(w.merchant), sub.subscription.id)
        .await
        .expect("subscription");
    assert_eq!(s.subscription.status, SubscriptionStatus::PastDue);
    let events = w.event_types().await;
    assert!(
        events.contains(&"invoice.payment_failed".to_owned()),
        "{events:?}"
    );

    // At the retry the engine charges again, under the next attempt number.
    w.clock.advance_to(retry + Duration::seconds(1));
    w.run_rounds().await;
    let invoice = &w.invoices().await[0];
    assert_eq!(invoice.attempt_count, 2);
}

/// A receiver on loopback that answers 200 to every request and counts them, keeping the
/// last request's head.
async fn receiver() -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(std::sync::Mutex::new(String::new()));
    let (c, l) = (count.clone(), last.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 64 * 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            *l.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
            c.fetch_add(1, Ordering::SeqCst);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, count, last)
}

/// An endpoint of the world's merchant at `url` taking `subscription.created`.
async fn subscription_created_endpoint(
    w: &World,
    url: &str,
) -> tenure_domain::webhooks::WebhookEndpoint {
    tenure_app::webhooks::create_endpoint(
        &w.app,
        w.merchant,
        serde_json::from_value(serde_json::json!({
            "url": url,
            "enabled_events": ["subscription.created"],
        }))
        .unwrap(),
    )
    .await
    .expect("endpoint")
}

/// The first ten deliveries of `endpoint`, each with its attempts.
async fn delivery_log(
    w: &World,
    endpoint: &tenure_domain::webhooks::WebhookEndpoint,
) -> tenure_store::Page<(
    tenure_domain::webhooks::WebhookDelivery,
    Vec<tenure_domain::webhooks::DeliveryAttempt>,
)> {
    tenure_app::webhooks::list_deliveries(
        &w.app,
        w.merchant,
        endpoint.id,
        None,
        PageRequest {
            limit: 10,
            starting_after: None,
        },
    )
    .await
    .expect("delivery log")
}

#[tokio::test]
async fn a_webhook_is_delivered_signed_once_and_logged() {
    let w = world("pm_card_visa").await;
    let (url, received, last) = receiver().await;
    let endpoint = subscription_created_endpoint(&w, &url).await;
    subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");

    let sender = WebhookSender::new(
        std::time::Duration::from_secs(5),
        TargetPolicy::AllowPrivate,
    )
    .unwrap();
    let attempts = deliver_due(&w.app, &sender, w.clock.now(), 50)
        .await
        .expect("a delivery round");
    assert_eq!(attempts, 1);
    assert_eq!(received.load(Ordering::SeqCst), 1);
    let head = last.lock().unwrap().to_lowercase();
    assert!(head.contains("webhook-signature: v1,"), "{head}");
    assert!(head.contains("\"type\":\"subscription.created\""), "{head}");
    // Delivered: nothing is due again, now or later.
    w.clock.advance(Duration::hours(1));
    assert_eq!(
        deliver_due(&w.app, &sender, w.clock.now(), 50)
            .await
            .unwrap(),
        0
    );
    assert_eq!(received.load(Ordering::SeqCst), 1);
    let log = delivery_log(&w, &endpoint).await;
    assert_eq!(log.items.len(), 1);
    let (delivery, attempts) = &log.items[0];
    assert_eq!(
        delivery.status,
        tenure_domain::webhooks::DeliveryStatus::Delivered
    );
    assert_eq!(attempts.len(), 1);
}

/// A round records each outcome while the other requests are still polled: with the
/// endpoint's row locked for longer than the send timeout, every delivery waits to be
/// recorded, and each is still recorded as the 200 its receiver answered at once (the
/// round had recorded one at a time, leaving the other requests unpolled until their
/// deadline passed, and then called them timed out).
#[tokio::test]
async fn slow_recording_does_not_turn_answered_requests_into_timeouts() {
    use diesel_async::SimpleAsyncConnection;

    let w = world("pm_card_visa").await;
    let (url, received, _) = receiver().await;
    let endpoint = subscription_created_endpoint(&w, &url).await;
    for _ in 0..3 {
        subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
            .await
            .expect("subscribe");
    }
    let mut locker = w._db.connect().await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM webhook_endpoints WHERE merchant_id = '{}' AND id = '{}' \
             FOR UPDATE",
            w.merchant.uuid(),
            endpoint.id.uuid()
        ))
        .await
        .unwrap();
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        locker.batch_execute("COMMIT").await.unwrap();
    });
    let sender = WebhookSender::new(
        std::time::Duration::from_secs(1),
        TargetPolicy::AllowPrivate,
    )
    .unwrap();
    let attempts = deliver_due(&w.app, &sender, w.clock.now(), 50)
        .await
        .expect("a delivery round");
    unlock.await.unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(received.load(Ordering::SeqCst), 3);
    let log = delivery_log(&w, &endpoint).await;
    assert_eq!(log.items.len(), 3);
    for (delivery, attempts) in &log.items {
        assert_eq!(
            delivery.status,
            tenure_domain::webhooks::DeliveryStatus::Delivered,
            "{attempts:?}"
        );
        assert_eq!(attempts.len(), 1);
    }
}

#[tokio::test]
async fn notice_rounds_side_by_side_send_each_notice_once() {
    use chrono::Datelike;
    use diesel_async::SimpleAsyncConnection;
    use tenure_app::subscriptions::Action;
    use tenure_domain::subscription::{CancelRequest, CancelTiming};
    use tenure_engine::notices::run_due_notices;

    let w = world("pm_card_visa").await;
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");
    let ends = sub.subscription.current_period.end;
    let cancel = CancelRequest {
        timing: Some(CancelTiming::PeriodEnd),
        ..CancelRequest::default()
    };
    subscriptions::act(
        &w.app,
        Scope::merchant(w.merchant),
        sub.subscription.id,
        None,
        Action::Cancel(cancel),
    )
    .await
    .expect("cancel at period end");
    // Two days before access ends (three when that is the first of a month, whose card
    // would be valid for 30 days more), the card runs out with the current month.
    let mut at = ends - Duration::days(2);
    if at.day() == 1 {
        at -= Duration::days(1);
    }
    let mut conn = w._db.connect().await;
    conn.batch_execute(&format!(
        "UPDATE payment_methods SET exp_month = {}, exp_year = {}",
        at.month(),
        at.year()
    ))
    .await
    .expect("card expiry");

    w.clock.advance_to(at);
    let now = w.clock.now();
    let (a, b) = tokio::join!(
        run_due_notices(&w.app, now, 100),
        run_due_notices(&w.app, now, 100)
    );
    assert_eq!(a.expect("a round") + b.expect("a round"), 2);
    assert_eq!(run_due_notices(&w.app, now, 100).await.expect("a rerun"), 0);
    let events = w.event_types().await;
    for notice in ["subscription.access_ending", "payment_method.expiring"] {
        let sent = events.iter().filter(|t| *t == notice).count();
        assert_eq!(sent, 1, "{notice}: {events:?}");
    }
}

/// The shared rate-limit buckets count concurrent requests from several pools (several
/// processes) exactly: of 40 at once against a burst of 10, 10 pass (one more per second
/// the round took), and a sweep removes only buckets that have filled up again.
#[tokio::test]
async fn shared_rate_limit_buckets_count_concurrent_requests_exactly() {
    use tenure_domain::rate_limit::Gcra;
    let w = world("pm_card_visa").await;
    let other = App {
        db: w._db.pool(4),
        ..w.app.clone()
    };
    let limit = Gcra::new(1, 10).unwrap();
    let started = std::time::Instant::now();
    let takes = (0..40).map(|i| {
        let app = if i % 2 == 0 {
            w.app.clone()
        } else {
            other.clone()
        };
        tokio::spawn(async move {
            tenure_app::rate_limits::take(&app, "m:flood", limit)
                .await
                .expect("counted")
        })
    });
    let mut allowed = 0;
    let mut waits = Vec::new();
    for take in futures_util::future::join_all(takes).await {
        match take.expect("task") {
            Ok(()) => allowed += 1,
            Err(wait) => waits.push(wait),
        }
    }
    let secs = started.elapsed().as_secs() + 1;
    assert!(
        (10..=10 + secs).contains(&allowed),
        "{allowed} allowed in under {secs} s"
    );
    assert!(
        waits
            .iter()
            .all(|w| *w <= std::time::Duration::from_secs(1))
    );

    // A bucket far in the past is full again: swept. The flooded one is not.
    let mut conn = w._db.connect().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(
            "INSERT INTO rate_limit_buckets (key, tat_us, allowed) VALUES ('m:idle', 0, true)",
        ),
        &mut conn,
    )
    .await
    .expect("insert");
    assert_eq!(
        tenure_app::rate_limits::sweep(&w.app, 1000).await.unwrap(),
        1
    );
    assert!(
        tenure_app::rate_limits::take(&w.app, "m:flood", limit)
            .await
            .unwrap()
            .is_err()
    );
}

/// Runs one statement of SQL with `$1` = the test's now and `$2` = a merchant id.
async fn exec(db: &TestDb, sql: &str, now: chrono::DateTime<chrono::Utc>, merchant: MerchantId) {
    let mut conn = db.connect().await;
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Timestamptz, _>(now)
            .bind::<diesel::sql_types::Uuid, _>(merchant.uuid()),
        &mut conn,
    )
    .await
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.connect().await;
    let row: N = diesel_async::RunQueryDsl::get_result(diesel::sql_query(sql), &mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.n
}

/// Old events, settled deliveries (with their attempts), audit entries and idempotency
/// keys past their 24 h go, in batches of at most the batch size; young rows stay, an event whose
/// delivery is still pending stays with it, `subscription` events stay (the metrics
/// rebuild past states from them), and a merchant's own shorter period applies to it.
#[tokio::test]
async fn the_purge_removes_old_rows_in_bounded_batches_and_keeps_what_is_needed() {
    use tenure_engine::purge::run_purge;
    let w = world("pm_card_visa").await;
    let db = &w._db;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let a = w.merchant;
    let b = {
        let mut conn = db.connect().await;
        fixtures::merchant(&mut conn, "Short memory").await.id
    };
    let event = |age: &str, kind: &str, n: u32, tag: &str| {
        format!(
            "INSERT INTO events (merchant_id, id, event_type, resource_type, resource_id, data, created_at) \
             SELECT $2, gen_random_uuid(), '{kind}.updated', '{kind}', '{tag}' || g, '{{}}', $1 - interval '{age}' \
               FROM generate_series(1, {n}) g"
        )
    };
    // A: 2,500 customer events 200 days old (go), 5 of 10 days (stay), 3 old
    // subscription events (stay).
    exec(db, &event("200 days", "customer", 2500, "old"), now, a).await;
    exec(db, &event("10 days", "customer", 5, "young"), now, a).await;
    exec(db, &event("200 days", "subscription", 3, "sub"), now, a).await;
    // A: an old event still pending delivery (both stay) and one delivered long ago with
    // two attempts (all three go).
    exec(
        db,
        "INSERT INTO webhook_endpoints (merchant_id, id, url, enabled_events, retry_schedule_secs, secret) \
         VALUES ($2, '00000000-0000-7000-8000-000000000001', 'https://example.com/h', '{*}', '{60}', 's')",
        now,
        a,
    )
    .await;
    for (tag, status, next) in [
        ("pending", "pending", "$1"),
        ("delivered", "delivered", "NULL"),
    ] {
        exec(db, &event("200 days", "invoice", 1, tag), now, a).await;
        exec(
            db,
            &format!(
                "INSERT INTO webhook_deliveries (merchant_id, id, endpoint_id, event_id, event_type, status, \
                   attempts, next_attempt_at, created_at, updated_at) \
                 SELECT $2, gen_random_uuid(), '00000000-0000-7000-8000-000000000001', id, event_type, \
                        '{status}', 2, {next}, created_at, created_at \
                   FROM events WHERE merchant_id = $2 AND resource_id = '{tag}1'"
            ),
            now,
            a,
        )
        .await;
    }
    exec(
        db,
        "INSERT INTO webhook_attempts (merchant_id, delivery_id, attempt, attempted_at, succeeded, latency_ms) \
         SELECT merchant_id, id, g, created_at, g = 2, 5 FROM webhook_deliveries, generate_series(1, 2) g \
          WHERE merchant_id = $2",
        now,
        a,
    )
    .await;
    // B keeps 30 days: its 45-day-old event goes; A's of that age stays (90 by default).
    exec(
        db,
        "INSERT INTO billing_settings (merchant_id, dunning_policy, retention_days) \
         VALUES ($2, '{}', 30)",
        now,
        b,
    )
    .await;
    exec(db, &event("45 days", "customer", 1, "b45"), now, b).await;
    exec(db, &event("45 days", "customer", 1, "a45"), now, a).await;
    // Idempotency keys: one past its 24 h (goes), one inside them (stays).
    exec(
        db,
        "INSERT INTO idempotency_keys (merchant_id, scope, idempotency_key, request_hash, created_at) \
         VALUES ($2, $2::text, 'old', '\\x00', $1 - interval '25 hours'), \
                ($2, $2::text, 'young', '\\x00', $1 - interval '23 hours')",
        now,
        a,
    )
    .await;
    // Audit entries: A's of 200 days go and of 10 days stay; B's of 45 days go (its 30).
    let audit = |age: &str, n: u32, tag: &str| {
        format!(
            "INSERT INTO audit_events (merchant_id, id, api_key_id, method, route, request_id, status, created_at) \
             SELECT $2, gen_random_uuid(), gen_random_uuid(), 'POST', '/v1/customers', '{tag}', 201, \
                    $1 - interval '{age}' FROM generate_series(1, {n}) g"
        )
    };
    exec(db, &audit("200 days", 3, "audit-old"), now, a).await;
    exec(db, &audit("10 days", 2, "audit-young"), now, a).await;
    exec(db, &audit("45 days", 1, "audit-b45"), now, b).await;

    // One batch of 1,000 removes exactly that many events: bounded.
    let first = tenure_app::purge::purge_batch(&w.app, now, 1000)
        .await
        .unwrap();
    assert_eq!(first.events, 1000, "{first:?}");
    assert_eq!(
        (first.deliveries, first.idempotency_keys, first.audit_events),
        (1, 1, 4),
        "{first:?}"
    );
    assert!(first.full(1000));
    // A capped round stops at its cap; an uncapped one works off the rest.
    let capped = run_purge(&w.app, now, 1000, 1).await.unwrap();
    assert_eq!(capped.events, 1000);
    let rest = run_purge(&w.app, now, 1000, 10).await.unwrap();
    // 500 old customer events, the delivered invoice's event, B's 45-day-old one.
    assert_eq!(rest.events, 502, "{rest:?}");
    assert_eq!(run_purge(&w.app, now, 1000, 10).await.unwrap().total(), 0);

    let left = |sql: &'static str| count(db, sql);
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id LIKE 'old%'").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id LIKE 'young%'").await,
        5
    );
    assert_eq!(left("SELECT count(*) AS n FROM events WHERE resource_type = 'subscription' AND resource_id LIKE 'sub%'").await, 3);
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id = 'pending1'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id = 'delivered1'").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered'").await,
        0
    );
    // The pending delivery's two attempts stay; the delivered one's went with it.
    assert_eq!(left("SELECT count(*) AS n FROM webhook_attempts").await, 2);
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id = 'b451'").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM events WHERE resource_id = 'a451'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM idempotency_keys WHERE idempotency_key = 'young'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM idempotency_keys WHERE idempotency_key = 'old'").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) AS n FROM audit_events WHERE request_id = 'audit-young'").await,
        2
    );
    assert_eq!(left("SELECT count(*) AS n FROM audit_events").await, 2);
}

/// The purge runs while writes go on: events recorded during it (young ones, and a
/// delivery settling) are untouched, and every old row still goes, batch by batch.
#[tokio::test]
async fn the_purge_loses_nothing_written_while_it_runs() {
    use tenure_engine::purge::run_purge;
    let w = world("pm_card_visa").await;
    let db = &w._db;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    exec(
        db,
        "INSERT INTO events (merchant_id, id, event_type, resource_type, resource_id, data, created_at) \
         SELECT $2, gen_random_uuid(), 'customer.updated', 'customer', 'old' || g, '{}', \
                $1 - interval '200 days' FROM generate_series(1, 3000) g",
        now,
        w.merchant,
    )
    .await;
    let writer = {
        let url = db.url.clone();
        let merchant = w.merchant;
        tokio::spawn(async move {
            use diesel_async::AsyncConnection;
            let mut conn = diesel_async::AsyncPgConnection::establish(&url)
                .await
                .unwrap();
            for i in 0..200 {
                diesel_async::RunQueryDsl::execute(
                    diesel::sql_query(
                        "INSERT INTO events (merchant_id, id, event_type, resource_type, resource_id, data, created_at) \
                         VALUES ($2, gen_random_uuid(), 'customer.updated', 'customer', $3, '{}', $1)",
                    )
                    .bind::<diesel::sql_types::Timestamptz, _>(now)
                    .bind::<diesel::sql_types::Uuid, _>(merchant.uuid())
                    .bind::<diesel::sql_types::Text, _>(format!("new{i}")),
                    &mut conn,
                )
                .await
                .unwrap();
            }
        })
    };
    let mut purged = 0;
    loop {
        let round = run_purge(&w.app, now, 100, 3).await.unwrap();
        purged += round.events;
        if round.total() == 0 {
            break;
        }
    }
    writer.await.unwrap();
    assert_eq!(purged, 3000);
    assert_eq!(
        count(
            db,
            "SELECT count(*) AS n FROM events WHERE resource_id LIKE 'new%'"
        )
        .await,
        200
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) AS n FROM events WHERE resource_id LIKE 'old%'"
        )
        .await,
        0
    );
}

/// Below HTTP: subscribing with a quantity and changing it are use cases of their own; the
/// renewal round then bills the unit price × the new quantity plus the change's
/// proration, and the plain round after it the quantity alone.
#[tokio::test]
async fn renewals_bill_the_quantity_and_the_proration_of_its_change() {
    let w = world("pm_card_visa").await;
    let plan = tenure_app::catalog::get_plan(&w.app, w.merchant, w.plan)
        .await
        .expect("plan");
    let limits = serde_json::from_value(serde_json::json!({"max_quantity": 5})).expect("input");
    tenure_app::catalog::update_product(&w.app, w.merchant, plan.product_id, limits, None)
        .await
        .expect("limits raised");
    let scope = Scope::merchant(w.merchant);
    let refused =
        subscriptions::create_with_quantity(&w.app, scope, w.customer, w.plan, Some(6)).await;
    assert!(
        matches!(
            refused,
            Err(tenure_app::error::AppError::Domain(
                tenure_domain::DomainError::Validation { .. }
            ))
        ),
        "{refused:?}"
    );
    let sub = subscriptions::create_with_quantity(&w.app, scope, w.customer, w.plan, Some(2))
        .await
        .expect("subscribe");
    assert_eq!(sub.subscription.quantity, 2);
    w.run_rounds().await;
    assert_eq!(w.invoices().await[0].amount_paid.amount, 2 * 1999);

    let period = sub.subscription.current_period;
    w.clock.advance_to(period.start + Duration::days(10));
    let id = sub.subscription.id;
    let preview = subscriptions::preview_quantity_change(&w.app, scope, id, 3)
        .await
        .expect("preview");
    let changed = subscriptions::act(
        &w.app,
        scope,
        id,
        None,
        subscriptions::Action::ChangeQuantity(3),
    )
    .await
    .expect("changed");
    assert_eq!(changed.subscription.subscription.quantity, 3);

    w.clock.advance_to(period.end + Duration::minutes(1));
    w.run_rounds().await;
    let invoices = w.invoices().await;
    assert_eq!(invoices.len(), 2);
    let renewal = &invoices[1];
    assert_eq!(renewal.lines[0].quantity, 3);
    assert_eq!(renewal.lines[0].amount.amount, 3 * 1999);
    let prorations: Vec<i64> = renewal.lines[1..].iter().map(|l| l.amount.amount).collect();
    let previewed: Vec<i64> = preview.lines.iter().map(|l| l.amount.amount).collect();
    assert_eq!(prorations, previewed, "billed exactly as previewed");
    assert_eq!(
        renewal.amount_paid.amount,
        3 * 1999 + previewed.iter().sum::<i64>()
    );
    assert!(
        w.event_types()
            .await
            .iter()
            .any(|t| t == "subscription.quantity_changed")
    );
}

/// `order.upcoming` of a subscription that ships: sent once per renewal by rounds side
/// by side (default lead time, 3 days), with what ships and for how much; none for a
/// skipped renewal, and sent after all when the skip is taken back in the window.
#[tokio::test]
async fn the_order_notice_round_announces_each_shipped_renewal_once() {
    use diesel_async::SimpleAsyncConnection;
    use tenure_app::subscriptions::Action;

    let w = world("pm_card_visa").await;
    let mut conn = w._db.connect().await;
    conn.batch_execute("UPDATE products SET shippable = true")
        .await
        .expect("ship");
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");
    let id = sub.subscription.id;
    let ends = sub.subscription.current_period.end;
    let sent = async || {
        w.event_types()
            .await
            .iter()
            .filter(|t| *t == "order.upcoming")
            .count()
    };

    // Four days ahead: not yet.
    w.clock.advance_to(ends - Duration::days(4));
    w.run_rounds().await;
    assert_eq!(sent().await, 0);

    // Skipped, the renewal ships nothing: marked without a notice.
    subscriptions::act(&w.app, Scope::merchant(w.merchant), id, None, Action::Skip)
        .await
        .expect("skip");
    w.clock.advance_to(ends - Duration::days(2));
    w.run_rounds().await;
    assert_eq!(sent().await, 0, "a skipped renewal is not announced");

    // The skip taken back inside the window: announced once, by whichever round claims it.
    subscriptions::act(
        &w.app,
        Scope::merchant(w.merchant),
        id,
        None,
        Action::Unskip,
    )
    .await
    .expect("unskip");
    let now = w.clock.now();
    let (a, b) = tokio::join!(
        run_due_renewals(&w.app, now, 100),
        run_due_renewals(&w.app, now, 100)
    );
    a.expect("a round");
    b.expect("a round");
    w.run_rounds().await;
    assert_eq!(sent().await, 1);

    let filter = EventFilterParams {
        event_type: Some("order.upcoming".to_owned()),
        resource_id: None,
    };
    let page = PageRequest {
        limit: 10,
        starting_after: None,
    };
    let events = tenure_app::events::list(&w.app, w.merchant, filter, page)
        .await
        .expect("events")
        .items;
    let order = &events[0].data;
    assert_eq!(order["object"], "upcoming_order");
    assert_eq!(order["subscription_id"], id.to_string());
    let renewal_at = order["renewal_at"].as_str().expect("renewal_at");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(renewal_at).expect("a time"),
        ends
    );
    assert_eq!(order["lines"][0]["quantity"], 1);
    assert_eq!(order["lines"][0]["amount"]["amount"], 1999);
    assert_eq!(order["amount_total"]["amount"], 1999);
    assert_eq!(order["shipping_address"], serde_json::Value::Null);
    assert_eq!(
        order["cutoff_at"],
        serde_json::Value::Null,
        "no cutoff by default"
    );
    assert_eq!(order["editable"], true);
    assert_eq!(order["channel_preference"], "email");
}

/// A renewal that ships nothing (its product is not shippable) is marked once by the
/// order-notice round, without an event, so that the claim's index no longer holds it
/// and later rounds do not read it again.
#[tokio::test]
async fn a_renewal_that_does_not_ship_is_marked_once_without_a_notice() {
    use diesel::sql_types::{BigInt, Uuid};
    use diesel::{QueryableByName, sql_query};
    use diesel_async::RunQueryDsl;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    let w = world("pm_card_visa").await;
    let sub = subscriptions::create(&w.app, Scope::merchant(w.merchant), w.customer, w.plan)
        .await
        .expect("subscribe");
    let ends = sub.subscription.current_period.end;
    w.clock.advance_to(ends - Duration::days(2));
    w.run_rounds().await;

    let mut conn = w._db.connect().await;
    let marked = sql_query(
        "SELECT count(*) AS n FROM subscriptions \
         WHERE id = $1 AND order_notice_for = current_period_end",
    )
    .bind::<Uuid, _>(sub.subscription.id.uuid())
    .get_result::<Count>(&mut conn)
    .await
    .expect("count")
    .n;
    assert_eq!(marked, 1, "the renewal is marked as handled");
    assert!(
        !w.event_types().await.iter().any(|t| t == "order.upcoming"),
        "nothing ships, nothing is announced"
    );
}
