//! The subscription lifecycle for merchants and customers: subscribe, pause, resume,
//! cancel (request or immediate), change plan, remove scheduled changes, and the
//! cancellation requests with their support tickets.
//!
//! Every mutation runs in one transaction: lock the subscription row, check `If-Match`,
//! apply the domain transition under the product's portal policy, save the new state
//! (which rewrites its scheduled-change rows), record each domain event, and apply the
//! events' side effects on cancellation requests and tickets.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::TryFutureExt;
use futures_util::future::try_join;
use tenure_domain::DomainError;
use tenure_domain::billing::period::Cadence;
use tenure_domain::billing::proration::ProrationLineKind;
use tenure_domain::catalog::Plan;
use tenure_domain::error::Refusal;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, GenerateId, MerchantId, PlanId, ProductId,
    ScheduledChangeId, SubscriptionId, TicketId, TicketMessageId,
};
use tenure_domain::money::Money;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::{
    Actor, CancelRequest, ChangeType, NewSubscription, PauseRequest, PlanChangeRequest, PlanTerms,
    RemovalReason, ScheduledChangeKind, Subscription, SubscriptionEvent, Transition,
    available_actions,
};
use tenure_domain::support::{
    CancellationRequest, CancellationRequestStatus, MessageAuthor, SupportTicket, TicketChannel,
    TicketMessage, TicketStatus,
};
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::customers as customer_repo;
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription, SubscriptionFilter};
use tenure_store::repo::support as support_repo;
use tenure_store::{Page, PageRequest, StoreError};

use super::portal_terms::PortalTerms;
use super::{EventBatch, EventDraft, check_if_match, next_update_time, record_event};
use crate::dto::subscriptions::{PlanChangePreviewDto, PortalSubscriptionDto, SubscriptionDto};
use crate::dto::support::{CancellationRequestDto, SupportTicketDto};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Who is acting: a merchant (server to server) or one of its customers (portal), whose
/// view is limited to their own subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub merchant: MerchantId,
    pub customer: Option<CustomerId>,
}

impl Caller {
    pub fn merchant(merchant: MerchantId) -> Self {
        Self {
            merchant,
            customer: None,
        }
    }

    pub fn customer(merchant: MerchantId, customer: CustomerId) -> Self {
        Self {
            merchant,
            customer: Some(customer),
        }
    }

    pub fn actor(&self) -> Actor {
        if self.customer.is_some() {
            Actor::Customer
        } else {
            Actor::Merchant
        }
    }

    /// Whether this caller may see `s`; another customer's subscription is a 404.
    fn sees(&self, s: &StoredSubscription) -> bool {
        self.customer.is_none_or(|c| c == s.customer_id)
    }
}

/// A lifecycle action on one subscription.
#[derive(Debug, Clone)]
pub enum Action {
    Pause(PauseRequest),
    Resume,
    Cancel(CancelRequest),
    ChangePlan(PlanId),
    RemoveScheduledChange(ScheduledChangeId),
    WithdrawRequest(CancellationRequestId),
    ApproveRequest(CancellationRequestId),
    DeclineRequest(CancellationRequestId, String),
}

/// The result of an action: the subscription after it, and the cancellation request it
/// created or changed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub subscription: StoredSubscription,
    pub cancellation_request: Option<CancellationRequest>,
    /// False only when the subscription had no discount before the action and the
    /// action grants none: its response then skips reading discounts.
    pub may_have_discounts: bool,
}

/// Now, to the microsecond PostgreSQL keeps, so a response and a later read agree.
pub(crate) fn now_of(state: &AppState) -> DateTime<Utc> {
    truncate(state.now())
}

pub(crate) fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

const MESSAGE_MAX: usize = tenure_domain::support::MAX_MESSAGE_CHARS;

fn subscription_not_found(err: StoreError) -> ApiError {
    ApiError::from_store("subscription")(err)
}

