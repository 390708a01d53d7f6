//! `tenure-bench`: the data and the report of the benchmark that `bench/run.sh` drives.
//!
//! - `seed` writes PostgreSQL `COPY … FROM` text files for customers, subscriptions (each
//!   built by the domain's `Subscription::create`, serialised exactly as the store saves
//!   it), invoices with their lines, payments and events, plus the files the load
//!   generator reads: `portal.txt` (`sub_… <customer JWT>` per line) and `customers.txt`.
//! - `report` reads the JSON lines the run collected and prints the table, with each
//!   endpoint's throughput as a ratio of the matching pgbench figure.
//! - `renewals` measures the renewal engine: seeds N due subscriptions in a database of
//!   its own, runs P `tenure worker` processes until all are renewed and paid, prints
//!   renewals per second and checks the invariants (see `renewals.rs`, BENCHMARKS.md).
//! - `stock-fanout` measures the fan-out of a stock change to N subscribers by `tenure
//!   worker` processes: subscribers notified per second and the longest batch (`stock.rs`).
//!
//! It is a program that prints figures, not a test: nothing here runs under `cargo test`.

mod renewals;
mod stock;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use clap::{Parser, Subcommand};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use tenure_domain::billing::period::{Cadence, Interval};
use tenure_domain::ids::{CustomerId, MerchantId, PlanId, SubscriptionId};
use tenure_domain::money::{Currency, Money};
use tenure_domain::subscription::{NewSubscription, PlanTerms, Subscription};
use uuid::{NoContext, Timestamp, Uuid};

#[derive(Parser)]
#[command(name = "tenure-bench", about = "Benchmark data and report for Tenure")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write COPY files and load-generator inputs for one merchant.
    Seed(SeedArgs),
    /// Print the results table from the JSON lines of a run.
    Report {
        /// The results file (one JSON object a line).
        results: PathBuf,
    },
    /// Renewal throughput of `tenure worker` processes on N due subscriptions.
    Renewals(renewals::RenewalArgs),
    /// Stock fan-out rate: subscribers notified per second by `tenure worker` processes.
    StockFanout(stock::StockArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    /// The merchant (mer_…) that owns everything.
    #[arg(long)]
    merchant: String,
    /// `GET /v1/plans` response (JSON) of that merchant.
    #[arg(long)]
    plans: PathBuf,
    /// Customers to create, each with one subscription.
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Invoices per subscription (the latest for the current period).
    #[arg(long, default_value_t = 3)]
    invoices_per_subscription: usize,
    /// The HS256 secret the server runs with (TENURE_JWT_SECRET).
    #[arg(long, env = "TENURE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// Lifetime of the minted customer tokens, in seconds.
    #[arg(long, default_value_t = 6 * 3600)]
    token_ttl_secs: i64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random choices, so two runs build the same shape of data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Deserialize)]
struct PlanList {
    data: Vec<PlanJson>,
}

#[derive(Deserialize)]
struct PlanJson {
    id: String,
    product_id: String,
    name: String,
    price: PriceJson,
    interval: Interval,
    interval_count: u32,
}

#[derive(Deserialize)]
struct PriceJson {
    amount: i64,
    currency: String,
}

struct PlanInfo {
    id: PlanId,
    product: Uuid,
    name: String,
    terms: PlanTerms,
    currency: &'static str,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    match Cli::parse().command {
        Cmd::Seed(args) => seed(&args),
        Cmd::Report { results } => report(&results),
        Cmd::Renewals(args) => renewals::run(&args),
        Cmd::StockFanout(args) => stock::run(&args),
    }
}

/// A UUIDv7 carrying `at` as its time, so ids sort like the history they describe.
fn uuid_at(at: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        secs,
        at.timestamp_subsec_nanos(),
    ))
}

/// Escapes a value for COPY's text format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

struct Out {
    files: BTreeMap<&'static str, BufWriter<File>>,
}

