//! Subscriptions for merchants (secret key): subscribe, read, list, and every lifecycle
//! action. Merchants are bound by the state rules only, not by the portal policy.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use tenure_app::dto::InMode;
use tenure_domain::ids::{CustomerTag, PlanTag, ScheduledChangeTag, SubscriptionTag};
use tenure_store::repo::subscriptions::SubscriptionFilter;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{created, if_match, ok_versioned};
use crate::auth::AuthenticatedMerchant;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Query};
use crate::middleware::audit::names_agent;
use crate::state::AppState;
use tenure_app::dto::common::{parse_field_id, parse_id};
use tenure_app::dto::credits::OverrideRequest;
use tenure_app::dto::subscriptions::{
    CancelSubscription, ChangeQuantity, CreateSubscription, CreatedSubscriptionDto,
    MerchantChangePlan, MerchantOverride, MerchantPauseSubscription, MerchantSendNow,
    PlanChangePreviewDto, QuantityChangePreviewDto, RemoveChangeParams, SendNowPreviewDto,
    SubscriptionDto, SubscriptionFilterParams, SubscriptionPreviewDto,
};
use tenure_app::dto::{ListParams, ListResponse};
use tenure_app::subscriptions::{self as svc, Action, ActionOutcome, Scope};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_subscription)
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
        .service(remove_scheduled_change);
}

async fn render(
    state: &AppState,
    auth: AuthenticatedMerchant,
    outcome: &ActionOutcome,
) -> ApiResult<HttpResponse> {
    let view = svc::merchant_outcome_view(&state.app, auth.0, outcome).await?;
    Ok(ok_versioned(
        auth.mode(),
        &view,
        outcome.subscription.updated_at,
    ))
}

/// Subscribe a customer to a plan. The plan must be active and of an active product;
/// its `trial_days` start a trial. Without a trial, the first period is invoiced at once
/// and, when the customer has a default payment method, charged in this request: paid,
/// the subscription is `active`; declined or waiting for the cardholder's authentication,
/// it is `incomplete` (no access) and `next_action` says what the frontend must do; it
/// becomes `active` when the invoice is paid, or `incomplete_expired` after 23 hours. A
/// customer without a payment method gets an `active` subscription whose open first
/// invoice the renewal worker charges (a free plan's is paid at once).
#[utoipa::path(tag = "Subscriptions", request_body = CreateSubscription,
    responses((status = 201, description = "The new subscription, after its first payment", body = CreatedSubscriptionDto)))]
#[post("/subscriptions")]
async fn create_subscription(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateSubscription>,
) -> ApiResult<HttpResponse> {
    let mut v = tenure_app::error::Validator::default();
    let customer = parse_field_id::<CustomerTag>(&body.0.customer_id, "customer_id");
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id");
    if customer.is_err() {
        v.fail("customer_id", "must be an id starting with cus_");
    }
    if plan.is_err() {
        v.fail("plan_id", "must be an id starting with plan_");
    }
    v.finish()?;
    let quantity = body.0.quantity;
    let s = svc::create_with_code(
        &state.app,
        Scope::merchant(auth.0),
        customer?,
        plan?,
        quantity,
        body.0.promotion_code.as_deref(),
        body.0.shipping_address_id.as_deref(),
    )
    .await?;
    let view = CreatedSubscriptionDto {
        subscription: svc::merchant_view(&state.app, auth.0, &s.subscription).await?,
        next_action: s.next_action.as_ref().map(Into::into),
    };
    Ok(created(auth.mode(), &view, s.subscription.updated_at))
}

/// The first invoice subscribing a customer to a plan would create, with what a
/// `promotion_code` takes off (or the refusal subscribing with it would get), without
/// subscribing.
#[utoipa::path(tag = "Subscriptions", request_body = CreateSubscription,
    responses((status = 200, description = "The first invoice", body = SubscriptionPreviewDto)))]
#[post("/subscriptions/preview")]
async fn preview_subscription(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    body: Json<CreateSubscription>,
) -> ApiResult<HttpResponse> {
    let mut v = tenure_app::error::Validator::default();
    let customer = parse_field_id::<CustomerTag>(&body.0.customer_id, "customer_id");
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id");
    if customer.is_err() {
        v.fail("customer_id", "must be an id starting with cus_");
    }
    if plan.is_err() {
        v.fail("plan_id", "must be an id starting with plan_");
    }
    v.finish()?;
    let preview = svc::preview_subscription(
        &state.app,
        Scope::merchant(auth.0),
        customer?,
        plan?,
        body.0.quantity,
        body.0.promotion_code.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// List subscriptions, newest first, optionally filtered by status, customer or plan.
#[utoipa::path(tag = "Subscriptions", params(ListParams, SubscriptionFilterParams),
    responses((status = 200, description = "A page of subscriptions", body = ListResponse<SubscriptionDto>)))]
