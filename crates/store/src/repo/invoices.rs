//! Invoices, their lines, payment attempts and refunds.
//!
//! Invoice numbers are gapless per merchant: [`create_invoice`] takes the next number
//! from the merchant's `invoice_counters` row (`UPDATE … SET next_number = next_number + 1
//! … RETURNING`) inside the same transaction (or savepoint) that inserts the invoice. The
//! counter row stays locked until that transaction ends, and a rollback gives the number
//! back, so numbers are handed out in commit order without holes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::gateway::ChargeOutcome;
use tenure_domain::billing::invoice::{
    self, Invoice, InvoiceLine, InvoiceStatus, LineKind, Payment, PaymentStatus, Refund,
};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{
    CustomerId, GenerateId, InvoiceId, MerchantId, PaymentId, PaymentMethodId, RefundId,
    SubscriptionId,
};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{invoice_counters, invoice_lines, invoices, payments, refunds};

/// The constraint that allows one invoice per subscription period.
pub const SUBSCRIPTION_PERIOD_UNIQUE: &str = "invoices_subscription_period_unique";
/// The constraint that makes a gateway idempotency key usable once per merchant.
pub const PAYMENT_IDEMPOTENCY_UNIQUE: &str = "payments_idempotency_key_unique";

#[derive(Queryable, QueryableByName, Selectable, Insertable)]
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

/// `invoices.next_payment_attempt_at` (migration 000005), left out of `schema.rs` to keep
/// the invoices table within diesel's 16-column limit. A fragment of its own rather than
/// `dsl::sql`: diesel never keeps a statement holding a SQL literal prepared, and the
/// invoice reads run on every list and every charge.
#[derive(Debug, Clone, Copy)]
struct NextPaymentAttemptAt;

impl Expression for NextPaymentAttemptAt {
    type SqlType = Nullable<Timestamptz>;
}

