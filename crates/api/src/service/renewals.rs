//! The renewal engine: renewals, charging, dunning retries and upcoming-renewal notices.
//!
//! [`run_due_renewals`] runs three kinds of work, claimed with `FOR UPDATE SKIP LOCKED`
//! so any number of workers share them. Renewals and charges are claimed in batches of
//! up to `RENEW_CHUNK` (500) per transaction and the common case of each is written with a
//! few bulk statements (see `renew_batch` and `collect_batch`); the rest go one by
//! one through the same code as before:
//!
//! 1. **Renew.** A subscription whose period (or trial) ended: the due scheduled changes
//!    apply first (a cancellation or downgrade at period end takes effect before
//!    billing), then the domain's `renew(now)` starts the next period. Saving the
//!    transition invoices the new period in the same transaction (`UNIQUE (merchant,
//!    subscription, period_start)`: a period already invoiced is skipped) and schedules
//!    its first charge for now (`next_payment_attempt_at`).
//! 2. **Charge.** An invoice whose `next_payment_attempt_at` is due is charged through the
//!    gateway with the idempotency key `"{invoice}:{attempt}"`. Success: paid, and a
//!    past-due or unpaid subscription recovers. Decline: the subscription goes past due
//!    and the next retry is scheduled per the merchant's dunning policy (offsets from the
//!    first failure); when none is left, the subscription ends `canceled` (the invoice
//!    becomes `uncollectible`) or `unpaid` (the invoice stays open for the customer).
//! 3. **Notify.** `invoice.upcoming` once per subscription period, `upcoming_notice_days`
//!    before it ends (marker column `upcoming_notice_for`).
//!
//! A crash anywhere rolls the batch's (or item's) transaction back: nothing is
//! half-renewed, no invoice number is lost, and a charge that reached the gateway but was
//! not recorded is replayed (same key, same attempt number) instead of charged twice.
//! Charging happens in a transaction after the renewal's commit, so the invoice id in
//! that key is durable before the gateway is called.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::discount::{DiscountOutcome, apply_discounts, discount_line};
use tenure_domain::billing::dunning::{DunningFinalState, DunningPolicy};
use tenure_domain::billing::gateway::ChargeRequest;
use tenure_domain::billing::invoice::{
    self, Invoice, InvoiceLine, InvoiceStatus, LineKind, Payment,
};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, PlanId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    AccessEnd, Actor, CancelRequest, CancelTiming, PlanTerms, Subscription, SubscriptionEvent,
    SubscriptionStatus,
};
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice, NewPaymentAttempt};
use tenure_store::repo::payment_methods as pm_repo;
use tenure_store::repo::pending_items::{self as pending_repo, PendingItem};
use tenure_store::repo::renewals::{self as repo, BillingSettings, Dunning};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};

use super::billing::{NoPaymentMethod, charge_in_tx, invoice_event};
use super::subscriptions::{Caller, apply_due_in_tx, persist_system, truncate};
use super::{EventDraft, next_update_time, record_event, record_events};
use crate::dto::billing::InvoiceDto;
use crate::dto::renewals::UpcomingInvoiceDto;
use crate::dto::subscriptions::SubscriptionDto;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The period a subscription event begins, which must be invoiced.
pub(crate) fn period_to_invoice(event: &SubscriptionEvent) -> Option<Period> {
    match event {
        SubscriptionEvent::Created {
            status: SubscriptionStatus::Active,
            current_period,
            ..
        } => Some(*current_period),
        SubscriptionEvent::Renewed { period } | SubscriptionEvent::TrialEnded { period } => {
            Some(*period)
        }
        SubscriptionEvent::Resumed {
            new_period: Some(period),
            ..
        } => Some(*period),
        _ => None,
    }
}

/// What the invoice of a period bills, and what it uses up.
#[derive(Debug, Clone, Default)]
pub struct InvoiceDraft {
    pub lines: Vec<InvoiceLine>,
    /// The pending items it takes (linked to the invoice when it is created).
    pub items: Vec<uuid::Uuid>,
    /// The discounts it applies (one cycle each is used up when it is created).
    pub discounts: Vec<uuid::Uuid>,
}

