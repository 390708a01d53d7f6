//! Webhook endpoints, deliveries and redelivery requests.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::webhooks::{
    ALL_EVENTS, DeliveryAttempt, DeliveryStatus, DisabledReason, EVENT_TYPES, WebhookDelivery,
    WebhookEndpoint,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::customers::double_option;

wire_enum! {
    /// `manual` or `failing` (disabled automatically after uninterrupted failure).
    DisabledReasonDto from DisabledReason { Manual, Failing }
}

wire_enum! {
    /// `pending`, `delivered`, `failed` (retry schedule exhausted) or `canceled` (the
    /// endpoint was disabled).
    DeliveryStatusDto from DeliveryStatus { Pending, Delivered, Failed, Canceled }
}

/// What an endpoint subscribes to: an event type of the catalogue, or `*` for every type
/// (`tenure_domain::webhooks::EVENT_TYPES` and `ALL_EVENTS` as a schema; the fields stay
/// strings in Rust, checked by `validate_enabled_events`).
pub struct EnabledEvent;

impl PartialSchema for EnabledEvent {
    fn schema() -> RefOr<Schema> {
        let values: Vec<&str> = [ALL_EVENTS]
            .into_iter()
            .chain(EVENT_TYPES.iter().copied())
            .collect();
        super::common::string_enum(
            "An event type of the catalogue (docs/events.md), or `*` for every type, \
including ones added later",
            &values,
        )
    }
}

impl ToSchema for EnabledEvent {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/hooks/tenure", "enabled_events": ["customer.created", "subscription.canceled"],
    "description": "CRM sync"}))]
pub struct CreateWebhookEndpoint {
    /// Where to POST events: an http or https URL, at most 2048 characters.
    pub url: String,
    /// Event types to receive (see docs/events.md), or `["*"]` for all.
    #[schema(value_type = Vec<EnabledEvent>, min_items = 1, max_items = 100)]
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    /// Delay in seconds before each retry after a failed attempt; each gets ±10 %
    /// jitter. Default `[60, 300, 1800, 7200, 18000, 36000, 86400, 86400]` (about three
    /// days, nine attempts in all). At most 20 entries of at most a week each; `[]`
    /// means a single attempt.
    pub retry_schedule_secs: Option<Vec<u32>>,
}

/// Fields to change; `description: null` clears it. `disabled: false` re-enables an
/// endpoint (also one disabled automatically) and clears its failure state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled_events": ["*"], "disabled": false}))]
pub struct UpdateWebhookEndpoint {
    pub url: Option<String>,
    #[schema(value_type = Option<Vec<EnabledEvent>>, min_items = 1, max_items = 100)]
    pub enabled_events: Option<Vec<String>>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub retry_schedule_secs: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"overlap_secs": 86400}))]
