//! Acting on subscriptions: subscribe, each lifecycle action (pause, resume, cancel,
//! change plan, remove a scheduled change) and the merchant's answers to cancellation
//! requests, each in one transaction; and the plan-change preview.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::DomainError;
use tenure_domain::billing::invoice::InvoiceStatus;
use tenure_domain::billing::proration::ProrationLineKind;
use tenure_domain::error::Refusal;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, GenerateId, MerchantId, PlanId, SubscriptionId,
};
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    Actor, ChangeType, NewSubscription, PlanChangeRequest, ScheduledChangeKind, Subscription,
    SubscriptionStatus, TargetProduct, Transition,
};
use tenure_domain::support::CancellationRequest;
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::customers as customer_repo;
use tenure_store::repo::payment_methods as pm_repo;
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription};
use tenure_store::repo::support as support_repo;

use super::persist::{persist, persist_system, subscription_event};
use super::plans::{
    policy_of, purchasable_plan, purchasable_plan_of_product, quantity_limits_of, terms_of,
};
use super::requests::WithdrawnAs;
use super::scope::{Action, ActionOutcome, Scope, subscription_not_found, visible};
use crate::App;
use crate::billing::charging::NextAction;
use crate::coupons::RedemptionFor;
use crate::dto::subscriptions::{
    PlanChangePreviewDto, QuantityChangePreviewDto, SubscriptionDto, SubscriptionPreviewDto,
};
use crate::error::{AppError, AppResult};
use crate::events::EventBatch;
use crate::test_clocks::now_for_customer;
use crate::versions::check_if_match;

const MESSAGE_MAX: usize = tenure_domain::support::MAX_MESSAGE_CHARS;

/// Subscribes a customer to a plan at `now`; the plan's `trial_days` start a trial.
/// See [`subscribe`], which also says what the frontend must do next.
pub async fn create(
    state: &App,
    scope: Scope,
    customer: CustomerId,
    plan_id: PlanId,
) -> AppResult<StoredSubscription> {
    create_with_quantity(state, scope, customer, plan_id, None).await
}

/// [`create`] with `quantity` units (default: the product's `min_quantity`), within the
/// product's limits (else 422 on `quantity`).
pub async fn create_with_quantity(
    state: &App,
    scope: Scope,
    customer: CustomerId,
    plan_id: PlanId,
    quantity: Option<u32>,
) -> AppResult<StoredSubscription> {
    Ok(
        create_with_code(state, scope, customer, plan_id, quantity, None, None)
            .await?
            .subscription,
    )
}

/// A signup's answer: the subscription as it stands after its first payment, and what the
/// frontend must do when that payment did not go through.
pub struct Subscribed {
    pub subscription: StoredSubscription,
    pub next_action: Option<NextAction>,
}

/// [`create_with_code`] without a code.
pub async fn subscribe(
    state: &App,
    scope: Scope,
    customer: CustomerId,
    plan_id: PlanId,
    quantity: Option<u32>,
) -> AppResult<Subscribed> {
    create_with_code(state, scope, customer, plan_id, quantity, None, None).await
}

