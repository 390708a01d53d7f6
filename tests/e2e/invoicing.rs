//! What a renewal invoices beyond the plan: the prorations of an upgrade (pending items
//! taken by the next invoice, exactly once), a cadence change invoiced at once, discounts
//! (percent and amount, with their cycles), and the event of an invoice dunning gave up.
//! And the first period: invoiced at creation without a trial (charged by the next
//! worker round, paid at once when free, declined into dunning without a card), and only
//! at the trial's end with one.

use chrono::{DateTime, Duration, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Timestamptz, Uuid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::{Value, json};
use tenure_domain::billing::period::{Cadence, Interval, Period};
use tenure_domain::billing::proration::{Proration, prorate_change};
use tenure_domain::clock::Clock;
use tenure_domain::ids::{MerchantId, PlanId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::subscription::PlanTerms;
use tenure_e2e::{TestApp, TestMerchant};
use tenure_engine::renewals::run_until_idle;
use tenure_store::repo::discounts::{self, DiscountValue, NewDiscount};

use crate::fixtures::{self, events, time};

struct Setup {
    m: TestMerchant,
    product: String,
    customer: String,
}

async fn setup(app: &TestApp, token: &str) -> Setup {
    let s = setup_without_card(app).await;
    fixtures::attach_default(app, &s.m, &s.customer, token).await;
    s
}

/// A customer who has no card yet: see [`subscribe_then_add_card`].
async fn setup_without_card(app: &TestApp) -> Setup {
    let m = app.merchant("Invoicing").await;
    let product = fixtures::product(app, &m, json!({})).await;
    let customer = fixtures::customer(app, &m, "u-invoicing").await;
    Setup {
        m,
        product,
        customer,
    }
}

/// Subscribes, then adds the sandbox card `token` as the default. A signup with a card
/// pays its first invoice in the request; one without leaves it open, and the card added
/// after makes it due for the engine: how the engine's first charge and its dunning are
/// reached.
async fn subscribe_then_add_card(app: &TestApp, s: &Setup, plan: &str, token: &str) -> Value {
    let sub = subscribe(app, s, plan).await;
    fixtures::attach_default(app, &s.m, &s.customer, token).await;
    sub
}

async fn plan(app: &TestApp, s: &Setup, name: &str, amount: i64, interval: &str) -> String {
    app.by(&s.m.key)
        .post(
            "/v1/plans",
            &json!({"product_id": s.product, "name": name,
            "price": {"amount": amount, "currency": "EUR"}, "interval": interval}),
        )
        .await
        .expect(201)
        .id()
}

/// The dunning policy: one retry a day after the first failure, then `final_state`.
async fn one_retry_then(app: &TestApp, s: &Setup, final_state: &str) {
    app.by(&s.m.key)
        .put(
            "/v1/dunning_policy",
            &json!({"retry_after_days": [1], "final_state": final_state}),
        )
        .await
        .expect(200);
}

async fn subscribe(app: &TestApp, s: &Setup, plan: &str) -> Value {
    fixtures::subscribe(app, &s.m, &s.customer, plan).await
}

fn amount(v: &Value) -> i64 {
    v["amount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no amount: {v}"))
}

async fn round(app: &TestApp) {
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .expect("renewal round");
}

/// The customer's invoices, oldest first.
async fn invoices(app: &TestApp, s: &Setup) -> Vec<Value> {
    fixtures::invoices_of(app, &s.m, &s.customer).await
}

/// The subscription as the merchant reads it.
async fn subscription(app: &TestApp, s: &Setup, id: &str) -> Value {
    app.get_ok(&format!("/v1/subscriptions/{id}"), &s.m.key)
        .await
}

/// The subscription's upcoming invoice, as the merchant previews it.
async fn upcoming_invoice(app: &TestApp, s: &Setup, id: &str) -> Value {
    app.get_ok(
        &format!("/v1/subscriptions/{id}/upcoming_invoice"),
        &s.m.key,
    )
    .await
}

/// The merchant changes the subscription to `plan` (`action` `change_plan`), or previews
/// the change (`change_plan/preview`): the answer.
async fn change_plan(app: &TestApp, s: &Setup, id: &str, action: &str, plan: &str) -> Value {
    app.by(&s.m.key)
        .post(
            &format!("/v1/subscriptions/{id}/{action}"),
            &json!({"plan_id": plan}),
        )
        .await
        .expect(200)
        .body
}

fn lines_of(invoice: &Value, kind: &str) -> Vec<i64> {
    invoice["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == kind)
        .map(|l| amount(&l["amount"]))
        .collect()
}

/// The totals add up: subtotal = plan + proration lines, discount = discount lines,
/// total = subtotal + discount, amount_due = max(0, total).
fn assert_totals(invoice: &Value) {
    let sum = |kinds: &[&str]| -> i64 { kinds.iter().flat_map(|k| lines_of(invoice, k)).sum() };
    let subtotal = sum(&["plan", "proration"]);
    let discount = sum(&["discount"]);
    assert_eq!(amount(&invoice["subtotal"]), subtotal, "{invoice}");
    assert_eq!(amount(&invoice["discount"]), discount, "{invoice}");
    assert_eq!(amount(&invoice["total"]), subtotal + discount, "{invoice}");
    assert_eq!(
        amount(&invoice["amount_due"]),
        (subtotal + discount).max(0),
        "{invoice}"
    );
}

fn eur(amount: i64) -> Money {
    Money::new(amount, "EUR".parse().unwrap())
}

fn terms(plan: &str, amount: i64, interval: Interval) -> PlanTerms {
    PlanTerms::new(
        plan.parse::<PlanId>().unwrap(),
        eur(amount),
        Cadence::new(interval, 1).unwrap(),
    )
    .unwrap()
}

/// The domain's proration of an upgrade from `basic` (10.00 a month) to `premium`
/// (30.00) at `at`, within `period`.
fn upgrade(basic: &str, premium: &str, period: &Period, at: DateTime<Utc>) -> Proration {
    prorate_change(
        &terms(basic, 1000, Interval::Month),
        &terms(premium, 3000, Interval::Month),
        period,
        at,
    )
    .unwrap()
}

fn period_of(sub: &Value) -> Period {
    Period::new(
        time(&sub["current_period"]["start"]),
        time(&sub["current_period"]["end"]),
    )
    .unwrap()
}

/// The invoice of the first period, made when the subscription (no trial) was created and
/// charged by the first worker round: the plan's price for exactly that period, paid.
fn assert_first_invoice(invoice: &Value, period: &Period, price: i64) {
    assert_eq!(time(&invoice["period_start"]), period.start, "{invoice}");
    assert_eq!(time(&invoice["period_end"]), period.end, "{invoice}");
    assert_eq!(lines_of(invoice, "plan"), vec![price], "{invoice}");
    assert!(lines_of(invoice, "proration").is_empty(), "{invoice}");
    assert!(lines_of(invoice, "discount").is_empty(), "{invoice}");
    assert_totals(invoice);
    assert_eq!(amount(&invoice["total"]), price);
    assert_eq!(invoice["status"], "paid");
    assert_eq!(amount(&invoice["amount_paid"]), price);
    assert_eq!(invoice["attempt_count"], 1);
    assert!(invoice["next_payment_attempt_at"].is_null());
}

#[derive(QueryableByName)]
struct ItemRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    period_start: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Uuid>)]
    invoice_id: Option<uuid::Uuid>,
}

