//! Charge collection: the engine's side of charging. Due invoices (renewals, dunning
//! retries, charges whose lease ended) are claimed in batches, prepared in one
//! transaction, sent to the gateway outside any transaction, and settled in a
//! transaction per merchant; the steps and their guarantees are described in
//! `tenure_app::billing::charging`, which also charges one invoice for a request.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_app::billing::charging::{
    self, CHARGE_CHUNK, Decision, GatewayReply, Prepared, call, decide, lease_end, new_intent,
    settle_locked,
};
use tenure_app::billing::gateways;
use tenure_app::dto::billing::InvoiceDto;
use tenure_app::events::{EventDraft, record_events};
use tenure_app::{App, AppResult};
use tenure_domain::billing::dunning::ChargeMode;
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::subscription::SubscriptionStatus;
use tenure_domain::test_clock::WorkScope;
use tenure_store::repo::charge_intents::{self as intents_repo, ChargeIntent};
use tenure_store::repo::invoices::{self as invoices_repo, NewPaymentAttempt};
use tenure_store::repo::payment_methods as pm_repo;
use tenure_store::repo::renewals::{self as repo, WhenHeld};

use crate::tolerate_item_failure;

/// Charges up to `batch` due invoices, in batches of [`CHARGE_CHUNK`]: each one prepared
/// in one transaction, sent, and settled in a transaction per merchant.
///
/// A batch's calls run one after another, so they stop once half the lease has passed:
/// those not sent by then are released (their intent deleted, their schedule restored)
/// and claimed afresh. No charge is then still in flight when its lease ends, as long
/// as one call takes less than half the lease, and no other worker sends the same key
/// while the first call is open (a real gateway would refuse it as a concurrent request).
pub async fn collect_due(
    conn: &mut AsyncPgConnection,
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let half_lease = state.charge_lease.to_std().unwrap_or_default() / 2;
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let limit = (batch - done).min(CHARGE_CHUNK);
        // Before the prepare: the leases it takes count from about then.
        let stop_at = std::time::Instant::now() + half_lease;
        let mut claimed = conn
            .transaction(async |conn| prepare_batch(conn, state, scope, now, limit, &skip).await)
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
                let outcome = call(&p).await;
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
                .transaction(async |conn| settle_merchant(conn, merchant, &sent, now).await)
                .await;
            match settled {
                Ok(ids) => {
                    set_aside_ids.extend(ids);
                    released |= !sent.unsent.is_empty();
                }
                // One merchant's failure is not the others': all of its charges wait
                // for their leases (nothing of its transaction was kept).
                Err(err) => {
                    tolerate_item_failure(&err, "charge settlement", &merchant.to_string())?;
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
    charged: Vec<(Prepared, GatewayReply)>,
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
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> AppResult<Claimed> {
    let claimed = invoices_repo::claim_due(conn, scope, now, limit, skip).await?;
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
        let gateway = match gateways::resolve(conn, state, merchant).await {
            Ok(resolved) => resolved.gateway.clone(),
            // A merchant whose gateway cannot be made (keys that no configured operator
            // key opens) waits; the others are charged.
            Err(err) => {
                tolerate_item_failure(&err, "gateway of merchant", &merchant.to_string())?;
                busy.extend(ids.iter().map(|i| i.uuid()));
                continue;
            }
        };
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
                    gateway: gateway.clone(),
                    on_session: false,
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
                        gateway: gateway.clone(),
                        on_session: false,
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
    merchant: MerchantId,
    sent: &Sent,
    now: DateTime<Utc>,
) -> AppResult<Vec<uuid::Uuid>> {
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
            GatewayReply::Charge(outcome) => Some((&p.invoice, charging::attempt_of(p, outcome))),
            GatewayReply::NothingDue
            | GatewayReply::Unknown(_)
            | GatewayReply::ActionRequired(_) => None,
        })
        .collect();
    record_paid_in_bulk(conn, merchant, paid, now).await?;
    let mut set_aside_ids = Vec::new();
    for (p, outcome) in one_by_one {
        let id = p.invoice.id;
        let settled = conn
            .transaction(async |conn| settle_locked(conn, p, outcome, now).await)
            .await;
        if let Err(err) = settled {
            tolerate_item_failure(&err, "charge", &id.to_string())?;
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
) -> AppResult<()> {
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
    outcome: &GatewayReply,
    version: Option<&invoices_repo::InvoiceVersion>,
    subs: &HashMap<SubscriptionId, SubscriptionStatus>,
) -> bool {
    let unchanged = version.is_some_and(|v| {
        v.status == InvoiceStatus::Open
            && v.status == p.invoice.status
            && v.attempt_count == p.invoice.attempt_count
            && v.updated_at == p.invoice.updated_at
    });
    matches!(outcome, GatewayReply::Charge(o) if o.is_success())
        && p.intent.mode == ChargeMode::Scheduled
        && p.intent.attempt == p.invoice.attempt_count + 1
        && unchanged
        && p.invoice
            .subscription_id
            .and_then(|id| subs.get(&id))
            .is_some_and(|s| *s == SubscriptionStatus::Active)
}

async fn record_paid_in_bulk(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    paid: Vec<(&Invoice, NewPaymentAttempt)>,
    now: DateTime<Utc>,
) -> AppResult<()> {
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
    record_events(conn, merchant, drafts).await?;
    let paid: Vec<&Invoice> = recorded.iter().map(|(invoice, _)| invoice).collect();
    tenure_app::orders::follow_paid_invoices(conn, merchant, &paid).await
}
