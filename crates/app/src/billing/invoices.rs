//! Invoices and payments as merchants and customers read them, and what a merchant does
//! to one invoice: pay it now, void it, mark it uncollectible, refund it.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::invoice::{Invoice, InvoiceStatus, Payment, Refund};
use tenure_domain::error::DomainError;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId};
use tenure_domain::time::next_update_time;
use tenure_store::repo::charge_intents as intents_repo;
use tenure_store::repo::invoices::{self as invoices_repo, InvoiceFilter};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::billing::{InvoiceDto, RefundInvoice};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

pub async fn list_invoices(
    state: &App,
    merchant: MerchantId,
    filter: InvoiceFilter,
    page: PageRequest,
) -> AppResult<Page<Invoice>> {
    let mut conn = state.db.conn().await?;
    Ok(invoices_repo::list(&mut conn, merchant, &filter, page).await?)
}

/// An invoice with its payments and refunds; `customer` limits it to that customer's.
pub async fn get_invoice(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    customer: Option<CustomerId>,
) -> AppResult<(Invoice, Vec<Payment>, Vec<Refund>)> {
    let mut conn = state.db.conn().await?;
    let invoice = invoices_repo::get(&mut conn, merchant, id, customer, false)
        .await
        .map_err(AppError::from_store("invoice"))?;
    let payments = invoices_repo::payments_of_invoice(&mut conn, merchant, id).await?;
    let refunds = invoices_repo::refunds_of_invoice(&mut conn, merchant, id).await?;
    Ok((invoice, payments, refunds))
}

pub async fn list_payments(
    state: &App,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    page: PageRequest,
) -> AppResult<Page<Payment>> {
    let mut conn = state.db.conn().await?;
    Ok(invoices_repo::list_payments(&mut conn, merchant, customer, page).await?)
}

/// Records an invoice's change (`event_type`) and moves its order with it: every change
/// of an invoice's payment passes here (or through the engine's bulk path, which calls
/// [`crate::orders::follow_paid_invoices`]), so an order follows its invoice whatever
/// route paid it.
pub async fn invoice_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &Invoice,
    before: Option<&Invoice>,
) -> AppResult<()> {
    let before = before.map(InvoiceDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "invoice",
            resource_id: after.id.to_string(),
            after: &InvoiceDto::from(after),
            before: before.as_ref(),
            at: after.updated_at,
        },
    )
    .await?;
    crate::orders::follow_invoice(conn, merchant, event_type, after).await
}

/// `POST /v1/invoices/{id}/pay` (and the portal's, with the signed-in `customer`, whose
/// invoice it must be): charges an open or uncollectible invoice now, through the same
/// steps as the renewal engine (see [`crate::billing::charging::pay`]).
pub async fn pay_invoice(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    customer: Option<CustomerId>,
) -> AppResult<(Invoice, Option<Payment>)> {
    if customer.is_some() {
        let mut conn = state.db.conn().await?;
        invoices_repo::get(&mut conn, merchant, id, customer, false)
            .await
            .map_err(AppError::from_store("invoice"))?;
    }
    // The portal's customer is there to authenticate a card that asks for it.
    crate::billing::charging::pay(state, merchant, id, customer.is_some()).await
}

/// `POST /v1/invoices/{id}/void`: an open or uncollectible invoice is cancelled: it is
/// never charged again and owes nothing (`invoice.voided`); the credit it drew from the
/// customer's balance goes back to it (`customer.balance_changed`). Its subscription is not
/// changed: a past-due one recovers only when an invoice is paid, as in Stripe.
pub async fn void_invoice(state: &App, merchant: MerchantId, id: InvoiceId) -> AppResult<Invoice> {
    close_invoice(state, merchant, id, InvoiceStatus::void, "invoice.voided").await
}

/// `POST /v1/invoices/{id}/mark_uncollectible`: the merchant gives up on an open invoice:
/// dunning stops (`invoice.marked_uncollectible`). It may still be paid later.
pub async fn mark_invoice_uncollectible(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
) -> AppResult<Invoice> {
    close_invoice(
        state,
        merchant,
        id,
        InvoiceStatus::mark_uncollectible,
        "invoice.marked_uncollectible",
    )
    .await
}

/// Moves the locked invoice to the status `transition` allows (a 409
/// `invalid_invoice_transition` otherwise), stops its dunning and records `event_type`.
/// Refused (409 `payment_in_progress`) while a charge of it is in flight: the gateway
/// may take the money, which must find the invoice as it was.
async fn close_invoice(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    transition: fn(InvoiceStatus) -> Result<InvoiceStatus, DomainError>,
    event_type: &'static str,
) -> AppResult<Invoice> {
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_invoice(&mut conn, merchant, id, state.now_micros()).await?;
    conn.transaction(async |conn| {
        let before = invoices_repo::get(conn, merchant, id, None, true)
            .await
            .map_err(AppError::from_store("invoice"))?;
        let status = transition(before.status)?;
        if intents_repo::of_invoice(conn, merchant, id)
            .await?
            .is_some()
        {
            return Err(crate::billing::charging::payment_in_progress());
        }
        let at = next_update_time(before.updated_at, now);
        invoices_repo::close(conn, merchant, id, status, at).await?;
        if status == InvoiceStatus::Void {
            crate::billing::credits::return_credit_of_void(conn, merchant, &before, now).await?;
        }
        let after = invoices_repo::get(conn, merchant, id, None, false).await?;
        invoice_event(conn, merchant, event_type, &after, Some(&before)).await?;
        Ok(after)
    })
    .await
}

/// A signup that ends unpaid (expired, or cancelled while `incomplete`) owes nothing: its
/// open first invoice is voided (`invoice.voided`), in the caller's transaction, which
/// holds the subscription. Refused (409 `payment_in_progress`) while a charge of it is in
/// flight: the gateway may take the money, which must find the invoice as it was.
pub(crate) async fn void_unpaid_signup_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: tenure_domain::ids::SubscriptionId,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    for id in invoices_repo::lock_open_of_subscription(conn, merchant, subscription).await? {
        if intents_repo::of_invoice(conn, merchant, id)
            .await?
            .is_some()
        {
            return Err(crate::billing::charging::payment_in_progress());
        }
        let before = invoices_repo::get(conn, merchant, id, None, false).await?;
        let at = next_update_time(before.updated_at, now);
        invoices_repo::close(conn, merchant, id, before.status.void()?, at).await?;
        let after = invoices_repo::get(conn, merchant, id, None, false).await?;
        invoice_event(conn, merchant, "invoice.voided", &after, Some(&before)).await?;
    }
    Ok(())
}

/// `POST /v1/invoices/{id}/refund`: refunds (part of) a paid invoice through the gateway,
/// with no lock held during the call (see [`crate::billing::refunds`]). Refunds of one
/// invoice follow one another: one already in flight is a 409 `refund_in_progress`.
pub async fn refund(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    input: RefundInvoice,
) -> AppResult<(Refund, Invoice)> {
    crate::billing::refunds::refund(state, merchant, id, input).await
}
