//! Prometheus metrics: request counts and latencies by route pattern (never by raw path,
//! which would make one series per id), and at each scrape the background work waiting
//! across every tenant (`tenure_app::backlog`). `GET /metrics` may require a bearer
//! token, and may be served on an address of its own instead of the API's.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, web};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use sha2::{Digest, Sha256};
use tenure_app::backlog::{self, Backlog};

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("tenure".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// The text exposition format, for `GET /metrics`: the registry's figures and
    /// `extra` (gathered at this scrape).
    pub fn render(&self, extra: Vec<MetricFamily>) -> HttpResponse {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        let mut families = self.registry.gather();
        families.extend(extra);
        match encoder.encode(&families, &mut buffer) {
            Ok(()) => HttpResponse::Ok()
                .content_type(encoder.format_type())
                .body(buffer),
            Err(err) => {
                actix_web::ResponseError::error_response(&crate::error::ApiError::internal(err))
            }
        }
    }
}

pub async fn metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().cloned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics.observe(
            &method,
            &route,
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

/// Who may read `/metrics` and where: an operator setting, kept in [`AppState`].
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// SHA-256 of the bearer token a scrape must send; none: anyone may scrape.
    token_sha256: Option<[u8; 32]>,
    /// Served on an address of its own ([`crate::metrics_app`]); the API's address
    /// answers 404 for it.
    own_address: bool,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("token", &self.token_sha256.map(|_| "<set>"))
            .field("own_address", &self.own_address)
            .finish()
    }
}

impl MetricsAccess {
    pub fn new(token: Option<&str>, own_address: bool) -> Self {
        Self {
            token_sha256: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            own_address,
        }
    }

    /// Whether the request carries the token (when one is required). The digests are
    /// compared, so the time taken says nothing about the token.
    fn admits(&self, req: &HttpRequest) -> bool {
        let Some(expected) = self.token_sha256 else {
            return true;
        };
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| {
                <[u8; 32]>::from(Sha256::digest(token.trim().as_bytes())) == expected
            })
    }
}

/// `GET /metrics` on the API's address.
pub async fn api_metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    if state.metrics_access.own_address {
        return Err(ApiError::RouteNotFound);
    }
    scrape(req, state, metrics).await
}

/// `GET /metrics`: after the token check, the HTTP figures and the backlog. When the
/// database does not answer, the backlog is left out (an absent series, not a stale or
/// zero one) and the HTTP figures are still served.
pub async fn scrape(
    req: HttpRequest,
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    if !state.metrics_access.admits(&req) {
        return Err(ApiError::Unauthenticated(
            "send Authorization: Bearer <the metrics token (TENURE_METRICS_TOKEN)>",
        ));
    }
    let extra = match backlog::read(&state.app).await {
        Ok(backlog) => backlog_families(&backlog).map_err(ApiError::internal)?,
        Err(err) => {
            tracing::warn!(error = %err, "metrics: the backlog could not be read");
            Vec::new()
        }
    };
    Ok(metrics.render(extra))
}

/// The backlog as gauges, in a registry of this scrape's own.
fn backlog_families(backlog: &Backlog) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let registry = Registry::new_custom(Some("tenure".to_owned()), None)?;
    let counts = [
        (
            "renewals_due",
            "Subscriptions whose period has ended and that are not renewed yet",
            backlog.renewals_due,
        ),
        (
            "renewals_overdue",
            "Renewals still waiting 10 minutes after their period ended",
            backlog.renewals_overdue,
        ),
        (
            "charges_in_flight",
            "Charges prepared for the gateway and not settled yet",
            backlog.charges_in_flight,
        ),
        (
            "scheduled_changes_due",
            "Scheduled changes (pause, resume, cancellation, plan change, trial end) due and not applied yet",
            backlog.scheduled_changes_due,
        ),
        (
            "webhook_deliveries_pending",
            "Webhook deliveries not yet delivered, failed or canceled (due or awaiting a retry)",
            backlog.webhook_deliveries_pending,
        ),
    ];
    for (name, help, value) in counts {
        let gauge = IntGauge::new(name, help)?;
        gauge.set(value);
        registry.register(Box::new(gauge))?;
    }
    let age = Gauge::new(
        "webhook_deliveries_oldest_pending_age_seconds",
        "How long the oldest pending webhook delivery has waited since its event (0: none pending)",
    )?;
    age.set(
        backlog
            .oldest_pending_delivery_age_secs
            .unwrap_or(0.0)
            .max(0.0),
    );
    registry.register(Box::new(age))?;
    Ok(registry.gather())
}
