//! Retention offers: merchants define them; a customer who starts a cancellation in the
//! portal is shown those they are eligible for (best first, each recorded as a
//! `presented` outcome); accepting one applies it and withdraws the cancellation in one
//! transaction, declining leaves the cancellation as it is.
//!
//! Eligibility is decided by `tenure_domain::retention` over the customer context
//! (`crate::context::read_snapshot`), computed in the same transaction and state (the request
//! pending) both when offers are presented and when one is accepted, so an offer that was
//! shown stays acceptable unless the merchant changed it or the customer's facts moved.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::context::monthly_amount;
use tenure_domain::ids::{
    CancellationRequestId, GenerateId, MerchantId, OfferOutcomeId, PlanId, RetentionOfferId,
    SubscriptionId,
};
use tenure_domain::money::Money;
use tenure_domain::retention::{
    self as rules, CustomerFacts, Eligibility, MAX_OFFER_NAME_CHARS, OfferKind, OutcomeStatus,
};
use tenure_domain::subscription::{
    Actor, CancelRequest, PauseEnd, PauseRequest, PauseStart, PlanChangeRequest,
    SubscriptionStatus, TargetProduct,
};
use tenure_domain::support::{CancellationRequest, CancellationRequestStatus};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::discounts::{self, DiscountValue, NewDiscount};
use tenure_store::repo::retention::{self as repo, OfferOutcome, StoredOffer};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};
use tenure_store::repo::support as support_repo;
use tenure_store::{Page, PageRequest, StoreError};

use crate::App;
use crate::dto::retention::{
    CreateRetentionOffer, DiscountDto, OfferAcceptedDto, OfferOutcomeDto, PresentedOfferDto,
    RetentionOfferDto, UpdateRetentionOffer,
};
use crate::dto::support::CancellationRequestDto;
use crate::error::{AppError, AppResult};
use crate::error::{Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::subscriptions::{
    Action, ActionOutcome, Scope, act_in_tx, persist_system, policy_of, purchasable_plan, terms_of,
};
use crate::versions::check_if_match;

// ---------------------------------------------------------------------------------------
// Merchant CRUD

async fn render_offers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    offers: &[StoredOffer],
) -> AppResult<Vec<RetentionOfferDto>> {
    let ids: Vec<RetentionOfferId> = offers.iter().map(|o| o.id).collect();
    let stats = repo::stats(conn, merchant, &ids).await?;
    Ok(offers
        .iter()
        .map(|o| RetentionOfferDto::render(o, stats.get(&o.id).copied().unwrap_or_default()))
        .collect())
}

async fn render_offer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    offer: &StoredOffer,
) -> AppResult<RetentionOfferDto> {
    render_offers(conn, merchant, std::slice::from_ref(offer))
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("offer not rendered"))
}

/// Checks an offer's name, kind and eligibility through the domain and against the
/// merchant's catalog: a `switch_plan` target must be an active plan, and plans named in
/// the eligibility must exist and share the target's product and currency (the switch is
/// only ever offered within one product and currency).
async fn validate_offer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    name: &str,
    kind: OfferKind,
    eligibility: Eligibility,
) -> AppResult<(String, OfferKind, Eligibility)> {
    let mut v = Validator::default();
    let name = v.check(text::clean("name", name, MAX_OFFER_NAME_CHARS, false));
    let kind_ok = v.check(kind.validate().map_err(|e| match e {
        tenure_domain::DomainError::Validation { reason, .. } => {
            tenure_domain::DomainError::validation("kind", reason)
        }
        other => other,
    }));
    let eligibility = v.check(eligibility.validated());
    v.finish()?;
    let (name, eligibility) = (checked(name)?, checked(eligibility)?);
    checked(kind_ok)?;
    let mut v = Validator::default();
    let mut target = None;
    if let OfferKind::SwitchPlan { plan_id } = &kind {
        let id: PlanId = plan_id
            .parse()
            .map_err(|_| AppError::field("kind.plan_id", "must be a plan id (plan_…)"))?;
        match purchasable_plan(conn, merchant, id).await {
            Ok(plan) => target = Some(plan),
            Err(AppError::Validation(_)) => v.fail(
                "kind.plan_id",
                "must be an active plan of an active product",
            ),
            Err(other) => return Err(other),
        }
    }
    for (i, raw) in eligibility.plan_ids.iter().enumerate() {
        let field = format!("eligibility.plan_ids[{i}]");
        let Ok(id) = raw.parse::<PlanId>() else {
            v.fail(field, "must be a plan id (plan_…)");
            continue;
        };
        match catalog_repo::get_plan(conn, merchant, id).await {
            Ok(plan) => {
                if let Some(t) = &target
                    && (t.product_id != plan.product_id || t.price.currency != plan.price.currency)
                {
                    v.fail(
                        field,
                        "must be of the same product and currency as the plan switched to",
                    );
                }
            }
            Err(StoreError::NotFound) => v.fail(field, "no such plan"),
            Err(other) => return Err(other.into()),
        }
    }
    v.finish()?;
    Ok((name, kind, eligibility))
}