impl<GB> ValidGrouping<GB> for NextPaymentAttemptAt {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for NextPaymentAttemptAt {}
impl SelectableExpression<invoices::table> for NextPaymentAttemptAt {}

impl QueryId for NextPaymentAttemptAt {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for NextPaymentAttemptAt {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("invoices.next_payment_attempt_at");
        Ok(())
    }
}

/// `(created_at, id) < ` those of the invoice a page starts after: the rest of the list
/// in its order, as one index range. A cursor that names no invoice of this merchant (or
/// of this customer, on a customer's list) makes the comparison NULL and the page empty;
/// [`list`] tells that apart from a list that has simply ended.
struct AfterCursor {
    merchant: uuid::Uuid,
    cursor: uuid::Uuid,
    customer: Option<uuid::Uuid>,
}

impl Expression for AfterCursor {
    type SqlType = diesel::sql_types::Bool;
}

impl<GB> ValidGrouping<GB> for AfterCursor {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for AfterCursor {}

impl QueryId for AfterCursor {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for AfterCursor {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "(invoices.created_at, invoices.id) < \
             (SELECT cursor.created_at, cursor.id FROM invoices AS cursor \
             WHERE cursor.merchant_id = ",
        );
        out.push_bind_param::<Uuid, _>(&self.merchant)?;
        out.push_sql(" AND cursor.id = ");
        out.push_bind_param::<Uuid, _>(&self.cursor)?;
        if let Some(customer) = &self.customer {
            out.push_sql(" AND cursor.customer_id = ");
            out.push_bind_param::<Uuid, _>(customer)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// A bound of a list's created window as `(SELECT $n)`: a value no plan can see. With
/// the bounds in view, PostgreSQL planned the window's statement afresh on every call
/// (about 0.13 ms, more than running it): for each window it weighed the status-and-time
/// index against the time index with the status as a filter, and the generic plan never
/// looked cheaper than the average of those. Behind a sub-select the value is unknown to
/// every plan, so the generic plan wins and is kept; the sub-select runs once per call
/// (an InitPlan) and bounds the same index range as before.
#[derive(Debug, Clone, Copy)]
struct UnseenBound(DateTime<Utc>);

impl Expression for UnseenBound {
    type SqlType = Timestamptz;
}

impl<GB> ValidGrouping<GB> for UnseenBound {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for UnseenBound {}

impl QueryId for UnseenBound {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for UnseenBound {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(SELECT ");
        out.push_bind_param::<Timestamptz, _>(&self.0)?;
        out.push_sql(")");
        Ok(())
    }
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
        let id = InvoiceId::generate();
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
        .select((InvoiceRow::as_select(), NextPaymentAttemptAt));
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
    /// A subscription's invoices: a few a year each, read through the unique
    /// (subscription, period) index and sorted, so no index of their own.
    pub subscription: Option<SubscriptionId>,
    pub status: Option<InvoiceStatus>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

/// A page of invoices, newest first: by `created_at`, ties by id. Each combination of
/// filters is a backward range scan of one index (migration 000012) that stops when the
/// page is full, however old the window or deep the cursor.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &InvoiceFilter,
    page: PageRequest,
) -> StoreResult<Page<Invoice>> {
    let rows = list_rows(conn, merchant, filter, &page).await?;
    if let Some(cursor) = page.starting_after.filter(|_| rows.is_empty()) {
        let mut known = invoices::table
            .filter(invoices::merchant_id.eq(merchant.uuid()))
            .filter(invoices::id.eq(cursor))
            .select(invoices::id)
            .into_boxed();
        if let Some(customer) = filter.customer {
            known = known.filter(invoices::customer_id.eq(customer.uuid()));
        }
        if known.first::<uuid::Uuid>(conn).await.optional()?.is_none() {
            return Err(StoreError::UnknownCursor);
        }
    }
    let page = Page::from_overfetch(rows, &page);
    let ids: Vec<uuid::Uuid> = page.items.iter().map(|(r, _)| r.id).collect();
    let mut lines_of_invoice: HashMap<uuid::Uuid, Vec<LineRow>> = HashMap::with_capacity(ids.len());
    for line in lines_of(conn, merchant, &ids).await? {
        lines_of_invoice
            .entry(line.invoice_id)
            .or_default()
            .push(line);
    }
    page.try_map(|(row, next_attempt)| {
        let lines = lines_of_invoice.remove(&row.id).unwrap_or_default();
        row.into_domain(lines, next_attempt)
    })
}

type ListedRow = (InvoiceRow, Option<DateTime<Utc>>);

/// The page's rows and at least one more (for `has_more`). Boxed, and still prepared once
/// per connection for each combination of filters and fetch size: diesel keys a statement
/// without a static type by its SQL text.
async fn list_rows(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &InvoiceFilter,
    page: &PageRequest,
) -> StoreResult<Vec<ListedRow>> {
    let mut query = invoices::table
        .filter(invoices::merchant_id.eq(merchant.uuid()))
        .select((InvoiceRow::as_select(), NextPaymentAttemptAt))
        .order((invoices::created_at.desc(), invoices::id.desc()))
        .into_boxed();
    if let Some(customer) = filter.customer {
        query = query.filter(invoices::customer_id.eq(customer.uuid()));
    }
    if let Some(subscription) = filter.subscription {
        query = query.filter(invoices::subscription_id.eq(subscription.uuid()));
    }
    if let Some(status) = filter.status {
        query = query.filter(invoices::status.eq(status.as_str()));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(invoices::created_at.ge(UnseenBound(from)));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(invoices::created_at.lt(UnseenBound(to)));
    }
    if let Some(cursor) = page.starting_after {
        query = query.filter(AfterCursor {
            merchant: merchant.uuid(),
            cursor,
            customer: filter.customer.map(|c| c.uuid()),
        });
    }
    Ok(query.fetch_page(page).load(conn).await?)
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

/// What may change about an invoice while a charge of it is prepared: read under the row
/// lock, to check that an invoice read earlier is still the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvoiceVersion {
    pub id: InvoiceId,
    pub status: InvoiceStatus,
    pub attempt_count: u32,
    pub updated_at: DateTime<Utc>,
}

/// Locks the merchant's invoices `ids` in id order, waiting for other holders, and
/// returns their versions.
pub async fn lock_versions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[InvoiceId],
) -> StoreResult<Vec<InvoiceVersion>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.uuid()).collect();
    let rows: Vec<(uuid::Uuid, String, i32, DateTime<Utc>)> = invoices::table
        .filter(invoices::merchant_id.eq(merchant.uuid()))
        .filter(invoices::id.eq_any(ids))
        .order(invoices::id)
        .select((
            invoices::id,
            invoices::status,
            invoices::attempt_count,
            invoices::updated_at,
        ))
        .for_update()
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(id, status, attempts, updated_at)| {
            Ok(InvoiceVersion {
                id: InvoiceId::from_uuid(id),
                status: status.parse().map_err(StoreError::corrupt)?,
                attempt_count: u32::try_from(attempts).map_err(StoreError::corrupt)?,
                updated_at,
            })
        })
        .collect()
}

/// Locks the customer's invoices that may still be charged (open or uncollectible),
/// waiting for a charge being prepared to commit: after this, no charge of them can
/// start until the caller's transaction ends.
pub async fn lock_payable_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<()> {
    invoices::table
        .filter(invoices::merchant_id.eq(merchant.uuid()))
        .filter(invoices::customer_id.eq(customer.uuid()))
        .filter(invoices::status.eq_any(["open", "uncollectible"]))
        .order(invoices::id)
        .select(invoices::id)
        .for_update()
        .load::<uuid::Uuid>(conn)
        .await?;
    Ok(())
}

/// Sets the status of a locked invoice that will not be charged again (`void` or
/// `uncollectible`) and clears its next attempt. The caller checked the transition.
pub async fn close(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: InvoiceId,
    status: InvoiceStatus,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(invoices::table.find((merchant.uuid(), id.uuid())))
        .set((
            invoices::status.eq(status.as_str()),
            invoices::updated_at.eq(at),
        ))
        .execute(conn)
        .await?;
    clear_next_attempt(conn, merchant, id).await
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

/// The columns of [`InvoiceRow`], for the raw queries below.
const INVOICE_COLUMNS: &str = "merchant_id, id, number, customer_id, subscription_id, \
     period_start, period_end, status, currency, total, amount_paid, amount_refunded, \
     attempt_count, created_at, updated_at, paid_at";

fn line_rows(
    merchant: MerchantId,
    invoice: InvoiceId,
    lines: &[InvoiceLine],
) -> StoreResult<Vec<LineRow>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(LineRow {
                merchant_id: merchant.uuid(),
                invoice_id: invoice.uuid(),
                position: i32::try_from(i).map_err(|_| StoreError::corrupt("too many lines"))?,
                kind: l.kind.as_str().to_owned(),
                description: l.description.clone(),
                amount: l.amount.amount,
            })
        })
        .collect()
}

