//! Two audiences, two credentials (DESIGN.md): merchant secret keys for server-to-server
//! calls under `/v1/`, and customer session JWTs for the portal under `/v1/portal/`.
//! The credential is resolved once per request and cached in its extensions, so the
//! idempotency layer and the handler's extractor agree on who is calling.

pub mod key_cache;
pub mod operator;
mod principal;
pub mod scopes;

pub use principal::{
    AuthenticatedCustomer, AuthenticatedMerchant, AuthenticatedOperator, MERCHANT_HEADER,
    Principal, authenticate,
};
