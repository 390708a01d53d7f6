//! Charging invoices: the renewal engine's charges and dunning retries, the retry a new
//! default payment method triggers, and the merchant's `POST /v1/invoices/{id}/pay`.
//!
//! A charge takes three steps, so that no database lock is held while the gateway is
//! called (a real gateway takes hundreds of milliseconds; a batch holding 500
//! subscription locks across 500 such calls would stall every request on them):
//!
//! 1. **Prepare**, in a short transaction: decide whether the invoice is charged, with
//!    which card and as which attempt, and write that down as a *charge intent*
//!    (`charge_intents`, at most one per invoice), with a lease: the invoice's
//!    `next_payment_attempt_at` moves to now + [`AppState::charge_lease`].
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

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::dunning::{ChargeMode, DunningFinalState, DunningPolicy};
use tenure_domain::billing::gateway::{ChargeOutcome, ChargeRequest};
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus, Payment, PaymentStatus};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId};
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

use super::billing::invoice_event;
use super::renewals::set_aside;
use super::subscriptions::{persist_system, truncate};
use super::{EventDraft, record_events};
use crate::dto::billing::InvoiceDto;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a prepared charge may take before the engine sends it again (with the same
/// idempotency key). Unless configured (`--charge-lease-secs`).
pub const DEFAULT_LEASE: Duration = Duration::minutes(5);

/// Invoices claimed per charge batch.
const CHARGE_CHUNK: usize = 500;

/// The 409 for anything that would change an invoice while a charge of it is in flight.
pub(crate) fn payment_in_progress() -> ApiError {
    ApiError::conflict(
        "payment_in_progress",
        "a charge of this invoice is in progress; retry shortly",
    )
}

/// A charge decided and committed (step 1), ready for the gateway.
struct Prepared {
    merchant: MerchantId,
    /// The invoice as read under its lock in step 1.
    invoice: Invoice,
    intent: ChargeIntent,
    /// The card's gateway token; `None` when there is no card (or nothing is due).
    token: Option<String>,
    /// Prepared again from an intent that outlived its lease: its first call may have
    /// reached the gateway, so it is only ever sent again as it was, never released.
    recovered: bool,
}

/// What step 2 produced.
enum Outcome {
    /// Nothing was due: the invoice is paid without a charge.
    NothingDue,
    Charge(ChargeOutcome),
}

/// When a lease taken now ends. Counted from the clock's time when it is later than the
/// round's `now` (the renewals of the round took time), so the calls get the whole lease.
fn lease_end(state: &AppState, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(truncate(state.now())) + state.charge_lease
}

/// Step 2: the gateway call, outside any transaction.
async fn call(state: &AppState, p: &Prepared) -> Outcome {
    if p.intent.amount == 0 {
        return Outcome::NothingDue;
    }
    let Some(token) = &p.token else {
        return Outcome::Charge(ChargeOutcome::Declined {
            code: "no_payment_method".to_owned(),
            message: "the customer has no default payment method".to_owned(),
        });
    };
    let request = ChargeRequest {
        amount: Money::new(p.intent.amount, p.invoice.currency),
        payment_method_token: token.clone(),
        idempotency_key: p.intent.idempotency_key.clone(),
        description: format!("Invoice {}", p.invoice.number),
    };
    Outcome::Charge(state.gateway.charge(&request).await)
}

/// What step 1 does with a locked invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Charge,
    /// Not charged, and no attempt stays scheduled: it is no longer open, or dunning
    /// stopped because its subscription ended.
    StopDunning,
}

