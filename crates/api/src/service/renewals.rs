//! The renewal engine: renewals, charging, dunning retries and upcoming-renewal notices.
//!
//! [`run_due_renewals`] runs three kinds of work, each item in a transaction of its own
//! and claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers share them:
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
//! A crash anywhere rolls the item's transaction back: nothing is half-renewed, and a
//! charge that reached the gateway but was not recorded is replayed (same key, same
//! attempt number) instead of charged twice.

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::discount::{DiscountOutcome, apply_discounts, discount_line};
use tenure_domain::billing::dunning::{DunningFinalState, DunningPolicy};
use tenure_domain::billing::invoice::{self, Invoice, InvoiceLine, InvoiceStatus, LineKind};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::subscription::{
    AccessEnd, Actor, CancelRequest, CancelTiming, PlanTerms, Subscription, SubscriptionEvent,
    SubscriptionStatus,
};
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice};
use tenure_store::repo::pending_items::{self as pending_repo, PendingItem};
use tenure_store::repo::renewals::{self as repo, BillingSettings, Dunning};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};

use super::billing::{NoPaymentMethod, charge_in_tx, invoice_event};
use super::subscriptions::{Caller, apply_due_in_tx, persist_system, truncate};
use super::{EventDraft, record_event};
use crate::dto::renewals::UpcomingInvoiceDto;
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
    if invoice.totals.amount_due.is_zero() {
        let paid = invoices_repo::mark_paid_without_charge(conn, merchant, invoice.id, now).await?;
        invoice_event(conn, merchant, "invoice.paid", &paid, Some(&invoice)).await?;
        return Ok(Some(paid));
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
    Ok(Some(Invoice {
        next_payment_attempt_at: Some(now),
        ..invoice
    }))
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

async fn renew_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let round = conn
            .transaction(async |conn| {
                let Some((merchant, id)) = repo::claim_due_renewal(conn, now, &skip).await? else {
                    return Ok(Round::Idle);
                };
                let mut current = subs_repo::get(conn, merchant, id, true).await?;
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
            .await?;
        match round {
            Round::Idle => break,
            Round::Skipped(id) => skip.push(id),
            Round::Done => done += 1,
        }
    }
    Ok(done)
}

async fn collect_due(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    now: DateTime<Utc>,
    batch: usize,
) -> ApiResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let round = conn
            .transaction(async |conn| {
                let Some((merchant, id)) = repo::claim_due_payment(conn, now, &skip).await? else {
                    return Ok(Round::Idle);
                };
                let invoice = invoices_repo::get(conn, merchant, id, None, true).await?;
                Ok::<_, ApiError>(
                    match collect_in_tx(conn, state, merchant, invoice, now, Mode::Scheduled)
                        .await?
                    {
                        Collected::Busy => Round::Skipped(id.uuid()),
                        _ => Round::Done,
                    },
                )
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
enum Mode {
    /// The dunning schedule: a failure schedules the next retry or ends dunning.
    Scheduled,
    /// The customer's new payment method: a failure leaves the schedule as it was.
    Immediate,
}

enum Collected {
    /// The subscription is being changed by someone else; try next round.
    Busy,
    NotCollectible,
    Paid,
    Failed,
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
async fn collect_in_tx(
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
    if invoice.status != InvoiceStatus::Open {
        repo::set_dunning(conn, merchant, invoice.id, stop).await?;
        return Ok(Collected::NotCollectible);
    }
    let sub = match invoice.subscription_id {
        Some(id) => {
            let locked = match mode {
                Mode::Scheduled => subs_repo::lock_if_free(conn, merchant, id).await?,
                Mode::Immediate => Some(subs_repo::get(conn, merchant, id, true).await?),
            };
            match locked {
                Some(s) => Some(s),
                None => return Ok(Collected::Busy),
            }
        }
        None => None,
    };
    if sub.as_ref().is_some_and(|s| s.subscription.is_canceled()) {
        repo::set_dunning(conn, merchant, invoice.id, stop).await?;
        return Ok(Collected::NotCollectible);
    }
    let policy = repo::settings(conn, merchant).await?.dunning_policy;
    let (after, _) = charge_in_tx(
        conn,
        state,
        merchant,
        invoice,
        now,
        NoPaymentMethod::Decline,
    )
    .await?;
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
        return Ok(Collected::Paid);
    }
    let first_failed_at = dunning.first_failed_at.unwrap_or(now);
    let next = match mode {
        Mode::Scheduled => next_retry_after(&policy, first_failed_at, now),
        Mode::Immediate => dunning.next_payment_attempt_at,
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
    Ok(Collected::Failed)
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