/// Subscribes to `plan` (no trial) and lets a worker round charge the first period's
/// invoice, which is checked: the subscription's id and that period.
async fn subscribed_and_charged(
    app: &TestApp,
    s: &Setup,
    plan: &str,
    price: i64,
) -> (String, Period) {
    let sub = subscribe(app, s, plan).await;
    let id = sub["id"].as_str().expect("a subscription id").to_owned();
    let period = period_of(&sub);
    round(app).await;
    assert_first_invoice(&invoices(app, s).await[0], &period, price);
    (id, period)
}

async fn pending_items(app: &TestApp) -> Vec<ItemRow> {
    let mut conn = app.sql().await;
    diesel::sql_query("SELECT period_start, invoice_id FROM pending_invoice_items ORDER BY id")
        .load(&mut conn)
        .await
        .expect("pending items")
}

#[actix_web::test]
async fn an_upgrade_mid_period_is_billed_once_on_the_next_renewal_with_the_exact_proration() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let basic = plan(&app, &s, "Basic", 1000, "month").await;
    let premium = plan(&app, &s, "Premium", 3000, "month").await;
    let (id, period) = subscribed_and_charged(&app, &s, &basic, 1000).await;
    app.clock.advance(Duration::days(10) + Duration::hours(7));

    let preview = change_plan(&app, &s, &id, "change_plan/preview", &premium).await;
    assert_eq!(preview["invoicing"], "next_invoice");
    assert_eq!(time(&preview["invoiced_at"]), period.end);

    let changed = change_plan(&app, &s, &id, "change_plan", &premium).await;
    assert_eq!(changed["plan_id"], premium.as_str());
    assert_eq!(
        time(&changed["current_period"]["end"]),
        period.end,
        "same cadence keeps the period"
    );
    // Two pending items, not invoiced yet, nothing charged now.
    let items = pending_items(&app).await;
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.invoice_id.is_none()));
    let at = items[0].period_start.expect("item period");
    let expected = upgrade(&basic, &premium, &period, at);
    let credit = expected.lines[0].amount.amount;
    let charge = expected.lines[1].amount.amount;
    assert!(credit < 0 && charge > 0);
    // The first period was paid in full at creation, so the credit is for time paid for.
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1, "no invoice for the upgrade now");
    assert_first_invoice(&all[0], &period, 1000);
    // The preview showed these lines (it ran milliseconds earlier: the same amounts).
    let previewed: Vec<i64> = preview["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| amount(&l["amount"]))
        .collect();
    assert_eq!(previewed, vec![credit, charge]);

    // The upcoming invoice shows the new plan plus the pending prorations.
    let upcoming = upcoming_invoice(&app, &s, &id).await;
    assert_eq!(lines_of(&upcoming, "plan"), vec![3000]);
    assert_eq!(lines_of(&upcoming, "proration"), vec![credit, charge]);
    assert_totals(&upcoming);

    // The renewal invoices exactly that and links the items.
    app.clock.advance_to(period.end + Duration::minutes(1));
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 2, "the first period's invoice, then the renewal");
    assert_first_invoice(&all[0], &period, 1000);
    let renewal = &all[1];
    assert_eq!(time(&renewal["period_start"]), period.end);
    assert_eq!(lines_of(renewal, "plan"), vec![3000]);
    assert_eq!(lines_of(renewal, "proration"), vec![credit, charge]);
    assert_totals(renewal);
    assert_eq!(amount(&renewal["total"]), 3000 + credit + charge);
    assert_eq!(
        amount(&renewal["total"]),
        3000 + expected.amount_due_now.amount - expected.credit_carried.amount
    );
    assert_eq!(renewal["status"], "paid");
    assert_eq!(amount(&renewal["amount_paid"]), 3000 + credit + charge);
    assert!(renewal["next_payment_attempt_at"].is_null());
    assert_eq!(renewal["attempt_count"], 1);
    let renewal_id: tenure_domain::ids::InvoiceId =
        renewal["id"].as_str().unwrap().parse().unwrap();
    let items = pending_items(&app).await;
    assert!(
        items
            .iter()
            .all(|i| i.invoice_id == Some(renewal_id.uuid())),
        "the items are linked to the renewal invoice"
    );

    // The next renewal bills the plan alone: the items are never invoiced twice.
    let next_end = time(&renewal["period_end"]);
    let upcoming = upcoming_invoice(&app, &s, &id).await;
    assert!(lines_of(&upcoming, "proration").is_empty());
    app.clock.advance_to(next_end + Duration::minutes(1));
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 3);
    assert_eq!(lines_of(&all[2], "plan"), vec![3000]);
    assert!(lines_of(&all[2], "proration").is_empty());
    assert_eq!(amount(&all[2]["total"]), 3000);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM invoice_lines WHERE kind = 'proration'")
            .await,
        2
    );
}