/// Whether `invoice` is charged. Dunning stops when the subscription ended, but a final
/// invoice (no period: the items left when it ended) is what ending it billed, and is
/// collected. The merchant may charge anything payable.
fn decide(
    mode: ChargeMode,
    invoice: &Invoice,
    subscription: Option<SubscriptionStatus>,
) -> ApiResult<Decision> {
    if mode == ChargeMode::Manual {
        if !invoice.status.is_payable() {
            return Err(ApiError::conflict(
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

fn new_intent(
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

// ---------------------------------------------------------------------------------------
// The renewal engine

/// Charges up to `batch` due invoices, in batches of [`CHARGE_CHUNK`]: each one prepared
/// in one transaction, sent, and settled in a transaction per merchant.
///
/// A batch's calls run one after another, so they stop once half the lease has passed:
/// those not sent by then are released (their intent deleted, their schedule restored)
/// and claimed afresh. No charge is then still in flight when its lease ends, as long
/// as one call takes less than half the lease, and no other worker sends the same key
/// while the first call is open (a real gateway would refuse it as a concurrent request).
pub(crate) async fn collect_due(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let half_lease = state.charge_lease.to_std().unwrap_or_default() / 2;
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let limit = (batch - done).min(CHARGE_CHUNK);
        // Before the prepare: the leases it takes count from about then.
        let stop_at = std::time::Instant::now() + half_lease;
        let mut claimed = conn
            .transaction(async |conn| prepare_batch(conn, state, now, limit, &skip).await)
            .await?;
        if claimed.count == 0 {
            break;
        }
        // Charges taken over from a stopped worker go first: they may already have
        // reached the gateway, and are never released.
        claimed.prepared.sort_by_key(|p| !p.recovered);
        let mut by_merchant: BTreeMap<uuid::Uuid, Sent> = BTreeMap::new();
        for p in claimed.prepared {
            let sent = by_merchant.entry(p.merchant.uuid()).or_default();
            if std::time::Instant::now() < stop_at {
                let outcome = call(state, &p).await;
                sent.charged.push((p, outcome));
            } else {
                sent.unsent.push(p);
            }
        }
        let mut set_aside_ids = Vec::new();
        let mut released = false;
        for (merchant, sent) in by_merchant {
            let merchant = MerchantId::from_uuid(merchant);
            let settled = conn
                .transaction(async |conn| settle_merchant(conn, state, merchant, &sent, now).await)
                .await;
            match settled {
                Ok(ids) => {
                    set_aside_ids.extend(ids);
                    released |= !sent.unsent.is_empty();
                }
                // One merchant's failure is not the others': all of its charges wait
                // for their leases (nothing of its transaction was kept).
                Err(err) => {
                    set_aside(&err, "charge settlement", &merchant.to_string())?;
                    set_aside_ids.extend(
                        sent.charged
                            .iter()
                            .map(|(p, _)| p)
                            .chain(&sent.unsent)
                            .map(|p| p.invoice.id.uuid()),
                    );
                }
            }
        }
        // Released charges count as handled: they are due again, and the next round
        // (or another worker) sends them.
        done += claimed.count - claimed.busy.len() - set_aside_ids.len();
        skip.extend(claimed.busy);
        skip.extend(set_aside_ids);
        if released {
            // The gateway is slow: let the next round (or another worker) go on.
            break;
        }
    }
    Ok(done)
}

/// One merchant's part of a batch after the calls.
#[derive(Default)]
struct Sent {
    charged: Vec<(Prepared, Outcome)>,
    /// Prepared but not sent: half the lease had passed.
    unsent: Vec<Prepared>,
}

struct Claimed {
    /// Invoices claimed.
    count: usize,
    /// Claimed but left for the next round: a request holds their subscription.
    busy: Vec<uuid::Uuid>,
    prepared: Vec<Prepared>,
}

/// Step 1 for the engine: claims up to `limit` due invoices and prepares their charges
/// with a few statements per merchant. An invoice whose intent outlived its lease (its
/// worker stopped between the steps) is prepared again from that intent.
async fn prepare_batch(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> ApiResult<Claimed> {
    let claimed = invoices_repo::claim_due(conn, now, limit, skip).await?;
    let count = claimed.len();
    let mut by_merchant: BTreeMap<uuid::Uuid, Vec<Invoice>> = BTreeMap::new();
    for (merchant, invoice) in claimed {
        by_merchant
            .entry(merchant.uuid())
            .or_default()
            .push(invoice);
    }
    let mut busy = Vec::new();
    let mut prepared = Vec::new();
    for (merchant, invoices) in by_merchant {
        let merchant = MerchantId::from_uuid(merchant);
        let ids: Vec<InvoiceId> = invoices.iter().map(|i| i.id).collect();
        let mut unsettled: HashMap<InvoiceId, ChargeIntent> =
            intents_repo::of_invoices(conn, merchant, &ids)
                .await?
                .into_iter()
                .map(|i| (i.invoice_id, i))
                .collect();
        let sub_ids: Vec<SubscriptionId> =
            invoices.iter().filter_map(|i| i.subscription_id).collect();
        let subs: HashMap<SubscriptionId, SubscriptionStatus> =
            repo::lock_subscription_statuses(conn, merchant, &sub_ids, WhenHeld::Skip)
                .await?
                .into_iter()
                .collect();
        let customers: Vec<CustomerId> = invoices
            .iter()
            .filter(|i| !unsettled.contains_key(&i.id))
            .map(|i| i.customer_id)
            .collect();
        let cards: HashMap<CustomerId, PaymentMethod> =
            pm_repo::defaults_for_customers(conn, merchant, &customers)
                .await?
                .into_iter()
                .map(|pm| (pm.customer_id, pm))
                .collect();
        let (mut intents, mut leased, mut stopped) = (Vec::new(), Vec::new(), Vec::new());
        for invoice in invoices {
            if let Some(intent) = unsettled.remove(&invoice.id) {
                let token = match intent.payment_method_id {
                    Some(pm) => Some(pm_repo::token_of(conn, merchant, pm).await?),
                    None => None,
                };
                leased.push(invoice.id);
                // Its events show the schedule the attempt was made on, not the lease.
                let invoice = Invoice {
                    next_payment_attempt_at: intent.resume_at,
                    ..invoice
                };
                prepared.push(Prepared {
                    merchant,
                    invoice,
                    intent,
                    token,
                    recovered: true,
                });
                continue;
            }
            let status = match invoice.subscription_id {
                Some(id) => match subs.get(&id) {
                    Some(status) => Some(*status),
                    None => {
                        // A request is changing the subscription: next round.
                        busy.push(invoice.id.uuid());
                        continue;
                    }
                },
                None => None,
            };
            match decide(ChargeMode::Scheduled, &invoice, status)? {
                Decision::StopDunning => stopped.push(invoice.id),
                Decision::Charge => {
                    let card = cards.get(&invoice.customer_id);
                    let intent = new_intent(&invoice, card, ChargeMode::Scheduled, now);
                    intents.push(intent.clone());
                    leased.push(invoice.id);
                    prepared.push(Prepared {
                        merchant,
                        invoice,
                        token: intent
                            .payment_method_id
                            .and(card.map(|c| c.gateway_token.clone())),
                        intent,
                        recovered: false,
                    });
                }
            }
        }
        intents_repo::insert(conn, merchant, &intents).await?;
        repo::schedule_attempts(conn, merchant, &leased, Some(lease_end(state, now))).await?;
        repo::schedule_attempts(conn, merchant, &stopped, None).await?;
    }
    Ok(Claimed {
        count,
        busy,
        prepared,
    })
}

/// Step 3 for the engine, for one merchant in a transaction of its own (so it never
/// waits for another merchant's rows while holding this one's invoice counter). The
/// common case — a successful scheduled charge of an open invoice of an `active`
/// subscription — is recorded in bulk: one insert of the payments, one update marking
/// the invoices paid, one insert of the `invoice.paid` events. Everything else
/// (declines, recoveries, dunning's end, invoices without a subscription) is settled one
/// by one in a savepoint each, so one that fails is set aside (returned; its intent waits
/// for its lease to end) without undoing the others. Charges not sent are released.
async fn settle_merchant(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    merchant: MerchantId,
    sent: &Sent,
    now: DateTime<Utc>,
) -> ApiResult<Vec<uuid::Uuid>> {
    let all = sent.charged.iter().map(|(p, _)| p).chain(&sent.unsent);
    let mut sub_ids: Vec<SubscriptionId> = all
        .clone()
        .filter_map(|p| p.invoice.subscription_id)
        .collect();
    sub_ids.sort_unstable_by_key(|s| s.uuid());
    sub_ids.dedup();
    let subs: HashMap<SubscriptionId, SubscriptionStatus> =
        repo::lock_subscription_statuses(conn, merchant, &sub_ids, WhenHeld::Wait)
            .await?
            .into_iter()
            .collect();
    let ids: Vec<InvoiceId> = all.map(|p| p.invoice.id).collect();
    let versions: HashMap<InvoiceId, invoices_repo::InvoiceVersion> =
        invoices_repo::lock_versions(conn, merchant, &ids)
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
    release_unsent(conn, merchant, &sent.unsent, now).await?;
    let (bulk, one_by_one): (Vec<_>, Vec<_>) = sent
        .charged
        .iter()
        .partition(|(p, o)| bulk_candidate(p, o, versions.get(&p.invoice.id), &subs));
    let attempts: Vec<(InvoiceId, u32)> = bulk
        .iter()
        .map(|(p, _)| (p.invoice.id, p.intent.attempt))
        .collect();
    let taken: HashSet<InvoiceId> = intents_repo::take(conn, merchant, &attempts)
        .await?
        .into_iter()
        .collect();
    let paid: Vec<(&Invoice, NewPaymentAttempt)> = bulk
        .iter()
        .filter(|(p, _)| taken.contains(&p.invoice.id))
        .filter_map(|(p, o)| match o {
            Outcome::Charge(outcome) => Some((&p.invoice, attempt_of(state, p, outcome))),
            Outcome::NothingDue => None,
        })
        .collect();
    record_paid_in_bulk(conn, merchant, paid, now).await?;
    let mut set_aside_ids = Vec::new();
    for (p, outcome) in one_by_one {
        let id = p.invoice.id;
        let settled = conn
            .transaction(async |conn| settle_locked(conn, state, p, outcome, now).await)
            .await;
        if let Err(err) = settled {
            set_aside(&err, "charge", &id.to_string())?;
            set_aside_ids.push(id.uuid());
        }
    }
    Ok(set_aside_ids)
}

/// Deletes the intents of charges this batch prepared and never sent, and gives their
/// invoices back their schedule, for the next claim to prepare them afresh. A charge
/// taken over from a stopped worker keeps its intent (its first call may have reached
/// the gateway, so it is only ever sent again as it was) and is due again at once.
async fn release_unsent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    unsent: &[Prepared],
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let (recovered, fresh): (Vec<&Prepared>, Vec<&Prepared>) =
        unsent.iter().partition(|p| p.recovered);
    let recovered: Vec<InvoiceId> = recovered.iter().map(|p| p.invoice.id).collect();
    repo::schedule_attempts(conn, merchant, &recovered, Some(now)).await?;
    let attempts: Vec<(InvoiceId, u32)> = fresh
        .iter()
        .map(|p| (p.invoice.id, p.intent.attempt))
        .collect();
    let taken: HashSet<InvoiceId> = intents_repo::take(conn, merchant, &attempts)
        .await?
        .into_iter()
        .collect();
    for p in fresh.into_iter().filter(|p| taken.contains(&p.invoice.id)) {
        repo::schedule_attempts(conn, merchant, &[p.invoice.id], p.intent.resume_at).await?;
    }
    Ok(())
}

/// Whether a sent charge may be recorded in bulk: a successful scheduled charge of an
/// invoice unchanged since step 1 (still open), of an `active` subscription, so no
/// recovery or dunning step follows.
fn bulk_candidate(
    p: &Prepared,
    outcome: &Outcome,
    version: Option<&invoices_repo::InvoiceVersion>,
    subs: &HashMap<SubscriptionId, SubscriptionStatus>,
) -> bool {
    let unchanged = version.is_some_and(|v| {
        v.status == InvoiceStatus::Open
            && v.status == p.invoice.status
            && v.attempt_count == p.invoice.attempt_count
            && v.updated_at == p.invoice.updated_at
    });
    matches!(outcome, Outcome::Charge(o) if o.is_success())
        && p.intent.mode == ChargeMode::Scheduled
        && p.intent.attempt == p.invoice.attempt_count + 1
        && unchanged
        && p.invoice
            .subscription_id
            .and_then(|id| subs.get(&id))
            .is_some_and(|s| *s == SubscriptionStatus::Active)
}

fn attempt_of(state: &AppState, p: &Prepared, outcome: &ChargeOutcome) -> NewPaymentAttempt {
    NewPaymentAttempt {
        invoice_id: p.invoice.id,
        payment_method_id: p.intent.payment_method_id,
        amount: Money::new(p.intent.amount, p.invoice.currency),
        gateway: state.gateway.name().to_owned(),
        idempotency_key: p.intent.idempotency_key.clone(),
        outcome: outcome.clone(),
    }
}

async fn record_paid_in_bulk(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    paid: Vec<(&Invoice, NewPaymentAttempt)>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let befores: Vec<&Invoice> = paid.iter().map(|(i, _)| *i).collect();
    let recorded = invoices_repo::record_successful_charges(conn, merchant, paid, now).await?;
    let rendered: Vec<(InvoiceDto, InvoiceDto)> = befores
        .iter()
        .zip(&recorded)
        .map(|(before, (after, _))| (InvoiceDto::from(after), InvoiceDto::from(*before)))
        .collect();
    let drafts = rendered
        .iter()
        .zip(&recorded)
        .map(|((after, before), (invoice, _))| EventDraft {
            event_type: "invoice.paid",
            resource_type: "invoice",
            resource_id: invoice.id.to_string(),
            after,
            before: Some(before),
            at: invoice.updated_at,
        })
        .collect();
    record_events(conn, merchant, drafts).await
}

// ---------------------------------------------------------------------------------------
// One invoice, for a request

/// `POST /v1/invoices/{id}/pay`: charges an open or uncollectible invoice now, also one
/// dunning stopped collecting. Returns the invoice after the attempt and its payment
/// (`None` when nothing was due). A customer without a default payment method is a 409
/// `no_payment_method` with nothing recorded; a charge already in flight is a 409
/// `payment_in_progress`.
pub async fn pay(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
) -> ApiResult<(Invoice, Option<Payment>)> {
    match charge_now(state, merchant, id, ChargeMode::Manual).await? {
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

/// Retries a customer's open invoices at once (after a new default payment method was
/// committed). Failures are logged: the payment-method change itself succeeded.
pub(crate) async fn retry_open_invoices(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
) {
    if let Err(err) = retry_open_invoices_inner(state, merchant, customer).await {
        tracing::warn!(code = err.code(), error = %err, customer = %customer,
            "retrying open invoices after a payment-method change failed");
    }
}

async fn retry_open_invoices_inner(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
) -> ApiResult<()> {
    let ids: Vec<InvoiceId> = {
        let mut conn = state.db.conn().await?;
        repo::open_invoices_of_customer(&mut conn, merchant, customer).await?
    };
    for id in ids {
        charge_now(state, merchant, id, ChargeMode::Immediate).await?;
    }
    Ok(())
}

/// The three steps for one invoice. `None`: not charged (an immediate retry of an
/// invoice that is not collectible or has a charge in flight), or settled by the engine
/// after this request's lease ran out.
async fn charge_now(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    mode: ChargeMode,
) -> ApiResult<Option<(Invoice, Option<Payment>)>> {
    let now = truncate(state.now());
    let mut conn = state.db.conn().await?;
    let prepared = conn
        .transaction(async |conn| prepare_one(conn, state, merchant, id, mode, now).await)
        .await?;
    let Some(p) = prepared else {
        return Ok(None);
    };
    let outcome = call(state, &p).await;
    conn.transaction(async |conn| {
        if let Some(sub) = p.invoice.subscription_id {
            repo::lock_subscription_statuses(conn, merchant, &[sub], WhenHeld::Wait).await?;
        }
        invoices_repo::lock_versions(conn, merchant, &[id]).await?;
        settle_locked(conn, state, &p, &outcome, now).await
    })
    .await
}

/// Step 1 for one invoice.
async fn prepare_one(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    mode: ChargeMode,
    now: DateTime<Utc>,
) -> ApiResult<Option<Prepared>> {
    let unlocked = invoices_repo::get(conn, merchant, id, None, false)
        .await
        .map_err(ApiError::from_store("invoice"))?;
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
        return match mode {
            ChargeMode::Manual => Err(payment_in_progress()),
            ChargeMode::Scheduled | ChargeMode::Immediate => Ok(None),
        };
    }
    if decide(mode, &invoice, status)? == Decision::StopDunning {
        repo::schedule_attempts(conn, merchant, &[id], None).await?;
        return Ok(None);
    }
    let card = match invoice.totals.amount_due.is_zero() {
        true => None,
        false => pm_repo::default_for_customer(conn, merchant, invoice.customer_id).await?,
    };
    if card.is_none() && !invoice.totals.amount_due.is_zero() && mode == ChargeMode::Manual {
        return Err(ApiError::conflict(
            "no_payment_method",
            "the customer has no default payment method",
        ));
    }
    let intent = new_intent(&invoice, card.as_ref(), mode, now);
    intents_repo::insert(conn, merchant, std::slice::from_ref(&intent)).await?;
    repo::schedule_attempts(conn, merchant, &[id], Some(lease_end(state, now))).await?;
    Ok(Some(Prepared {
        merchant,
        invoice,
        token: card.map(|c| c.gateway_token),
        intent,
        recovered: false,
    }))
}

// ---------------------------------------------------------------------------------------
// Settling one charge

/// Step 3 for one charge; the caller holds its subscription's and invoice's locks.
/// `None` when its intent is gone (another worker settled it).
async fn settle_locked(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    p: &Prepared,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> ApiResult<Option<(Invoice, Option<Payment>)>> {
    let merchant = p.merchant;
    let id = p.invoice.id;
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
        Outcome::NothingDue => {
            let after = invoices_repo::mark_paid_without_charge(conn, merchant, id, now).await?;
            invoice_event(conn, merchant, "invoice.paid", &after, Some(&before)).await?;
            (after, None)
        }
        Outcome::Charge(outcome) => {
            let (after, payment) = invoices_repo::record_payment_attempt(
                conn,
                merchant,
                attempt_of(state, p, outcome),
                now,
            )
            .await?;
            let event = match payment.status {
                PaymentStatus::Succeeded => "invoice.paid",
                PaymentStatus::Declined | PaymentStatus::Failed => "invoice.payment_failed",
            };
            invoice_event(conn, merchant, event, &after, Some(&before)).await?;
            (after, Some(payment))
        }
    };
    if after.status == InvoiceStatus::Paid {
        let stop = Dunning {
            next_payment_attempt_at: None,
            ..dunning
        };
        repo::set_dunning(conn, merchant, id, stop).await?;
        if let Some(s) = &sub
            && matches!(
                s.subscription.status,
                SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
            )
        {
            let t = s.subscription.record_payment_recovery()?;
            persist_system(conn, merchant, s, t, now).await?;
        }
        return Ok(Some((after, payment)));
    }
    let policy = repo::settings(conn, merchant).await?.dunning_policy;
    let first_failed_at = dunning.first_failed_at.unwrap_or(now);
    let next = match p.intent.mode {
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
    if p.intent.mode == ChargeMode::Scheduled && next.is_none() {
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
) -> ApiResult<()> {
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
