//! Webhook endpoints, redelivery, and the delivery worker's use case [`deliver_due`].
//!
//! Deliveries are created with their event (see `tenure_store::repo::events::record`).
//! [`deliver_due`] claims due ones with `FOR UPDATE SKIP LOCKED` and a lease, POSTs each
//! as a Standard Webhooks request outside any transaction, then settles each outcome in
//! a transaction of its own: attempt log, retry or final status, endpoint health and,
//! after uninterrupted failure, disabling the endpoint with a `webhook_endpoint.disabled`
//! event.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncConnection;
use rand::RngCore;
use tenure_domain::ids::{EventId, GenerateId, MerchantId, WebhookDeliveryId, WebhookEndpointId};
use tenure_domain::text;
use tenure_domain::webhooks::{
    self as rules, DEFAULT_RETRY_SCHEDULE_SECS, DEFAULT_SECRET_OVERLAP_SECS, DeliveryAttempt,
    DeliveryStatus, DisabledReason, MAX_SECRET_OVERLAP_SECS, WebhookDelivery, WebhookEndpoint,
};
use tenure_store::repo::events::{self, EventRow};
use tenure_store::repo::webhooks::{self as repo, ClaimedDelivery, NewDelivery, Settlement};
use tenure_store::{Page, PageRequest};

use super::{EventDraft, Validator, check_if_match, checked, next_update_time, record_event};
use crate::dto::webhooks::{
    CreateWebhookEndpoint, RedeliverEvent, RedeliverRange, RotateWebhookSecret,
    UpdateWebhookEndpoint, WebhookEndpointDto,
};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub const URL_MAX: usize = 2048;
/// At most this many endpoints per merchant: every event is sent to each of them.
pub const MAX_ENDPOINTS: i64 = 16;
const DESCRIPTION_MAX: usize = 500;
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// How long a claimed delivery stays invisible to other workers: well beyond the request
/// timeout, so only a crashed worker's delivery is claimed again.
pub const CLAIM_LEASE_SECS: i64 = 60;
/// At most this many events per range redelivery.
pub const MAX_REDELIVER_EVENTS: i64 = 10_000;
/// The longest error text kept in the attempt log.
const ERROR_MAX: usize = 300;

fn endpoint_missing(err: tenure_store::StoreError) -> ApiError {
    ApiError::from_store("webhook_endpoint")(err)
}

/// Checks a webhook URL: absolute http(s) with a host, no credentials, at most 2048
/// characters.
fn validate_url(v: &mut Validator, raw: &str) -> Option<String> {
    if raw.len() > URL_MAX {
        v.fail("url", format!("must be at most {URL_MAX} characters"));
        return None;
    }
    match reqwest::Url::parse(raw) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            v.fail("url", "must be an http or https URL");
            None
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            v.fail("url", "must name a host");
            None
        }
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            v.fail("url", "must not contain credentials");
            None
        }
        Ok(url) if url.as_str().len() > URL_MAX => {
            v.fail("url", format!("must be at most {URL_MAX} characters"));
            None
        }
        Ok(url) => Some(url.to_string()),
        Err(_) => {
            v.fail("url", "must be an absolute http or https URL");
            None
        }
    }
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

pub async fn create_endpoint(
    state: &AppState,
    merchant: MerchantId,
    input: CreateWebhookEndpoint,
) -> ApiResult<WebhookEndpoint> {
    let mut v = Validator::default();
    let url = validate_url(&mut v, &input.url);
    let events = v.check(rules::validate_enabled_events(&input.enabled_events));
    let description = v.check(text::clean_opt(
        "description",
        input.description.as_deref(),
        DESCRIPTION_MAX,
        false,
    ));
    let schedule = v.check(rules::validate_retry_schedule(
        input
            .retry_schedule_secs
            .as_deref()
            .unwrap_or(DEFAULT_RETRY_SCHEDULE_SECS),
    ));
    v.finish()?;
    let now = state.now();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        url: checked(url)?,
        description: checked(description)?,
        enabled_events: checked(events)?,
        retry_schedule_secs: checked(schedule)?,
        secret: new_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.conn().await?;
    if repo::count_endpoints(&mut conn, merchant).await? >= MAX_ENDPOINTS {
        return Err(ApiError::conflict(
            "too_many_endpoints",
            format!(
                "a merchant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            ),
        ));
    }
    repo::insert_endpoint(&mut conn, merchant, &endpoint).await?;
    Ok(endpoint)
}

pub async fn get_endpoint(
    state: &AppState,
    merchant: MerchantId,
    id: WebhookEndpointId,
) -> ApiResult<WebhookEndpoint> {
    let mut conn = state.db.conn().await?;
    repo::get_endpoint(&mut conn, merchant, id, false)
        .await
        .map_err(endpoint_missing)
}

pub async fn list_endpoints(
    state: &AppState,
    merchant: MerchantId,
    page: PageRequest,
) -> ApiResult<Page<WebhookEndpoint>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_endpoints(&mut conn, merchant, page).await?)
}

