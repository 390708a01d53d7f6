//! Payment attempts and refunds of invoices: each gateway answer recorded once, by its
//! idempotency key, and read back.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::gateway::ChargeOutcome;
use tenure_domain::billing::invoice::{Invoice, Payment, PaymentStatus, Refund};
use tenure_domain::ids::{
    CustomerId, GenerateId, InvoiceId, MerchantId, PaymentId, PaymentMethodId,
};
use tenure_domain::money::Money;

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{invoices, payments, refunds};

use super::rows::*;
use super::single::{clear_next_attempt, get};

/// A charge attempt to record against an invoice.
#[derive(Clone, Debug)]
pub struct NewPaymentAttempt {
    pub invoice_id: InvoiceId,
    pub payment_method_id: Option<PaymentMethodId>,
    pub amount: Money,
    pub gateway: String,
    /// The key the gateway was called with; unique per merchant.
    pub idempotency_key: String,
    pub outcome: ChargeOutcome,
}

/// Records a charge attempt and its effect on the invoice in one transaction (or
/// savepoint): every attempt raises `attempt_count`; a successful one marks the invoice
/// paid. The invoice row is locked first, so concurrent attempts are serialised.
pub async fn record_payment_attempt(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    attempt: NewPaymentAttempt,
    at: DateTime<Utc>,
) -> StoreResult<(Invoice, Payment)> {
    conn.transaction(async |conn| {
        let invoice = get(conn, merchant, attempt.invoice_id, None, true).await?;
        if attempt.amount.currency != invoice.currency {
            return Err(StoreError::corrupt("payment currency differs from invoice"));
        }
        let status = PaymentStatus::of(&attempt.outcome);
        let (gateway_ref, failure_code, failure_message) = match &attempt.outcome {
            ChargeOutcome::Succeeded { gateway_ref } => (Some(gateway_ref.clone()), None, None),
            ChargeOutcome::Declined { code, message } => {
                (None, Some(code.clone()), Some(message.clone()))
            }
            ChargeOutcome::Failed { code } => (None, Some(code.clone()), None),
        };
        let row = PaymentRow {
            merchant_id: merchant.uuid(),
            id: PaymentId::generate().uuid(),
            invoice_id: invoice.id.uuid(),
            customer_id: invoice.customer_id.uuid(),
            payment_method_id: attempt.payment_method_id.map(|p| p.uuid()),
            amount: attempt.amount.amount,
            currency: invoice.currency.code().to_owned(),
            status: status.as_str().to_owned(),
            gateway: attempt.gateway,
            gateway_ref,
            failure_code,
            failure_message,
            idempotency_key: attempt.idempotency_key,
            amount_refunded: 0,
            created_at: at,
        };
        diesel::insert_into(payments::table)
            .values(&row)
            .execute(conn)
            .await?;
        let attempts = i32::try_from(invoice.attempt_count + 1)
            .map_err(|_| StoreError::corrupt("attempt count overflow"))?;
        let target = invoices::table.find((merchant.uuid(), invoice.id.uuid()));
        if status == PaymentStatus::Succeeded {
            let paid = invoice.status.pay().map_err(StoreError::corrupt)?;
            let amount_paid = invoice
                .amount_paid
                .checked_add(attempt.amount)
                .map_err(StoreError::corrupt)?;
            diesel::update(target)
                .set((
                    invoices::status.eq(paid.as_str()),
                    invoices::amount_paid.eq(amount_paid.amount),
                    invoices::attempt_count.eq(attempts),
                    invoices::paid_at.eq(Some(at)),
                    invoices::updated_at.eq(at.max(invoice.updated_at)),
                ))
                .execute(conn)
                .await?;
            clear_next_attempt(conn, merchant, invoice.id).await?;
        } else {
            diesel::update(target)
                .set((
                    invoices::attempt_count.eq(attempts),
                    invoices::updated_at.eq(at.max(invoice.updated_at)),
                ))
                .execute(conn)
                .await?;
        }
        let invoice = get(conn, merchant, invoice.id, None, false).await?;
        Ok((invoice, row.into_domain()?))
    })
    .await
}

/// Payments of one invoice, oldest first.
pub async fn payments_of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Vec<Payment>> {
    payments::table
        .filter(payments::merchant_id.eq(merchant.uuid()))
        .filter(payments::invoice_id.eq(invoice.uuid()))
        .order(payments::id.asc())
        .select(PaymentRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(PaymentRow::into_domain)
        .collect()
}

/// Payments of a merchant (or of one customer), newest first.
pub async fn list_payments(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    page: PageRequest,
) -> StoreResult<Page<Payment>> {
    let mut query = payments::table
        .filter(payments::merchant_id.eq(merchant.uuid()))
        .select(PaymentRow::as_select())
        .order(payments::id.desc())
        .into_boxed();
    if let Some(customer) = customer {
        query = query.filter(payments::customer_id.eq(customer.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(payments::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(PaymentRow::into_domain)
}

/// Refunds of one invoice, oldest first.
pub async fn refunds_of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Vec<Refund>> {
    refunds::table
        .filter(refunds::merchant_id.eq(merchant.uuid()))
        .filter(refunds::invoice_id.eq(invoice.uuid()))
        .order(refunds::id.asc())
        .select(RefundRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(RefundRow::into_domain)
        .collect()
}

/// Records a refund that the gateway accepted and raises the refunded amounts of its
/// payment and invoice. The caller holds the invoice row lock (from [`get`] with
/// `for_update`) and has checked the amount with the domain's refund rule; the table
/// constraints (`amount_refunded <= amount_paid`, `<= amount`) hold the line again.
pub async fn record_refund(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    refund: &Refund,
    invoice_refunded_after: Money,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::insert_into(refunds::table)
        .values(RefundRow {
            merchant_id: merchant.uuid(),
            id: refund.id.uuid(),
            invoice_id: refund.invoice_id.uuid(),
            payment_id: refund.payment_id.uuid(),
            amount: refund.amount.amount,
            currency: refund.amount.currency.code().to_owned(),
            gateway_ref: refund.gateway_ref.clone(),
            reason: refund.reason.clone(),
            created_at: refund.created_at,
        })
        .execute(conn)
        .await?;
    diesel::update(payments::table.find((merchant.uuid(), refund.payment_id.uuid())))
        .set(payments::amount_refunded.eq(payments::amount_refunded + refund.amount.amount))
        .execute(conn)
        .await?;
    diesel::update(invoices::table.find((merchant.uuid(), refund.invoice_id.uuid())))
        .set((
            invoices::amount_refunded.eq(invoice_refunded_after.amount),
            invoices::updated_at.eq(at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