#[actix_web::test]
async fn a_cadence_change_invoices_the_new_period_at_once_with_the_credit() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let monthly = plan(&app, &s, "Monthly", 1000, "month").await;
    let yearly = plan(&app, &s, "Yearly", 10_000, "year").await;
    let (id, period) = subscribed_and_charged(&app, &s, &monthly, 1000).await;
    app.clock.advance(Duration::days(12));

    let preview = change_plan(&app, &s, &id, "change_plan/preview", &yearly).await;
    assert_eq!(preview["invoicing"], "now");

    let changed = change_plan(&app, &s, &id, "change_plan", &yearly).await;
    let at = time(&changed["billing_anchor"]);
    assert_eq!(time(&changed["current_period"]["start"]), at);
    assert_eq!(changed["interval"], "year");
    let expected = prorate_change(
        &terms(&monthly, 1000, Interval::Month),
        &terms(&yearly, 10_000, Interval::Year),
        &period,
        at,
    )
    .unwrap();
    let credit = expected.lines[0].amount.amount;
    assert!(credit < 0);
    assert_eq!(expected.lines[1].amount.amount, 10_000);

    // Invoiced in the plan change's transaction: the new period's plan line and the credit
    // (for the unused part of the first period, which its invoice at creation charged).
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 2);
    assert_first_invoice(&all[0], &period, 1000);
    let inv = &all[1];
    assert_eq!(time(&inv["period_start"]), at);
    assert_eq!(
        time(&inv["period_end"]),
        time(&changed["current_period"]["end"])
    );
    assert_eq!(lines_of(inv, "plan"), vec![10_000]);
    assert_eq!(lines_of(inv, "proration"), vec![credit]);
    assert_totals(inv);
    assert_eq!(amount(&inv["total"]), expected.amount_due_now.amount);
    assert_eq!(inv["status"], "open");
    assert_eq!(time(&inv["next_payment_attempt_at"]), at);
    assert_eq!(inv["attempt_count"], 0);
    // The customer sees the same schedule in the portal.
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    let portal = app
        .get_ok(
            &format!("/v1/portal/invoices/{}", inv["id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(time(&portal["next_payment_attempt_at"]), at);
    assert_eq!(portal["attempt_count"], 0);
    assert_eq!(lines_of(&portal, "proration"), vec![credit]);
    assert_eq!(
        amount(&preview["amount_due_now"]),
        expected.amount_due_now.amount,
        "the preview showed what was invoiced"
    );
    // Its lines read as the invoice's: the new period's plan line and the credit.
    let mut previewed: Vec<&str> = preview["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["description"].as_str().unwrap())
        .collect();
    let mut invoiced: Vec<&str> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["description"].as_str().unwrap())
        .collect();
    previewed.sort_unstable();
    invoiced.sort_unstable();
    assert_eq!(previewed, invoiced);

    // The worker charges it at once.
    round(&app).await;
    let inv = &invoices(&app, &s).await[1];
    assert_eq!(inv["status"], "paid");
    assert_eq!(amount(&inv["amount_paid"]), expected.amount_due_now.amount);
    assert!(inv["next_payment_attempt_at"].is_null());
    // Every item was taken by that invoice; the next renewal is a year later, plan only.
    assert!(
        pending_items(&app)
            .await
            .iter()
            .all(|i| i.invoice_id.is_some())
    );
    let upcoming = upcoming_invoice(&app, &s, &id).await;
    assert_eq!(lines_of(&upcoming, "plan"), vec![10_000]);
    assert!(lines_of(&upcoming, "proration").is_empty());
    assert_eq!(
        time(&upcoming["period_start"]),
        time(&changed["current_period"]["end"])
    );
    // The old period's end no longer renews anything.
    app.clock.advance_to(period.end + Duration::minutes(1));
    round(&app).await;
    assert_eq!(invoices(&app, &s).await.len(), 2);
}

/// A customer paying with the sandbox card `token`, and the Gold plan (19.99 a month):
/// the setup and the plan.
async fn gold_plan(app: &TestApp, token: &str) -> (Setup, String) {
    let s = setup(app, token).await;
    let gold = plan(app, &s, "Gold", 1999, "month").await;
    (s, gold)
}

/// A customer without a card yet, and the Gold plan (19.99 a month).
async fn gold_plan_card_later(app: &TestApp) -> (Setup, String) {
    let s = setup_without_card(app).await;
    let gold = plan(app, &s, "Gold", 1999, "month").await;
    (s, gold)
}

/// A card-paying customer subscribed to the Gold plan, its first invoice paid: the setup
/// and the subscription's id.
async fn gold_subscription(app: &TestApp) -> (Setup, String) {
    let (s, gold) = gold_plan(app, "pm_card_visa").await;
    let (id, _) = subscribed_and_charged(app, &s, &gold, 1999).await;
    (s, id)
}

async fn grant(app: &TestApp, s: &Setup, sub: &str, value: DiscountValue, cycles: u32) {
    grant_on(&mut app.sql().await, app, s, sub, value, cycles).await;
}

/// [`grant`] on a connection of the caller's (inside its open transaction, say).
async fn grant_on(
    conn: &mut diesel_async::AsyncPgConnection,
    app: &TestApp,
    s: &Setup,
    sub: &str,
    value: DiscountValue,
    cycles: u32,
) {
    discounts::grant(
        conn,
        s.m.id.parse::<MerchantId>().unwrap(),
        NewDiscount {
            subscription_id: sub.parse::<SubscriptionId>().unwrap(),
            offer_id: None,
            value,
            cycles,
        },
        app.clock.now(),
    )
    .await
    .expect("grant");
}

/// The response to a change shows the subscription's discounts, to the customer and to
/// the merchant: it reads them after the change, unless the subscription had none.
#[actix_web::test]
async fn responses_to_changes_show_the_subscription_s_discounts() {
    let app = TestApp::new().await;
    let (s, id) = gold_subscription(&app).await;
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    // A pause at the period's end, scheduled by the customer, removed by the merchant:
    // neither touches discounts or invoices.
    let pause_and_unschedule = async || {
        let paused = app
            .by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{id}/pause"),
                &json!({"start": {"type": "period_end"}}),
            )
            .await
            .expect(200)
            .body;
        let change = paused["scheduled_changes"][0]["id"].as_str().unwrap();
        let unscheduled = app
            .by(&s.m.key)
            .delete(&format!(
                "/v1/subscriptions/{id}/scheduled_changes/{change}"
            ))
            .await
            .expect(200)
            .body;
        (
            paused["discounts"].clone(),
            unscheduled["discounts"].clone(),
        )
    };
    assert_eq!(pause_and_unschedule().await, (json!([]), json!([])));
    grant(&app, &s, &id, DiscountValue::Percent(20), 2).await;
    let (portal, merchant) = pause_and_unschedule().await;
    for shown in [&portal, &merchant] {
        assert_eq!(shown.as_array().map(Vec::len), Some(1), "{shown}");
        assert_eq!(shown[0]["percent"], 20);
        assert_eq!(shown[0]["cycles_remaining"], 2);
    }
}

/// A change that waited for the subscription's lock sees what the holder committed: here
/// a discount granted meanwhile shows in its response. (Read in the locking statement
/// itself, it would not: that statement's subqueries keep the snapshot from before the
/// wait.)
#[actix_web::test]
async fn a_change_that_waited_for_the_lock_shows_the_discount_granted_meanwhile() {
    let app = TestApp::new().await;
    let (s, id) = gold_subscription(&app).await;
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    let sub: SubscriptionId = id.parse().unwrap();

    let mut holder = app.sql().await;
    holder
        .batch_execute(&format!(
            "SET application_name = 'lock-holder'; BEGIN; \
             SELECT 1 FROM subscriptions WHERE id = '{}' FOR UPDATE",
            sub.uuid()
        ))
        .await
        .expect("lock the subscription");
    grant_on(&mut holder, &app, &s, &id, DiscountValue::Percent(20), 2).await;
    let finished = std::cell::Cell::new(false);
    let pause = async {
        let res = app
            .by(&token)
            .post(
                &format!("/v1/portal/subscriptions/{id}/pause"),
                &json!({"start": {"type": "period_end"}}),
            )
            .await;
        finished.set(true);
        res
    };
    // Commits once the pause waits on the holder's lock; gives up after a while, or when
    // the pause has finished without waiting, so that its own answer shows below.
    let release = async {
        let mut waited = false;
        for _ in 0..1000 {
            waited = app
                .count(
                    "SELECT count(*) AS n FROM pg_stat_activity AS waiting \
                     WHERE EXISTS (SELECT 1 FROM pg_stat_activity AS holder \
                     WHERE holder.application_name = 'lock-holder' \
                     AND holder.datname = current_database() \
                     AND holder.pid = ANY(pg_blocking_pids(waiting.pid)))",
                )
                .await
                > 0;
            if waited || finished.get() {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        holder.batch_execute("COMMIT").await.expect("commit");
        waited
    };
    let (paused, waited) = futures_util::future::join(pause, release).await;
    let discounts = paused.expect(200).body["discounts"].clone();
    assert!(waited, "the pause never waited for the holder's lock");
    assert_eq!(discounts.as_array().map(Vec::len), Some(1), "{discounts}");
    assert_eq!(discounts[0]["percent"], 20);
}

#[actix_web::test]
async fn a_percent_discount_applies_to_exactly_the_next_two_invoices() {
    let app = TestApp::new().await;
    // The first period was invoiced at creation, before the discount existed: full price.
    let (s, id) = gold_subscription(&app).await;
    grant(&app, &s, &id, DiscountValue::Percent(20), 2).await;

    // Shown on the subscription (merchant and portal) and on the preview, unconsumed.
    let read = subscription(&app, &s, &id).await;
    let d = &read["discounts"][0];
    assert!(d["id"].as_str().unwrap().starts_with("disc_"), "{d}");
    assert_eq!(d["percent"], 20);
    assert!(d["amount"].is_null());
    assert_eq!(
        (d["cycles"].clone(), d["cycles_remaining"].clone()),
        (json!(2), json!(2))
    );
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    let portal = app
        .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
        .await;
    assert_eq!(portal["discounts"][0]["percent"], 20);
    let listed = app.get_ok("/v1/subscriptions", &s.m.key).await;
    assert_eq!(listed["data"][0]["discounts"][0]["cycles_remaining"], 2);
    for _ in 0..2 {
        let upcoming = upcoming_invoice(&app, &s, &id).await;
        // 20 % of 19.99 is 3.998, rounded half up to 4.00.
        assert_eq!(lines_of(&upcoming, "discount"), vec![-400]);
        assert_eq!(amount(&upcoming["total"]), 1599);
        assert_totals(&upcoming);
    }
    assert_eq!(
        subscription(&app, &s, &id).await["discounts"][0]["cycles_remaining"],
        2,
        "the preview consumed nothing"
    );

    let mut end = time(&read["current_period"]["end"]);
    for (n, remaining) in [(1, 1), (2, 0)] {
        app.clock.advance_to(end + Duration::minutes(1));
        round(&app).await;
        // The first period's invoice, then one per renewal.
        let all = invoices(&app, &s).await;
        assert_eq!(all.len(), n + 1);
        let inv = &all[n];
        assert_eq!(lines_of(inv, "plan"), vec![1999]);
        assert_eq!(lines_of(inv, "discount"), vec![-400], "renewal {n}");
        assert_eq!(amount(&inv["discount"]), -400);
        assert_eq!(amount(&inv["total"]), 1599);
        assert_eq!(amount(&inv["amount_paid"]), 1599);
        assert_totals(inv);
        let read = subscription(&app, &s, &id).await;
        let left = read["discounts"].as_array().unwrap();
        if remaining > 0 {
            assert_eq!(left[0]["cycles_remaining"], remaining);
        } else {
            assert!(left.is_empty(), "a used-up discount is no longer shown");
            let token = fixtures::session(&app, &s.m, &s.customer).await;
            let portal = app
                .get_ok(&format!("/v1/portal/subscriptions/{id}"), &token)
                .await;
            assert_eq!(portal["discounts"], json!([]), "nor in the portal");
        }
        end = time(&read["current_period"]["end"]);
    }
    let upcoming = upcoming_invoice(&app, &s, &id).await;
    assert!(lines_of(&upcoming, "discount").is_empty());
    app.clock.advance_to(end + Duration::minutes(1));
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 4);
    assert!(lines_of(&all[3], "discount").is_empty(), "not on the third");
    assert_eq!(amount(&all[3]["total"]), 1999);
    assert_eq!(
        app.count("SELECT cycles_remaining::bigint AS n FROM subscription_discounts")
            .await,
        0
    );
}

#[actix_web::test]
async fn an_amount_discount_larger_than_the_subtotal_makes_a_zero_invoice_paid_without_a_charge() {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan(&app, "pm_card_visa").await;
    let (id, _) = subscribed_and_charged(&app, &s, &gold, 1999).await;
    let payments_before = app.count("SELECT count(*) AS n FROM payments").await;
    grant(&app, &s, &id, DiscountValue::Amount(eur(5000)), 1).await;
    // An amount in another currency is skipped (and keeps its cycle).
    grant(
        &app,
        &s,
        &id,
        DiscountValue::Amount(Money::new(100, "USD".parse().unwrap())),
        1,
    )
    .await;
    let read = subscription(&app, &s, &id).await;
    assert_eq!(
        read["discounts"][0]["amount"],
        json!({"amount": 5000, "currency": "EUR"})
    );
    assert!(read["discounts"][0]["percent"].is_null());
    let upcoming = upcoming_invoice(&app, &s, &id).await;
    assert_eq!(lines_of(&upcoming, "discount"), vec![-1999]);
    assert_eq!(amount(&upcoming["amount_due"]), 0);

    app.clock
        .advance_to(time(&read["current_period"]["end"]) + Duration::minutes(1));
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 2, "the first period's invoice, then the renewal");
    let inv = &all[1];
    assert_eq!(lines_of(inv, "discount"), vec![-1999]);
    assert_eq!(amount(&inv["total"]), 0);
    assert_eq!(amount(&inv["amount_due"]), 0);
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["attempt_count"], 0);
    assert!(inv["next_payment_attempt_at"].is_null());
    assert_totals(inv);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM payments").await,
        payments_before,
        "no charge"
    );
    let detail = app
        .get_ok(
            &format!("/v1/invoices/{}", inv["id"].as_str().unwrap()),
            &s.m.key,
        )
        .await;
    assert!(detail["payments"].as_array().unwrap().is_empty());
    let paid = events(&app, &s.m, "invoice.paid").await;
    assert!(paid.iter().any(|e| e["resource_id"] == inv["id"]));
    // The EUR discount is used up; the USD one is still there, untouched.
    let left = subscription(&app, &s, &id).await["discounts"].clone();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["amount"]["currency"], "USD");
    assert_eq!(left[0]["cycles_remaining"], 1);
}

