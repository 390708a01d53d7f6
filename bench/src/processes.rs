//! What the benchmark programs that drive `tenure worker` processes share: psql for
//! SQL and `COPY`, the text format's escapes, the `tenure` binary to start, and stopping
//! the processes started.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};

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

/// Rebuilds a merchant's metric rollups from its rows, as `copy_in` bypassed the
/// triggers that keep them (docs/metrics.md).
pub fn rebuild_rollups(
    tenure: &std::path::Path,
    url: &str,
    merchant: &str,
) -> Result<(), BoxError> {
    let out = Command::new(tenure)
        .args(["metrics", "rebuild", "--merchant", merchant])
        .env("DATABASE_URL", url)
        .env("TENURE_LOG", "warn")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "tenure metrics rebuild failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
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
