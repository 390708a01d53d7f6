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

mod processes;
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
    /// Compare two runs (e.g. 100k and 1M customers): each figure of the second as a
    /// ratio of the first, as a markdown table (bench/compare.sh).
    Compare {
        /// The first run's results (the smaller data set).
        before: PathBuf,
        /// The second run's results (the larger data set).
        after: PathBuf,
    },
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
        Cmd::Compare { before, after } => compare(&before, &after),
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

/// The customers' tags: each tag with the share of customers (per mille) who carry it,
/// from a tag on most customers to one on a few, so the merchant's search by tag meets
/// both an index scan that stops early and one that collects a small, growing set. Every
/// customer also has one of 20 `region:NN` tags (5 % each); `tags.txt` lists the tags the
/// search scenario draws from (these and one region).
const TAGS: [(&str, u32); 7] = [
    ("newsletter", 400),
    ("b2b", 100),
    ("gift", 50),
    ("region:07", 50),
    ("vip", 10),
    ("wholesale", 5),
    ("beta", 1),
];

fn customer_tags(rng: &mut StdRng) -> Vec<String> {
    let mut tags: Vec<String> = TAGS
        .iter()
        .filter(|(t, per_mille)| {
            !t.starts_with("region:") && rng.random_range(0..1000) < *per_mille
        })
        .map(|(t, _)| (*t).to_owned())
        .collect();
    tags.push(format!("region:{:02}", rng.random_range(1..=20)));
    // Stored sorted, as `normalize_tags` keeps them.
    tags.sort();
    tags
}

const FIRST_NAMES: [&str; 16] = [
    "Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Klara",
    "Luca", "Mia", "Noah", "Olivia", "Paul",
];
const LAST_NAMES: [&str; 12] = [
    "Meyer", "Schmidt", "Rossi", "Dubois", "Smith", "Garcia", "Novak", "Jansen", "Berg", "Keller",
    "Moreau", "Silva",
];
const DOMAINS: [&str; 5] = [
    "example.test",
    "mail.example",
    "post.example",
    "corp.example",
    "shop.example",
];

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
    let mut emails_txt = BufWriter::new(File::create(args.out.join("emails.txt"))?);
    let mut tags_txt = BufWriter::new(File::create(args.out.join("tags.txt"))?);
    for (tag, _) in TAGS {
        writeln!(tags_txt, "{tag}")?;
    }
    tags_txt.flush()?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let now = Utc::now();
    let mut number: i64 = 0;
    let n = args.customers.max(1);

    for i in 0..n {
        // Customers signed up over the last 400 days, in order, up to today (so the
        // metrics' last 30 days hold their share of sign-ups, not all or none of them).
        let signup = now - Duration::days(400)
            + Duration::milliseconds(i64::try_from(i)? * (400 * 86_400_000 / i64::try_from(n)?));
        let cus = CustomerId::from_uuid(uuid_at(signup));
        let cus_u = cus.uuid().to_string();
        let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
        let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
        let email = format!(
            "{}.{}.{i}@{domain}",
            first.to_lowercase(),
            last.to_lowercase()
        );
        let tags = customer_tags(&mut rng);
        out.row(
            "customers",
            &[
                &m,
                &cus_u,
                &format!("bench-{i}"),
                &email,
                &format!("{first} {last}"),
                "en",
                "{}",
                &format!("{{{}}}", tags.join(",")),
                &ts(signup),
                &ts(signup),
            ],
        )?;
        writeln!(customers_txt, "{cus}")?;
        writeln!(emails_txt, "{email}")?;

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
        // The subscription exists since the customer signed up (its row last written when
        // its current period began), so the metric rollups rebuilt from the rows see a
        // history spread over 400 days rather than every subscription created this month.
        let sub_created = chrono::SubsecRound::trunc_subsecs(signup.min(start), 6);
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
                &ts(sub_created),
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
    emails_txt.flush()?;
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
        let scenario = if self.kind == "same" {
            format!("same statements: {}", self.scenario)
        } else {
            self.scenario.clone()
        };
        format!(
            "{} | {} | {} | {} | {}",
            self.label.as_deref().unwrap_or("-"),
            or_dash(self.pool),
            or_dash(self.workers),
            scenario,
            self.clients.unwrap_or(self.conns)
        )
    }
}

fn read_lines(path: &Path) -> Result<Vec<Line>, BoxError> {
    let mut lines = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        lines.push(serde_json::from_str::<Line>(&line)?);
    }
    Ok(lines)
}

