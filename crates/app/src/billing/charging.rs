//! Charging invoices: the renewal engine's charges and dunning retries (including the
//! retry a new default payment method asks for), and the merchant's
//! `POST /v1/invoices/{id}/pay`.
//!
//! A charge takes three steps, so that no database lock is held while the gateway is
//! called (a real gateway takes hundreds of milliseconds; a batch holding 500
//! subscription locks across 500 such calls would stall every request on them):
//!
//! 1. **Prepare**, in a short transaction: decide whether the invoice is charged, with
//!    which card and as which attempt, and write that down as a *charge intent*
//!    (`charge_intents`, at most one per invoice), with a lease: the invoice's
//!    `next_payment_attempt_at` moves to now + [`App::charge_lease`].
//! 2. **Call** the gateway, outside any transaction, with the idempotency key
//!    `"{invoice}:{attempt}"`.
//! 3. **Settle**, in a second transaction: lock the subscription, then the invoice, take
//!    (delete) the intent, record the attempt and what follows from it (paid or
//!    declined, the dunning schedule, the subscription past due, recovered, canceled or
//!    unpaid, the events). An intent that is gone was settled by someone else, and its
//!    outcome is dropped.
//!
//! A crash between 1 and 3 leaves the intent and its lease. Once the lease ends, the
//! engine claims the invoice again, finds the intent and sends the same request again
//! (same key, same card), which the gateway answers by replaying the first outcome: the
//! money is taken at most once and recorded exactly once. While an intent exists nothing
//! else charges, voids or gives up the invoice (409 `payment_in_progress`).
//!
//! Waiting locks are always taken subscription first, then invoice; the engine's claims
//! skip locked rows instead of waiting.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::dunning::{ChargeMode, DunningFinalState, DunningPolicy};
use tenure_domain::billing::gateway::{
    ChargeOutcome, ChargeRequest, OutcomeUnknown, PaymentGateway,
};
use tenure_domain::billing::gateway_settings::GatewayProvider;
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus, Payment, PaymentStatus};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId};
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    AccessEnd, Actor, CancelRequest, CancelTiming, SubscriptionStatus,
};
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::charge_intents::{self as intents_repo, ChargeIntent};
use tenure_store::repo::invoices::{self as invoices_repo, NewPaymentAttempt};
use tenure_store::repo::payment_methods as pm_repo;
use tenure_store::repo::renewals::{self as repo, Dunning, WhenHeld};
use tenure_store::repo::subscriptions as subs_repo;

use crate::App;
use crate::billing::invoices::invoice_event;
use crate::error::{AppError, AppResult};
use crate::subscriptions::persist_system;

/// How long a prepared charge may take before the engine sends it again (with the same
/// idempotency key). Unless configured (`--charge-lease-secs`).
pub const DEFAULT_LEASE: Duration = Duration::minutes(5);

/// Invoices claimed per charge batch.
pub const CHARGE_CHUNK: usize = 500;

/// The 409 for anything that would change an invoice while a charge of it is in flight.
pub fn payment_in_progress() -> AppError {
    AppError::conflict(
        "payment_in_progress",
        "a charge of this invoice is in progress; retry shortly",
    )
}

/// A charge decided and committed (step 1), ready for the gateway.
pub struct Prepared {
    pub merchant: MerchantId,
    /// The invoice as read under its lock in step 1.
    pub invoice: Invoice,
    pub intent: ChargeIntent,
    /// The card's gateway token; `None` when there is no card (or nothing is due).
    pub token: Option<String>,
    /// Prepared again from an intent that outlived its lease: its first call may have
    /// reached the gateway, so it is only ever sent again as it was, never released.
    pub recovered: bool,
    /// The merchant's gateway ([`crate::billing::gateways::resolve`]).
    pub gateway: Arc<dyn PaymentGateway>,
    /// The customer is there to authenticate the charge (the portal's pay).
    pub on_session: bool,
}