/// Subscribes a customer to a plan at `now` (the customer's test clock time, if any), with
/// `quantity` units (default: the product's `min_quantity`, else 422 on `quantity`),
/// redeeming `promotion_code`: its discount applies from the first invoice (409 with the
/// refusal's code when the code does not apply, and then nothing is created). The plan's
/// `trial_days` start a trial. Without one, the first period is invoiced in the same
/// transaction (drawing on the customer's credit balance first), and, when the customer
/// has a default payment method and something is due, paid in this request as Stripe
/// does: the subscription starts `incomplete` and is `active` when this returns if the
/// charge succeeded (or the balance paid the whole invoice); a decline or a card asking
/// for authentication leaves it `incomplete` with a [`NextAction`]; an unknown outcome
/// leaves it `incomplete` until the charge is resolved. A customer without a payment
/// method is not refused: the subscription starts `active`, its first invoice open, and is
/// declined into dunning by the engine unless a card added meanwhile pays it
/// (docs/lifecycle.md). A merchant names the customer in its body; a customer is the
/// session's, so a session whose customer does not exist under its merchant finds no
/// customer (404), not a field. `shipping_address_id` names an address of the customer's
/// book (422 on the field otherwise) the subscription ships to; a customer subscribing
/// in the portal to a product that ships must give one (422 `shipping_address_id`),
/// while a merchant may set it afterwards (docs/orders.md).
pub async fn create_with_code(
    state: &App,
    scope: Scope,
    customer: CustomerId,
    plan_id: PlanId,
    quantity: Option<u32>,
    promotion_code: Option<&str>,
    shipping_address_id: Option<&str>,
) -> AppResult<Subscribed> {
    debug_assert!(
        scope.customer.is_none_or(|c| c == customer),
        "a customer subscribes only themselves"
    );
    let merchant = scope.merchant;
    let mut conn = state.db.conn().await?;
    let now = now_for_customer(&mut conn, merchant, customer, state.now_micros()).await?;
    let (stored, prepared) = conn
        .transaction(async |conn| {
            // Locked, so that an erasure cannot slip in between this check and the insert.
            let found = customer_repo::get(conn, merchant, customer, true)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound if scope.customer.is_some() => {
                        AppError::NotFound("customer")
                    }
                    StoreError::NotFound => AppError::field("customer_id", "no such customer"),
                    other => other.into(),
                })?;
            found.ensure_not_erased()?;
            let (plan, product) = purchasable_plan_of_product(conn, merchant, plan_id).await?;
            let limits = product.quantity_limits;
            let quantity = quantity.unwrap_or(limits.min());
            limits.check(quantity)?;
            let shipping_address = match shipping_address_id {
                Some(raw) => Some(crate::addresses::own_address(conn, merchant, customer, raw).await?),
                None if product.shippable && scope.customer.is_some() => {
                    return Err(AppError::field(
                        "shipping_address_id",
                        "is required: the product ships; add an address first (POST /v1/portal/addresses)",
                    ));
                }
                None => None,
            };
            let terms = terms_of(&plan)?;
            let card = pm_repo::default_for_customer(conn, merchant, customer).await?;
            let something_due = !terms.price.times(quantity)?.is_zero();
            let Transition {
                subscription,
                events,
                ..
            } = Subscription::create(
                NewSubscription {
                    id: SubscriptionId::generate(),
                    plan: terms,
                    trial_days: plan.trial_days,
                    quantity,
                    pay_at_signup: card.is_some() && something_due,
                },
                now,
            )?;
            let mut stored = StoredSubscription {
                subscription,
                customer_id: customer,
                product_id: plan.product_id,
                created_at: now,
                updated_at: now,
            };
            repo::insert(conn, merchant, &stored).await?;
            // Before the first invoice, whose order takes it.
            if let Some(address) = &shipping_address {
                tenure_store::repo::addresses::set_shipping_address(
                    conn,
                    merchant,
                    stored.subscription.id,
                    address.id,
                )
                .await?;
            }
            // Before the first invoice, which applies it.
            let discount = match promotion_code {
                Some(code) => Some(
                    crate::coupons::redeem_in_tx(
                        conn,
                        merchant,
                        code,
                        RedemptionFor {
                            customer,
                            subscription: Some(stored.subscription.id),
                            plan: &plan,
                        },
                        stored.subscription.id,
                        now,
                    )
                    .await?,
                ),
                None => None,
            };
            let view = SubscriptionDto::render(&stored, Actor::Merchant);
            let mut batch = EventBatch::default();
            let mut first_invoice = None;
            for event in &events {
                subscription_event(&mut batch, event, &view, None, stored.updated_at)?;
                // A subscription without a trial pays for its first period up front.
                if let Some(period) = crate::billing::invoicing::period_to_invoice(event) {
                    first_invoice = crate::billing::invoicing::invoice_period_in_tx(
                        conn, merchant, &stored, period, now,
                    )
                    .await?;
                }
            }
            if let Some(discount) = &discount {
                crate::coupons::discount_applied(&mut batch, discount)?;
            }
            batch.record(conn, merchant).await?;
            let incomplete = stored.subscription.status == SubscriptionStatus::Incomplete;
            let prepared = match (first_invoice, card) {
                // The balance (or a discount) paid it all: nothing to charge.
                (Some(invoice), _) if incomplete && invoice.status == InvoiceStatus::Paid => {
                    let t = stored.subscription.activate()?;
                    stored = persist_system(conn, merchant, &stored, t, now).await?;
                    None
                }
                (Some(invoice), Some(card)) if incomplete => Some(
                    crate::billing::charging::prepare_signup(
                        conn, state, merchant, invoice, card, now,
                    )
                    .await?,
                ),
                _ => None,
            };
            Ok::<_, AppError>((stored, prepared))
        })
        .await?;
    let Some(prepared) = prepared else {
        return Ok(Subscribed {
            subscription: stored,
            next_action: None,
        });
    };
    let next_action =
        crate::billing::charging::charge_signup(state, &mut conn, &prepared, now).await?;
    let subscription = repo::get(&mut conn, merchant, stored.subscription.id, false).await?;
    Ok(Subscribed {
        subscription,
        next_action,
    })
}

