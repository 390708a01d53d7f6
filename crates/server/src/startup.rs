//! Turning configuration into a running service's state.

use std::sync::Arc;

use chrono::Duration;
use rand::RngCore;
use tenure_api::AppState;
use tenure_api::auth::key_cache::ApiKeyCache;
use tenure_api::auth::operator::OperatorToken;
use tenure_api::middleware::cors::OperatorOrigins;
use tenure_api::middleware::metrics::MetricsAccess;
use tenure_api::middleware::rate_limit::RateLimits;
use tenure_app::App;
use tenure_app::billing::gateways::{GatewayConnector, Gateways};
use tenure_app::secrets::Keyring;
use tenure_app::sessions::tokens::SessionSigner;
use tenure_domain::billing::gateway::SandboxGateway;
use tenure_domain::clock::Clock;
use tenure_engine::stripe::StripeConnector;
use tenure_store::repo::secrets;
use tenure_store::{Db, migrate};

use crate::config::GlobalArgs;

const JWT_SECRET_NAME: &str = "customer_session_hs256";
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Store(#[from] tenure_store::StoreError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Creates the database if needed and runs pending migrations.
pub async fn prepare_database(global: &GlobalArgs) -> Result<Vec<String>, StartupError> {
    migrate::ensure_database(&global.database_url).await?;
    Ok(migrate::run_pending(&global.database_url).await?)
}

/// The session signing key: the configured one, or the one kept in the database.
pub async fn session_secret(db: &Db, configured: Option<&str>) -> Result<Vec<u8>, StartupError> {
    if let Some(secret) = configured {
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(StartupError::Config(format!(
                "TENURE_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"
            )));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let mut candidate = [0u8; 32];
    rand::rng().fill_bytes(&mut candidate);
    let mut conn = db.conn().await?;
    Ok(secrets::get_or_create(&mut conn, JWT_SECRET_NAME, &candidate).await?)
}

/// The use cases' context: what `tenure worker` runs with, and the heart of the HTTP
/// state.
pub async fn build_app(
    db: Db,
    clock: Arc<dyn Clock>,
    jwt_secret: Option<&str>,
    session_ttl: Duration,
) -> Result<App, StartupError> {
    let secret = session_secret(&db, jwt_secret).await?;
    Ok(App::new(
        db,
        clock,
        SessionSigner::new(&secret, session_ttl),
        Arc::new(SandboxGateway::new()),
    ))
}

/// What the HTTP surface serves with: the use cases' context plus the rate limits and
/// the API key cache (both empty until configured).
pub async fn build_state(
    db: Db,
    clock: Arc<dyn Clock>,
    jwt_secret: Option<&str>,
    session_ttl: Duration,
) -> Result<AppState, StartupError> {
    Ok(AppState {
        app: build_app(db, clock, jwt_secret, session_ttl).await?,
        rate_limits: RateLimits::default(),
        api_keys: ApiKeyCache::default(),
        metrics_access: MetricsAccess::default(),
        cors_allowed_origins: OperatorOrigins::default(),
        operator_token: OperatorToken::none(),
    })
}

/// Merchants' gateways: the operator's secrets key (if configured) and the Stripe
/// connector.
pub fn gateways(global: &GlobalArgs) -> Result<Gateways, StartupError> {
    let keyring = match &global.secrets_key {
        Some(current) => {
            let old: Vec<&str> = global.secrets_old_keys.iter().map(String::as_str).collect();
            Some(
                Keyring::new(current, &old)
                    .map_err(|e| StartupError::Config(format!("TENURE_SECRETS_KEY: {e}")))?,
            )
        }
        None => None,
    };
    let stripe = StripeConnector::new(
        &global.stripe_api_base,
        std::time::Duration::from_millis(global.stripe_timeout_ms),
    )
    .map_err(|e| StartupError::Config(format!("TENURE_STRIPE_API_BASE: {e}")))?;
    let connector: Arc<dyn GatewayConnector> = Arc::new(stripe);
    Ok(Gateways::new(keyring, Some(connector)))
}
