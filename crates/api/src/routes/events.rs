use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::ids::{EventId, EventTag};
use tenure_store::repo::events::{self, EventFilter, EventRow};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::MerchantAuth;
use crate::dto::common::parse_id;
use crate::dto::{ListParams, ListResponse};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events).service(get_event);
}

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
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events about this resource id.
    pub resource_id: Option<String>,
}

/// List events, newest first: poll this instead of (or besides) receiving webhooks.
#[utoipa::path(tag = "Events", params(ListParams, EventFilterParams),
    responses((status = 200, description = "A page of events", body = ListResponse<EventDto>)))]
#[get("/events")]
async fn list_events(
    state: web::Data<AppState>,
    auth: MerchantAuth,
    page: Query<ListParams>,
    filter: Query<EventFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<EventTag>()?;
    let filter = filter.into_inner();
    // As endpoints' `enabled_events` are checked: a misspelt type must not read as "none".
    if let Some(event_type) = &filter.event_type
        && !tenure_domain::webhooks::is_known_event_type(event_type)
    {
        return Err(ApiError::field(
            "type",
            "is not a known event type (see docs/events.md)",
        ));
    }
    let filter = EventFilter {
        event_type: filter.event_type,
        resource_id: filter.resource_id,
    };
    let mut conn = state.db.conn().await?;
    let rows = events::list(&mut conn, auth.0, &filter, page).await?;
    Ok(
        HttpResponse::Ok().json(ListResponse::from_page(rows, EventDto::from, |e| {
            EventId::from_uuid(e.id).to_string()
        })),
    )
}

/// Get an event.
#[utoipa::path(tag = "Events", params(("id" = String, Path, description = "Event id (evt_…)")),
    responses((status = 200, description = "The event", body = EventDto)))]
#[get("/events/{id}")]
async fn get_event(
    state: web::Data<AppState>,
    auth: MerchantAuth,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<EventTag>(&id, "event")?;
    let mut conn = state.db.conn().await?;
    let row = events::get(&mut conn, auth.0, id)
        .await
        .map_err(ApiError::from_store("event"))?;
    Ok(HttpResponse::Ok().json(EventDto::from(row)))
}