/// The terms of `plan` for a subscription.
pub(crate) fn terms_of(plan: &Plan) -> ApiResult<PlanTerms> {
    let cadence = Cadence::new(plan.interval, plan.interval_count)?;
    Ok(PlanTerms::new(plan.id, plan.price, cadence)?)
}

/// Loads a plan a subscription may start on or switch to: active, of an active product.
pub(crate) async fn purchasable_plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan_id: PlanId,
) -> ApiResult<Plan> {
    let plan = catalog_repo::get_plan(conn, merchant, plan_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::field("plan_id", "no such plan"),
            other => other.into(),
        })?;
    let product = catalog_repo::get_product(conn, merchant, plan.product_id, false).await?;
    if !plan.active || product.archived_at.is_some() {
        return Err(ApiError::field(
            "plan_id",
            "the plan is not active (or its product is archived)",
        ));
    }
    Ok(plan)
}

pub(crate) async fn policy_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> ApiResult<PortalPolicy> {
    Ok(catalog_repo::get_product(conn, merchant, product, false)
        .await?
        .portal_policy)
}

/// Adds the outbox event of a subscription's domain event to `batch`: `after` and
/// `before` are the subscription as its merchant sees it after and before the change.
fn subscription_event(
    batch: &mut EventBatch,
    event: &SubscriptionEvent,
    after: &SubscriptionDto,
    before: Option<&SubscriptionDto>,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    batch.add(EventDraft {
        event_type: event.event_type(),
        resource_type: "subscription",
        resource_id: after.id.clone(),
        after,
        before,
        at,
    })
}

async fn request_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    request: &CancellationRequest,
) -> ApiResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "cancellation_request",
            resource_id: request.id.to_string(),
            after: &CancellationRequestDto::from(request),
            before: None,
            at: request.updated_at,
        },
    )
    .await
}

async fn ticket_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    ticket: &SupportTicket,
) -> ApiResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "support_ticket",
            resource_id: ticket.id.to_string(),
            after: &SupportTicketDto::render(ticket, None),
            before: None,
            at: ticket.updated_at,
        },
    )
    .await
}

/// Adds a message to a ticket and moves it to `status` (if given), with its event.
pub(crate) async fn post_to_ticket(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ticket_id: TicketId,
    author: MessageAuthor,
    body: String,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) -> ApiResult<SupportTicket> {
    let mut ticket = support_repo::get_ticket(conn, merchant, ticket_id, true)
        .await
        .map_err(ApiError::from_store("support_ticket"))?;
    support_repo::insert_message(
        conn,
        merchant,
        &TicketMessage {
            id: TicketMessageId::generate(),
            ticket_id,
            author,
            body,
            created_at: now,
        },
    )
    .await?;
    if let Some(status) = status {
        ticket.status = status;
    }
    ticket.updated_at = next_update_time(ticket.updated_at, now);
    support_repo::update_ticket(conn, merchant, &ticket).await?;
    ticket_event(conn, merchant, "support_ticket.updated", &ticket).await?;
    Ok(ticket)
}

/// Moves a cancellation request to `status` and resolves its ticket with `note`.
async fn settle_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CancellationRequestId,
    status: CancellationRequestStatus,
    note: (MessageAuthor, String),
    now: DateTime<Utc>,
) -> ApiResult<CancellationRequest> {
    let mut request = support_repo::get_request(conn, merchant, id, true).await?;
    if request.status != CancellationRequestStatus::Pending {
        return Ok(request);
    }
    request.status = status;
    request.updated_at = next_update_time(request.updated_at, now);
    support_repo::update_request(conn, merchant, &request).await?;
    request_event(
        conn,
        merchant,
        &format!("cancellation_request.{}", status.as_str()),
        &request,
    )
    .await?;
    post_to_ticket(
        conn,
        merchant,
        request.ticket_id,
        note.0,
        note.1,
        Some(TicketStatus::Resolved),
        now,
    )
    .await?;
    Ok(request)
}

/// What happens to a pending request when its cancellation is withdrawn.
#[derive(Debug, Clone)]
enum WithdrawnAs {
    Withdrawn,
    Declined(Option<String>),
}