/// What step 2 produced.
pub enum GatewayReply {
    /// Nothing was due: the invoice is paid without a charge.
    NothingDue,
    Charge(ChargeOutcome),
    /// The gateway did not tell (timeout, 5xx): the charge may have happened. Nothing is
    /// recorded; the intent keeps its lease, after which the engine sends the same
    /// request again under the same key, which finds the first charge.
    Unknown(String),
    /// The charge waits for the customer's authentication (3-D Secure, on session): the
    /// client secret to confirm it with. Like an unknown outcome, nothing is recorded;
    /// Stripe's event (or the lease's end) settles it.
    ActionRequired(String),
}

/// When a lease taken now ends. Counted from the clock's time when it is later than the
/// round's `now` (the renewals of the round took time), so the calls get the whole lease.
pub fn lease_end(state: &App, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(state.now_micros()) + state.charge_lease
}

/// Step 2: the gateway call, outside any transaction.
pub async fn call(p: &Prepared) -> GatewayReply {
    if p.intent.amount == 0 {
        return GatewayReply::NothingDue;
    }
    let Some(token) = &p.token else {
        return GatewayReply::Charge(ChargeOutcome::Declined {
            code: "no_payment_method".to_owned(),
            message: "the customer has no default payment method".to_owned(),
        });
    };
    let request = ChargeRequest {
        amount: Money::new(p.intent.amount, p.invoice.currency),
        payment_method_token: token.clone(),
        idempotency_key: p.intent.idempotency_key.clone(),
        description: format!("Invoice {}", p.invoice.number),
        resend: p.recovered,
        on_session: p.on_session,
    };
    match p.gateway.try_charge(&request).await {
        Ok(outcome) => GatewayReply::Charge(outcome),
        Err(OutcomeUnknown {
            action: Some(client_secret),
            ..
        }) => GatewayReply::ActionRequired(client_secret),
        Err(unknown) => {
            tracing::warn!(invoice = %p.invoice.id, key = %p.intent.idempotency_key,
                reason = %unknown.reason, "charge outcome unknown; resent after its lease");
            GatewayReply::Unknown(unknown.reason)
        }
    }
}

/// What step 1 does with a locked invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Charge,
    /// Not charged, and no attempt stays scheduled: it is no longer open, or dunning
    /// stopped because its subscription ended.
    StopDunning,
}

/// Whether `invoice` is charged. Dunning stops when the subscription ended, but a final
/// invoice (no period: the items left when it ended) is what ending it billed, and is
/// collected. The merchant may charge anything payable.
pub fn decide(
    mode: ChargeMode,
    invoice: &Invoice,
    subscription: Option<SubscriptionStatus>,
) -> AppResult<Decision> {
    if mode == ChargeMode::Manual {
        if !invoice.status.is_payable() {
            return Err(AppError::conflict(
                "invoice_not_payable",
                format!(
                    "the invoice is {}; only open or uncollectible invoices are charged",
                    invoice.status
                ),
            ));
        }
        return Ok(Decision::Charge);
    }
    if invoice.status != InvoiceStatus::Open
        || (invoice.period.is_some() && subscription == Some(SubscriptionStatus::Canceled))
    {
        return Ok(Decision::StopDunning);
    }
    Ok(Decision::Charge)
}

pub fn new_intent(
    invoice: &Invoice,
    card: Option<&PaymentMethod>,
    mode: ChargeMode,
    now: DateTime<Utc>,
) -> ChargeIntent {
    let attempt = invoice.attempt_count + 1;
    let amount = invoice.totals.amount_due.amount;
    ChargeIntent {
        invoice_id: invoice.id,
        attempt,
        idempotency_key: format!("{}:{attempt}", invoice.id),
        payment_method_id: card.filter(|_| amount > 0).map(|c| c.id),
        amount,
        mode,
        resume_at: invoice.next_payment_attempt_at,
        created_at: now,
    }
}

