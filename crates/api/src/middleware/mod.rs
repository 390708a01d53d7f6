//! Cross-cutting request handling: request ids and access logs, Prometheus metrics,
//! idempotency keys, and problem+json for unknown routes and methods.

pub mod fallback;
pub mod idempotency;
pub mod metrics;
pub mod request_id;
