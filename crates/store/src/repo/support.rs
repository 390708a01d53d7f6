//! Cancellation requests, support tickets and their messages.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, MerchantId, SubscriptionId, TicketId, TicketMessageId,
};
use tenure_domain::support::{
    CancellationRequest, CancellationRequestStatus, SupportTicket, TicketMessage, TicketStatus,
};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{cancellation_requests, support_tickets, ticket_messages};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = cancellation_requests)]
struct CancellationRequestRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    ticket_id: uuid::Uuid,
    reason: String,
    message: Option<String>,
    status: String,
    effective_at: DateTime<Utc>,
    decline_message: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl CancellationRequestRow {
    fn from_domain(merchant: MerchantId, r: &CancellationRequest) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            id: r.id.uuid(),
            subscription_id: r.subscription_id.uuid(),
            customer_id: r.customer_id.uuid(),
            ticket_id: r.ticket_id.uuid(),
            reason: r.reason.as_str().to_owned(),
            message: r.message.clone(),
            status: r.status.as_str().to_owned(),
            effective_at: r.effective_at,
            decline_message: r.decline_message.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    fn into_domain(self) -> StoreResult<CancellationRequest> {
        Ok(CancellationRequest {
            id: CancellationRequestId::from_uuid(self.id),
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            ticket_id: TicketId::from_uuid(self.ticket_id),
            reason: self.reason.parse().map_err(StoreError::corrupt)?,
            message: self.message,
            status: self.status.parse().map_err(StoreError::corrupt)?,
            effective_at: self.effective_at,
            decline_message: self.decline_message,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    r: &CancellationRequest,
) -> StoreResult<()> {
    diesel::insert_into(cancellation_requests::table)
        .values(CancellationRequestRow::from_domain(merchant, r))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    r: &CancellationRequest,
) -> StoreResult<()> {
    let n = diesel::update(cancellation_requests::table.find((merchant.uuid(), r.id.uuid())))
        .set(CancellationRequestRow::from_domain(merchant, r))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn get_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CancellationRequestId,
    for_update: bool,
) -> StoreResult<CancellationRequest> {
    let query = cancellation_requests::table
        .find((merchant.uuid(), id.uuid()))
        .select(CancellationRequestRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

#[derive(Debug, Default, Clone)]
pub struct RequestFilter {
    pub status: Option<CancellationRequestStatus>,
    pub customer: Option<CustomerId>,
    pub subscription: Option<SubscriptionId>,
}

pub async fn list_requests(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &RequestFilter,
    page: PageRequest,
) -> StoreResult<Page<CancellationRequest>> {
    let mut query = cancellation_requests::table
        .filter(cancellation_requests::merchant_id.eq(merchant.uuid()))
        .select(CancellationRequestRow::as_select())
        .order(cancellation_requests::id.desc())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(cancellation_requests::status.eq(status.as_str()));
    }
    if let Some(customer) = filter.customer {
        query = query.filter(cancellation_requests::customer_id.eq(customer.uuid()));
    }
    if let Some(subscription) = filter.subscription {
        query = query.filter(cancellation_requests::subscription_id.eq(subscription.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(cancellation_requests::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(CancellationRequestRow::into_domain)
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = support_tickets)]
#[diesel(treat_none_as_null = true)]
struct TicketRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    subscription_id: Option<uuid::Uuid>,
    subject: String,
    status: String,
    channel: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TicketRow {
    fn from_domain(merchant: MerchantId, t: &SupportTicket) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            id: t.id.uuid(),
            customer_id: t.customer_id.uuid(),
            subscription_id: t.subscription_id.map(|s| s.uuid()),
            subject: t.subject.clone(),
            status: t.status.as_str().to_owned(),
            channel: t.channel.as_str().to_owned(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }

    fn into_domain(self) -> StoreResult<SupportTicket> {
        Ok(SupportTicket {
            id: TicketId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: self.subscription_id.map(SubscriptionId::from_uuid),
            subject: self.subject,
            status: self.status.parse().map_err(StoreError::corrupt)?,
            channel: self.channel.parse().map_err(StoreError::corrupt)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_ticket(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    t: &SupportTicket,
) -> StoreResult<()> {
    diesel::insert_into(support_tickets::table)
        .values(TicketRow::from_domain(merchant, t))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_ticket(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    t: &SupportTicket,
) -> StoreResult<()> {
    let n = diesel::update(support_tickets::table.find((merchant.uuid(), t.id.uuid())))
        .set(TicketRow::from_domain(merchant, t))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn get_ticket(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: TicketId,
    for_update: bool,
) -> StoreResult<SupportTicket> {
    let query = support_tickets::table
        .find((merchant.uuid(), id.uuid()))
        .select(TicketRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

#[derive(Debug, Default, Clone)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub customer: Option<CustomerId>,
}

pub async fn list_tickets(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &TicketFilter,
    page: PageRequest,
) -> StoreResult<Page<SupportTicket>> {
    let mut query = support_tickets::table
        .filter(support_tickets::merchant_id.eq(merchant.uuid()))
        .select(TicketRow::as_select())
        .order(support_tickets::id.desc())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(support_tickets::status.eq(status.as_str()));
    }
    if let Some(customer) = filter.customer {
        query = query.filter(support_tickets::customer_id.eq(customer.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(support_tickets::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(TicketRow::into_domain)
}

pub async fn insert_message(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    m: &TicketMessage,
) -> StoreResult<()> {
    diesel::insert_into(ticket_messages::table)
        .values((
            ticket_messages::merchant_id.eq(merchant.uuid()),
            ticket_messages::id.eq(m.id.uuid()),
            ticket_messages::ticket_id.eq(m.ticket_id.uuid()),
            ticket_messages::author.eq(m.author.as_str()),
            ticket_messages::body.eq(&m.body),
            ticket_messages::created_at.eq(m.created_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The messages of `tickets`, oldest first. Bounded: a ticket is a conversation, not a
/// log.
pub async fn messages_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    tickets: &[TicketId],
) -> StoreResult<Vec<TicketMessage>> {
    let ids: Vec<uuid::Uuid> = tickets.iter().map(|t| t.uuid()).collect();
    let rows: Vec<(uuid::Uuid, uuid::Uuid, String, String, DateTime<Utc>)> = ticket_messages::table
        .filter(ticket_messages::merchant_id.eq(merchant.uuid()))
        .filter(ticket_messages::ticket_id.eq_any(ids))
        .select((
            ticket_messages::id,
            ticket_messages::ticket_id,
            ticket_messages::author,
            ticket_messages::body,
            ticket_messages::created_at,
        ))
        .order(ticket_messages::id.asc())
        .limit(5000)
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(id, ticket, author, body, created_at)| {
            Ok(TicketMessage {
                id: TicketMessageId::from_uuid(id),
                ticket_id: TicketId::from_uuid(ticket),
                author: author.parse().map_err(StoreError::corrupt)?,
                body,
                created_at,
            })
        })
        .collect()
}
