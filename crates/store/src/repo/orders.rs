//! Orders (migration 2026-12-08-110001_addresses_and_orders): one per invoice of a
//! shippable subscription's period.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use tenure_domain::address::Address;
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, OrderId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::order::{Order, OrderLine, OrderStatus, Shipment};

use crate::error::{StoreError, StoreResult};
use crate::jsonb::JsonbText;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::orders;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = orders)]
struct OrderRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    invoice_id: uuid::Uuid,
    status: String,
    period_start: DateTime<Utc>,
    shipped_at: Option<DateTime<Utc>>,
    body: JsonbText,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What the row keeps in `body`: the order's fields that are not columns.
#[derive(Serialize, Deserialize)]
struct OrderBody {
    period_end: DateTime<Utc>,
    lines: Vec<OrderLine>,
    amount_total: Money,
    shipping_address: Option<Address>,
    shipment: Option<Shipment>,
    held_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
    fulfilled_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
}

impl OrderRow {
    fn from_domain(merchant: MerchantId, o: &Order) -> StoreResult<Self> {
        let body = OrderBody {
            period_end: o.period.end,
            lines: o.lines.clone(),
            amount_total: o.amount_total,
            shipping_address: o.shipping_address.clone(),
            shipment: o.shipment.clone(),
            held_at: o.held_at,
            released_at: o.released_at,
            fulfilled_at: o.fulfilled_at,
            delivered_at: o.delivered_at,
            canceled_at: o.canceled_at,
        };
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: o.id.uuid(),
            customer_id: o.customer_id.uuid(),
            subscription_id: o.subscription_id.uuid(),
            invoice_id: o.invoice_id.uuid(),
            status: o.status.as_str().to_owned(),
            period_start: o.period.start,
            shipped_at: o.shipped_at,
            body: JsonbText::of(&body).map_err(StoreError::corrupt)?,
            created_at: o.created_at,
            updated_at: o.updated_at,
        })
    }

    fn into_domain(self) -> StoreResult<Order> {
        let status = OrderStatus::parse(&self.status)
            .ok_or_else(|| StoreError::corrupt(format!("order status {}", self.status)))?;
        let body: OrderBody = self.body.parse().map_err(StoreError::corrupt)?;
        Ok(Order {
            id: OrderId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            period: Period {
                start: self.period_start,
                end: body.period_end,
            },
            status,
            lines: body.lines,
            amount_total: body.amount_total,
            shipping_address: body.shipping_address,
            shipment: body.shipment,
            held_at: body.held_at,
            released_at: body.released_at,
            fulfilled_at: body.fulfilled_at,
            shipped_at: self.shipped_at,
            delivered_at: body.delivered_at,
            canceled_at: body.canceled_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The unique index that keeps one order per invoice.
pub const INVOICE_UNIQUE: &str = "orders_invoice";

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    order: &Order,
) -> StoreResult<()> {
    diesel::insert_into(orders::table)
        .values(OrderRow::from_domain(merchant, order)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// Saves the order's status, shipment and timestamps.
pub async fn update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    order: &Order,
) -> StoreResult<()> {
    let row = OrderRow::from_domain(merchant, order)?;
    let n = diesel::update(orders::table.find((merchant.uuid(), order.id.uuid())))
        .set((
            orders::status.eq(row.status),
            orders::shipped_at.eq(row.shipped_at),
            orders::body.eq(row.body),
            orders::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One order; `customer` limits it to that customer's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: OrderId,
    customer: Option<CustomerId>,
    for_update: bool,
) -> StoreResult<Order> {
    let query = orders::table
        .find((merchant.uuid(), id.uuid()))
        .select(OrderRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    // Another customer's order is not there for this one.
    if customer.is_some_and(|c| c.uuid() != row.customer_id) {
        return Err(StoreError::NotFound);
    }
    row.into_domain()
}

/// The order made for the invoice, locked, if any.
pub async fn lock_of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Option<Order>> {
    orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::invoice_id.eq(invoice.uuid()))
        .select(OrderRow::as_select())
        .for_update()
        .get_result(conn)
        .await
        .optional()?
        .map(OrderRow::into_domain)
        .transpose()
}

/// Which of `invoices` have an order (one statement for a batch of charges).
pub async fn invoices_with_orders(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoices: &[InvoiceId],
) -> StoreResult<Vec<InvoiceId>> {
    if invoices.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<uuid::Uuid> = invoices.iter().map(|i| i.uuid()).collect();
    let found: Vec<uuid::Uuid> = orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::invoice_id.eq_any(ids))
        .select(orders::invoice_id)
        .load(conn)
        .await?;
    Ok(found.into_iter().map(InvoiceId::from_uuid).collect())
}

#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub customer: Option<CustomerId>,
    pub subscription: Option<SubscriptionId>,
}

/// The merchant's orders, newest first, filtered.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &OrderFilter,
    page: PageRequest,
) -> StoreResult<Page<Order>> {
    let mut query = orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .select(OrderRow::as_select())
        .order(orders::id.desc())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(orders::status.eq(status.as_str()));
    }
    if let Some(customer) = filter.customer {
        query = query.filter(orders::customer_id.eq(customer.uuid()));
    }
    if let Some(subscription) = filter.subscription {
        query = query.filter(orders::subscription_id.eq(subscription.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(orders::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(OrderRow::into_domain)
}

/// The customer's latest orders, newest first (customer context).
pub async fn recent_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    limit: i64,
) -> StoreResult<Vec<Order>> {
    orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::customer_id.eq(customer.uuid()))
        .select(OrderRow::as_select())
        .order(orders::id.desc())
        .limit(limit)
        .load(conn)
        .await?
        .into_iter()
        .map(OrderRow::into_domain)
        .collect()
}

/// The customer's order shipped last, if any (customer context).
pub async fn last_shipped_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Option<Order>> {
    orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::customer_id.eq(customer.uuid()))
        .filter(orders::shipped_at.is_not_null())
        .select(OrderRow::as_select())
        .order(orders::shipped_at.desc())
        .first(conn)
        .await
        .optional()?
        .map(OrderRow::into_domain)
        .transpose()
}

/// Forgets where the customer's orders went (erasure); the orders stay, like invoices.
pub async fn erase_addresses_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<()> {
    let found: Vec<OrderRow> = orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::customer_id.eq(customer.uuid()))
        .select(OrderRow::as_select())
        .for_update()
        .load(conn)
        .await?;
    for row in found {
        let mut order = row.into_domain()?;
        if order.shipping_address.take().is_some() {
            update(conn, merchant, &order).await?;
        }
    }
    Ok(())
}

/// The subscription's orders made without an address that have not shipped, locked.
pub async fn lock_unaddressed_of_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Vec<Order>> {
    let waiting = [
        OrderStatus::AwaitingPayment,
        OrderStatus::OnHold,
        OrderStatus::Unfulfilled,
    ]
    .map(OrderStatus::as_str);
    orders::table
        .filter(orders::merchant_id.eq(merchant.uuid()))
        .filter(orders::subscription_id.eq(subscription.uuid()))
        .filter(orders::status.eq_any(waiting))
        .select(OrderRow::as_select())
        .order(orders::id.asc())
        .for_update()
        .load(conn)
        .await?
        .into_iter()
        .map(OrderRow::into_domain)
        .filter(|o| o.as_ref().is_ok_and(|o| o.shipping_address.is_none()) || o.is_err())
        .collect()
}
