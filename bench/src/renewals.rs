//! `tenure-bench renewals`: renewal throughput of `tenure worker` processes (issue 7).
//!
//! Recreates a database, seeds N customers (each with a default `pm_card_visa` card) and N
//! monthly subscriptions whose period ended in the last few minutes, starts P `tenure
//! worker` processes (the release binary) against it, polls until nothing is due and
//! every invoice is paid, prints renewals per second, and checks the outcome: exactly
//! one invoice per subscription-period, one successful payment per invoice, gapless
//! invoice numbers 1..=N, one `subscription.renewed` and one `invoice.paid` event each.
//!
//! It talks to PostgreSQL through `psql` (rows are streamed with `COPY … FROM STDIN`), so
//! the benchmark needs no database driver of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, Utc};
use tenure_domain::billing::period::{Cadence, Interval};
use tenure_domain::ids::{
    CustomerId, GenerateId, MerchantId, PaymentMethodId, PlanId, ProductId, SubscriptionId,
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
pub struct RenewalArgs {
    /// Due subscriptions to seed (one customer each).
    #[arg(long, default_value_t = 100_000)]
    subscriptions: usize,
    /// `tenure worker` processes to start.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// The PostgreSQL server (without a database name).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    server: String,
    /// The throwaway database (dropped and recreated).
    #[arg(long, default_value = "tenure_bench_renewals")]
    database: String,
    /// The `tenure` binary; default: the one next to this executable.
    #[arg(long, env = "TENURE_BIN")]
    tenure: Option<PathBuf>,
    /// `TENURE_POOL_SIZE` of each worker process (default: the binary's own default).
    #[arg(long)]
    pool_size: Option<usize>,
    /// Give up (and fail) after this many seconds of renewing.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Names this run in the results line (e.g. `baseline`).
    #[arg(long)]
    label: Option<String>,
    /// Append a JSON line with the figures to this file.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Where the workers' logs go.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Seeds the database; returns the merchant.
fn seed(args: &RenewalArgs, tenure: &Path, url: &str) -> Result<MerchantId, BoxError> {
    let merchant = fresh_database(tenure, &args.server, &args.database, url, "Renewal bench")?;
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
            "INSERT INTO products (merchant_id, id, name, portal_policy) \
             VALUES ('{m}', '{}', 'Bench box', '{policy}'); \
             INSERT INTO plans (merchant_id, id, product_id, name, amount, currency, \
             billing_interval, interval_count) \
             VALUES ('{m}', '{}', '{}', 'Monthly', 1999, 'EUR', 'month', 1)",
            product.uuid(),
            plan.uuid(),
            product.uuid()
        ),
    )?;

    let n = args.subscriptions;
    let now = Utc::now();
    let customers: Vec<CustomerId> = (0..n).map(|_| CustomerId::generate()).collect();
    copy_in(
        url,
        "customers (merchant_id, id, external_id, email, created_at, updated_at)",
        |w| {
            for (i, c) in customers.iter().enumerate() {
                writeln!(
                    w,
                    "{m}\t{}\trenew-{i}\trenew{i}@example.test\t{}\t{}",
                    c.uuid(),
                    ts(now),
                    ts(now)
                )?;
            }
            Ok(())
        },
    )?;
    copy_in(
        url,
        "payment_methods (merchant_id, id, customer_id, gateway_token, brand, last4, \
         exp_month, exp_year, is_default, created_at)",
        |w| {
            for c in &customers {
                writeln!(
                    w,
                    "{m}\t{}\t{}\tpm_card_visa\tvisa\t4242\t12\t2034\tt\t{}",
                    PaymentMethodId::generate().uuid(),
                    c.uuid(),
                    ts(now)
                )?;
            }
            Ok(())
        },
    )?;
    copy_in(url, SUBSCRIPTION_COLUMNS, |w| {
        for (i, c) in customers.iter().enumerate() {
            // Started 31 days (plus up to ten minutes) ago: a calendar month is at
            // most 31 days, so every period ended at or before now.
            let offset = i64::try_from(i % 600_000)? * 1000;
            let start = chrono::SubsecRound::trunc_subsecs(
                now - Duration::days(31) - Duration::microseconds(offset),
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
            )?
            .subscription;
            if sub.current_period.end > now {
                return Err("a seeded period does not end before now".into());
            }
            write_subscription(w, merchant, *c, product, plan, &sub, start)?;
        }
        Ok(())
    })?;
    rebuild_rollups(tenure, url, merchant)?;
    psql(url, "VACUUM ANALYZE")?;
    Ok(merchant)
}

struct Progress {
    due: i64,
    invoices: i64,
    paid: i64,
}

fn progress(url: &str) -> Result<Progress, BoxError> {
    let out = psql(
        url,
        "SELECT (SELECT count(*) FROM subscriptions WHERE status IN ('trialing', 'active', \
         'past_due') AND current_period_end <= now()) || ' ' || \
         (SELECT count(*) FROM invoices) || ' ' || \
         (SELECT count(*) FROM invoices WHERE status = 'paid')",
    )?;
    let v: Vec<i64> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [due, invoices, paid] => Ok(Progress {
            due: *due,
            invoices: *invoices,
            paid: *paid,
        }),
        _ => Err(format!("unexpected progress output {out:?}").into()),
    }
}

