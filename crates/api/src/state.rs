//! What every handler shares: the use cases' context, plus what only HTTP needs.

use tenure_app::App;

use crate::auth::key_cache::ApiKeyCache;
use crate::auth::operator::OperatorToken;
use crate::middleware::cors::OperatorOrigins;
use crate::middleware::metrics::MetricsAccess;
use crate::middleware::rate_limit::RateLimits;

#[derive(Clone, Debug)]
pub struct AppState {
    /// The database, clock, gateway and caches the use cases run with.
    pub app: App,
    /// Per-credential and per-address request limits, shared by every HTTP worker.
    pub rate_limits: RateLimits,
    /// Secret keys already checked; answers only while `key_cache::keep_current` runs.
    pub api_keys: ApiKeyCache,
    /// Who may scrape `/metrics`, and whether the API's address serves it.
    pub metrics_access: MetricsAccess,
    /// Web origins the operator allows for every merchant's portal (CORS), beside each
    /// merchant's own.
    pub cors_allowed_origins: OperatorOrigins,
    /// The operator's token for `/v1/operator/` (none: those routes refuse everyone).
    pub operator_token: OperatorToken,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.now()
    }
}
