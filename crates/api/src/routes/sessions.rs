use actix_web::{HttpResponse, delete, get, post, put, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::{CustomerTag, IdentityProviderId, IdentityProviderTag};
use tenure_store::repo::identity_providers::IdentityProviderRow;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;
use tenure_app::cors_settings;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::sessions::{
    CorsSettingsDto, CreateCustomerSession, CreateIdentityProvider, CustomerSessionDto,
    IdentityProviderDto, PutCorsSettings,
};
use tenure_app::sessions as svc;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_customer_session)
        .service(create_identity_provider)
        .service(list_identity_providers)
        .service(delete_identity_provider)
        .service(get_cors_settings)
        .service(put_cors_settings);
}

/// Create a portal session for one customer: exchange the secret key (server side) for a
/// short-lived token to hand to that customer's browser or app.
#[utoipa::path(tag = "Customer sessions", request_body = CreateCustomerSession,
    responses((status = 201, description = "The session token", body = CustomerSessionDto)))]
#[post("/customer_sessions")]
async fn create_customer_session(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateCustomerSession>,
) -> ApiResult<HttpResponse> {
    let customer = parse_field_id::<CustomerTag>(&body.0.customer_id, "customer_id")?;
    let (token, expires_at) =
        svc::create_customer_session(&state.app, auth.0, auth.mode(), customer).await?;
    Ok(HttpResponse::Created().json(InMode::new(
        auth.mode(),
        CustomerSessionDto {
            object: "customer_session".to_owned(),
            customer_id: customer.to_string(),
            token,
            expires_at,
        },
    )))
}

fn render_provider(row: IdentityProviderRow) -> IdentityProviderDto {
    IdentityProviderDto {
        id: IdentityProviderId::from_uuid(row.id).to_string(),
        object: "identity_provider".to_owned(),
        issuer: row.issuer,
        audience: row.audience,
        algorithm: row.algorithm,
        customer_claim: row.customer_claim,
        created_at: row.created_at,
    }
}

/// Register your identity provider so the portal accepts the tokens it issues (matched by
/// `iss`, verified with this key and algorithm only).
#[utoipa::path(tag = "Customer sessions", request_body = CreateIdentityProvider,
    responses((status = 201, description = "The registered provider", body = IdentityProviderDto)))]
#[post("/identity_providers")]
async fn create_identity_provider(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateIdentityProvider>,
) -> ApiResult<HttpResponse> {
    let row = svc::create_identity_provider(&state.app, auth.0, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), render_provider(row))))
}

/// List registered identity providers.
#[utoipa::path(tag = "Customer sessions",
    responses((status = 200, description = "Every registered provider", body = Vec<IdentityProviderDto>)))]
#[get("/identity_providers")]
async fn list_identity_providers(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    let rows = svc::list_identity_providers(&state.app, auth.0).await?;
    Ok(HttpResponse::Ok().json(InMode::each(
        auth.mode(),
        rows.into_iter().map(render_provider).collect(),
    )))
}

/// Remove an identity provider; its tokens stop working at once.
#[utoipa::path(tag = "Customer sessions",
    params(("id" = String, Path, description = "Identity provider id (idp_…)")),
    responses((status = 204, description = "Removed")))]
#[delete("/identity_providers/{id}")]
async fn delete_identity_provider(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<IdentityProviderTag>(&id, "identity_provider")?;
    svc::delete_identity_provider(&state.app, auth.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The CORS settings: which web origins may call /v1/portal/ from a browser (CORS).
#[utoipa::path(tag = "Customer sessions",
    responses((status = 200, description = "The CORS settings", body = CorsSettingsDto)))]
#[get("/cors_settings")]
async fn get_cors_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        cors_settings::get(&state.app, auth.0).await?,
    )))
}

/// Replace the web origins allowed to call /v1/portal/ from a browser with this
/// merchant's customer tokens. 422 names each entry that is not an origin
/// (`allowed_origins[2]`). Takes effect at once in this process, within 2 s in others.
#[utoipa::path(tag = "Customer sessions", request_body = PutCorsSettings,
    responses((status = 200, description = "The new CORS settings", body = CorsSettingsDto)))]
#[put("/cors_settings")]
async fn put_cors_settings(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<PutCorsSettings>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        cors_settings::put(&state.app, auth.0, body.0).await?,
    )))
}