pub fn attempt_of(p: &Prepared, outcome: &ChargeOutcome) -> NewPaymentAttempt {
    NewPaymentAttempt {
        invoice_id: p.invoice.id,
        payment_method_id: p.intent.payment_method_id,
        amount: Money::new(p.intent.amount, p.invoice.currency),
        gateway: p.gateway.name().to_owned(),
        idempotency_key: p.intent.idempotency_key.clone(),
        outcome: outcome.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// One invoice, for a request

/// `POST /v1/invoices/{id}/pay`: charges an open or uncollectible invoice now, also one
/// dunning stopped collecting. Returns the invoice after the attempt and its payment
/// (`None` when nothing was due). A customer without a default payment method is a 409
/// `no_payment_method` with nothing recorded; a charge already in flight is a 409
/// `payment_in_progress`.
pub async fn pay(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    on_session: bool,
) -> AppResult<(Invoice, Option<Payment>)> {
    match charge_now(state, merchant, id, on_session).await? {
        Some(settled) => Ok(settled),
        // This request's lease ran out during the gateway call and the engine settled
        // the same charge (same key): the invoice shows its outcome.
        None => {
            let mut conn = state.db.conn().await?;
            let invoice = invoices_repo::get(&mut conn, merchant, id, None, false).await?;
            Ok((invoice, None))
        }
    }
}

/// After a new default payment method committed: the customer's open invoices become
/// due now, and the engine's next collection round charges them with the new card, in
/// its batches (a customer with hundreds of open invoices costs the request one
/// `UPDATE`, not a charge each). Failures are logged: the payment-method change itself
/// succeeded, and the invoices keep their schedule.
pub async fn retry_open_invoices(state: &App, merchant: MerchantId, customer: CustomerId) {
    if let Err(err) = make_open_invoices_due(state, merchant, customer).await {
        tracing::warn!(error = %err, customer = %customer,
            "making open invoices due after a payment-method change failed");
    }
}

async fn make_open_invoices_due(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<usize> {
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_customer(&mut conn, merchant, customer, state.now_micros())
            .await?;
    conn.transaction(async |conn| {
        // Waits for a charge being prepared to commit its intent (whose lease must stay:
        // its call may be on its way to the gateway), and keeps new ones out meanwhile.
        invoices_repo::lock_payable_of_customer(conn, merchant, customer).await?;
        Ok(repo::make_open_invoices_due(conn, merchant, customer, now).await?)
    })
    .await
}

/// The three steps for the merchant's charge of one invoice. `None`: settled by the
/// engine after this request's lease ran out.
async fn charge_now(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    on_session: bool,
) -> AppResult<Option<(Invoice, Option<Payment>)>> {
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_invoice(&mut conn, merchant, id, state.now_micros()).await?;
    let p = conn
        .transaction(async |conn| prepare_one(conn, state, merchant, id, now, on_session).await)
        .await?;
    let outcome = call(&p).await;
    if let GatewayReply::ActionRequired(client_secret) = &outcome {
        return Err(action_required(state, &mut conn, &p, client_secret, now).await?);
    }
    if let GatewayReply::Unknown(reason) = &outcome {
        return Err(AppError::Unavailable(format!(
            "the payment gateway did not answer ({reason}); the charge is checked again \
             under the same key when its lease ends"
        )));
    }
    conn.transaction(async |conn| {
        if let Some(sub) = p.invoice.subscription_id {
            repo::lock_subscription_statuses(conn, merchant, &[sub], WhenHeld::Wait).await?;
        }
        invoices_repo::lock_versions(conn, merchant, &[id]).await?;
        settle_locked(conn, &p, &outcome, now).await
    })
    .await
}

// ---------------------------------------------------------------------------------------
// The first invoice of a signup

/// What the frontend must do for an `incomplete` subscription's first invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextAction {
    /// The card asks for the cardholder's authentication (3-D Secure): confirm the
    /// payment with the gateway's library and this client secret.
    ConfirmPayment {
        invoice_id: InvoiceId,
        provider: GatewayProvider,
        client_secret: String,
        publishable_key: String,
    },
    /// The payment failed (`decline_code`): collect another card, which pays the invoice.
    UpdatePaymentMethod {
        invoice_id: InvoiceId,
        decline_code: String,
    },
}

/// Step 1 for the first invoice of a signup, inside the signup's own transaction: the
/// charge intent is committed with the subscription, so a crash after it is resent under
/// the same key when the lease ends, like any charge. Marked `immediate` with no schedule
/// to return to: a decline is not retried (the customer is there to act on it).
pub(crate) async fn prepare_signup(
    conn: &mut AsyncPgConnection,
    state: &App,
    merchant: MerchantId,
    invoice: Invoice,
    card: PaymentMethod,
    now: DateTime<Utc>,
) -> AppResult<Prepared> {
    let invoice = Invoice {
        next_payment_attempt_at: None,
        ..invoice
    };
    let gateway = crate::billing::gateways::resolve(conn, state, merchant)
        .await?
        .gateway
        .clone();
    let intent = new_intent(&invoice, Some(&card), ChargeMode::Immediate, now);
    intents_repo::insert(conn, merchant, std::slice::from_ref(&intent)).await?;
    repo::schedule_attempts(conn, merchant, &[invoice.id], Some(lease_end(state, now))).await?;
    Ok(Prepared {
        merchant,
        invoice,
        token: Some(card.gateway_token),
        intent,
        recovered: false,
        gateway,
        // The subscriber is signing up: there to authenticate a card that asks for it.
        on_session: true,
    })
}

/// Steps 2 and 3 for the first invoice of a signup. Paid: the subscription is `active`
/// when this returns (`None`). Declined: it stays `incomplete`, and the answer says to
/// collect another card. Waiting for authentication: what the frontend confirms the
/// payment with. An unknown outcome answers `None` too, the subscription still
/// `incomplete`: the charge keeps its lease and is resolved like any other.
pub(crate) async fn charge_signup(
    state: &App,
    conn: &mut AsyncPgConnection,
    p: &Prepared,
    now: DateTime<Utc>,
) -> AppResult<Option<NextAction>> {
    let outcome = call(p).await;
    match &outcome {
        GatewayReply::ActionRequired(client_secret) => {
            return match action_required(state, conn, p, client_secret, now).await? {
                AppError::PaymentActionRequired {
                    provider,
                    client_secret,
                    publishable_key,
                    ..
                } => Ok(Some(NextAction::ConfirmPayment {
                    invoice_id: p.invoice.id,
                    provider: provider.parse()?,
                    client_secret,
                    publishable_key,
                })),
                other => Err(other),
            };
        }
        GatewayReply::Unknown(_) => return Ok(None),
        GatewayReply::NothingDue | GatewayReply::Charge(_) => {}
    }
    let merchant = p.merchant;
    let settled = conn
        .transaction(async |conn| {
            if let Some(sub) = p.invoice.subscription_id {
                repo::lock_subscription_statuses(conn, merchant, &[sub], WhenHeld::Wait).await?;
            }
            invoices_repo::lock_versions(conn, merchant, &[p.invoice.id]).await?;
            settle_locked(conn, p, &outcome, now).await
        })
        .await?;
    Ok(match settled {
        Some((_, Some(payment))) if payment.status != PaymentStatus::Succeeded => {
            Some(NextAction::UpdatePaymentMethod {
                invoice_id: p.invoice.id,
                decline_code: payment
                    .failure_code
                    .unwrap_or_else(|| "card_declined".to_owned()),
            })
        }
        _ => None,
    })
}

/// The charge waits for the customer's authentication: announced to the merchant
/// (`invoice.payment_action_required`), and the error the portal turns into what the
/// frontend confirms the payment with.
async fn action_required(
    state: &App,
    conn: &mut AsyncPgConnection,
    p: &Prepared,
    client_secret: &str,
    now: DateTime<Utc>,
) -> AppResult<AppError> {
    let gateway = crate::billing::gateways::resolve(conn, state, p.merchant).await?;
    let invoice = conn
        .transaction(async |conn| {
            let invoice = invoices_repo::get(conn, p.merchant, p.invoice.id, None, false).await?;
            crate::events::record_event(
                conn,
                p.merchant,
                crate::events::EventDraft {
                    event_type: "invoice.payment_action_required",
                    resource_type: "invoice",
                    resource_id: invoice.id.to_string(),
                    after: &crate::dto::billing::InvoiceDto::from(&invoice),
                    before: None,
                    at: now,
                },
            )
            .await?;
            Ok::<_, AppError>(invoice)
        })
        .await?;
    Ok(AppError::PaymentActionRequired {
        invoice_id: invoice.id.to_string(),
        provider: gateway.provider.as_str(),
        client_secret: client_secret.to_owned(),
        publishable_key: gateway.publishable_key.clone().unwrap_or_default(),
    })
}

/// Step 1 for the merchant's charge of one invoice.
async fn prepare_one(
    conn: &mut AsyncPgConnection,
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    now: DateTime<Utc>,
    on_session: bool,
) -> AppResult<Prepared> {
    let mode = ChargeMode::Manual;
    let unlocked = invoices_repo::get(conn, merchant, id, None, false)
        .await
        .map_err(AppError::from_store("invoice"))?;
    let status = match unlocked.subscription_id {
        Some(sub) => repo::lock_subscription_statuses(conn, merchant, &[sub], WhenHeld::Wait)
            .await?
            .first()
            .map(|(_, status)| *status),
        None => None,
    };
    let invoice = invoices_repo::get(conn, merchant, id, None, true).await?;
    if intents_repo::of_invoice(conn, merchant, id)
        .await?
        .is_some()
    {
        return Err(payment_in_progress());
    }
    // A manual charge is refused (not stopped) when the invoice is not payable.
    decide(mode, &invoice, status)?;
    let card = match invoice.totals.amount_due.is_zero() {
        true => None,
        false => pm_repo::default_for_customer(conn, merchant, invoice.customer_id).await?,
    };
    if card.is_none() && !invoice.totals.amount_due.is_zero() {
        return Err(AppError::conflict(
            "no_payment_method",
            "the customer has no default payment method",
        ));
    }
    let gateway = crate::billing::gateways::resolve(conn, state, merchant)
        .await?
        .gateway
        .clone();
    let intent = new_intent(&invoice, card.as_ref(), mode, now);
    intents_repo::insert(conn, merchant, std::slice::from_ref(&intent)).await?;
    repo::schedule_attempts(conn, merchant, &[id], Some(lease_end(state, now))).await?;
    Ok(Prepared {
        merchant,
        invoice,
        token: card.map(|c| c.gateway_token),
        intent,
        recovered: false,
        gateway,
        on_session,
    })
}

// ---------------------------------------------------------------------------------------
// Settling one charge

/// Step 3 for one charge; the caller holds its subscription's and invoice's locks.
/// `None` when its intent is gone (another worker settled it).
pub async fn settle_locked(
    conn: &mut AsyncPgConnection,
    p: &Prepared,
    outcome: &GatewayReply,
    now: DateTime<Utc>,
) -> AppResult<Option<(Invoice, Option<Payment>)>> {
    let merchant = p.merchant;
    let id = p.invoice.id;
    if matches!(
        outcome,
        GatewayReply::Unknown(_) | GatewayReply::ActionRequired(_)
    ) {
        // The intent and its lease stay: the engine asks again after the lease.
        return Ok(None);
    }
    if intents_repo::take(conn, merchant, &[(id, p.intent.attempt)])
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    // The lease ends with the intent: events show the schedule the attempt was made on.
    repo::schedule_attempts(conn, merchant, &[id], p.intent.resume_at).await?;
    let before = invoices_repo::get(conn, merchant, id, None, true).await?;
    let sub = match before.subscription_id {
        Some(s) => Some(subs_repo::get(conn, merchant, s, true).await?),
        None => None,
    };
    let dunning = repo::dunning(conn, merchant, id).await?;
    let (after, payment) = match outcome {
        GatewayReply::NothingDue => {
            let after = invoices_repo::mark_paid_without_charge(conn, merchant, id, now).await?;
            invoice_event(conn, merchant, "invoice.paid", &after, Some(&before)).await?;
            (after, None)
        }
        GatewayReply::Charge(outcome) => {
            let (after, payment) =
                invoices_repo::record_payment_attempt(conn, merchant, attempt_of(p, outcome), now)
                    .await?;
            let event = match payment.status {
                PaymentStatus::Succeeded => "invoice.paid",
                PaymentStatus::Declined | PaymentStatus::Failed => "invoice.payment_failed",
            };
            invoice_event(conn, merchant, event, &after, Some(&before)).await?;
            (after, Some(payment))
        }
        GatewayReply::Unknown(_) | GatewayReply::ActionRequired(_) => return Ok(None),
    };
    if after.status == InvoiceStatus::Paid {
        let stop = Dunning {
            next_payment_attempt_at: None,
            ..dunning
        };
        repo::set_dunning(conn, merchant, id, stop).await?;
        if let Some(s) = &sub {
            let t = match s.subscription.status {
                SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid => {
                    Some(s.subscription.record_payment_recovery()?)
                }
                // The first invoice is paid: the signup is complete.
                SubscriptionStatus::Incomplete => Some(s.subscription.activate()?),
                _ => None,
            };
            if let Some(t) = t {
                persist_system(conn, merchant, s, t, now).await?;
            }
        }
        return Ok(Some((after, payment)));
    }
    // A first payment is not dunned: the customer pays it (or gives a new card) before the
    // signup expires, and nothing retries it meanwhile.
    let incomplete = sub
        .as_ref()
        .is_some_and(|s| s.subscription.status == SubscriptionStatus::Incomplete);
    let policy = repo::settings(conn, merchant).await?.dunning_policy;
    let first_failed_at = dunning.first_failed_at.unwrap_or(now);
    let next = match p.intent.mode {
        _ if incomplete => None,
        ChargeMode::Scheduled => next_retry_after(&policy, first_failed_at, now),
        // The lease is what the invoice shows now; the schedule before it stays.
        ChargeMode::Immediate | ChargeMode::Manual => p.intent.resume_at,
    };
    repo::set_dunning(
        conn,
        merchant,
        id,
        Dunning {
            next_payment_attempt_at: next,
            first_failed_at: Some(first_failed_at),
        },
    )
    .await?;
    let mut current = sub;
    // A decline of an invoice given up on (a merchant's try at an uncollectible one) does
    // not make the subscription past due: no retry would ever follow to recover it.
    if let Some(s) = &current
        && s.subscription.status == SubscriptionStatus::Active
        && before.status == InvoiceStatus::Open
    {
        let t = s.subscription.record_payment_failure()?;
        current = Some(persist_system(conn, merchant, s, t, now).await?);
    }
    if p.intent.mode == ChargeMode::Scheduled && next.is_none() && !incomplete {
        end_dunning(conn, merchant, &policy, &after, current.as_ref(), now).await?;
    }
    Ok(Some((after, payment)))
}

/// The last retry failed: the invoice becomes uncollectible and the subscription is
/// canceled, or the subscription becomes unpaid, as the policy says.
async fn end_dunning(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    policy: &DunningPolicy,
    after: &Invoice,
    sub: Option<&subs_repo::StoredSubscription>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    match policy.final_state {
        DunningFinalState::Canceled => {
            repo::mark_uncollectible(conn, merchant, after.id, now).await?;
            let marked = invoices_repo::get(conn, merchant, after.id, None, false).await?;
            if marked.status == InvoiceStatus::Uncollectible {
                invoice_event(
                    conn,
                    merchant,
                    "invoice.marked_uncollectible",
                    &marked,
                    Some(after),
                )
                .await?;
            }
            if let Some(s) = sub
                && !s.subscription.is_canceled()
            {
                let product =
                    catalog_repo::get_product(conn, merchant, s.product_id, false).await?;
                let cancel = CancelRequest {
                    reason: None,
                    message: None,
                    confirm: false,
                    timing: Some(CancelTiming::Now),
                    access: Some(AccessEnd::Immediately),
                };
                let t =
                    s.subscription
                        .cancel(&cancel, &product.portal_policy, Actor::System, now)?;
                persist_system(conn, merchant, s, t, now).await?;
            }
        }
        DunningFinalState::Unpaid => {
            if let Some(s) = sub
                && s.subscription.status == SubscriptionStatus::PastDue
            {
                let t = s.subscription.mark_unpaid()?;
                persist_system(conn, merchant, s, t, now).await?;
            }
        }
    }
    Ok(())
}

/// The first retry of `policy` after `now`, counting from the first failure.
fn next_retry_after(
    policy: &DunningPolicy,
    first_failed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    policy
        .retry_after_days
        .iter()
        .filter_map(|d| first_failed_at.checked_add_signed(Duration::days(i64::from(*d))))
        .find(|t| *t > now)
}
