//! Stock (docs/orders.md, "Stock"): a plan's stock change and its notices for merchants;
//! a subscription's stock notice and the subscriber's choice in the portal.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use tenure_app::dto::InMode;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::stock::{ChangeStock, StockChoice, StockNoticeDto, SubscriptionStockDto};
use tenure_app::stock as svc;
use tenure_app::subscriptions::Scope;
use tenure_domain::ids::{PlanTag, StockNoticeTag, SubscriptionTag};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{if_match, ok_versioned};
use crate::auth::{AuthenticatedCustomer, AuthenticatedMerchant};
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(change_plan_stock)
        .service(list_stock_notices)
        .service(get_stock_notice)
        .service(get_subscription_stock);
}

/// The routes of the `/v1/portal` scope (customer session tokens).
pub fn configure_portal(cfg: &mut ServiceConfig) {
    cfg.service(portal_get_subscription_stock)
        .service(portal_choose_stock);
}

/// Change a plan's stock. The plan shows it at once (`plan.updated`); every subscriber of
/// the plan still expecting orders (active, trialing, past due or paused) is then
/// notified once (`subscription.stock_notice`) by the worker in bounded batches, and
/// `next_order` is applied to their next order: `ship_anyway` (nothing changes), `skip`
/// (the merchant skips the next renewal) or `swap` (a plan change to
/// `substitute_plan_id` at the next renewal). `choices` lets the subscriber pick another
/// of them in the portal. The answer is the notice, whose `notified` and `done_at` show
/// the progress; a newer change of the plan ends an unfinished notice
/// (`superseded_by`).
#[utoipa::path(tag = "Catalog", request_body = ChangeStock,
    params(("id" = String, Path, description = "Plan id (plan_…)")),
    responses((status = 202, description = "The stock notice, being sent", body = StockNoticeDto)))]
#[post("/plans/{id}/stock")]
async fn change_plan_stock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<ChangeStock>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PlanTag>(&id, "plan")?;
    let notice = svc::change_stock(&state.app, auth.0, id, body.0).await?;
    Ok(HttpResponse::Accepted().json(InMode::new(auth.mode(), StockNoticeDto::from(&notice))))
}

/// The plan's latest stock notices (at most 20), newest first.
#[utoipa::path(tag = "Catalog",
    params(("id" = String, Path, description = "Plan id (plan_…)")),
    responses((status = 200, description = "The notices", body = Vec<StockNoticeDto>)))]
#[get("/plans/{id}/stock_notices")]
async fn list_stock_notices(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<PlanTag>(&id, "plan")?;
    let notices = svc::list_notices(&state.app, auth.0, id).await?;
    let body: Vec<StockNoticeDto> = notices.iter().map(StockNoticeDto::from).collect();
    Ok(HttpResponse::Ok().json(InMode::each(auth.mode(), body)))
}

/// One stock notice of the plan, with its progress (`notified`, `done_at`).
#[utoipa::path(tag = "Catalog",
    params(("id" = String, Path, description = "Plan id (plan_…)"),
        ("notice_id" = String, Path, description = "Stock notice id (stkn_…)")),
    responses((status = 200, description = "The notice", body = StockNoticeDto)))]
#[get("/plans/{id}/stock_notices/{notice_id}")]
async fn get_stock_notice(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let plan = parse_id::<PlanTag>(&path.0, "plan")?;
    let id = parse_id::<StockNoticeTag>(&path.1, "stock_notice")?;
    let notice = svc::get_notice(&state.app, auth.0, plan, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), StockNoticeDto::from(&notice))))
}

/// A subscription's stock: its plan's, and the latest stock notice of that plan it
/// received, with what it did to the next order and the subscriber's choice.
#[utoipa::path(tag = "Subscriptions",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription's stock", body = SubscriptionStockDto)))]
#[get("/subscriptions/{id}/stock")]
async fn get_subscription_stock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let view = svc::subscription_stock(&state.app, Scope::merchant(auth.0), id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// The stock of one of the signed-in customer's subscriptions: its plan's, and the
/// latest stock notice it received with the `choices` the subscriber may pick.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription's stock", body = SubscriptionStockDto)))]
#[get("/subscriptions/{id}/stock")]
async fn portal_get_subscription_stock(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let view = svc::subscription_stock(&state.app, scope, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), view)))
}

/// Pick what happens to the next order among the stock notice's `choices`: what the
/// notice did is taken back and the choice applied (`subscription.stock_choice_made`).
/// 422 on `choice` when it is not offered; 409 `no_stock_notice`,
/// `stock_notice_superseded` (a newer stock change replaced it), or the state's code
/// when the subscription cannot skip or change plan now, or `order_edit_cutoff_passed`
/// when the choice would change the next order after its edit cutoff. Honours
/// `If-Match`; the ETag is the subscription's.
#[utoipa::path(tag = "Portal", request_body = StockChoice,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription's stock", body = SubscriptionStockDto)))]
#[post("/subscriptions/{id}/stock_choice")]
async fn portal_choose_stock(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<StockChoice>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let scope = Scope::customer(auth.merchant, auth.customer);
    let (sub, view) = svc::choose(&state.app, scope, id, if_match(&req), body.0).await?;
    Ok(ok_versioned(auth.mode(), &view, sub.updated_at))
}
