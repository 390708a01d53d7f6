//! Webhook delivery. [`deliver_due`] claims due deliveries with `FOR UPDATE SKIP LOCKED`
//! and a lease, POSTs each as a Standard Webhooks request outside any transaction, then
//! settles each outcome in a transaction of its own: attempt log, retry or final status,
//! endpoint health and, after uninterrupted failure, disabling the endpoint with a
//! `webhook_endpoint.disabled` event. Deliveries are created with their event (see
//! `tenure_store::repo::events::record`); endpoints are managed by `tenure_app::webhooks`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tenure_app::dto::webhooks::WebhookEndpointDto;
use tenure_app::events::{EventDraft, record_event};
use tenure_app::outbound::{self, ResolveError};
use tenure_app::{App, AppError, AppResult};
use tenure_domain::access::Mode;
use tenure_domain::ids::{EventId, MerchantId, WebhookDeliveryId, WebhookEndpointId};
use tenure_domain::outbound::TargetPolicy;
use tenure_domain::time::next_update_time;
use tenure_domain::webhooks::{
    self as rules, DeliveryAttempt, DeliveryStatus, DisabledReason, WebhookEndpoint,
};
use tenure_store::repo::events::{self, EventRow};
use tenure_store::repo::merchants;
use tenure_store::repo::webhooks::{self as repo, ClaimedDelivery, Settlement};

/// How long one request may take before it counts as failed, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How long a claimed delivery stays invisible to other workers: well beyond the request
/// timeout, so only a crashed worker's delivery is claimed again.
pub const CLAIM_LEASE_SECS: i64 = 60;
/// What the attempt log says of a request refused by the target policy. Like every
/// other failure it says no more than the attempt log needs: the log must not answer
/// questions about the operator's network.
const NOT_ALLOWED: &str = "not sent: the host's address is not allowed";

/// The HTTP client of every delivery a process makes: rustls over the ring provider, no
/// redirects (a webhook is answered where it was sent, and a redirect could lead past the
/// target check), no proxy (it would resolve the host itself, past the check), a timeout
/// per request ([`DEFAULT_REQUEST_TIMEOUT`] unless configured) and host names resolved by
/// [`CheckedResolver`], so a request connects only to addresses the policy allows.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: reqwest::Client,
    targets: TargetPolicy,
}

impl WebhookSender {
    pub fn new(timeout: StdDuration, targets: TargetPolicy) -> AppResult<Self> {
        // Another crate may have installed a provider already; either way one is in place.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver(targets)))
            .user_agent(concat!("Tenure-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AppError::internal(format!("webhook http client: {e}")))?;
        Ok(Self { client, targets })
    }
}

/// Resolves the host of each webhook request and hands reqwest only addresses the
/// policy allows, so the address checked is the address connected to (a second lookup
/// could answer differently). Any refused address fails the whole lookup.
#[derive(Debug)]
struct CheckedResolver(TargetPolicy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            // reqwest puts the URL's port on the addresses returned.
            let addrs = outbound::resolve_allowed(name.as_str(), 0, policy).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The body of a webhook request: the event as `GET /v1/events/{id}` renders it, with the
/// mode of the merchant (the tenant) it belongs to.
pub fn payload(event: &EventRow, mode: Mode) -> AppResult<Vec<u8>> {
    let mut data = serde_json::Map::new();
    data.insert("object".to_owned(), event.data.clone());
    if let Some(previous) = &event.previous_attributes {
        data.insert("previous_attributes".to_owned(), previous.clone());
    }
    let body = serde_json::json!({
        "id": EventId::from_uuid(event.id).to_string(),
        "object": "event",
        "type": event.event_type,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "created_at": event.created_at,
        "livemode": mode.is_live(),
        "data": data,
        // Who acted, as the API renders it (docs/events.md).
        "request": tenure_app::dto::events::EventRequestDto::from_columns(
            event.api_key_id,
            event.agent.clone(),
            event.request_id.clone(),
        ),
    });
    serde_json::to_vec(&body).map_err(AppError::internal)
}

/// The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per secret, space
/// separated (Standard Webhooks).
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> AppResult<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|_| AppError::internal("a stored webhook secret is not valid base64"))?;
        let signature = signer
            .sign(msg_id, timestamp, body)
            .map_err(|e| AppError::internal(format!("signing failed: {e}")))?;
        signatures.push(signature);
    }
    Ok(signatures.join(" "))
}

/// What came of one HTTP request.
struct AttemptResult {
    response_status: Option<u16>,
    error: Option<String>,
    latency_ms: u32,
}