/// Runs `action` on subscription `id` for `caller`, in one transaction.
pub async fn act(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    action: Action,
) -> AppResult<ActionOutcome> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        act_in_tx(conn, scope, id, if_match.as_deref(), &action, now).await
    })
    .await
}

/// [`act`] for a merchant, whose request may override the product's policy with a
/// reason (`overriding`): it then acts as an agent allowed beyond the policy, and the
/// limits the action exceeds are recorded as one override naming the agent, in the same
/// transaction (`override.created`). An override that exceeds nothing records nothing.
/// A pause, a cancellation, a plan change, a skip or unskip, a send now and the removal of
/// a scheduled change take one.
pub async fn act_overriding(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    action: Action,
    overriding: Option<crate::dto::credits::OverrideRequest>,
) -> AppResult<ActionOutcome> {
    let Some(overriding) = overriding else {
        return act(state, scope, id, if_match, action).await;
    };
    let reason = override_reason(scope, &action, &overriding)?;
    let scope = scope.overriding();
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let outcome = act_in_tx(conn, scope, id, if_match.as_deref(), &action, now).await?;
        // At the time the action was taken (its test clock's, read with the locked row).
        record_override(conn, scope, &action, &outcome, reason, outcome.now).await?;
        Ok(outcome)
    })
    .await
}

/// Removes the scheduled change `change` of subscription `id` for a merchant, whose
/// request may override the product's policy with `override_reason` (removing a pause's
/// automatic resume lengthens the pause beyond `max_pause_days`), as [`act_overriding`]
/// does; a blank reason is 422 on `override_reason`.
pub async fn remove_change_overriding(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    change: tenure_domain::ids::ScheduledChangeId,
    override_reason: Option<String>,
) -> AppResult<ActionOutcome> {
    let overriding = match override_reason {
        Some(reason) => Some(crate::dto::credits::OverrideRequest {
            reason: tenure_domain::overrides::reason("override_reason", &reason)?,
        }),
        None => None,
    };
    let action = Action::RemoveScheduledChange(change);
    act_overriding(state, scope, id, if_match, action, overriding).await
}

/// The reason of an override of `action` (422 on `override.reason` without one, or on
/// `override` where none is taken).
fn override_reason(
    scope: Scope,
    action: &Action,
    overriding: &crate::dto::credits::OverrideRequest,
) -> AppResult<String> {
    let reason = crate::overrides::reason_of(overriding)?;
    override_kind(action)?;
    if scope.customer.is_some() {
        return Err(AppError::field("override", "is for a merchant's agents"));
    }
    Ok(reason)
}

fn override_kind(action: &Action) -> AppResult<tenure_domain::overrides::OverrideKind> {
    use tenure_domain::overrides::OverrideKind;
    match action {
        Action::Pause(_) => Ok(OverrideKind::Pause),
        Action::Cancel(_) => Ok(OverrideKind::Cancel),
        Action::ChangePlan(_) => Ok(OverrideKind::PlanChange),
        Action::Skip | Action::Unskip => Ok(OverrideKind::Skip),
        Action::SendNow(_) => Ok(OverrideKind::SendNow),
        // Removing a pause's automatic resume lengthens the pause.
        Action::RemoveScheduledChange(_) => Ok(OverrideKind::Pause),
        _ => Err(AppError::field("override", "is not taken by this action")),
    }
}

/// Records the limits `outcome` exceeded, if any, as the agent's override.
async fn record_override(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    action: &Action,
    outcome: &ActionOutcome,
    reason: String,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if outcome.overridden.is_empty() {
        return Ok(());
    }
    let grant = crate::overrides::Grant {
        customer: outcome.subscription.customer_id,
        subscription: Some(outcome.subscription.subscription.id),
        kind: override_kind(action)?,
        amount: None,
        limits: outcome.overridden.clone(),
    };
    crate::overrides::record(conn, scope.merchant, grant, reason, now).await?;
    Ok(())
}

