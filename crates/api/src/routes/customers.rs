use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use tenure_app::dto::InMode;
use tenure_domain::context::Segment;
use tenure_domain::customer::normalize_tag;
use tenure_domain::ids::CustomerTag;
use tenure_store::repo::customers::CustomerFilter;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, if_match, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::customers as svc;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::customers::{
    CreateCustomer, CustomerDto, CustomerFilterParams, UpdateCustomer,
};
use tenure_app::dto::{ListParams, ListResponse};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_customer)
        .service(list_customers)
        .service(get_customer)
        .service(update_customer)
        .service(export_customer)
        .service(erase_customer);
}

/// Export everything Tenure holds about a customer as one JSON document (GDPR access and
/// portability): profile, notes, subscriptions, cancellation requests, support tickets
/// with messages, payment methods (brand, last4, expiry), invoices with lines, payments
/// and refunds, events and retention offer outcomes.
#[utoipa::path(tag = "Customers", params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The export", body = tenure_app::dto::gdpr::CustomerExportDto)))]
#[get("/customers/{id}/export")]
async fn export_customer(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let export = tenure_app::gdpr::export(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), export)))
}

/// Erase a customer's personal data (GDPR erasure): e-mail, name, locale, metadata, tags
/// and external id are cleared, note and ticket message bodies and cancellation messages
/// replaced, event snapshots scrubbed, payment methods detached; invoices, payments and
/// refunds are kept with their amounts. Every subscription must have ended first (409
/// `customer_has_live_subscriptions`). Emits `customer.erased`; repeating it returns the
/// erased customer again. Afterwards the customer cannot be changed, subscribe or get a
/// portal session (409 `customer_erased`).
#[utoipa::path(tag = "Customers", params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The erased customer", body = CustomerDto)))]
#[post("/customers/{id}/erase")]
async fn erase_customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let customer = tenure_app::gdpr::erase(&state.app, auth.0, id, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &CustomerDto::from(&customer),
        customer.updated_at,
    ))
}

/// Create a customer.
#[utoipa::path(tag = "Customers", request_body = CreateCustomer,
    responses((status = 201, description = "The new customer", body = CustomerDto)))]
#[post("/customers")]
async fn create_customer(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateCustomer>,
) -> ApiResult<HttpResponse> {
    let customer = svc::create(&state.app, auth.0, body.0).await?;
    Ok(created(
        auth.mode(),
        &CustomerDto::from(&customer),
        customer.updated_at,
    ))
}

/// List customers, newest first, optionally filtered.
#[utoipa::path(tag = "Customers", params(ListParams, CustomerFilterParams),
    responses((status = 200, description = "A page of customers", body = ListResponse<CustomerDto>)))]
#[get("/customers")]
async fn list_customers(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<CustomerFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<CustomerTag>()?;
    let filter = filter.into_inner();
    let tag = filter
        .tag
        .as_deref()
        .map(normalize_tag)
        .transpose()
        .map_err(|e| ApiError::field("tag", e.to_string()))?;
    let segment = filter
        .segment
        .as_deref()
        .map(|s| {
            Segment::parse(s).ok_or_else(|| {
                ApiError::field(
                    "segment",
                    "must be one of new, loyal, high_ltv, at_risk, paused, churned",
                )
            })
        })
        .transpose()?;
    let filter = CustomerFilter {
        email: filter.email,
        external_id: filter.external_id,
        tag,
        segment: segment.map(|s| (s, state.now())),
    };
    let customers = svc::list(&state.app, auth.0, filter, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(customers, |c| CustomerDto::from(&c), |c| c.id.to_string())
            .in_mode(auth.mode()),
    ))
}

/// Get a customer.
#[utoipa::path(tag = "Customers", params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The customer", body = CustomerDto)))]
#[get("/customers/{id}")]
async fn get_customer(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let customer = svc::get(&state.app, auth.0, id).await?;
    Ok(ok_versioned(
        auth.mode(),
        &CustomerDto::from(&customer),
        customer.updated_at,
    ))
}

/// Update a customer. Honours `If-Match`.
#[utoipa::path(tag = "Customers", request_body = UpdateCustomer,
    params(("id" = String, Path, description = "Customer id (cus_…)")),
    responses((status = 200, description = "The updated customer", body = CustomerDto),
        (status = 409, description = "The customer is erased (`customer_erased`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[patch("/customers/{id}")]
async fn update_customer(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdateCustomer>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CustomerTag>(&id, "customer")?;
    let customer = svc::update(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &CustomerDto::from(&customer),
        customer.updated_at,
    ))
}
