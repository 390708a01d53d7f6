//! Liveness, readiness and metrics: unauthenticated, outside `/v1`.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthDto {
    pub status: HealthStatus,
}

/// Always `ok`: a process or database that is not is answered with a problem instead.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(tag = "Operations", responses((status = 200, description = "Alive", body = HealthDto)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthDto {
        status: HealthStatus::Ok,
    })
}

/// Readiness: the database answers. 503 while it does not.
#[utoipa::path(tag = "Operations", responses((status = 200, description = "Ready", body = HealthDto),
    (status = 503, description = "The database does not answer",
        body = crate::error::Problem, content_type = "application/problem+json")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.app.db.ping().await?;
    Ok(HttpResponse::Ok().json(HealthDto {
        status: HealthStatus::Ok,
    }))
}