/// Saves a transition: the new state, its scheduled-change rows, one outbox event per
/// domain event, and the side effects on cancellation requests and tickets. Returns the
/// saved subscription and the cancellation request touched, if any.
async fn persist(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    transition: Transition,
    withdrawn_as: WithdrawnAs,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    let Transition {
        subscription,
        events,
    } = transition;
    let mut after = before.clone();
    if subscription.plan.plan_id != before.subscription.plan.plan_id {
        after.product_id = catalog_repo::get_plan(conn, merchant, subscription.plan.plan_id)
            .await?
            .product_id;
    }
    after.subscription = subscription;
    after.updated_at = next_update_time(before.updated_at, now);
    let after_view = SubscriptionDto::render(&after, Actor::Merchant);
    let before_view = SubscriptionDto::render(before, Actor::Merchant);
    let mut batch = EventBatch::default();
    let mut touched = None;
    for event in &events {
        subscription_event(
            &mut batch,
            event,
            &after_view,
            Some(&before_view),
            after.updated_at,
        )?;
        // A period that began is invoiced in the same transaction (charged by the worker).
        if let Some(period) = super::renewals::period_to_invoice(event) {
            super::renewals::invoice_period_in_tx(conn, merchant, &after, period, now).await?;
        }
        // An immediate plan change bills its proration (pending items, or a new period).
        super::prorations::bill_plan_change_in_tx(conn, merchant, &after, event, now).await?;
        // An ending subscription's pending items go on a final invoice.
        if matches!(event, SubscriptionEvent::Canceled { .. }) {
            super::renewals::invoice_final_items_in_tx(conn, merchant, &after, now).await?;
        }
        touched = match event {
            SubscriptionEvent::CancellationRequested {
                cancellation_request_id,
                reason,
                message,
                effective_at,
            } => Some(
                open_request(
                    conn,
                    merchant,
                    &after,
                    *cancellation_request_id,
                    *reason,
                    message.clone(),
                    *effective_at,
                    now,
                )
                .await?,
            ),
            SubscriptionEvent::Canceled {
                cancellation_request_id: Some(id),
                ended_at,
                ..
            } => Some(
                settle_request(
                    conn,
                    merchant,
                    *id,
                    CancellationRequestStatus::Completed,
                    (
                        MessageAuthor::System,
                        format!("The subscription ended on {ended_at} as requested."),
                    ),
                    now,
                )
                .await?,
            ),
            SubscriptionEvent::CancellationWithdrawn {
                cancellation_request_id: Some(id),
                ..
            } => {
                let (status, note) = match &withdrawn_as {
                    WithdrawnAs::Withdrawn => (
                        CancellationRequestStatus::Withdrawn,
                        (
                            MessageAuthor::System,
                            "The customer withdrew the cancellation request; the subscription continues.".to_owned(),
                        ),
                    ),
                    WithdrawnAs::Declined(message) => (
                        CancellationRequestStatus::Declined,
                        match message {
                            Some(m) => (MessageAuthor::Merchant, m.clone()),
                            None => (
                                MessageAuthor::System,
                                "The merchant declined the cancellation request; the subscription continues.".to_owned(),
                            ),
                        },
                    ),
                };
                let mut request = settle_request(conn, merchant, *id, status, note, now).await?;
                if let WithdrawnAs::Declined(Some(message)) = &withdrawn_as
                    && request.status == CancellationRequestStatus::Declined
                    && request.decline_message.is_none()
                {
                    request.decline_message = Some(message.clone());
                    support_repo::update_request(conn, merchant, &request).await?;
                }
                Some(request)
            }
            SubscriptionEvent::ScheduledChangeRemoved {
                change,
                reason: RemovalReason::Replaced,
            } => match &change.kind {
                ScheduledChangeKind::Cancel {
                    cancellation_request_id: Some(id),
                    ..
                } => Some(
                    settle_request(
                        conn,
                        merchant,
                        *id,
                        CancellationRequestStatus::Approved,
                        (
                            MessageAuthor::System,
                            "The merchant cancelled the subscription; this request is settled."
                                .to_owned(),
                        ),
                        now,
                    )
                    .await?,
                ),
                _ => touched,
            },
            _ => touched,
        };
    }
    // The row is written last, with the events, in one round trip: the side effects above
    // take the subscription as it is in memory and read nothing of its row (locked from
    // the start). Its scheduled-change rows are rewritten then too, so a change that
    // invoices waits for them (briefly held by a lifecycle worker that found the
    // subscription locked and skips it) while holding the merchant's invoice counter.
    let shared: &AsyncPgConnection = conn;
    try_join(
        repo::update(shared, merchant, &after).err_into(),
        batch.record(shared, merchant),
    )
    .await?;
    Ok(Outcome {
        subscription: after,
        cancellation_request: touched,
        may_have_discounts: true,
    })
}

