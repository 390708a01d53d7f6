//! The event outbox. Events are written by use cases inside their own transaction, so an
//! event exists if and only if the change it describes was committed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::TryFutureExt;
use futures_util::future::try_join;
use tenure_domain::ids::GenerateId;
use tenure_domain::ids::{CustomerId, EventId, MerchantId};

use crate::error::StoreResult;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::repo::webhooks::{self, NewDelivery};
use crate::schema::events;

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub resource_type: &'static str,
    pub resource_id: String,
    /// A snapshot of the resource after the change, as the API renders it.
    pub data: serde_json::Value,
    /// The fields that changed, with their values before the change.
    pub previous_attributes: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub merchant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub data: serde_json::Value,
    pub previous_attributes: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Records an event and, in the same transaction, a pending webhook delivery of it to
/// every enabled endpoint of the merchant that subscribes to its type.
pub async fn record(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event: NewEvent,
    at: DateTime<Utc>,
) -> StoreResult<EventId> {
    let id = EventId::generate();
    let customer_id = customer_of(&event);
    let shared: &AsyncPgConnection = conn;
    // The endpoint lookup does not depend on the insert: both go in one round trip.
    let insert = diesel::insert_into(events::table)
        .values((
            events::merchant_id.eq(merchant.uuid()),
            events::id.eq(id.uuid()),
            events::event_type.eq(&event.event_type),
            events::resource_type.eq(event.resource_type),
            events::resource_id.eq(event.resource_id),
            events::data.eq(event.data),
            events::previous_attributes.eq(event.previous_attributes),
            events::created_at.eq(at),
            events::customer_id.eq(customer_id),
        ))
        .execute(&mut &*shared)
        .err_into();
    let endpoints = webhooks::subscribed_endpoints(shared, merchant, &event.event_type);
    let (_, endpoints) = try_join(insert, endpoints).await?;
    let deliveries = endpoints
        .into_iter()
        .map(|endpoint| NewDelivery {
            endpoint,
            event: id,
            event_type: event.event_type.clone(),
        })
        .collect();
    webhooks::insert_deliveries(conn, merchant, deliveries, at).await?;
    Ok(id)
}

/// An event id with its time.
type TimedEvent = (EventId, DateTime<Utc>);

/// Records several events of one merchant with one `INSERT` (and their webhook
/// deliveries with one more per event type): the batch form of [`record`] for the
/// renewal engine, same rows, same outbox guarantee.
pub async fn record_many(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    batch: Vec<(NewEvent, DateTime<Utc>)>,
) -> StoreResult<Vec<EventId>> {
    let mut ids = Vec::with_capacity(batch.len());
    // Event type → its events (few types per batch, so a list beats a map).
    let mut by_type: Vec<(String, Vec<TimedEvent>)> = Vec::new();
    let mut values = Vec::with_capacity(batch.len());
    for (event, at) in batch {
        let id = EventId::generate();
        ids.push(id);
        match by_type.iter_mut().find(|(t, _)| *t == event.event_type) {
            Some((_, list)) => list.push((id, at)),
            None => by_type.push((event.event_type.clone(), vec![(id, at)])),
        }
        let customer_id = customer_of(&event);
        values.push((
            events::merchant_id.eq(merchant.uuid()),
            events::id.eq(id.uuid()),
            events::event_type.eq(event.event_type),
            events::resource_type.eq(event.resource_type),
            events::resource_id.eq(event.resource_id),
            events::data.eq(event.data),
            events::previous_attributes.eq(event.previous_attributes),
            events::created_at.eq(at),
            events::customer_id.eq(customer_id),
        ));
    }
    // PostgreSQL takes at most 65535 bind parameters per statement (9 per row here).
    for chunk in values.chunks(5000) {
        diesel::insert_into(events::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    for (event_type, events) in by_type {
        crate::repo::webhooks::enqueue_for_events(conn, merchant, &event_type, &events).await?;
    }
    Ok(ids)
}

/// The customer an event is about, for the customer timeline: the customer itself, or
/// the `customer_id` of the resource's snapshot (subscriptions, invoices, payments,
/// tickets, payment methods, cancellation requests).
fn customer_of(event: &NewEvent) -> Option<uuid::Uuid> {
    let id = if event.resource_type == "customer" {
        Some(event.resource_id.as_str())
    } else {
        event.data.get("customer_id").and_then(|v| v.as_str())
    }?;
    id.parse::<CustomerId>().ok().map(|id| id.uuid())
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: EventId,
) -> StoreResult<EventRow> {
    Ok(events::table
        .find((merchant.uuid(), id.uuid()))
        .select(EventRow::as_select())
        .get_result(conn)
        .await?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub resource_id: Option<String>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &EventFilter,
    page: PageRequest,
) -> StoreResult<Page<EventRow>> {
    let mut query = events::table
        .filter(events::merchant_id.eq(merchant.uuid()))
        .select(EventRow::as_select())
        .order(events::id.desc())
        .into_boxed();
    if let Some(t) = &filter.event_type {
        query = query.filter(events::event_type.eq(t));
    }
    if let Some(r) = &filter.resource_id {
        query = query.filter(events::resource_id.eq(r));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(events::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Ok(Page::from_overfetch(rows, &page))
}