pub async fn update_endpoint(
    state: &AppState,
    merchant: MerchantId,
    id: WebhookEndpointId,
    input: UpdateWebhookEndpoint,
    if_match: Option<String>,
) -> ApiResult<WebhookEndpoint> {
    let mut v = Validator::default();
    let url = input.url.as_deref().map(|u| validate_url(&mut v, u));
    let events = input
        .enabled_events
        .as_deref()
        .map(|e| v.check(rules::validate_enabled_events(e)));
    let description = input.description.as_ref().map(|d| {
        v.check(text::clean_opt(
            "description",
            d.as_deref(),
            DESCRIPTION_MAX,
            false,
        ))
    });
    let schedule = input
        .retry_schedule_secs
        .as_deref()
        .map(|s| v.check(rules::validate_retry_schedule(s)));
    v.finish()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_endpoint(conn, merchant, id, true)
            .await
            .map_err(endpoint_missing)?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut after = before.clone();
        if let Some(url) = url {
            after.url = checked(url)?;
        }
        if let Some(events) = events {
            after.enabled_events = checked(events)?;
        }
        if let Some(description) = description {
            after.description = checked(description)?;
        }
        if let Some(schedule) = schedule {
            after.retry_schedule_secs = checked(schedule)?;
        }
        match input.disabled {
            Some(true) if !before.disabled() => {
                after.disabled_reason = Some(DisabledReason::Manual);
                repo::cancel_pending(conn, merchant, id, now).await?;
            }
            Some(false) => {
                after.disabled_reason = None;
                after.failing_since = None;
            }
            _ => {}
        }
        if after == before {
            return Ok(after);
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_endpoint(conn, merchant, &after).await?;
        Ok(after)
    })
    .await
}

pub async fn delete_endpoint(
    state: &AppState,
    merchant: MerchantId,
    id: WebhookEndpointId,
) -> ApiResult<()> {
    let mut conn = state.db.conn().await?;
    repo::delete_endpoint(&mut conn, merchant, id)
        .await
        .map_err(endpoint_missing)
}

/// Issues a new secret; the current one keeps signing (a second signature) for the
/// overlap.
pub async fn rotate_secret(
    state: &AppState,
    merchant: MerchantId,
    id: WebhookEndpointId,
    input: RotateWebhookSecret,
) -> ApiResult<WebhookEndpoint> {
    let overlap = input.overlap_secs.unwrap_or(DEFAULT_SECRET_OVERLAP_SECS);
    if overlap > MAX_SECRET_OVERLAP_SECS {
        return Err(ApiError::field(
            "overlap_secs",
            format!("must be between 0 and {MAX_SECRET_OVERLAP_SECS}"),
        ));
    }
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_endpoint(conn, merchant, id, true)
            .await
            .map_err(endpoint_missing)?;
        let mut after = before.clone();
        after.secret = new_secret();
        if overlap > 0 {
            after.previous_secret = Some(before.secret.clone());
            after.previous_secret_expires_at = Some(now + Duration::seconds(i64::from(overlap)));
        } else {
            after.previous_secret = None;
            after.previous_secret_expires_at = None;
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_endpoint(conn, merchant, &after).await?;
        Ok(after)
    })
    .await
}

