//! Customer context: the aggregates the context, segments, timeline and metrics are
//! computed from (SQL over the real tables, grouped by currency), agent notes, and the
//! merchant's segment settings.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId, NoteId};

use crate::error::StoreResult;
use crate::pagination::{Page, PageRequest};
use crate::schema::{customer_notes, segment_settings};

/// Paid and refunded amounts of one currency.
#[derive(Debug, Clone, QueryableByName, PartialEq, Eq)]
pub struct CurrencyTotals {
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub paid: i64,
    #[diesel(sql_type = BigInt)]
    pub refunded: i64,
}

/// Succeeded payments minus refunds, per currency (never summed across currencies).
pub async fn lifetime_value(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<CurrencyTotals>> {
    Ok(diesel::sql_query(
        "SELECT currency, sum(paid)::int8 AS paid, sum(refunded)::int8 AS refunded FROM (
             SELECT currency, amount AS paid, 0::int8 AS refunded FROM payments
              WHERE merchant_id = $1 AND customer_id = $2 AND status = 'succeeded'
             UNION ALL
             SELECT r.currency, 0, r.amount FROM refunds r
               JOIN payments p ON p.merchant_id = r.merchant_id AND p.id = r.payment_id
              WHERE r.merchant_id = $1 AND p.customer_id = $2
         ) t GROUP BY currency ORDER BY currency",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .load(conn)
    .await?)
}

/// A subscription with its plan's price terms.
#[derive(Debug, Clone, QueryableByName)]
pub struct SubscriptionSummaryRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = SqlUuid)]
    pub plan_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub plan_name: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Text)]
    pub billing_interval: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub interval_count: i32,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