async fn offer_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &StoredOffer,
    before: Option<&StoredOffer>,
) -> AppResult<()> {
    let after_dto = render_offer(conn, merchant, after).await?;
    let before_dto = match before {
        Some(b) => Some(render_offer(conn, merchant, b).await?),
        None => None,
    };
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "retention_offer",
            resource_id: after.id.to_string(),
            after: &after_dto,
            before: before_dto.as_ref(),
            at: after.updated_at,
        },
    )
    .await
}

pub async fn create_offer(
    state: &App,
    merchant: MerchantId,
    body: CreateRetentionOffer,
) -> AppResult<(RetentionOfferDto, DateTime<Utc>)> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let (name, kind, eligibility) = validate_offer(
            conn,
            merchant,
            &body.name,
            body.kind.clone().into(),
            body.eligibility.clone().into(),
        )
        .await?;
        let offer = StoredOffer {
            id: RetentionOfferId::generate(),
            name,
            kind,
            eligibility,
            active: body.active.unwrap_or(true),
            priority: body.priority,
            created_at: now,
            updated_at: now,
        };
        repo::insert_offer(conn, merchant, &offer).await?;
        offer_event(conn, merchant, "retention_offer.created", &offer, None).await?;
        Ok((
            render_offer(conn, merchant, &offer).await?,
            offer.updated_at,
        ))
    })
    .await
}

pub async fn list_offers(
    state: &App,
    merchant: MerchantId,
    include_inactive: bool,
    page: PageRequest,
) -> AppResult<Page<RetentionOfferDto>> {
    let mut conn = state.db.conn().await?;
    let offers = repo::list_offers(&mut conn, merchant, include_inactive, page).await?;
    let data = render_offers(&mut conn, merchant, &offers.items).await?;
    Ok(Page {
        items: data,
        has_more: offers.has_more,
    })
}

pub async fn get_offer(
    state: &App,
    merchant: MerchantId,
    id: RetentionOfferId,
) -> AppResult<(RetentionOfferDto, DateTime<Utc>)> {
    let mut conn = state.db.conn().await?;
    let offer = repo::get_offer(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("retention_offer"))?;
    Ok((
        render_offer(&mut conn, merchant, &offer).await?,
        offer.updated_at,
    ))
}

pub async fn update_offer(
    state: &App,
    merchant: MerchantId,
    id: RetentionOfferId,
    body: UpdateRetentionOffer,
    if_match: Option<String>,
) -> AppResult<(RetentionOfferDto, DateTime<Utc>)> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_offer(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("retention_offer"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let (name, kind, eligibility) = validate_offer(
            conn,
            merchant,
            body.name.as_deref().unwrap_or(&before.name),
            body.kind
                .clone()
                .map_or_else(|| before.kind.clone(), Into::into),
            body.eligibility
                .clone()
                .map_or_else(|| before.eligibility.clone(), Into::into),
        )
        .await?;
        let mut after = StoredOffer {
            name,
            kind,
            eligibility,
            priority: body.priority.unwrap_or(before.priority),
            active: body.active.unwrap_or(before.active),
            ..before.clone()
        };
        if after == before {
            return Ok((
                render_offer(conn, merchant, &after).await?,
                after.updated_at,
            ));
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_offer(conn, merchant, &after).await?;
        offer_event(
            conn,
            merchant,
            "retention_offer.updated",
            &after,
            Some(&before),
        )
        .await?;
        Ok((
            render_offer(conn, merchant, &after).await?,
            after.updated_at,
        ))
    })
    .await
}