#[get("/subscriptions")]
async fn list_subscriptions(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    page: Query<ListParams>,
    filter: Query<SubscriptionFilterParams>,
) -> ApiResult<HttpResponse> {
    let page = page.page::<SubscriptionTag>()?;
    let filter = filter.into_inner();
    let filter = SubscriptionFilter {
        status: filter.status.map(Into::into),
        customer: filter
            .customer_id
            .as_deref()
            .map(|c| parse_field_id::<CustomerTag>(c, "customer_id"))
            .transpose()?,
        plan: filter
            .plan_id
            .as_deref()
            .map(|p| parse_field_id::<PlanTag>(p, "plan_id"))
            .transpose()?,
    };
    let subs = svc::list(&state.app, Scope::merchant(auth.0), filter, page).await?;
    let views = svc::merchant_views(&state.app, auth.0, &subs.items).await?;
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

/// Get a subscription.
#[utoipa::path(tag = "Subscriptions", params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[get("/subscriptions/{id}")]
async fn get_subscription(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let s = svc::get(&state.app, Scope::merchant(auth.0), id).await?;
    let view = svc::merchant_view(&state.app, auth.0, &s).await?;
    Ok(ok_versioned(auth.mode(), &view, s.updated_at))
}

async fn run(
    req: &HttpRequest,
    state: &AppState,
    auth: AuthenticatedMerchant,
    id: &str,
    action: Action,
) -> ApiResult<HttpResponse> {
    run_overriding(req, state, auth, id, action, None).await
}

/// The merchant's scope, as an agent when the request names one (`Tenure-Agent`): agents
/// are held to the product's portal policy unless they override it.
fn acting_scope(req: &HttpRequest, auth: &AuthenticatedMerchant) -> Scope {
    Scope::merchant_agent(auth.0, names_agent(req))
}

/// [`run`] with an agent's optional override of the product's policy.
async fn run_overriding(
    req: &HttpRequest,
    state: &AppState,
    auth: AuthenticatedMerchant,
    id: &str,
    action: Action,
    overriding: Option<OverrideRequest>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(id, "subscription")?;
    let outcome = svc::act_overriding(
        &state.app,
        acting_scope(req, &auth),
        id,
        if_match(req),
        action,
        overriding,
    )
    .await?;
    render(state, auth, &outcome).await
}

/// Pause now, at period end (default) or at a date; until a date, after N cycles, or
/// open-ended. A later start is a scheduled change. Honours `If-Match`. A request that
/// names an agent (`Tenure-Agent`) is held to the product's policy as the portal is
/// (`allow_pause`, `max_pause_days`: 422 `pause_not_allowed`, `pause_too_long` with the
/// problem's `limit`) unless it carries `override: {reason}`, which allows the pause and
/// records the limits exceeded as an override (`override.created`); an override without
/// a reason is 422. Without the header the backend is not held to the policy.
#[utoipa::path(tag = "Subscriptions", request_body = MerchantPauseSubscription,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/pause")]
async fn pause_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<MerchantPauseSubscription>,
) -> ApiResult<HttpResponse> {
    let action = Action::Pause(body.0.to_domain());
    run_overriding(&req, &state, auth, &id, action, body.0.overriding).await
}

/// Resume a paused subscription now. Honours `If-Match`.
#[utoipa::path(tag = "Subscriptions",
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/resume")]
async fn resume_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    run(&req, &state, auth, &id, Action::Resume).await
}

/// Cancel now (default), at period end, or at a chosen future `cancel_at` (422 when it is
/// not ahead or more than five years ahead); replaces any pending cancellation. Access
/// ends at the paid-through date unless `access` is `immediately`. Honours `If-Match`.
/// A request that names an agent (`Tenure-Agent`) is held to the product's policy
/// (`allow_cancel`; no end before the one the policy's notice gives a subscriber: 422
/// `cancel_not_allowed`, `cancellation_notice_required`) unless it carries `override:
/// {reason}`, which allows it and records the limits exceeded (`override.created`); an
/// override without a reason is 422. Without the header the backend is not held to it.
#[utoipa::path(tag = "Subscriptions", request_body = CancelSubscription,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/cancel")]
async fn cancel_subscription(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<CancelSubscription>,
) -> ApiResult<HttpResponse> {
    let action = Action::Cancel(body.0.to_domain()?);
    run_overriding(&req, &state, auth, &id, action, body.0.overriding).await
}