/// The lines of a period's invoice: the plan's price, then the subscription's pending
/// items (prorations of plan changes) as `proration` lines, then its active discounts
/// (oldest first) by the domain's rule (`tenure_domain::billing::discount`).
pub fn renewal_lines(
    plan_name: &str,
    terms: &PlanTerms,
    period: Period,
    pending: &[PendingItem],
    discounts: &[StoredDiscount],
) -> ApiResult<InvoiceDraft> {
    let currency = terms.price.currency;
    let mut draft = InvoiceDraft {
        lines: vec![InvoiceLine::new(
            LineKind::Plan,
            format!(
                "{plan_name} ({} – {})",
                period.start.format("%Y-%m-%d"),
                period.end.format("%Y-%m-%d")
            ),
            terms.price,
        )?],
        ..InvoiceDraft::default()
    };
    for item in pending {
        // Plan changes never cross currencies, so this is only a guard: such an item
        // stays pending rather than break the invoice.
        if item.amount.currency != currency {
            tracing::warn!(item = %item.id, subscription = %item.subscription_id,
                "pending item in another currency than the invoice; left pending");
            continue;
        }
        draft.lines.push(InvoiceLine::new(
            LineKind::Proration,
            item.description.clone(),
            item.amount,
        )?);
        draft.items.push(item.id);
    }
    let subtotal = invoice::totals(currency, &draft.lines)?.subtotal;
    let (lines, used) = discount_lines(subtotal, discounts)?;
    draft.lines.extend(lines);
    draft.discounts = used;
    Ok(draft)
}

/// The discounts hook: one `discount` line per active discount that applies (an amount
/// discount in another currency is skipped and logged, and keeps its cycles), and the
/// ids of those applied.
fn discount_lines(
    subtotal: Money,
    discounts: &[StoredDiscount],
) -> ApiResult<(Vec<InvoiceLine>, Vec<uuid::Uuid>)> {
    let outcomes = apply_discounts(subtotal, discounts.iter().map(|d| &d.value))?;
    let mut lines = Vec::new();
    let mut used = Vec::new();
    for (d, outcome) in discounts.iter().zip(outcomes) {
        match outcome {
            DiscountOutcome::Applied { taken } => {
                lines.push(discount_line(&d.value, taken)?);
                used.push(d.id);
            }
            DiscountOutcome::SkippedCurrency => {
                tracing::warn!(discount = %d.typed_id(), subscription = %d.subscription_id,
                    currency = %subtotal.currency,
                    "amount discount in another currency than the invoice; skipped");
            }
        }
    }
    Ok((lines, used))
}

/// Invoices `period` of the subscription inside the caller's transaction and schedules
/// its charge for `now` (a zero invoice is paid at once). The invoice takes the
/// subscription's un-invoiced pending items (locked, then linked to it) and applies its
/// active discounts (locked, one cycle each used up). A period already invoiced is left
/// alone (`None`), and then nothing is taken or used up.
pub(crate) async fn invoice_period_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    period: Period,
    now: DateTime<Utc>,
) -> ApiResult<Option<Invoice>> {
    let terms = &sub.subscription.plan;
    let plan = catalog_repo::get_plan(conn, merchant, terms.plan_id).await?;
    let pending = pending_repo::lock_uninvoiced(conn, merchant, sub.subscription.id).await?;
    let discounts =
        discounts_repo::lock_active_for_subscription(conn, merchant, sub.subscription.id).await?;
    let draft = renewal_lines(&plan.name, terms, period, &pending, &discounts)?;
    let created = invoices_repo::create_invoice(
        conn,
        merchant,
        NewInvoice {
            customer_id: sub.customer_id,
            subscription_id: Some(sub.subscription.id),
            period: Some(period),
            currency: terms.price.currency,
            lines: draft.lines,
            status: InvoiceStatus::Open,
        },
        now,
    )
    .await;
    let invoice = match created {
        Ok(invoice) => invoice,
        Err(StoreError::Conflict { constraint })
            if constraint == invoices_repo::SUBSCRIPTION_PERIOD_UNIQUE =>
        {
            tracing::info!(
                subscription = %sub.subscription.id,
                period_start = %period.start,
                "period already invoiced; skipped"
            );
            return Ok(None);
        }
        Err(other) => return Err(other.into()),
    };
    pending_repo::link_to_invoice(conn, merchant, &draft.items, invoice.id).await?;
    discounts_repo::consume(conn, merchant, &draft.discounts).await?;
    settle_or_schedule(conn, merchant, invoice, now)
        .await
        .map(Some)
}

