//! Billing the proration of an immediate plan change (Stripe's
//! `proration_behavior=create_prorations`), inside the plan change's transaction.
//!
//! * **Same cadence** (the subscriber keeps the period): the credit for the unused time
//!   on the old plan and the charge for the rest of the period on the new one become
//!   pending invoice items; the subscription's next invoice (its renewal) takes them as
//!   `proration` lines, after the new plan's `plan` line. Nothing is charged now.
//! * **Another cadence**: the domain starts a new period on the new plan at once
//!   (`billing_anchor` = now). That period is invoiced now, like every period that
//!   begins: its `plan` line is the new plan's full price (the domain's charge line, to
//!   the minor unit) and the credit for the unused time on the old plan is a pending item
//!   the same invoice takes. The invoice is due now (`next_payment_attempt_at = now`), so
//!   the next worker round charges it. Should that period already have an invoice (a
//!   change at the very instant the period began, which the one-invoice-per-period key
//!   forbids twice), the charge joins the credit as pending items of the next invoice,
//!   so no money is dropped either way.
//!
//! Items still pending when the subscription ends go on its final invoice
//! (`renewals::invoice_final_items_in_tx`). Lines of zero are not stored. A change during
//! a trial has no proration and bills
//! nothing.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::billing::proration::{ProrationLine, ProrationLineKind};
use tenure_domain::ids::MerchantId;
use tenure_domain::subscription::SubscriptionEvent;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::pending_items::{self as pending_repo, NewPendingItem, PendingItemKind};
use tenure_store::repo::subscriptions::StoredSubscription;

use crate::error::AppResult;

/// How a proration line reads, on the invoice and in the preview before it alike.
pub(crate) fn line_description(line: &ProrationLine, plan_name: &str) -> String {
    let what = match line.kind {
        ProrationLineKind::Credit => "Unused time on",
        ProrationLineKind::Charge => "Remaining time on",
    };
    format!(
        "{what} {plan_name} ({} – {})",
        line.period.start.format("%Y-%m-%d %H:%M"),
        line.period.end.format("%Y-%m-%d %H:%M")
    )
}

fn item(sub: &StoredSubscription, line: &ProrationLine, plan_name: &str) -> NewPendingItem {
    NewPendingItem {
        kind: PendingItemKind::Proration,
        agent: None,
        subscription_id: sub.subscription.id,
        customer_id: sub.customer_id,
        description: line_description(line, plan_name),
        amount: line.amount,
        period: Some(line.period),
    }
}

/// Bills the proration of `event` when it is an immediate plan change after the trial
/// (see the module docs); any other event is left alone. `after` is the saved
/// subscription on the new plan.
pub(crate) async fn bill_plan_change_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    after: &StoredSubscription,
    event: &SubscriptionEvent,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if let SubscriptionEvent::QuantityChanged {
        from,
        to,
        proration: Some(proration),
        ..
    } = event
    {
        return bill_quantity_change_in_tx(conn, merchant, after, (*from, *to), proration, now)
            .await;
    }
    let SubscriptionEvent::PlanChanged {
        from,
        to,
        proration: Some(proration),
    } = event
    else {
        return Ok(());
    };
    let from_name = catalog_repo::get_plan(conn, merchant, from.plan_id)
        .await?
        .name;
    let to_name = catalog_repo::get_plan(conn, merchant, to.plan_id)
        .await?
        .name;
    let new_period = from.cadence != to.cadence;
    let mut items = Vec::new();
    let mut charge_now = None;
    for line in proration.lines.iter().filter(|l| !l.amount.is_zero()) {
        match line.kind {
            ProrationLineKind::Credit => items.push(item(after, line, &from_name)),
            ProrationLineKind::Charge if new_period => charge_now = Some(line),
            ProrationLineKind::Charge => items.push(item(after, line, &to_name)),
        }
    }
    pending_repo::create(conn, merchant, &items, now).await?;
    if new_period {
        let period = after.subscription.current_period;
        let invoiced =
            crate::billing::invoicing::invoice_period_in_tx(conn, merchant, after, period, now)
                .await?;
        if invoiced.is_none()
            && let Some(charge) = charge_now
        {
            tracing::warn!(subscription = %after.subscription.id, period_start = %period.start,
                "the new cadence's first period was already invoiced; its charge waits for the next invoice");
            pending_repo::create(conn, merchant, &[item(after, charge, &to_name)], now).await?;
        }
    }
    Ok(())
}

/// How a plan reads at a quantity: "Coffee" for one, "Coffee × 3" for more.
pub(crate) fn at_quantity(plan_name: &str, quantity: u32) -> String {
    if quantity == 1 {
        plan_name.to_owned()
    } else {
        format!("{plan_name} × {quantity}")
    }
}

/// A quantity change keeps the cadence and the period: its credit (old quantity) and
/// charge (new quantity) wait as pending items for the next invoice, like a plan change
/// on the same cadence.
async fn bill_quantity_change_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    after: &StoredSubscription,
    (from, to): (u32, u32),
    proration: &tenure_domain::billing::proration::Proration,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let name = catalog_repo::get_plan(conn, merchant, after.subscription.plan.plan_id)
        .await?
        .name;
    let items: Vec<NewPendingItem> = proration
        .lines
        .iter()
        .filter(|l| !l.amount.is_zero())
        .map(|line| {
            let quantity = match line.kind {
                ProrationLineKind::Credit => from,
                ProrationLineKind::Charge => to,
            };
            item(after, line, &at_quantity(&name, quantity))
        })
        .collect();
    pending_repo::create(conn, merchant, &items, now).await?;
    Ok(())
}
