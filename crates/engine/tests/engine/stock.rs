//! Stock notices fanned out by the engine (docs/orders.md, "Stock"): every affected
//! subscriber notified exactly once, in bounded batches, with two workers at once and a
//! batch lost to a crash; the merchant's skip and swap applied; a newer change
//! superseding an unfinished one.

use std::sync::Arc;

use chrono::Duration;
use diesel::sql_types::{BigInt, Text, Uuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenure_app::App;
use tenure_app::dto::stock::{ChangeStock, NextOrderActionDto, StockStatusDto};
use tenure_app::sessions::tokens::SessionSigner;
use tenure_app::stock::{change_stock, fan_out_batch_in_tx};
use tenure_domain::billing::gateway::SandboxGateway;
use tenure_domain::catalog::Plan;
use tenure_domain::ids::MerchantId;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::Actor;
use tenure_domain::test_clock::WorkScope;
use tenure_engine::stock::run_stock_notices_in;
use tenure_store::repo::stock as stock_repo;
use tenure_store::repo::subscriptions as subs_repo;
use tenure_test_support::{Clock, TestClock, TestDb, fixtures};

struct StockWorld {
    db: TestDb,
    app: App,
    clock: TestClock,
    merchant: MerchantId,
    plan: Plan,
    other: Plan,
}

async fn stock_world() -> StockWorld {
    let db = TestDb::new().await;
    let clock = TestClock::new();
    let now = tenure_domain::time::truncate_to_micros(clock.now());
    let mut conn = db.connect().await;
    let merchant = fixtures::merchant(&mut conn, "Coffee club").await.id;
    let product = fixtures::product(&mut conn, merchant, PortalPolicy::default(), now).await;
    let plan = fixtures::plan(&mut conn, merchant, product.id, 1999, 0, now).await;
    let other = fixtures::plan(&mut conn, merchant, product.id, 2499, 0, now).await;
    let app = App::new(
        db.pool(6),
        Arc::new(clock.clone()),
        SessionSigner::new(&[7; 32], Duration::hours(1)),
        Arc::new(SandboxGateway::new()),
    );
    StockWorld {
        db,
        app,
        clock,
        merchant,
        plan,
        other,
    }
}

fn out_of_stock(next: NextOrderActionDto, substitute: Option<String>) -> ChangeStock {
    ChangeStock {
        status: StockStatusDto::OutOfStock,
        expected_at: None,
        next_order: Some(next),
        substitute_plan_id: substitute,
        choices: vec![],
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// Marks `n` subscriptions of `plan` (the first by id) canceled, row and state alike.
async fn cancel_some(conn: &mut AsyncPgConnection, plan: &Plan, n: i64) {
    sql_query(
        "UPDATE subscriptions SET status = 'canceled', \
             state = jsonb_set(state, '{status}', '\"canceled\"') \
         WHERE id IN (SELECT id FROM subscriptions WHERE plan_id = $1 ORDER BY id LIMIT $2)",
    )
    .bind::<Uuid, _>(plan.id.uuid())
    .bind::<BigInt, _>(n)
    .execute(conn)
    .await
    .expect("cancel some");
}

#[tokio::test]
async fn ten_thousand_subscribers_are_each_notified_exactly_once() {
    let w = stock_world().await;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let mut conn = w.db.connect().await;
    fixtures::many_subscribers(&mut conn, w.merchant, &w.plan, "box", 10_030, now).await;
    fixtures::many_subscribers(&mut conn, w.merchant, &w.other, "other", 40, now).await;
    cancel_some(&mut conn, &w.plan, 30).await;

    let notice = change_stock(
        &w.app,
        w.merchant,
        w.plan.id,
        ChangeStock {
            expected_at: Some(now + Duration::days(20)),
            ..out_of_stock(NextOrderActionDto::ShipAnyway, None)
        },
    )
    .await
    .expect("the stock change");
    assert_eq!(notice.notified, 0, "answered before anyone is notified");

    // A crash in the middle of a batch: its transaction never commits.
    let crashed: Result<(), diesel::result::Error> = conn
        .transaction(async |tx| {
            let (merchant, claimed) = stock_repo::claim_unfinished(tx, &[])
                .await
                .expect("claim")
                .expect("a notice to claim");
            let outcome = fan_out_batch_in_tx(tx, merchant, &claimed, 700, now)
                .await
                .expect("a batch");
            assert_eq!(outcome.notified, 700);
            // The process dies before COMMIT.
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(crashed.is_err());
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        0,
        "a batch that did not commit notified nobody"
    );

    // Two workers at once, in batches of 700 (the last one short).
    let run = |app: App| async move {
        let mut total = 0;
        loop {
            let round = run_stock_notices_in(&app, WorkScope::RealTime, now, 2, 700)
                .await
                .expect("a stock round");
            total += round.notified;
            if round.batches == 0 {
                // Nothing claimable now; done unless the other worker holds the notice.
                let mut c = app.db.conn().await.expect("a connection");
                let open = count(
                    &mut c,
                    "SELECT count(*) AS n FROM stock_notices WHERE done_at IS NULL",
                )
                .await;
                if open == 0 {
                    return total;
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(run(w.app.clone())),
        tokio::spawn(run(w.app.clone()))
    );
    let (a, b) = (a.expect("worker a"), b.expect("worker b"));
    assert_eq!(
        a + b,
        10_000,
        "the two workers notified 10,000 between them"
    );

    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        10_000
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT resource_id) AS n FROM events \
             WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        10_000,
        "one event per subscriber"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM stock_notice_recipients r JOIN subscriptions s \
               ON s.merchant_id = r.merchant_id AND s.id = r.subscription_id \
             WHERE s.status = 'canceled' OR s.plan_id <> (SELECT plan_id FROM stock_notices)"
        )
        .await,
        0,
        "no canceled subscriber and no subscriber of another plan was notified"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM stock_notice_recipients"
        )
        .await,
        10_000,
        "one recipient row per event"
    );
    let done = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, notice.id, false)
        .await
        .expect("the notice");
    assert_eq!(done.notified, 10_000);
    assert!(done.done_at.is_some(), "the notice is done");
    // A later round finds nothing more to send.
    let again = run_stock_notices_in(&w.app, WorkScope::RealTime, now, 5, 700)
        .await
        .expect("a round");
    assert_eq!(again.notified, 0);
    // Each event names its subscriber's customer, for the customer's timeline.
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.stock_notice' \
             AND customer_id IS NOT NULL AND data ->> 'stock' IS NOT NULL"
        )
        .await,
        10_000
    );
}

