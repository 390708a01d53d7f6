//! Cancellation requests and support tickets: merchants list, approve or decline
//! requests and answer tickets; customers read and answer their own tickets.

use actix_web::{HttpResponse, get, post, web};
use tenure_app::dto::InMode;
use tenure_domain::access::Mode;
use tenure_domain::ids::{CancellationRequestTag, CustomerTag, SubscriptionTag, TicketTag};
use tenure_store::repo::support::{RequestFilter, TicketFilter};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::support::{
    CancellationRequestDto, CancellationRequestFilterParams, CreatePortalTicketReply,
    CreateTicketReply, DeclineCancellationRequest, SupportTicketDto, TicketFilterParams,
};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::subscriptions::{self as subs, Action, Scope};
use tenure_app::support as svc;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_requests)
        .service(get_request)
        .service(approve_request)
        .service(decline_request)
        .service(list_tickets)
        .service(get_ticket)
        .service(reply_to_ticket);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_get_request)
        .service(portal_list_tickets)
        .service(portal_get_ticket)
        .service(portal_reply_to_ticket);
}

/// List cancellation requests, newest first, optionally filtered by status, customer
/// or subscription.
#[utoipa::path(tag = "Cancellation requests", params(ListParams, CancellationRequestFilterParams),
    responses((status = 200, description = "A page of requests", body = ListResponse<CancellationRequestDto>)))]
#[get("/cancellation_requests")]
async fn list_requests(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<CancellationRequestFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<CancellationRequestTag>()?;
    let filter = filter.into_inner();
    let filter = RequestFilter {
        status: filter.status.map(Into::into),
        customer: filter
            .customer_id
            .as_deref()
            .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
            .transpose()?,
        subscription: filter
            .subscription_id
            .as_deref()
            .map(|s| parse_field_id::<SubscriptionTag>(s, "subscription_id"))
            .transpose()?,
    };
    let requests = svc::list_requests(&state.app, auth.0, filter, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(
            requests,
            |r| CancellationRequestDto::from(&r),
            |r| r.id.to_string(),
        )
        .in_mode(auth.mode()),
    ))
}

/// Get a cancellation request.
#[utoipa::path(tag = "Cancellation requests", params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The request", body = CancellationRequestDto)))]
#[get("/cancellation_requests/{id}")]
async fn get_request(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let request = svc::get_request(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        CancellationRequestDto::from(&request),
    )))
}

fn request_of(mode: Mode, outcome: &subs::ActionOutcome) -> ApiResult<HttpResponse> {
    let request = outcome
        .cancellation_request
        .as_ref()
        .ok_or_else(|| ApiError::internal("the settled request is missing"))?;
    Ok(HttpResponse::Ok().json(InMode::new(mode, CancellationRequestDto::from(request))))
}

/// Approve a pending request early: the subscription ends now (access continues through
/// what was paid for) and the ticket is resolved.
#[utoipa::path(tag = "Cancellation requests", params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The approved request", body = CancellationRequestDto)))]
#[post("/cancellation_requests/{id}/approve")]
async fn approve_request(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let outcome = subs::act_on_request(
        &state.app,
        Scope::merchant(auth.0),
        id,
        Action::ApproveRequest(id),
    )
    .await?;
    request_of(auth.mode(), &outcome)
}

/// Decline a pending request with a message to the customer: the scheduled cancellation
/// is removed and the subscription continues.
#[utoipa::path(tag = "Cancellation requests", request_body = DeclineCancellationRequest,
    params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The declined request", body = CancellationRequestDto)))]
#[post("/cancellation_requests/{id}/decline")]
async fn decline_request(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<DeclineCancellationRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let outcome = subs::act_on_request(
        &state.app,
        Scope::merchant(auth.0),
        id,
        Action::DeclineRequest(id, body.0.message),
    )
    .await?;
    request_of(auth.mode(), &outcome)
}

/// List support tickets, newest first (without their messages).
#[utoipa::path(tag = "Support tickets", params(ListParams, TicketFilterParams),
    responses((status = 200, description = "A page of tickets", body = ListResponse<SupportTicketDto>)))]
