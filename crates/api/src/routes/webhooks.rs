use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::{EventTag, WebhookDeliveryTag, WebhookEndpointTag};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, holding_secret, if_match, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Query};
use crate::state::AppState;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::webhooks::{
    CreateWebhookEndpoint, DeletedDto, DeliveryFilterParams, RedeliverEvent, RedeliverRange,
    RedeliveryDto, RotateWebhookSecret, UpdateWebhookEndpoint, WebhookDeliveryDto,
    WebhookEndpointDto,
};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::webhooks as svc;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_endpoint)
        .service(list_endpoints)
        .service(get_endpoint)
        .service(update_endpoint)
        .service(delete_endpoint)
        .service(rotate_secret)
        .service(list_deliveries)
        .service(redeliver_range)
        .service(redeliver_event);
}

/// Register a webhook endpoint. The response carries its signing `secret`, shown only
/// here (and on rotation): store it.
#[utoipa::path(tag = "Webhooks", request_body = CreateWebhookEndpoint,
    responses((status = 201, description = "The new endpoint, with its secret", body = WebhookEndpointDto)))]
#[post("/webhook_endpoints")]
async fn create_endpoint(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    let endpoint = svc::create_endpoint(&state.app, auth.0, body.0).await?;
    Ok(holding_secret(created(
        auth.mode(),
        &WebhookEndpointDto::with_secret(&endpoint, state.now()),
        endpoint.updated_at,
    )))
}

/// List webhook endpoints, newest first.
#[utoipa::path(tag = "Webhooks", params(ListParams),
    responses((status = 200, description = "A page of endpoints", body = ListResponse<WebhookEndpointDto>)))]
#[get("/webhook_endpoints")]
async fn list_endpoints(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<WebhookEndpointTag>()?;
    let endpoints = svc::list_endpoints(&state.app, auth.0, page).await?;
    let now = state.now();
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(
            endpoints,
            |e| WebhookEndpointDto::new(&e, now),
            |e| e.id.to_string(),
        )
        .in_mode(auth.mode()),
    ))
}

/// Get a webhook endpoint (without its secret).
#[utoipa::path(tag = "Webhooks", params(("id" = String, Path, description = "Endpoint id (whep_…)")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointDto)))]
#[get("/webhook_endpoints/{id}")]
async fn get_endpoint(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    let endpoint = svc::get_endpoint(&state.app, auth.0, id).await?;
    Ok(ok_versioned(
        auth.mode(),
        &WebhookEndpointDto::new(&endpoint, state.now()),
        endpoint.updated_at,
    ))
}

/// Change a webhook endpoint: its URL, events, description, retry schedule, or
/// `disabled`. Disabling cancels its pending deliveries; enabling clears its failure
/// state. Honours `If-Match`.
#[utoipa::path(tag = "Webhooks", request_body = UpdateWebhookEndpoint,
    params(("id" = String, Path, description = "Endpoint id (whep_…)")),
    responses((status = 200, description = "The updated endpoint", body = WebhookEndpointDto)))]
#[patch("/webhook_endpoints/{id}")]
async fn update_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdateWebhookEndpoint>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    let endpoint = svc::update_endpoint(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &WebhookEndpointDto::new(&endpoint, state.now()),
        endpoint.updated_at,
    ))
}

/// Delete a webhook endpoint with its delivery log.
#[utoipa::path(tag = "Webhooks", params(("id" = String, Path, description = "Endpoint id (whep_…)")),
    responses((status = 200, description = "The endpoint is gone", body = DeletedDto)))]
#[delete("/webhook_endpoints/{id}")]
async fn delete_endpoint(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    svc::delete_endpoint(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        DeletedDto {
            id: id.to_string(),
            object: "webhook_endpoint".to_owned(),
            deleted: true,
        },
    )))
}

/// Issue a new signing secret, shown only in this response. The old secret keeps
/// signing for `overlap_secs` (default 24 h): meanwhile every request carries both
/// signatures in `webhook-signature`, so receivers switch secrets without losing events.
/// The body is optional.
#[utoipa::path(tag = "Webhooks", request_body(content = Option<RotateWebhookSecret>),
    params(("id" = String, Path, description = "Endpoint id (whep_…)")),
    responses((status = 200, description = "The endpoint with its new secret", body = WebhookEndpointDto)))]
#[post("/webhook_endpoints/{id}/rotate_secret")]
async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<RotateWebhookSecret>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    let endpoint = svc::rotate_secret(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(holding_secret(ok_versioned(
        auth.mode(),
        &WebhookEndpointDto::with_secret(&endpoint, state.now()),
        endpoint.updated_at,
    )))
}

/// The delivery log of an endpoint, newest first: status, attempts, response codes,
/// latencies and errors.
#[utoipa::path(tag = "Webhooks", params(("id" = String, Path, description = "Endpoint id (whep_…)"),
    ListParams, DeliveryFilterParams),
    responses((status = 200, description = "A page of deliveries", body = ListResponse<WebhookDeliveryDto>)))]
#[get("/webhook_endpoints/{id}/deliveries")]
async fn list_deliveries(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
    filter: Query<DeliveryFilterParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    let page = page.page::<WebhookDeliveryTag>()?;
    let status = svc::parse_status(filter.status.as_deref())?;
    let deliveries = svc::list_deliveries(&state.app, auth.0, id, status, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(
            deliveries,
            |(d, log)| WebhookDeliveryDto::new(&d, &log),
            |(d, _)| d.id.to_string(),
        )
        .in_mode(auth.mode()),
    ))
}

/// Send every event created in `[from, to)` that the endpoint subscribes to again,
/// whether it was delivered or not (at most 10000 events per request).
#[utoipa::path(tag = "Webhooks", request_body = RedeliverRange,
    params(("id" = String, Path, description = "Endpoint id (whep_…)")),
    responses((status = 202, description = "Deliveries queued", body = RedeliveryDto)))]
#[post("/webhook_endpoints/{id}/redeliver")]
async fn redeliver_range(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<RedeliverRange>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<WebhookEndpointTag>(&id, "webhook_endpoint")?;
    let n = svc::redeliver_range(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Accepted().json(InMode::new(
        auth.mode(),
        RedeliveryDto {
            object: "redelivery".to_owned(),
            deliveries_created: n,
        },
    )))
}

/// Send an event again, delivered before or not: to one endpoint, or to every enabled
/// endpoint subscribed to its type. The body is optional. The `webhook-id` stays the
/// event id, so receivers that already have it can drop the copy.
#[utoipa::path(tag = "Webhooks", request_body(content = Option<RedeliverEvent>),
    params(("id" = String, Path, description = "Event id (evt_…)")),
    responses((status = 202, description = "Deliveries queued", body = RedeliveryDto)))]
#[post("/events/{id}/redeliver")]
async fn redeliver_event(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<RedeliverEvent>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<EventTag>(&id, "event")?;
    let n = svc::redeliver_event(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Accepted().json(InMode::new(
        auth.mode(),
        RedeliveryDto {
            object: "redelivery".to_owned(),
            deliveries_created: n,
        },
    )))
}
