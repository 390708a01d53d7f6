//! The portal's subscription routes: the signed-in customer's own subscriptions, each
//! with the `available_actions` the product's policy allows now. Another customer's
//! subscription answers 404.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::{CancellationRequestTag, PlanTag, ScheduledChangeTag, SubscriptionTag};
use tenure_store::repo::subscriptions::SubscriptionFilter;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, if_match, ok_versioned};
use crate::auth::AuthenticatedCustomer;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Query};
use crate::state::AppState;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::retention::PresentedOfferDto;
use tenure_app::dto::subscriptions::{
    ChangePlan, ChangeQuantity, CreatePortalSubscription, CreatedPortalSubscriptionDto,
    PauseSubscription, PlanChangePreviewDto, PortalCancelSubscription, PortalSubscriptionDto,
    PortalSubscriptionFilterParams, QuantityChangePreviewDto, SendNow, SendNowPreviewDto,
    SubscriptionPreviewDto,
};
use tenure_app::dto::support::{CancellationRequestDto, PortalCancelResult};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::subscriptions::{self as svc, Action, ActionOutcome, Scope};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(subscribe)
        .service(preview_subscription)
        .service(list_subscriptions)
        .service(get_subscription)
        .service(pause_subscription)
        .service(resume_subscription)
        .service(cancel_subscription)
        .service(preview_plan_change)
        .service(change_plan)
        .service(preview_quantity_change)
        .service(change_quantity)
        .service(skip_renewal)
        .service(unskip_renewal)
        .service(preview_send_now)
        .service(send_now)
        .service(remove_scheduled_change)
        .service(withdraw_cancellation_request);
}

fn scope(auth: AuthenticatedCustomer) -> Scope {
    Scope::customer(auth.merchant, auth.customer)
}

async fn render(
    state: &AppState,
    auth: AuthenticatedCustomer,
    outcome: &ActionOutcome,
) -> ApiResult<HttpResponse> {
    let view = svc::portal_outcome_view(&state.app, auth.merchant, outcome).await?;
    Ok(ok_versioned(
        auth.mode(),
        &view,
        outcome.subscription.updated_at,
    ))
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    auth: AuthenticatedCustomer,
    id: &str,
    action: Action,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(id, "subscription")?;
    let outcome = svc::act(&state.app, scope(auth), id, if_match(req), action).await?;
    render(state, auth, &outcome).await
}

/// Subscribe to a plan (see GET /v1/portal/plans); its `trial_days` start a trial.
/// Without a trial, the first period is invoiced at once and charged to the default
/// payment method in this request: paid, the subscription is `active`; declined or
/// waiting for the cardholder's authentication (3-D Secure), it is `incomplete` and
/// `next_action` says what to do (confirm the payment, or give another card); it becomes
/// `active` when the invoice is paid, or `incomplete_expired` after 23 hours.
#[utoipa::path(tag = "Portal", request_body = CreatePortalSubscription,
    responses((status = 201, description = "The new subscription, after its first payment", body = CreatedPortalSubscriptionDto)))]
#[post("/subscriptions")]
async fn subscribe(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    body: Json<CreatePortalSubscription>,
) -> ApiResult<HttpResponse> {
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id")?;
    let s = svc::create_with_code(
        &state.app,
        scope(auth),
        auth.customer,
        plan,
        body.0.quantity,
        body.0.promotion_code.as_deref(),
        body.0.shipping_address_id.as_deref(),
    )
    .await?;
    let view = CreatedPortalSubscriptionDto {
        subscription: svc::portal_view(&state.app, auth.merchant, &s.subscription).await?,
        next_action: s.next_action.as_ref().map(Into::into),
    };
    Ok(created(auth.mode(), &view, s.subscription.updated_at))
}

/// The first invoice subscribing to a plan would create, with what a `promotion_code`
/// takes off (or the refusal subscribing with it would get), without subscribing.
#[utoipa::path(operation_id = "portal_preview_subscription", tag = "Portal", request_body = CreatePortalSubscription,
    responses((status = 200, description = "The first invoice", body = SubscriptionPreviewDto)))]
#[post("/subscriptions/preview")]
async fn preview_subscription(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    body: Json<CreatePortalSubscription>,
) -> ApiResult<HttpResponse> {
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id")?;
    let preview = svc::preview_subscription(
        &state.app,
        scope(auth),
        auth.customer,
        plan,
        body.0.quantity,
        body.0.promotion_code.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// The customer's subscriptions, newest first.
#[utoipa::path(operation_id = "portal_list_subscriptions", tag = "Portal", params(ListParams, PortalSubscriptionFilterParams),
    responses((status = 200, description = "A page of subscriptions", body = ListResponse<PortalSubscriptionDto>)))]
