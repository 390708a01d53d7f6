//! Retention offers: merchant CRUD under `/v1/retention_offers`, and the portal's view of
//! the offers presented for a cancellation request, with accept and decline.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::{CancellationRequestTag, RetentionOfferTag};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, if_match, ok_versioned};
use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::retention::{
    CreateRetentionOffer, OfferAcceptedDto, PresentedOfferDto, PresentedOffersDto,
    RetentionOfferDto, RetentionOfferFilterParams, UpdateRetentionOffer,
};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::retention as svc;
use tenure_app::subscriptions::Scope;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_offer)
        .service(list_offers)
        .service(get_offer)
        .service(update_offer)
        .service(deactivate_offer);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(presented_offers)
        .service(accept_offer)
        .service(decline_offer);
}

/// Create a retention offer: what it does (`kind`), who sees it (`eligibility`) and
/// its `priority` (higher first).
#[utoipa::path(tag = "Retention offers", request_body = CreateRetentionOffer,
    responses((status = 201, description = "The new offer", body = RetentionOfferDto)))]
#[post("/retention_offers")]
async fn create_offer(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateRetentionOffer>,
) -> ApiResult<HttpResponse> {
    let (offer, version) = svc::create_offer(&state.app, auth.0, body.0).await?;
    Ok(created(auth.mode(), &offer, version))
}

/// List retention offers, newest first, with their presentation counts.
#[utoipa::path(tag = "Retention offers", params(ListParams, RetentionOfferFilterParams),
    responses((status = 200, description = "A page of offers", body = ListResponse<RetentionOfferDto>)))]
#[get("/retention_offers")]
async fn list_offers(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<RetentionOfferFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<RetentionOfferTag>()?;
    let offers = svc::list_offers(
        &state.app,
        auth.0,
        filter.include_inactive.unwrap_or(false),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(offers, |o| o, |o| o.id.clone()).in_mode(auth.mode())))
}

/// Get a retention offer with its `stats`: how often it was presented, accepted and
/// declined.
#[utoipa::path(tag = "Retention offers",
    params(("id" = String, Path, description = "Retention offer id (roff_…)")),
    responses((status = 200, description = "The offer", body = RetentionOfferDto)))]
#[get("/retention_offers/{id}")]
async fn get_offer(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<RetentionOfferTag>(&id, "retention_offer")?;
    let (offer, version) = svc::get_offer(&state.app, auth.0, id).await?;
    Ok(ok_versioned(auth.mode(), &offer, version))
}

/// Update a retention offer (the given fields; `eligibility` as a whole). Honours
/// `If-Match`. Offers already presented keep their outcomes.
#[utoipa::path(tag = "Retention offers", request_body = UpdateRetentionOffer,
    params(("id" = String, Path, description = "Retention offer id (roff_…)")),
    responses((status = 200, description = "The updated offer", body = RetentionOfferDto)))]
#[patch("/retention_offers/{id}")]
async fn update_offer(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdateRetentionOffer>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<RetentionOfferTag>(&id, "retention_offer")?;
    let (offer, version) =
        svc::update_offer(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(ok_versioned(auth.mode(), &offer, version))
}

/// Deactivate a retention offer: it is no longer shown, and offers already presented
/// can no longer be accepted. The offer and its outcomes are kept (re-activate with
/// `PATCH {"active": true}`).
#[utoipa::path(tag = "Retention offers",
    params(("id" = String, Path, description = "Retention offer id (roff_…)")),
    responses((status = 200, description = "The deactivated offer", body = RetentionOfferDto)))]
#[delete("/retention_offers/{id}")]
async fn deactivate_offer(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<RetentionOfferTag>(&id, "retention_offer")?;
    let (offer, version) = svc::deactivate_offer(&state.app, auth.0, id, if_match(&req)).await?;
    Ok(ok_versioned(auth.mode(), &offer, version))
}

fn scope(auth: AuthenticatedCustomer) -> Scope {
    Scope::customer(auth.merchant, auth.customer)
}

/// The retention offers presented for one of the customer's cancellation requests and
/// not yet accepted or declined, best first.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The open offers", body = PresentedOffersDto)))]
#[get("/cancellation_requests/{id}/retention_offers")]
async fn presented_offers(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let data = svc::open_offers(&state.app, scope(auth), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), PresentedOffersDto { data })))
}

/// Accept a presented offer instead of cancelling: the offer is applied (a discount on
/// the next invoices, a pause, a plan switch or a longer trial) and the cancellation
/// request is withdrawn, in one step. A second accept answers 409
/// `retention_offer_already_accepted` and applies nothing.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Cancellation request id (creq_…)"),
           ("offer_id" = String, Path, description = "Retention offer id (roff_…)")),
    responses((status = 200, description = "The subscription, the withdrawn request and what was applied", body = OfferAcceptedDto)))]
#[post("/cancellation_requests/{id}/retention_offers/{offer_id}/accept")]
async fn accept_offer(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let request = parse_id::<CancellationRequestTag>(&path.0, "cancellation_request")?;
    let offer = parse_id::<RetentionOfferTag>(&path.1, "retention_offer")?;
    let accepted = svc::accept(&state.app, scope(auth), request, offer).await?;
    let version = accepted.outcome.subscription.updated_at;
    let body = svc::render_accepted(&state.app, auth.merchant, accepted).await?;
    Ok(ok_versioned(auth.mode(), &body, version))
}

/// Decline a presented offer; the cancellation request stays as it is.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Cancellation request id (creq_…)"),
           ("offer_id" = String, Path, description = "Retention offer id (roff_…)")),
    responses((status = 200, description = "The declined offer", body = PresentedOfferDto)))]
#[post("/cancellation_requests/{id}/retention_offers/{offer_id}/decline")]
async fn decline_offer(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let request = parse_id::<CancellationRequestTag>(&path.0, "cancellation_request")?;
    let offer = parse_id::<RetentionOfferTag>(&path.1, "retention_offer")?;
    let declined = svc::decline(&state.app, scope(auth), request, offer).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), declined)))
}
