//! Invoicing: the lines a period bills (plan, pending prorations and one-off items,
//! discounts, then the customer's credit balance), the invoice each period that begins
//! gets in the transaction that began it, the final invoice of what was left pending
//! when a subscription ends, and the upcoming invoice a subscription's next renewal will
//! create. The renewal rounds that call these live in `tenure-engine`.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::billing::credit::{BalanceSource, apply_customer_balance};
use tenure_domain::billing::discount::{DiscountOutcome, apply_discounts, described_discount_line};
use tenure_domain::billing::invoice::{self, Invoice, InvoiceLine, InvoiceStatus, LineKind};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, MerchantId, SubscriptionId};
use tenure_domain::money::{Currency, Money};
use tenure_domain::subscription::{PlanTerms, Subscription, SubscriptionEvent, SubscriptionStatus};
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::credits::{self as credits_repo, NewBalanceChange};
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice};
use tenure_store::repo::pending_items::{self as pending_repo, PendingItem, PendingItemKind};
use tenure_store::repo::renewals::{self as repo, Dunning};
use tenure_store::repo::subscriptions::StoredSubscription;

use crate::App;
use crate::billing::invoices::invoice_event;
use crate::dto::renewals::UpcomingInvoiceDto;
use crate::error::{AppError, AppResult};
use crate::subscriptions::Scope;