#[actix_web::test]
async fn dunning_exhaustion_with_final_state_canceled_marks_the_invoice_uncollectible_with_an_event()
 {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan_card_later(&app).await;
    one_retry_then(&app, &s, "canceled").await;
    let sub = subscribe_then_add_card(&app, &s, &gold, "pm_card_chargeDeclined").await;
    let id = fixtures::id(&sub);
    round(&app).await; // the first period's invoice, made at creation: declined
    assert_eq!(subscription(&app, &s, &id).await["status"], "past_due");
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1);
    let inv = &all[0];
    assert_eq!(time(&inv["period_start"]), period_of(&sub).start);
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["attempt_count"], 1);
    let retry_at = time(&inv["next_payment_attempt_at"]);
    assert!(retry_at > app.clock.now() + Duration::hours(23));
    assert!(
        events(&app, &s.m, "invoice.marked_uncollectible")
            .await
            .is_empty()
    );

    app.clock.advance_to(retry_at + Duration::minutes(1));
    round(&app).await; // the last retry fails
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1, "the period has not ended: no renewal");
    let inv = &all[0];
    assert_eq!(inv["status"], "uncollectible");
    assert_eq!(inv["attempt_count"], 2);
    assert!(inv["next_payment_attempt_at"].is_null());
    let marked = events(&app, &s.m, "invoice.marked_uncollectible").await;
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["resource_id"], inv["id"]);
    assert_eq!(marked[0]["data"]["object"]["status"], "uncollectible");
    assert_eq!(marked[0]["data"]["previous_attributes"]["status"], "open");
    let read = subscription(&app, &s, &id).await;
    assert_eq!(read["status"], "canceled");
    // A webhook endpoint may subscribe to the new type.
    app.by(&s.m.key)
        .post(
            "/v1/webhook_endpoints",
            &json!({"url": "https://example.com/hook",
                "enabled_events": ["invoice.marked_uncollectible", "invoice.paid"]}),
        )
        .await
        .expect(201);
}

