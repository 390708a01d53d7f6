//! Payment gateways: the merchant's gateway settings, and the portal's setup intents for
//! collecting a card with the gateway's own library (Stripe.js, a mobile SDK).

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::MerchantTag;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::ApiResult;
use crate::extract::{Json, read_capped};
use crate::state::AppState;
use tenure_app::billing::gateway_events;
use tenure_app::billing::gateways as svc;
use tenure_app::dto::billing::{
    GatewayEventReceipt, GatewaySettingsDto, PutGatewaySettings, SetupIntentDto,
};
use tenure_app::dto::common::parse_id;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_gateway_settings)
        .service(put_gateway_settings)
        .service(delete_gateway_settings)
        .service(receive_stripe_event);
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
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::get(&state.app, auth.0).await?,
    )))
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
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::put(&state.app, auth.0, body.0).await?,
    )))
}

/// Disconnect the gateway: back to the sandbox, and the stored keys are deleted.
#[utoipa::path(tag = "Gateway",
    responses((status = 200, description = "The settings now (the sandbox)", body = GatewaySettingsDto)))]
#[delete("/gateway_settings")]
async fn delete_gateway_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::delete(&state.app, auth.0).await?,
    )))
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
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), intent)))
}

/// Stripe's events for one merchant: register this URL as a webhook endpoint in the
/// Stripe dashboard and store its signing secret as `webhook_secret`. No credential:
/// the `Stripe-Signature` header is verified with the merchant's signing secret, within
/// 5 minutes of Tenure's clock (400 `signature_invalid` otherwise, nothing read). Each
/// event id is applied once (a repeat answers `duplicate: true`); types Tenure does not
/// act on are acknowledged with `handled: false`. 404 for a merchant without Stripe and
/// a signing secret.
#[utoipa::path(tag = "Gateway",
    params(("merchant_id" = String, Path, description = "The merchant (mer_…)"),
           ("Stripe-Signature" = String, Header, description = "Stripe's signature: `t=…,v1=…`")),
    request_body(content = Object, content_type = "application/json",
        description = "A Stripe event, as Stripe sends it"),
    responses((status = 200, description = "Received (and applied once)", body = GatewayEventReceipt)),
    security(()))]
#[post("/gateway_events/{merchant_id}/stripe")]
async fn receive_stripe_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    merchant_id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let merchant = parse_id::<MerchantTag>(&merchant_id, "merchant")?;
    let body = read_capped(payload.into_inner()).await?;
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let receipt = gateway_events::receive_stripe(&state.app, merchant, signature, &body).await?;
    Ok(HttpResponse::Ok().json(receipt))
}
