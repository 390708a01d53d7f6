//! Invoices, their lines, payment attempts and refunds.
//!
//! Invoice numbers are gapless per merchant: [`create_invoice`] takes the next number
//! from the merchant's `invoice_counters` row (`UPDATE … SET next_number = next_number + 1
//! … RETURNING`) inside the same transaction (or savepoint) that inserts the invoice. The
//! counter row stays locked until that transaction ends, and a rollback gives the number
//! back, so numbers are handed out in commit order without holes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::gateway::ChargeOutcome;
use tenure_domain::billing::invoice::{
    self, Invoice, InvoiceLine, InvoiceStatus, LineKind, Payment, PaymentStatus, Refund,
};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{
    CustomerId, InvoiceId, MerchantId, PaymentId, PaymentMethodId, RefundId, SubscriptionId,
};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{Page, PageRequest};
use crate::schema::{invoice_counters, invoice_lines, invoices, payments, refunds};

/// The constraint that allows one invoice per subscription period.
pub const SUBSCRIPTION_PERIOD_UNIQUE: &str = "invoices_subscription_period_unique";
/// The constraint that makes a gateway idempotency key usable once per merchant.
pub const PAYMENT_IDEMPOTENCY_UNIQUE: &str = "payments_idempotency_key_unique";

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = invoices)]
struct InvoiceRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    number: i64,
    customer_id: uuid::Uuid,
    subscription_id: Option<uuid::Uuid>,
    period_start: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    status: String,
    currency: String,
    total: i64,
    amount_paid: i64,
    amount_refunded: i64,
    attempt_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = invoice_lines)]
struct LineRow {
    merchant_id: uuid::Uuid,
    invoice_id: uuid::Uuid,
    position: i32,
    kind: String,
    description: String,
    amount: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = payments)]
struct PaymentRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    invoice_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    payment_method_id: Option<uuid::Uuid>,
    amount: i64,
    currency: String,
    status: String,
    gateway: String,
    gateway_ref: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    idempotency_key: String,
    amount_refunded: i64,
    created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
struct RefundRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    invoice_id: uuid::Uuid,
    payment_id: uuid::Uuid,
    amount: i64,
    currency: String,
    gateway_ref: String,
    reason: Option<String>,
    created_at: DateTime<Utc>,
}

fn currency(code: &str) -> StoreResult<Currency> {
    code.parse()
        .map_err(|_| StoreError::corrupt(format!("unknown currency {code}")))
}

fn to_u32(n: i32) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::corrupt("negative count"))
}

