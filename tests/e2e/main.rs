//! End-to-end tests: the real application over HTTP against a real PostgreSQL, each test
//! in a database of its own.

mod auth;
mod billing;
mod cancel_at;
mod catalog;
mod catalogue;
mod context;
mod cors;
mod coupons;
mod credits;
mod customers;
mod events;
mod faults;
mod fixtures;
mod fuzz;
mod gdpr;
mod idempotency;
mod invoicing;
mod keys;
mod lifecycle;
mod metrics;
mod modes;
mod operator_metrics;
mod platform;
mod quantities;
mod refunds;
mod renewals;
mod replica;
mod retention;
mod security;
mod signup;
mod stripe;
mod test_clocks;
mod webhook_targets;
mod webhooks;
