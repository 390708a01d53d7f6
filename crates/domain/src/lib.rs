//! Tenure's rules, free of I/O: identifiers, money, time, the portal policy a merchant
//! sets per product, billing periods, proration and the subscription state machine.
//!
//! Nothing here knows about HTTP or SQL; the store and the API convert to and from
//! these types, so a rule lives in exactly one place.

pub mod access;
pub mod address;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod context;
pub mod cors;
pub mod customer;
pub mod data_retention;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod money;
pub mod order;
pub mod order_cutoff;
pub mod outbound;
pub mod overrides;
pub mod policy;
pub mod policy_limit;
pub mod rate_limit;
pub mod retention;
pub mod stock;
pub mod subscription;
pub mod support;
pub mod test_clock;
pub mod text;
pub mod time;
pub mod webhooks;

pub use error::DomainError;
