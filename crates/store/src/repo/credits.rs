//! Customer credit (`customer_balances`, `customer_balance_transactions`) and credit
//! notes (`credit_notes`).
//!
//! A balance row holds the running sum of its customer's ledger rows in one currency.
//! Every change goes through [`record_change`], which writes the ledger row and the new
//! balance in the caller's transaction, after the caller locked the balance
//! ([`lock_balance`] or [`lock_existing_balance`]) and computed the new value with the
//! domain's rule: the two never disagree, and a balance is read without summing the
//! ledger.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::credit::{BalanceSource, CreditNoteDestination, CreditNoteReason};
use tenure_domain::ids::{
    BalanceTransactionId, CreditNoteId, CustomerId, InvoiceId, MerchantId, RefundId,
};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{
    credit_notes as cn, customer_balance_transactions as t, customer_balances as b,
};

fn currency(code: &str) -> StoreResult<Currency> {
    code.parse()
        .map_err(|_| StoreError::corrupt(format!("unknown currency {code}")))
}

/// One customer's balance in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    pub customer_id: CustomerId,
    pub balance: Money,
    pub updated_at: DateTime<Utc>,
}

/// A change of a customer's balance to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBalanceChange {
    pub customer_id: CustomerId,
    /// Signed: a grant is positive, a use or debit negative.
    pub amount: Money,
    pub source: BalanceSource,
    pub reason: String,
    pub invoice_id: Option<InvoiceId>,
    pub credit_note_id: Option<CreditNoteId>,
    pub agent: Option<String>,
}

/// One row of a customer's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceTransaction {
    pub id: BalanceTransactionId,
    pub customer_id: CustomerId,
    pub amount: Money,
    /// The balance this change left.
    pub balance_after: Money,
    pub source: BalanceSource,
    pub reason: String,
    pub invoice_id: Option<InvoiceId>,
    pub credit_note_id: Option<CreditNoteId>,
    pub agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = t)]
struct TransactionRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    currency: String,
    amount: i64,
    balance_after: i64,
    source: String,
    reason: String,
    invoice_id: Option<uuid::Uuid>,
    credit_note_id: Option<uuid::Uuid>,
    agent: Option<String>,
    created_at: DateTime<Utc>,
}

impl TransactionRow {
    fn into_domain(self) -> StoreResult<BalanceTransaction> {
        let cur = currency(&self.currency)?;
        Ok(BalanceTransaction {
            id: BalanceTransactionId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            amount: Money::new(self.amount, cur),
            balance_after: Money::new(self.balance_after, cur),
            source: self.source.parse().map_err(StoreError::corrupt)?,
            reason: self.reason,
            invoice_id: self.invoice_id.map(InvoiceId::from_uuid),
            credit_note_id: self.credit_note_id.map(CreditNoteId::from_uuid),
            agent: self.agent,
            created_at: self.created_at,
        })
    }
}