#[derive(QueryableByName)]
struct PeriodKey {
    #[diesel(sql_type = Uuid)]
    subscription_id: uuid::Uuid,
    #[diesel(sql_type = Timestamptz)]
    period_start: DateTime<Utc>,
}

/// Which of `periods` (subscription, period start) already have an invoice. The renewal
/// engine asks before [`create_invoices`] while it holds the subscriptions' row locks, so
/// the answer stays true until it commits.
pub async fn already_invoiced(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    periods: &[(SubscriptionId, DateTime<Utc>)],
) -> StoreResult<Vec<(SubscriptionId, DateTime<Utc>)>> {
    if periods.is_empty() {
        return Ok(Vec::new());
    }
    let subs: Vec<uuid::Uuid> = periods.iter().map(|(s, _)| s.uuid()).collect();
    let starts: Vec<DateTime<Utc>> = periods.iter().map(|(_, p)| *p).collect();
    let rows: Vec<PeriodKey> = diesel::sql_query(
        "SELECT i.subscription_id, i.period_start FROM invoices i \
         JOIN unnest($2::uuid[], $3::timestamptz[]) AS u(s, p) \
           ON i.subscription_id = u.s AND i.period_start = u.p \
         WHERE i.merchant_id = $1",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(subs)
    .bind::<Array<Timestamptz>, _>(starts)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (SubscriptionId::from_uuid(r.subscription_id), r.period_start))
        .collect())
}