impl AttemptResult {
    fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

struct Job {
    claim: ClaimedDelivery,
    merchant: MerchantId,
    mode: Mode,
    endpoint: Option<WebhookEndpoint>,
    event: Option<EventRow>,
}

async fn send(sender: &WebhookSender, job: &Job, now: DateTime<Utc>) -> AttemptResult {
    let (Some(endpoint), Some(event)) = (&job.endpoint, &job.event) else {
        return AttemptResult {
            response_status: None,
            error: Some("the endpoint or the event no longer exists".to_owned()),
            latency_ms: 0,
        };
    };
    match try_send(sender, endpoint, event, job.mode, now).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(error = %err, cause = ?err, "webhook request could not be prepared");
            AttemptResult {
                response_status: None,
                error: Some("the request could not be prepared".to_owned()),
                latency_ms: 0,
            }
        }
    }
}

async fn try_send(
    sender: &WebhookSender,
    endpoint: &WebhookEndpoint,
    event: &EventRow,
    mode: Mode,
    now: DateTime<Utc>,
) -> AppResult<AttemptResult> {
    let body = payload(event, mode)?;
    let msg_id = EventId::from_uuid(event.id).to_string();
    // Receivers compare webhook-timestamp with their own clock (replay protection), so
    // it is the wall-clock time of sending, not the (possibly test-shifted) Clock.
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(&endpoint.signing_secrets(now), &msg_id, timestamp, &body)?;
    // A URL naming an address is connected to without a lookup, so the resolver never
    // sees it: check it here. (An endpoint may have been stored while private targets
    // were allowed.)
    let url = reqwest::Url::parse(&endpoint.url).map_err(AppError::internal)?;
    if outbound::literal_refusal(&url, sender.targets).is_some() {
        return Ok(AttemptResult {
            response_status: None,
            error: Some(NOT_ALLOWED.to_owned()),
            latency_ms: 0,
        });
    }
    let started = Instant::now();
    let result = sender
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    Ok(match result {
        Ok(response) => AttemptResult {
            response_status: Some(response.status().as_u16()),
            error: None,
            latency_ms,
        },
        Err(err) => AttemptResult {
            response_status: None,
            error: Some(describe(&err)),
            latency_ms,
        },
    })
}

