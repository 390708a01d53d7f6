//! The operator's routes: merchants created and listed over HTTP with the operator's
//! token (`TENURE_OPERATOR_TOKEN`), as `tenure merchant create` does from the command
//! line. Like the merchant routes they answer no CORS: the token must never be in a
//! browser.

use actix_web::{HttpResponse, get, post, web};
use tenure_app::dto::access::{CreateMerchant, CreatedMerchantDto, MerchantDto, merchant_cursor};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::merchants;
use tenure_domain::ids::MerchantTag;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedOperator;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_merchant).service(list_merchants);
}

/// Create a merchant account: its test tenant with its first `sk_test_` key, and its live
/// tenant (`live`) with its first `sk_live_` key, both unrestricted and shown in this
/// response only.
#[utoipa::path(tag = "Operator", request_body = CreateMerchant,
    responses((status = 201, description = "The merchant and its first key", body = CreatedMerchantDto)))]
#[post("/operator/merchants")]
async fn create_merchant(
    state: web::Data<AppState>,
    _operator: AuthenticatedOperator,
    body: Json<CreateMerchant>,
) -> ApiResult<HttpResponse> {
    let created = merchants::create(&state.app, &body.0.name).await?;
    Ok(HttpResponse::Created().json(CreatedMerchantDto::from(created)))
}

/// List merchants (each account's test and live tenants), newest first.
#[utoipa::path(tag = "Operator", params(ListParams),
    responses((status = 200, description = "A page of merchants", body = ListResponse<MerchantDto>)))]
#[get("/operator/merchants")]
async fn list_merchants(
    state: web::Data<AppState>,
    _operator: AuthenticatedOperator,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<MerchantTag>()?;
    let merchants = merchants::list(&state.app, page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(
        merchants,
        MerchantDto::from,
        merchant_cursor,
    )))
}
