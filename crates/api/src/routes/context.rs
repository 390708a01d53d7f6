//! Customer context, tags, segment settings, notes and the timeline.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use tenure_app::dto::InMode;
use tenure_domain::access::{Access, Resource, Scope};
use tenure_domain::ids::CustomerTag;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{if_match, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::context as svc;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::context::{
    AddTag, CreateNote, CustomerContextDto, PutSegmentSettings, SegmentSettingsDto,
    TimelineEntryDto,
};
use tenure_app::dto::customers::CustomerDto;
use tenure_app::dto::{ListParams, ListResponse};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_context)
        .service(add_tag)
        .service(remove_tag)
        .service(get_segment_settings)
        .service(put_segment_settings)
        .service(add_note)
        .service(timeline);
}

/// The customer's context: tenure, subscriptions, lifetime value and MRR per currency,
/// payment health, support, cancellation and pause history, tags and segments (computed
/// on read). Credit balances and agents' overrides are billing data, shown only to a key
/// with `billing:read`; recent orders and the last shipment are order data, shown only to
/// a key with `orders:read`. See docs/customers.md for every rule.
#[utoipa::path(tag = "Customers", params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The customer's context", body = CustomerContextDto)))]
#[get("/customers/{id}/context")]
async fn get_context(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let with_billing = auth
        .1
        .scopes
        .allows(Scope::new(Resource::Billing, Access::Read));
    let with_orders = auth
        .1
        .scopes
        .allows(Scope::new(Resource::Orders, Access::Read));
    let ctx = svc::get_context(&state.app, auth.0, id, with_billing, with_orders).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), ctx)))
}

/// Add a tag to a customer (`customer.updated` when it was not there yet).
#[utoipa::path(tag = "Customers", request_body = AddTag,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The customer", body = CustomerDto)))]
#[post("/customers/{id}/tags")]
async fn add_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<AddTag>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let c = svc::change_tag(&state.app, auth.0, id, &body.0.tag, true, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &CustomerDto::from(&c),
        c.updated_at,
    ))
}

/// Remove a tag from a customer (`customer.updated` when it was there).
#[utoipa::path(tag = "Customers",
    params(("id" = String, Path, description = "Customer id (cus_…)"), ("tag" = tenure_app::dto::customers::Tag, Path, description = "The tag")),
    responses((status = 200, description = "The customer", body = CustomerDto),
        (status = 409, description = "The customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/customers/{id}/tags/{tag}")]
async fn remove_tag(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, tag) = path.into_inner();
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let c = svc::change_tag(&state.app, auth.0, id, &tag, false, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &CustomerDto::from(&c),
        c.updated_at,
    ))
}

/// The merchant's segment settings (high_ltv thresholds per currency).
#[utoipa::path(tag = "Customers",
    responses((status = 200, description = "The settings", body = SegmentSettingsDto)))]
#[get("/segment_settings")]
async fn get_segment_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::get_segment_settings(&state.app, auth.0).await?,
    )))
}

/// Replace the merchant's segment settings.
#[utoipa::path(tag = "Customers", request_body = PutSegmentSettings,
    responses((status = 200, description = "The settings", body = SegmentSettingsDto),
        (status = 409, description = "A concurrent change of the settings (retry)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[put("/segment_settings")]
async fn put_segment_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<PutSegmentSettings>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::put_segment_settings(&state.app, auth.0, body.0).await?,
    )))
}

/// Add an agent note to the customer's timeline.
#[utoipa::path(tag = "Customers", request_body = CreateNote,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 201, description = "The note as a timeline entry", body = TimelineEntryDto)))]
#[post("/customers/{id}/notes")]
async fn add_note(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<CreateNote>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let note = svc::add_note(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), note)))
}

/// Everything about the customer in one stream, newest first: events, agent notes and
/// support ticket messages, each with its channel where a person was involved.
#[utoipa::path(tag = "Customers", params(("id" = String, Path, description = "Customer id (cus_…)"), ListParams),
    responses((status = 200, description = "A page of the timeline", body = ListResponse<TimelineEntryDto>)))]
#[get("/customers/{id}/timeline")]
async fn timeline(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let cursor = page
        .starting_after
        .as_deref()
        .map(svc::timeline_cursor)
        .transpose()?;
    let mut request = ListParams {
        limit: page.limit,
        starting_after: None,
    }
    .page::<CustomerTag>()?;
    request.starting_after = cursor;
    let entries = svc::timeline(&state.app, auth.0, id, request).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(entries, |e| e, |e| e.id.clone()).in_mode(auth.mode())))
}