/// The final invoice of a subscription that ended with pending items (an upgrade's
/// proration, then a cancellation before the next renewal): every un-invoiced item in
/// the plan's currency as a `proration` line, no period, due now. Without it the upgrade
/// would never be billed. No discounts apply (they are granted per renewal). `None` when
/// nothing is pending.
pub(crate) async fn invoice_final_items_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    now: DateTime<Utc>,
) -> ApiResult<Option<Invoice>> {
    let currency = sub.subscription.plan.price.currency;
    let pending = pending_repo::lock_uninvoiced(conn, merchant, sub.subscription.id).await?;
    let mut lines = Vec::new();
    let mut items = Vec::new();
    for item in pending.iter().filter(|i| i.amount.currency == currency) {
        lines.push(InvoiceLine::new(
            LineKind::Proration,
            item.description.clone(),
            item.amount,
        )?);
        items.push(item.id);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let invoice = invoices_repo::create_invoice(
        conn,
        merchant,
        NewInvoice {
            customer_id: sub.customer_id,
            subscription_id: Some(sub.subscription.id),
            period: None,
            currency,
            lines,
            status: InvoiceStatus::Open,
        },
        now,
    )
    .await?;
    pending_repo::link_to_invoice(conn, merchant, &items, invoice.id).await?;
    settle_or_schedule(conn, merchant, invoice, now)
        .await
        .map(Some)
}

/// A new open invoice: paid at once when nothing is due (a credit stays on it), else
/// scheduled for a charge now.
async fn settle_or_schedule(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: Invoice,
    now: DateTime<Utc>,
) -> ApiResult<Invoice> {
    if invoice.totals.amount_due.is_zero() {
        let paid = invoices_repo::mark_paid_without_charge(conn, merchant, invoice.id, now).await?;
        invoice_event(conn, merchant, "invoice.paid", &paid, Some(&invoice)).await?;
        return Ok(paid);
    }
    repo::set_dunning(
        conn,
        merchant,
        invoice.id,
        Dunning {
            next_payment_attempt_at: Some(now),
            first_failed_at: None,
        },
    )
    .await?;
    Ok(Invoice {
        next_payment_attempt_at: Some(now),
        ..invoice
    })
}

/// The period and terms the next invoice of `sub` will bill, if it renews: the first
/// paid period after a trial, or the period after the current one once the changes due
/// at its end applied (a cancellation means none; a downgrade bills the new plan).
pub fn next_invoice_period(sub: &Subscription) -> Option<(Period, PlanTerms)> {
    let at = sub.current_period.end;
    let applied = sub.apply_due(at).ok()?;
    for event in &applied.events {
        if let SubscriptionEvent::TrialEnded { period } = event {
            return Some((*period, applied.subscription.plan));
        }
    }
    let renewed = applied.subscription.renew(at).ok()?;
    Some((
        renewed.subscription.current_period,
        renewed.subscription.plan,
    ))
}

async fn upcoming_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> ApiResult<Option<UpcomingInvoiceDto>> {
    let Some((period, terms)) = next_invoice_period(&s.subscription) else {
        return Ok(None);
    };
    let plan = catalog_repo::get_plan(conn, merchant, terms.plan_id).await?;
    // The same lines the renewal will build, from the same rows, read without locks and
    // without using anything up.
    let pending = pending_repo::uninvoiced(conn, merchant, s.subscription.id, false).await?;
    let discounts =
        discounts_repo::active_for_subscription(conn, merchant, s.subscription.id).await?;
    let draft = renewal_lines(&plan.name, &terms, period, &pending, &discounts)?;
    let totals = invoice::totals(terms.price.currency, &draft.lines)?;
    Ok(Some(UpcomingInvoiceDto::render(
        s,
        &terms,
        period,
        &draft.lines,
        &totals,
    )))
}

/// The invoice the next renewal of subscription `id` will create (409
/// `no_upcoming_invoice` when it will not renew).
pub async fn upcoming_invoice(
    state: &AppState,
    caller: Caller,
    id: SubscriptionId,
) -> ApiResult<UpcomingInvoiceDto> {
    let s = super::subscriptions::get(state, caller, id).await?;
    let mut conn = state.db.conn().await?;
    upcoming_of(&mut conn, caller.merchant, &s)
        .await?
        .ok_or_else(|| {
            ApiError::conflict(
                "no_upcoming_invoice",
                format!(
                    "the subscription is {} and will not renew",
                    s.subscription.status
                ),
            )
        })
}

/// One round of the renewal engine at `now`: at most `batch` renewals, `batch` charges
/// and `batch` notices. Returns how many items were handled; call it again while that is
/// not zero to drain a backlog.
pub async fn run_due_renewals(
    state: &AppState,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let now = truncate(now);
    let mut conn = state.db.conn().await?;
    let renewed = renew_due(&mut conn, now, batch).await?;
    let charged = collect_due(&mut conn, state, now, batch).await?;
    let notified = notify_due(&mut conn, now, batch).await?;
    if renewed + charged + notified > 0 {
        tracing::info!(renewed, charged, notified, "renewal round");
    }
    Ok(renewed + charged + notified)
}

/// Runs rounds until nothing is due (tests, and `tenure worker` start-up catch-up).
pub async fn run_until_idle(state: &AppState, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut total = 0;
    for _ in 0..10_000 {
        let n = run_due_renewals(state, now, 100).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    Ok(total)
}

enum Round {
    Idle,
    Skipped(uuid::Uuid),
    Done,
}

/// Renews up to `batch` due subscriptions: claimed in batches, most of them renewed in
/// bulk (see [`renew_batch`]); the rest one by one, each in a transaction of its own.
async fn renew_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let limit = (batch - done).min(RENEW_CHUNK);
        let outcome = conn
            .transaction(async |conn| renew_batch(conn, now, limit, &skip).await)
            .await?;
        if outcome.claimed == 0 {
            break;
        }
        done += outcome.renewed;
        for (merchant, id) in outcome.one_by_one {
            match renew_one(conn, merchant, id, now).await {
                Ok(Round::Done) => done += 1,
                Ok(Round::Skipped(id)) => skip.push(id),
                Ok(Round::Idle) => {}
                Err(err) => {
                    set_aside(&err, "renewal", &id.to_string())?;
                    skip.push(id.uuid());
                }
            }
        }
    }
    Ok(done)
}