pub struct RotateWebhookSecret {
    /// How long the old secret keeps signing besides the new one, in seconds (default
    /// 86400, at most 604800; 0 retires it at once).
    #[schema(maximum = 604_800)]
    pub overlap_secs: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "whep_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "webhook_endpoint",
    "url": "https://example.com/hooks/tenure", "description": "CRM sync",
    "enabled_events": ["customer.created"], "retry_schedule_secs": [60, 300, 1800, 7200, 18000, 36000, 86400, 86400],
    "disabled": false, "disabled_reason": null, "failing_since": null, "secret_overlap_ends_at": null,
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw6YXSrvvBEVg=",
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct WebhookEndpointDto {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: String,
    pub url: String,
    pub description: Option<String>,
    #[schema(value_type = Vec<EnabledEvent>)]
    pub enabled_events: Vec<String>,
    pub retry_schedule_secs: Vec<u32>,
    pub disabled: bool,
    pub disabled_reason: Option<DisabledReasonDto>,
    /// Since when every attempt to this endpoint has failed; null while healthy.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub failing_since: Option<DateTime<Utc>>,
    /// During a secret rotation: when the previous secret stops signing.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub secret_overlap_ends_at: Option<DateTime<Utc>>,
    /// The signing secret (Standard Webhooks, `whsec_…`). Only in the responses of
    /// create and rotate_secret: store it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpointDto {
    /// The endpoint as shown after creation or rotation: with its secret.
    pub fn with_secret(e: &WebhookEndpoint, now: DateTime<Utc>) -> Self {
        Self {
            secret: Some(e.secret.clone()),
            ..Self::new(e, now)
        }
    }

    /// The endpoint as every other response shows it: without its secret.
    pub fn new(e: &WebhookEndpoint, now: DateTime<Utc>) -> Self {
        Self {
            id: e.id.to_string(),
            object: "webhook_endpoint".to_owned(),
            url: e.url.clone(),
            description: e.description.clone(),
            enabled_events: e.enabled_events.clone(),
            retry_schedule_secs: e.retry_schedule_secs.clone(),
            disabled: e.disabled(),
            disabled_reason: e.disabled_reason.map(Into::into),
            failing_since: e.failing_since,
            secret_overlap_ends_at: e.secret_overlap_ends_at(now),
            secret: None,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// One HTTP request of a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttemptDto {
    /// 1 for the first attempt.
    pub attempt: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub attempted_at: DateTime<Utc>,
    /// Whether the endpoint answered 2xx.
    pub succeeded: bool,
    /// The endpoint's HTTP status; null when no response came.
    pub response_status: Option<u16>,
    pub latency_ms: u32,
    /// Why the attempt failed, when it did without a response (timeout, refused…).
    pub error: Option<String>,
}

impl From<&DeliveryAttempt> for DeliveryAttemptDto {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            succeeded: a.succeeded,
            response_status: a.response_status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
        }
    }
}

/// One event on its way to one endpoint, with its attempt log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "whdel_01jf9zc0f4e3a8r7m2k4t5n6bd", "object": "webhook_delivery",
    "endpoint_id": "whep_01jf9zb3f4e3a8r7m2k4t5n6bc", "event_id": "evt_01jf9zc0f4e3a8r7m2k4t5n6bc",
    "event_type": "customer.created", "status": "delivered", "attempts": 2, "next_attempt_at": null,
    "last_attempt_at": "2026-11-25T10:01:02Z", "response_status": 200, "latency_ms": 41, "error": null,
    "attempt_log": [
        {"attempt": 1, "attempted_at": "2026-11-25T10:00:00Z", "succeeded": false, "response_status": 503, "latency_ms": 12, "error": null},
        {"attempt": 2, "attempted_at": "2026-11-25T10:01:02Z", "succeeded": true, "response_status": 200, "latency_ms": 41, "error": null}],
    "created_at": "2026-11-25T10:00:00Z"}))]
pub struct WebhookDeliveryDto {
    pub id: String,
    /// Always `webhook_delivery`.
    pub object: String,
    pub endpoint_id: String,
    /// The event, also sent as the `webhook-id` header: the same on every retry and
    /// redelivery, so receivers can drop duplicates.
    pub event_id: String,
    #[schema(value_type = super::events::EventType)]
    pub event_type: String,
    pub status: DeliveryStatusDto,
    /// Attempts made so far.
    pub attempts: u32,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt.
    pub response_status: Option<u16>,
    /// The latency of the last attempt.
    pub latency_ms: Option<u32>,
    /// Why the last attempt failed without a response.
    pub error: Option<String>,
    pub attempt_log: Vec<DeliveryAttemptDto>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl WebhookDeliveryDto {
    pub fn new(d: &WebhookDelivery, attempts: &[DeliveryAttempt]) -> Self {
        Self {
            id: d.id.to_string(),
            object: "webhook_delivery".to_owned(),
            endpoint_id: d.endpoint_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type.clone(),
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            response_status: d.last_response_status,
            latency_ms: d.last_latency_ms,
            error: d.last_error.clone(),
            attempt_log: attempts.iter().map(DeliveryAttemptDto::from).collect(),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilterParams {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatusDto>)]
    pub status: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"endpoint_id": "whep_01jf9zb3f4e3a8r7m2k4t5n6bc"}))]
pub struct RedeliverEvent {
    /// Send to this endpoint only (it must be enabled; its event filter is not
    /// applied). Without it: to every enabled endpoint subscribed to the event's type.
    pub endpoint_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": "2026-11-24T00:00:00Z", "to": "2026-11-25T00:00:00Z"}))]
pub struct RedeliverRange {
    /// Events created at or after this time…
    pub from: DateTime<Utc>,
    /// …and before this one. At most 10000 events per request.
    pub to: DateTime<Utc>,
}

/// New deliveries were queued; workers send them shortly.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "redelivery", "deliveries_created": 3}))]
pub struct RedeliveryDto {
    /// Always `redelivery`.
    pub object: String,
    pub deliveries_created: usize,
}

/// A deleted resource.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "whep_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "webhook_endpoint", "deleted": true}))]
pub struct DeletedDto {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}