/// Locks the customer's balance in `currency`, creating it at zero if it does not exist
/// yet, and returns it: for a change that may raise it.
pub async fn lock_balance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    currency: Currency,
    at: DateTime<Utc>,
) -> StoreResult<Money> {
    diesel::insert_into(b::table)
        .values((
            b::merchant_id.eq(merchant.uuid()),
            b::customer_id.eq(customer.uuid()),
            b::currency.eq(currency.code()),
            b::balance.eq(0_i64),
            b::updated_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    lock_existing_balance(conn, merchant, customer, currency)
        .await
        .map(|found| found.unwrap_or(Money::zero(currency)))
}

/// Locks the customer's balance in `currency` if there is one (an invoice about to draw
/// on it): a customer who never had credit costs no write.
pub async fn lock_existing_balance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    currency: Currency,
) -> StoreResult<Option<Money>> {
    let found: Option<i64> = b::table
        .find((merchant.uuid(), customer.uuid(), currency.code()))
        .select(b::balance)
        .for_update()
        .get_result(conn)
        .await
        .optional()?;
    Ok(found.map(|amount| Money::new(amount, currency)))
}

/// The customer's balances, one per currency it ever had credit in.
pub async fn balances(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<Balance>> {
    let rows: Vec<(String, i64, DateTime<Utc>)> = b::table
        .filter(b::merchant_id.eq(merchant.uuid()))
        .filter(b::customer_id.eq(customer.uuid()))
        .order(b::currency.asc())
        .select((b::currency, b::balance, b::updated_at))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(code, amount, updated_at)| {
            Ok(Balance {
                customer_id: customer,
                balance: Money::new(amount, currency(&code)?),
                updated_at,
            })
        })
        .collect()
}

/// Which of `customers` have a positive balance in any currency (for the renewal batch,
/// which leaves those to the one-by-one path that draws on it).
pub async fn customers_with_credit(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customers: &[CustomerId],
) -> StoreResult<std::collections::HashSet<CustomerId>> {
    if customers.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<uuid::Uuid> = customers.iter().map(|c| c.uuid()).collect();
    let found: Vec<uuid::Uuid> = b::table
        .filter(b::merchant_id.eq(merchant.uuid()))
        .filter(b::customer_id.eq_any(ids))
        .filter(b::balance.gt(0))
        .select(b::customer_id)
        .distinct()
        .load(conn)
        .await?;
    Ok(found.into_iter().map(CustomerId::from_uuid).collect())
}

/// Writes a ledger row and the balance it leaves (`balance_after`, which the caller
/// computed from the balance it locked).
pub async fn record_change(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    change: &NewBalanceChange,
    balance_after: Money,
    at: DateTime<Utc>,
) -> StoreResult<BalanceTransaction> {
    if balance_after.currency != change.amount.currency || balance_after.amount < 0 {
        return Err(StoreError::corrupt("a balance is never negative nor mixed"));
    }
    let row = TransactionRow {
        merchant_id: merchant.uuid(),
        id: uuid::Uuid::now_v7(),
        customer_id: change.customer_id.uuid(),
        currency: change.amount.currency.code().to_owned(),
        amount: change.amount.amount,
        balance_after: balance_after.amount,
        source: change.source.as_str().to_owned(),
        reason: change.reason.clone(),
        invoice_id: change.invoice_id.map(|i| i.uuid()),
        credit_note_id: change.credit_note_id.map(|c| c.uuid()),
        agent: change.agent.clone(),
        created_at: at,
    };
    let updated = diesel::update(b::table.find((
        merchant.uuid(),
        change.customer_id.uuid(),
        change.amount.currency.code(),
    )))
    .set((b::balance.eq(balance_after.amount), b::updated_at.eq(at)))
    .execute(conn)
    .await?;
    if updated != 1 {
        return Err(StoreError::corrupt("a balance changed without its row"));
    }
    diesel::insert_into(t::table)
        .values(&row)
        .returning(TransactionRow::as_returning())
        .get_result(conn)
        .await?
        .into_domain()
}

/// A page of the customer's ledger, newest first.
pub async fn transactions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> StoreResult<Page<BalanceTransaction>> {
    let mut query = t::table
        .filter(t::merchant_id.eq(merchant.uuid()))
        .filter(t::customer_id.eq(customer.uuid()))
        .order(t::id.desc())
        .select(TransactionRow::as_select())
        .into_boxed();
    if let Some(cursor) = page.starting_after {
        query = query.filter(t::id.lt(cursor));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(TransactionRow::into_domain)
}

/// A credit note as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditNote {
    pub id: CreditNoteId,
    pub invoice_id: InvoiceId,
    pub customer_id: CustomerId,
    pub amount: Money,
    pub reason: CreditNoteReason,
    pub memo: Option<String>,
    pub destination: CreditNoteDestination,
    /// The refund that carried it, for `refund`.
    pub refund_id: Option<RefundId>,
    pub agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = cn)]