/// The goals of issue 22 a comparison marks: a p99 more than 1.2 times the smaller
/// size's, a throughput below 1/1.2 of it, and a scenario under 80 % of its
/// same-statement ceiling.
const GROWTH_LIMIT: f64 = 1.2;
const SAME_STATEMENTS_GOAL: f64 = 0.8;

fn compare(before: &Path, after: &Path) -> Result<(), BoxError> {
    let a = read_lines(before)?;
    let b = read_lines(after)?;
    let key = |l: &Line| {
        (
            l.kind.clone(),
            l.scenario.clone(),
            l.conns,
            l.pool,
            l.workers,
        )
    };
    let same_of = |set: &[Line], l: &Line| {
        set.iter()
            .find(|s| {
                s.kind == "same"
                    && s.scenario == l.scenario
                    && s.conns == l.conns
                    && s.pool == l.pool
                    && s.workers == l.workers
                    && s.label == l.label
            })
            .map(|s| l.rps / s.rps)
            .filter(|r| r.is_finite())
    };
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if x > 0.0 => Some(y / x),
        _ => None,
    };
    let mark = |r: Option<f64>, bad: bool| match r {
        Some(r) if bad => format!("**{r:.2}×**"),
        Some(r) => format!("{r:.2}×"),
        None => "-".to_owned(),
    };
    let pct = |r: Option<f64>| match r {
        Some(r) if r < SAME_STATEMENTS_GOAL => format!("**{:.0}%**", 100.0 * r),
        Some(r) => format!("{:.0}%", 100.0 * r),
        None => "-".to_owned(),
    };
    println!(
        "Ratios of `{}` to `{}`; bold: a p99 grown more than {GROWTH_LIMIT}×, a rate fallen below 1/{GROWTH_LIMIT}, a scenario under {:.0}% of its same-statement ceiling.\n",
        after.display(),
        before.display(),
        100.0 * SAME_STATEMENTS_GOAL
    );
    println!(
        "| kind | scenario | conns | pool | workers | req/s before | req/s after | req/s ratio | p99 ms before | p99 ms after | p99 ratio | vs same statements before | after |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in &a {
        let Some(m) = b.iter().find(|m| key(m) == key(l)) else {
            continue;
        };
        let rps = ratio(Some(l.rps), Some(m.rps));
        let p99 = ratio(l.p99_ms, m.p99_ms);
        let (sa, sb) = if l.kind == "wrk" {
            (pct(same_of(&a, l)), pct(same_of(&b, m)))
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        let or_dash = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
            l.kind,
            l.scenario,
            l.clients.unwrap_or(l.conns),
            or_dash(l.pool),
            or_dash(l.workers),
            l.rps,
            m.rps,
            mark(rps, rps.is_some_and(|r| r < 1.0 / GROWTH_LIMIT)),
            ms(l.p99_ms),
            ms(m.p99_ms),
            mark(p99, p99.is_some_and(|r| r > GROWTH_LIMIT)),
            sa,
            sb
        );
    }
    Ok(())
}

fn report(path: &Path) -> Result<(), BoxError> {
    let lines = read_lines(path)?;
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
    // The same-statement ceiling of this very point (kind "same", same scenario).
    let same = |point: &Line| {
        lines
            .iter()
            .find(|l| {
                l.kind == "same"
                    && l.scenario == point.scenario
                    && l.conns == point.conns
                    && l.label == point.label
                    && l.pool == point.pool
                    && l.workers == point.workers
            })
            .map(|l| l.rps)
    };
    let dash = || "-".to_owned();
    println!("### pgbench (the ceiling)\n");
    println!(
        "| label | pool | workers | pgbench | clients | tps | latency avg ms | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|");
    let ms = |ms: Option<f64>| ms.map_or_else(dash, |ms| format!("{ms:.2}"));
    for l in lines
        .iter()
        .filter(|l| l.kind == "pgbench" || l.kind == "same")
    {
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
        "| label | pool | workers | endpoint | conns | req/s | p50 ms | p99 ms | non-2xx | socket errors | vs pgbench | vs same statements | RSS MB (peak) |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
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
        let same_ratio = same(l)
            .filter(|b| *b > 0.0)
            .map_or_else(dash, |b| format!("{:.0}%", 100.0 * l.rps / b));
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} ({}) |",
            l.point_cells(),
            l.rps,
            l.p50_ms.unwrap_or(f64::NAN),
            l.p99_ms.unwrap_or(f64::NAN),
            l.non2xx.unwrap_or(0),
            l.errors.unwrap_or(0),
            ratio,
            same_ratio,
            mb(l.rss_kb),
            mb(l.hwm_kb),
        );
    }
    Ok(())
}
