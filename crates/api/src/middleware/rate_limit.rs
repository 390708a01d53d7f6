//! Rate limits (GCRA, through `governor`): one bucket per merchant key and one per
//! customer session, keyed by [`Principal::scope`], plus one per client address for
//! requests whose credential is refused, to blunt credential stuffing. Over the limit the
//! answer is 429 `rate_limited` with `Retry-After`.
//!
//! The middleware resolves the credential itself, whether or not limits are on (once:
//! [`authenticate`] caches the principal, and a refusal, in the request's extensions),
//! so the idempotency layer and the handler's extractor reuse what it found, and a
//! refused credential is answered before any body is read. An address that has used up its budget of
//! refused credentials is answered 429 before its next credential is even looked at, so
//! while it is blocked it learns nothing and costs no database query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::{Principal, authenticate};
use crate::error::ApiError;
use crate::state::AppState;

/// One limit: a sustained rate and the burst allowed above it. A rate of 0 disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub per_second: u32,
    pub burst: u32,
}

impl Limit {
    pub const DISABLED: Limit = Limit {
        per_second: 0,
        burst: 0,
    };

    pub const fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }

    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        // A burst below the rate would make the rate unreachable; it is at least the rate.
        let burst = NonZeroU32::new(self.burst.max(self.per_second))?;
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// What `tenure serve` is configured with (`--rate-limit-*`, `TENURE_RATE_LIMIT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per merchant secret key.
    pub merchant: Limit,
    /// Per customer session (one customer of one merchant).
    pub customer: Limit,
    /// Per client address, counting only requests whose credential is refused.
    pub unauthenticated: Limit,
    /// Take the client address from the last `X-Forwarded-For` entry (the one the
    /// trusted proxy in front of Tenure appended) instead of the peer address.
    pub trust_forwarded_for: bool,
}

impl RateLimitConfig {
    pub const DEFAULT_MERCHANT: Limit = Limit::new(100, 200);
    pub const DEFAULT_CUSTOMER: Limit = Limit::new(20, 40);
    pub const DEFAULT_UNAUTHENTICATED: Limit = Limit::new(10, 100);

    /// No limits at all.
    pub const fn disabled() -> Self {
        Self {
            merchant: Limit::DISABLED,
            customer: Limit::DISABLED,
            unauthenticated: Limit::DISABLED,
            trust_forwarded_for: false,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            merchant: Self::DEFAULT_MERCHANT,
            customer: Self::DEFAULT_CUSTOMER,
            unauthenticated: Self::DEFAULT_UNAUTHENTICATED,
            trust_forwarded_for: false,
        }
    }
}

/// How often (in checks) idle buckets are swept, so memory follows the active callers.
const SWEEP_EVERY: u64 = 4096;

/// The limiters of one process, shared by all its HTTP workers (cheap to clone).
#[derive(Clone)]
pub struct RateLimits {
    inner: Arc<Inner>,
}

struct Inner {
    config: RateLimitConfig,
    merchant: Option<DefaultKeyedRateLimiter<String>>,
    customer: Option<DefaultKeyedRateLimiter<String>>,
    unauthenticated: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that used up their budget of refused credentials, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::new(RateLimitConfig::default())
    }
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        let keyed = |limit: Limit| limit.quota().map(governor::RateLimiter::keyed);
        Self {
            inner: Arc::new(Inner {
                config,
                merchant: keyed(config.merchant),
                customer: keyed(config.customer),
                unauthenticated: config
                    .unauthenticated
                    .quota()
                    .map(governor::RateLimiter::keyed),
                blocked: Mutex::new(HashMap::new()),
                checks: AtomicU64::new(0),
            }),
        }
    }

    pub fn disabled() -> Self {
        Self::new(RateLimitConfig::disabled())
    }

    pub fn config(&self) -> RateLimitConfig {
        self.inner.config
    }

    fn enabled(&self) -> bool {
        let i = &self.inner;
        i.merchant.is_some() || i.customer.is_some() || i.unauthenticated.is_some()
    }

    /// Counts one request of an authenticated caller; `Err` holds the wait.
    pub fn check_principal(&self, principal: &Principal) -> Result<(), Duration> {
        self.maybe_sweep();
        let limiter = match principal {
            Principal::Merchant(_) | Principal::Operator => &self.inner.merchant,
            Principal::Customer(_) => &self.inner.customer,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&principal.scope())
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Whether `ip` is blocked for refused credentials; `Some` holds the wait.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.inner.unauthenticated.as_ref()?;
        let mut blocked = self.inner.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            blocked.remove(&ip);
            None
        }
    }

    /// Counts a refused credential from `ip`; `Err` (with the wait) once the address has
    /// used up its budget, which also blocks it for that long.
    pub fn record_failure(&self, ip: IpAddr) -> Result<(), Duration> {
        self.maybe_sweep();
        let Some(limiter) = &self.inner.unauthenticated else {
            return Ok(());
        };
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            let mut blocked = self.inner.blocked.lock().unwrap_or_else(|e| e.into_inner());
            blocked.insert(ip, Instant::now() + wait);
            wait
        })
    }

    fn maybe_sweep(&self) {
        let n = self.inner.checks.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        for limiter in [&self.inner.merchant, &self.inner.customer]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.inner.unauthenticated {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        let mut blocked = self.inner.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
    }
}

