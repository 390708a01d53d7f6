//! What Tenure's tests need below HTTP, with no actix in sight: a PostgreSQL database of
//! each test's own, cloned from a template migrated once per migration set
//! ([`TestDb`]); a PostgreSQL server of a test's own for the tests that stop it
//! ([`PrivateServer`]); the clock tests move forward ([`TestClock`]); and store-level
//! [`fixtures`] that write a merchant, a product, a plan, a customer, a payment method or
//! a subscription straight through `tenure_store::repo`.
//!
//! A use-case test needs nothing else:
//!
//! ```no_run
//! # async fn example() {
//! use tenure_test_support::{Clock, TestClock, TestDb, fixtures};
//!
//! let db = TestDb::new().await;
//! let clock = TestClock::new();
//! let mut conn = db.connect().await;
//! let merchant = fixtures::merchant(&mut conn, "Roastery").await;
//! let customer = fixtures::customer(&mut conn, merchant.id, "c-1", clock.now()).await;
//! # }
//! ```
//!
//! The end-to-end harness (`tests/harness`) builds the HTTP application on top of this.

mod db;
pub mod fixtures;
mod private_server;

pub use db::{TestDb, server_url};
pub use private_server::PrivateServer;
/// The clock tests move forward: [`TestClock::advance`] and [`TestClock::advance_to`];
/// [`Clock::now`] reads it.
pub use tenure_domain::clock::{Clock, TestClock};