/// A customer's request-mode cancellation: the request and its support ticket.
#[allow(clippy::too_many_arguments)]
async fn open_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    id: CancellationRequestId,
    reason: tenure_domain::subscription::CancellationReason,
    message: Option<String>,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApiResult<CancellationRequest> {
    let ticket = SupportTicket {
        id: TicketId::generate(),
        customer_id: sub.customer_id,
        subscription_id: Some(sub.subscription.id),
        subject: format!("Cancellation request: {reason}"),
        status: TicketStatus::Open,
        channel: TicketChannel::Portal,
        created_at: now,
        updated_at: now,
    };
    support_repo::insert_ticket(conn, merchant, &ticket).await?;
    let mut messages = vec![TicketMessage {
        id: TicketMessageId::generate(),
        ticket_id: ticket.id,
        author: MessageAuthor::System,
        body: format!(
            "The customer asked to cancel (reason: {reason}). Unless withdrawn, approved early \
             or declined, the subscription ends on {effective_at}."
        ),
        created_at: now,
    }];
    if let Some(body) = &message {
        messages.push(TicketMessage {
            id: TicketMessageId::generate(),
            ticket_id: ticket.id,
            author: MessageAuthor::Customer,
            body: body.clone(),
            created_at: now,
        });
    }
    for m in &messages {
        support_repo::insert_message(conn, merchant, m).await?;
    }
    ticket_event(conn, merchant, "support_ticket.created", &ticket).await?;
    let request = CancellationRequest {
        id,
        subscription_id: sub.subscription.id,
        customer_id: sub.customer_id,
        ticket_id: ticket.id,
        reason,
        message,
        status: CancellationRequestStatus::Pending,
        effective_at,
        decline_message: None,
        created_at: now,
        updated_at: now,
    };
    support_repo::insert_request(conn, merchant, &request).await?;
    request_event(conn, merchant, "cancellation_request.created", &request).await?;
    Ok(request)
}

/// Subscribes a customer to a plan at `now`; the plan's `trial_days` start a trial.
/// Without one, the first period is invoiced in the same transaction (open, charged by
/// the renewal worker's next round). A customer without a payment method is not refused:
/// that charge is declined into dunning, and a card added later pays it (docs/billing.md).
/// A merchant names the customer in its body; a customer is the session's, so a session
/// whose customer does not exist under its merchant finds no customer (404), not a field.
pub async fn create(
    state: &AppState,
    caller: Caller,
    customer: CustomerId,
    plan_id: PlanId,
) -> ApiResult<StoredSubscription> {
    debug_assert!(
        caller.customer.is_none_or(|c| c == customer),
        "a customer subscribes only themselves"
    );
    let merchant = caller.merchant;
    let now = now_of(state);
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        // Locked, so that an erasure cannot slip in between this check and the insert.
        let found = customer_repo::get(conn, merchant, customer, true)
            .await
            .map_err(|e| match e {
                StoreError::NotFound if caller.customer.is_some() => ApiError::NotFound("customer"),
                StoreError::NotFound => ApiError::field("customer_id", "no such customer"),
                other => other.into(),
            })?;
        super::gdpr::ensure_not_erased(&found)?;
        let plan = purchasable_plan(conn, merchant, plan_id).await?;
        let Transition {
            subscription,
            events,
        } = Subscription::create(
            NewSubscription {
                id: SubscriptionId::generate(),
                plan: terms_of(&plan)?,
                trial_days: plan.trial_days,
            },
            now,
        )?;
        let stored = StoredSubscription {
            subscription,
            customer_id: customer,
            product_id: plan.product_id,
            created_at: now,
            updated_at: now,
        };
        repo::insert(conn, merchant, &stored).await?;
        let view = SubscriptionDto::render(&stored, Actor::Merchant);
        let mut batch = EventBatch::default();
        for event in &events {
            subscription_event(&mut batch, event, &view, None, stored.updated_at)?;
            // A subscription without a trial pays for its first period up front.
            if let Some(period) = super::renewals::period_to_invoice(event) {
                super::renewals::invoice_period_in_tx(conn, merchant, &stored, period, now).await?;
            }
        }
        batch.record(conn, merchant).await?;
        Ok(stored)
    })
    .await
}