/// What a plan change would do and cost now: its timing and the exact proration lines.
/// Held to the policy as the change is (an agent, unless the body overrides it).
#[utoipa::path(tag = "Subscriptions", request_body = MerchantChangePlan,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The preview", body = PlanChangePreviewDto)))]
#[post("/subscriptions/{id}/change_plan/preview")]
async fn preview_plan_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<MerchantChangePlan>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let plan = parse_field_id::<PlanTag>(&body.0.plan_id, "plan_id")?;
    let preview = svc::preview_plan_change_overriding(
        &state.app,
        acting_scope(&req, &auth),
        id,
        plan,
        body.0.promotion_code.as_deref(),
        body.0.overriding.as_ref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// Change plan: upgrades apply now with proration, downgrades at period end (a
/// scheduled change), any change during a trial at once. Honours `If-Match`. A request
/// that names an agent (`Tenure-Agent`) is held to the product's policy
/// (`allow_plan_change`, the plans it offers: 422 `plan_change_not_allowed`,
/// `plan_not_allowed`) unless it carries `override: {reason}`, which allows the switch and
/// records the limits exceeded (`override.created`); an override without a reason is 422.
/// Without the header the backend may switch to any plan of the subscription's product or
/// of a product it may swap to (`swappable_product_ids`; the subscription then belongs to
/// that product). Anyone is refused a plan of another product (422
/// `product_not_swappable`) or in another currency (422 `currency_mismatch`), on `plan_id`.
#[utoipa::path(tag = "Subscriptions", request_body = MerchantChangePlan,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/change_plan")]
async fn change_plan(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<MerchantChangePlan>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let plan = parse_field_id::<PlanTag>(&body.plan_id, "plan_id")?;
    let Some(code) = body.promotion_code.as_deref() else {
        return run_overriding(
            &req,
            &state,
            auth,
            &id,
            Action::ChangePlan(plan),
            body.overriding,
        )
        .await;
    };
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let outcome = svc::change_plan_with_code(
        &state.app,
        acting_scope(&req, &auth),
        id,
        if_match(&req),
        plan,
        code,
        body.overriding,
    )
    .await?;
    render(&state, auth, &outcome).await
}

/// What a quantity change would do and cost now: it applies at once, prorated like a
/// plan change (credit at the old quantity, charge at the new one, for the rest of the
/// period), billed on the next renewal invoice.
#[utoipa::path(tag = "Subscriptions", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The preview", body = QuantityChangePreviewDto)))]
#[post("/subscriptions/{id}/change_quantity/preview")]
async fn preview_quantity_change(
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: Json<ChangeQuantity>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let preview =
        svc::preview_quantity_change(&state.app, Scope::merchant(auth.0), id, body.0.quantity)
            .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// Change the quantity within the product's limits (422 `validation_failed` on `quantity`
/// outside them, `quantity_change_not_allowed` when the product allows one value, 409
/// `same_quantity`). Applies at once with proration. Honours `If-Match`.
#[utoipa::path(tag = "Subscriptions", request_body = ChangeQuantity,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/change_quantity")]
async fn change_quantity(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
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

/// Skip the next renewal not skipped yet: when it comes, the subscription stays `active`
/// and its period advances, with no invoice and no charge (`subscription.renewal_skipped`).
/// Call again to skip the one after; `skipped_renewals` lists them. Only an `active`
/// subscription whose period is running skips (409 with the state's code otherwise, e.g.
/// `renewal_pending`, `cancellation_pending`, `pause_scheduled`, `renewal_sent_now`); 12
/// ahead at most (422 `skip_limit_reached`). A request that names an agent
/// (`Tenure-Agent`) is held to the product's policy as the portal is (`allow_skip`,
/// `max_consecutive_skips`: 422 `skip_not_allowed`, `too_many_consecutive_skips` with the
/// problem's `limit`) and to the next order's edit cutoff (409 `order_edit_cutoff_passed`)
/// unless it carries `override: {reason}`, which allows the skip and records the limits
/// exceeded (`override.created`; the cutoff as `order_cutoff_hours`). Without the header
/// the backend is not held to the policy. Honours `If-Match`.
#[utoipa::path(tag = "Subscriptions", request_body = MerchantOverride,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/skip")]
async fn skip_renewal(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<MerchantOverride>,
) -> ApiResult<HttpResponse> {
    run_overriding(&req, &state, auth, &id, Action::Skip, body.0.overriding).await
}

/// Take back the last skip (`skipped_renewals`' last entry): that renewal bills again
/// (409 `no_renewal_skipped` when none is skipped). No limit of the product's policy holds
/// an unskip, but the next order's edit cutoff holds an agent's (409
/// `order_edit_cutoff_passed`); an `override` is accepted (as for a skip) and records the
/// cutoff when it passes one (`order_cutoff_hours`), nothing otherwise. Honours
/// `If-Match`.
#[utoipa::path(tag = "Subscriptions", request_body = MerchantOverride,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/unskip")]
async fn unskip_renewal(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<MerchantOverride>,
) -> ApiResult<HttpResponse> {
    run_overriding(&req, &state, auth, &id, Action::Unskip, body.0.overriding).await
}

/// What a send now would invoice now (the period, the lines, the total), without doing
/// it; refused and held to the policy as the send now would be (an agent's `override` is
/// taken and records nothing).
#[utoipa::path(tag = "Subscriptions", request_body = MerchantSendNow,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The invoice a send now would create", body = SendNowPreviewDto)))]
#[post("/subscriptions/{id}/send_now/preview")]
async fn preview_send_now(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<MerchantSendNow>,
) -> ApiResult<HttpResponse> {
    let id = parse_id::<SubscriptionTag>(&id, "subscription")?;
    let anchor = body.0.anchor.map(Into::into).unwrap_or_default();
    let preview = svc::preview_send_now(
        &state.app,
        acting_scope(&req, &auth),
        id,
        anchor,
        body.0.overriding.as_ref(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(InMode::new(auth.mode(), preview)))
}

/// Bring the next renewal forward to now ("send now", Recharge's "order now"). With
/// `anchor: keep` (default) the next period of the schedule is invoiced and charged now
/// (for a product that ships, its order is made now) and the renewal due at its start
/// bills nothing (`subscription.renewal_prepaid`), so the one after bills on the old
/// schedule; with `reset` a period starts now, invoiced in full, and later renewals
/// follow it (the rest of the current period is not credited). The invoice is collected
/// by the engine like a renewal's: a decline makes the subscription `past_due` and
/// dunning retries it. 409 with the state's code for anything but a running `active`
/// period (`subscription_paused`, `renewal_pending`, `cancellation_pending`,
/// `pause_scheduled`, `plan_change_scheduled`), `renewal_skipped` (unskip first),
/// `already_sent_now`. A request that names an agent (`Tenure-Agent`) is held to the
/// product's `allow_send_now` (422 `send_now_not_allowed`) and to the next order's edit
/// cutoff (409 `order_edit_cutoff_passed`: a send now moves or empties the locked order)
/// unless it carries `override: {reason}`, which records the limits exceeded
/// (`override.created`). Honours `If-Match`.
#[utoipa::path(tag = "Subscriptions", request_body = MerchantSendNow,
    params(("id" = String, Path, description = "Subscription id (sub_…)")),
    responses((status = 200, description = "The subscription", body = SubscriptionDto)))]
#[post("/subscriptions/{id}/send_now")]
async fn send_now(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    id: web::Path<String>,
    body: OptionalJson<MerchantSendNow>,
) -> ApiResult<HttpResponse> {
    let anchor = body.0.anchor.map(Into::into).unwrap_or_default();
    run_overriding(
        &req,
        &state,
        auth,
        &id,
        Action::SendNow(anchor),
        body.0.overriding,
    )
    .await
}

/// Remove a scheduled change (a pause not yet started, an automatic resume, a pending
/// cancellation, a plan change at period end). Removing the automatic resume of a pause
/// makes it open-ended: a request that names an agent (`Tenure-Agent`) is held to the
/// product's `max_pause_days` (422 `pause_too_long`, `limit: max_pause_days`) unless it
/// gives `override_reason` (a query parameter: a `DELETE` takes no body), which allows it
/// and records the override (`override.created`). Honours `If-Match`.
#[utoipa::path(tag = "Subscriptions",
    params(("id" = String, Path, description = "Subscription id (sub_…)"),
           ("change_id" = String, Path, description = "Scheduled change id (sch_…)"),
           RemoveChangeParams),
    responses((status = 200, description = "The subscription", body = SubscriptionDto),
        (status = 409, description = "The subscription's state no longer allows it",
            body = crate::error::Problem, content_type = "application/problem+json")))]
#[delete("/subscriptions/{id}/scheduled_changes/{change_id}")]
async fn remove_scheduled_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: AuthenticatedMerchant,
    path: web::Path<(String, String)>,
    params: Query<RemoveChangeParams>,
) -> ApiResult<HttpResponse> {
    let change = parse_id::<ScheduledChangeTag>(&path.1, "scheduled_change")?;
    let id = parse_id::<SubscriptionTag>(&path.0, "subscription")?;
    let outcome = svc::remove_change_overriding(
        &state.app,
        acting_scope(&req, &auth),
        id,
        if_match(&req),
        change,
        params.0.override_reason,
    )
    .await?;
    render(&state, auth, &outcome).await
}
