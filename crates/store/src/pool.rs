//! The connection pool: diesel-async over tokio-postgres, pooled by deadpool.

use std::time::Duration;

use deadpool::managed::{TimeoutType, Timeouts};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};

use crate::error::StoreError;

pub type Conn = Object<AsyncPgConnection>;

/// A cheap-to-clone handle to the database.
#[derive(Clone)]
pub struct Db {
    pool: Pool<AsyncPgConnection>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Db {
    /// Builds the pool; connections are opened lazily, so this succeeds while the
    /// database is down and the service answers 503 until it is back.
    pub fn connect(url: &str, max_size: usize) -> Result<Self, StoreError> {
        // Before handing out a pooled connection, diesel-async drops it if its transaction
        // state is broken or its socket has closed (a restarted server closes it). The
        // default `Verified` recycling also sends a `SELECT 1` on every checkout: a round
        // trip per request, one statement in three on the portal's hot read.
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_runtime())
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Closes the pool: its idle connections are dropped and later checkouts fail.
    pub fn close(&self) {
        self.pool.close();
    }

    pub async fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get().await.map_err(|err| match err {
            PoolError::Backend(e) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        })
    }

    /// A connection within `wait`, telling a pool whose every connection stayed in use
    /// ([`Checkout::Busy`]: the server may be well) from a server that could not be
    /// reached ([`Checkout::Unavailable`]).
    pub async fn conn_within(&self, wait: Duration) -> Result<Conn, Checkout> {
        let timeouts = Timeouts {
            wait: Some(wait),
            create: Some(wait),
            recycle: Some(wait),
        };
        self.pool
            .timeout_get(&timeouts)
            .await
            .map_err(|err| match err {
                PoolError::Timeout(TimeoutType::Wait) => Checkout::Busy,
                other => Checkout::Unavailable(StoreError::Unavailable(other.to_string())),
            })
    }

    /// Whether every connection the pool may hold is in use.
    pub fn is_exhausted(&self) -> bool {
        let status = self.pool.status();
        status.available == 0 && status.size >= status.max_size
    }

    /// Answers whether the database takes a trivial query right now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        use diesel_async::RunQueryDsl;
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }
}

/// Why [`Db::conn_within`] handed out no connection.
#[derive(Debug)]
pub enum Checkout {
    /// Every connection of the pool was in use for the whole wait.
    Busy,
    /// No connection could be opened or reused: the server is down or too slow.
    Unavailable(StoreError),
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}
