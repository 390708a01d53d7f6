//! Tenure's PostgreSQL store: the diesel schema, repositories, embedded migrations, the
//! event outbox and worker claims. Every repository function takes the merchant id, so a
//! query for another tenant's row finds nothing.

pub mod distribution;
pub mod error;
pub mod jsonb;
pub mod listener;
pub mod migrate;
pub mod pagination;
pub mod pool;
pub mod replication;
pub mod repo;
pub mod schema;

pub use diesel_async::AsyncPgConnection as PgConn;
pub use error::{StoreError, StoreResult};
pub use pagination::{Page, PageRequest};
pub use pool::{Checkout, Conn, Db};