pub async fn get(
    state: &AppState,
    caller: Caller,
    id: SubscriptionId,
) -> ApiResult<StoredSubscription> {
    let mut conn = state.db.conn().await?;
    let s = repo::get(&mut conn, caller.merchant, id, false)
        .await
        .map_err(subscription_not_found)?;
    if !caller.sees(&s) {
        return Err(ApiError::NotFound("subscription"));
    }
    Ok(s)
}

pub async fn list(
    state: &AppState,
    caller: Caller,
    mut filter: SubscriptionFilter,
    page: PageRequest,
) -> ApiResult<Page<StoredSubscription>> {
    if caller.customer.is_some() {
        filter.customer = caller.customer;
    }
    let mut conn = state.db.conn().await?;
    Ok(repo::list(&mut conn, caller.merchant, &filter, page).await?)
}

/// Runs `action` on subscription `id` for `caller`, in one transaction.
pub async fn act(
    state: &AppState,
    caller: Caller,
    id: SubscriptionId,
    if_match: Option<String>,
    action: Action,
) -> ApiResult<Outcome> {
    let now = now_of(state);
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        act_in_tx(conn, caller, id, if_match.as_deref(), &action, now).await
    })
    .await
}

pub(crate) async fn act_in_tx(
    conn: &mut AsyncPgConnection,
    caller: Caller,
    id: SubscriptionId,
    if_match: Option<&str>,
    action: &Action,
    now: DateTime<Utc>,
) -> ApiResult<Outcome> {
    let merchant = caller.merchant;
    let actor = caller.actor();
    let repo::LockedForChange {
        subscription: before,
        policy,
        has_discounts,
    } = repo::lock_with_policy(conn, merchant, id)
        .await
        .map_err(subscription_not_found)?;
    if !caller.sees(&before) {
        return Err(ApiError::NotFound("subscription"));
    }
    check_if_match(if_match, before.updated_at)?;
    let sub = &before.subscription;
    let mut withdrawn_as = if actor.is_customer() {
        WithdrawnAs::Withdrawn
    } else {
        WithdrawnAs::Declined(None)
    };
    let transition = match action {
        Action::Pause(request) => sub.pause(request, &policy, actor, now)?,
        Action::Resume => sub.resume(actor, now)?,
        Action::Cancel(request) => sub.cancel(request, &policy, actor, now)?,
        Action::ChangePlan(plan_id) => {
            let request = plan_change_request(conn, merchant, &before, *plan_id).await?;
            sub.change_plan(&request, &policy, actor, now)?
        }
        Action::RemoveScheduledChange(change) => sub.remove_scheduled_change(*change, actor)?,
        Action::WithdrawRequest(request_id) => {
            pending_request_of(conn, caller, sub, *request_id).await?;
            sub.withdraw_cancellation(actor)?
        }
        Action::ApproveRequest(request_id) => {
            let request = pending_request_of(conn, caller, sub, *request_id).await?;
            sub.approve_cancellation(request.reason, request.message.clone(), now)?
        }
        Action::DeclineRequest(request_id, message) => {
            pending_request_of(conn, caller, sub, *request_id).await?;
            let message = tenure_domain::text::clean("message", message, MESSAGE_MAX, true)?;
            withdrawn_as = WithdrawnAs::Declined(Some(message));
            let change = sub
                .pending(ChangeType::Cancel)
                .map(|c| c.id)
                .ok_or_else(|| sub_invalid(Refusal::NoCancellationPending))?;
            sub.remove_scheduled_change(change, Actor::Merchant)?
        }
    };
    let outcome = persist(conn, merchant, &before, transition, withdrawn_as, now).await?;
    Ok(Outcome {
        may_have_discounts: has_discounts || grants_discount(action),
        ..outcome
    })
}