/// Runs `action` on subscription `id` in the caller's transaction, at `now`, or at its
/// test clock's time when the customer is on one (read with the locked row).
pub async fn act_in_tx(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<&str>,
    action: &Action,
    now: DateTime<Utc>,
) -> AppResult<ActionOutcome> {
    let merchant = scope.merchant;
    let acting = scope.acting();
    let actor = acting.actor;
    let repo::LockedForChange {
        subscription: before,
        policy,
        has_discounts,
        clock_time,
    } = repo::lock_with_policy(conn, merchant, id)
        .await
        .map_err(subscription_not_found)?;
    // A customer on a test clock lives in the clock's time, read with the locked row.
    let now = clock_time.unwrap_or(now);
    if !scope.sees(&before) {
        return Err(AppError::NotFound("subscription"));
    }
    check_if_match(if_match, before.updated_at)?;
    let sub = &before.subscription;
    let mut withdrawn_as = if actor.is_customer() {
        WithdrawnAs::Withdrawn
    } else {
        WithdrawnAs::Declined(None)
    };
    let mut transition = match action {
        Action::Pause(request) => sub.pause(request, &policy, acting, now)?,
        Action::Resume => sub.resume(actor, now)?,
        Action::Cancel(request) => sub.cancel(request, &policy, acting, now)?,
        Action::ChangePlan(plan_id) => {
            let request = plan_change_request(conn, merchant, &before, *plan_id).await?;
            sub.change_plan(&request, &policy, acting, now)?
        }
        Action::ChangeQuantity(quantity) => {
            let limits = quantity_limits_of(conn, merchant, before.product_id).await?;
            sub.change_quantity(*quantity, limits, actor, now)?
        }
        Action::Skip => sub.skip_renewal(&policy, acting, now)?,
        Action::Unskip => sub.unskip_renewal(actor)?,
        Action::SendNow(anchor) => sub.send_now(*anchor, &policy, acting, now)?,
        Action::RemoveScheduledChange(change) => {
            sub.remove_scheduled_change_as(*change, &policy, acting)?
        }
        Action::WithdrawRequest(request_id) => {
            pending_request_of(conn, scope, sub, *request_id).await?;
            sub.withdraw_cancellation(actor)?
        }
        Action::ApproveRequest(request_id) => {
            let request = pending_request_of(conn, scope, sub, *request_id).await?;
            sub.approve_cancellation(request.reason, request.message.clone(), now)?
        }
        Action::DeclineRequest(request_id, message) => {
            pending_request_of(conn, scope, sub, *request_id).await?;
            let message = tenure_domain::text::clean("message", message, MESSAGE_MAX, true)?;
            withdrawn_as = WithdrawnAs::Declined(Some(message));
            let change = sub
                .pending(ChangeType::Cancel)
                .map(|c| c.id)
                .ok_or_else(|| sub_invalid(Refusal::NoCancellationPending))?;
            sub.remove_scheduled_change(change, Actor::Merchant)?
        }
    };
    // After the merchant's edit cutoff, the order of the next renewal is locked for those
    // held to it; an overriding agent's change records the cutoff among the limits it
    // exceeded (docs/orders.md, "The edit cutoff").
    if edits_orders(action)
        && let Some(limit) = crate::orders::check_order_cutoff(
            conn,
            merchant,
            &before,
            &transition.subscription,
            now,
            acting.held,
        )
        .await?
        && !transition.overridden.contains(&limit)
    {
        transition.overridden.push(limit);
    }
    // The next renewal billed again after all (a skip taken back or dropped) is announced
    // like any other, even if its notice window passed while it was skipped.
    let period_end = transition.subscription.current_period.end;
    let next_renewal_restored = transition.events.iter().any(|e| {
        matches!(e, tenure_domain::subscription::SubscriptionEvent::RenewalSkipRemoved {
            renewal_at, ..
        } if *renewal_at == period_end)
    });
    let outcome = persist(conn, merchant, &before, transition, withdrawn_as, now).await?;
    if next_renewal_restored {
        tenure_store::repo::renewals::forget_notice_sent(conn, merchant, id, period_end).await?;
    }
    Ok(ActionOutcome {
        may_have_discounts: has_discounts || grants_discount(action),
        ..outcome
    })
}

/// Whether `action` edits what a renewal ships, and so is held to the edit cutoff of the
/// next order. Ending, pausing or resuming the subscription is not an edit of an order
/// (the merchant's cancellation and pause policies govern those).
pub(crate) fn edits_orders(action: &Action) -> bool {
    match action {
        Action::ChangePlan(_)
        | Action::ChangeQuantity(_)
        | Action::Skip
        | Action::Unskip
        | Action::SendNow(_)
        | Action::RemoveScheduledChange(_) => true,
        Action::Pause(_)
        | Action::Resume
        | Action::Cancel(_)
        | Action::WithdrawRequest(_)
        | Action::ApproveRequest(_)
        | Action::DeclineRequest(..) => false,
    }
}

