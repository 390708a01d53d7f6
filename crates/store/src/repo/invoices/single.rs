//! One invoice at a time: create (with its gapless number), read, list, lock, close.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::invoice::{self, Invoice, InvoiceLine, InvoiceStatus};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, GenerateId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::money::Currency;

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{invoice_counters, invoice_lines, invoices};

use super::rows::*;

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
pub(super) async fn next_invoice_number(
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
                    quantity: i32::try_from(l.quantity).map_err(StoreError::corrupt)?,
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

pub(super) async fn lines_of(
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
pub(super) async fn list_rows(
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

/// Locks the open invoices of a subscription (a few at most: one per period), in id
/// order, and returns their ids: the unpaid first invoice of a signup that ends.
pub async fn lock_open_of_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Vec<InvoiceId>> {
    let ids: Vec<uuid::Uuid> = invoices::table
        .filter(invoices::merchant_id.eq(merchant.uuid()))
        .filter(invoices::subscription_id.eq(subscription.uuid()))
        .filter(invoices::status.eq("open"))
        .order(invoices::id)
        .select(invoices::id)
        .for_update()
        .load(conn)
        .await?;
    Ok(ids.into_iter().map(InvoiceId::from_uuid).collect())
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
pub(super) async fn clear_next_attempt(
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