/// Creates several invoices of one merchant at once: the batch form of
/// [`create_invoice`] for the renewal engine. Must run inside the caller's transaction.
///
/// The numbers are taken with **one** counter `UPDATE … SET next_number = next_number +
/// n` in the same statement that inserts the invoices (numbered in the order given) and
/// their lines, so the counter row is locked as late as possible and only for the rest
/// of the transaction: the caller should have done all its other writes before. A rollback
/// gives all n numbers back, so numbering stays gapless. `next_payment_attempt_at` is
/// the first charge of each invoice (`None`: not scheduled). A second invoice for a
/// subscription period fails the whole statement ([`SUBSCRIPTION_PERIOD_UNIQUE`]); the
/// caller filters those out first with [`already_invoiced`].
pub async fn create_invoices(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: Vec<NewInvoice>,
    next_payment_attempt_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<Invoice>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(new.len());
    let mut lines = Vec::new();
    for inv in &new {
        if !matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Open) {
            return Err(StoreError::corrupt("a new invoice is draft or open"));
        }
        let totals = invoice::totals(inv.currency, &inv.lines).map_err(StoreError::corrupt)?;
        let id = InvoiceId::generate();
        lines.push(line_rows(merchant, id, &inv.lines)?);
        rows.push(InvoiceRow {
            merchant_id: merchant.uuid(),
            id: id.uuid(),
            number: 0,
            customer_id: inv.customer_id.uuid(),
            subscription_id: inv.subscription_id.map(|s| s.uuid()),
            period_start: inv.period.map(|p| p.start),
            period_end: inv.period.map(|p| p.end),
            status: inv.status.as_str().to_owned(),
            currency: inv.currency.code().to_owned(),
            total: totals.total.amount,
            amount_paid: 0,
            amount_refunded: 0,
            attempt_count: 0,
            created_at: at,
            updated_at: at,
            paid_at: None,
        });
    }
    let line_rows: Vec<&LineRow> = lines.iter().flatten().collect();
    let mut numbered = insert_numbered(
        conn,
        merchant,
        &rows,
        &line_rows,
        next_payment_attempt_at,
        at,
    )
    .await?;
    if numbered.is_empty() {
        // The merchant's first invoices: create the counter, then take the numbers.
        diesel::insert_into(invoice_counters::table)
            .values((
                invoice_counters::merchant_id.eq(merchant.uuid()),
                invoice_counters::next_number.eq(1_i64),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        numbered = insert_numbered(
            conn,
            merchant,
            &rows,
            &line_rows,
            next_payment_attempt_at,
            at,
        )
        .await?;
    }
    if numbered.len() != rows.len() {
        return Err(StoreError::corrupt("the invoice counter is missing"));
    }
    let numbers: std::collections::HashMap<uuid::Uuid, i64> =
        numbered.into_iter().map(|r| (r.id, r.number)).collect();
    for row in &mut rows {
        row.number = *numbers
            .get(&row.id)
            .ok_or_else(|| StoreError::corrupt("an invoice was not numbered"))?;
    }
    rows.into_iter()
        .zip(lines)
        .map(|(row, lines)| row.into_domain(lines, next_payment_attempt_at))
        .collect()
}

#[derive(QueryableByName)]
struct Numbered {
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// One statement: take `rows.len()` numbers from the merchant's counter (which stays
/// locked until the transaction ends), insert the invoices numbered in the given order,
/// and their lines. Returns nothing when the merchant has no counter row yet.
async fn insert_numbered(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    rows: &[InvoiceRow],
    lines: &[&LineRow],
    next_payment_attempt_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<Numbered>> {
    let n = i64::try_from(rows.len()).map_err(|_| StoreError::corrupt("too many invoices"))?;
    Ok(diesel::sql_query(
        "WITH counter AS ( \
           UPDATE invoice_counters SET next_number = next_number + $2 \
           WHERE merchant_id = $1 RETURNING next_number - $2 AS first), \
         inserted AS ( \
           INSERT INTO invoices (merchant_id, id, number, customer_id, subscription_id, \
             period_start, period_end, status, currency, total, amount_paid, amount_refunded, \
             attempt_count, created_at, updated_at, paid_at, next_payment_attempt_at) \
           SELECT $1, u.id, counter.first + u.ord - 1, u.customer_id, u.subscription_id, \
             u.period_start, u.period_end, u.status, u.currency, u.total, 0, 0, 0, $3, $3, \
             NULL, $4 \
           FROM counter, unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::timestamptz[], \
             $9::timestamptz[], $10::text[], $11::text[], $12::bigint[]) WITH ORDINALITY \
             AS u(id, customer_id, subscription_id, period_start, period_end, status, \
                  currency, total, ord) \
           RETURNING id, number), \
         lines AS ( \
           INSERT INTO invoice_lines (merchant_id, invoice_id, position, kind, description, \
             amount) \
           SELECT $1, l.invoice_id, l.position, l.kind, l.description, l.amount \
           FROM unnest($13::uuid[], $14::integer[], $15::text[], $16::text[], $17::bigint[]) \
             AS l(invoice_id, position, kind, description, amount) \
           JOIN inserted ON inserted.id = l.invoice_id) \
         SELECT id, number FROM inserted",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<BigInt, _>(n)
    .bind::<Timestamptz, _>(at)
    .bind::<Nullable<Timestamptz>, _>(next_payment_attempt_at)
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.customer_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Uuid>>, _>(rows.iter().map(|r| r.subscription_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(
        rows.iter().map(|r| r.period_start).collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.period_end).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.currency.clone()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.total).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(lines.iter().map(|l| l.invoice_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(lines.iter().map(|l| l.position).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(lines.iter().map(|l| l.kind.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        lines
            .iter()
            .map(|l| l.description.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.amount).collect::<Vec<_>>())
    .load(conn)
    .await?)
}

/// Claims up to `limit` invoices whose next charge attempt is due at `now` (oldest first,
/// skipping `skip` and rows other workers hold), with their lines. The rows stay locked
/// until the transaction ends.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> StoreResult<Vec<(MerchantId, Invoice)>> {
    let limit = i64::try_from(limit).map_err(|_| StoreError::corrupt("limit out of range"))?;
    let due: Vec<DueRow> = diesel::sql_query(format!(
        "SELECT {INVOICE_COLUMNS}, next_payment_attempt_at FROM invoices \
         WHERE next_payment_attempt_at <= $1 AND NOT (id = ANY($2)) \
         ORDER BY next_payment_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED"
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    let (rows, attempts_at): (Vec<InvoiceRow>, Vec<Option<DateTime<Utc>>>) = due
        .into_iter()
        .map(|d| (d.invoice, d.next_payment_attempt_at))
        .unzip();
    let mut merchants: Vec<uuid::Uuid> = rows.iter().map(|r| r.merchant_id).collect();
    merchants.sort_unstable();
    merchants.dedup();
    let mut lines = Vec::new();
    for m in merchants {
        let ids: Vec<uuid::Uuid> = rows
            .iter()
            .filter(|r| r.merchant_id == m)
            .map(|r| r.id)
            .collect();
        lines.extend(lines_of(conn, MerchantId::from_uuid(m), &ids).await?);
    }
    let mut by_invoice: std::collections::HashMap<uuid::Uuid, Vec<LineRow>> =
        std::collections::HashMap::new();
    for l in lines {
        by_invoice.entry(l.invoice_id).or_default().push(l);
    }
    rows.into_iter()
        .zip(attempts_at)
        .map(|(row, attempt_at)| {
            let merchant = MerchantId::from_uuid(row.merchant_id);
            let lines = by_invoice.remove(&row.id).unwrap_or_default();
            Ok((merchant, row.into_domain(lines, attempt_at)?))
        })
        .collect()
}

/// An invoice row with its charge schedule (the invoices table is at diesel's 16-column
/// limit, so the schedule is read beside the row).
#[derive(QueryableByName)]
struct DueRow {
    #[diesel(embed)]
    invoice: InvoiceRow,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    next_payment_attempt_at: Option<DateTime<Utc>>,
}

/// Records successful charges of several locked, open invoices of one merchant: one
/// `INSERT` of the payments and one `UPDATE` that marks the invoices paid, raises their
/// attempt counts and ends their dunning schedules (`next_payment_attempt_at` cleared).
/// The batch form of [`record_payment_attempt`] for succeeded attempts. Returns each
/// invoice after the change with its payment, in the order given.
pub async fn record_successful_charges(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    charges: Vec<(&Invoice, NewPaymentAttempt)>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<(Invoice, Payment)>> {
    if charges.is_empty() {
        return Ok(Vec::new());
    }
    let mut payments_rows = Vec::with_capacity(charges.len());
    for (invoice, attempt) in &charges {
        let ChargeOutcome::Succeeded { gateway_ref } = &attempt.outcome else {
            return Err(StoreError::corrupt(
                "only succeeded charges are recorded in bulk",
            ));
        };
        if attempt.invoice_id != invoice.id || attempt.amount.currency != invoice.currency {
            return Err(StoreError::corrupt("payment does not match its invoice"));
        }
        payments_rows.push(PaymentRow {
            merchant_id: merchant.uuid(),
            id: PaymentId::generate().uuid(),
            invoice_id: invoice.id.uuid(),
            customer_id: invoice.customer_id.uuid(),
            payment_method_id: attempt.payment_method_id.map(|p| p.uuid()),
            amount: attempt.amount.amount,
            currency: invoice.currency.code().to_owned(),
            status: PaymentStatus::Succeeded.as_str().to_owned(),
            gateway: attempt.gateway.clone(),
            gateway_ref: Some(gateway_ref.clone()),
            failure_code: None,
            failure_message: None,
            idempotency_key: attempt.idempotency_key.clone(),
            amount_refunded: 0,
            created_at: at,
        });
    }
    // PostgreSQL takes at most 65535 bind parameters per statement (15 per payment).
    for chunk in payments_rows.chunks(2000) {
        diesel::insert_into(payments::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    let ids: Vec<uuid::Uuid> = charges.iter().map(|(i, _)| i.id.uuid()).collect();
    let amounts: Vec<i64> = charges.iter().map(|(_, a)| a.amount.amount).collect();
    let updated: Vec<InvoiceRow> = diesel::sql_query(format!(
        "UPDATE invoices i SET status = 'paid', amount_paid = i.amount_paid + u.amount, \
           attempt_count = i.attempt_count + 1, paid_at = $2, \
           updated_at = GREATEST(i.updated_at, $2), next_payment_attempt_at = NULL \
         FROM unnest($3::uuid[], $4::bigint[]) AS u(id, amount) \
         WHERE i.merchant_id = $1 AND i.id = u.id AND i.status = 'open' \
         RETURNING {}",
        INVOICE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(at)
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Array<BigInt>, _>(amounts)
    .load(conn)
    .await?;
    if updated.len() != charges.len() {
        return Err(StoreError::corrupt(
            "an invoice charged in bulk was not open",
        ));
    }
    let mut updated: std::collections::HashMap<uuid::Uuid, InvoiceRow> =
        updated.into_iter().map(|r| (r.id, r)).collect();
    charges
        .iter()
        .zip(payments_rows)
        .map(|((before, _), payment)| {
            let row = updated
                .remove(&before.id.uuid())
                .ok_or_else(|| StoreError::corrupt("an invoice charged in bulk is missing"))?;
            let lines = line_rows(merchant, before.id, &before.lines)?;
            // Paid: no attempt is scheduled any more.
            Ok((row.into_domain(lines, None)?, payment.into_domain()?))
        })
        .collect()
}