#[derive(QueryableByName)]
struct Code {
    #[diesel(sql_type = Text)]
    code: String,
}

#[tokio::test]
async fn skip_and_swap_reach_the_next_order_and_a_newer_change_supersedes() {
    let w = stock_world().await;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let mut conn = w.db.connect().await;
    let subs = fixtures::many_subscribers(&mut conn, w.merchant, &w.plan, "box", 25, now).await;
    // One of them is past due: neither skip nor swap applies to it; it is notified all
    // the same.
    let paused = &subs[3];
    sql_query(
        "UPDATE subscriptions SET status = 'past_due', \
             state = jsonb_set(state, '{status}', '\"past_due\"') \
         WHERE id = $1",
    )
    .bind::<Uuid, _>(paused.subscription.id.uuid())
    .execute(&mut conn)
    .await
    .expect("past due");

    let skip = change_stock(
        &w.app,
        w.merchant,
        w.plan.id,
        out_of_stock(NextOrderActionDto::Skip, None),
    )
    .await
    .expect("skip change");
    // One batch of 10 only, then the merchant changes the stock again.
    let first = run_stock_notices_in(&w.app, WorkScope::RealTime, now, 1, 10)
        .await
        .expect("a round");
    assert_eq!(first.notified, 10);
    let swap = change_stock(
        &w.app,
        w.merchant,
        w.plan.id,
        out_of_stock(NextOrderActionDto::Swap, Some(w.other.id.to_string())),
    )
    .await
    .expect("swap change");
    let old = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, skip.id, false)
        .await
        .expect("the old notice");
    assert_eq!(old.superseded_by, Some(swap.id));
    assert_eq!(
        old.notified, 10,
        "the superseded notice stopped where it was"
    );
    assert!(old.done_at.is_some());
    loop {
        let round = run_stock_notices_in(&w.app, WorkScope::RealTime, now, 5, 10)
            .await
            .expect("a round");
        if round.batches == 0 {
            break;
        }
    }
    let new = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, swap.id, false)
        .await
        .expect("the new notice");
    assert_eq!(new.notified, 25, "the newer notice reached everyone");

    // The first ten got the merchant's skip (the past-due one excepted).
    let skipped = count(
        &mut conn,
        "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.renewal_skip_scheduled'",
    )
    .await;
    let past_due_in_first_ten = subs[..10]
        .iter()
        .any(|s| s.subscription.id == paused.subscription.id);
    assert_eq!(skipped, if past_due_in_first_ten { 9 } else { 10 });
    // Every active one has the swap scheduled at its next renewal.
    for s in &subs {
        let stored = subs_repo::get(&mut conn, w.merchant, s.subscription.id, false)
            .await
            .expect("the subscription");
        let change = stored
            .subscription
            .scheduled_changes
            .iter()
            .find(|c| matches!(c.kind, tenure_domain::subscription::ScheduledChangeKind::PlanChange { to } if to.plan_id == w.other.id));
        if s.subscription.id == paused.subscription.id {
            assert!(
                change.is_none(),
                "a past-due subscription cannot change plan"
            );
        } else {
            let change = change.expect("a scheduled swap");
            assert_eq!(change.due_at, s.subscription.current_period.end);
            assert_eq!(change.requested_by, Actor::Merchant);
        }
    }
    let codes: Vec<Code> = sql_query(
        "SELECT not_applied_code AS code FROM stock_notice_recipients \
         WHERE not_applied_code IS NOT NULL AND notice_id = $1",
    )
    .bind::<Uuid, _>(swap.id.uuid())
    .load(&mut conn)
    .await
    .expect("codes");
    assert_eq!(
        codes.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(),
        vec!["subscription_past_due"]
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        35,
        "ten from the superseded notice, twenty-five from the newer"
    );
}

