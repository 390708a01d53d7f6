use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use tenure_domain::ids::{PlanTag, ProductTag};
use tenure_store::repo::catalog::PlanFilter;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, if_match, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::catalog as svc;
use tenure_app::dto::catalog::{
    CreatePlan, CreateProduct, PlanDto, PlanFilterParams, ProductDto, ProductFilterParams,
    UpdatePlan, UpdateProduct,
};
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::{ListParams, ListResponse};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_product)
        .service(list_products)
        .service(get_product)
        .service(update_product)
        .service(archive_product)
        .service(create_plan)
        .service(list_plans)
        .service(get_plan)
        .service(update_plan)
        .service(archive_plan);
}

/// Create a product with its portal policy.
#[utoipa::path(tag = "Catalog", request_body = CreateProduct,
    responses((status = 201, description = "The new product", body = ProductDto)))]
#[post("/products")]
async fn create_product(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateProduct>,
) -> ApiResult<HttpResponse> {
    let product = svc::create_product(&state.app, auth.0, body.0).await?;
    Ok(created(
        auth.mode(),
        &ProductDto::from(&product),
        product.updated_at,
    ))
}

/// List products, newest first.
#[utoipa::path(tag = "Catalog", params(ListParams, ProductFilterParams),
    responses((status = 200, description = "A page of products", body = ListResponse<ProductDto>)))]
#[get("/products")]
async fn list_products(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<ProductFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<ProductTag>()?;
    let products = svc::list_products(
        &state.app,
        auth.0,
        filter.include_archived.unwrap_or(false),
        page,
    )
    .await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(products, |p| ProductDto::from(&p), |p| p.id.to_string())
            .in_mode(auth.mode()),
    ))
}

/// Get a product.
#[utoipa::path(tag = "Catalog", params(("id" = String, Path, description = "Product id (prod_…)")),
    responses((status = 200, description = "The product", body = ProductDto)))]
#[get("/products/{id}")]
async fn get_product(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ProductTag>(&id, "product")?;
    let product = svc::get_product(&state.app, auth.0, id).await?;
    Ok(ok_versioned(
        auth.mode(),
        &ProductDto::from(&product),
        product.updated_at,
    ))
}

/// Update a product's name, description or portal policy. Honours `If-Match`.
#[utoipa::path(tag = "Catalog", request_body = UpdateProduct,
    params(("id" = String, Path, description = "Product id (prod_…)")),
    responses((status = 200, description = "The updated product", body = ProductDto)))]
#[patch("/products/{id}")]
async fn update_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdateProduct>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ProductTag>(&id, "product")?;
    let product = svc::update_product(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &ProductDto::from(&product),
        product.updated_at,
    ))
}

/// Archive a product: it disappears from the portal; existing subscriptions continue.
#[utoipa::path(tag = "Catalog", params(("id" = String, Path, description = "Product id (prod_…)")),
    responses((status = 200, description = "The archived product", body = ProductDto)))]
#[post("/products/{id}/archive")]
async fn archive_product(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<ProductTag>(&id, "product")?;
    let product = svc::archive_product(&state.app, auth.0, id, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &ProductDto::from(&product),
        product.updated_at,
    ))
}

/// Create a plan: a price and billing cadence for a product.
#[utoipa::path(tag = "Catalog", request_body = CreatePlan,
    responses((status = 201, description = "The new plan", body = PlanDto)))]
#[post("/plans")]
async fn create_plan(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreatePlan>,
) -> ApiResult<HttpResponse> {
    let plan = svc::create_plan(&state.app, auth.0, body.0).await?;
    Ok(created(auth.mode(), &PlanDto::from(&plan), plan.updated_at))
}

/// List plans, newest first.
#[utoipa::path(tag = "Catalog", params(ListParams, PlanFilterParams),
    responses((status = 200, description = "A page of plans", body = ListResponse<PlanDto>)))]
#[get("/plans")]
async fn list_plans(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<PlanFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<PlanTag>()?;
    let filter = PlanFilter {
        product: filter
            .product_id
            .as_deref()
            .map(|p| parse_field_id::<ProductTag>(p, "product_id"))
            .transpose()?,
        active: filter.active,
    };
    let plans = svc::list_plans(&state.app, auth.0, filter, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(plans, |p| PlanDto::from(&p), |p| p.id.to_string())
            .in_mode(auth.mode()),
    ))
}

/// Get a plan.
#[utoipa::path(tag = "Catalog", params(("id" = String, Path, description = "Plan id (plan_…)")),
    responses((status = 200, description = "The plan", body = PlanDto)))]
#[get("/plans/{id}")]
async fn get_plan(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PlanTag>(&id, "plan")?;
    let plan = svc::get_plan(&state.app, auth.0, id).await?;
    Ok(ok_versioned(
        auth.mode(),
        &PlanDto::from(&plan),
        plan.updated_at,
    ))
}

/// Update a plan's name, trial days or active flag. Prices are immutable.
#[utoipa::path(tag = "Catalog", request_body = UpdatePlan,
    params(("id" = String, Path, description = "Plan id (plan_…)")),
    responses((status = 200, description = "The updated plan", body = PlanDto)))]
#[patch("/plans/{id}")]
async fn update_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<UpdatePlan>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PlanTag>(&id, "plan")?;
    let plan = svc::update_plan(&state.app, auth.0, id, body.0, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &PlanDto::from(&plan),
        plan.updated_at,
    ))
}

/// Archive a plan: no new subscriptions or switches to it; existing ones continue.
#[utoipa::path(tag = "Catalog", params(("id" = String, Path, description = "Plan id (plan_…)")),
    responses((status = 200, description = "The archived plan", body = PlanDto)))]
#[post("/plans/{id}/archive")]
async fn archive_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PlanTag>(&id, "plan")?;
    let update = UpdatePlan {
        name: None,
        active: Some(false),
        trial_days: None,
        variant: None,
    };
    let plan = svc::update_plan(&state.app, auth.0, id, update, if_match(&req)).await?;
    Ok(ok_versioned(
        auth.mode(),
        &PlanDto::from(&plan),
        plan.updated_at,
    ))
}