/// Whether `action` can give the subscription a discount. None of them does (accepting
/// a retention offer does, elsewhere); spelled out so that a new action has to answer.
fn grants_discount(action: &Action) -> bool {
    match action {
        Action::Pause(_)
        | Action::Resume
        | Action::Cancel(_)
        | Action::ChangePlan(_)
        | Action::RemoveScheduledChange(_)
        | Action::WithdrawRequest(_)
        | Action::ApproveRequest(_)
        | Action::DeclineRequest(..) => false,
    }
}

fn sub_invalid(refusal: Refusal) -> ApiError {
    ApiError::Domain(DomainError::refused(
        "settle the cancellation request of",
        refusal,
    ))
}

/// The pending cancellation request `id` of `sub`, which must be the one its scheduled
/// cancellation belongs to.
async fn pending_request_of(
    conn: &mut AsyncPgConnection,
    caller: Caller,
    sub: &Subscription,
    id: CancellationRequestId,
) -> ApiResult<CancellationRequest> {
    let request = support_repo::get_request(conn, caller.merchant, id, true)
        .await
        .map_err(ApiError::from_store("cancellation_request"))?;
    if request.subscription_id != sub.id
        || caller.customer.is_some_and(|c| c != request.customer_id)
    {
        return Err(ApiError::NotFound("cancellation_request"));
    }
    request.check_pending("settle").map_err(|_| {
        ApiError::conflict(
            "cancellation_request_not_pending",
            format!("the cancellation request is {}", request.status),
        )
    })?;
    let belongs = sub.pending(ChangeType::Cancel).is_some_and(|c| {
        matches!(c.kind, ScheduledChangeKind::Cancel { cancellation_request_id: Some(r), .. } if r == id)
    });
    if !belongs {
        return Err(ApiError::conflict(
            "cancellation_request_not_pending",
            "the subscription's pending cancellation is not this request",
        ));
    }
    Ok(request)
}

async fn plan_change_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    plan_id: PlanId,
) -> ApiResult<PlanChangeRequest> {
    let plan = purchasable_plan(conn, merchant, plan_id).await?;
    Ok(PlanChangeRequest {
        to: terms_of(&plan)?,
        same_product: plan.product_id == sub.product_id,
    })
}

/// Runs an action that targets a cancellation request (withdraw, approve, decline).
pub async fn act_on_request(
    state: &AppState,
    caller: Caller,
    request_id: CancellationRequestId,
    action: Action,
) -> ApiResult<Outcome> {
    let now = now_of(state);
    let mut conn = state.db.conn().await?;
    let request = support_repo::get_request(&mut conn, caller.merchant, request_id, false)
        .await
        .map_err(ApiError::from_store("cancellation_request"))?;
    if caller.customer.is_some_and(|c| c != request.customer_id) {
        return Err(ApiError::NotFound("cancellation_request"));
    }
    let outcome = conn
        .transaction(async |conn| {
            act_in_tx(conn, caller, request.subscription_id, None, &action, now).await
        })
        .await?;
    Ok(outcome)
}