/// A page of an endpoint's deliveries with their attempt logs.
pub async fn list_deliveries(
    state: &AppState,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> ApiResult<Page<(WebhookDelivery, Vec<DeliveryAttempt>)>> {
    let mut conn = state.db.conn().await?;
    repo::get_endpoint(&mut conn, merchant, endpoint, false)
        .await
        .map_err(endpoint_missing)?;
    let deliveries = repo::list_deliveries(&mut conn, merchant, endpoint, status, page).await?;
    let ids: Vec<WebhookDeliveryId> = deliveries.items.iter().map(|d| d.id).collect();
    let mut logs: HashMap<WebhookDeliveryId, Vec<DeliveryAttempt>> = HashMap::new();
    for (delivery, attempt) in repo::attempts_of(&mut conn, merchant, &ids).await? {
        logs.entry(delivery).or_default().push(attempt);
    }
    Ok(Page {
        items: deliveries
            .items
            .into_iter()
            .map(|d| {
                let log = logs.remove(&d.id).unwrap_or_default();
                (d, log)
            })
            .collect(),
        has_more: deliveries.has_more,
    })
}

/// Queues an event again: to one endpoint, or to every enabled endpoint subscribed to its
/// type. Returns how many deliveries were queued.
pub async fn redeliver_event(
    state: &AppState,
    merchant: MerchantId,
    event: EventId,
    input: RedeliverEvent,
) -> ApiResult<usize> {
    let endpoint = input
        .endpoint_id
        .as_deref()
        .map(|raw| crate::dto::common::parse_field_id(raw, "endpoint_id"))
        .transpose()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let event = events::get(conn, merchant, event)
            .await
            .map_err(ApiError::from_store("event"))?;
        let endpoints = match endpoint {
            Some(id) => {
                let endpoint = repo::get_endpoint(conn, merchant, id, false)
                    .await
                    .map_err(endpoint_missing)?;
                ensure_enabled(&endpoint)?;
                vec![endpoint.id]
            }
            None => repo::subscribed_endpoints(conn, merchant, &event.event_type).await?,
        };
        let rows = endpoints
            .into_iter()
            .map(|endpoint| NewDelivery {
                endpoint,
                event: EventId::from_uuid(event.id),
                event_type: event.event_type.clone(),
            })
            .collect();
        Ok(repo::insert_deliveries(conn, merchant, rows, now).await?)
    })
    .await
}

fn ensure_enabled(endpoint: &WebhookEndpoint) -> ApiResult<()> {
    if endpoint.disabled() {
        return Err(ApiError::conflict(
            "endpoint_disabled",
            "the webhook endpoint is disabled; enable it first (PATCH disabled=false)",
        ));
    }
    Ok(())
}

/// Queues again, for one endpoint, every event created in `[from, to)` of a type it
/// subscribes to, delivered before or not.
pub async fn redeliver_range(
    state: &AppState,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    input: RedeliverRange,
) -> ApiResult<usize> {
    if input.from >= input.to {
        return Err(ApiError::field("to", "must be after from"));
    }
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let endpoint = repo::get_endpoint(conn, merchant, endpoint, false)
            .await
            .map_err(endpoint_missing)?;
        ensure_enabled(&endpoint)?;
        let events = repo::events_between(
            conn,
            merchant,
            input.from,
            input.to,
            MAX_REDELIVER_EVENTS + 1,
        )
        .await?;
        if i64::try_from(events.len()).unwrap_or(i64::MAX) > MAX_REDELIVER_EVENTS {
            return Err(ApiError::field(
                "to",
                format!(
                    "the range holds more than {MAX_REDELIVER_EVENTS} events; split it into smaller ranges"
                ),
            ));
        }
        let rows = events
            .into_iter()
            .filter(|(_, event_type)| rules::subscribes_to(&endpoint.enabled_events, event_type))
            .map(|(event, event_type)| NewDelivery {
                endpoint: endpoint.id,
                event,
                event_type,
            })
            .collect();
        Ok(repo::insert_deliveries(conn, merchant, rows, now).await?)
    })
    .await
}

// --- The delivery worker -------------------------------------------------------------

/// The HTTP client shared by all deliveries: rustls over the ring provider, no
/// redirects (a webhook is answered where it was sent), a 10 s timeout per request.
fn http_client() -> ApiResult<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    // Another crate may have installed a provider already; either way one is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Tenure-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::internal(format!("webhook http client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// The body of a webhook request: the event as `GET /v1/events/{id}` renders it.
pub fn payload(event: &EventRow) -> ApiResult<Vec<u8>> {
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
        "data": data,
    });
    serde_json::to_vec(&body).map_err(ApiError::internal)
}

/// The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per secret, space
/// separated (Standard Webhooks).
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> ApiResult<String> {
    let mut signatures = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let signer = standardwebhooks::Webhook::new(secret)
            .map_err(|_| ApiError::internal("a stored webhook secret is not valid base64"))?;
        let signature = signer
            .sign(msg_id, timestamp, body)
            .map_err(|e| ApiError::internal(format!("signing failed: {e}")))?;
        signatures.push(signature);
    }
    Ok(signatures.join(" "))
}

