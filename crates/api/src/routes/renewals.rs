//! Renewal engine routes: the upcoming invoice of a subscription (merchant and portal),
//! the merchant's dunning policy and billing settings.

use actix_web::{HttpResponse, get, put, web};
use tenure_app::dto::InMode;
use tenure_domain::billing::dunning::{DunningFinalState, DunningPolicy};
use tenure_domain::ids::SubscriptionTag;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;
use tenure_app::billing::{invoicing, settings};
use tenure_app::dto::common::parse_id;
use tenure_app::dto::renewals::{
    BillingSettingsDto, DunningPolicyDto, PutBillingSettings, PutDunningPolicy, UpcomingInvoiceDto,
};
use tenure_app::subscriptions::Scope;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(upcoming_invoice)
        .service(get_dunning_policy)
        .service(put_dunning_policy)
        .service(get_billing_settings)
        .service(put_billing_settings);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_upcoming_invoice);
}

/// Preview the invoice the subscription's next renewal will create: lines, totals,
/// period and date. 409 `no_upcoming_invoice` when it will not renew.
#[utoipa::path(tag = "Subscriptions",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The upcoming invoice", body = UpcomingInvoiceDto),
        (status = 409, description = "The subscription will not renew (`no_upcoming_invoice`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/subscriptions/{id}/upcoming_invoice")]
async fn upcoming_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let dto = invoicing::upcoming_invoice(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), dto)))
}

/// Preview the next invoice of one of the signed-in customer's subscriptions.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The upcoming invoice", body = UpcomingInvoiceDto),
        (status = 409, description = "The subscription will not renew (`no_upcoming_invoice`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/subscriptions/{id}/upcoming_invoice")]
async fn portal_upcoming_invoice(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let dto = invoicing::upcoming_invoice(
        &state.app,
        Scope::customer(auth.merchant, auth.customer),
        id,
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), dto)))
}

/// The dunning policy: when failed renewal payments are retried and what happens when
/// the retries run out (default: after 1, 3 and 5 days, then `canceled`).
#[utoipa::path(tag = "Billing settings",
    responses((status = 200, description = "The dunning policy", body = DunningPolicyDto)))]
#[get("/dunning_policy")]
async fn get_dunning_policy(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    let s = settings::settings(&state.app, auth.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), DunningPolicyDto::from(&s))))
}

/// Replace the dunning policy. It applies to every later failure and retry.
#[utoipa::path(tag = "Billing settings", request_body = PutDunningPolicy,
    responses((status = 200, description = "The new dunning policy", body = DunningPolicyDto)))]
#[put("/dunning_policy")]
async fn put_dunning_policy(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<PutDunningPolicy>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let final_state = match body.final_state.as_str() {
        "canceled" => DunningFinalState::Canceled,
        "unpaid" => DunningFinalState::Unpaid,
        _ => return Err(ApiError::field("final_state", "must be canceled or unpaid")),
    };
    let policy = DunningPolicy::new(body.retry_after_days, final_state)?;
    let s = settings::put_dunning_policy(&state.app, auth.0, policy).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), DunningPolicyDto::from(&s))))
}

/// Billing settings: the lead time of `invoice.upcoming` notices (default 7 days), of
/// `order.upcoming` notices (default 3 days) and the edit cutoff of orders (default
/// none), and how long events and webhook deliveries are kept.
#[utoipa::path(tag = "Billing settings",
    responses((status = 200, description = "The billing settings", body = BillingSettingsDto)))]
#[get("/billing_settings")]
async fn get_billing_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    let s = settings::settings(&state.app, auth.0).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        BillingSettingsDto::new(&s, state.app.default_retention),
    )))
}

/// Change the billing settings.
#[utoipa::path(tag = "Billing settings", request_body = PutBillingSettings,
    responses((status = 200, description = "The new billing settings", body = BillingSettingsDto)))]
#[put("/billing_settings")]
async fn put_billing_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<PutBillingSettings>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let s = settings::put_billing_settings(
        &state.app,
        auth.0,
        body.upcoming_notice_days,
        body.retention_days,
        (body.order_notice_days, body.order_cutoff_hours),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        BillingSettingsDto::new(&s, state.app.default_retention),
    )))
}