/// What changing to `plan_id` would do now, without doing it.
pub async fn preview_plan_change(
    state: &AppState,
    caller: Caller,
    id: SubscriptionId,
    plan_id: PlanId,
) -> ApiResult<PlanChangePreviewDto> {
    let now = now_of(state);
    let mut conn = state.db.conn().await?;
    let s = repo::get(&mut conn, caller.merchant, id, false)
        .await
        .map_err(subscription_not_found)?;
    if !caller.sees(&s) {
        return Err(ApiError::NotFound("subscription"));
    }
    let policy = policy_of(&mut conn, caller.merchant, s.product_id).await?;
    let request = plan_change_request(&mut conn, caller.merchant, &s, plan_id).await?;
    let preview = s
        .subscription
        .preview_plan_change(&request, &policy, caller.actor(), now)?;
    let from = s.subscription.plan.plan_id;
    let new_cadence = request.to.cadence != s.subscription.plan.cadence;
    let names = if preview.proration.is_some() {
        let from_name = catalog_repo::get_plan(&mut conn, caller.merchant, from).await?;
        let to_name = catalog_repo::get_plan(&mut conn, caller.merchant, plan_id).await?;
        (from_name.name, to_name.name)
    } else {
        Default::default()
    };
    Ok(PlanChangePreviewDto::render(
        plan_id.to_string(),
        &preview,
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
                    super::renewals::plan_line_description(name, line.period)
                }
                _ => super::prorations::line_description(line, name),
            }
        },
    ))
}

/// The active discounts of each of `subs` (oldest first), one query for all.
async fn discounts_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> ApiResult<HashMap<SubscriptionId, Vec<StoredDiscount>>> {
    let ids: Vec<SubscriptionId> = subs.iter().map(|s| s.subscription.id).collect();
    let mut by_sub: HashMap<SubscriptionId, Vec<StoredDiscount>> = HashMap::new();
    for d in discounts_repo::active_for_subscriptions(conn, merchant, &ids).await? {
        by_sub.entry(d.subscription_id).or_default().push(d);
    }
    Ok(by_sub)
}

/// [`merchant_view`] of an action's subscription, without the discount read when the
/// outcome rules discounts out.
pub async fn merchant_outcome_view(
    state: &AppState,
    merchant: MerchantId,
    outcome: &Outcome,
) -> ApiResult<SubscriptionDto> {
    if outcome.may_have_discounts {
        return merchant_view(state, merchant, &outcome.subscription).await;
    }
    Ok(SubscriptionDto::render(&outcome.subscription, Actor::Merchant).with_discounts(&[]))
}

