//! A PostgreSQL server of a test's own, for the kinds of test the shared server cannot
//! host: stopping the server itself (crashing it, even) while requests run, and streaming
//! it to a replica ([`PrivateServer::replica_of`]). It is a throwaway cluster (`initdb`) in a temporary directory on a free port, run with the
//! machine's PostgreSQL binaries; dropping it stops the server and removes its files.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root (as on CI) the
//! cluster belongs to, and its commands run as, the `postgres` system user.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use tenure_store::migrate::DatabaseUrl;

/// The name every cluster's directory starts with, under the system's temporary directory.
const DIR_PREFIX: &str = "tenure-private-pg-";

pub struct PrivateServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateServer {
    /// A new cluster, started. Panics with what went wrong if the machine's PostgreSQL
    /// binaries cannot make one: a fault test that quietly skipped would prove nothing.
    pub fn start() -> Self {
        let server = Self::empty();
        // `--no-sync` only skips initdb's own final flush; the server runs with fsync on.
        // initdb's `pg_hba.conf` lets the same methods (trust) replicate from loopback.
        server.pg(
            "initdb",
            &["-D", &server.data(), "-U", "postgres", "-A", "trust"],
            &["--no-sync", "-E", "UTF8", "--locale=C"],
        );
        server.started()
    }

    /// A streaming replica of `primary`, started: a base backup of it (`pg_basebackup
    /// -R`, which also writes the standby's settings: `standby.signal` and the primary's
    /// address) in a directory of its own, run on a port of its own. It replays the
    /// primary's WAL as it comes and answers read-only queries (hot standby).
    pub fn replica_of(primary: &PrivateServer) -> Self {
        let replica = Self::empty();
        let port = primary.port.to_string();
        replica.pg(
            "pg_basebackup",
            &["-D", &replica.data(), "-h", "127.0.0.1", "-p", &port],
            // A fast checkpoint to start from: the default spreads it over minutes.
            &[
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        replica.started()
    }

    /// A cluster directory, empty; dropping it removes it.
    fn empty() -> Self {
        let bin = bin_dir();
        let as_postgres = running_as_root();
        remove_abandoned(&bin, as_postgres);
        let dir =
            std::env::temp_dir().join(format!("{DIR_PREFIX}{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        // Made before anything can fail, so that dropping it cleans up.
        let server = Self {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&server.dir));
        }
        server
    }

    fn started(mut self) -> Self {
        // The free port may have been taken meanwhile; a start that fails is tried again
        // on another.
        for _ in 0..3 {
            if self.try_start() {
                return self;
            }
            self.port = free_port();
        }
        self.start_again();
        self
    }

    /// A server URL for `database`.
    pub fn url(&self, database: &str) -> String {
        DatabaseUrl::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .expect("valid url")
        .with_database(database)
    }

    /// Stops the server the way a power cut or `kill -9` would (`pg_ctl stop -m
    /// immediate`): no checkpoint, every connection dropped, and on the next start
    /// PostgreSQL recovers from its write-ahead log.
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate"]);
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`): its connections are closed and
    /// new ones refused.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Starts the (stopped) server on the same port and waits until it accepts
    /// connections, crash recovery included.
    pub fn start_again(&self) {
        run(&mut self.start_command());
    }

    fn try_start(&self) -> bool {
        self.start_command()
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn start_command(&self) -> Command {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").to_string_lossy().into_owned();
        self.command(
            "pg_ctl",
            &["-D", &self.data(), "-w", "-t", "60"],
            &["start", "-o", &options, "-l", &log],
        )
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(&mut self.command("pg_ctl", &["-D", &self.data(), "-w", "-t", "60"], args));
    }

    fn pg(&self, program: &str, first: &[&str], rest: &[&str]) {
        run(&mut self.command(program, first, rest));
    }

    fn command(&self, program: &str, first: &[&str], rest: &[&str]) -> Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(first).args(rest).current_dir(&self.dir);
        command
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["-D", &data], &["stop", "-m", "immediate"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Clusters left by test processes that were killed before they could drop theirs (a
/// timeout, a SIGKILL): stopped and removed once an hour old, when no test still runs
/// them.
fn remove_abandoned(bin: &std::path::Path, as_postgres: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < hour_ago);
        if !old || !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let abandoned = PrivateServer {
            bin: bin.to_owned(),
            dir: entry.path(),
            port: 0,
            as_postgres,
        };
        drop(abandoned);
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The server binaries: `pg_config --bindir`, where `pg_config` is the server's own
/// (Debian's /usr/bin/pg_config names the client's directory, which lacks `initdb`),
/// else the newest /usr/lib/postgresql/<version>/bin.
fn bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|d| d.join("initdb").exists()) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL's server binaries (initdb, pg_ctl) are needed for the restart test: \
         install the postgresql package",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
