//! Cross-cutting request handling: request ids and access logs, Prometheus metrics,
//! CORS for the customer-facing routes, body size limits, rate limits, idempotency keys, and problem+json for unknown routes
//! and methods.

pub mod audit;
pub mod conditional;
pub mod cors;
pub mod fallback;
pub mod idempotency;
pub mod input_limits;
pub mod metrics;
pub mod rate_limit;
pub mod request_id;
