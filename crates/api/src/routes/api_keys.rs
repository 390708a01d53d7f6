//! The merchant's secret keys and its audit trail (docs/keys.md).

use actix_web::{HttpResponse, get, post, web};
use tenure_app::audit;
use tenure_app::dto::InMode;
use tenure_app::dto::access::{
    ApiKeyDto, AuditEventDto, AuditFilterParams, CreateApiKey, CreatedApiKeyDto, RollApiKey,
};
use tenure_app::dto::common::parse_id;
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::merchants::api_keys as keys;
use tenure_domain::ids::ApiKeyTag;
use utoipa_actix_web::service_config::ServiceConfig;

use super::holding_secret;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Query};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_api_key)
        .service(list_api_keys)
        .service(get_api_key)
        .service(roll_api_key)
        .service(revoke_api_key)
        .service(list_audit_events);
}

/// Create a secret key: unrestricted, or restricted to `scopes`. The secret is in this
/// response only. A key can only create keys that grant no more than it holds (403
/// `scope_exceeds_key`).
#[utoipa::path(tag = "API keys", request_body = CreateApiKey,
    responses((status = 201, description = "The new key, with its secret", body = CreatedApiKeyDto)))]
#[post("/api_keys")]
async fn create_api_key(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateApiKey>,
) -> ApiResult<HttpResponse> {
    let created = keys::create(&state.app, auth.1, body.0).await?;
    Ok(holding_secret(
        HttpResponse::Created().json(InMode::new(auth.mode(), created)),
    ))
}

/// List the merchant's keys, newest first, revoked and expired ones included: prefix,
/// name, scopes, when created, last used (to the minute), expiring and revoked. Never a
/// secret.
#[utoipa::path(tag = "API keys", params(ListParams),
    responses((status = 200, description = "A page of keys", body = ListResponse<ApiKeyDto>)))]
#[get("/api_keys")]
async fn list_api_keys(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<ApiKeyTag>()?;
    let keys = keys::list(&state.app, auth.0, page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(keys, |k| k, |k| k.id.clone()).in_mode(auth.mode())))
}

/// Get a key (never its secret).
#[utoipa::path(tag = "API keys", params(("id" = String, Path, description = "Key id (key_…)")),
    responses((status = 200, description = "The key", body = ApiKeyDto)))]
#[get("/api_keys/{id}")]
async fn get_api_key(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ApiKeyTag>(&id, "api_key")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        keys::get(&state.app, auth.0, id).await?,
    )))
}

/// Roll a key: a new key with the same name and scopes (its secret in this response
/// only), while the old one keeps working for `expires_in_secs` (default 24 hours, at
/// most 7 days, 0 for at once) so that the new one can be deployed first. 409
/// `api_key_revoked` or `api_key_expired` for a key that no longer works.
#[utoipa::path(tag = "API keys", request_body = RollApiKey,
    params(("id" = String, Path, description = "Key id (key_…)")),
    responses((status = 201, description = "The new key, with its secret", body = CreatedApiKeyDto)))]
#[post("/api_keys/{id}/roll")]
async fn roll_api_key(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<RollApiKey>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ApiKeyTag>(&id, "api_key")?;
    let created = keys::roll(&state.app, auth.1, id, body.0).await?;
    Ok(holding_secret(
        HttpResponse::Created().json(InMode::new(auth.mode(), created)),
    ))
}

/// Revoke a key: refused at once by every Tenure process. The merchant's last
/// unrestricted key without an expiry cannot be revoked (409 `last_unrestricted_key`):
/// create or roll another first. 409 `api_key_revoked` if it is revoked already.
#[utoipa::path(tag = "API keys", params(("id" = String, Path, description = "Key id (key_…)")),
    responses((status = 200, description = "The revoked key", body = ApiKeyDto)))]
#[post("/api_keys/{id}/revoke")]
async fn revoke_api_key(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ApiKeyTag>(&id, "api_key")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        keys::revoke(&state.app, auth.1, id).await?,
    )))
}

/// The audit trail, newest first: every state-changing request made with the merchant's
/// keys, with the key, the agent it named (`Tenure-Agent`), the route, the resource, the
/// request and idempotency ids, the status and the redacted body.
#[utoipa::path(tag = "API keys", params(ListParams, AuditFilterParams),
    responses((status = 200, description = "A page of audit events", body = ListResponse<AuditEventDto>)))]
#[get("/audit_events")]
async fn list_audit_events(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<AuditFilterParams>,
) -> ApiResult<HttpResponse> {
    let rows = audit::list(&state.app, auth.0, filter.into_inner(), &page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(rows, |e| e, |e| e.id.clone()).in_mode(auth.mode())))
}