#[tokio::test]
async fn a_swap_whose_substitute_was_deactivated_still_reaches_everyone_once() {
    let w = stock_world().await;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let mut conn = w.db.connect().await;
    fixtures::many_subscribers(&mut conn, w.merchant, &w.plan, "box", 23, now).await;
    let swap = change_stock(
        &w.app,
        w.merchant,
        w.plan.id,
        out_of_stock(NextOrderActionDto::Swap, Some(w.other.id.to_string())),
    )
    .await
    .expect("swap change");
    // The merchant retires the substitute after posting the notice.
    sql_query("UPDATE plans SET active = false WHERE id = $1")
        .bind::<Uuid, _>(w.other.id.uuid())
        .execute(&mut conn)
        .await
        .expect("deactivate the substitute");

    let mut rounds = 0;
    loop {
        let round = run_stock_notices_in(&w.app, WorkScope::RealTime, now, 2, 10)
            .await
            .expect("a round");
        if round.batches == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 10, "the fan-out does not move on");
    }
    let done = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, swap.id, false)
        .await
        .expect("the notice");
    assert_eq!(done.notified, 23, "everyone was notified");
    assert!(done.done_at.is_some(), "the notice is done");
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT resource_id) AS n FROM events \
             WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        23
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events WHERE event_type = 'subscription.stock_notice'"
        )
        .await,
        23,
        "each once"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM stock_notice_recipients \
             WHERE not_applied_code = 'substitute_plan_unavailable' AND applied = 'ship_anyway'"
        )
        .await,
        23,
        "every recipient says the swap was not applied and ships anyway"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM events \
             WHERE event_type = 'subscription.plan_change_scheduled'"
        )
        .await,
        0,
        "nobody was swapped to the retired plan"
    );
}

