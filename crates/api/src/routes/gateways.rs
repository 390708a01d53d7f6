//! Payment gateways: the merchant's gateway settings, and the portal's setup intents for
//! collecting a card with the gateway's own library (Stripe.js, a mobile SDK).

use actix_web::{HttpResponse, delete, get, post, put, web};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;
use tenure_app::billing::gateways as svc;
use tenure_app::dto::billing::{GatewaySettingsDto, PutGatewaySettings, SetupIntentDto};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_gateway_settings)
        .service(put_gateway_settings)
        .service(delete_gateway_settings);
}

pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_create_setup_intent);
}

/// The merchant's payment gateway: `sandbox` (the default) or `stripe`. Secrets are
/// never returned, only whether they are set and their last four characters.
#[utoipa::path(tag = "Gateway",
    responses((status = 200, description = "The gateway settings", body = GatewaySettingsDto)))]
#[get("/gateway_settings")]
async fn get_gateway_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::get(&state.app, auth.0).await?))
}

/// Connect a payment gateway (replaces the settings). Stripe keys are checked (prefixes,
/// test and live not mixed), encrypted with the operator's key and never shown again;
/// 409 `secrets_key_not_configured` when the operator has set no key. Charges, refunds
/// and card collection use the new gateway at once in this process, within 2 s in others.
#[utoipa::path(tag = "Gateway", request_body = PutGatewaySettings,
    responses((status = 200, description = "The new gateway settings", body = GatewaySettingsDto)))]
#[put("/gateway_settings")]
async fn put_gateway_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<PutGatewaySettings>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::put(&state.app, auth.0, body.0).await?))
}

/// Disconnect the gateway: back to the sandbox, and the stored keys are deleted.
#[utoipa::path(tag = "Gateway",
    responses((status = 200, description = "The settings now (the sandbox)", body = GatewaySettingsDto)))]
#[delete("/gateway_settings")]
async fn delete_gateway_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(svc::delete(&state.app, auth.0).await?))
}

/// Start collecting a card: a setup intent at the merchant's gateway for the signed-in
/// customer (its gateway customer is created the first time). Confirm it in the frontend
/// with `client_secret` and `publishable_key` (Stripe.js `confirmCardSetup`, or a mobile
/// SDK), then attach the payment method it produced with `POST
/// /v1/portal/payment_methods`. 409 `setup_intents_not_supported` for a merchant on the
/// sandbox (attach its tokens directly); 503 when the gateway does not answer.
#[utoipa::path(tag = "Portal",
    responses((status = 201, description = "The setup intent to confirm", body = SetupIntentDto)))]
#[post("/setup_intents")]
async fn portal_create_setup_intent(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
) -> ApiResult<HttpResponse> {
    let intent = svc::create_setup_intent(&state.app, auth.merchant, auth.customer).await?;
    Ok(HttpResponse::Created().json(intent))
}