#[get("/subscriptions")]
async fn list_subscriptions(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    page: Query<ListParams>,
    filter: Query<PortalSubscriptionFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<SubscriptionTag>()?;
    let filter = SubscriptionFilter {
        status: filter.status.map(Into::into),
        ..SubscriptionFilter::default()
    };
    let subs = svc::list(&state.app, scope(auth), filter, page).await?;
    let views = svc::portal_views(&state.app, auth.merchant, &subs.items).await?;
    let next_cursor = if subs.has_more {
        subs.items.last().map(|s| s.subscription.id.to_string())
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(
        ListResponse {
            data: views,
            has_more: subs.has_more,
            next_cursor,
        }
        .in_mode(auth.mode()),
    ))
}

/// One of the customer's subscriptions, with its available actions.
#[utoipa::path(operation_id = "portal_get_subscription", tag = "Portal", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[get("/subscriptions/{id}")]
async fn get_subscription(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let (s, view) = svc::portal_get(&state.app, scope(auth), id).await?;
    Ok(ok_versioned(auth.mode(), &view, s.updated_at))
}

/// Pause (if the policy allows): starts `now`, at `period_end` (default) or `at` a date;
/// ends `at` a date, `after_cycles`, or open-ended within `max_pause_days`.
#[utoipa::path(operation_id = "portal_pause_subscription", tag = "Portal", request_body = PauseSubscription,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/pause")]
async fn pause_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: OptionalJson<PauseSubscription>,
) -> ApiResult<HttpResponse> {
    run(&req, &state, auth, &id, Action::Pause(body.0.to_domain())).await
}

/// Resume a pause the customer started.
#[utoipa::path(operation_id = "portal_resume_subscription", tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/resume")]
async fn resume_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    run(&req, &state, auth, &id, Action::Resume).await
}

/// Skip the next renewal not skipped yet, where `available_actions.skip` offers it (it
/// names the renewal): no invoice and no charge for that period, the subscription stays
/// active. 422 `skip_not_allowed` when the product's policy forbids skipping,
/// `too_many_consecutive_skips` beyond its `max_consecutive_skips`; 409 with the state's
/// code otherwise. Honours `If-Match`.
#[utoipa::path(operation_id = "portal_skip_renewal", tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/skip")]
async fn skip_renewal(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    run(&req, &state, auth, &id, Action::Skip).await
}

/// Take back the last skip, where `available_actions.unskip` is true: that renewal bills
/// again. 409 `no_renewal_skipped` when none is skipped; 422 `skip_not_removable` for a
/// skip the merchant made. Honours `If-Match`.
#[utoipa::path(operation_id = "portal_unskip_renewal", tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/unskip")]
async fn unskip_renewal(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    run(&req, &state, auth, &id, Action::Unskip).await
}

/// What a send now would invoice now (the period, the lines, the total), without doing
/// it; refused as the send now would be.
#[utoipa::path(operation_id = "portal_preview_send_now", tag = "Portal", request_body = SendNow,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The invoice a send now would create", body = SendNowPreviewDto)))]
#[post("/subscriptions/{id}/send_now/preview")]
async fn preview_send_now(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: OptionalJson<SendNow>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let anchor = body.0.anchor.map(Into::into).unwrap_or_default();
    let mode = auth.mode();
    let preview = svc::preview_send_now(&state.app, scope(auth), id, anchor, None).await?;
    Ok(HttpResponse::Ok().json(InMode::new(mode, preview)))
}

/// Bring the next renewal forward to now ("send now"), where `available_actions.send_now`
/// offers it: with `anchor: keep` (default) the next period is invoiced and charged now
/// (for a product that ships, its order made now) and the renewal due at its start bills
/// nothing; with `reset` a period starts now, invoiced in full, and later renewals follow
/// it (the rest of the current period is not credited). The invoice is collected like a
/// renewal's (a decline makes the subscription `past_due`). 422 `send_now_not_allowed`
/// when the product's policy forbids it; 409 with the state's code otherwise
/// (`subscription_paused`, `cancellation_pending`, `renewal_skipped`, `already_sent_now`,
/// …). Honours `If-Match`.
#[utoipa::path(operation_id = "portal_send_now", tag = "Portal", request_body = SendNow,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/send_now")]
async fn send_now(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: OptionalJson<SendNow>,
) -> ApiResult<HttpResponse> {
    let anchor = body.0.anchor.map(Into::into).unwrap_or_default();
    run(&req, &state, auth, &id, Action::SendNow(anchor)).await
}

/// Cancel under the product's policy. `request` mode: send a `reason` (and optionally a
/// `message`); a cancellation request and a support ticket are opened and the
/// subscription runs until the request's `effective_at`; the response lists the
/// `retention_offers` the customer is eligible for, best first. `immediate` mode: send
/// `"confirm": true`.
#[utoipa::path(operation_id = "portal_cancel_subscription", tag = "Portal", request_body = PortalCancelSubscription,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription and, in request mode, the request", body = PortalCancelResult)))]
#[post("/subscriptions/{id}/cancel")]
async fn cancel_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: OptionalJson<PortalCancelSubscription>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let (outcome, offers) = tenure_app::retention::portal_cancel(
        &state.app,
        scope(auth),
        id,
        if_match(&req),
        body.0.to_domain(),
    )
    .await?;
    cancel_result(&state, auth, &outcome, offers).await
}

