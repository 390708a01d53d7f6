//! Events as the API and webhooks render them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::ids::{ApiKeyId, EventId};
use tenure_store::repo::events::EventRow;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// An event type: the catalogue `tenure_domain::webhooks::EVENT_TYPES` (docs/events.md) as
/// a schema, for the fields that carry one (they stay strings in Rust).
pub struct EventType;

impl PartialSchema for EventType {
    fn schema() -> RefOr<Schema> {
        super::common::string_enum(
            "An event type of the catalogue (docs/events.md)",
            tenure_domain::webhooks::EVENT_TYPES,
        )
    }
}

impl ToSchema for EventType {}

/// Something that happened to a resource. Ids are stable, so a consumer can drop
/// duplicates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "evt_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "event", "type": "customer.updated",
    "resource_type": "customer", "resource_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "data": {"object": {"id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "email": "ada@new.example.com"},
             "previous_attributes": {"email": "ada@example.com"}},
    "created_at": "2026-11-25T10:00:00Z"}))]
pub struct EventDto {
    pub id: String,
    /// Always `event`.
    pub object: String,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub data: EventData,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The merchant request that caused the event (made with a secret key); null for a
    /// customer's portal request or Tenure's own work (renewals, dunning, schedules).
    pub request: Option<EventRequestDto>,
}

/// Who acted: the request, the key it was made with and the agent it named.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({"id": "0193b2c4-5d6e-7f80-9a1b-2c3d4e5f6a7b", "api_key": "key_01jf9zc0f4e3a8r7m2k4t5n6bc", "agent": "retention-bot"}))]
pub struct EventRequestDto {
    /// The request's `X-Request-Id`, as in the audit trail (`GET /v1/audit_events`).
    pub id: String,
    /// The key (`key_…`) the request was made with.
    pub api_key: String,
    /// The `Tenure-Agent` header the request carried, if any.
    pub agent: Option<String>,
}

impl EventRequestDto {
    pub fn from_columns(
        api_key: Option<uuid::Uuid>,
        agent: Option<String>,
        request_id: Option<String>,
    ) -> Option<Self> {
        Some(Self {
            id: request_id.unwrap_or_default(),
            api_key: ApiKeyId::from_uuid(api_key?).to_string(),
            agent,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// The resource as the API rendered it right after the change.
    #[schema(value_type = Object)]
    pub object: serde_json::Value,
    /// For updates: the changed fields with their previous values.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_attributes: Option<serde_json::Value>,
}

impl From<EventRow> for EventDto {
    fn from(row: EventRow) -> Self {
        Self {
            id: EventId::from_uuid(row.id).to_string(),
            object: "event".to_owned(),
            event_type: row.event_type,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            data: EventData {
                object: row.data,
                previous_attributes: row.previous_attributes,
            },
            created_at: row.created_at,
            request: EventRequestDto::from_columns(row.api_key_id, row.agent, row.request_id),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilterParams {
    /// Only events of this type, e.g. `customer.updated`.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<EventType>)]
    pub event_type: Option<String>,
    /// Only events about this resource id.
    pub resource_id: Option<String>,
}
