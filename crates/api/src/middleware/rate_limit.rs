//! Rate limits (GCRA): one bucket per merchant key and one per customer session, keyed
//! by [`Principal::scope`], plus one per client address for requests whose credential is
//! refused, to blunt credential stuffing. Over the limit the answer is 429 `rate_limited`
//! with `Retry-After`.
//!
//! The buckets are shared by every process through PostgreSQL (one upsert per counted
//! request, [`tenure_app::rate_limits`]), or kept in this process's memory (`governor`)
//! when the operator chooses `--rate-limit-store memory`. In front of the shared buckets
//! each process remembers, per key, until when the database refused it: no request can
//! be allowed before then (a bucket's time only moves forward), so a caller over its
//! limit is answered without a query and the answer is the one the database would give.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use tenure_app::App;
use tenure_domain::rate_limit::Gcra;

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

    fn gcra(self) -> Option<Gcra> {
        Gcra::new(self.per_second, self.burst)
    }

    fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        // A burst below the rate would make the rate unreachable; it is at least the rate.
        let burst = NonZeroU32::new(self.burst.max(self.per_second))?;
        Some(Quota::per_second(rate).allow_burst(burst))
    }
}

/// Where the buckets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateLimitStore {
    /// In PostgreSQL, shared by every process on the database: N processes allow the
    /// rate once, not N times.
    #[default]
    Postgres,
    /// In this process's memory: no query per request, but each process counts alone.
    Memory,
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
    /// Where the buckets live.
    pub store: RateLimitStore,
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
            store: RateLimitStore::Memory,
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
            store: RateLimitStore::Postgres,
        }
    }
}

/// How often (in checks) idle buckets are swept, so memory follows the active callers.
const SWEEP_EVERY: u64 = 4096;

/// How many shared buckets one sweep removes at most, so it never holds many row locks.
const SWEEP_BATCH: i64 = 1000;