async fn cancel_result(
    state: &AppState,
    auth: AuthenticatedCustomer,
    outcome: &ActionOutcome,
    retention_offers: Option<Vec<PresentedOfferDto>>,
) -> ApiResult<HttpResponse> {
    let view = svc::portal_outcome_view(&state.app, auth.merchant, outcome).await?;
    Ok(ok_versioned(
        auth.mode(),
        &PortalCancelResult {
            subscription: view,
            cancellation_request: outcome
                .cancellation_request
                .as_ref()
                .map(CancellationRequestDto::from),
            retention_offers,
        },
        outcome.subscription.updated_at,
    ))
}

/// What a plan change would do and cost now.
#[utoipa::path(operation_id = "portal_preview_plan_change", tag = "Portal", request_body = ChangePlan,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The preview", body = PlanChangePreviewDto)))]
#[post("/subscriptions/{id}/change_plan/preview")]
async fn preview_plan_change(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<ChangePlan>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id")?;
    let preview = svc::preview_plan_change_with_code(
        &state.app,
        scope(auth),
        id,
        plan,
        body.0.promotion_code.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// Change plan (to a plan the policy lists, of the subscription's product or of a product
/// it may swap to, in its currency: `available_actions.change_plan`): upgrades now with
/// proration, downgrades at period end.
#[utoipa::path(operation_id = "portal_change_plan", tag = "Portal", request_body = ChangePlan,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/change_plan")]
async fn change_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<ChangePlan>,
) -> ApiResult<HttpResponse> {
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id")?;
    let Some(code) = body.0.promotion_code.as_deref() else {
        return run(&req, &state, auth, &id, Action::ChangePlan(plan)).await;
    };
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let outcome = svc::change_plan_with_code(
        &state.app,
        scope(auth),
        id,
        if_match(&req),
        plan,
        code,
        None,
    )
    .await?;
    render(&state, auth, &outcome).await
}

/// What a quantity change would do and cost now: it applies at once, prorated like a
/// plan change (credit at the old quantity, charge at the new one, for the rest of the
/// period), billed on the next renewal invoice.
#[utoipa::path(operation_id = "portal_preview_quantity_change", tag = "Portal", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The preview", body = QuantityChangePreviewDto)))]
#[post("/subscriptions/{id}/change_quantity/preview")]
async fn preview_quantity_change(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<ChangeQuantity>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let preview =
        svc::preview_quantity_change(&state.app, scope(auth), id, body.0.quantity).await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// Change the quantity within the product's limits (422 `validation_failed` on `quantity`
/// outside them, `quantity_change_not_allowed` when the product allows one value, 409
/// `same_quantity`). Applies at once with proration. Honours `If-Match`.
#[utoipa::path(operation_id = "portal_change_quantity", tag = "Portal", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto)))]
#[post("/subscriptions/{id}/change_quantity")]
async fn change_quantity(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
    body: Json<ChangeQuantity>,
) -> ApiResult<HttpResponse> {
    run(
        &req,
        &state,
        auth,
        &id,
        Action::ChangeQuantity(body.0.quantity),
    )
    .await
}

/// Remove a scheduled change the customer asked for (`removable: true`).
#[utoipa::path(operation_id = "portal_remove_scheduled_change", tag = "Portal",
    params(("id" = String, Path, description = "Subscription id (sub_…)"),
           ("change_id" = String, Path, description = "Scheduled change id (sch_…)")),
    responses((status = 200, description = "The subscription", body = PortalSubscriptionDto),
        (status = 409, description = "The subscription's state no longer allows it",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/subscriptions/{id}/scheduled_changes/{change_id}")]
async fn remove_scheduled_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let change = parse_id::<ScheduledChangeTag>(&path.1, "scheduled_change")?;
    run(
        &req,
        &state,
        auth,
        &path.0,
        Action::RemoveScheduledChange(change),
    )
    .await
}

/// Withdraw a pending cancellation request: the subscription carries on.
#[utoipa::path(tag = "Portal",
    params(("id" = String, Path, description = "Cancellation request id (creq_…)")),
    responses((status = 200, description = "The subscription and the withdrawn request", body = PortalCancelResult)))]
#[post("/cancellation_requests/{id}/withdraw")]
async fn withdraw_cancellation_request(
    state: web::Data<AppState>,
    auth: AuthenticatedCustomer,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<CancellationRequestTag>(&id, "cancellation_request")?;
    let outcome =
        svc::act_on_request(&state.app, scope(auth), id, Action::WithdrawRequest(id)).await?;
    cancel_result(&state, auth, &outcome, None).await
}
