//! Saving a changed subscription in its transaction: the new state (which rewrites its
//! scheduled-change rows), its events, the invoices a new period or an ending bills, and
//! the side effects on its cancellation request and ticket.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::TryFutureExt;
use futures_util::future::try_join;
use tenure_domain::DomainError;
use tenure_domain::ids::MerchantId;
use tenure_domain::subscription::{
    Actor, RemovalReason, ScheduledChangeKind, SubscriptionEvent, SubscriptionStatus, Transition,
};
use tenure_domain::support::{CancellationRequestStatus, MessageAuthor};
use tenure_domain::time::next_update_time;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription};
use tenure_store::repo::support as support_repo;

use super::requests::{WithdrawnAs, open_request, settle_request};
use super::scope::ActionOutcome;
use crate::dto::subscriptions::SubscriptionDto;
use crate::error::AppResult;
use crate::events::{EventBatch, EventDraft};

/// Adds the outbox event of a subscription's domain event to `batch`: `after` and
/// `before` are the subscription as its merchant sees it after and before the change.
pub(crate) fn subscription_event(
    batch: &mut EventBatch,
    event: &SubscriptionEvent,
    after: &SubscriptionDto,
    before: Option<&SubscriptionDto>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    batch.add(EventDraft {
        event_type: event.event_type(),
        resource_type: "subscription",
        resource_id: after.id.clone(),
        after,
        before,
        at,
    })
}

/// Saves a transition: the new state, its scheduled-change rows, one outbox event per
/// domain event, and the side effects on cancellation requests and tickets. Returns the
/// saved subscription and the cancellation request touched, if any.
pub(crate) async fn persist(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    transition: Transition,
    withdrawn_as: WithdrawnAs,
    now: DateTime<Utc>,
) -> AppResult<ActionOutcome> {
    let Transition {
        subscription,
        events,
        overridden,
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
        if let Some(period) = crate::billing::invoicing::period_to_invoice(event) {
            crate::billing::invoicing::invoice_period_in_tx(conn, merchant, &after, period, now)
                .await?;
        }
        // An immediate plan change bills its proration (pending items, or a new period).
        crate::billing::prorations::bill_plan_change_in_tx(conn, merchant, &after, event, now)
            .await?;
        // A signup that ends unpaid owes nothing: its first invoice is voided.
        if matches!(
            event,
            SubscriptionEvent::Canceled { .. } | SubscriptionEvent::IncompleteExpired { .. }
        ) && before.subscription.status == SubscriptionStatus::Incomplete
        {
            crate::billing::invoices::void_unpaid_signup_in_tx(
                conn,
                merchant,
                after.subscription.id,
                now,
            )
            .await?;
        }
        // An ending subscription's pending items go on a final invoice.
        if matches!(event, SubscriptionEvent::Canceled { .. }) {
            crate::billing::invoicing::invoice_final_items_in_tx(conn, merchant, &after, now)
                .await?;
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
    Ok(ActionOutcome {
        subscription: after,
        cancellation_request: touched,
        may_have_discounts: true,
        overridden,
        now,
    })
}

/// Applies the due scheduled changes of one subscription whose row the caller has
/// claimed (see `tenure_engine::lifecycle`).
pub async fn apply_due_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    now: DateTime<Utc>,
) -> AppResult<Result<usize, DomainError>> {
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

/// Expires one `incomplete` subscription whose row the caller has claimed (see
/// `tenure_engine::lifecycle`): `incomplete_expired`, its first invoice voided. The
/// domain's refusal (not due yet) is returned as such; a charge of the invoice still in
/// flight is a 409 `payment_in_progress` (the round tries again later).
pub async fn expire_incomplete_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    now: DateTime<Utc>,
) -> AppResult<Result<(), DomainError>> {
    let transition = match before.subscription.expire_incomplete(now) {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    persist_system(conn, merchant, before, transition, now).await?;
    Ok(Ok(()))
}

/// Saves a system transition (the billing engine's) with its events and side effects.
pub async fn persist_system(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    transition: Transition,
    now: DateTime<Utc>,
) -> AppResult<StoredSubscription> {
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
