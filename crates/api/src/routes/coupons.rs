//! Coupons and promotion codes: merchant CRUD under `/v1/coupons` and
//! `/v1/promotion_codes`. Codes are redeemed with `promotion_code` at subscribe and at a
//! plan change (routes/subscriptions.rs, routes/portal_subscriptions.rs).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use tenure_domain::ids::{CouponTag, PromotionCodeTag};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::coupons as svc;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::coupons::{
    CouponDto, CouponFilterParams, CreateCoupon, CreatePromotionCode, PromotionCodeDto,
    PromotionCodeFilterParams, UpdateCoupon, UpdatePromotionCode,
};
use tenure_app::dto::{InMode, ListParams, ListResponse};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_coupon)
        .service(list_coupons)
        .service(get_coupon)
        .service(update_coupon)
        .service(delete_coupon)
        .service(create_promotion_code)
        .service(list_promotion_codes)
        .service(get_promotion_code)
        .service(update_promotion_code);
}

/// Create a coupon: `percent_off` (1–100) or `amount_off` with `currency`, for a
/// `duration` of `once`, `repeating` (`duration_in_cycles` invoices) or `forever`;
/// optionally limited in redemptions, in time (`redeem_by`), to products or plans
/// (`applies_to`) and to first-time subscribers. Customers redeem it through a
/// promotion code.
#[utoipa::path(tag = "Coupons", request_body = CreateCoupon,
    responses((status = 201, description = "The new coupon", body = CouponDto)))]
#[post("/coupons")]
async fn create_coupon(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateCoupon>,
) -> ApiResult<HttpResponse> {
    let coupon = svc::create_coupon(&state.app, auth.0, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), coupon)))
}

/// List coupons, newest first (deleted ones with `include_deleted`). The internal
/// coupons behind retention offers' discounts are not listed.
#[utoipa::path(tag = "Coupons", params(ListParams, CouponFilterParams),
    responses((status = 200, description = "A page of coupons", body = ListResponse<CouponDto>)))]
#[get("/coupons")]
async fn list_coupons(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<CouponFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<CouponTag>()?;
    let coupons = svc::list_coupons(
        &state.app,
        auth.0,
        filter.include_deleted.unwrap_or(false),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(coupons, |c| c, |c| c.id.clone()).in_mode(auth.mode())))
}

/// Get a coupon, with `times_redeemed` and whether it is still `valid`.
#[utoipa::path(tag = "Coupons",
    params(("id" = String, Path, description = "Coupon id (coupon_…)")),
    responses((status = 200, description = "The coupon", body = CouponDto)))]
#[get("/coupons/{id}")]
async fn get_coupon(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CouponTag>(&id, "coupon")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::get_coupon(&state.app, auth.0, id).await?,
    )))
}

/// Rename a coupon or replace its metadata. What it grants never changes: make a new
/// coupon instead.
#[utoipa::path(tag = "Coupons", request_body = UpdateCoupon,
    params(("id" = String, Path, description = "Coupon id (coupon_…)")),
    responses((status = 200, description = "The coupon", body = CouponDto)))]
#[patch("/coupons/{id}")]
async fn update_coupon(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdateCoupon>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CouponTag>(&id, "coupon")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::update_coupon(&state.app, auth.0, id, body.0).await?,
    )))
}

/// Delete a coupon: none of its promotion codes can be redeemed any more; discounts it
/// already granted carry on. It stays readable with `deleted: true`.
#[utoipa::path(tag = "Coupons",
    params(("id" = String, Path, description = "Coupon id (coupon_…)")),
    responses((status = 200, description = "The deleted coupon", body = CouponDto)))]
#[delete("/coupons/{id}")]
async fn delete_coupon(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CouponTag>(&id, "coupon")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::delete_coupon(&state.app, auth.0, id).await?,
    )))
}

/// Create a promotion code for a coupon: the word customers type (matched without case;
/// 409 `promotion_code_taken` while another active code has it), with limits of its own.
#[utoipa::path(tag = "Coupons", request_body = CreatePromotionCode,
    responses((status = 201, description = "The new promotion code", body = PromotionCodeDto)))]
#[post("/promotion_codes")]
async fn create_promotion_code(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreatePromotionCode>,
) -> ApiResult<HttpResponse> {
    let code = svc::create_code(&state.app, auth.0, body.0).await?;
    Ok(HttpResponse::Created().json(InMode::new(auth.mode(), code)))
}

/// List promotion codes, newest first, optionally of one coupon or one word.
#[utoipa::path(tag = "Coupons", params(ListParams, PromotionCodeFilterParams),
    responses((status = 200, description = "A page of promotion codes", body = ListResponse<PromotionCodeDto>)))]
#[get("/promotion_codes")]
async fn list_promotion_codes(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<PromotionCodeFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<PromotionCodeTag>()?;
    let coupon = filter
        .coupon_id
        .as_deref()
        .map(|c| parse_field_id::<CouponTag>(c, "coupon_id"))
        .transpose()?;
    let codes = svc::list_codes(&state.app, auth.0, coupon, filter.code.as_deref(), page).await?;
    Ok(HttpResponse::Ok()
        .json(ListResponse::from_page(codes, |c| c, |c| c.id.clone()).in_mode(auth.mode())))
}

/// Get a promotion code with its coupon.
#[utoipa::path(tag = "Coupons",
    params(("id" = String, Path, description = "Promotion code id (promo_…)")),
    responses((status = 200, description = "The promotion code", body = PromotionCodeDto)))]
#[get("/promotion_codes/{id}")]
async fn get_promotion_code(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PromotionCodeTag>(&id, "promotion_code")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::get_code(&state.app, auth.0, id).await?,
    )))
}

/// Activate or deactivate a promotion code, or replace its metadata.
#[utoipa::path(tag = "Coupons", request_body = UpdatePromotionCode,
    params(("id" = String, Path, description = "Promotion code id (promo_…)")),
    responses((status = 200, description = "The promotion code", body = PromotionCodeDto),
        (status = 409, description = "Another active code has the same word",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[patch("/promotion_codes/{id}")]
async fn update_promotion_code(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdatePromotionCode>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PromotionCodeTag>(&id, "promotion_code")?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        svc::update_code(&state.app, auth.0, id, body.0).await?,
    )))
}