#[get("/support_tickets")]
async fn list_tickets(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<TicketFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<TicketTag>()?;
    let filter = filter.into_inner();
    let filter = TicketFilter {
        status: filter.status.map(Into::into),
        customer: filter
            .customer_id
            .as_deref()
            .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
            .transpose()?,
    };
    let (tickets, _) =
        svc::list_tickets(&state.app, Scope::merchant(auth.0), filter, page, false).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(
            tickets,
            |t| SupportTicketDto::render(&t, None),
            |t| t.id.to_string(),
        )
        .in_mode(auth.mode()),
    ))
}

/// Get a support ticket with its messages.
#[utoipa::path(tag = "Support tickets", params(("id" = String, Path, description = "Ticket id (tkt_…)")),
    responses((status = 200, description = "The ticket", body = SupportTicketDto)))]
#[get("/support_tickets/{id}")]
async fn get_ticket(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TicketTag>(&id, "support_ticket")?;
    let (ticket, messages) = svc::get_ticket(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        SupportTicketDto::render(&ticket, Some(&messages)),
    )))
}

/// Reply on a ticket; `status` optionally moves it (e.g. to `resolved` or `closed`).
#[utoipa::path(tag = "Support tickets", request_body = CreateTicketReply,
    params(("id" = String, Path, description = "Ticket id (tkt_…)")),
    responses((status = 201, description = "The ticket with the reply", body = SupportTicketDto)))]
#[post("/support_tickets/{id}/replies")]
async fn reply_to_ticket(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<CreateTicketReply>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TicketTag>(&id, "support_ticket")?;
    let (ticket, messages) = svc::reply(
        &state.app,
        Scope::merchant(auth.0),
        id,
        &body.0.body,
        body.0.status.map(Into::into),
    )
    .await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        SupportTicketDto::render(&ticket, Some(&messages)),
    )))
}

/// The customer's own support tickets with their messages, newest first.
#[utoipa::path(tag = "Portal", params(ListParams),
    responses((status = 200, description = "A page of tickets", body = ListResponse<SupportTicketDto>)))]
#[get("/support_tickets")]
async fn portal_list_tickets(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<TicketTag>()?;
    let (tickets, messages) = svc::list_tickets(
        &state.app,
        Scope::customer(auth.merchant, auth.customer),
        TicketFilter::default(),
        page,
        true,
    )
    .await?;
    let messages = messages.unwrap_or_default();
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(
            tickets,
            |t| SupportTicketDto::render(&t, Some(&messages)),
            |t| t.id.to_string(),
        )
        .in_mode(auth.mode()),
    ))
}

/// One of the customer's cancellation requests (as `cancel` answered it, now).
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The request", body = CancellationRequestDto)))]
#[get("/cancellation_requests/{id}")]
async fn portal_get_request(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let request = svc::get_request(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        CancellationRequestDto::from(&request),
    )))
}

/// One of the customer's support tickets with its messages.
#[utoipa::path(tag = "Portal", params(("id" = String, Path, description = "Ticket id (tkt_…)")),
    responses((status = 200, description = "The ticket", body = SupportTicketDto)))]
#[get("/support_tickets/{id}")]
async fn portal_get_ticket(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TicketTag>(&id, "support_ticket")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let (ticket, messages) = svc::get_ticket(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        SupportTicketDto::render(&ticket, Some(&messages)),
    )))
}

/// Reply on one of the customer's tickets; a resolved ticket reopens.
#[utoipa::path(tag = "Portal", request_body = CreatePortalTicketReply,
    params(("id" = String, Path, description = "Ticket id (tkt_…)")),
    responses((status = 201, description = "The ticket with the reply", body = SupportTicketDto)))]
#[post("/support_tickets/{id}/replies")]
async fn portal_reply_to_ticket(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<CreatePortalTicketReply>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TicketTag>(&id, "support_ticket")?;
    let (ticket, messages) = svc::reply(
        &state.app,
        Scope::customer(auth.merchant, auth.customer),
        id,
        &body.0.body,
        None,
    )
    .await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        SupportTicketDto::render(&ticket, Some(&messages)),
    )))
}
