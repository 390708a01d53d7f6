//! Webhook endpoints, deliveries and the attempt log.
//!
//! A delivery row per matching enabled endpoint is created (by
//! [`crate::repo::events::record`], or [`enqueue_for_events`] for a batch) in the
//! transaction that records the event, so a rolled-back change delivers nothing.
//! Workers claim due deliveries with `FOR UPDATE SKIP LOCKED` and a lease, send them
//! outside any transaction, and settle each outcome in a transaction of its own.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Int4, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{EventId, GenerateId, MerchantId, WebhookDeliveryId, WebhookEndpointId};
use tenure_domain::webhooks::{
    ALL_EVENTS, DeliveryAttempt, DeliveryStatus, DisabledReason, WebhookDelivery, WebhookEndpoint,
};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{events, webhook_attempts, webhook_deliveries, webhook_endpoints};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhook_endpoints, treat_none_as_null = true)]
struct EndpointRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    url: String,
    description: Option<String>,
    enabled_events: Vec<String>,
    retry_schedule_secs: Vec<i32>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    disabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl EndpointRow {
    fn from_domain(merchant: MerchantId, e: &WebhookEndpoint) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: e.id.uuid(),
            url: e.url.clone(),
            description: e.description.clone(),
            enabled_events: e.enabled_events.clone(),
            retry_schedule_secs: e
                .retry_schedule_secs
                .iter()
                .map(|&s| i32::try_from(s).map_err(StoreError::corrupt))
                .collect::<StoreResult<_>>()?,
            secret: e.secret.clone(),
            previous_secret: e.previous_secret.clone(),
            previous_secret_expires_at: e.previous_secret_expires_at,
            disabled: e.disabled(),
            disabled_reason: e.disabled_reason.map(|r| r.as_str().to_owned()),
            failing_since: e.failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        })
    }

    fn into_domain(self) -> StoreResult<WebhookEndpoint> {
        let disabled_reason = match (self.disabled, self.disabled_reason.as_deref()) {
            (false, _) => None,
            (true, Some(reason)) => Some(
                DisabledReason::parse(reason)
                    .ok_or_else(|| StoreError::corrupt("unknown disabled_reason"))?,
            ),
            (true, None) => Some(DisabledReason::Manual),
        };
        Ok(WebhookEndpoint {
            id: WebhookEndpointId::from_uuid(self.id),
            url: self.url,
            description: self.description,
            enabled_events: self.enabled_events,
            retry_schedule_secs: self
                .retry_schedule_secs
                .into_iter()
                .map(|s| u32::try_from(s).map_err(StoreError::corrupt))
                .collect::<StoreResult<_>>()?,
            secret: self.secret,
            previous_secret: self.previous_secret,
            previous_secret_expires_at: self.previous_secret_expires_at,
            disabled_reason,
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_endpoint(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    endpoint: &WebhookEndpoint,
) -> StoreResult<()> {
    diesel::insert_into(webhook_endpoints::table)
        .values(EndpointRow::from_domain(merchant, endpoint)?)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_endpoint(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    endpoint: &WebhookEndpoint,
) -> StoreResult<()> {
    let n = diesel::update(webhook_endpoints::table.find((merchant.uuid(), endpoint.id.uuid())))
        .set(EndpointRow::from_domain(merchant, endpoint)?)
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Reads an endpoint; with `for_update` the row stays locked until the transaction ends.
pub async fn get_endpoint(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: WebhookEndpointId,
    for_update: bool,
) -> StoreResult<WebhookEndpoint> {
    let query = webhook_endpoints::table
        .find((merchant.uuid(), id.uuid()))
        .select(EndpointRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

pub async fn list_endpoints(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    page: PageRequest,
) -> StoreResult<Page<WebhookEndpoint>> {
    let mut query = webhook_endpoints::table
        .filter(webhook_endpoints::merchant_id.eq(merchant.uuid()))
        .select(EndpointRow::as_select())
        .order(webhook_endpoints::id.desc())
        .into_boxed();
    if let Some(after) = page.starting_after {
        query = query.filter(webhook_endpoints::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(EndpointRow::into_domain)
}

/// How many endpoints a merchant has.
pub async fn count_endpoints(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<i64> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::merchant_id.eq(merchant.uuid()))
        .count()
        .get_result(conn)
        .await?)
}

/// Deletes an endpoint with its deliveries and their attempt log.
pub async fn delete_endpoint(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: WebhookEndpointId,
) -> StoreResult<()> {
    let n = diesel::delete(webhook_endpoints::table.find((merchant.uuid(), id.uuid())))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Creates a pending delivery of each event (all of one type) to each enabled endpoint of
/// the merchant subscribed to that type, with one endpoint lookup; the deliveries are due
/// at each event's time.
pub async fn enqueue_for_events(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    events: &[(EventId, DateTime<Utc>)],
) -> StoreResult<usize> {
    let endpoints = subscribed_endpoints(conn, merchant, event_type).await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut inserted = 0;
    // Deliveries of one `insert_deliveries` call share their due time: group by time.
    let mut rest: Vec<(EventId, DateTime<Utc>)> = events.to_vec();
    rest.sort_by_key(|(_, at)| *at);
    for group in rest.chunk_by(|a, b| a.1 == b.1) {
        let at = group[0].1;
        let rows = group
            .iter()
            .flat_map(|(event, _)| {
                endpoints.iter().map(|endpoint| NewDelivery {
                    endpoint: *endpoint,
                    event: *event,
                    event_type: event_type.to_owned(),
                })
            })
            .collect();
        inserted += insert_deliveries(conn, merchant, rows, at).await?;
    }
    Ok(inserted)
}

/// The enabled endpoints of a merchant that subscribe to `event_type`.
pub async fn subscribed_endpoints(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
) -> StoreResult<Vec<WebhookEndpointId>> {
    Ok(subscribers(conn, merchant, &[event_type])
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// An enabled endpoint with the event types it subscribes to.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub id: WebhookEndpointId,
    enabled_events: Vec<String>,
}

impl Subscriber {
    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled_events
            .iter()
            .any(|e| e == ALL_EVENTS || e == event_type)
    }
}

/// The enabled endpoints of a merchant that subscribe to any of `event_types`.
///
/// Takes a shared connection so that it can be pipelined with the events' inserts.
pub async fn subscribers(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    event_types: &[&str],
) -> QueryResult<Vec<Subscriber>> {
    let mut wanted = Vec::with_capacity(event_types.len() + 1);
    wanted.push(ALL_EVENTS.to_owned());
    wanted.extend(event_types.iter().map(|t| (*t).to_owned()));
    let rows: Vec<(uuid::Uuid, Vec<String>)> = webhook_endpoints::table
        .filter(webhook_endpoints::merchant_id.eq(merchant.uuid()))
        .filter(webhook_endpoints::disabled.eq(false))
        .filter(webhook_endpoints::enabled_events.overlaps_with(wanted))
        .select((webhook_endpoints::id, webhook_endpoints::enabled_events))
        .load(&mut &*conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, enabled_events)| Subscriber {
            id: WebhookEndpointId::from_uuid(id),
            enabled_events,
        })
        .collect())
}

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub endpoint: WebhookEndpointId,
    pub event: EventId,
    pub event_type: String,
}

/// Creates pending deliveries due at `at` (for events and for redeliveries).
pub async fn insert_deliveries(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    deliveries: Vec<NewDelivery>,
    at: DateTime<Utc>,
) -> StoreResult<usize> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let values: Vec<_> = deliveries
        .into_iter()
        .map(|d| {
            (
                webhook_deliveries::merchant_id.eq(merchant.uuid()),
                webhook_deliveries::id.eq(WebhookDeliveryId::generate().uuid()),
                webhook_deliveries::endpoint_id.eq(d.endpoint.uuid()),
                webhook_deliveries::event_id.eq(d.event.uuid()),
                webhook_deliveries::event_type.eq(d.event_type),
                webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
                webhook_deliveries::next_attempt_at.eq(Some(at)),
                webhook_deliveries::created_at.eq(at),
                webhook_deliveries::updated_at.eq(at),
            )
        })
        .collect();
    let mut inserted = 0;
    // PostgreSQL takes at most 65535 bind parameters per statement.
    for chunk in values.chunks(1000) {
        inserted += diesel::insert_into(webhook_deliveries::table)
            .values(chunk)
            .execute(&mut &*conn)
            .await?;
    }
    Ok(inserted)
}

/// Makes the merchant's deliveries that were never attempted and are due after `now`
/// due at `now`. Such deliveries are of events that happened on a test clock ahead of
/// real time (a delivery is first due at its event's time); a receiver should get them
/// as the clock moves, not when real time catches up. Returns how many were moved.
pub async fn bring_forward_first_attempts(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::next_attempt_at.gt(now))
            .filter(webhook_deliveries::attempts.eq(0))
            .filter(webhook_deliveries::merchant_id.eq(merchant.uuid())),
    )
    .set(webhook_deliveries::next_attempt_at.eq(Some(now)))
    .execute(conn)
    .await?)
}

/// Cancels the pending deliveries of an endpoint (when it is disabled).
pub async fn cancel_pending(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    at: DateTime<Utc>,
) -> StoreResult<usize> {
    Ok(diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::merchant_id.eq(merchant.uuid()))
            .filter(webhook_deliveries::endpoint_id.eq(endpoint.uuid()))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str())),
    )
    .set((
        webhook_deliveries::status.eq(DeliveryStatus::Canceled.as_str()),
        webhook_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
        webhook_deliveries::updated_at.eq(at),
    ))
    .execute(conn)
    .await?)
}

