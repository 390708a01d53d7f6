//! `tenure-bench stock-fanout`: the stock fan-out rate (issue 19).
//!
//! Recreates a database, seeds N customers each with an active monthly subscription of one
//! plan (their periods just began, so nothing else is due), writes one stock change of
//! that plan (`out_of_stock`, with `--next-order`) exactly as `POST /v1/plans/{id}/stock`
//! does (the notice row and the plan's stock), starts P `tenure worker` processes and
//! polls until the notice is done. It prints subscribers notified per second and the
//! longest batch transaction (each worker logs every batch it commits with its duration),
//! and checks that each subscriber got exactly one `subscription.stock_notice`.
//!
//! Like `renewals`, it talks to PostgreSQL through `psql` and needs no driver of its own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use tenure_domain::billing::period::{Cadence, Interval};
use tenure_domain::ids::{
    CustomerId, GenerateId, PlanId, ProductId, StockNoticeId, SubscriptionId,
};
use tenure_domain::money::{Currency, Money};
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::{NewSubscription, PlanTerms, Subscription};

use crate::BoxError;
use crate::processes::{
    SUBSCRIPTION_COLUMNS, copy_in, fresh_database, psql, rebuild_rollups, stop, tenure_binary, ts,
    write_subscription,
};

#[derive(clap::Args)]
pub struct StockArgs {
    /// Active subscribers of the plan (one customer each).
    #[arg(long, default_value_t = 100_000)]
    subscribers: usize,
    /// `tenure worker` processes to start.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// The merchant's action on each next order: `ship_anyway` (notify only) or `skip`
    /// (a merchant skip of each subscription's next renewal, under its row lock).
    #[arg(long, default_value = "ship_anyway", value_parser = ["ship_anyway", "skip"])]
    next_order: String,
    /// The PostgreSQL server (without a database name).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The throwaway database (dropped and recreated).
    #[arg(long, default_value = "tenure_bench_stock")]
    database: String,
    /// The `tenure` binary; default: the one next to this executable.
    #[arg(long, env = "TENURE_BIN")]
    tenure: Option<PathBuf>,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Append a JSON line with the figures to this file.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Where the workers' logs go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

/// Seeds the database and writes the stock change; returns the notice.
fn seed(args: &StockArgs, tenure: &Path, url: &str) -> Result<StockNoticeId, BoxError> {
    let merchant = fresh_database(tenure, &args.server, &args.database, url, "Stock bench")?;
    let m = merchant.uuid();
    let product = ProductId::generate();
    let plan = PlanId::generate();
    let eur: Currency = "EUR".parse().map_err(|_| "EUR")?;
    let terms = PlanTerms::new(
        plan,
        Money::new(1999, eur),
        Cadence::new(Interval::Month, 1)?,
    )?;
    let policy = serde_json::to_string(&PortalPolicy::default())?;
    psql(
        url,
        &format!(
            "INSERT INTO products (merchant_id, id, name, portal_policy, shippable) \
             VALUES ('{m}', '{}', 'Bench beans', '{policy}', true); \
             INSERT INTO plans (merchant_id, id, product_id, name, amount, currency, \
             billing_interval, interval_count) \
             VALUES ('{m}', '{}', '{}', 'Monthly', 1999, 'EUR', 'month', 1)",
            product.uuid(),
            plan.uuid(),
            product.uuid()
        ),
    )?;
    let n = args.subscribers;
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let customers: Vec<CustomerId> = (0..n).map(|_| CustomerId::generate()).collect();
    copy_in(
        url,
        "customers (merchant_id, id, external_id, email, created_at, updated_at)",
        |w| {
            for (i, c) in customers.iter().enumerate() {
                writeln!(
                    w,
                    "{m}\t{}\tstock-{i}\tstock{i}@example.test\t{}\t{}",
                    c.uuid(),
                    ts(now),
                    ts(now)
                )?;
            }
            Ok(())
        },
    )?;
    copy_in(url, SUBSCRIPTION_COLUMNS, |w| {
        for c in &customers {
            let id = SubscriptionId::generate();
            let sub = Subscription::create(
                NewSubscription {
                    id,
                    plan: terms,
                    trial_days: 0,
                    quantity: 1,
                    pay_at_signup: false,
                },
                now,
            )?
            .subscription;
            write_subscription(w, merchant, *c, product, plan, &sub, now)?;
        }
        Ok(())
    })?;
    rebuild_rollups(tenure, url, merchant)?;
    psql(url, "VACUUM ANALYZE")?;
    // What `POST /v1/plans/{id}/stock` writes (tenure_app::stock::change_stock).
    let notice = StockNoticeId::generate();
    psql(
        url,
        &format!(
            "UPDATE plans SET stock_status = 'out_of_stock' WHERE merchant_id = '{m}' \
               AND id = '{}'; \
             INSERT INTO stock_notices (merchant_id, id, plan_id, status, next_order, \
               created_at) VALUES ('{m}', '{}', '{}', 'out_of_stock', '{}', now())",
            plan.uuid(),
            notice.uuid(),
            plan.uuid(),
            args.next_order
        ),
    )?;
    Ok(notice)
}

/// The batches the workers logged: (subscribers, milliseconds) each.
fn batches(work_dir: &Path, processes: usize) -> Result<Vec<(u64, f64)>, BoxError> {
    let mut out = Vec::new();
    for k in 0..processes {
        let file = std::fs::File::open(work_dir.join(format!("stock-worker-{k}.log")))?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &v["fields"];
            if fields["message"] == "stock notice batch"
                && let (Some(n), Some(ms)) =
                    (fields["notified"].as_u64(), fields["elapsed_ms"].as_f64())
            {
                out.push((n, ms));
            }
        }
    }
    Ok(out)
}