/// Deactivates an offer (it is never shown again; its outcomes stay). Offers are not
/// deleted because their outcomes refer to them.
pub async fn deactivate_offer(
    state: &App,
    merchant: MerchantId,
    id: RetentionOfferId,
    if_match: Option<String>,
) -> AppResult<(RetentionOfferDto, DateTime<Utc>)> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_offer(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("retention_offer"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        if !before.active {
            return Ok((
                render_offer(conn, merchant, &before).await?,
                before.updated_at,
            ));
        }
        let after = StoredOffer {
            active: false,
            updated_at: next_update_time(before.updated_at, now),
            ..before.clone()
        };
        repo::update_offer(conn, merchant, &after).await?;
        offer_event(
            conn,
            merchant,
            "retention_offer.deactivated",
            &after,
            Some(&before),
        )
        .await?;
        Ok((
            render_offer(conn, merchant, &after).await?,
            after.updated_at,
        ))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Eligibility and presentation

/// The monthly price of a subscription's plan (what offer values are measured in).
fn monthly_price(sub: &StoredSubscription) -> Money {
    let plan = &sub.subscription.plan;
    Money::new(
        monthly_amount(
            plan.price.amount,
            plan.cadence.interval(),
            plan.cadence.count(),
        ),
        plan.price.currency,
    )
}

/// The facts eligibility is decided on, from the customer context.
async fn customer_facts(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    request: &CancellationRequest,
    now: DateTime<Utc>,
) -> AppResult<CustomerFacts> {
    let facts = super::context::read_snapshot(conn, merchant, sub.customer_id, now).await?;
    Ok(CustomerFacts {
        tenure_days: facts.tenure_days,
        ltv: facts.ltv_map(),
        tags: facts.customer.tags.clone(),
        segments: facts.segments.clone(),
        reason: Some(request.reason),
        plan_id: sub.subscription.plan.plan_id.to_string(),
        monthly_price: Some(monthly_price(sub)),
        trialing: sub.subscription.status == SubscriptionStatus::Trialing,
    })
}

/// The portal policy an accepted offer runs under: the merchant made the offer, so the
/// product's self-service limits on pausing and switching do not apply to it.
fn offer_policy(
    mut policy: tenure_domain::policy::PortalPolicy,
    switch_to: Option<PlanId>,
) -> tenure_domain::policy::PortalPolicy {
    policy.allow_pause = true;
    policy.max_pause_days = None;
    policy.allow_plan_change = true;
    policy.switchable_plan_ids = switch_to.into_iter().collect();
    policy
}

/// A plan a `switch_plan` offer may move this subscription to: purchasable, of the same
/// product and currency. `None` when it is not (any more).
async fn switch_target(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    plan_id: &str,
) -> AppResult<Option<tenure_domain::catalog::Plan>> {
    let Ok(id) = plan_id.parse::<PlanId>() else {
        return Ok(None);
    };
    match purchasable_plan(conn, merchant, id).await {
        Ok(plan)
            if plan.product_id == sub.product_id
                && plan.price.currency == sub.subscription.plan.price.currency =>
        {
            Ok(Some(plan))
        }
        Ok(_) | Err(AppError::Validation(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Whether the offer can be applied to this subscription once its cancellation is
/// withdrawn, beyond the domain's eligibility: the domain's own `check_can_*` of the
/// action on the state after withdrawal (a trial cannot pause, a scheduled plan change
/// blocks another one), and a plan switch needs a purchasable plan of the same product
/// and currency.
async fn applicable(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    kind: &OfferKind,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let withdrawn = sub
        .subscription
        .withdraw_cancellation(Actor::Customer)
        .map_or_else(|_| sub.subscription.clone(), |t| t.subscription);
    Ok(match kind {
        OfferKind::DiscountPercent { .. } | OfferKind::DiscountAmount { .. } => true,
        OfferKind::PauseInstead { .. } => {
            let base = policy_of(conn, merchant, sub.product_id).await?;
            withdrawn
                .check_can_pause(&offer_policy(base, None), Actor::Customer)
                .is_ok()
        }
        OfferKind::ExtendTrial { .. } => withdrawn.check_can_extend_trial().is_ok(),
        OfferKind::SwitchPlan { plan_id } => {
            let base = policy_of(conn, merchant, sub.product_id).await?;
            match switch_target(conn, merchant, sub, plan_id).await? {
                Some(plan) => {
                    let policy = offer_policy(base, Some(plan.id));
                    withdrawn
                        .check_can_change_plan(&policy, Actor::Customer, now)
                        .and_then(|()| {
                            withdrawn.check_plan_allowed(
                                plan.id,
                                TargetProduct::Same,
                                &policy,
                                Actor::Customer,
                            )
                        })
                        .is_ok()
                }
                None => false,
            }
        }
    })
}

/// The offers the customer of `sub` is eligible for, best first.
async fn eligible_offers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    request: &CancellationRequest,
    now: DateTime<Utc>,
) -> AppResult<Vec<StoredOffer>> {
    let offers = repo::active_offers(conn, merchant).await?;
    if offers.is_empty() {
        return Ok(Vec::new());
    }
    let facts = customer_facts(conn, merchant, sub, request, now).await?;
    let domain: Vec<_> = offers.iter().map(StoredOffer::to_domain).collect();
    let by_id: HashMap<String, &StoredOffer> =
        offers.iter().map(|o| (o.id.to_string(), o)).collect();
    let mut out = Vec::new();
    for ranked in rules::rank(&domain, &facts) {
        let Some(offer) = by_id.get(&ranked.id) else {
            continue;
        };
        if applicable(conn, merchant, sub, &offer.kind, now).await? {
            out.push((*offer).clone());
        }
    }
    Ok(out)
}

/// Presents the eligible offers for a new cancellation request: one `presented` outcome
/// row each, in ranking order.
async fn present_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    request: &CancellationRequest,
    now: DateTime<Utc>,
) -> AppResult<Vec<PresentedOfferDto>> {
    let offers = eligible_offers(conn, merchant, sub, request, now).await?;
    // Outcome ids record the presentation order (ids sort by when they were made).
    let ids: Vec<OfferOutcomeId> = offers.iter().map(|_| OfferOutcomeId::generate()).collect();
    let outcomes: Vec<OfferOutcome> = offers
        .iter()
        .zip(ids)
        .map(|(o, id)| OfferOutcome {
            id,
            offer_id: o.id,
            customer_id: sub.customer_id,
            subscription_id: sub.subscription.id,
            cancellation_request_id: Some(request.id),
            reason: Some(request.reason),
            outcome: OutcomeStatus::Presented,
            created_at: now,
            decided_at: None,
        })
        .collect();
    repo::insert_outcomes(conn, merchant, &outcomes).await?;
    Ok(offers
        .iter()
        .zip(&outcomes)
        .map(|(o, out)| PresentedOfferDto::render(o, out))
        .collect())
}

/// The portal's cancellation: the lifecycle action and, when it opened a cancellation
/// request, the presentation of the eligible offers, in one transaction.
pub async fn portal_cancel(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    request: CancelRequest,
) -> AppResult<(ActionOutcome, Option<Vec<PresentedOfferDto>>)> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let outcome = act_in_tx(
            conn,
            scope,
            id,
            if_match.as_deref(),
            &Action::Cancel(request),
            now,
        )
        .await?;
        // Offers are presented at the time the request was made (its test clock's, read
        // with the locked row).
        let now = outcome.now;
        let offers = match &outcome.cancellation_request {
            Some(r) if r.status == CancellationRequestStatus::Pending => {
                Some(present_in_tx(conn, scope.merchant, &outcome.subscription, r, now).await?)
            }
            _ => None,
        };
        Ok((outcome, offers))
    })
    .await
}

/// The customer's cancellation request `id` (another customer's is a 404).
async fn own_request(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    id: CancellationRequestId,
    for_update: bool,
) -> AppResult<CancellationRequest> {
    let request = support_repo::get_request(conn, scope.merchant, id, for_update)
        .await
        .map_err(AppError::from_store("cancellation_request"))?;
    if scope.customer.is_some_and(|c| c != request.customer_id) {
        return Err(AppError::NotFound("cancellation_request"));
    }
    Ok(request)
}

/// The offers presented for a request and not yet decided, best first.
pub async fn open_offers(
    state: &App,
    scope: Scope,
    request_id: CancellationRequestId,
) -> AppResult<Vec<PresentedOfferDto>> {
    let mut conn = state.db.conn().await?;
    let request = own_request(&mut conn, scope, request_id, false).await?;
    let sub = subs_repo::get(&mut conn, scope.merchant, request.subscription_id, false).await?;
    let outcomes: Vec<OfferOutcome> =
        repo::outcomes_of_request(&mut conn, scope.merchant, request_id, false)
            .await?
            .into_iter()
            .filter(|o| o.outcome == OutcomeStatus::Presented)
            .collect();
    let ids: Vec<RetentionOfferId> = outcomes.iter().map(|o| o.offer_id).collect();
    let offers = repo::offers_by_ids(&mut conn, scope.merchant, &ids).await?;
    let domain: Vec<_> = offers.iter().map(StoredOffer::to_domain).collect();
    let mut order: Vec<_> = domain.iter().collect();
    rules::sort_best_first(&mut order, Some(monthly_price(&sub)));
    let by_id: HashMap<String, &StoredOffer> =
        offers.iter().map(|o| (o.id.to_string(), o)).collect();
    let outcome_of: HashMap<RetentionOfferId, &OfferOutcome> =
        outcomes.iter().map(|o| (o.offer_id, o)).collect();
    Ok(order
        .into_iter()
        .filter_map(|d| {
            let offer = by_id.get(&d.id)?;
            let outcome = outcome_of.get(&offer.id)?;
            Some(PresentedOfferDto::render(offer, outcome))
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Decisions

async fn outcome_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    outcome: &OfferOutcome,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "retention_offer_outcome",
            resource_id: outcome.id.to_string(),
            after: &OfferOutcomeDto::from(outcome),
            before: None,
            at: outcome.decided_at.unwrap_or(outcome.created_at),
        },
    )
    .await
}

/// Marks a presented outcome decided, with its event.
async fn decide(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    outcome: &OfferOutcome,
    status: OutcomeStatus,
    now: DateTime<Utc>,
) -> AppResult<OfferOutcome> {
    repo::decide(conn, merchant, outcome.id, status, now).await?;
    let decided = OfferOutcome {
        outcome: status,
        decided_at: Some(now),
        ..outcome.clone()
    };
    let event_type = match status {
        OutcomeStatus::Accepted => "retention_offer.accepted",
        _ => "retention_offer.declined",
    };
    outcome_event(conn, merchant, event_type, &decided).await?;
    Ok(decided)
}

/// The presented outcome of `offer` for the request: 404 when the offer was never
/// presented for it, 409 when it was already decided.
fn presented_outcome(
    outcomes: &[OfferOutcome],
    offer: RetentionOfferId,
) -> AppResult<&OfferOutcome> {
    let outcome = outcomes
        .iter()
        .find(|o| o.offer_id == offer)
        .ok_or(AppError::NotFound("retention_offer"))?;
    match outcome.outcome {
        OutcomeStatus::Presented => Ok(outcome),
        OutcomeStatus::Accepted => Err(AppError::conflict(
            "retention_offer_already_accepted",
            "this offer was already accepted; nothing was applied again",
        )),
        OutcomeStatus::Declined => Err(AppError::conflict(
            "retention_offer_declined",
            "this offer was declined (or another offer was accepted) for this cancellation request",
        )),
    }
}

/// What accepting an offer did.
pub struct Accepted {
    pub outcome: ActionOutcome,
    pub offer: PresentedOfferDto,
    pub discount: Option<DiscountDto>,
}

/// Accepts a presented offer instead of cancelling, in one transaction: checks it was
/// presented for this request and is still active and eligible, withdraws the
/// cancellation request (as `…/withdraw` does), applies the offer, and marks it accepted
/// and the request's other presented offers declined.
pub async fn accept(
    state: &App,
    scope: Scope,
    request_id: CancellationRequestId,
    offer_id: RetentionOfferId,
) -> AppResult<Accepted> {
    let merchant = scope.merchant;
    let mut conn = state.db.conn().await?;
    let request = own_request(&mut conn, scope, request_id, false).await?;
    let now = crate::test_clocks::now_for_customer(
        &mut conn,
        merchant,
        request.customer_id,
        state.now_micros(),
    )
    .await?;
    conn.transaction(async |conn| {
        // The subscription row first: every mutation of it (and so every accept of an
        // offer of its requests) is serialised behind this lock.
        let sub = subs_repo::get(conn, merchant, request.subscription_id, true).await?;
        let outcomes = repo::outcomes_of_request(conn, merchant, request_id, true).await?;
        let outcome = presented_outcome(&outcomes, offer_id)?.clone();
        let request = own_request(conn, scope, request_id, true).await?;
        if request.status != CancellationRequestStatus::Pending {
            return Err(AppError::conflict(
                "cancellation_request_not_pending",
                format!("the cancellation request is {}", request.status),
            ));
        }
        let offer = repo::get_offer(conn, merchant, offer_id, true)
            .await
            .map_err(AppError::from_store("retention_offer"))?;
        if !offer.active {
            return Err(AppError::conflict(
                "retention_offer_inactive",
                "the merchant withdrew this offer",
            ));
        }
        let facts = customer_facts(conn, merchant, &sub, &request, now).await?;
        if !rules::is_eligible(&offer.to_domain(), &facts)
            || !applicable(conn, merchant, &sub, &offer.kind, now).await?
        {
            return Err(AppError::conflict(
                "retention_offer_not_eligible",
                "the customer is no longer eligible for this offer",
            ));
        }
        let withdrawn = act_in_tx(
            conn,
            scope,
            sub.subscription.id,
            None,
            &Action::WithdrawRequest(request_id),
            now,
        )
        .await?;
        let (subscription, discount) =
            apply(conn, merchant, &withdrawn.subscription, &offer, now).await?;
        let accepted = decide(conn, merchant, &outcome, OutcomeStatus::Accepted, now).await?;
        for other in outcomes
            .iter()
            .filter(|o| o.id != outcome.id && o.outcome == OutcomeStatus::Presented)
        {
            decide(conn, merchant, other, OutcomeStatus::Declined, now).await?;
        }
        Ok(Accepted {
            outcome: ActionOutcome {
                subscription,
                cancellation_request: withdrawn.cancellation_request,
                may_have_discounts: true,
                overridden: Vec::new(),
                now,
            },
            offer: PresentedOfferDto::render(&offer, &accepted),
            discount: discount.as_ref().map(DiscountDto::from),
        })
    })
    .await
}

/// The discount an accepted discount offer grants (applied by the next invoices).
async fn grant_discount(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &tenure_domain::subscription::Subscription,
    offer: &StoredOffer,
    value: DiscountValue,
    cycles: u32,
    now: DateTime<Utc>,
) -> AppResult<discounts::StoredDiscount> {
    let new = NewDiscount {
        subscription_id: sub.id,
        offer_id: Some(offer.id.uuid()),
        value,
        cycles,
    };
    let granted = discounts::grant(conn, merchant, new, now).await?;
    crate::coupons::discount_applied_event(conn, merchant, &granted).await?;
    Ok(granted)
}

/// Applies an accepted offer to the subscription (its cancellation already withdrawn).
/// The merchant made the offer, so the product's portal policy does not limit it (a
/// pause longer than `max_pause_days`, a switch to a plan not listed as switchable);
/// the state rules still apply, and the customer remains the actor (they may resume
/// the pause early, for instance).
async fn apply(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    offer: &StoredOffer,
    now: DateTime<Utc>,
) -> AppResult<(StoredSubscription, Option<discounts::StoredDiscount>)> {
    let s = &sub.subscription;
    let transition = match &offer.kind {
        OfferKind::DiscountPercent { percent, cycles } => {
            let value = DiscountValue::Percent(*percent);
            let d = grant_discount(conn, merchant, s, offer, value, *cycles, now).await?;
            return Ok((sub.clone(), Some(d)));
        }
        OfferKind::DiscountAmount { amount, cycles } => {
            let value = DiscountValue::Amount(*amount);
            let d = grant_discount(conn, merchant, s, offer, value, *cycles, now).await?;
            return Ok((sub.clone(), Some(d)));
        }
        OfferKind::PauseInstead { days } => {
            let policy = offer_policy(policy_of(conn, merchant, sub.product_id).await?, None);
            let until = now
                .checked_add_signed(chrono::TimeDelta::days(i64::from(*days)))
                .ok_or_else(|| AppError::internal("pause end out of range"))?;
            let request = PauseRequest {
                start: PauseStart::Now,
                end: PauseEnd::At { date: until },
                on_resume: Default::default(),
            };
            s.pause(&request, &policy, Actor::Customer, now)?
        }
        OfferKind::SwitchPlan { plan_id } => {
            let plan = switch_target(conn, merchant, sub, plan_id)
                .await?
                .ok_or_else(|| {
                    AppError::conflict(
                        "retention_offer_not_eligible",
                        "the plan of this offer is no longer available",
                    )
                })?;
            let policy = offer_policy(
                policy_of(conn, merchant, sub.product_id).await?,
                Some(plan.id),
            );
            let request = PlanChangeRequest {
                to: terms_of(&plan)?,
                // `switch_target` takes plans of the subscription's product only.
                product: TargetProduct::Same,
            };
            s.change_plan(&request, &policy, Actor::Customer, now)?
        }
        OfferKind::ExtendTrial { days } => s.extend_trial(*days, now)?,
    };
    let after = persist_system(conn, merchant, sub, transition, now).await?;
    Ok((after, None))
}

/// Declines a presented offer; the cancellation request stays as it is.
pub async fn decline(
    state: &App,
    scope: Scope,
    request_id: CancellationRequestId,
    offer_id: RetentionOfferId,
) -> AppResult<PresentedOfferDto> {
    let merchant = scope.merchant;
    let mut conn = state.db.conn().await?;
    let request = own_request(&mut conn, scope, request_id, false).await?;
    let now = crate::test_clocks::now_for_customer(
        &mut conn,
        merchant,
        request.customer_id,
        state.now_micros(),
    )
    .await?;
    conn.transaction(async |conn| {
        // Locks in the order every subscription mutation takes them (subscription, then
        // outcomes), so a decline and an accept of the same request cannot deadlock.
        subs_repo::get(conn, merchant, request.subscription_id, true).await?;
        let outcomes = repo::outcomes_of_request(conn, merchant, request.id, true).await?;
        let outcome = presented_outcome(&outcomes, offer_id)?;
        let declined = decide(conn, merchant, outcome, OutcomeStatus::Declined, now).await?;
        let offer = repo::get_offer(conn, merchant, offer_id, false)
            .await
            .map_err(AppError::from_store("retention_offer"))?;
        Ok(PresentedOfferDto::render(&offer, &declined))
    })
    .await
}

/// Renders an acceptance for the portal.
pub async fn render_accepted(
    state: &App,
    merchant: MerchantId,
    accepted: Accepted,
) -> AppResult<OfferAcceptedDto> {
    let subscription =
        super::subscriptions::portal_view(state, merchant, &accepted.outcome.subscription).await?;
    let request = accepted
        .outcome
        .cancellation_request
        .as_ref()
        .ok_or_else(|| AppError::internal("withdrawn request missing"))?;
    Ok(OfferAcceptedDto {
        subscription,
        cancellation_request: CancellationRequestDto::from(request),
        offer: accepted.offer,
        discount: accepted.discount,
    })
}