/// Subscriptions claimed per renewal transaction. Larger batches mean fewer commits and
/// counter round trips, but hold their row locks (and the merchant's invoice counter,
/// from the invoice insert to the commit) longer.
const RENEW_CHUNK: usize = 500;

struct BatchOutcome {
    claimed: usize,
    renewed: usize,
    /// Claimed but not plain renewals: handled one by one after the batch commits.
    one_by_one: Vec<(MerchantId, SubscriptionId)>,
}

/// A claimed subscription whose renewal is plain: no due or pending scheduled change,
/// not in a trial, and `renew` starts the next period of the same plan.
struct PlainRenewal {
    before: StoredSubscription,
    after: StoredSubscription,
    period: Period,
}

fn plain_renewal(before: &StoredSubscription, now: DateTime<Utc>) -> Option<PlainRenewal> {
    let sub = &before.subscription;
    if !sub.scheduled_changes.is_empty() || sub.status == SubscriptionStatus::Trialing {
        return None;
    }
    let applied = sub.apply_due(now).ok()?;
    if !applied.events.is_empty() {
        return None;
    }
    let renewed = applied.subscription.renew(now).ok()?;
    let [SubscriptionEvent::Renewed { period }] = renewed.events.as_slice() else {
        return None;
    };
    let next = &renewed.subscription;
    if next.plan.plan_id != sub.plan.plan_id
        || !next.scheduled_changes.is_empty()
        || next.status == SubscriptionStatus::Trialing
    {
        return None;
    }
    let period = *period;
    let after = StoredSubscription {
        subscription: renewed.subscription,
        updated_at: next_update_time(before.updated_at, now),
        ..before.clone()
    };
    Some(PlainRenewal {
        before: before.clone(),
        after,
        period,
    })
}