impl Out {
    fn new(dir: &Path, names: &[&'static str]) -> Result<Self, BoxError> {
        let mut files = BTreeMap::new();
        for name in names {
            let f = File::create(dir.join(format!("{name}.copy")))?;
            files.insert(*name, BufWriter::with_capacity(1 << 20, f));
        }
        Ok(Self { files })
    }

    fn row(&mut self, table: &'static str, fields: &[&str]) -> Result<(), BoxError> {
        let w = self
            .files
            .get_mut(table)
            .ok_or_else(|| format!("no file for {table}"))?;
        let mut first = true;
        for f in fields {
            if !first {
                w.write_all(b"\t")?;
            }
            first = false;
            w.write_all(f.as_bytes())?;
        }
        w.write_all(b"\n")?;
        Ok(())
    }

    fn finish(self) -> Result<(), BoxError> {
        for (_, mut w) in self.files {
            w.flush()?;
        }
        Ok(())
    }
}

const NULL: &str = "\\N";

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    mer: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

fn seed(args: &SeedArgs) -> Result<(), BoxError> {
    std::fs::create_dir_all(&args.out)?;
    let merchant: MerchantId = args
        .merchant
        .parse()
        .map_err(|e| format!("merchant: {e}"))?;
    let m = merchant.uuid().to_string();
    let list: PlanList = serde_json::from_reader(BufReader::new(File::open(&args.plans)?))?;
    let mut plans = Vec::new();
    for p in list.data {
        let currency: Currency = p
            .price
            .currency
            .parse()
            .map_err(|_| format!("currency {}", p.price.currency))?;
        let id: PlanId = p.id.parse().map_err(|e| format!("plan id: {e}"))?;
        let product: tenure_domain::ids::ProductId = p
            .product_id
            .parse()
            .map_err(|e| format!("product id: {e}"))?;
        let terms = PlanTerms::new(
            id,
            Money::new(p.price.amount, currency),
            Cadence::new(p.interval, p.interval_count)?,
        )?;
        plans.push(PlanInfo {
            id,
            product: product.uuid(),
            name: p.name,
            terms,
            currency: currency.code(),
        });
    }
    if plans.is_empty() {
        return Err("the plan list is empty".into());
    }
    if args.jwt_secret.len() < 32 {
        return Err("the JWT secret must be at least 32 bytes".into());
    }
    let key = EncodingKey::from_secret(args.jwt_secret.as_bytes());
    let header = Header::new(Algorithm::HS256);

    let mut out = Out::new(
        &args.out,
        &[
            "customers",
            "subscriptions",
            "invoices",
            "invoice_lines",
            "payments",
            "events",
        ],
    )?;
    let mut portal = BufWriter::new(File::create(args.out.join("portal.txt"))?);
    let mut customers_txt = BufWriter::new(File::create(args.out.join("customers.txt"))?);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let now = Utc::now();
    let mut number: i64 = 0;
    let n = args.customers.max(1);

    for i in 0..n {
        // Customers signed up over the last 400 days, in order.
        let signup = now - Duration::days(400)
            + Duration::milliseconds(i64::try_from(i)? * (360 * 86_400_000 / i64::try_from(n)?));
        let cus = CustomerId::from_uuid(uuid_at(signup));
        let cus_u = cus.uuid().to_string();
        let email = format!("user{i}@example.test");
        out.row(
            "customers",
            &[
                &m,
                &cus_u,
                &format!("bench-{i}"),
                &email,
                &format!("Customer {i}"),
                "en",
                "{}",
                "{}",
                &ts(signup),
                &ts(signup),
            ],
        )?;
        writeln!(customers_txt, "{cus}")?;

        // Mostly monthly plans; the subscription started inside its current period, so
        // it is active and every portal action is open to it.
        let plan = &plans[if rng.random_range(0..10) < 8 {
            i % plans.len().min(2)
        } else {
            plans.len() - 1
        }];
        let max_back = match plan.terms.cadence.interval() {
            Interval::Year => 300 * 24,
            Interval::Month => 26 * 24,
            Interval::Week => 6 * 24,
            Interval::Day => 20,
        };
        let start = now - Duration::hours(rng.random_range(1..max_back));
        let start = chrono::SubsecRound::trunc_subsecs(start, 6);
        let sub_id = SubscriptionId::from_uuid(uuid_at(start));
        let created = Subscription::create(
            NewSubscription {
                id: sub_id,
                plan: plan.terms,
                trial_days: 0,
                quantity: 1,
                pay_at_signup: false,
            },
            start,
        )?
        .subscription;
        let state = serde_json::to_string(&created)?;
        let sub_u = sub_id.uuid().to_string();
        out.row(
            "subscriptions",
            &[
                &m,
                &sub_u,
                &cus_u,
                &plan.product.to_string(),
                &plan.id.uuid().to_string(),
                created.status.as_str(),
                &ts(created.current_period.end),
                &esc(&state),
                &ts(start),
                &ts(start),
            ],
        )?;

        // History: the current period's invoice and earlier ones, mostly paid.
        let period_len = created.current_period.end - created.current_period.start;
        let amount = plan.terms.price.amount;
        for k in 0..args.invoices_per_subscription {
            let k32 = i32::try_from(k)?;
            let p_start = created.current_period.start - period_len * k32;
            let p_end = p_start + period_len;
            let inv_created = p_start;
            let inv = uuid_at(inv_created).to_string();
            number += 1;
            let roll = rng.random_range(0..100);
            let status = match (k, roll) {
                (0, 0..=89) | (1.., 0..=94) => "paid",
                (_, 95..=97) | (0, 90..=97) => "open",
                (_, 98) => "void",
                _ => "uncollectible",
            };
            let paid = status == "paid";
            let paid_at = if paid {
                ts(inv_created + Duration::seconds(2))
            } else {
                NULL.to_owned()
            };
            out.row(
                "invoices",
                &[
                    &m,
                    &inv,
                    &number.to_string(),
                    &cus_u,
                    &sub_u,
                    &ts(p_start),
                    &ts(p_end),
                    status,
                    plan.currency,
                    &amount.to_string(),
                    &(if paid { amount } else { 0 }).to_string(),
                    "0",
                    &(if paid { 1 } else { 2 }).to_string(),
                    &ts(inv_created),
                    &ts(inv_created + Duration::seconds(2)),
                    &paid_at,
                ],
            )?;
            out.row(
                "invoice_lines",
                &[
                    &m,
                    &inv,
                    "0",
                    "plan",
                    &esc(&format!("{} ({})", plan.name, p_start.format("%Y-%m-%d"))),
                    &amount.to_string(),
                ],
            )?;
            let pay_at = inv_created + Duration::seconds(1);
            let pay = uuid_at(pay_at).to_string();
            let (pstatus, gref, fcode, fmsg) = if paid || status == "void" {
                ("succeeded", format!("sbx_ch_{}", &pay[..8]), NULL, NULL)
            } else {
                (
                    "declined",
                    NULL.to_owned(),
                    "card_declined",
                    "The card was declined.",
                )
            };
            if status != "void" {
                out.row(
                    "payments",
                    &[
                        &m,
                        &pay,
                        &inv,
                        &cus_u,
                        NULL,
                        &amount.to_string(),
                        plan.currency,
                        pstatus,
                        "sandbox",
                        &gref,
                        fcode,
                        fmsg,
                        &format!("bench:{inv}:1"),
                        "0",
                        &ts(pay_at),
                    ],
                )?;
            }
            if k == 0 {
                let data = serde_json::json!({"id": format!("inv_{}", &inv), "object": "invoice", "status": status, "total": amount});
                out.row(
                    "events",
                    &[
                        &m,
                        &uuid_at(inv_created + Duration::seconds(3)).to_string(),
                        if paid {
                            "invoice.paid"
                        } else {
                            "invoice.payment_failed"
                        },
                        "invoice",
                        &inv,
                        &esc(&data.to_string()),
                        NULL,
                        &ts(inv_created + Duration::seconds(3)),
                    ],
                )?;
            }
        }
        let cus_event =
            serde_json::json!({"id": cus.to_string(), "object": "customer", "email": email});
        out.row(
            "events",
            &[
                &m,
                &uuid_at(signup).to_string(),
                "customer.created",
                "customer",
                &cus.to_string(),
                &esc(&cus_event.to_string()),
                NULL,
                &ts(signup),
            ],
        )?;
        let sub_event = serde_json::json!({"id": sub_id.to_string(), "object": "subscription", "status": created.status.as_str()});
        out.row(
            "events",
            &[
                &m,
                &uuid_at(start).to_string(),
                "customer.subscription.created",
                "subscription",
                &sub_id.to_string(),
                &esc(&sub_event.to_string()),
                NULL,
                &ts(start),
            ],
        )?;

        let claims = Claims {
            iss: "tenure",
            aud: "tenure-portal",
            sub: cus.to_string(),
            mer: &args.merchant,
            iat: now.timestamp(),
            nbf: now.timestamp() - 60,
            exp: now.timestamp() + args.token_ttl_secs,
        };
        let token = jsonwebtoken::encode(&header, &claims, &key)?;
        writeln!(portal, "{sub_id} {token}")?;
    }
    out.finish()?;
    portal.flush()?;
    customers_txt.flush()?;
    let mut counter = File::create(args.out.join("next_invoice_number"))?;
    writeln!(counter, "{}", number + 1)?;
    eprintln!(
        "seed: {n} customers, {n} subscriptions, {number} invoices written to {}",
        args.out.display()
    );
    Ok(())
}

#[derive(Deserialize)]
struct Line {
    kind: String,
    scenario: String,
    conns: u32,
    /// pgbench's clients at this point (PostgreSQL's connection limit caps them below
    /// the HTTP connections at the largest point).
    #[serde(default)]
    clients: Option<u32>,
    #[serde(default)]
    pool: Option<u32>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    workers: Option<u32>,
    rps: f64,
    #[serde(default)]
    latency_avg_ms: Option<f64>,
    #[serde(default)]
    p50_ms: Option<f64>,
    #[serde(default)]
    p99_ms: Option<f64>,
    #[serde(default)]
    non2xx: Option<u64>,
    #[serde(default)]
    errors: Option<u64>,
    #[serde(default)]
    rss_kb: Option<u64>,
    #[serde(default)]
    hwm_kb: Option<u64>,
}

impl Line {
    /// The cells that say which point a row is: label, pool, workers, scenario and
    /// connections (pgbench's clients for a pgbench row), joined as table cells.
    fn point_cells(&self) -> String {
        let or_dash = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        format!(
            "{} | {} | {} | {} | {}",
            self.label.as_deref().unwrap_or("-"),
            or_dash(self.pool),
            or_dash(self.workers),
            self.scenario,
            self.clients.unwrap_or(self.conns)
        )
    }
}

fn report(path: &Path) -> Result<(), BoxError> {
    let mut lines = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        lines.push(serde_json::from_str::<Line>(&line)?);
    }
    // The ceiling measured next to a point (same configuration and connections), or,
    // in results of older runs, the one measured for its connection count.
    let pg = |scenario: &str, point: &Line| {
        let same =
            |l: &&Line| l.kind == "pgbench" && l.scenario == scenario && l.conns == point.conns;
        lines
            .iter()
            .filter(same)
            .find(|l| l.label == point.label && l.pool == point.pool && l.workers == point.workers)
            .or_else(|| lines.iter().find(same))
            .map(|l| l.rps)
    };
    let dash = || "-".to_owned();
    println!("### pgbench (the ceiling)\n");
    println!(
        "| label | pool | workers | pgbench | clients | tps | latency avg ms | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    let ms = |ms: Option<f64>| ms.map_or_else(dash, |ms| format!("{ms:.2}"));
    for l in lines.iter().filter(|l| l.kind == "pgbench") {
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            l.point_cells(),
            l.rps,
            ms(l.latency_avg_ms),
            ms(l.p50_ms),
            ms(l.p99_ms),
        );
    }
    println!("\n### Tenure\n");
    println!(
        "| label | pool | workers | endpoint | conns | req/s | p50 ms | p99 ms | non-2xx | socket errors | vs pgbench | RSS MB (peak) |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in lines.iter().filter(|l| l.kind == "wrk") {
        let base = match l.scenario.as_str() {
            "portal_write" => pg("simple_update", l).map(|b| ("-N", b)),
            _ => pg("select_only", l).map(|b| ("-S", b)),
        };
        let ratio = base
            .map(|(n, b)| format!("{:.0}% of {n}", 100.0 * l.rps / b))
            .unwrap_or_else(|| "-".to_owned());
        let mb =
            |kb: Option<u64>| kb.map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} ({}) |",
            l.point_cells(),
            l.rps,
            l.p50_ms.unwrap_or(f64::NAN),
            l.p99_ms.unwrap_or(f64::NAN),
            l.non2xx.unwrap_or(0),
            l.errors.unwrap_or(0),
            ratio,
            mb(l.rss_kb),
            mb(l.hwm_kb),
        );
    }
    Ok(())
}
