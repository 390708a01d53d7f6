//! Subscriber metrics.

use actix_web::{HttpResponse, get, web};
use tenure_app::dto::InMode;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;
use tenure_app::dto::metrics::{MetricsDto, MetricsParams};
use tenure_app::metrics as svc;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_metrics);
}

/// Subscriber metrics of a period `[from, to)`: per currency MRR (now and at the start),
/// active, new and churned subscribers, logo and revenue churn rates, ARPU and an LTV
/// estimate; merchant-wide pauses, cancellation reasons and save-offer acceptance.
/// Computed on read from one consistent snapshot; see docs/metrics.md for every rule.
#[utoipa::path(tag = "Metrics", params(MetricsParams),
    responses((status = 200, description = "The metrics of the period", body = MetricsDto)))]
#[get("/metrics")]
async fn get_metrics(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    params: Query<MetricsParams>,
) -> ApiResult<HttpResponse> {
    let metrics = svc::get(
        &state.app,
        auth.0,
        params.from.as_deref(),
        params.to.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), metrics)))
}
