//! One-off charges and credits: a signed amount in the subscription's currency that the
//! subscription's next invoice takes as a `one_off` line (as it takes prorations), or
//! that is invoiced alone and charged at once (`invoice_now`). Added by the merchant's
//! backend or an agent (`Tenure-Agent`, recorded on the item); listed; deletable until an
//! invoice took it.
//!
//! Items are written under the subscription's row lock, which is what the invoicing of a
//! period holds too, so an item is either on the next invoice or still pending, never
//! lost between the two.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::credit::MAX_REASON_CHARS;
use tenure_domain::billing::invoice::{InvoiceLine, InvoiceStatus, LineKind};
use tenure_domain::ids::{InvoiceItemId, MerchantId, SubscriptionId};
use tenure_domain::money::{MAX_AMOUNT, Money};
use tenure_domain::text;
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice};
use tenure_store::repo::pending_items::{self as pending_repo, NewPendingItem, PendingItemKind};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};
use tenure_store::{Page, PageRequest, StoreError};

use crate::App;
use crate::billing::invoicing::{draw_on_balance, record_draw, settle_or_schedule};
use crate::dto::billing::InvoiceDto;
use crate::dto::credits::{CreateInvoiceItem, InvoiceItemDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};
use crate::overrides::acting_agent;

async fn item_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    view: &InvoiceItemDto,
    at: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "invoice_item",
            resource_id: view.id.clone(),
            after: view,
            before: None,
            at,
        },
    )
    .await
}

async fn locked_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> AppResult<StoredSubscription> {
    subs_repo::get(conn, merchant, id, true)
        .await
        .map_err(AppError::from_store("subscription"))
}

/// `POST /v1/subscriptions/{id}/invoice_items`.
pub async fn create(
    state: &App,
    merchant: MerchantId,
    id: SubscriptionId,
    input: CreateInvoiceItem,
) -> AppResult<InvoiceItemDto> {
    let description = text::clean("description", &input.description, MAX_REASON_CHARS, false)?;
    if input.amount == 0 || input.amount.unsigned_abs() > MAX_AMOUNT.unsigned_abs() {
        return Err(AppError::field(
            "amount",
            format!("must be non-zero and at most {MAX_AMOUNT} minor units either way"),
        ));
    }
    if input.invoice_now && input.amount < 0 {
        return Err(AppError::field(
            "invoice_now",
            "is for a charge: a credit goes on the next invoice, or to the customer's balance",
        ));
    }
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    let (mut view, invoice) = conn
        .transaction(async |conn| {
            let sub = locked_subscription(conn, merchant, id).await?;
            let now =
                crate::test_clocks::now_for_customer(conn, merchant, sub.customer_id, now).await?;
            if sub.subscription.is_canceled() {
                return Err(AppError::conflict(
                    "subscription_canceled",
                    "the subscription is canceled and has no next invoice",
                ));
            }
            let currency = sub.subscription.plan.price.currency;
            let created = pending_repo::create(
                conn,
                merchant,
                &[NewPendingItem {
                    kind: PendingItemKind::OneOff,
                    agent: acting_agent(),
                    subscription_id: id,
                    customer_id: sub.customer_id,
                    description: description.clone(),
                    amount: Money::new(input.amount, currency),
                    period: None,
                }],
                now,
            )
            .await?;
            let mut item = created
                .into_iter()
                .next()
                .ok_or_else(|| AppError::internal("the item was not stored"))?;
            item_event(
                conn,
                merchant,
                "invoice_item.created",
                &InvoiceItemDto::from(&item),
                now,
            )
            .await?;
            let invoice = if input.invoice_now {
                let mut lines = vec![InvoiceLine::new(
                    LineKind::OneOff,
                    description.clone(),
                    item.amount,
                )?];
                let draw =
                    draw_on_balance(conn, merchant, sub.customer_id, currency, &mut lines).await?;
                let invoice = invoices_repo::create_invoice(
                    conn,
                    merchant,
                    NewInvoice {
                        customer_id: sub.customer_id,
                        subscription_id: Some(id),
                        period: None,
                        currency,
                        lines,
                        status: InvoiceStatus::Open,
                    },
                    now,
                )
                .await?;
                pending_repo::link_to_invoice(conn, merchant, &[item.id], invoice.id).await?;
                record_draw(conn, merchant, draw, &invoice, now).await?;
                item.invoice_id = Some(invoice.id);
                Some(settle_or_schedule(conn, merchant, invoice, now).await?)
            } else {
                None
            };
            Ok((InvoiceItemDto::from(&item), invoice))
        })
        .await?;
    if let Some(invoice) = invoice {
        // Charged now, after the commit (no lock is held during the gateway call). A
        // declined charge leaves the invoice open in dunning, as any other: the answer
        // shows the invoice as it stands.
        let charged = if invoice.status.is_payable() && !invoice.totals.amount_due.is_zero() {
            match crate::billing::charging::pay(state, merchant, invoice.id, false).await {
                Ok((after, _)) => after,
                Err(err) => {
                    tracing::info!(error = %err, invoice = %invoice.id,
                        "the charge of a one-off invoice did not succeed; dunning retries it");
                    invoices_repo::get(&mut conn, merchant, invoice.id, None, false).await?
                }
            }
        } else {
            invoice
        };
        view.invoice = Some(Box::new(InvoiceDto::from(&charged)));
    }
    Ok(view)
}

/// `GET /v1/subscriptions/{id}/invoice_items`: its one-off items, newest first.
pub async fn list(
    state: &App,
    merchant: MerchantId,
    id: SubscriptionId,
    page: PageRequest,
) -> AppResult<Page<InvoiceItemDto>> {
    let mut conn = state.db.conn().await?;
    subs_repo::get(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("subscription"))?;
    let page = pending_repo::one_off_items(&mut conn, merchant, id, page).await?;
    page.try_map(|i| Ok::<_, AppError>(InvoiceItemDto::from(&i)))
}

/// `DELETE /v1/subscriptions/{id}/invoice_items/{item}`: only while no invoice took it
/// (409 `invoice_item_invoiced`).
pub async fn delete(
    state: &App,
    merchant: MerchantId,
    id: SubscriptionId,
    item: InvoiceItemId,
) -> AppResult<InvoiceItemDto> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        // The subscription first, as invoicing locks it: then the item.
        let sub = locked_subscription(conn, merchant, id).await?;
        let now =
            crate::test_clocks::now_for_customer(conn, merchant, sub.customer_id, now).await?;
        let found = pending_repo::lock_one_off(conn, merchant, id, item.uuid())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::NotFound("invoice_item"),
                other => other.into(),
            })?;
        if found.invoice_id.is_some()
            || !pending_repo::delete_one_off(conn, merchant, item.uuid()).await?
        {
            return Err(AppError::conflict(
                "invoice_item_invoiced",
                "an invoice took the item already; credit that invoice instead",
            ));
        }
        let view = InvoiceItemDto::from(&found);
        item_event(conn, merchant, "invoice_item.deleted", &view, now).await?;
        Ok(view)
    })
    .await
}
