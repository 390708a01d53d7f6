use actix_web::{HttpResponse, get, web};
use tenure_app::dto::InMode;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::events::{EventDto, EventFilterParams};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::events;
use tenure_domain::ids::{EventId, EventTag};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events).service(get_event);
}

/// List events, newest first: poll this instead of (or besides) receiving webhooks.
#[utoipa::path(tag = "Events", params(ListParams, EventFilterParams),
    responses((status = 200, description = "A page of events", body = ListResponse<EventDto>)))]
#[get("/events")]
async fn list_events(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<EventFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<EventTag>()?;
    let rows = events::list(&state.app, auth.0, filter.into_inner(), page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(rows, EventDto::from, |e| {
            EventId::from_uuid(e.id).to_string()
        })
        .in_mode(auth.mode()),
    ))
}

/// Get an event.
#[utoipa::path(tag = "Events", params(("id" = String, Path, description = "Event id (evt_…)")),
    responses((status = 200, description = "The event", body = EventDto)))]
#[get("/events/{id}")]
async fn get_event(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<EventTag>(&id, "event")?;
    let row = events::get(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), EventDto::from(row))))
}
