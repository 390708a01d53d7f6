//! Events as the API and webhooks render them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::ids::EventId;
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
