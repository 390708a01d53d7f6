//! End-to-end tests: the real application over HTTP against a real PostgreSQL, each test
//! in a database of its own.

mod auth;
mod billing;
mod catalog;
mod context;
mod customers;
mod faults;
mod fixtures;
mod fuzz;
mod gdpr;
mod idempotency;
mod invoicing;
mod lifecycle;
mod metrics;
mod platform;
mod refunds;
mod renewals;
mod retention;
mod security;
mod webhooks;