/// Whether `action` can give the subscription a discount. None of them does (accepting
/// a retention offer does, elsewhere); spelled out so that a new action has to answer.
pub(crate) fn grants_discount(action: &Action) -> bool {
    match action {
        Action::Pause(_)
        | Action::Resume
        | Action::Cancel(_)
        | Action::ChangePlan(_)
        | Action::ChangeQuantity(_)
        | Action::Skip
        | Action::Unskip
        | Action::SendNow(_)
        | Action::RemoveScheduledChange(_)
        | Action::WithdrawRequest(_)
        | Action::ApproveRequest(_)
        | Action::DeclineRequest(..) => false,
    }
}

pub(crate) fn sub_invalid(refusal: Refusal) -> AppError {
    AppError::Domain(DomainError::refused(
        "settle the cancellation request of",
        refusal,
    ))
}

/// The pending cancellation request `id` of `sub`, which must be the one its scheduled
/// cancellation belongs to.
pub(crate) async fn pending_request_of(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    sub: &Subscription,
    id: CancellationRequestId,
) -> AppResult<CancellationRequest> {
    let request = support_repo::get_request(conn, scope.merchant, id, true)
        .await
        .map_err(AppError::from_store("cancellation_request"))?;
    if request.subscription_id != sub.id || scope.customer.is_some_and(|c| c != request.customer_id)
    {
        return Err(AppError::NotFound("cancellation_request"));
    }
    request.check_pending("settle").map_err(|_| {
        AppError::conflict(
            "cancellation_request_not_pending",
            format!("the cancellation request is {}", request.status),
        )
    })?;
    let belongs = sub.pending(ChangeType::Cancel).is_some_and(|c| {
        matches!(c.kind, ScheduledChangeKind::Cancel { cancellation_request_id: Some(r), .. } if r == id)
    });
    if !belongs {
        return Err(AppError::conflict(
            "cancellation_request_not_pending",
            "the subscription's pending cancellation is not this request",
        ));
    }
    Ok(request)
}

pub(crate) async fn plan_change_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    plan_id: PlanId,
) -> AppResult<PlanChangeRequest> {
    let (plan, product) = purchasable_plan_of_product(conn, merchant, plan_id).await?;
    let target = if plan.product_id == sub.product_id {
        TargetProduct::Same
    } else {
        let own = catalog_repo::get_product(conn, merchant, sub.product_id, false).await?;
        if own.swappable_product_ids.contains(&plan.product_id) {
            TargetProduct::Swappable(product.quantity_limits)
        } else {
            TargetProduct::Unrelated
        }
    };
    Ok(PlanChangeRequest {
        to: terms_of(&plan)?,
        product: target,
    })
}

/// Runs an action that targets a cancellation request (withdraw, approve, decline).
pub async fn act_on_request(
    state: &App,
    scope: Scope,
    request_id: CancellationRequestId,
    action: Action,
) -> AppResult<ActionOutcome> {
    let mut conn = state.db.conn().await?;
    let request = support_repo::get_request(&mut conn, scope.merchant, request_id, false)
        .await
        .map_err(AppError::from_store("cancellation_request"))?;
    if scope.customer.is_some_and(|c| c != request.customer_id) {
        return Err(AppError::NotFound("cancellation_request"));
    }
    let now = now_for_customer(
        &mut conn,
        scope.merchant,
        request.customer_id,
        state.now_micros(),
    )
    .await?;
    let outcome = conn
        .transaction(async |conn| {
            act_in_tx(conn, scope, request.subscription_id, None, &action, now).await
        })
        .await?;
    Ok(outcome)
}

