//! The renewal engine: renewals, charging, dunning retries and upcoming-renewal notices.
//!
//! [`run_due_renewals`] runs three kinds of work, claimed with `FOR UPDATE SKIP LOCKED`
//! so any number of workers share them. Renewals and charges are claimed in batches of
//! up to 500 and the common case of each is written with a few bulk statements (see
//! `renew_batch` here and `super::charges`); the rest go one by one:
//!
//! 1. **Renew.** A subscription whose period (or trial) ended: the due scheduled changes
//!    apply first (a cancellation or downgrade at period end takes effect before
//!    billing), then the domain's `renew(now)` starts the next period. Saving the
//!    transition invoices the new period in the same transaction (`UNIQUE (merchant,
//!    subscription, period_start)`: a period already invoiced is skipped) and schedules
//!    its first charge for now (`next_payment_attempt_at`).
//! 2. **Charge** ([`super::charges`]). An invoice whose `next_payment_attempt_at` is due
//!    is charged through the gateway with the idempotency key `"{invoice}:{attempt}"`,
//!    prepared and settled in two transactions with no lock held across the call.
//!    Success: paid, and a past-due or unpaid subscription recovers. Decline: the
//!    subscription goes past due and the next retry is scheduled per the merchant's
//!    dunning policy (offsets from the first failure); when none is left, the
//!    subscription ends `canceled` (the invoice becomes `uncollectible`) or `unpaid` (the
//!    invoice stays open for the customer).
//! 3. **Notify.** `invoice.upcoming` once per subscription period, `upcoming_notice_days`
//!    before it ends (marker column `upcoming_notice_for`).
//!
//! A crash anywhere rolls the batch's (or item's) transaction back: nothing is
//! half-renewed and no invoice number is lost. A charge interrupted between its two
//! transactions is sent again with the same key once its lease ends, and the gateway
//! replays it instead of charging twice (see `super::charges`). Charging starts after the
//! renewal's commit, so the invoice id in that key is durable before the gateway is
//! called.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::discount::{DiscountOutcome, apply_discounts, discount_line};
use tenure_domain::billing::dunning::DunningPolicy;
use tenure_domain::billing::invoice::{self, Invoice, InvoiceLine, InvoiceStatus, LineKind};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{MerchantId, PlanId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    Actor, PlanTerms, Subscription, SubscriptionEvent, SubscriptionStatus,
};
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice};
use tenure_store::repo::pending_items::{self as pending_repo, PendingItem};
use tenure_store::repo::renewals::{self as repo, BillingSettings, Dunning};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};

use super::billing::invoice_event;
use super::subscriptions::{Caller, apply_due_in_tx, persist_system, truncate};
use super::{EventDraft, next_update_time, record_event, record_events};
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

/// How a period of a plan reads on an invoice (and in a plan-change preview before it).
pub(crate) fn plan_line_description(plan_name: &str, period: Period) -> String {
    format!(
        "{plan_name} ({} – {})",
        period.start.format("%Y-%m-%d"),
        period.end.format("%Y-%m-%d")
    )
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
            plan_line_description(plan_name, period),
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
    let charged = super::charges::collect_due(&mut conn, state, now, batch).await?;
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

/// An item of the renewal engine failed. A lost database ends the round (the error is
/// returned); anything else is logged and the item is left for the next round, so one
/// bad item never stops the others.
pub(crate) fn set_aside(err: &ApiError, work: &'static str, item: &str) -> ApiResult<()> {
    if let ApiError::Unavailable(cause) = err {
        return Err(ApiError::Unavailable(cause.clone()));
    }
    tracing::error!(work, item, code = err.code(), error = %err, cause = ?err,
        "renewal engine item failed; set aside until the next round");
    Ok(())
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