/// A short, generic reason for the attempt log: not the URL, and not the transport's
/// own words ("Connection refused", "No route to host"), which would tell apart a closed
/// port from a filtered one and make the log a port scanner.
fn describe(err: &reqwest::Error) -> String {
    let refused = std::iter::successors(std::error::Error::source(err), |e| e.source()).any(|e| {
        e.downcast_ref::<ResolveError>()
            .is_some_and(|e| matches!(e, ResolveError::Refused(_)))
    });
    if refused {
        NOT_ALLOWED
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_request() {
        "request failed"
    } else {
        "failed"
    }
    .to_owned()
}

/// Sends up to `batch` due deliveries (due at `now`) and records what came of each.
/// Any number of processes may run this at once. Returns how many attempts were made.
pub async fn deliver_due(
    state: &App,
    sender: &WebhookSender,
    now: DateTime<Utc>,
    batch: i64,
) -> AppResult<usize> {
    let mut conn = state.db.conn().await?;
    let claimed = repo::claim_due(
        &mut conn,
        now,
        now + Duration::seconds(CLAIM_LEASE_SECS),
        batch,
    )
    .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let mut jobs = Vec::with_capacity(claimed.len());
    let mut modes = HashMap::new();
    for claim in claimed {
        let merchant = MerchantId::from_uuid(claim.merchant_id);
        let mode = match modes.get(&merchant) {
            Some(mode) => *mode,
            None => {
                let mode = merchants::mode(&mut conn, merchant).await?;
                modes.insert(merchant, mode);
                mode
            }
        };
        let endpoint = repo::get_endpoint(
            &mut conn,
            merchant,
            WebhookEndpointId::from_uuid(claim.endpoint_id),
            false,
        )
        .await
        .ok();
        let event = events::get(&mut conn, merchant, EventId::from_uuid(claim.event_id))
            .await
            .ok();
        jobs.push(Job {
            claim,
            merchant,
            mode,
            endpoint,
            event,
        });
    }
    // The requests run concurrently, with no connection held, and each outcome is
    // recorded as soon as it is known: a receiver that answered is not shown `pending`
    // while a slower receiver of the same round keeps its request waiting. Recording is
    // part of each request's own future, so the other requests are still polled while
    // one outcome is written: reqwest checks its deadline before it looks at a response,
    // and a request left unpolled through slow commits was recorded as timed out although
    // its receiver had answered in time.
    drop(conn);
    let attempts = jobs.len();
    let recording = tokio::sync::Semaphore::new(RECORDING_CONCURRENCY);
    let mut in_flight: FuturesUnordered<_> = jobs
        .iter()
        .map(|job| {
            let recording = &recording;
            async move {
                let outcome = if job.endpoint.as_ref().is_some_and(WebhookEndpoint::disabled) {
                    None
                } else {
                    Some(send(sender, job, now).await)
                };
                // The semaphore is never closed; a permit keeps a round from taking every
                // connection of a pool its process shares with the other loops.
                let _permit = recording.acquire().await.ok();
                if let Err(err) = settle(state, job, outcome, now).await {
                    // The lease runs out and another round retries the delivery.
                    tracing::warn!(delivery = %WebhookDeliveryId::from_uuid(job.claim.id),
                        error = %err, "could not record a webhook attempt");
                }
            }
        })
        .collect();
    while in_flight.next().await.is_some() {}
    Ok(attempts)
}

/// How many of a round's outcomes are written at once: each holds a connection of the
/// process's background pool, whose budget counts them (`tenure worker`).
pub const RECORDING_CONCURRENCY: usize = 2;

/// Records an attempt (or, for an endpoint disabled meanwhile, cancels the delivery) and
/// updates the endpoint's health, disabling it after uninterrupted failure.
async fn settle(
    state: &App,
    job: &Job,
    outcome: Option<AttemptResult>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let merchant = job.merchant;
    let delivery = WebhookDeliveryId::from_uuid(job.claim.id);
    let endpoint_id = WebhookEndpointId::from_uuid(job.claim.endpoint_id);
    let attempt_no = u32::try_from(job.claim.attempt).map_err(AppError::internal)?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let endpoint = repo::get_endpoint(conn, merchant, endpoint_id, true).await;
        let Ok(before) = endpoint else {
            // Deleted meanwhile, with its deliveries.
            return Ok(());
        };
        let Some(outcome) = outcome else {
            let attempt = DeliveryAttempt {
                attempt: attempt_no,
                attempted_at: now,
                succeeded: false,
                response_status: None,
                latency_ms: 0,
                error: Some("not sent: the endpoint is disabled".to_owned()),
            };
            let settlement = Settlement {
                status: DeliveryStatus::Canceled,
                next_attempt_at: None,
            };
            repo::settle_attempt(conn, merchant, delivery, &attempt, &settlement).await?;
            return Ok(());
        };
        let succeeded = outcome.succeeded();
        let attempt = DeliveryAttempt {
            attempt: attempt_no,
            attempted_at: now,
            succeeded,
            response_status: outcome.response_status,
            latency_ms: outcome.latency_ms,
            error: outcome.error,
        };
        let settlement = if succeeded {
            Settlement {
                status: DeliveryStatus::Delivered,
                next_attempt_at: None,
            }
        } else {
            let jitter = rand::random_range(-1.0..=1.0);
            match rules::next_retry(&before.retry_schedule_secs, attempt_no, now, jitter) {
                Some(at) => Settlement {
                    status: DeliveryStatus::Pending,
                    next_attempt_at: Some(at),
                },
                None => Settlement {
                    status: DeliveryStatus::Failed,
                    next_attempt_at: None,
                },
            }
        };
        if !repo::settle_attempt(conn, merchant, delivery, &attempt, &settlement).await? {
            return Ok(());
        }
        let mut after = before.clone();
        if succeeded {
            after.failing_since = None;
        } else {
            after.failing_since.get_or_insert(now);
        }
        let disable = settlement.status == DeliveryStatus::Failed
            && !before.disabled()
            && rules::should_disable(after.failing_since, job.claim.first_attempt_at);
        if disable {
            after.disabled_reason = Some(DisabledReason::Failing);
            after.updated_at = next_update_time(before.updated_at, now);
            repo::cancel_pending(conn, merchant, endpoint_id, now).await?;
        }
        if after != before {
            repo::update_endpoint(conn, merchant, &after).await?;
        }
        if disable {
            tracing::warn!(endpoint = %endpoint_id, "webhook endpoint disabled after uninterrupted failure");
            record_event(
                conn,
                merchant,
                EventDraft {
                    event_type: "webhook_endpoint.disabled",
                    resource_type: "webhook_endpoint",
                    resource_id: endpoint_id.to_string(),
                    after: &WebhookEndpointDto::new(&after, now),
                    before: Some(&WebhookEndpointDto::new(&before, now)),
                    at: now,
                },
            )
            .await?;
        }
        Ok(())
    })
    .await
}