/// What a send now with `anchor` would invoice now, without doing it: held to the policy
/// as the send now would be (a merchant's `overriding` as by [`act_overriding`], recording
/// nothing), refused as it would be.
pub async fn preview_send_now(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    anchor: tenure_domain::subscription::SendNowAnchor,
    overriding: Option<&crate::dto::credits::OverrideRequest>,
) -> AppResult<crate::dto::subscriptions::SendNowPreviewDto> {
    let scope = match overriding {
        Some(overriding) => {
            override_reason(scope, &Action::SendNow(anchor), overriding)?;
            scope.overriding()
        }
        None => scope,
    };
    let merchant = scope.merchant;
    let mut conn = state.db.conn().await?;
    let s = visible(&mut conn, scope, id).await?;
    let now = now_for_customer(&mut conn, merchant, s.customer_id, state.now_micros()).await?;
    let policy = policy_of(&mut conn, merchant, s.product_id).await?;
    let sub = &s.subscription;
    let period = sub.check_can_send_now(&policy, scope.acting(), anchor, now)?;
    // Refused after the next order's edit cutoff, as the send now would be.
    let sent = sub.send_now(anchor, &policy, scope.acting(), now)?;
    crate::orders::check_order_cutoff(
        &mut conn,
        merchant,
        &s,
        &sent.subscription,
        now,
        scope.acting().held,
    )
    .await?;
    let plan = catalog_repo::get_plan(&mut conn, merchant, sub.plan.plan_id).await?;
    let pending =
        tenure_store::repo::pending_items::uninvoiced(&mut conn, merchant, id, false).await?;
    let discounts =
        tenure_store::repo::discounts::active_for_subscription(&conn, merchant, id).await?;
    let mut draft = crate::billing::invoicing::renewal_lines(
        &plan.name,
        &sub.plan,
        sub.quantity,
        period,
        &pending,
        &discounts,
    )?;
    // The invoice draws on the customer's credit balance when it is created: as it
    // stands now, as the upcoming invoice shows it.
    let currency = sub.plan.price.currency;
    let balance = tenure_store::repo::credits::balances(&mut conn, merchant, s.customer_id)
        .await?
        .into_iter()
        .map(|b| b.balance)
        .find(|b| b.currency == currency)
        .unwrap_or(Money::zero(currency));
    let totals = tenure_domain::billing::credit::apply_customer_balance(
        currency,
        &mut draft.lines,
        balance,
    )?
    .totals;
    Ok(crate::dto::subscriptions::SendNowPreviewDto {
        anchor: anchor.into(),
        period: period.into(),
        invoiced_at: now,
        next_renewal_at: period.end,
        lines: draft.lines.iter().map(Into::into).collect(),
        subtotal: totals.subtotal.into(),
        discount: totals.discount.into(),
        total: totals.total.into(),
        credit_applied: totals.credit_applied.into(),
        amount_due: totals.amount_due.into(),
    })
}

/// What changing the quantity to `quantity` would do now, without doing it.
pub async fn preview_quantity_change(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    quantity: u32,
) -> AppResult<QuantityChangePreviewDto> {
    let mut conn = state.db.conn().await?;
    let s = visible(&mut conn, scope, id).await?;
    let now =
        now_for_customer(&mut conn, scope.merchant, s.customer_id, state.now_micros()).await?;
    let limits = quantity_limits_of(&mut conn, scope.merchant, s.product_id).await?;
    let preview = s
        .subscription
        .preview_quantity_change(quantity, limits, now)?;
    let name = if preview.proration.is_some() {
        catalog_repo::get_plan(&mut conn, scope.merchant, s.subscription.plan.plan_id)
            .await?
            .name
    } else {
        String::new()
    };
    let next_invoice_at = s.subscription.current_period.end;
    Ok(QuantityChangePreviewDto::render(
        &preview,
        next_invoice_at,
        |line| {
            let q = match line.kind {
                ProrationLineKind::Credit => preview.from,
                ProrationLineKind::Charge => preview.to,
            };
            crate::billing::prorations::line_description(
                line,
                &crate::billing::prorations::at_quantity(&name, q),
            )
        },
    ))
}

/// What changing to `plan_id` would do now, without doing it.
pub async fn preview_plan_change(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    plan_id: PlanId,
) -> AppResult<PlanChangePreviewDto> {
    preview_plan_change_with_code(state, scope, id, plan_id, None).await
}