/// Claims up to `limit` due subscriptions in the caller's transaction and renews the
/// plain ones in bulk, per merchant: one `UPDATE` of the subscriptions, one insert of
/// their `subscription.renewed` events, then their invoices with one counter update and
/// one insert each for invoices and lines. The same rows and events as the one-by-one
/// path; the whole batch commits or rolls back together. The others (due scheduled
/// changes, trials, pending items, discounts, a zero invoice) are returned for
/// [`renew_one`].
async fn renew_batch(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> ApiResult<BatchOutcome> {
    let claimed = repo::claim_due_renewals(conn, now, limit, skip).await?;
    let mut outcome = BatchOutcome {
        claimed: claimed.len(),
        renewed: 0,
        one_by_one: Vec::new(),
    };
    let mut plain: BTreeMap<uuid::Uuid, Vec<PlainRenewal>> = BTreeMap::new();
    for (merchant, sub) in claimed {
        match plain_renewal(&sub, now) {
            Some(r) => plain.entry(merchant.uuid()).or_default().push(r),
            None => outcome.one_by_one.push((merchant, sub.subscription.id)),
        }
    }
    // Merchants in a fixed order, so two batches take invoice counters in the same order.
    for (merchant, renewals) in plain {
        let merchant = MerchantId::from_uuid(merchant);
        let (renewed, one_by_one) = renew_plain(conn, merchant, renewals, now).await?;
        outcome.renewed += renewed;
        outcome
            .one_by_one
            .extend(one_by_one.into_iter().map(|id| (merchant, id)));
    }
    Ok(outcome)
}

/// Saves the plain renewals of one merchant (see [`renew_batch`]). Returns how many were
/// renewed and the subscriptions left for the one-by-one path: those with pending items
/// or discounts, and zero invoices (paid at once), which are rare enough not to have a
/// bulk form.
async fn renew_plain(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    renewals: Vec<PlainRenewal>,
    now: DateTime<Utc>,
) -> ApiResult<(usize, Vec<SubscriptionId>)> {
    // Pending proration items and active discounts take locks and use up cycles: such
    // renewals take the full path. Both are only written under the subscription's row
    // lock, which this batch holds, so the answer stays true until the commit.
    let ids: Vec<SubscriptionId> = renewals.iter().map(|r| r.after.subscription.id).collect();
    let mut full_path = pending_repo::subscriptions_with_uninvoiced(conn, merchant, &ids).await?;
    full_path.extend(
        discounts_repo::active_for_subscriptions(conn, merchant, &ids)
            .await?
            .into_iter()
            .map(|d| d.subscription_id),
    );
    let mut plan_names: HashMap<PlanId, String> = HashMap::new();
    let mut kept = Vec::with_capacity(renewals.len());
    let mut one_by_one = Vec::new();
    for r in renewals {
        if full_path.contains(&r.after.subscription.id) {
            one_by_one.push(r.after.subscription.id);
            continue;
        }
        let terms = &r.after.subscription.plan;
        let plan_name = match plan_names.entry(terms.plan_id) {
            Entry::Occupied(name) => name.into_mut(),
            Entry::Vacant(slot) => slot.insert(
                catalog_repo::get_plan(conn, merchant, terms.plan_id)
                    .await?
                    .name,
            ),
        };
        let lines = renewal_lines(plan_name, terms, r.period, &[], &[])?.lines;
        let totals = invoice::totals(terms.price.currency, &lines)?;
        if totals.amount_due.is_zero() {
            one_by_one.push(r.after.subscription.id);
        } else {
            kept.push((r, lines));
        }
    }
    if kept.is_empty() {
        return Ok((0, one_by_one));
    }
    let saved: Vec<&StoredSubscription> = kept.iter().map(|(r, _)| &r.after).collect();
    repo::save_renewed(conn, merchant, &saved).await?;
    let rendered: Vec<(SubscriptionDto, SubscriptionDto)> = kept
        .iter()
        .map(|(r, _)| {
            (
                SubscriptionDto::render(&r.after, Actor::Merchant),
                SubscriptionDto::render(&r.before, Actor::Merchant),
            )
        })
        .collect();
    let drafts = kept
        .iter()
        .zip(&rendered)
        .map(|((r, _), (after, before))| EventDraft {
            event_type: RENEWED_EVENT,
            resource_type: "subscription",
            resource_id: r.after.subscription.id.to_string(),
            after,
            before: Some(before),
            at: r.after.updated_at,
        })
        .collect();
    record_events(conn, merchant, drafts).await?;
    // One invoice per subscription period: a period invoiced already is skipped, as in
    // `invoice_period_in_tx` (the row locks keep the answer true until the commit).
    let periods: Vec<(SubscriptionId, DateTime<Utc>)> = kept
        .iter()
        .map(|(r, _)| (r.after.subscription.id, r.period.start))
        .collect();
    let invoiced = invoices_repo::already_invoiced(conn, merchant, &periods).await?;
    let renewed = kept.len();
    let new: Vec<NewInvoice> = kept
        .into_iter()
        .filter(|(r, _)| {
            let done = invoiced.contains(&(r.after.subscription.id, r.period.start));
            if done {
                tracing::info!(subscription = %r.after.subscription.id,
                    period_start = %r.period.start, "period already invoiced; skipped");
            }
            !done
        })
        .map(|(r, lines)| NewInvoice {
            customer_id: r.after.customer_id,
            subscription_id: Some(r.after.subscription.id),
            period: Some(r.period),
            currency: r.after.subscription.plan.price.currency,
            lines,
            status: InvoiceStatus::Open,
        })
        .collect();
    // Last: this takes the merchant's invoice counter, held until the commit.
    invoices_repo::create_invoices(conn, merchant, new, Some(now), now).await?;
    Ok((renewed, one_by_one))
}

/// The event type of a plain renewal.
const RENEWED_EVENT: &str = "subscription.renewed";

/// Renews one subscription in a transaction of its own, the full way: due scheduled
/// changes first (`apply_due`), then `renew`, each transition saved with its events and
/// invoice. `Idle` when the subscription is no longer due or another worker holds it.
async fn renew_one(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
    now: DateTime<Utc>,
) -> ApiResult<Round> {
    conn.transaction(async |conn| {
        let Some(mut current) = subs_repo::lock_if_free(conn, merchant, id).await? else {
            return Ok(Round::Idle);
        };
        let renews = matches!(
            current.subscription.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        if !renews || current.subscription.current_period.end > now {
            return Ok(Round::Idle);
        }
        let applied = match apply_due_in_tx(conn, merchant, &current, now).await? {
            Ok(n) => n,
            Err(refusal) => {
                tracing::error!(subscription = %id, code = refusal.code(), error = %refusal,
                    "cannot apply the due changes before renewing");
                return Ok(Round::Skipped(id.uuid()));
            }
        };
        if applied > 0 {
            current = subs_repo::get(conn, merchant, id, true).await?;
        }
        let renewed = match current.subscription.renew(now) {
            Ok(transition) => {
                persist_system(conn, merchant, &current, transition, now).await?;
                true
            }
            Err(_) => false,
        };
        Ok::<_, ApiError>(if renewed || applied > 0 {
            Round::Done
        } else {
            Round::Skipped(id.uuid())
        })
    })
    .await
}

/// Charges up to `batch` due invoices, in batches (see [`collect_batch`]).
async fn collect_due(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let limit = (batch - done).min(RENEW_CHUNK);
        let (claimed, busy) = conn
            .transaction(async |conn| collect_batch(conn, state, now, limit, &skip).await)
            .await?;
        if claimed == 0 {
            break;
        }
        done += claimed - busy.len();
        skip.extend(busy);
    }
    Ok(done)
}

/// Claims up to `limit` due invoices in the caller's transaction and charges them.
/// Returns how many were claimed and those left for the next round because a request
/// holds their subscription.
///
/// The common case — a first or retried charge of an open invoice of an `active`
/// subscription whose customer has a default card, and the gateway accepts — is
/// recorded in bulk per merchant: one insert of the payments, one update marking the
/// invoices paid, one insert of the `invoice.paid` events. Everything else (declines,
/// recoveries, dunning's end, invoices without a subscription) takes the one-by-one path
/// [`collect_in_tx`] in the same transaction; a declined bulk candidate reaches the
/// gateway there a second time with the same idempotency key, which replays the first
/// answer.
async fn collect_batch(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> ApiResult<(usize, Vec<uuid::Uuid>)> {
    let claimed = invoices_repo::claim_due(conn, now, limit, skip).await?;
    let n = claimed.len();
    let mut by_merchant: BTreeMap<uuid::Uuid, Vec<Invoice>> = BTreeMap::new();
    for (merchant, invoice) in claimed {
        by_merchant
            .entry(merchant.uuid())
            .or_default()
            .push(invoice);
    }
    let mut busy = Vec::new();
    for (merchant, invoices) in by_merchant {
        let merchant = MerchantId::from_uuid(merchant);
        busy.extend(collect_merchant(conn, state, merchant, invoices, now).await?);
    }
    Ok((n, busy))
}

async fn collect_merchant(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    merchant: MerchantId,
    invoices: Vec<Invoice>,
    now: DateTime<Utc>,
) -> ApiResult<Vec<uuid::Uuid>> {
    let sub_ids: Vec<SubscriptionId> = invoices.iter().filter_map(|i| i.subscription_id).collect();
    let subs: HashMap<SubscriptionId, SubscriptionStatus> =
        repo::lock_free_subscriptions(conn, merchant, &sub_ids)
            .await?
            .into_iter()
            .collect();
    let candidates: Vec<CustomerId> = invoices
        .iter()
        .filter(|i| bulk_candidate(i, &subs))
        .map(|i| i.customer_id)
        .collect();
    let cards: HashMap<CustomerId, PaymentMethod> =
        pm_repo::defaults_for_customers(conn, merchant, &candidates)
            .await?
            .into_iter()
            .map(|pm| (pm.customer_id, pm))
            .collect();
    let mut busy = Vec::new();
    let mut paid = Vec::new();
    let mut one_by_one = Vec::new();
    for invoice in invoices {
        if invoice
            .subscription_id
            .is_some_and(|id| !subs.contains_key(&id))
        {
            // A request is changing the subscription: next round.
            busy.push(invoice.id.uuid());
            continue;
        }
        let card = cards.get(&invoice.customer_id);
        match card {
            Some(card) if bulk_candidate(&invoice, &subs) => {
                let idempotency_key = format!("{}:{}", invoice.id, invoice.attempt_count + 1);
                let outcome = state.gateway.charge(&ChargeRequest {
                    amount: invoice.totals.amount_due,
                    payment_method_token: card.gateway_token.clone(),
                    idempotency_key: idempotency_key.clone(),
                    description: format!("Invoice {}", invoice.number),
                });
                if outcome.is_success() {
                    let attempt = NewPaymentAttempt {
                        invoice_id: invoice.id,
                        payment_method_id: Some(card.id),
                        amount: invoice.totals.amount_due,
                        gateway: state.gateway.name().to_owned(),
                        idempotency_key,
                        outcome,
                    };
                    paid.push((invoice, attempt));
                } else {
                    one_by_one.push(invoice);
                }
            }
            _ => one_by_one.push(invoice),
        }
    }
    let recorded = invoices_repo::record_successful_charges(
        conn,
        merchant,
        paid.iter().map(|(i, a)| (i, a.clone())).collect(),
        now,
    )
    .await?;
    let rendered: Vec<(InvoiceDto, InvoiceDto)> = paid
        .iter()
        .zip(&recorded)
        .map(|((before, _), (after, _))| (InvoiceDto::from(after), InvoiceDto::from(before)))
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
    for invoice in one_by_one {
        let id = invoice.id;
        // A savepoint per invoice: one that fails is rolled back alone and set aside for
        // this round, instead of undoing the batch's recorded charges with it.
        let collected = conn
            .transaction(async |conn| {
                collect_in_tx(conn, state, merchant, invoice, now, Mode::Scheduled).await
            })
            .await;
        match collected {
            Ok(Collected::Busy) => busy.push(id.uuid()),
            Ok(_) => {}
            Err(err) => {
                set_aside(&err, "charge", &id.to_string())?;
                busy.push(id.uuid());
            }
        }
    }
    Ok(busy)
}

/// An item of the renewal engine failed. A lost database ends the round (the error is
/// returned); anything else is logged and the item is left for the next round, so one
/// bad item never stops the others.
fn set_aside(err: &ApiError, work: &'static str, item: &str) -> ApiResult<()> {
    if let ApiError::Unavailable(cause) = err {
        return Err(ApiError::Unavailable(cause.clone()));
    }
    tracing::error!(work, item, code = err.code(), error = %err, cause = ?err,
        "renewal engine item failed; set aside until the next round");
    Ok(())
}

/// Whether a claimed invoice may be charged in bulk: open with something due, of an
/// `active` subscription this transaction holds (no recovery or dunning step follows a
/// success).
fn bulk_candidate(invoice: &Invoice, subs: &HashMap<SubscriptionId, SubscriptionStatus>) -> bool {
    invoice.status == InvoiceStatus::Open
        && !invoice.totals.amount_due.is_zero()
        && invoice
            .subscription_id
            .and_then(|id| subs.get(&id))
            .is_some_and(|s| *s == SubscriptionStatus::Active)
}

async fn notify_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let round = conn
            .transaction(async |conn| {
                let Some((merchant, id)) = repo::claim_due_notice(conn, now, &skip).await? else {
                    return Ok(Round::Idle);
                };
                let s = subs_repo::get(conn, merchant, id, true).await?;
                if let Some(upcoming) = upcoming_of(conn, merchant, &s).await? {
                    record_event(
                        conn,
                        merchant,
                        EventDraft {
                            event_type: "invoice.upcoming",
                            resource_type: "subscription",
                            resource_id: id.to_string(),
                            after: &upcoming,
                            before: None,
                            at: now,
                        },
                    )
                    .await?;
                }
                repo::mark_notice_sent(conn, merchant, id, s.subscription.current_period.end)
                    .await?;
                Ok::<_, ApiError>(Round::Done)
            })
            .await?;
        match round {
            Round::Idle => break,
            Round::Skipped(id) => skip.push(id),
            Round::Done => done += 1,
        }
    }
    Ok(done)
}