/// What a process can say about a request without the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Refuse(Duration),
    /// The shared bucket `key` decides ([`RateLimits::settle`]).
    Ask {
        key: String,
        limit: Gcra,
    },
}

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
    /// Shared buckets the database refused, until when (no query is needed before).
    waiting: Mutex<HashMap<String, Instant>>,
    checks: AtomicU64,
    /// Set every [`SWEEP_EVERY`] checks; the next query of a shared bucket also sweeps.
    sweep_shared: AtomicBool,
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
        let memory = config.store == RateLimitStore::Memory;
        let keyed = |limit: Limit| {
            limit
                .quota()
                .filter(|_| memory)
                .map(governor::RateLimiter::keyed)
        };
        Self {
            inner: Arc::new(Inner {
                config,
                merchant: keyed(config.merchant),
                customer: keyed(config.customer),
                unauthenticated: config
                    .unauthenticated
                    .quota()
                    .filter(|_| memory)
                    .map(governor::RateLimiter::keyed),
                blocked: Mutex::new(HashMap::new()),
                waiting: Mutex::new(HashMap::new()),
                checks: AtomicU64::new(0),
                sweep_shared: AtomicBool::new(false),
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
        let c = &self.inner.config;
        [c.merchant, c.customer, c.unauthenticated]
            .iter()
            .any(|limit| limit.gcra().is_some())
    }

    fn shared(&self) -> bool {
        self.inner.config.store == RateLimitStore::Postgres
    }

    /// Counts one request of an authenticated caller, or says which shared bucket must.
    pub fn check_principal(&self, principal: &Principal) -> Verdict {
        self.maybe_sweep();
        let (limiter, limit, prefix) = match principal {
            Principal::Merchant(_) | Principal::Operator => {
                (&self.inner.merchant, self.inner.config.merchant, "m")
            }
            Principal::Customer(_) => (&self.inner.customer, self.inner.config.customer, "c"),
        };
        if self.shared() {
            let Some(limit) = limit.gcra() else {
                return Verdict::Allow;
            };
            let key = format!("{prefix}:{}", principal.scope());
            return match self.still_waiting(&key) {
                Some(wait) => Verdict::Refuse(wait),
                None => Verdict::Ask { key, limit },
            };
        }
        let Some(limiter) = limiter else {
            return Verdict::Allow;
        };
        match limiter.check_key(&principal.scope()) {
            Ok(()) => Verdict::Allow,
            Err(not_until) => Verdict::Refuse(not_until.wait_time_from(limiter.clock().now())),
        }
    }

    /// Whether `ip` is blocked for refused credentials; `Some` holds the wait.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        self.inner.config.unauthenticated.gcra()?;
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

    /// Counts a refused credential from `ip`, or says which shared bucket must. Once the
    /// address has used up its budget ([`Verdict::Refuse`]) it is blocked for the wait.
    pub fn record_failure(&self, ip: IpAddr) -> Verdict {
        self.maybe_sweep();
        if self.shared() {
            return match self.inner.config.unauthenticated.gcra() {
                Some(limit) => Verdict::Ask {
                    key: format!("ip:{ip}"),
                    limit,
                },
                None => Verdict::Allow,
            };
        }
        let Some(limiter) = &self.inner.unauthenticated else {
            return Verdict::Allow;
        };
        match limiter.check_key(&ip) {
            Ok(()) => Verdict::Allow,
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                self.block(ip, wait);
                Verdict::Refuse(wait)
            }
        }
    }

    /// The answer to a verdict: a shared bucket is counted in the database (whose refusal
    /// is remembered until it ends; for a client address, that blocks it). If the
    /// database cannot be reached the request goes on: it needs the database anyway,
    /// and answers 503 if it is really gone.
    pub async fn settle(
        &self,
        app: &App,
        verdict: Verdict,
        ip: Option<IpAddr>,
    ) -> Result<(), Duration> {
        let (key, limit) = match verdict {
            Verdict::Allow => return Ok(()),
            Verdict::Refuse(wait) => return Err(wait),
            Verdict::Ask { key, limit } => (key, limit),
        };
        if self.inner.sweep_shared.swap(false, Ordering::Relaxed) {
            // Off the request's path: a bounded delete, on a connection of its own.
            let app = app.clone();
            actix_web::rt::spawn(async move {
                if let Err(err) = tenure_app::rate_limits::sweep(&app, SWEEP_BATCH).await {
                    tracing::warn!(error = %err, "rate-limit buckets not swept");
                }
            });
        }
        match tenure_app::rate_limits::take(app, &key, limit).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => {
                match ip.filter(|_| key.starts_with("ip:")) {
                    Some(ip) => self.block(ip, wait),
                    None => {
                        let mut waiting =
                            self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
                        waiting.insert(key, Instant::now() + wait);
                    }
                }
                Err(wait)
            }
            Err(err) => {
                tracing::warn!(error = %err, "shared rate limit not counted");
                Ok(())
            }
        }
    }

    fn block(&self, ip: IpAddr, wait: Duration) {
        let mut blocked = self.inner.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.insert(ip, Instant::now() + wait);
    }

    fn still_waiting(&self, key: &str) -> Option<Duration> {
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let until = *waiting.get(key)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            waiting.remove(key);
            None
        }
    }

    fn maybe_sweep(&self) {
        let n = self.inner.checks.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        self.inner.sweep_shared.store(true, Ordering::Relaxed);
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
        drop(blocked);
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.retain(|_, until| *until > now);
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
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let limits = state
        .as_ref()
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
            if let (Some(limits), Some(state)) = (&limits, &state)
                && let Err(wait) = limits
                    .settle(&state.app, limits.check_principal(&principal), ip)
                    .await
            {
                return Ok(req.error_response(limited(wait)));
            }
        }
        Err(ApiError::Unauthenticated(_)) => {
            if let (Some(limits), Some(state), Some(ip)) = (&limits, &state, ip)
                && let Err(wait) = limits
                    .settle(&state.app, limits.record_failure(ip), Some(ip))
                    .await
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
            mode: tenure_domain::access::Mode::Test,
        })
    }

    /// A verdict of the in-memory limiter, which never asks the database.
    fn local(verdict: Verdict) -> Result<(), Duration> {
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Refuse(wait) => Err(wait),
            Verdict::Ask { key, .. } => panic!("memory limits asked for {key}"),
        }
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
            assert!(local(limits.check_principal(&a)).is_ok());
        }
        let wait = local(limits.check_principal(&a)).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        assert!(
            local(limits.check_principal(&b)).is_ok(),
            "keys are independent"
        );
    }

    #[test]
    fn zero_disables_a_limit() {
        let limits = RateLimits::disabled();
        assert!(!limits.enabled());
        let a = merchant();
        for _ in 0..1000 {
            assert!(local(limits.check_principal(&a)).is_ok());
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
        assert!(local(limits.record_failure(ip)).is_ok());
        assert!(local(limits.record_failure(ip)).is_ok());
        assert!(local(limits.record_failure(ip)).is_err());
        assert!(limits.blocked(ip).is_some());
        assert!(limits.blocked(other).is_none());
    }

    #[test]
    fn shared_limits_ask_the_database_until_it_refuses() {
        let limits = RateLimits::new(RateLimitConfig {
            merchant: Limit::new(1, 3),
            ..RateLimitConfig::default()
        });
        let a = merchant();
        let m = a.merchant().expect("a merchant key");
        let Verdict::Ask { key, limit } = limits.check_principal(&a) else {
            panic!("a shared bucket is counted in the database");
        };
        assert_eq!(key, format!("m:{m}"));
        assert_eq!(limit, Gcra::new(1, 3).unwrap());
        // A refusal is remembered: the next request is refused without a query.
        limits
            .inner
            .waiting
            .lock()
            .unwrap()
            .insert(key, Instant::now() + Duration::from_secs(1));
        assert!(matches!(limits.check_principal(&a), Verdict::Refuse(_)));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(
            limits.record_failure(ip),
            Verdict::Ask { key, .. } if key == "ip:192.0.2.1"
        ));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