pub fn run(args: &StockArgs) -> Result<(), BoxError> {
    let tenure = tenure_binary(args.tenure.as_ref())?;
    let url = format!("{}/{}", args.server, args.database);
    let n = i64::try_from(args.subscribers)?;
    std::fs::create_dir_all(&args.work_dir)?;
    let t0 = Instant::now();
    let notice = seed(args, &tenure, &url)?;
    eprintln!(
        "seeded {n} subscribers in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut children = Vec::new();
    let started = Instant::now();
    for k in 0..args.processes {
        let log = std::fs::File::create(args.work_dir.join(format!("stock-worker-{k}.log")))?;
        children.push(
            Command::new(&tenure)
                .arg("worker")
                .env("DATABASE_URL", &url)
                .env("TENURE_LOG", "warn,tenure_engine::stock=debug")
                .env("TENURE_LOG_FORMAT", "json")
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    let deadline = started + StdDuration::from_secs(args.timeout_secs);
    let mut first = None;
    let outcome: Result<StdDuration, BoxError> = loop {
        std::thread::sleep(StdDuration::from_millis(100));
        let out = psql(
            &url,
            &format!(
                "SELECT notified || ' ' || CASE WHEN done_at IS NULL THEN 'f' ELSE 't' END \
                 FROM stock_notices WHERE id = '{}'",
                notice.uuid()
            ),
        )?;
        let mut parts = out.split_whitespace();
        let notified: i64 = parts.next().ok_or("no progress")?.parse()?;
        let done = parts.next() == Some("t");
        if first.is_none() && notified > 0 {
            first = Some(started.elapsed());
        }
        if done {
            break Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            break Err(format!("timed out at {notified} notified").into());
        }
    };
    stop(&mut children);
    let elapsed = outcome?;
    let batches = batches(&args.work_dir, args.processes)?;
    let in_batches: f64 = batches.iter().map(|(_, ms)| ms).sum::<f64>() / 1000.0;
    let longest = batches.iter().map(|(_, ms)| *ms).fold(0.0, f64::max);
    let rate = n as f64 / elapsed.as_secs_f64();
    let rate_in_batches = n as f64 / in_batches.max(f64::EPSILON);
    println!(
        "stock fan-out: {n} subscribers, next_order {}, {} worker process(es): {:.2} s from \
         the workers' start ({:.0} notified/s; first batch after {:.2} s); {} batches, \
         {:.2} s inside them ({:.0} notified/s); longest batch transaction {:.1} ms",
        args.next_order,
        args.processes,
        elapsed.as_secs_f64(),
        rate,
        first.unwrap_or_default().as_secs_f64(),
        batches.len(),
        in_batches,
        rate_in_batches,
        longest
    );
    let checks: [(&str, String); 4] = [
        (
            "subscription.stock_notice events",
            "SELECT count(*) FROM events WHERE event_type = 'subscription.stock_notice'".into(),
        ),
        (
            "distinct subscribers notified",
            "SELECT count(DISTINCT resource_id) FROM events \
             WHERE event_type = 'subscription.stock_notice'"
                .into(),
        ),
        (
            "recipient rows",
            "SELECT count(*) FROM stock_notice_recipients".into(),
        ),
        (
            "the notice's count",
            format!(
                "SELECT notified FROM stock_notices WHERE id = '{}'",
                notice.uuid()
            ),
        ),
    ];
    let mut ok = true;
    for (name, sql) in &checks {
        let value: i64 = psql(&url, sql)?.parse()?;
        let pass = value == n;
        ok &= pass;
        println!(
            "  {} {name}: {value} (expected {n})",
            if pass { "ok  " } else { "FAIL" }
        );
    }
    if let Some(path) = &args.results {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(
            f,
            "{}",
            serde_json::json!({
                "kind": "stock_fanout",
                "subscribers": n,
                "processes": args.processes,
                "next_order": args.next_order,
                "seconds": elapsed.as_secs_f64(),
                "notified_per_second": rate,
                "notified_per_second_in_batches": rate_in_batches,
                "batches": batches.len(),
                "longest_batch_ms": longest,
                "checks_ok": ok,
            })
        )?;
    }
    if !ok {
        return Err("the fan-out broke an invariant".into());
    }
    Ok(())
}