/// Who asked for a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The dunning schedule: a failure schedules the next retry or ends dunning.
    Scheduled,
    /// The customer's new payment method: a failure leaves the schedule as it was.
    Immediate,
    /// The merchant's `POST /v1/invoices/{id}/pay`: like `Immediate`, but it also
    /// collects what dunning no longer does (an `uncollectible` invoice, an open one of
    /// a canceled subscription), and a customer without a default payment method is a
    /// 409 rather than a recorded decline.
    Manual,
}

pub(crate) enum Collected {
    /// The subscription is being changed by someone else; try next round.
    Busy,
    NotCollectible,
    /// An attempt was made (or nothing was due): the invoice after it is `paid`, or
    /// still open with the declined payment.
    Charged(Box<(Invoice, Option<Payment>)>),
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

/// Charges the locked invoice and applies the outcome to its dunning schedule and its
/// subscription (past due, recovered, canceled or unpaid).
pub(crate) async fn collect_in_tx(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    merchant: MerchantId,
    invoice: Invoice,
    now: DateTime<Utc>,
    mode: Mode,
) -> ApiResult<Collected> {
    let dunning = repo::dunning(conn, merchant, invoice.id).await?;
    let stop = Dunning {
        next_payment_attempt_at: None,
        ..dunning
    };
    if invoice.status != InvoiceStatus::Open && mode != Mode::Manual {
        repo::set_dunning(conn, merchant, invoice.id, stop).await?;
        return Ok(Collected::NotCollectible);
    }
    let sub = match invoice.subscription_id {
        Some(id) => {
            let locked = match mode {
                Mode::Scheduled => subs_repo::lock_if_free(conn, merchant, id).await?,
                Mode::Immediate | Mode::Manual => {
                    Some(subs_repo::get(conn, merchant, id, true).await?)
                }
            };
            match locked {
                Some(s) => Some(s),
                None => return Ok(Collected::Busy),
            }
        }
        None => None,
    };
    // Dunning stops when its subscription ended; a final invoice (no period: the items
    // left when it ended) is what ending it billed, and is collected.
    if mode != Mode::Manual
        && invoice.period.is_some()
        && sub.as_ref().is_some_and(|s| s.subscription.is_canceled())
    {
        repo::set_dunning(conn, merchant, invoice.id, stop).await?;
        return Ok(Collected::NotCollectible);
    }
    let policy = repo::settings(conn, merchant).await?.dunning_policy;
    let no_pm = match mode {
        Mode::Manual => NoPaymentMethod::Refuse,
        Mode::Scheduled | Mode::Immediate => NoPaymentMethod::Decline,
    };
    let (after, payment) = charge_in_tx(conn, state, merchant, invoice, now, no_pm).await?;
    if after.status == InvoiceStatus::Paid {
        repo::set_dunning(conn, merchant, after.id, stop).await?;
        if let Some(s) = &sub
            && matches!(
                s.subscription.status,
                SubscriptionStatus::PastDue | SubscriptionStatus::Unpaid
            )
        {
            let t = s.subscription.record_payment_recovery()?;
            persist_system(conn, merchant, s, t, now).await?;
        }
        return Ok(Collected::Charged(Box::new((after, payment))));
    }
    let first_failed_at = dunning.first_failed_at.unwrap_or(now);
    let next = match mode {
        Mode::Scheduled => next_retry_after(&policy, first_failed_at, now),
        Mode::Immediate | Mode::Manual => dunning.next_payment_attempt_at,
    };
    repo::set_dunning(
        conn,
        merchant,
        after.id,
        Dunning {
            next_payment_attempt_at: next,
            first_failed_at: Some(first_failed_at),
        },
    )
    .await?;
    let mut current = sub;
    if let Some(s) = &current
        && s.subscription.status == SubscriptionStatus::Active
    {
        let t = s.subscription.record_payment_failure()?;
        current = Some(persist_system(conn, merchant, s, t, now).await?);
    }
    if mode == Mode::Scheduled && next.is_none() {
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
                        Some(&after),
                    )
                    .await?;
                }
                if let Some(s) = &current
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
                    let t = s.subscription.cancel(
                        &cancel,
                        &product.portal_policy,
                        Actor::System,
                        now,
                    )?;
                    persist_system(conn, merchant, s, t, now).await?;
                }
            }
            DunningFinalState::Unpaid => {
                if let Some(s) = &current
                    && s.subscription.status == SubscriptionStatus::PastDue
                {
                    let t = s.subscription.mark_unpaid()?;
                    persist_system(conn, merchant, s, t, now).await?;
                }
            }
        }
    }
    Ok(Collected::Charged(Box::new((after, payment))))
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
    let now = truncate(state.now());
    let mut conn = state.db.conn().await?;
    let ids: Vec<InvoiceId> =
        repo::open_invoices_of_customer(&mut conn, merchant, customer).await?;
    for id in ids {
        conn.transaction(async |conn| {
            let invoice = invoices_repo::get(conn, merchant, id, None, true).await?;
            collect_in_tx(conn, state, merchant, invoice, now, Mode::Immediate).await?;
            Ok::<_, ApiError>(())
        })
        .await?;
    }
    Ok(())
}

