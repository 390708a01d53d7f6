//! Pending invoice items (`pending_invoice_items`): signed amounts owed or credited
//! between invoices — the proration lines of an immediate plan change (Stripe's
//! `proration_behavior=create_prorations`) and the one-off charges and credits a merchant
//! or an agent adds ([`PendingItemKind::OneOff`]). The next invoice of the subscription
//! takes every un-invoiced item ([`lock_uninvoiced`], `FOR UPDATE`) as `proration` or
//! `one_off` lines and links them to itself ([`link_to_invoice`]) in its transaction, so
//! an item is invoiced exactly once. A one-off item may be deleted until then
//! ([`delete_one_off`], under the same lock).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, SubscriptionId};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::schema::pending_invoice_items as p;

/// What made a pending item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PendingItemKind {
    /// A plan or quantity change's proration.
    Proration,
    /// A one-off charge or credit.
    OneOff,
}

impl PendingItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingItemKind::Proration => "proration",
            PendingItemKind::OneOff => "one_off",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "proration" => Ok(PendingItemKind::Proration),
            "one_off" => Ok(PendingItemKind::OneOff),
            other => Err(StoreError::corrupt(format!("unknown item kind {other}"))),
        }
    }
}

/// An item to add to a subscription's next invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPendingItem {
    pub kind: PendingItemKind,
    /// Who added a one-off item (`Tenure-Agent`, or the key).
    pub agent: Option<String>,
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub description: String,
    /// Positive: owed by the customer; negative: a credit.
    pub amount: Money,
    /// The stretch of time it pays for or gives back.
    pub period: Option<Period>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingItem {
    pub id: uuid::Uuid,
    pub kind: PendingItemKind,
    pub agent: Option<String>,
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub description: String,
    pub amount: Money,
    pub period: Option<Period>,
    pub created_at: DateTime<Utc>,
    /// The invoice that took it; `None` while pending.
    pub invoice_id: Option<InvoiceId>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = p)]
struct Row {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    description: String,
    amount: i64,
    currency: String,
    period_start: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    invoice_id: Option<uuid::Uuid>,
    kind: String,
    agent: Option<String>,
}

impl Row {
    fn into_item(self) -> StoreResult<PendingItem> {
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|_| StoreError::corrupt(format!("unknown currency {}", self.currency)))?;
        let period = match (self.period_start, self.period_end) {
            (Some(start), Some(end)) => Some(Period::new(start, end).map_err(StoreError::corrupt)?),
            _ => None,
        };
        Ok(PendingItem {
            id: self.id,
            kind: PendingItemKind::parse(&self.kind)?,
            agent: self.agent,
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            description: self.description,
            amount: Money::new(self.amount, currency),
            period,
            created_at: self.created_at,
            invoice_id: self.invoice_id.map(InvoiceId::from_uuid),
        })
    }
}

/// Stores items for the subscription's next invoice (in the caller's transaction).
pub async fn create(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    items: &[NewPendingItem],
    at: DateTime<Utc>,
) -> StoreResult<Vec<PendingItem>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = items
        .iter()
        .map(|i| Row {
            merchant_id: merchant.uuid(),
            id: uuid::Uuid::now_v7(),
            subscription_id: i.subscription_id.uuid(),
            customer_id: i.customer_id.uuid(),
            description: i.description.clone(),
            amount: i.amount.amount,
            currency: i.amount.currency.code().to_owned(),
            period_start: i.period.map(|p| p.start),
            period_end: i.period.map(|p| p.end),
            created_at: at,
            invoice_id: None,
            kind: i.kind.as_str().to_owned(),
            agent: i.agent.clone(),
        })
        .collect();
    diesel::insert_into(p::table)
        .values(&rows)
        .returning(Row::as_returning())
        .get_results(conn)
        .await?
        .into_iter()
        .map(Row::into_item)
        .collect()
}