#[actix_web::test]
async fn concurrent_puts_of_different_billing_settings_lose_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("Settings").await;
    for i in 1..=8u32 {
        let policy = app
            .request(actix_web::http::Method::PUT, "/v1/dunning_policy")
            .bearer(&m.key)
            .json(&json!({"retry_after_days": [i, i + 1], "final_state": "unpaid"}))
            .send();
        let days = app
            .request(actix_web::http::Method::PUT, "/v1/billing_settings")
            .bearer(&m.key)
            .json(&json!({"upcoming_notice_days": i}))
            .send();
        let (a, b) = futures_util::future::join(policy, days).await;
        a.expect(200);
        b.expect(200);
        let policy = app.get_ok("/v1/dunning_policy", &m.key).await;
        assert_eq!(policy["retry_after_days"], json!([i, i + 1]), "round {i}");
        assert_eq!(policy["final_state"], "unpaid");
        let settings = app.get_ok("/v1/billing_settings", &m.key).await;
        assert_eq!(settings["upcoming_notice_days"], i, "round {i}");
    }
}

/// A merchant sets its own retention period in its billing settings: null follows the
/// operator's default (90 days unless configured), a value within 7–3650 days is kept,
/// omitting it leaves it as it is, and a value out of bounds is 422 on its field and
/// changes nothing. The purge uses it (engine test
/// `the_purge_removes_old_rows_in_bounded_batches_and_keeps_what_is_needed`).
#[actix_web::test]
async fn the_retention_period_is_the_merchant_s_or_the_operator_s() {
    let app = TestApp::new().await;
    let m = app.merchant("Retention").await;
    let put = |body: serde_json::Value| {
        app.request(actix_web::http::Method::PUT, "/v1/billing_settings")
            .bearer(&m.key)
            .json(&body)
            .send()
    };
    let settings = app.get_ok("/v1/billing_settings", &m.key).await;
    assert_eq!(settings["retention_days"], serde_json::Value::Null);
    assert_eq!(settings["effective_retention_days"], 90);

    let res = put(json!({"upcoming_notice_days": 7, "retention_days": 30}))
        .await
        .expect(200);
    assert_eq!(res.body["retention_days"], 30);
    assert_eq!(res.body["effective_retention_days"], 30);
    put(json!({"upcoming_notice_days": 5})).await.expect(200);
    let settings = app.get_ok("/v1/billing_settings", &m.key).await;
    assert_eq!(
        (
            settings["upcoming_notice_days"].clone(),
            settings["retention_days"].clone()
        ),
        (json!(5), json!(30))
    );

    for bad in [json!(6), json!(3651), json!(-1), json!("ninety")] {
        let res = put(json!({"upcoming_notice_days": 1, "retention_days": bad})).await;
        assert_eq!(res.status.as_u16(), 422, "{bad}: {}", res.body);
        assert_eq!(res.body["code"], "validation_failed", "{bad}");
        assert_eq!(
            res.body["errors"][0]["field"], "retention_days",
            "{bad}: {}",
            res.body
        );
    }
    let settings = app.get_ok("/v1/billing_settings", &m.key).await;
    assert_eq!(
        (
            settings["upcoming_notice_days"].clone(),
            settings["retention_days"].clone()
        ),
        (json!(5), json!(30)),
        "a refused change changes nothing"
    );

    let res = put(json!({"upcoming_notice_days": 5, "retention_days": null}))
        .await
        .expect(200);
    assert_eq!(res.body["retention_days"], serde_json::Value::Null);
    assert_eq!(res.body["effective_retention_days"], 90);
}

/// A clock that stands still, to make a plan change at the very instant a period began.
#[derive(Debug)]
struct Frozen(DateTime<Utc>);

impl Clock for Frozen {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[actix_web::test]
async fn a_cadence_change_at_the_instant_an_invoiced_period_began_keeps_the_charge_pending() {
    use chrono::SubsecRound;
    use tenure_app::subscriptions::{self as subs, Action, Scope};

    let app = TestApp::new().await;
    // No card: a signup with one would pay the first invoice at once.
    let s = setup_without_card(&app).await;
    let monthly = plan(&app, &s, "Monthly", 1000, "month").await;
    let yearly = plan(&app, &s, "Yearly", 10_000, "year").await;
    let t0 = (app.clock.now() + Duration::days(1)).trunc_subsecs(0);
    let frozen = tenure_app::App {
        clock: std::sync::Arc::new(Frozen(t0)),
        ..app.state.app.clone()
    };
    let merchant: MerchantId = s.m.id.parse().unwrap();
    let sub = subs::create(
        &frozen,
        subs::Scope::merchant(merchant),
        s.customer.parse().unwrap(),
        monthly.parse().unwrap(),
    )
    .await
    .expect("subscribe");
    assert_eq!(sub.subscription.current_period.start, t0);
    // The period that began at t0 was invoiced when the subscription was created.
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1);
    assert_eq!(time(&all[0]["period_start"]), t0);
    assert_eq!(lines_of(&all[0], "plan"), vec![1000]);
    assert_eq!(all[0]["status"], "open");
    let mut conn = app.sql().await;

    // A change to the yearly plan at t0 starts a period at t0 again: it cannot be
    // invoiced a second time, so the charge waits with the credit for the next invoice.
    let changed = subs::act(
        &frozen,
        Scope::merchant(merchant),
        sub.subscription.id,
        None,
        Action::ChangePlan(yearly.parse().unwrap()),
    )
    .await
    .expect("change plan");
    assert_eq!(changed.subscription.subscription.current_period.start, t0);
    assert_eq!(
        invoices(&app, &s).await.len(),
        1,
        "no second invoice for t0"
    );
    let amounts: Vec<i64> = {
        #[derive(QueryableByName)]
        struct Amount {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            amount: i64,
        }
        let rows: Vec<Amount> = diesel::sql_query(
            "SELECT amount FROM pending_invoice_items WHERE invoice_id IS NULL ORDER BY amount",
        )
        .load(&mut conn)
        .await
        .expect("items");
        rows.into_iter().map(|r| r.amount).collect()
    };
    assert_eq!(amounts, vec![-1000, 10_000], "credit and charge are kept");
    let upcoming = app
        .get_ok(
            &format!("/v1/subscriptions/{}/upcoming_invoice", sub.subscription.id),
            &s.m.key,
        )
        .await;
    assert_eq!(lines_of(&upcoming, "proration"), vec![-1000, 10_000]);
    assert_totals(&upcoming);
}