struct CreditNoteRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    invoice_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    amount: i64,
    currency: String,
    reason: String,
    memo: Option<String>,
    destination: String,
    refund_id: Option<uuid::Uuid>,
    agent: Option<String>,
    created_at: DateTime<Utc>,
}

impl CreditNoteRow {
    fn into_domain(self) -> StoreResult<CreditNote> {
        Ok(CreditNote {
            id: CreditNoteId::from_uuid(self.id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            amount: Money::new(self.amount, currency(&self.currency)?),
            reason: self.reason.parse().map_err(StoreError::corrupt)?,
            memo: self.memo,
            destination: self.destination.parse().map_err(StoreError::corrupt)?,
            refund_id: self.refund_id.map(RefundId::from_uuid),
            agent: self.agent,
            created_at: self.created_at,
        })
    }
}

pub async fn insert_credit_note(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    note: &CreditNote,
) -> StoreResult<()> {
    diesel::insert_into(cn::table)
        .values(CreditNoteRow {
            merchant_id: merchant.uuid(),
            id: note.id.uuid(),
            invoice_id: note.invoice_id.uuid(),
            customer_id: note.customer_id.uuid(),
            amount: note.amount.amount,
            currency: note.amount.currency.code().to_owned(),
            reason: note.reason.as_str().to_owned(),
            memo: note.memo.clone(),
            destination: note.destination.as_str().to_owned(),
            refund_id: note.refund_id.map(|r| r.uuid()),
            agent: note.agent.clone(),
            created_at: note.created_at,
        })
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn get_credit_note(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CreditNoteId,
) -> StoreResult<CreditNote> {
    cn::table
        .find((merchant.uuid(), id.uuid()))
        .select(CreditNoteRow::as_select())
        .get_result(conn)
        .await?
        .into_domain()
}

/// The credit notes of an invoice, oldest first (a few at most).
pub async fn credit_notes_of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Vec<CreditNote>> {
    cn::table
        .filter(cn::merchant_id.eq(merchant.uuid()))
        .filter(cn::invoice_id.eq(invoice.uuid()))
        .order(cn::id.asc())
        .select(CreditNoteRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(CreditNoteRow::into_domain)
        .collect()
}

/// What credit notes of the invoice moved to the customer's balance (not refunded).
pub async fn credited_to_balance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
    currency: Currency,
) -> StoreResult<Money> {
    // A few notes per invoice at most: summed here, exactly.
    let amounts: Vec<i64> = cn::table
        .filter(cn::merchant_id.eq(merchant.uuid()))
        .filter(cn::invoice_id.eq(invoice.uuid()))
        .filter(cn::destination.eq(CreditNoteDestination::Balance.as_str()))
        .select(cn::amount)
        .load(conn)
        .await?;
    let sum = amounts
        .into_iter()
        .try_fold(0_i64, i64::checked_add)
        .ok_or_else(|| StoreError::corrupt("credit notes overflow"))?;
    Ok(Money::new(sum, currency))
}

/// A page of credit notes, newest first; `customer` restricts them to one customer.
pub async fn list_credit_notes(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    page: PageRequest,
) -> StoreResult<Page<CreditNote>> {
    let mut query = cn::table
        .filter(cn::merchant_id.eq(merchant.uuid()))
        .order(cn::id.desc())
        .select(CreditNoteRow::as_select())
        .into_boxed();
    if let Some(customer) = customer {
        query = query.filter(cn::customer_id.eq(customer.uuid()));
    }
    if let Some(cursor) = page.starting_after {
        query = query.filter(cn::id.lt(cursor));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(CreditNoteRow::into_domain)
}

/// Whether the merchant has a plan (active or not) priced in `currency`: what its
/// customers can be billed in, so where credit can ever be used.
pub async fn merchant_bills_in(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    currency: Currency,
) -> StoreResult<bool> {
    use crate::schema::plans;
    let found: Option<uuid::Uuid> = plans::table
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .filter(plans::currency.eq(currency.code()))
        .select(plans::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}
