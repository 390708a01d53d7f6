//! A PostgreSQL database of each test's own: cloned with `CREATE DATABASE … TEMPLATE`
//! from a template migrated once per migration set (named after a digest of the
//! migration files, rebuilt under an advisory lock when they change), dropped when the
//! test ends.

use std::path::{Path, PathBuf};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use tenure_store::Db;
use tenure_store::migrate::{self, DatabaseUrl, quote_identifier};

use crate::PrivateServer;

/// The server the tests use: `TENURE_TEST_DATABASE_URL`, else local PostgreSQL.
pub fn server_url() -> String {
    std::env::var("TENURE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The workspace's `migrations/`, the files `tenure_store::migrate` embeds.
fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// A digest of every migration file (its path below `migrations/` and its content), so
/// that a changed migration gets a new template and checkouts with the same migrations
/// share one.
fn migrations_digest() -> String {
    let root = migrations_dir();
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("migrations dir is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        let name = file.strip_prefix(&root).expect("below migrations/");
        hasher.update(name.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).expect("migration is readable"));
    }
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn admin_connection() -> AsyncPgConnection {
    AsyncPgConnection::establish(&server_url())
        .await
        .expect("PostgreSQL is reachable (see README: the test command starts it)")
}

/// Makes sure the template for the current migrations exists; returns its name. Built
/// under a new name and renamed when complete, under an advisory lock, so concurrent
/// test processes neither race nor see a half-migrated template.
async fn ensure_template() -> String {
    let template = format!("tenure_tmpl_{}", migrations_digest());
    let mut conn = admin_connection().await;
    diesel::sql_query("SELECT pg_advisory_lock(7465737473)")
        .execute(&mut conn)
        .await
        .expect("advisory lock");
    if !database_exists(&mut conn, &template).await {
        let building = format!("{template}_building");
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_identifier(&building)
        ))
        .execute(&mut conn)
        .await;
        diesel::sql_query(format!("CREATE DATABASE {}", quote_identifier(&building)))
            .execute(&mut conn)
            .await
            .expect("create template database");
        let url = DatabaseUrl::parse(&server_url())
            .expect("valid server url")
            .with_database(&building);
        migrate::run_pending(&url)
            .await
            .expect("migrations apply to a fresh database");
        diesel::sql_query(format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_identifier(&building),
            quote_identifier(&template)
        ))
        .execute(&mut conn)
        .await
        .expect("rename template");
        drop_stale_templates(&mut conn, &template).await;
    }
    // Stamped with its last use, so that another checkout's build can tell an abandoned
    // template from one a test run is cloning.
    diesel::sql_query(format!(
        "COMMENT ON DATABASE {} IS '{}'",
        quote_identifier(&template),
        chrono::Utc::now().timestamp()
    ))
    .execute(&mut conn)
    .await
    .expect("stamp template");
    diesel::sql_query("SELECT pg_advisory_unlock(7465737473)")
        .execute(&mut conn)
        .await
        .expect("advisory unlock");
    template
}

/// Templates of other migration sets pile up as migrations change. Each is dropped once
/// unused for a day: a checkout with other migrations (a branch, a worktree) that tests
/// again rebuilds it, and one testing now has stamped it within the day. Unstamped ones
/// (from before the stamp) count as old.
async fn drop_stale_templates(conn: &mut AsyncPgConnection, current: &str) {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let stale: Vec<Name> = diesel::sql_query(
        "SELECT d.datname FROM pg_database d \
         LEFT JOIN pg_shdescription s \
           ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass \
         WHERE d.datname LIKE 'tenure\\_tmpl\\_%' AND d.datname NOT LIKE '%\\_building' \
           AND d.datname <> $1 \
           AND COALESCE(CASE WHEN s.description ~ '^[0-9]+$' THEN s.description::bigint END, 0) \
               < extract(epoch FROM now())::bigint - 86400",
    )
    .bind::<diesel::sql_types::Text, _>(current)
    .load(conn)
    .await
    .unwrap_or_default();
    for Name { datname } in stale {
        // Best effort: one in use stays for another day.
        let _ = diesel::sql_query(format!(
            "DROP DATABASE IF EXISTS {}",
            quote_identifier(&datname)
        ))
        .execute(conn)
        .await;
    }
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)
        .await
        .expect("query pg_database");
    row.n > 0
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    /// The database's name.
    pub name: String,
    /// A `postgres://` URL naming it.
    pub url: String,
    /// Where it is dropped from: the shared server, or none for a database that goes
    /// with its private server.
    drop_from: Option<String>,
}

impl TestDb {
    /// A fresh clone of the migrated template on the shared server ([`server_url`]).
    pub async fn new() -> Self {
        let template = ensure_template().await;
        let name = format!("tenure_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = admin_connection().await;
        diesel::sql_query(format!(
            "CREATE DATABASE {} TEMPLATE {}",
            quote_identifier(&name),
            quote_identifier(&template)
        ))
        .execute(&mut conn)
        .await
        .expect("clone the template database");
        let url = DatabaseUrl::parse(&server_url())
            .expect("valid server url")
            .with_database(&name);
        Self {
            name,
            url,
            drop_from: Some(server_url()),
        }
    }

    /// A migrated database on a test's own server (see [`PrivateServer`]).
    pub async fn on_private(server: &PrivateServer) -> Self {
        let name = "tenure".to_owned();
        let mut conn = AsyncPgConnection::establish(&server.url("postgres"))
            .await
            .expect("the private server is up");
        diesel::sql_query(format!("CREATE DATABASE {}", quote_identifier(&name)))
            .execute(&mut conn)
            .await
            .expect("create the database");
        let url = server.url(&name);
        migrate::run_pending(&url)
            .await
            .expect("migrations apply to a fresh database");
        Self {
            name,
            url,
            drop_from: None,
        }
    }

    /// Another handle on this database, for a second application (another process's
    /// view of the same data); the database is dropped with the original only.
    pub fn share(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            drop_from: None,
        }
    }

    /// A new connection to this database.
    pub async fn connect(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Everything this database holds, as `pg_dump --data-only` writes it: to show that
    /// a value is nowhere in it.
    pub fn dump_data(&self) -> String {
        let out = std::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg("--dbname")
            .arg(&self.url)
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A connection pool on this database, as the application uses.
    pub fn pool(&self, max_size: usize) -> Db {
        Db::connect(&self.url, max_size).expect("pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(server) = self.drop_from.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with
        // its own runtime can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = AsyncPgConnection::establish(&server).await {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_identifier(&name)
                    ))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