#[actix_web::test]
async fn a_subscription_without_a_trial_is_invoiced_at_creation_and_charged_by_the_next_round() {
    let app = TestApp::new().await;
    // Without a card at signup, so that the engine charges the first invoice (one with a
    // card is paid in the request: signup.rs).
    let (s, gold) = gold_plan_card_later(&app).await;
    let sub = subscribe(&app, &s, &gold).await;
    let id = fixtures::id(&sub);
    let period = period_of(&sub);
    assert_eq!(sub["status"], "active");

    // The creation's transaction made the first period's invoice, open and due now.
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1);
    let inv = &all[0];
    assert_eq!(inv["number"], 1);
    assert_eq!(inv["subscription_id"], id.as_str());
    assert_eq!(inv["customer_id"], s.customer.as_str());
    assert_eq!(time(&inv["period_start"]), period.start);
    assert_eq!(time(&inv["period_end"]), period.end);
    assert_eq!(lines_of(inv, "plan"), vec![1999]);
    assert_totals(inv);
    assert_eq!(amount(&inv["amount_due"]), 1999);
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["attempt_count"], 0);
    assert_eq!(time(&inv["next_payment_attempt_at"]), period.start);
    let inv_id = fixtures::id(inv);
    // `subscription.created` shows the subscription the response showed.
    let created = events(&app, &s.m, "subscription.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["resource_id"], id.as_str());
    assert_eq!(created[0]["data"]["object"]["status"], "active");
    assert_eq!(
        time(&created[0]["data"]["object"]["current_period"]["start"]),
        period.start
    );
    assert!(events(&app, &s.m, "invoice.paid").await.is_empty());
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);
    // The customer sees it in the portal.
    let token = fixtures::session(&app, &s.m, &s.customer).await;
    let portal = app.get_ok("/v1/portal/invoices", &token).await;
    assert_eq!(portal["data"][0]["id"], inv_id.as_str());

    // The next worker round charges it with the card added: paid, one payment,
    // `invoice.paid`.
    fixtures::attach_default(&app, &s.m, &s.customer, "pm_card_visa").await;
    assert_eq!(
        run_until_idle(&app.state.app, app.clock.now())
            .await
            .unwrap(),
        1
    );
    let inv = app
        .get_ok(&format!("/v1/invoices/{inv_id}"), &s.m.key)
        .await;
    assert_first_invoice(&inv, &period, 1999);
    let payments = inv["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(amount(&payments[0]["amount"]), 1999);
    let paid = events(&app, &s.m, "invoice.paid").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["resource_id"], inv_id.as_str());
    assert_eq!(paid[0]["data"]["previous_attributes"]["status"], "open");
    assert_eq!(subscription(&app, &s, &id).await["status"], "active");
    // Charged once: nothing more is due until the period ends, and the renewal invoices
    // the next period, not this one again.
    assert_eq!(
        run_until_idle(&app.state.app, app.clock.now())
            .await
            .unwrap(),
        0
    );
    app.clock.advance_to(period.end + Duration::minutes(1));
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], inv_id.as_str());
    assert_eq!(time(&all[1]["period_start"]), period.end);
    assert_eq!(all[1]["status"], "paid");
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 2);
}

#[actix_web::test]
async fn a_subscription_with_a_trial_is_not_invoiced_until_the_trial_ends() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let trial = fixtures::plan_with(&app, &s.m, &s.product, 1999, 14).await;
    let sub = subscribe(&app, &s, &trial).await;
    let id = fixtures::id(&sub);
    assert_eq!(sub["status"], "trialing");
    let trial_end = time(&sub["trial_end"]);
    assert!(invoices(&app, &s).await.is_empty(), "the trial is free");
    app.clock.advance_to(trial_end - Duration::minutes(1));
    round(&app).await;
    assert!(
        invoices(&app, &s).await.is_empty(),
        "nothing during the trial"
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);

    // The trial's end starts the first paid period: invoiced and charged then.
    app.clock.advance_to(trial_end + Duration::minutes(1));
    round(&app).await;
    let read = subscription(&app, &s, &id).await;
    assert_eq!(read["status"], "active");
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1);
    assert_first_invoice(&all[0], &period_of(&read), 1999);
    assert_eq!(time(&all[0]["period_start"]), trial_end);
    assert_eq!(
        events(&app, &s.m, "subscription.trial_ended").await.len(),
        1
    );
    assert_eq!(events(&app, &s.m, "invoice.paid").await.len(), 1);
}

#[actix_web::test]
async fn a_free_plan_s_first_invoice_is_paid_at_creation_without_a_charge() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let free = plan(&app, &s, "Free", 0, "month").await;
    let sub = subscribe(&app, &s, &free).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 1);
    let inv = &all[0];
    assert_eq!(time(&inv["period_start"]), period_of(&sub).start);
    assert_eq!(amount(&inv["total"]), 0);
    assert_eq!(inv["status"], "paid");
    assert_eq!(inv["attempt_count"], 0);
    assert!(inv["next_payment_attempt_at"].is_null());
    let paid = events(&app, &s.m, "invoice.paid").await;
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["resource_id"], inv["id"]);
    assert_eq!(
        run_until_idle(&app.state.app, app.clock.now())
            .await
            .unwrap(),
        0,
        "nothing to charge"
    );
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 0);
}

/// Subscribing is not refused for want of a payment method (a customer often subscribes
/// first and adds a card next): the first invoice is declined like any other
/// (`no_payment_method`, the subscription goes past due and dunning runs), and the card,
/// once added, makes it due at once: the next round pays it.
#[actix_web::test]
async fn a_customer_without_a_payment_method_goes_past_due_and_recovers_when_a_card_is_added() {
    let app = TestApp::new().await;
    let m = app.merchant("Invoicing").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1999).await;
    let customer = fixtures::customer(&app, &m, "u-no-card").await;
    let sub = fixtures::subscribe(&app, &m, &customer, &plan).await;
    assert_eq!(sub["status"], "active");
    let id = fixtures::id(&sub);
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .unwrap();
    assert_eq!(fixtures::status(&app, &m, &id).await, "past_due");
    let invoices = app.get_ok("/v1/invoices", &m.key).await;
    let inv = &invoices["data"][0];
    assert_eq!(invoices["data"].as_array().unwrap().len(), 1);
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["attempt_count"], 1);
    let inv_id = fixtures::id(inv);
    let payments = app.get_ok("/v1/payments", &m.key).await;
    assert_eq!(payments["data"][0]["status"], "declined");
    assert_eq!(payments["data"][0]["failure_code"], "no_payment_method");
    assert_eq!(events(&app, &m, "invoice.payment_failed").await.len(), 1);
    assert_eq!(events(&app, &m, "subscription.past_due").await.len(), 1);

    fixtures::attach_default(&app, &m, &customer, "pm_card_visa").await;
    let due = app.get_ok(&format!("/v1/invoices/{inv_id}"), &m.key).await;
    assert_eq!(due["attempt_count"], 1, "the request charged nothing");
    assert!(
        time(&due["next_payment_attempt_at"]) <= app.state.app.now_micros(),
        "{due}"
    );
    run_until_idle(&app.state.app, app.clock.now())
        .await
        .unwrap();
    assert_eq!(fixtures::status(&app, &m, &id).await, "active");
    let inv = app.get_ok(&format!("/v1/invoices/{inv_id}"), &m.key).await;
    assert_eq!(inv["status"], "paid");
    assert_eq!(amount(&inv["amount_paid"]), 1999);
    assert_eq!(inv["attempt_count"], 2);
    assert_eq!(events(&app, &m, "subscription.recovered").await.len(), 1);
}