/// The events of a merchant created in `[from, to)`, oldest first, at most `limit`.
pub async fn events_between(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<(EventId, String)>> {
    let rows: Vec<(uuid::Uuid, String)> = events::table
        .filter(events::merchant_id.eq(merchant.uuid()))
        .filter(events::created_at.ge(from))
        .filter(events::created_at.lt(to))
        .order(events::id.asc())
        .limit(limit)
        .select((events::id, events::event_type))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, t)| (EventId::from_uuid(id), t))
        .collect())
}

/// A delivery a worker has claimed: its attempt number `attempt` is now in flight.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = SqlUuid)]
    pub merchant_id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: uuid::Uuid,
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    #[diesel(sql_type = Timestamptz)]
    pub first_attempt_at: DateTime<Utc>,
}

/// Claims up to `batch` deliveries due at `now`, oldest first, across all merchants, in
/// one statement: rows locked by another worker are skipped, and each claimed row gets
/// its attempt counted and is leased until `lease_until`, so that no other worker takes
/// it while its request is in flight, and a crashed worker's delivery is retried after
/// the lease.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    batch: i64,
) -> StoreResult<Vec<ClaimedDelivery>> {
    Ok(diesel::sql_query(
        "UPDATE webhook_deliveries d \
         SET attempts = d.attempts + 1, next_attempt_at = $2, \
             first_attempt_at = COALESCE(d.first_attempt_at, $1), updated_at = $1 \
         FROM (SELECT merchant_id, id FROM webhook_deliveries \
               WHERE status = 'pending' AND next_attempt_at <= $1 \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due \
         WHERE d.merchant_id = due.merchant_id AND d.id = due.id \
         RETURNING d.merchant_id, d.id, d.endpoint_id, d.event_id, d.attempts AS attempt, \
                   d.first_attempt_at",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<BigInt, _>(batch)
    .load(conn)
    .await?)
}

/// How a claimed attempt ended, to settle its delivery.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub status: DeliveryStatus,
    /// The next attempt's time while the delivery stays pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Logs an attempt and settles its delivery, if the delivery is still on that attempt
/// (a worker whose lease ran out and was overtaken changes nothing). Returns whether it
/// did.
pub async fn settle_attempt(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    delivery: WebhookDeliveryId,
    attempt: &DeliveryAttempt,
    settlement: &Settlement,
) -> StoreResult<bool> {
    let attempt_no = i32::try_from(attempt.attempt).map_err(StoreError::corrupt)?;
    let latency = i32::try_from(attempt.latency_ms).unwrap_or(i32::MAX);
    let n = diesel::update(
        webhook_deliveries::table
            .find((merchant.uuid(), delivery.uuid()))
            .filter(webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::attempts.eq(attempt_no)),
    )
    .set((
        webhook_deliveries::status.eq(settlement.status.as_str()),
        webhook_deliveries::next_attempt_at.eq(settlement.next_attempt_at),
        webhook_deliveries::last_attempt_at.eq(Some(attempt.attempted_at)),
        webhook_deliveries::last_response_status.eq(attempt.response_status.map(i32::from)),
        webhook_deliveries::last_latency_ms.eq(Some(latency)),
        webhook_deliveries::last_error.eq(attempt.error.clone()),
        webhook_deliveries::updated_at.eq(attempt.attempted_at),
    ))
    .execute(conn)
    .await?;
    if n == 0 {
        return Ok(false);
    }
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::merchant_id.eq(merchant.uuid()),
            webhook_attempts::delivery_id.eq(delivery.uuid()),
            webhook_attempts::attempt.eq(attempt_no),
            webhook_attempts::attempted_at.eq(attempt.attempted_at),
            webhook_attempts::succeeded.eq(attempt.succeeded),
            webhook_attempts::response_status.eq(attempt.response_status.map(i32::from)),
            webhook_attempts::latency_ms.eq(latency),
            webhook_attempts::error.eq(attempt.error.clone()),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(true)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
struct DeliveryRow {
    id: uuid::Uuid,
    endpoint_id: uuid::Uuid,
    event_id: uuid::Uuid,
    event_type: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    first_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_response_status: Option<i32>,
    last_latency_ms: Option<i32>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DeliveryRow {
    fn into_domain(self) -> StoreResult<WebhookDelivery> {
        Ok(WebhookDelivery {
            id: WebhookDeliveryId::from_uuid(self.id),
            endpoint_id: WebhookEndpointId::from_uuid(self.endpoint_id),
            event_id: EventId::from_uuid(self.event_id),
            event_type: self.event_type,
            status: DeliveryStatus::parse(&self.status)
                .ok_or_else(|| StoreError::corrupt("unknown delivery status"))?,
            attempts: u32::try_from(self.attempts).map_err(StoreError::corrupt)?,
            next_attempt_at: self.next_attempt_at,
            first_attempt_at: self.first_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_response_status: self
                .last_response_status
                .and_then(|s| u16::try_from(s).ok()),
            last_latency_ms: self.last_latency_ms.and_then(|l| u32::try_from(l).ok()),
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn get_delivery(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: WebhookDeliveryId,
) -> StoreResult<WebhookDelivery> {
    webhook_deliveries::table
        .find((merchant.uuid(), id.uuid()))
        .select(DeliveryRow::as_select())
        .get_result(conn)
        .await?
        .into_domain()
}

/// The deliveries of one endpoint, newest first.
pub async fn list_deliveries(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> StoreResult<Page<WebhookDelivery>> {
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::merchant_id.eq(merchant.uuid()))
        .filter(webhook_deliveries::endpoint_id.eq(endpoint.uuid()))
        .select(DeliveryRow::as_select())
        .order(webhook_deliveries::id.desc())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(webhook_deliveries::status.eq(status.as_str()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(webhook_deliveries::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(DeliveryRow::into_domain)
}

/// The attempt logs of some deliveries, in attempt order.
pub async fn attempts_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    deliveries: &[WebhookDeliveryId],
) -> StoreResult<Vec<(WebhookDeliveryId, DeliveryAttempt)>> {
    let ids: Vec<uuid::Uuid> = deliveries.iter().map(|d| d.uuid()).collect();
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        uuid::Uuid,
        i32,
        DateTime<Utc>,
        bool,
        Option<i32>,
        i32,
        Option<String>,
    )> = webhook_attempts::table
        .filter(webhook_attempts::merchant_id.eq(merchant.uuid()))
        .filter(webhook_attempts::delivery_id.eq_any(ids))
        .order((webhook_attempts::delivery_id, webhook_attempts::attempt))
        .select((
            webhook_attempts::delivery_id,
            webhook_attempts::attempt,
            webhook_attempts::attempted_at,
            webhook_attempts::succeeded,
            webhook_attempts::response_status,
            webhook_attempts::latency_ms,
            webhook_attempts::error,
        ))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(delivery, attempt, at, ok, status, latency, error)| {
            Ok((
                WebhookDeliveryId::from_uuid(delivery),
                DeliveryAttempt {
                    attempt: u32::try_from(attempt).map_err(StoreError::corrupt)?,
                    attempted_at: at,
                    succeeded: ok,
                    response_status: status.and_then(|s| u16::try_from(s).ok()),
                    latency_ms: u32::try_from(latency).unwrap_or(0),
                    error,
                },
            ))
        })
        .collect()
}