/// Changes the plan redeeming `promotion_code`: the code is checked against the new plan
/// and its discount granted before the change, so that an invoice the change makes at
/// once (another cadence) applies it. A refused code refuses the change (409 with the
/// refusal's code), and a refused change redeems nothing. A merchant's `overriding`
/// is taken as by [`act_overriding`].
pub async fn change_plan_with_code(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    plan_id: PlanId,
    promotion_code: &str,
    overriding: Option<crate::dto::credits::OverrideRequest>,
) -> AppResult<ActionOutcome> {
    let action = Action::ChangePlan(plan_id);
    let (scope, reason) = match &overriding {
        Some(overriding) => (
            scope.overriding(),
            Some(override_reason(scope, &action, overriding)?),
        ),
        None => (scope, None),
    };
    let now = state.now_micros();
    let merchant = scope.merchant;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        // The subscription's row first, as every change of it takes it; the code's and
        // the coupon's rows after.
        let before = repo::get(conn, merchant, id, true)
            .await
            .map_err(subscription_not_found)?;
        if !scope.sees(&before) {
            return Err(AppError::NotFound("subscription"));
        }
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let now = now_for_customer(conn, merchant, before.customer_id, now).await?;
        let plan = purchasable_plan(conn, merchant, plan_id).await?;
        let discount = crate::coupons::redeem_in_tx(
            conn,
            merchant,
            promotion_code,
            RedemptionFor {
                customer: before.customer_id,
                subscription: Some(id),
                plan: &plan,
            },
            id,
            now,
        )
        .await?;
        let outcome = act_in_tx(conn, scope, id, None, &action, now).await?;
        crate::coupons::discount_applied_event(conn, merchant, &discount).await?;
        if let Some(reason) = reason {
            record_override(conn, scope, &action, &outcome, reason, now).await?;
        }
        Ok(ActionOutcome {
            may_have_discounts: true,
            ..outcome
        })
    })
    .await
}

/// [`preview_plan_change_with_code`] for a merchant whose request may override the
/// policy with a reason (as the change would, by [`act_overriding`]): the preview then
/// shows what the change the override allows would do.
pub async fn preview_plan_change_overriding(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    plan_id: PlanId,
    promotion_code: Option<&str>,
    overriding: Option<&crate::dto::credits::OverrideRequest>,
) -> AppResult<PlanChangePreviewDto> {
    let scope = match overriding {
        Some(overriding) => {
            override_reason(scope, &Action::ChangePlan(plan_id), overriding)?;
            scope.overriding()
        }
        None => scope,
    };
    preview_plan_change_with_code(state, scope, id, plan_id, promotion_code).await
}

/// [`preview_plan_change`] with what `promotion_code` would take off the invoice the
/// change bills (`discount`), or the refusal the change would get for it.
pub async fn preview_plan_change_with_code(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    plan_id: PlanId,
    promotion_code: Option<&str>,
) -> AppResult<PlanChangePreviewDto> {
    let mut conn = state.db.conn().await?;
    let s = visible(&mut conn, scope, id).await?;
    let now =
        now_for_customer(&mut conn, scope.merchant, s.customer_id, state.now_micros()).await?;
    let policy = policy_of(&mut conn, scope.merchant, s.product_id).await?;
    let request = plan_change_request(&mut conn, scope.merchant, &s, plan_id).await?;
    let preview = s
        .subscription
        .preview_plan_change(&request, &policy, scope.acting(), now)?;
    let discount = match promotion_code {
        Some(code) => {
            let plan = purchasable_plan(&mut conn, scope.merchant, plan_id).await?;
            let redeemable = crate::coupons::check_code(
                &mut conn,
                scope.merchant,
                code,
                RedemptionFor {
                    customer: s.customer_id,
                    subscription: Some(id),
                    plan: &plan,
                },
                false,
                now,
            )
            .await?;
            // The invoice the change bills: the new period's (another cadence), else the
            // next renewal's at the new plan; either takes the pending prorations.
            let new_cadence = request.to.cadence != s.subscription.plan.cadence;
            let currency = plan.price.currency;
            let mut subtotal = 0i64;
            if let Some(p) = &preview.proration {
                for line in &p.lines {
                    subtotal = subtotal
                        .checked_add(line.amount.amount)
                        .ok_or(DomainError::Overflow)?;
                }
            }
            if !(new_cadence && preview.proration.is_some()) {
                subtotal = subtotal
                    .checked_add(plan.price.times(s.subscription.quantity)?.amount)
                    .ok_or(DomainError::Overflow)?;
            }
            let pending =
                tenure_store::repo::pending_items::uninvoiced(&mut conn, scope.merchant, id, false)
                    .await?;
            for item in pending.iter().filter(|i| i.amount.currency == currency) {
                subtotal = subtotal
                    .checked_add(item.amount.amount)
                    .ok_or(DomainError::Overflow)?;
            }
            let existing =
                tenure_store::repo::discounts::active_for_subscription(&conn, scope.merchant, id)
                    .await?;
            Some(crate::coupons::preview_discount(
                &redeemable,
                Money::new(subtotal, currency),
                &existing,
                now,
            )?)
        }
        None => None,
    };
    let rendered =
        render_plan_change_preview(&mut conn, scope, &s, plan_id, &request, &preview).await?;
    Ok(PlanChangePreviewDto {
        discount,
        ..rendered
    })
}