/// The subscription's un-invoiced items, oldest first; `lock` takes their row locks for
/// the invoice that will link them in this transaction.
pub async fn uninvoiced(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
    lock: bool,
) -> StoreResult<Vec<PendingItem>> {
    let query = p::table
        .filter(p::merchant_id.eq(merchant.uuid()))
        .filter(p::subscription_id.eq(subscription.uuid()))
        .filter(p::invoice_id.is_null())
        .order(p::id.asc())
        .select(Row::as_select());
    let rows = if lock {
        query.for_update().load(conn).await?
    } else {
        query.load(conn).await?
    };
    rows.into_iter().map(Row::into_item).collect()
}

/// Which of `subscriptions` have un-invoiced items (for the renewal batch).
pub async fn subscriptions_with_uninvoiced(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscriptions: &[SubscriptionId],
) -> StoreResult<std::collections::HashSet<SubscriptionId>> {
    let ids: Vec<uuid::Uuid> = subscriptions.iter().map(|s| s.uuid()).collect();
    let found: Vec<uuid::Uuid> = p::table
        .filter(p::merchant_id.eq(merchant.uuid()))
        .filter(p::subscription_id.eq_any(ids))
        .filter(p::invoice_id.is_null())
        .select(p::subscription_id)
        .distinct()
        .load(conn)
        .await?;
    Ok(found.into_iter().map(SubscriptionId::from_uuid).collect())
}

/// [`uninvoiced`] with the rows locked.
pub async fn lock_uninvoiced(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Vec<PendingItem>> {
    uninvoiced(conn, merchant, subscription, true).await
}

/// Links the items to the invoice that took them. Items already linked are an error (the
/// caller holds their locks, so this means a bug, not a race).
pub async fn link_to_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[uuid::Uuid],
    invoice: InvoiceId,
) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let updated = diesel::update(
        p::table
            .filter(p::merchant_id.eq(merchant.uuid()))
            .filter(p::id.eq_any(ids))
            .filter(p::invoice_id.is_null()),
    )
    .set(p::invoice_id.eq(Some(invoice.uuid())))
    .execute(conn)
    .await?;
    if updated != ids.len() {
        return Err(StoreError::corrupt("a pending item was already invoiced"));
    }
    Ok(())
}

/// A page of the subscription's one-off items, invoiced or not, newest first.
pub async fn one_off_items(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
    page: crate::pagination::PageRequest,
) -> StoreResult<crate::pagination::Page<PendingItem>> {
    use crate::pagination::{FetchPage, Page};
    let mut query = p::table
        .filter(p::merchant_id.eq(merchant.uuid()))
        .filter(p::subscription_id.eq(subscription.uuid()))
        .filter(p::kind.eq(PendingItemKind::OneOff.as_str()))
        .order(p::id.desc())
        .select(Row::as_select())
        .into_boxed();
    if let Some(cursor) = page.starting_after {
        query = query.filter(p::id.lt(cursor));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(Row::into_item)
}

/// One one-off item of the subscription, locked (for a deletion).
pub async fn lock_one_off(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
    id: uuid::Uuid,
) -> StoreResult<PendingItem> {
    p::table
        .find((merchant.uuid(), id))
        .filter(p::subscription_id.eq(subscription.uuid()))
        .filter(p::kind.eq(PendingItemKind::OneOff.as_str()))
        .select(Row::as_select())
        .for_update()
        .get_result(conn)
        .await?
        .into_item()
}

/// Deletes a one-off item that no invoice took yet (the caller locked it); `false` when
/// it was invoiced.
pub async fn delete_one_off(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: uuid::Uuid,
) -> StoreResult<bool> {
    let deleted = diesel::delete(
        p::table
            .filter(p::merchant_id.eq(merchant.uuid()))
            .filter(p::id.eq(id))
            .filter(p::kind.eq(PendingItemKind::OneOff.as_str()))
            .filter(p::invoice_id.is_null()),
    )
    .execute(conn)
    .await?;
    Ok(deleted == 1)
}