/// A large fan-out takes a few batches per pass of the lifecycle loop: a scheduled change
/// that falls due meanwhile is applied by the next pass, and a small notice posted after
/// the large one is done before it (the notices take turns).
#[tokio::test]
async fn a_large_fan_out_leaves_room_for_due_changes_and_smaller_notices() {
    use tenure_app::subscriptions::{self, Action, Scope};
    use tenure_domain::subscription::{CancelRequest, CancelTiming, SubscriptionStatus};
    use tenure_engine::loops::{STOCK_BATCHES, lifecycle_pass};
    use tenure_engine::stock::STOCK_BATCH;

    let w = stock_world().await;
    let now = tenure_domain::time::truncate_to_micros(w.clock.now());
    let mut conn = w.db.connect().await;
    let batch = usize::try_from(STOCK_BATCH).expect("a size");
    let large = batch * (STOCK_BATCHES * 2 + 2);
    fixtures::many_subscribers(&mut conn, w.merchant, &w.plan, "box", large, now).await;
    fixtures::many_subscribers(&mut conn, w.merchant, &w.other, "other", 10, now).await;
    let third = fixtures::plan(&mut conn, w.merchant, w.plan.product_id, 2999, 0, now).await;
    let leaving = fixtures::many_subscribers(&mut conn, w.merchant, &third, "leaving", 1, now)
        .await
        .remove(0);
    subscriptions::act(
        &w.app,
        Scope::merchant(w.merchant),
        leaving.subscription.id,
        None,
        Action::Cancel(CancelRequest {
            timing: Some(CancelTiming::PeriodEnd),
            ..CancelRequest::default()
        }),
    )
    .await
    .expect("cancel at period end");

    let big = change_stock(
        &w.app,
        w.merchant,
        w.plan.id,
        out_of_stock(NextOrderActionDto::ShipAnyway, None),
    )
    .await
    .expect("the large notice");
    let small = change_stock(
        &w.app,
        w.merchant,
        w.other.id,
        out_of_stock(NextOrderActionDto::ShipAnyway, None),
    )
    .await
    .expect("the small notice");
    // The cancellation falls due while both notices wait.
    w.clock
        .advance_to(leaving.subscription.current_period.end + Duration::minutes(1));

    let mut last_purge = None;
    assert!(
        lifecycle_pass(&w.app, &mut last_purge).await,
        "a pass stops while batches remain"
    );
    let status = subs_repo::get(&mut conn, w.merchant, leaving.subscription.id, false)
        .await
        .expect("the subscription")
        .subscription
        .status;
    assert_eq!(
        status,
        SubscriptionStatus::Canceled,
        "the due change was applied"
    );
    let big_now = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, big.id, false)
        .await
        .expect("the large notice");
    let small_now = stock_repo::get_notice(&mut conn, w.merchant, w.other.id, small.id, false)
        .await
        .expect("the small notice");
    assert!(small_now.done_at.is_some(), "the small notice had its turn");
    assert_eq!(small_now.notified, 10);
    assert!(big_now.done_at.is_none());
    assert_eq!(
        big_now.notified,
        i64::try_from(batch * (STOCK_BATCHES - 1)).expect("a count"),
        "one pass ran {STOCK_BATCHES} batches, one of them the small notice's"
    );

    let mut passes = 1;
    while lifecycle_pass(&w.app, &mut last_purge).await {
        passes += 1;
        assert!(passes < 10, "the fan-out goes on pass after pass");
    }
    let big_done = stock_repo::get_notice(&mut conn, w.merchant, w.plan.id, big.id, false)
        .await
        .expect("the large notice");
    assert!(big_done.done_at.is_some());
    assert_eq!(big_done.notified, i64::try_from(large).expect("a count"));
}
