//! What the benchmark programs that drive `tenure worker` processes share: psql for
//! SQL and `COPY`, the text format's escapes, the `tenure` binary to run and start, a
//! fresh database with its merchant, the subscription rows they seed, and stopping the
//! processes started.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use tenure_domain::ids::{CustomerId, MerchantId, PlanId, ProductId};
use tenure_domain::subscription::Subscription;

use crate::BoxError;

fn psql_cmd(url: &str) -> Command {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url]);
    c
}

/// Runs SQL and returns psql's unaligned output.
pub fn psql(url: &str, sql: &str) -> Result<String, BoxError> {
    let out = psql_cmd(url).args(["-c", sql]).output()?;
    if !out.status.success() {
        return Err(format!(
            "psql failed: {}\n{sql}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Streams rows into `COPY {table} FROM STDIN` (text format), with triggers off
/// (`session_replication_role = replica`): the metric rollups' row triggers made seeding
/// 100,000 subscriptions take minutes. The caller rebuilds the rollups afterwards
/// (`rebuild_rollups`).
pub fn copy_in(
    url: &str,
    table: &str,
    write: impl FnOnce(&mut dyn Write) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let mut child = psql_cmd(url)
        .env("PGOPTIONS", "-c session_replication_role=replica")
        .args(["-c", &format!("COPY {table} FROM STDIN")])
        .stdin(Stdio::piped())
        .spawn()?;
    {
        let stdin = child.stdin.take().ok_or("psql stdin")?;
        let mut w = BufWriter::with_capacity(1 << 20, stdin);
        write(&mut w)?;
        w.flush()?;
    }
    if !child.wait()?.success() {
        return Err(format!("COPY {table} failed").into());
    }
    Ok(())
}

/// Runs `tenure ARGS` against the database at `url`; its output, or its stderr as the
/// error.
pub fn run_tenure(tenure: &Path, url: &str, args: &[&str]) -> Result<Vec<u8>, BoxError> {
    let out = Command::new(tenure)
        .args(args)
        .env("DATABASE_URL", url)
        .env("TENURE_LOG", "warn")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "tenure {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out.stdout)
}

/// Drops the database `database` of `server` (at `url`), migrates a new one and creates
/// the merchant `name` in it.
pub fn fresh_database(
    tenure: &Path,
    server: &str,
    database: &str,
    url: &str,
    name: &str,
) -> Result<MerchantId, BoxError> {
    psql(
        &format!("{server}/postgres"),
        &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )?;
    run_tenure(tenure, url, &["migrate"])?;
    let created = run_tenure(
        tenure,
        url,
        &["merchant", "create", "--name", name, "--json"],
    )?;
    let json: serde_json::Value = serde_json::from_slice(&created)?;
    Ok(json["id"]
        .as_str()
        .ok_or("merchant create printed no id")?
        .parse()
        .map_err(|e| format!("merchant id: {e}"))?)
}

/// Rebuilds a merchant's metric rollups from its rows, as `copy_in` bypassed the
/// triggers that keep them (docs/metrics.md).
pub fn rebuild_rollups(tenure: &Path, url: &str, merchant: MerchantId) -> Result<(), BoxError> {
    run_tenure(
        tenure,
        url,
        &["metrics", "rebuild", "--merchant", &merchant.to_string()],
    )
    .map(drop)
}

/// The columns [`write_subscription`] writes, for [`copy_in`].
pub const SUBSCRIPTION_COLUMNS: &str = "subscriptions (merchant_id, id, customer_id, \
    product_id, plan_id, status, current_period_end, state, created_at, updated_at)";

/// One `COPY` line of [`SUBSCRIPTION_COLUMNS`]: `sub` of `customer`, created (and last
/// written) at `created`.
pub fn write_subscription(
    w: &mut dyn Write,
    merchant: MerchantId,
    customer: CustomerId,
    product: ProductId,
    plan: PlanId,
    sub: &Subscription,
    created: DateTime<Utc>,
) -> Result<(), BoxError> {
    writeln!(
        w,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        merchant.uuid(),
        sub.id.uuid(),
        customer.uuid(),
        product.uuid(),
        plan.uuid(),
        sub.status.as_str(),
        ts(sub.current_period.end),
        esc(&serde_json::to_string(sub)?),
        ts(created),
        ts(created)
    )?;
    Ok(())
}

/// An instant as `COPY` reads it, to the microsecond.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A value escaped for `COPY`'s text format.
pub fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

/// The `tenure` binary: `explicit` (`--tenure`), else the one next to this executable.
pub fn tenure_binary(explicit: Option<&PathBuf>) -> Result<PathBuf, BoxError> {
    if let Some(path) = explicit {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let candidate = me
        .parent()
        .ok_or("no directory of the executable")?
        .join("tenure");
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "no `tenure` binary at {} (build it: cargo build --release -p tenure-server, \
             or pass --tenure)",
            candidate.display()
        )
        .into())
    }
}

/// Kills and reaps the processes started.
pub fn stop(children: &mut Vec<Child>) {
    for c in children.iter_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
    children.clear();
}