/// Whole seconds to wait, rounded up and at least 1 (Retry-After has no fractions).
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

fn limited(wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: retry_after_secs(wait),
    }
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when the proxy in
/// front is trusted to append it. (The first entry is whatever the client wrote.)
fn client_ip(req: &ServiceRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .last()
    {
        return Some(ip);
    }
    req.peer_addr().map(|addr| addr.ip())
}

fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// Resolves the caller's credential before anything reads the body, in every
/// configuration (so an unknown key with a bad body is a 401, never a 422), then counts
/// the request against its bucket when rate limits are on.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Requests without a credential cost nothing to refuse and are left to the handler.
    if !is_api_path(req.path()) || !req.headers().contains_key(header::AUTHORIZATION) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let limits = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.rate_limits.clone())
        .filter(RateLimits::enabled);
    let ip = limits
        .as_ref()
        .and_then(|limits| client_ip(&req, limits.config().trust_forwarded_for));
    if let Some(limits) = &limits
        && let Some(wait) = ip.and_then(|ip| limits.blocked(ip))
    {
        return Ok(req.error_response(limited(wait)));
    }
    match authenticate(req.request()).await {
        Ok(principal) => {
            if let Some(limits) = &limits
                && let Err(wait) = limits.check_principal(&principal)
            {
                return Ok(req.error_response(limited(wait)));
            }
        }
        Err(ApiError::Unauthenticated(_)) => {
            if let (Some(limits), Some(ip)) = (&limits, ip)
                && let Err(wait) = limits.record_failure(ip)
            {
                return Ok(req.error_response(limited(wait)));
            }
            // Otherwise the handler answers 401 from the cached refusal (or 404 for an
            // unknown route), before its body extractor runs.
        }
        // The credential could not be checked (database down): that is the answer.
        Err(other) => return Ok(req.error_response(other)),
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_app::merchants::api_keys::MerchantKey;
    use tenure_domain::access::KeyScopes;
    use tenure_domain::ids::{ApiKeyId, GenerateId, MerchantId};

    fn merchant() -> Principal {
        Principal::Merchant(MerchantKey {
            merchant: MerchantId::generate(),
            key: ApiKeyId::generate(),
            scopes: KeyScopes::Unrestricted,
            expires_at: None,
        })
    }

    #[test]
    fn buckets_allow_the_burst_then_refuse_with_a_wait() {
        let limits = RateLimits::new(RateLimitConfig {
            merchant: Limit::new(1, 3),
            ..RateLimitConfig::disabled()
        });
        let a = merchant();
        let b = merchant();
        for _ in 0..3 {
            assert!(limits.check_principal(&a).is_ok());
        }
        let wait = limits.check_principal(&a).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        assert!(limits.check_principal(&b).is_ok(), "keys are independent");
    }

    #[test]
    fn zero_disables_a_limit() {
        let limits = RateLimits::disabled();
        assert!(!limits.enabled());
        let a = merchant();
        for _ in 0..1000 {
            assert!(limits.check_principal(&a).is_ok());
        }
    }

    #[test]
    fn refused_credentials_block_their_address() {
        let limits = RateLimits::new(RateLimitConfig {
            unauthenticated: Limit::new(1, 2),
            ..RateLimitConfig::disabled()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.blocked(ip).is_none());
        assert!(limits.record_failure(ip).is_ok());
        assert!(limits.record_failure(ip).is_ok());
        assert!(limits.record_failure(ip).is_err());
        assert!(limits.blocked(ip).is_some());
        assert!(limits.blocked(other).is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