/// The period a subscription event begins, which must be invoiced.
pub(crate) fn period_to_invoice(event: &SubscriptionEvent) -> Option<Period> {
    match event {
        SubscriptionEvent::Created {
            status: SubscriptionStatus::Active | SubscriptionStatus::Incomplete,
            current_period,
            ..
        } => Some(*current_period),
        SubscriptionEvent::Renewed { period }
        | SubscriptionEvent::TrialEnded { period }
        | SubscriptionEvent::SentNow { period, .. } => Some(*period),
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
/// items as `proration` (plan and quantity changes) or `one_off` lines, then its active
/// discounts (oldest first) by the domain's rule (`tenure_domain::billing::discount`).
/// The customer's balance comes last, where the invoice is created ([`draw_on_balance`]).
pub fn renewal_lines(
    plan_name: &str,
    terms: &PlanTerms,
    quantity: u32,
    period: Period,
    pending: &[PendingItem],
    discounts: &[StoredDiscount],
) -> AppResult<InvoiceDraft> {
    let currency = terms.price.currency;
    let mut draft = InvoiceDraft {
        // `quantity` units of the plan, the amount exact (refused beyond MAX_AMOUNT).
        lines: vec![
            InvoiceLine::new(
                LineKind::Plan,
                plan_line_description(
                    &crate::billing::prorations::at_quantity(plan_name, quantity),
                    period,
                ),
                terms.price.times(quantity)?,
            )?
            .with_quantity(quantity),
        ],
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
            line_kind_of(item),
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

/// The line a pending item becomes.
fn line_kind_of(item: &PendingItem) -> LineKind {
    match item.kind {
        PendingItemKind::Proration => LineKind::Proration,
        PendingItemKind::OneOff => LineKind::OneOff,
    }
}

/// What an invoice about to be created takes from the customer's balance.
pub(crate) struct BalanceDraw {
    customer: CustomerId,
    before: Money,
    taken: Money,
}

/// Completes `lines` with the customer's credit balance in `currency`, locked until the
/// commit: a `customer_balance` line when there is credit (the domain's
/// `apply_customer_balance`). A balance in another currency is never touched. Call
/// [`record_draw`] once the invoice exists.
pub(crate) async fn draw_on_balance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    currency: Currency,
    lines: &mut Vec<InvoiceLine>,
) -> AppResult<Option<BalanceDraw>> {
    let Some(before) =
        credits_repo::lock_existing_balance(conn, merchant, customer, currency).await?
    else {
        return Ok(None);
    };
    let applied = apply_customer_balance(currency, lines, before)?;
    Ok((!applied.taken.is_zero()).then_some(BalanceDraw {
        customer,
        before,
        taken: applied.taken,
    }))
}

/// Writes the ledger row of what `invoice` took from the balance, and its event.
pub(crate) async fn record_draw(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    draw: Option<BalanceDraw>,
    invoice: &Invoice,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let Some(draw) = draw else {
        return Ok(());
    };
    let after = draw.before.checked_sub(draw.taken)?;
    let change = NewBalanceChange {
        customer_id: draw.customer,
        amount: draw.taken.negate(),
        source: BalanceSource::Invoice,
        reason: format!("Applied to invoice {}", invoice.number),
        invoice_id: Some(invoice.id),
        credit_note_id: None,
        agent: None,
    };
    let recorded = credits_repo::record_change(conn, merchant, &change, after, now).await?;
    crate::billing::credits::balance_event(conn, merchant, &recorded).await
}

/// The discounts hook: one `discount` line per active discount that applies (an amount
/// discount in another currency is skipped and logged, and keeps its cycles), and the
/// ids of those applied.
fn discount_lines(
    subtotal: Money,
    discounts: &[StoredDiscount],
) -> AppResult<(Vec<InvoiceLine>, Vec<uuid::Uuid>)> {
    let outcomes = apply_discounts(subtotal, discounts.iter().map(|d| &d.value))?;
    let mut lines = Vec::new();
    let mut used = Vec::new();
    for (d, outcome) in discounts.iter().zip(outcomes) {
        match outcome {
            DiscountOutcome::Applied { taken } => {
                lines.push(described_discount_line(
                    d.description.as_deref(),
                    &d.value,
                    taken,
                )?);
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
) -> AppResult<Option<Invoice>> {
    let terms = &sub.subscription.plan;
    let plan = catalog_repo::get_plan(conn, merchant, terms.plan_id).await?;
    let pending = pending_repo::lock_uninvoiced(conn, merchant, sub.subscription.id).await?;
    let discounts =
        discounts_repo::lock_active_for_subscription(conn, merchant, sub.subscription.id).await?;
    let quantity = sub.subscription.quantity;
    let mut draft = renewal_lines(&plan.name, terms, quantity, period, &pending, &discounts)?;
    let currency = terms.price.currency;
    let draw = draw_on_balance(conn, merchant, sub.customer_id, currency, &mut draft.lines).await?;
    let created = invoices_repo::create_invoice(
        conn,
        merchant,
        NewInvoice {
            customer_id: sub.customer_id,
            subscription_id: Some(sub.subscription.id),
            period: Some(period),
            currency,
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
    record_draw(conn, merchant, draw, &invoice, now).await?;
    // Before settling: a zero invoice is paid at once, and its order follows.
    crate::orders::create_for_invoice(conn, merchant, sub, &plan, &invoice, now).await?;
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
) -> AppResult<Option<Invoice>> {
    let currency = sub.subscription.plan.price.currency;
    let pending = pending_repo::lock_uninvoiced(conn, merchant, sub.subscription.id).await?;
    let mut lines = Vec::new();
    let mut items = Vec::new();
    for item in pending.iter().filter(|i| i.amount.currency == currency) {
        lines.push(InvoiceLine::new(
            line_kind_of(item),
            item.description.clone(),
            item.amount,
        )?);
        items.push(item.id);
    }
    if lines.is_empty() {
        return Ok(None);
    }
    let draw = draw_on_balance(conn, merchant, sub.customer_id, currency, &mut lines).await?;
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
    record_draw(conn, merchant, draw, &invoice, now).await?;
    settle_or_schedule(conn, merchant, invoice, now)
        .await
        .map(Some)
}

/// A new open invoice: paid at once when nothing is due, else scheduled for a charge
/// now. A credit left over (a proration or one-off credit larger than the charges) goes
/// to the customer's balance, for the next invoice of its currency to draw on.
pub(crate) async fn settle_or_schedule(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: Invoice,
    now: DateTime<Utc>,
) -> AppResult<Invoice> {
    if invoice.totals.credit.amount > 0 {
        crate::billing::credits::change_balance(
            conn,
            merchant,
            NewBalanceChange {
                customer_id: invoice.customer_id,
                amount: invoice.totals.credit,
                source: BalanceSource::Invoice,
                reason: format!("Credit left over by invoice {}", invoice.number),
                invoice_id: Some(invoice.id),
                credit_note_id: None,
                agent: None,
            },
            now,
        )
        .await?;
    }
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
/// at its end applied (a cancellation means none; a downgrade bills the new plan). A
/// skipped renewal bills nothing, so the next invoice is the first renewal not skipped;
/// neither does a renewal a send now billed already.
pub fn next_invoice_period(sub: &Subscription) -> Option<(Period, PlanTerms)> {
    let mut sub = sub.clone();
    let passing = sub.skipped_renewals.len() + usize::from(sub.renewal_prepaid());
    for _ in 0..=passing {
        let at = sub.current_period.end;
        let applied = sub.apply_due(at).ok()?;
        for event in &applied.events {
            if let SubscriptionEvent::TrialEnded { period } = event {
                return Some((*period, applied.subscription.plan));
            }
        }
        let renewed = applied.subscription.renew(at).ok()?;
        if let [
            SubscriptionEvent::RenewalSkipped { .. } | SubscriptionEvent::RenewalPrepaid { .. },
        ] = renewed.events.as_slice()
        {
            sub = renewed.subscription;
            continue;
        }
        return Some((
            renewed.subscription.current_period,
            renewed.subscription.plan,
        ));
    }
    None
}

/// The next invoice of a subscription, as [`upcoming_of`] and the upcoming order
/// compute it.
pub(crate) struct UpcomingParts {
    pub period: Period,
    pub terms: PlanTerms,
    /// The product of the plan it bills: another than the subscription's after a swap to
    /// another product's plan at this renewal.
    pub product_id: tenure_domain::ids::ProductId,
    pub plan_name: String,
    /// The plan's variant, which the upcoming order ships.
    pub variant: Option<tenure_domain::catalog::Variant>,
    pub lines: Vec<InvoiceLine>,
    pub totals: invoice::InvoiceTotals,
}

pub async fn upcoming_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> AppResult<Option<UpcomingInvoiceDto>> {
    Ok(upcoming_parts(conn, merchant, s)
        .await?
        .map(|p| UpcomingInvoiceDto::render(s, &p.terms, p.period, &p.lines, &p.totals)))
}

/// The lines and totals of the invoice the next renewal of `s` will create, if it
/// renews.
pub(crate) async fn upcoming_parts(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> AppResult<Option<UpcomingParts>> {
    let Some((period, terms)) = next_invoice_period(&s.subscription) else {
        return Ok(None);
    };
    let plan = catalog_repo::get_plan(conn, merchant, terms.plan_id).await?;
    // The same lines the renewal will build, from the same rows, read without locks and
    // without using anything up.
    let pending = pending_repo::uninvoiced(conn, merchant, s.subscription.id, false).await?;
    let discounts =
        discounts_repo::active_for_subscription(conn, merchant, s.subscription.id).await?;
    let quantity = s.subscription.quantity;
    let mut draft = renewal_lines(&plan.name, &terms, quantity, period, &pending, &discounts)?;
    // The balance as it stands now; a renewal draws on whatever it holds then.
    let currency = terms.price.currency;
    let balance = credits_repo::balances(conn, merchant, s.customer_id)
        .await?
        .into_iter()
        .map(|b| b.balance)
        .find(|b| b.currency == currency)
        .unwrap_or(Money::zero(currency));
    let totals = apply_customer_balance(currency, &mut draft.lines, balance)?.totals;
    Ok(Some(UpcomingParts {
        period,
        terms,
        product_id: plan.product_id,
        plan_name: plan.name,
        variant: plan.variant,
        lines: draft.lines,
        totals,
    }))
}

/// The invoice the next renewal of subscription `id` will create (409
/// `no_upcoming_invoice` when it will not renew).
pub async fn upcoming_invoice(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<UpcomingInvoiceDto> {
    let s = crate::subscriptions::get(state, scope, id).await?;
    let mut conn = state.db.conn().await?;
    upcoming_of(&mut conn, scope.merchant, &s)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "no_upcoming_invoice",
                format!(
                    "the subscription is {} and will not renew",
                    s.subscription.status
                ),
            )
        })
}