/// An upgrade mid-period, then a cancellation at period end: no renewal takes the
/// upgrade's pending items, so ending the subscription bills them on a final invoice (no
/// period), which the next round charges although the subscription is canceled.
#[actix_web::test]
async fn an_upgrade_then_a_cancellation_bills_the_proration_on_a_final_invoice() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let basic = plan(&app, &s, "Basic", 1000, "month").await;
    let premium = plan(&app, &s, "Premium", 3000, "month").await;
    let sub = subscribe(&app, &s, &basic).await;
    let id = fixtures::id(&sub);
    let period = period_of(&sub);
    round(&app).await;
    app.clock.advance(Duration::days(10));
    change_plan(&app, &s, &id, "change_plan", &premium).await;
    let at = pending_items(&app).await[0]
        .period_start
        .expect("item period");
    let expected = upgrade(&basic, &premium, &period, at);
    let (credit, charge) = (
        expected.lines[0].amount.amount,
        expected.lines[1].amount.amount,
    );
    fixtures::cancel(&app, &s.m, &id, json!({"timing": "period_end"})).await;
    assert_eq!(
        invoices(&app, &s).await.len(),
        1,
        "nothing billed before the end"
    );

    app.clock.advance_to(period.end + Duration::seconds(1));
    round(&app).await; // the cancellation takes effect: the final invoice
    round(&app).await; // and it is charged
    let all = invoices(&app, &s).await;
    assert_eq!(
        all.len(),
        2,
        "the first period and the final invoice, no renewal"
    );
    let last = &all[1];
    assert!(
        last.get("period_start").is_some_and(Value::is_null),
        "{last}"
    );
    assert!(last.get("period_end").is_some_and(Value::is_null), "{last}");
    assert_eq!(lines_of(last, "proration"), vec![credit, charge]);
    assert!(lines_of(last, "plan").is_empty());
    assert_totals(last);
    assert_eq!(amount(&last["total"]), credit + charge);
    assert_eq!(last["status"], "paid");
    assert_eq!(last["attempt_count"], 1);
    assert!(
        pending_items(&app)
            .await
            .iter()
            .all(|i| i.invoice_id.is_some())
    );
    let read = subscription(&app, &s, &id).await;
    assert_eq!(read["status"], "canceled");
    // Nothing more is billed afterwards.
    app.clock.advance(Duration::days(40));
    round(&app).await;
    assert_eq!(invoices(&app, &s).await.len(), 2);
}

#[actix_web::test]
async fn an_invoice_can_only_name_a_subscription_of_its_own_merchant() {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan(&app, "pm_card_visa").await;
    subscribe(&app, &s, &gold).await;
    let (other, other_gold) = gold_plan(&app, "pm_card_visa").await;
    subscribe(&app, &other, &other_gold).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM invoices").await, 2);

    let mut conn = app.sql().await;
    let refusals = [
        // Another merchant's subscription.
        "UPDATE invoices i SET subscription_id = s.id FROM subscriptions s
          WHERE s.merchant_id <> i.merchant_id",
        // No subscription at all.
        "UPDATE invoices SET subscription_id = gen_random_uuid()",
    ];
    for statement in refusals {
        let err = diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .expect_err(statement);
        assert!(
            err.to_string().contains("invoices_subscription_fk"),
            "{statement}: {err}"
        );
    }
    // An invoice of no subscription (a one-off) stays allowed.
    diesel::sql_query("UPDATE invoices SET subscription_id = NULL")
        .execute(&mut conn)
        .await
        .expect("null subscription");
}

async fn invoice_action(app: &TestApp, s: &Setup, invoice: &str, action: &str) -> Value {
    app.by(&s.m.key)
        .post_empty(&format!("/v1/invoices/{invoice}/{action}"))
        .await
        .expect(200)
        .body
}

#[actix_web::test]
async fn a_canceled_subscription_s_open_invoice_is_left_to_the_merchant_to_pay_void_or_give_up() {
    let app = TestApp::new().await;
    // The card comes after: a signup with one would pay its first invoice at once.
    let (s, gold) = gold_plan_card_later(&app).await;
    // Three subscriptions canceled before the worker charged their first invoice.
    for _ in 0..3 {
        let sub = subscribe(&app, &s, &gold).await;
        app.by(&s.m.key)
            .post(
                &format!("/v1/subscriptions/{}/cancel", sub["id"].as_str().unwrap()),
                &json!({"timing": "now"}),
            )
            .await
            .expect(200);
    }
    round(&app).await;
    let all = invoices(&app, &s).await;
    assert_eq!(all.len(), 3);
    for inv in &all {
        assert_eq!(inv["status"], "open", "{inv}");
        assert_eq!(
            inv["attempt_count"], 0,
            "the engine stopped collecting: {inv}"
        );
        assert!(inv["next_payment_attempt_at"].is_null(), "{inv}");
    }
    let ids: Vec<String> = all.iter().map(fixtures::id).collect();
    let [paid, voided, given_up] = [&ids[0], &ids[1], &ids[2]];

    fixtures::attach_default(&app, &s.m, &s.customer, "pm_card_visa").await;
    let res = invoice_action(&app, &s, paid, "pay").await;
    assert_eq!(res["status"], "paid");
    assert_eq!(amount(&res["amount_paid"]), 1999);
    assert_eq!(res["attempt_count"], 1);
    let res = invoice_action(&app, &s, voided, "void").await;
    assert_eq!(res["status"], "void");
    assert_eq!(amount(&res["amount_paid"]), 0);
    let res = invoice_action(&app, &s, given_up, "mark_uncollectible").await;
    assert_eq!(res["status"], "uncollectible");

    // What the diagram forbids is a 409 that changes nothing.
    for (id, action, code) in [
        (voided, "pay", "invoice_not_payable"),
        (voided, "void", "invalid_invoice_transition"),
        (voided, "mark_uncollectible", "invalid_invoice_transition"),
        (paid, "void", "invalid_invoice_transition"),
        (paid, "pay", "invoice_not_payable"),
        (given_up, "mark_uncollectible", "invalid_invoice_transition"),
    ] {
        app.by(&s.m.key)
            .post_empty(&format!("/v1/invoices/{id}/{action}"))
            .await
            .expect_problem(409, code);
    }
    // An uncollectible invoice may still be paid.
    let res = invoice_action(&app, &s, given_up, "pay").await;
    assert_eq!(res["status"], "paid");

    let paid_events = events(&app, &s.m, "invoice.paid").await;
    assert_eq!(paid_events.len(), 2);
    let voided_events = events(&app, &s.m, "invoice.voided").await;
    assert_eq!(voided_events.len(), 1);
    assert_eq!(voided_events[0]["data"]["object"]["id"], voided.as_str());
    assert_eq!(
        voided_events[0]["data"]["previous_attributes"]["status"],
        "open"
    );
    let given_up_events = events(&app, &s.m, "invoice.marked_uncollectible").await;
    assert_eq!(given_up_events.len(), 1);
    assert_eq!(
        given_up_events[0]["data"]["object"]["id"],
        given_up.as_str()
    );
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM payments WHERE status = 'succeeded' AND amount = 1999"
        )
        .await,
        2
    );
    // Another merchant's key finds none of them.
    let other = app.merchant("Other").await;
    app.by(&other.key)
        .post_empty(&format!("/v1/invoices/{voided}/pay"))
        .await
        .expect_problem(404, "resource_missing");
    // Nothing more is charged or billed later.
    app.clock.advance(Duration::days(40));
    round(&app).await;
    let all = invoices(&app, &s).await;
    let statuses: Vec<&str> = all.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["paid", "void", "paid"]);
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 2);
}

