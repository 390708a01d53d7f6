//! The event outbox. Events are written by use cases inside their own transaction, so an
//! event exists if and only if the change it describes was committed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{try_join, try_join_all};
use tenure_domain::ids::{CustomerId, EventId, GenerateId, MerchantId};

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
    /// The merchant request that caused it, if one did.
    pub actor: Option<EventActor>,
}

/// The merchant request behind an event: the key, the agent it named, its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventActor {
    pub api_key: uuid::Uuid,
    pub agent: Option<String>,
    pub request_id: String,
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
    pub api_key_id: Option<uuid::Uuid>,
    pub agent: Option<String>,
    pub request_id: Option<String>,
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
    record_planned(conn, merchant, vec![PlannedEvent { id, event, at }]).await?;
    Ok(id)
}

/// An event whose id was taken before it is recorded. Ids order events, so a use case
/// that takes each id as the event happens and records them together later keeps them
/// in order among the events it records directly.
#[derive(Debug, Clone)]
pub struct PlannedEvent {
    pub id: EventId,
    pub event: NewEvent,
    pub at: DateTime<Utc>,
}

/// Records events of one merchant as [`record`] does, in one round trip: a one-row
/// insert each (they stay prepared; a multi-row insert is parsed again every time) and
/// one lookup of the endpoints subscribed to any of their types. Their deliveries, if
/// any endpoint wants them, follow.
pub async fn record_planned(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    planned: Vec<PlannedEvent>,
) -> StoreResult<()> {
    if planned.is_empty() {
        return Ok(());
    }
    let mut types: Vec<&str> = planned
        .iter()
        .map(|p| p.event.event_type.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    // Sent in argument order, the inserts first: the lookup depends on none of them.
    let inserts = try_join_all(planned.iter().map(|p| {
        diesel::insert_into(events::table)
            .values((
                events::merchant_id.eq(merchant.uuid()),
                events::id.eq(p.id.uuid()),
                events::event_type.eq(&p.event.event_type),
                events::resource_type.eq(p.event.resource_type),
                events::resource_id.eq(&p.event.resource_id),
                events::data.eq(&p.event.data),
                events::previous_attributes.eq(&p.event.previous_attributes),
                events::created_at.eq(p.at),
                events::customer_id.eq(customer_of(&p.event)),
                events::api_key_id.eq(p.event.actor.as_ref().map(|a| a.api_key)),
                events::agent.eq(p.event.actor.as_ref().and_then(|a| a.agent.as_deref())),
                events::request_id.eq(p.event.actor.as_ref().map(|a| a.request_id.as_str())),
            ))
            .execute(&mut &*conn)
    }));
    let subscribers = webhooks::subscribers(conn, merchant, &types);
    let (_, subscribers) = try_join(inserts, subscribers).await?;
    if subscribers.is_empty() {
        return Ok(());
    }
    // Deliveries of one `insert_deliveries` call share their due time: one call per time.
    let mut by_time: Vec<(DateTime<Utc>, Vec<NewDelivery>)> = Vec::new();
    for p in &planned {
        let wanted = subscribers
            .iter()
            .filter(|s| s.wants(&p.event.event_type))
            .map(|s| NewDelivery {
                endpoint: s.id,
                event: p.id,
                event_type: p.event.event_type.clone(),
            });
        match by_time.iter_mut().find(|(at, _)| *at == p.at) {
            Some((_, list)) => list.extend(wanted),
            None => by_time.push((p.at, wanted.collect())),
        }
    }
    for (at, deliveries) in by_time {
        webhooks::insert_deliveries(conn, merchant, deliveries, at).await?;
    }
    Ok(())
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
        let actor = event.actor;
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
            events::api_key_id.eq(actor.as_ref().map(|a| a.api_key)),
            events::agent.eq(actor.as_ref().and_then(|a| a.agent.clone())),
            events::request_id.eq(actor.map(|a| a.request_id)),
        ));
    }
    // PostgreSQL takes at most 65535 bind parameters per statement (12 per row here).
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
