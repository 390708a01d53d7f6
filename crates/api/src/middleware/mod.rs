//! Cross-cutting request handling: request ids and access logs, Prometheus metrics,
//! CORS for the customer-facing routes, body size limits, rate limits, idempotency keys,
//! which requests read from a replica, and problem+json for unknown routes and methods.

pub mod audit;
pub mod conditional;
pub mod cors;
pub mod fallback;
pub mod idempotency;
pub mod input_limits;
pub mod metrics;
pub mod rate_limit;
pub mod replica;
pub mod request_id;