/// Renders subscriptions for their merchant, with their active discounts.
pub async fn merchant_views(
    state: &AppState,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> ApiResult<Vec<SubscriptionDto>> {
    let mut conn = state.db.conn().await?;
    let discounts = discounts_of(&mut conn, merchant, subs).await?;
    Ok(subs
        .iter()
        .map(|s| {
            SubscriptionDto::render(s, Actor::Merchant).with_discounts(
                discounts
                    .get(&s.subscription.id)
                    .map_or(&[][..], Vec::as_slice),
            )
        })
        .collect())
}

/// [`merchant_views`] of one subscription.
pub async fn merchant_view(
    state: &AppState,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> ApiResult<SubscriptionDto> {
    merchant_views(state, merchant, std::slice::from_ref(s))
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no view rendered"))
}

/// Renders subscriptions for the portal, with the actions the product's policy allows
/// the customer now and their active discounts.
pub async fn portal_views(
    state: &AppState,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> ApiResult<Vec<PortalSubscriptionDto>> {
    let now = now_of(state);
    let mut conn = state.db.conn().await?;
    let discounts = discounts_of(&mut conn, merchant, subs).await?;
    let mut views = Vec::with_capacity(subs.len());
    for s in subs {
        let terms = super::portal_terms::terms_of(state, &conn, merchant, s.product_id).await?;
        let own = discounts
            .get(&s.subscription.id)
            .map_or(&[][..], Vec::as_slice);
        views.push(portal_dto(s, &terms, own, now));
    }
    Ok(views)
}

/// One of the signed-in customer's subscriptions as the portal shows it: one statement
/// (the subscription, and whether it has discounts), its product's terms from
/// [`portal_terms`](super::portal_terms), and a second statement only when there are
/// discounts to list. The hot read of the portal; renders like [`portal_views`].
pub async fn portal_get(
    state: &AppState,
    caller: Caller,
    id: SubscriptionId,
) -> ApiResult<(StoredSubscription, PortalSubscriptionDto)> {
    let now = now_of(state);
    let conn = state.db.conn().await?;
    let read = repo::get_for_portal(&conn, caller.merchant, id)
        .await
        .map_err(subscription_not_found)?;
    let s = read.subscription;
    if !caller.sees(&s) {
        return Err(ApiError::NotFound("subscription"));
    }
    let terms = super::portal_terms::terms_of(state, &conn, caller.merchant, s.product_id).await?;
    let discounts = if read.has_discounts {
        discounts_repo::active_for_subscription(&conn, caller.merchant, id).await?
    } else {
        Vec::new()
    };
    let view = portal_dto(&s, &terms, &discounts, now);
    Ok((s, view))
}

/// One subscription as the portal shows it, from a subscription already read (after a
/// change): its product's terms and its discounts, in one round trip.
pub async fn portal_view(
    state: &AppState,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> ApiResult<PortalSubscriptionDto> {
    portal_view_reading(state, merchant, s, true).await
}

/// [`portal_view`] of an action's subscription, without the discount read when the
/// outcome rules discounts out.
pub async fn portal_outcome_view(
    state: &AppState,
    merchant: MerchantId,
    outcome: &Outcome,
) -> ApiResult<PortalSubscriptionDto> {
    portal_view_reading(
        state,
        merchant,
        &outcome.subscription,
        outcome.may_have_discounts,
    )
    .await
}

async fn portal_view_reading(
    state: &AppState,
    merchant: MerchantId,
    s: &StoredSubscription,
    read_discounts: bool,
) -> ApiResult<PortalSubscriptionDto> {
    let now = now_of(state);
    let conn = state.db.conn().await?;
    let (terms, discounts) = futures_util::future::try_join(
        super::portal_terms::terms_of(state, &conn, merchant, s.product_id),
        async {
            if !read_discounts {
                return Ok(Vec::new());
            }
            discounts_repo::active_for_subscription(&conn, merchant, s.subscription.id)
                .await
                .map_err(ApiError::from)
        },
    )
    .await?;
    Ok(portal_dto(s, &terms, &discounts, now))
}

/// A subscription as its customer sees it: with its discounts and the actions its
/// product's terms allow now.
fn portal_dto(
    s: &StoredSubscription,
    terms: &PortalTerms,
    discounts: &[StoredDiscount],
    now: DateTime<Utc>,
) -> PortalSubscriptionDto {
    PortalSubscriptionDto {
        subscription: SubscriptionDto::render(s, Actor::Customer).with_discounts(discounts),
        available_actions: available_actions(&s.subscription, &terms.policy, &terms.plans, now)
            .into(),
    }
}

/// Applies the due scheduled changes of one subscription whose row the caller has
/// claimed (see [`crate::service::lifecycle`]).
pub(crate) async fn apply_due_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    now: DateTime<Utc>,
) -> ApiResult<Result<usize, DomainError>> {
    let transition = match before.subscription.apply_due(now) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let n = transition.events.len();
    if n == 0 {
        // Nothing due after all: rewrite the rows from the state so no stale row remains.
        repo::update(conn, merchant, before).await?;
        return Ok(Ok(0));
    }
    persist(
        conn,
        merchant,
        before,
        transition,
        WithdrawnAs::Withdrawn,
        now,
    )
    .await?;
    Ok(Ok(n))
}

/// Saves a system transition (the billing engine's) with its events and side effects.
pub(crate) async fn persist_system(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    transition: Transition,
    now: DateTime<Utc>,
) -> ApiResult<StoredSubscription> {
    Ok(persist(
        conn,
        merchant,
        before,
        transition,
        WithdrawnAs::Withdrawn,
        now,
    )
    .await?
    .subscription)
}