/// The merchant's billing settings (defaults until saved).
pub async fn settings(state: &AppState, merchant: MerchantId) -> ApiResult<BillingSettings> {
    let mut conn = state.db.conn().await?;
    Ok(repo::settings(&mut conn, merchant).await?)
}

/// Replaces the merchant's dunning policy.
pub async fn put_dunning_policy(
    state: &AppState,
    merchant: MerchantId,
    policy: DunningPolicy,
) -> ApiResult<BillingSettings> {
    policy.validate()?;
    update_settings(state, merchant, |s| s.dunning_policy = policy).await
}

/// Sets how many days before a renewal `invoice.upcoming` is sent (0: never).
pub async fn put_upcoming_notice_days(
    state: &AppState,
    merchant: MerchantId,
    days: u32,
) -> ApiResult<BillingSettings> {
    if days > repo::MAX_UPCOMING_NOTICE_DAYS {
        return Err(ApiError::field(
            "upcoming_notice_days",
            format!("must be between 0 and {}", repo::MAX_UPCOMING_NOTICE_DAYS),
        ));
    }
    update_settings(state, merchant, |s| s.upcoming_notice_days = days).await
}

async fn update_settings(
    state: &AppState,
    merchant: MerchantId,
    change: impl FnOnce(&mut BillingSettings) + Send,
) -> ApiResult<BillingSettings> {
    let now = truncate(state.now());
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let mut s = repo::lock_settings(conn, merchant, now).await?;
        change(&mut s);
        s.updated_at = Some(now);
        repo::save_settings(conn, merchant, &s, now).await?;
        Ok::<_, ApiError>(s)
    })
    .await
}
