//! Repositories: one module per aggregate. Functions take a connection (so a use case can
//! run several inside one transaction) and, for tenant data, the merchant id first.

pub mod addresses;
pub mod api_keys;
pub mod audit_events;
pub mod backlog;
pub mod catalog;
pub mod charge_intents;
pub mod context;
pub mod cors_settings;
pub mod coupons;
pub mod credits;
pub mod customers;
pub mod discounts;
pub mod events;
pub mod gateway_settings;
pub mod gdpr;
pub mod idempotency;
pub mod identity_providers;
pub mod invoices;
pub mod merchants;
pub mod metrics;
pub mod notices;
pub mod orders;
pub mod overrides;
pub mod payment_methods;
pub mod pending_items;
pub mod purge;
pub mod rate_limits;
pub mod refund_intents;
pub mod renewals;
pub mod retention;
pub mod secrets;
pub mod subscriptions;
pub mod support;
pub mod test_clocks;
pub mod webhooks;