impl InvoiceRow {
    fn into_domain(
        self,
        lines: Vec<LineRow>,
        next_payment_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Invoice> {
        let cur = currency(&self.currency)?;
        let lines = lines
            .into_iter()
            .map(|l| {
                let kind: LineKind = l.kind.parse().map_err(StoreError::corrupt)?;
                Ok(InvoiceLine {
                    kind,
                    description: l.description,
                    amount: Money::new(l.amount, cur),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let totals = invoice::totals(cur, &lines).map_err(StoreError::corrupt)?;
        if totals.total.amount != self.total {
            return Err(StoreError::corrupt("invoice total differs from its lines"));
        }
        let period = match (self.period_start, self.period_end) {
            (Some(start), Some(end)) => Some(Period::new(start, end).map_err(StoreError::corrupt)?),
            _ => None,
        };
        Ok(Invoice {
            id: InvoiceId::from_uuid(self.id),
            number: self.number,
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: self.subscription_id.map(SubscriptionId::from_uuid),
            period,
            status: self.status.parse().map_err(StoreError::corrupt)?,
            currency: cur,
            totals,
            lines,
            amount_paid: Money::new(self.amount_paid, cur),
            amount_refunded: Money::new(self.amount_refunded, cur),
            attempt_count: to_u32(self.attempt_count)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            paid_at: self.paid_at,
            next_payment_attempt_at,
        })
    }
}

impl PaymentRow {
    fn into_domain(self) -> StoreResult<Payment> {
        let cur = currency(&self.currency)?;
        Ok(Payment {
            id: PaymentId::from_uuid(self.id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            payment_method_id: self.payment_method_id.map(PaymentMethodId::from_uuid),
            amount: Money::new(self.amount, cur),
            status: self.status.parse().map_err(StoreError::corrupt)?,
            gateway: self.gateway,
            gateway_ref: self.gateway_ref,
            failure_code: self.failure_code,
            failure_message: self.failure_message,
            idempotency_key: self.idempotency_key,
            amount_refunded: Money::new(self.amount_refunded, cur),
            created_at: self.created_at,
        })
    }
}

impl RefundRow {
    fn into_domain(self) -> StoreResult<Refund> {
        Ok(Refund {
            id: RefundId::from_uuid(self.id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            payment_id: PaymentId::from_uuid(self.payment_id),
            amount: Money::new(self.amount, currency(&self.currency)?),
            gateway_ref: self.gateway_ref,
            reason: self.reason,
            created_at: self.created_at,
        })
    }
}

/// `invoices.next_payment_attempt_at` (migration 000005). Selected as SQL because
/// `schema.rs` keeps the invoices table within diesel's 16-column limit.
fn next_payment_attempt_at()
-> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    diesel::dsl::sql("invoices.next_payment_attempt_at")
}

/// What the renewal engine (or a test) asks to invoice.
#[derive(Clone, Debug)]
pub struct NewInvoice {
    pub customer_id: CustomerId,
    pub subscription_id: Option<SubscriptionId>,
    pub period: Option<Period>,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    /// `Open` to charge it now, `Draft` to finish it later.
    pub status: InvoiceStatus,
}

/// Takes the merchant's next invoice number. Must run inside the transaction that
/// inserts the invoice: the counter row stays locked until it commits or rolls back.
async fn next_invoice_number(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<i64> {
    // The first invoice of a merchant creates the counter; later ones take the row lock.
    diesel::insert_into(invoice_counters::table)
        .values((
            invoice_counters::merchant_id.eq(merchant.uuid()),
            invoice_counters::next_number.eq(1_i64),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    let next: i64 = diesel::update(invoice_counters::table.find(merchant.uuid()))
        .set(invoice_counters::next_number.eq(invoice_counters::next_number + 1))
        .returning(invoice_counters::next_number)
        .get_result(conn)
        .await?;
    Ok(next - 1)
}

/// Creates an invoice with its lines and the next gapless number. Runs in a transaction
/// of its own, or a savepoint when the caller already has one, so a conflict (a second
/// invoice for the same subscription period: [`SUBSCRIPTION_PERIOD_UNIQUE`]) gives the
/// number back.
pub async fn create_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: NewInvoice,
    at: DateTime<Utc>,
) -> StoreResult<Invoice> {
    if !matches!(new.status, InvoiceStatus::Draft | InvoiceStatus::Open) {
        return Err(StoreError::corrupt("a new invoice is draft or open"));
    }
    let totals = invoice::totals(new.currency, &new.lines).map_err(StoreError::corrupt)?;
    conn.transaction(async |conn| {
        let number = next_invoice_number(conn, merchant).await?;
        let id = InvoiceId::new();
        let row = InvoiceRow {
            merchant_id: merchant.uuid(),
            id: id.uuid(),
            number,
            customer_id: new.customer_id.uuid(),
            subscription_id: new.subscription_id.map(|s| s.uuid()),
            period_start: new.period.map(|p| p.start),
            period_end: new.period.map(|p| p.end),
            status: new.status.as_str().to_owned(),
            currency: new.currency.code().to_owned(),
            total: totals.total.amount,
            amount_paid: 0,
            amount_refunded: 0,
            attempt_count: 0,
            created_at: at,
            updated_at: at,
            paid_at: None,
        };
        diesel::insert_into(invoices::table)
            .values(&row)
            .execute(conn)
            .await?;
        let lines: Vec<LineRow> = new
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(LineRow {
                    merchant_id: merchant.uuid(),
                    invoice_id: id.uuid(),
                    position: i32::try_from(i)
                        .map_err(|_| StoreError::corrupt("too many lines"))?,
                    kind: l.kind.as_str().to_owned(),
                    description: l.description.clone(),
                    amount: l.amount.amount,
                })
            })
            .collect::<StoreResult<_>>()?;
        diesel::insert_into(invoice_lines::table)
            .values(&lines)
            .execute(conn)
            .await?;
        row.into_domain(lines, None)
    })
    .await
}

async fn lines_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[uuid::Uuid],
) -> StoreResult<Vec<LineRow>> {
    Ok(invoice_lines::table
        .filter(invoice_lines::merchant_id.eq(merchant.uuid()))
        .filter(invoice_lines::invoice_id.eq_any(ids))
        .order((invoice_lines::invoice_id, invoice_lines::position))
        .select(LineRow::as_select())
        .load(conn)
        .await?)
}

/// An invoice with its lines; `customer` restricts it to one customer (the portal).
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: InvoiceId,
    customer: Option<CustomerId>,
    for_update: bool,
) -> StoreResult<Invoice> {
    let query = invoices::table
        .find((merchant.uuid(), id.uuid()))
        .select((InvoiceRow::as_select(), next_payment_attempt_at()));
    let (row, next_attempt) = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    if customer.is_some_and(|c| c.uuid() != row.customer_id) {
        return Err(StoreError::NotFound);
    }
    let lines = lines_of(conn, merchant, &[row.id]).await?;
    row.into_domain(lines, next_attempt)
}

#[derive(Debug, Default, Clone)]
pub struct InvoiceFilter {
    pub customer: Option<CustomerId>,
    pub status: Option<InvoiceStatus>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &InvoiceFilter,
    page: PageRequest,
) -> StoreResult<Page<Invoice>> {
    let mut query = invoices::table
        .filter(invoices::merchant_id.eq(merchant.uuid()))
        .select((InvoiceRow::as_select(), next_payment_attempt_at()))
        .order(invoices::id.desc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(customer) = filter.customer {
        query = query.filter(invoices::customer_id.eq(customer.uuid()));
    }
    if let Some(status) = filter.status {
        query = query.filter(invoices::status.eq(status.as_str()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(invoices::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(invoices::created_at.lt(to));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(invoices::id.lt(after));
    }
    let rows = query.load(conn).await?;
    let page = Page::from_overfetch(rows, &page);
    let ids: Vec<uuid::Uuid> = page.items.iter().map(|(r, _)| r.id).collect();
    let mut lines = lines_of(conn, merchant, &ids).await?;
    page.try_map(|(row, next_attempt)| {
        let (mine, rest): (Vec<_>, Vec<_>) = lines.drain(..).partition(|l| l.invoice_id == row.id);
        lines = rest;
        row.into_domain(mine, next_attempt)
    })
}

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

/// Marks an invoice with nothing due as paid without a charge (a zero-amount renewal, or
/// one that credits cover). The caller holds the invoice row lock.
pub async fn mark_paid_without_charge(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: InvoiceId,
    at: DateTime<Utc>,
) -> StoreResult<Invoice> {
    let invoice = get(conn, merchant, id, None, true).await?;
    if !invoice.totals.amount_due.is_zero() {
        return Err(StoreError::corrupt(
            "only an invoice with nothing due is paid without a charge",
        ));
    }
    let paid = invoice.status.pay().map_err(StoreError::corrupt)?;
    diesel::update(invoices::table.find((merchant.uuid(), id.uuid())))
        .set((
            invoices::status.eq(paid.as_str()),
            invoices::paid_at.eq(Some(at)),
            invoices::updated_at.eq(at.max(invoice.updated_at)),
        ))
        .execute(conn)
        .await?;
    clear_next_attempt(conn, merchant, id).await?;
    get(conn, merchant, id, None, false).await
}

/// A paid invoice is never charged again: its schedule goes with the payment, so the
/// `invoice.paid` snapshot shows no next attempt.
async fn clear_next_attempt(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: InvoiceId,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE invoices SET next_payment_attempt_at = NULL WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(merchant.uuid())
    .bind::<diesel::sql_types::Uuid, _>(id.uuid())
    .execute(conn)
    .await?;
    Ok(())
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
            id: PaymentId::new().uuid(),
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
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(customer) = customer {
        query = query.filter(payments::customer_id.eq(customer.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(payments::id.lt(after));
    }
    let rows = query.load(conn).await?;
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
