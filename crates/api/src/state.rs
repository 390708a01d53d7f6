//! What every handler shares: the database, the clock and the session signer.

use std::sync::Arc;

use tenure_domain::billing::gateway::PaymentGateway;
use tenure_domain::clock::Clock;
use tenure_store::Db;

use crate::auth::jwt::SessionSigner;
use crate::auth::key_cache::ApiKeyCache;
use crate::middleware::rate_limit::RateLimits;
use crate::service::portal_terms::PortalTermsCache;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub sessions: SessionSigner,
    /// Per-credential and per-address request limits, shared by every HTTP worker.
    pub rate_limits: RateLimits,
    /// Where charges and refunds go; the deterministic sandbox unless configured.
    pub gateway: Arc<dyn PaymentGateway>,
    /// Products' portal policies and plans, kept briefly for the portal's reads.
    pub portal_terms: PortalTermsCache,
    /// Secret keys already checked; answers only while `key_cache::keep_current` runs.
    pub api_keys: ApiKeyCache,
    /// How long a prepared charge may take before the engine sends it again
    /// (`service::charges`).
    pub charge_lease: chrono::Duration,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
