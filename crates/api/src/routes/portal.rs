//! The customer portal: routes for a signed-in subscriber, scoped to their own data.

use actix_web::{HttpResponse, get, patch, web};
use tenure_app::dto::InMode;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedCustomer;
use crate::error::ApiResult;
use crate::state::AppState;
use tenure_app::dto::catalog::{PlanDto, PortalPlanDto};
use tenure_app::dto::customers::{PortalMeDto, UpdatePortalMe};
use tenure_app::{catalog, context, customers};

use crate::extract::Json;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(me).service(update_me).service(plans);
}

/// The signed-in customer.
#[utoipa::path(tag = "Portal",
    responses((status = 200, description = "The customer behind the token", body = PortalMeDto)))]
#[get("/me")]
async fn me(state: web::Data<AppState>, auth: AuthenticatedCustomer) -> ApiResult<HttpResponse> {
    let (customer, tenure, subscriptions) =
        context::portal_summary(&state.app, auth.merchant, auth.customer).await?;
    let mut me = PortalMeDto::from(&customer);
    me.tenure_days = tenure.days;
    me.subscriptions = Some(subscriptions);
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), me)))
}

/// Change what the subscriber may change about themselves: their channel preference.
#[utoipa::path(tag = "Portal", request_body = UpdatePortalMe,
    responses((status = 200, description = "The customer behind the token, changed", body = PortalMeDto)))]
#[patch("/me")]
async fn update_me(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    body: Json<UpdatePortalMe>,
) -> ApiResult<HttpResponse> {
    let view =
        customers::update_portal_me(&state.app, auth.merchant, auth.customer, body.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// Plans the customer may subscribe to.
#[utoipa::path(tag = "Portal",
    responses((status = 200, description = "Active plans of active products", body = Vec<PortalPlanDto>)))]
#[get("/plans")]
async fn plans(state: web::Data<AppState>, auth: AuthenticatedCustomer) -> ApiResult<HttpResponse> {
    let plans = catalog::purchasable_plans(&state.app, auth.merchant).await?;
    let body: Vec<PortalPlanDto> = plans
        .iter()
        .map(|(plan, product)| PortalPlanDto {
            plan: PlanDto::from(plan),
            product_name: product.name.clone(),
            shippable: product.shippable,
        })
        .collect();
    Ok(HttpResponse::Ok().json(InMode::each(auth.mode(), body)))
}