/// What came of one HTTP request.
struct Outcome {
    response_status: Option<u16>,
    error: Option<String>,
    latency_ms: u32,
}

impl Outcome {
    fn succeeded(&self) -> bool {
        self.response_status
            .is_some_and(|s| (200..300).contains(&s))
    }
}

struct Job {
    claim: ClaimedDelivery,
    merchant: MerchantId,
    endpoint: Option<WebhookEndpoint>,
    event: Option<EventRow>,
}

async fn send(job: &Job, now: DateTime<Utc>) -> Outcome {
    let (Some(endpoint), Some(event)) = (&job.endpoint, &job.event) else {
        return Outcome {
            response_status: None,
            error: Some("the endpoint or the event no longer exists".to_owned()),
            latency_ms: 0,
        };
    };
    match try_send(endpoint, event, now).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::error!(error = %err, cause = ?err, "webhook request could not be prepared");
            Outcome {
                response_status: None,
                error: Some("the request could not be prepared".to_owned()),
                latency_ms: 0,
            }
        }
    }
}

async fn try_send(
    endpoint: &WebhookEndpoint,
    event: &EventRow,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    let client = http_client()?;
    let body = payload(event)?;
    let msg_id = EventId::from_uuid(event.id).to_string();
    // Receivers compare webhook-timestamp with their own clock (replay protection), so
    // it is the wall-clock time of sending, not the (possibly test-shifted) Clock.
    let timestamp = Utc::now().timestamp();
    let signature = signature_header(&endpoint.signing_secrets(now), &msg_id, timestamp, &body)?;
    let started = Instant::now();
    let result = client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let latency_ms = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    Ok(match result {
        Ok(response) => Outcome {
            response_status: Some(response.status().as_u16()),
            error: None,
            latency_ms,
        },
        Err(err) => Outcome {
            response_status: None,
            error: Some(describe(&err)),
            latency_ms,
        },
    })
}

/// A short reason for the attempt log, without the URL.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut text = format!("{kind}: {}", ErrorChain(err));
    if text.len() > ERROR_MAX {
        let mut cut = ERROR_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Displays an error with its sources, the URL left out.
struct ErrorChain<'a>(&'a reqwest::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source = std::error::Error::source(self.0);
        let mut first = true;
        while let Some(err) = source {
            if !first {
                f.write_str(": ")?;
            }
            write!(f, "{err}")?;
            first = false;
            source = err.source();
        }
        if first {
            f.write_str("no detail")?;
        }
        Ok(())
    }
}

/// Sends up to `batch` due deliveries (due at `now`) and records what came of each.
/// Any number of processes may run this at once. Returns how many attempts were made.
pub async fn deliver_due(state: &AppState, now: DateTime<Utc>, batch: i64) -> ApiResult<usize> {
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
    for claim in claimed {
        let merchant = MerchantId::from_uuid(claim.merchant_id);
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
            endpoint,
            event,
        });
    }
    // The requests run concurrently, with no connection held.
    drop(conn);
    let outcomes = futures_util::future::join_all(jobs.iter().map(|job| async move {
        if job.endpoint.as_ref().is_some_and(WebhookEndpoint::disabled) {
            None
        } else {
            Some(send(job, now).await)
        }
    }))
    .await;
    let attempts = jobs.len();
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        if let Err(err) = settle(state, &job, outcome, now).await {
            // The lease runs out and another round retries the delivery.
            tracing::warn!(delivery = %WebhookDeliveryId::from_uuid(job.claim.id), error = %err,
                "could not record a webhook attempt");
        }
    }
    Ok(attempts)
}

/// Records an attempt (or, for an endpoint disabled meanwhile, cancels the delivery) and
/// updates the endpoint's health, disabling it after uninterrupted failure.
async fn settle(
    state: &AppState,
    job: &Job,
    outcome: Option<Outcome>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let merchant = job.merchant;
    let delivery = WebhookDeliveryId::from_uuid(job.claim.id);
    let endpoint_id = WebhookEndpointId::from_uuid(job.claim.endpoint_id);
    let attempt_no = u32::try_from(job.claim.attempt).map_err(ApiError::internal)?;
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

/// The parsed `status` filter of the delivery log.
pub fn parse_status(raw: Option<&str>) -> ApiResult<Option<DeliveryStatus>> {
    raw.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::field("status", "must be pending, delivered, failed or canceled")
        })
    })
    .transpose()
}
