//! Test clocks (docs/test-clocks.md): simulated time for the customers created on them.

use actix_web::{HttpResponse, delete, get, post, web};
use tenure_domain::ids::TestClockTag;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, Query};
use crate::state::AppState;
use tenure_app::dto::InMode;
use tenure_app::dto::common::parse_id;
use tenure_app::dto::test_clocks::{AdvanceTestClock, CreateTestClock, TestClockDto};
use tenure_app::dto::webhooks::DeletedDto;
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::test_clocks as svc;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_clock)
        .service(list_clocks)
        .service(get_clock)
        .service(delete_clock)
        .service(advance_clock);
}

/// Create a test clock at `frozen_time`. Customers created with `test_clock` set to it
/// live in its time: everything that happens to them (subscribing, renewals, trials,
/// dunning, notices, scheduled changes) follows the clock. Test mode only.
#[utoipa::path(tag = "Test clocks", request_body = CreateTestClock,
    responses((status = 201, description = "The new clock, ready", body = TestClockDto)))]
#[post("/test_clocks")]
async fn create_clock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateTestClock>,
) -> ApiResult<HttpResponse> {
    let clock = svc::create(&state.app, auth.0, body.0).await?;
    Ok(created(
        auth.mode(),
        &TestClockDto::from(&clock),
        clock.updated_at,
    ))
}

/// List test clocks, newest first.
#[utoipa::path(tag = "Test clocks", params(ListParams),
    responses((status = 200, description = "A page of clocks", body = ListResponse<TestClockDto>)))]
#[get("/test_clocks")]
async fn list_clocks(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<TestClockTag>()?;
    let clocks = svc::list(&state.app, auth.0, page).await?;
    Ok(HttpResponse::Ok().json(
        ListResponse::from_page(clocks, |c| TestClockDto::from(&c), |c| c.id.to_string())
            .in_mode(auth.mode()),
    ))
}

/// Get a test clock: poll it after an advance until its `status` is `ready`.
#[utoipa::path(tag = "Test clocks", params(("id" = String, Path, description = "Test clock id (clock_…)")),
    responses((status = 200, description = "The clock", body = TestClockDto)))]
#[get("/test_clocks/{id}")]
async fn get_clock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TestClockTag>(&id, "test_clock")?;
    let clock = svc::get(&state.app, auth.0, id).await?;
    Ok(ok_versioned(
        auth.mode(),
        &TestClockDto::from(&clock),
        clock.updated_at,
    ))
}

/// Delete a test clock (not while it is advancing: 409 `test_clock_advancing`). Its
/// customers stay on it, frozen at its time: nothing happens to them any more.
#[utoipa::path(tag = "Test clocks", params(("id" = String, Path, description = "Test clock id (clock_…)")),
    responses((status = 200, description = "The clock is gone", body = DeletedDto),
        (status = 409, description = "The clock is advancing (`test_clock_advancing`)",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/test_clocks/{id}")]
async fn delete_clock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TestClockTag>(&id, "test_clock")?;
    svc::delete(&state.app, auth.0, id).await?;
    Ok(HttpResponse::Ok().json(InMode::new(
        auth.mode(),
        DeletedDto {
            id: id.to_string(),
            object: "test_clock".to_owned(),
            deleted: true,
        },
    )))
}

/// Advance a test clock to `frozen_time`: later than now on the clock, by at most 24
/// months per call. The clock turns `advancing` (event `test_clock.advancing`) while the
/// engine makes the time pass for its customers in order, then `ready` at `frozen_time`
/// (`test_clock.ready`). Refused while it is advancing (409 `test_clock_advancing`).
#[utoipa::path(tag = "Test clocks", request_body = AdvanceTestClock,
    params(("id" = String, Path, description = "Test clock id (clock_…)")),
    responses((status = 200, description = "The clock, advancing", body = TestClockDto)))]
#[post("/test_clocks/{id}/advance")]
async fn advance_clock(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<AdvanceTestClock>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<TestClockTag>(&id, "test_clock")?;
    let clock = svc::advance(&state.app, auth.0, id, body.0).await?;
    Ok(ok_versioned(
        auth.mode(),
        &TestClockDto::from(&clock),
        clock.updated_at,
    ))
}