#[actix_web::test]
async fn paying_by_hand_answers_a_decline_with_402_once_and_recovers_the_subscription() {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan_card_later(&app).await;
    let sub = subscribe_then_add_card(&app, &s, &gold, "pm_card_chargeDeclined").await;
    let sub_id = fixtures::id(&sub);
    round(&app).await;
    assert_eq!(fixtures::status(&app, &s.m, &sub_id).await, "past_due");
    let inv = invoices(&app, &s).await.remove(0);
    let id = fixtures::id(&inv);
    assert_eq!(inv["attempt_count"], 1);
    let retry_at = inv["next_payment_attempt_at"].clone();
    assert!(retry_at.is_string(), "{inv}");

    // The merchant tries at once: a decline is a 402, recorded, and its retry replays it.
    for replayed in [None, Some("true")] {
        let res = app
            .by(&s.m.key)
            .idempotency_key("pay-now-1")
            .post_empty(&format!("/v1/invoices/{id}/pay"))
            .await
            .expect_problem(402, "payment_declined");
        assert!(
            res.body["detail"]
                .as_str()
                .unwrap()
                .contains("card_declined"),
            "{}",
            res.body
        );
        assert_eq!(res.header("idempotent-replayed"), replayed);
    }
    let after = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(after["status"], "open");
    assert_eq!(after["attempt_count"], 2, "one more attempt, not two");
    assert_eq!(
        after["next_payment_attempt_at"], retry_at,
        "the schedule is kept"
    );
    assert_eq!(events(&app, &s.m, "invoice.payment_failed").await.len(), 2);

    // The bank accepts the card now (the customer topped up the account).
    app.exec("UPDATE payment_methods SET gateway_token = 'pm_card_visa'")
        .await;
    let res = app
        .by(&s.m.key)
        .idempotency_key("pay-now-2")
        .post_empty(&format!("/v1/invoices/{id}/pay"))
        .await
        .expect(200);
    assert_eq!(res.body["status"], "paid");
    assert_eq!(res.body["attempt_count"], 3);
    assert!(res.body["next_payment_attempt_at"].is_null());
    assert_eq!(fixtures::status(&app, &s.m, &sub_id).await, "active");
    assert_eq!(events(&app, &s.m, "subscription.recovered").await.len(), 1);
    // The engine's scheduled retry finds nothing left to charge.
    app.clock.advance(Duration::days(2));
    round(&app).await;
    assert_eq!(app.count("SELECT count(*) AS n FROM payments").await, 3);
}

#[actix_web::test]
async fn paying_by_hand_without_a_payment_method_is_refused_and_records_nothing() {
    let app = TestApp::new().await;
    let m = app.merchant("No card").await;
    let product = fixtures::product(&app, &m, json!({})).await;
    let plan = fixtures::plan(&app, &m, &product, 1999).await;
    let customer = fixtures::customer(&app, &m, "u-no-card").await;
    fixtures::subscribe(&app, &m, &customer, &plan).await;
    let s = Setup {
        m,
        product,
        customer,
    };
    let inv = invoices(&app, &s).await.remove(0);
    let id = inv["id"].as_str().unwrap();
    app.by(&s.m.key)
        .post_empty(&format!("/v1/invoices/{id}/pay"))
        .await
        .expect_problem(409, "no_payment_method");
    let after = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(after["attempt_count"], 0);
    assert_eq!(after["payments"], json!([]));
    assert!(
        events(&app, &s.m, "invoice.payment_failed")
            .await
            .is_empty()
    );
}

#[actix_web::test]
async fn a_declined_try_at_an_uncollectible_invoice_leaves_an_active_subscription_active() {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan_card_later(&app).await;
    let sub = subscribe_then_add_card(&app, &s, &gold, "pm_card_chargeDeclined").await;
    let sub_id = sub["id"].as_str().unwrap();
    let id = invoices(&app, &s).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    invoice_action(&app, &s, &id, "mark_uncollectible").await;
    app.by(&s.m.key)
        .post_empty(&format!("/v1/invoices/{id}/pay"))
        .await
        .expect_problem(402, "payment_declined");
    // No retry would ever follow to recover it, so it does not go past due.
    assert_eq!(fixtures::status(&app, &s.m, sub_id).await, "active");
    let after = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(after["status"], "uncollectible");
    assert_eq!(after["attempt_count"], 1);
    assert!(after["next_payment_attempt_at"].is_null(), "{after}");
    round(&app).await;
    let after = app.get_ok(&format!("/v1/invoices/{id}"), &s.m.key).await;
    assert_eq!(after["attempt_count"], 1, "the engine leaves it alone");
}

#[actix_web::test]
async fn an_unpaid_subscriber_pays_the_open_invoice_from_the_portal_and_is_active_again() {
    let app = TestApp::new().await;
    let (s, gold) = gold_plan_card_later(&app).await;
    one_retry_then(&app, &s, "unpaid").await;
    let sub = subscribe_then_add_card(&app, &s, &gold, "pm_card_chargeDeclined").await;
    let sub_id = fixtures::id(&sub);
    round(&app).await;
    app.clock.advance(Duration::days(2));
    round(&app).await;
    assert_eq!(fixtures::status(&app, &s.m, &sub_id).await, "unpaid");
    let id = invoices(&app, &s).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = fixtures::session(&app, &s.m, &s.customer).await;

    // Still declined: a 402, recorded.
    app.by(&token)
        .post_empty(&format!("/v1/portal/invoices/{id}/pay"))
        .await
        .expect_problem(402, "payment_declined");
    // The bank accepts the card again: paying now brings the subscription back.
    app.exec("UPDATE payment_methods SET gateway_token = 'pm_card_visa'")
        .await;
    let paid = app
        .by(&token)
        .post_empty(&format!("/v1/portal/invoices/{id}/pay"))
        .await
        .expect(200);
    assert_eq!(paid.body["status"], "paid");
    assert_eq!(paid.body["attempt_count"], 4);
    assert_eq!(fixtures::status(&app, &s.m, &sub_id).await, "active");
    assert_eq!(events(&app, &s.m, "subscription.recovered").await.len(), 1);

    // Nobody else's invoice, and not with a merchant key.
    let other = fixtures::customer(&app, &s.m, "u-other").await;
    let other_token = fixtures::session(&app, &s.m, &other).await;
    app.by(&other_token)
        .post_empty(&format!("/v1/portal/invoices/{id}/pay"))
        .await
        .expect_problem(404, "resource_missing");
    app.by(&s.m.key)
        .post_empty(&format!("/v1/portal/invoices/{id}/pay"))
        .await
        .expect_problem(403, "merchant_key_not_allowed");
}

/// A subscription's invoices, on their own: one customer's two subscriptions are listed
/// apart, page by page, and a subscription of another merchant lists nothing.
#[actix_web::test]
async fn invoices_are_listed_by_subscription() {
    let app = TestApp::new().await;
    let s = setup(&app, "pm_card_visa").await;
    let monthly = plan(&app, &s, "Monthly", 1000, "month").await;
    let first = fixtures::id(&subscribe(&app, &s, &monthly).await);
    let second = fixtures::id(&subscribe(&app, &s, &monthly).await);
    for _ in 0..2 {
        app.clock.advance(Duration::days(31));
        round(&app).await;
    }
    let of = |sub: &str| {
        let path = format!("/v1/invoices?subscription_id={sub}&limit=2");
        let (app, key) = (&app, s.m.key.clone());
        async move { app.get_ok(&path, &key).await }
    };
    let page = of(&first).await;
    let listed = page["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|i| i["subscription_id"] == first.as_str())
    );
    assert_eq!(page["has_more"], true, "three periods invoiced: {page}");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .get_ok(
            &format!("/v1/invoices?subscription_id={first}&starting_after={cursor}"),
            &s.m.key,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["subscription_id"], first.as_str());
    assert!(
        of(&second).await["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["subscription_id"] == second.as_str())
    );

    let other = app.merchant("Other").await;
    let none = app
        .get_ok(&format!("/v1/invoices?subscription_id={first}"), &other.key)
        .await;
    assert!(none["data"].as_array().unwrap().is_empty());
    let res = app
        .by(&s.m.key)
        .get("/v1/invoices?subscription_id=cus_01jf9zb3f4e3a8r7m2k4t5n6bc")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(res.body["errors"][0]["field"], "subscription_id");
}