pub async fn subscriptions_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<SubscriptionSummaryRow>> {
    Ok(diesel::sql_query(
        "SELECT s.id, s.status, s.plan_id, p.name AS plan_name, p.amount, p.currency,
                p.billing_interval, p.interval_count, s.created_at
           FROM subscriptions s JOIN plans p ON p.merchant_id = s.merchant_id AND p.id = s.plan_id
          WHERE s.merchant_id = $1 AND s.customer_id = $2 ORDER BY s.id DESC",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Declined or failed payment attempts since `since`.
pub async fn failed_payments_since(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    since: DateTime<Utc>,
) -> StoreResult<i64> {
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM payments WHERE merchant_id = $1 AND customer_id = $2
            AND status IN ('declined', 'failed') AND created_at >= $3",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .bind::<Timestamptz, _>(since)
    .get_result(conn)
    .await?;
    Ok(row.n)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct TicketSummaryRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub subject: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

/// Open tickets, and the most recent ones whatever their status (newest first).
pub async fn tickets_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    recent: i64,
) -> StoreResult<Vec<TicketSummaryRow>> {
    Ok(diesel::sql_query(
        "SELECT id, subject, status, channel, created_at, updated_at FROM (
             SELECT *, row_number() OVER (ORDER BY id DESC) AS rn FROM support_tickets
              WHERE merchant_id = $1 AND customer_id = $2
         ) t WHERE status = 'open' OR rn <= $3 ORDER BY id DESC",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .bind::<BigInt, _>(recent)
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct CancellationSummaryRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub subscription_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub effective_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

pub async fn cancellations_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<CancellationSummaryRow>> {
    Ok(diesel::sql_query(
        "SELECT id, subscription_id, reason, status, effective_at, created_at
           FROM cancellation_requests WHERE merchant_id = $1 AND customer_id = $2
          ORDER BY id DESC LIMIT 50",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .load(conn)
    .await?)
}

#[derive(Debug, Clone, QueryableByName)]
pub struct LifecycleEventRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub resource_id: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// Pause, resume and cancellation events of the given subscriptions (TypeID strings).
pub async fn lifecycle_events_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription_ids: &[String],
) -> StoreResult<Vec<LifecycleEventRow>> {
    Ok(diesel::sql_query(
        "SELECT id, event_type, resource_id, created_at FROM events
          WHERE merchant_id = $1 AND resource_id = ANY($2)
            AND event_type IN ('subscription.paused', 'subscription.resumed',
                'subscription.pause_scheduled', 'subscription.cancel_scheduled',
                'subscription.canceled', 'subscription.cancellation_requested',
                'subscription.cancellation_withdrawn')
          ORDER BY id DESC LIMIT 100",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<diesel::sql_types::Array<Text>, _>(subscription_ids)
    .load(conn)
    .await?)
}

/// The merchant's high_ltv thresholds, per currency code.
pub async fn high_ltv_thresholds(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<Vec<(String, i64)>> {
    Ok(segment_settings::table
        .filter(segment_settings::merchant_id.eq(merchant.uuid()))
        .order(segment_settings::currency)
        .select((
            segment_settings::currency,
            segment_settings::high_ltv_threshold,
        ))
        .load(conn)
        .await?)
}

/// Replaces the merchant's thresholds.
pub async fn set_high_ltv_thresholds(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    thresholds: &[(String, i64)],
) -> StoreResult<()> {
    diesel::delete(
        segment_settings::table.filter(segment_settings::merchant_id.eq(merchant.uuid())),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = thresholds
        .iter()
        .map(|(currency, amount)| {
            (
                segment_settings::merchant_id.eq(merchant.uuid()),
                segment_settings::currency.eq(currency.clone()),
                segment_settings::high_ltv_threshold.eq(*amount),
            )
        })
        .collect();
    diesel::insert_into(segment_settings::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct NewNote {
    pub id: NoteId,
    pub customer: CustomerId,
    pub body: String,
    pub channel: String,
    pub author: String,
    pub at: DateTime<Utc>,
}

pub async fn insert_note(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    note: &NewNote,
) -> StoreResult<()> {
    diesel::insert_into(customer_notes::table)
        .values((
            customer_notes::merchant_id.eq(merchant.uuid()),
            customer_notes::id.eq(note.id.uuid()),
            customer_notes::customer_id.eq(note.customer.uuid()),
            customer_notes::body.eq(&note.body),
            customer_notes::channel.eq(&note.channel),
            customer_notes::author.eq(&note.author),
            customer_notes::created_at.eq(note.at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// One entry of a customer's timeline: an event, an agent note or a ticket message.
#[derive(Debug, Clone, QueryableByName)]
pub struct TimelineRow {
    /// `event`, `note` or `ticket_message`.
    #[diesel(sql_type = Text)]
    pub entry_kind: String,
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// The event type, or `note` / `ticket.message`.
    #[diesel(sql_type = Text)]
    pub entry_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resource_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub channel: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub author: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub body: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub ticket_id: Option<uuid::Uuid>,
    /// For an event a merchant request caused: the key and the agent it named.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub api_key_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub agent: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
}

/// The customer's events (by `events.customer_id`), agent notes and ticket messages in
/// one stream, newest first, paged by id (all are UUIDv7, so id order is time order).
pub async fn timeline(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> StoreResult<Page<TimelineRow>> {
    let rows: Vec<TimelineRow> = diesel::sql_query(
        "SELECT * FROM (
             SELECT 'event' AS entry_kind, id, created_at, event_type AS entry_type,
                    resource_type, resource_id, data->>'channel' AS channel,
                    NULL::text AS author, NULL::text AS body, NULL::uuid AS ticket_id,
                    api_key_id, agent, request_id
               FROM events WHERE merchant_id = $1 AND customer_id = $2
             UNION ALL
             SELECT 'note', id, created_at, 'note', 'customer', NULL, channel, author, body, NULL,
                    NULL, NULL, NULL
               FROM customer_notes WHERE merchant_id = $1 AND customer_id = $2
             UNION ALL
             SELECT 'ticket_message', m.id, m.created_at, 'ticket.message', 'support_ticket',
                    NULL, t.channel, m.author, m.body, t.id, NULL, NULL, NULL
               FROM ticket_messages m JOIN support_tickets t
                 ON t.merchant_id = m.merchant_id AND t.id = m.ticket_id
              WHERE m.merchant_id = $1 AND t.customer_id = $2
         ) x WHERE ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .bind::<Nullable<SqlUuid>, _>(page.starting_after)
    .bind::<BigInt, _>(page.fetch_limit())
    .load(conn)
    .await?;
    Ok(Page::from_overfetch(rows, &page))
}