/// The invariants after the run; returns (name, value, expected) rows.
fn checks(url: &str, n: i64) -> Result<Vec<(&'static str, i64, i64)>, BoxError> {
    let queries: [(&str, &str); 8] = [
        ("invoices", "SELECT count(*) FROM invoices"),
        (
            "distinct (subscription, period_start)",
            "SELECT count(DISTINCT (subscription_id, period_start)) FROM invoices",
        ),
        (
            "paid invoices",
            "SELECT count(*) FROM invoices WHERE status = 'paid'",
        ),
        (
            "succeeded payments",
            "SELECT count(*) FROM payments WHERE status = 'succeeded'",
        ),
        (
            "invoices with exactly one payment",
            "SELECT count(*) FROM (SELECT invoice_id FROM payments GROUP BY invoice_id \
             HAVING count(*) = 1) x",
        ),
        (
            "gapless numbers (count where number <= N, distinct)",
            &format!("SELECT count(DISTINCT number) FROM invoices WHERE number BETWEEN 1 AND {n}"),
        ),
        (
            "subscription.renewed events",
            "SELECT count(*) FROM events WHERE event_type = 'subscription.renewed'",
        ),
        (
            "invoice.paid events",
            "SELECT count(*) FROM events WHERE event_type = 'invoice.paid'",
        ),
    ];
    let mut rows = Vec::new();
    for (name, sql) in queries {
        rows.push((name, psql(url, sql)?.parse()?, n));
    }
    Ok(rows)
}

pub fn run(args: &RenewalArgs) -> Result<(), BoxError> {
    let tenure = tenure_binary(args.tenure.as_ref())?;
    let url = format!("{}/{}", args.server, args.database);
    let n = i64::try_from(args.subscriptions)?;
    std::fs::create_dir_all(&args.work_dir)?;
    let t0 = Instant::now();
    seed(args, &tenure, &url)?;
    eprintln!(
        "seeded {n} due subscriptions in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let load_before = loadavg();
    let mut children = Vec::new();
    let started = Instant::now();
    for k in 0..args.processes {
        let log = std::fs::File::create(args.work_dir.join(format!("renewal-worker-{k}.log")))?;
        let mut cmd = Command::new(&tenure);
        cmd.arg("worker")
            .env("DATABASE_URL", &url)
            .env("TENURE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(pool) = args.pool_size {
            cmd.env("TENURE_POOL_SIZE", pool.to_string());
        }
        children.push(cmd.spawn()?);
    }
    let deadline = started + StdDuration::from_secs(args.timeout_secs);
    let mut first_invoice = None;
    let mut all_invoiced = None;
    let outcome = loop {
        std::thread::sleep(StdDuration::from_millis(200));
        let p = match progress(&url) {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        if first_invoice.is_none() && p.invoices > 0 {
            first_invoice = Some(started.elapsed());
        }
        if all_invoiced.is_none() && p.invoices >= n {
            all_invoiced = Some(started.elapsed());
        }
        if p.due == 0 && p.invoices >= n && p.paid >= n {
            break Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            break Err(format!(
                "timed out: {} due, {} invoices, {} paid",
                p.due, p.invoices, p.paid
            )
            .into());
        }
        if let Some((k, status)) = exited(&mut children)? {
            break Err(format!(
                "worker {k} exited early ({status}); see {}",
                args.work_dir
                    .join(format!("renewal-worker-{k}.log"))
                    .display()
            )
            .into());
        }
    };
    let load_after = loadavg();
    stop(&mut children);
    let elapsed = outcome?;
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "renewals: {n} subscriptions, {} worker process(es): {:.1} s, {:.0} renewals/s \
         (first invoice after {:.2} s, all invoiced after {:.1} s; load average {load_before} \
         before, {load_after} at the end)",
        args.processes,
        elapsed.as_secs_f64(),
        rate,
        first_invoice.unwrap_or_default().as_secs_f64(),
        all_invoiced.unwrap_or_default().as_secs_f64(),
    );
    let rows = checks(&url, n)?;
    let mut ok = true;
    for (name, value, expected) in &rows {
        let pass = value == expected;
        ok &= pass;
        println!(
            "  {} {name}: {value} (expected {expected})",
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
                "kind": "renewals",
                "label": args.label,
                "subscriptions": n,
                "processes": args.processes,
                "seconds": elapsed.as_secs_f64(),
                "renewals_per_second": rate,
                "load_before": load_before,
                "load_after": load_after,
                "checks_ok": ok,
            })
        )?;
    }
    if !ok {
        return Err("the renewal run broke an invariant".into());
    }
    Ok(())
}

/// The first worker that is no longer running, if any.
fn exited(children: &mut [Child]) -> Result<Option<(usize, std::process::ExitStatus)>, BoxError> {
    for (k, c) in children.iter_mut().enumerate() {
        if let Some(status) = c.try_wait()? {
            return Ok(Some((k, status)));
        }
    }
    Ok(None)
}
