//! Request and response bodies. They are separate from store rows and convert to and
//! from domain types; each derives `ToSchema` so the OpenAPI document shows exactly what
//! is served.

pub mod billing;
pub mod catalog;
pub mod common;
pub mod context;
pub mod customers;
pub mod events;
pub mod gdpr;
pub mod metrics;
pub mod renewals;
pub mod retention;
pub mod sessions;
pub mod subscriptions;
pub mod support;
pub mod timestamps;
pub mod webhooks;

pub use common::{ListParams, ListResponse, MoneyDto};