async fn render_plan_change_preview(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    s: &StoredSubscription,
    plan_id: PlanId,
    request: &PlanChangeRequest,
    preview: &tenure_domain::subscription::PlanChangePreview,
) -> AppResult<PlanChangePreviewDto> {
    let from = s.subscription.plan.plan_id;
    let new_cadence = request.to.cadence != s.subscription.plan.cadence;
    let names = if preview.proration.is_some() {
        let from_name = catalog_repo::get_plan(conn, scope.merchant, from).await?;
        let to_name = catalog_repo::get_plan(conn, scope.merchant, plan_id).await?;
        (from_name.name, to_name.name)
    } else {
        Default::default()
    };
    Ok(PlanChangePreviewDto::render(
        plan_id.to_string(),
        preview,
        Money::zero(s.subscription.plan.price.currency),
        s.subscription.current_period.end,
        new_cadence,
        |line| {
            let name = if line.plan_id == from {
                &names.0
            } else {
                &names.1
            };
            match line.kind {
                // Another cadence starts a period of the new plan, invoiced as such.
                ProrationLineKind::Charge if new_cadence => {
                    crate::billing::invoicing::plan_line_description(name, line.period)
                }
                _ => crate::billing::prorations::line_description(line, name),
            }
        },
    ))
}

/// The first invoice subscribing `customer` to `plan_id` would create (with
/// `promotion_code`'s discount, or its refusal), without subscribing.
pub async fn preview_subscription(
    state: &App,
    scope: Scope,
    customer: CustomerId,
    plan_id: PlanId,
    quantity: Option<u32>,
    promotion_code: Option<&str>,
) -> AppResult<SubscriptionPreviewDto> {
    let merchant = scope.merchant;
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    customer_repo::get(&mut conn, merchant, customer, false)
        .await
        .map_err(|e| match e {
            StoreError::NotFound if scope.customer.is_some() => AppError::NotFound("customer"),
            StoreError::NotFound => AppError::field("customer_id", "no such customer"),
            other => other.into(),
        })?;
    let (plan, product) = purchasable_plan_of_product(&mut conn, merchant, plan_id).await?;
    let limits = product.quantity_limits;
    let quantity = quantity.unwrap_or(limits.min());
    limits.check(quantity)?;
    let terms = terms_of(&plan)?;
    let created = Subscription::create(
        NewSubscription {
            id: SubscriptionId::generate(),
            plan: terms,
            trial_days: plan.trial_days,
            quantity,
            // The preview shows the invoice, not whether it is paid in the request.
            pay_at_signup: false,
        },
        now,
    )?
    .subscription;
    let (period, trial_end) = match created.trial_end {
        Some(end) => {
            let (period, _) = crate::billing::invoicing::next_invoice_period(&created)
                .ok_or_else(|| AppError::internal("a trial without a first period"))?;
            (period, Some(end))
        }
        None => (created.current_period, None),
    };
    let mut draft =
        crate::billing::invoicing::renewal_lines(&plan.name, &terms, quantity, period, &[], &[])?;
    let currency = plan.price.currency;
    let subtotal = tenure_domain::billing::invoice::totals(currency, &draft.lines)?.subtotal;
    let discount = match promotion_code {
        Some(code) => {
            let redeemable = crate::coupons::check_code(
                &mut conn,
                merchant,
                code,
                RedemptionFor {
                    customer,
                    subscription: None,
                    plan: &plan,
                },
                false,
                now,
            )
            .await?;
            let preview = crate::coupons::preview_discount(&redeemable, subtotal, &[], now)?;
            draft
                .lines
                .push(tenure_domain::billing::discount::described_discount_line(
                    Some(&redeemable.description()),
                    &redeemable.coupon.terms.value,
                    Money::new(preview.amount_off.amount, currency),
                )?);
            Some(preview)
        }
        None => None,
    };
    let totals = tenure_domain::billing::invoice::totals(currency, &draft.lines)?;
    Ok(SubscriptionPreviewDto {
        plan_id: plan.id.to_string(),
        quantity,
        trial_end,
        invoiced_at: period.start,
        period: period.into(),
        lines: draft.lines.iter().map(Into::into).collect(),
        subtotal: totals.subtotal.into(),
        discount: totals.discount.into(),
        total: totals.total.into(),
        promotion_code: discount,
    })
}
