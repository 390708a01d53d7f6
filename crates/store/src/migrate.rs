//! Schema migrations, embedded in the binary, and creation of the database itself.
//!
//! diesel_migrations is synchronous, so migrations run through diesel-async's
//! `AsyncConnectionWrapper` on a blocking thread. Concurrent starts on a fresh database
//! race in PostgreSQL's catalog (duplicate pg_type rows), hence the advisory lock.

use diesel::Connection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// An arbitrary constant shared by every tenure process: "tenure" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x74_65_6e_75_72_65;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// Runs every pending migration and returns the versions it applied.
pub async fn run_pending(url: &str) -> Result<Vec<String>, StoreError> {
    with_locked_connection(url, |conn| {
        conn.run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Reverts every migration (for the up-down-up check).
pub async fn revert_all(url: &str) -> Result<Vec<String>, StoreError> {
    with_locked_connection(url, |conn| {
        conn.revert_all_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
    })
    .await
}

async fn with_locked_connection<T, F>(url: &str, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> diesel::migration::Result<T> + Send + 'static,
{
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            SyncConn::establish(&url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")),
            &mut conn,
        )?;
        let outcome = work(&mut conn).map_err(|e| StoreError::Unavailable(e.to_string()));
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")),
            &mut conn,
        )?;
        outcome
    })
    .await
    .map_err(|e| StoreError::Unavailable(e.to_string()))?
}

/// Creates the database that `url` names when it does not exist yet, by connecting to
/// the server's `postgres` database.
pub async fn ensure_database(url: &str) -> Result<(), StoreError> {
    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection, RunQueryDsl};

    let target = DatabaseUrl::parse(url)?;
    let mut conn = AsyncPgConnection::establish(&target.with_database("postgres"))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;

    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
            .bind::<diesel::sql_types::Text, _>(&target.database)
            .get_result(&mut conn)
            .await?;
    if !found.exists {
        let created = diesel::sql_query(format!(
            "CREATE DATABASE {}",
            quote_identifier(&target.database)
        ))
        .execute(&mut conn)
        .await;
        match created.map_err(StoreError::from) {
            // Another process created it between our check and our CREATE.
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(StoreError::Query(diesel::result::Error::DatabaseError(_, info)))
                if info.message().contains("already exists") => {}
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Quotes a PostgreSQL identifier (database names cannot be bound as parameters).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A `postgres://` URL split around its database name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    prefix: String,
    pub database: String,
    query: Option<String>,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = || {
            StoreError::Unavailable(
                "DATABASE_URL must look like postgres://user@host:port/database".to_owned(),
            )
        };
        let (without_query, query) = match url.split_once('?') {
            Some((u, q)) => (u, Some(q.to_owned())),
            None => (url, None),
        };
        let after_scheme = without_query
            .strip_prefix("postgres://")
            .or_else(|| without_query.strip_prefix("postgresql://"))
            .ok_or_else(invalid)?;
        let (authority, database) = after_scheme.split_once('/').ok_or_else(invalid)?;
        if authority.is_empty() || database.is_empty() || database.contains('/') {
            return Err(invalid());
        }
        let prefix_len = without_query.len() - database.len();
        Ok(Self {
            prefix: without_query[..prefix_len].to_owned(),
            database: database.to_owned(),
            query,
        })
    }

    /// The same server and options with another database.
    pub fn with_database(&self, database: &str) -> String {
        match &self.query {
            Some(q) => format!("{}{}?{}", self.prefix, database, q),
            None => format!("{}{}", self.prefix, database),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_split_around_the_name() {
        let url = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/tenure?sslmode=disable")
            .unwrap();
        assert_eq!(url.database, "tenure");
        assert_eq!(
            url.with_database("postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
        );
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("postgres://host").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
