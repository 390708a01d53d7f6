//! GDPR: what the export reads beyond the other repositories, and the anonymisation of a
//! customer's personal data (financial records are kept as they are).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId};

use crate::error::StoreResult;
use crate::repo::events::EventRow;
use crate::schema::events;

/// What replaces erased free text (note and ticket message bodies, ticket subjects).
pub const ERASED_TEXT: &str = "[erased]";

#[derive(Debug, Clone, QueryableByName)]
pub struct NoteRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    pub body: String,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Text)]
    pub author: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// The customer's agent notes, oldest first.
pub async fn notes_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<NoteRow>> {
    Ok(diesel::sql_query(
        "SELECT id, body, channel, author, created_at FROM customer_notes
          WHERE merchant_id = $1 AND customer_id = $2 ORDER BY id",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .load(conn)
    .await?)
}

/// Events about the customer: those linked to it (`events.customer_id`) and, for events
/// recorded before that link existed, those whose resource is the customer or whose
/// snapshot names it. Oldest first.
pub async fn events_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<EventRow>> {
    let id = customer.to_string();
    Ok(events::table
        .filter(events::merchant_id.eq(merchant.uuid()))
        .filter(
            events::customer_id
                .eq(customer.uuid())
                .or(events::resource_id.eq(id.clone()))
                .or(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("data->>'customer_id' = ")
                        .bind::<Text, _>(id),
                ),
        )
        .order(events::id.asc())
        .select(EventRow::as_select())
        .load(conn)
        .await?)
}

/// Replaces the snapshot of an event (after its personal fields were scrubbed).
pub async fn rewrite_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: uuid::Uuid,
    data: serde_json::Value,
    previous_attributes: Option<serde_json::Value>,
) -> StoreResult<()> {
    diesel::update(events::table.find((merchant.uuid(), id)))
        .set((
            events::data.eq(data),
            events::previous_attributes.eq(previous_attributes),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, QueryableByName)]
pub struct OfferOutcomeRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub offer_id: uuid::Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub subscription_id: uuid::Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub cancellation_request_id: Option<uuid::Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = Text)]
    pub outcome: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub offer_kind: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Text>)]
    pub offer_name: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub decided_at: Option<DateTime<Utc>>,
}

/// Retention offers presented to the customer and their outcomes, oldest first.
pub async fn offer_outcomes_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<OfferOutcomeRow>> {
    Ok(diesel::sql_query(
        "SELECT o.id, o.offer_id, o.subscription_id, o.cancellation_request_id, o.reason,
                o.outcome, f.kind AS offer_kind, f.name AS offer_name, o.created_at, o.decided_at
           FROM retention_offer_outcomes o
           LEFT JOIN retention_offers f ON f.merchant_id = o.merchant_id AND f.id = o.offer_id
          WHERE o.merchant_id = $1 AND o.customer_id = $2 ORDER BY o.id",
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

/// Subscriptions of the customer that have not ended.
pub async fn live_subscriptions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<i64> {
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM subscriptions
          WHERE merchant_id = $1 AND customer_id = $2 AND status <> 'canceled'",
    )
    .bind::<SqlUuid, _>(merchant.uuid())
    .bind::<SqlUuid, _>(customer.uuid())
    .get_result(conn)
    .await?;
    Ok(row.n)
}

/// What named a customer before its erasure.
#[derive(Debug, Clone, Copy)]
pub struct ErasedIdentity<'a> {
    pub email: Option<&'a str>,
    pub external_id: &'a str,
}

/// Anonymises everything personal the customer's other rows hold: note bodies, ticket
/// subjects and message bodies, cancellation messages (of requests and of the
/// subscriptions' cancellation details); payment methods are detached and
/// lose their gateway token (brand, last4 and expiry stay, as on the invoices' payments).
/// Invoices, their lines, payments and refunds are not touched; audit entries about the
/// customer lose their request bodies. (Stored idempotent
/// responses are anonymised by the service, which holds the scrubbing rules.)
///
/// `identity` is what named the customer before the erasure (its email and external
/// id), for the audit entries of requests that never made a resource of it: a create
/// refused as a duplicate or invalid still carried them.
pub async fn anonymise_related(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    identity: ErasedIdentity<'_>,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let m = merchant.uuid();
    let c = customer.uuid();
    let statements = [
        "UPDATE customer_notes SET body = $3 WHERE merchant_id = $1 AND customer_id = $2",
        "UPDATE ticket_messages tm SET body = $3 FROM support_tickets t
          WHERE tm.merchant_id = $1 AND t.merchant_id = tm.merchant_id AND t.id = tm.ticket_id
            AND t.customer_id = $2",
        "UPDATE support_tickets SET subject = $3 WHERE merchant_id = $1 AND customer_id = $2",
        "UPDATE cancellation_requests SET message = NULL, decline_message = NULL
          WHERE merchant_id = $1 AND customer_id = $2 AND $3 IS NOT NULL",
        "UPDATE subscriptions SET state = jsonb_set(state, '{cancellation,message}', 'null')
          WHERE merchant_id = $1 AND customer_id = $2 AND $3 IS NOT NULL
            AND state->'cancellation'->>'message' IS NOT NULL",
    ];
    for sql in statements {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(m)
            .bind::<SqlUuid, _>(c)
            .bind::<Text, _>(ERASED_TEXT)
            .execute(conn)
            .await?;
    }
    // The audit trail keeps who did what, but not the bodies that may carry the
    // customer's data: those of requests about the customer or any of its resources (the
    // events name them), or naming the customer anywhere in the body. Erasure is rare;
    // the body search reads the merchant's audit rows once. The email is searched
    // anywhere in the body (case aside: addresses are compared so); the external id,
    // which may be as short as "1", only as a whole string value.
    diesel::sql_query(
        "UPDATE audit_events SET request_body = NULL
          WHERE merchant_id = $1 AND request_body IS NOT NULL
            AND (resource_id = $3
                 OR resource_id IN (SELECT resource_id FROM events
                                     WHERE merchant_id = $1 AND customer_id = $2)
                 OR strpos(request_body::text, $3) > 0
                 OR ($4 <> '' AND strpos(lower(request_body::text), lower($4)) > 0)
                 OR jsonb_path_exists(request_body, '$.** ? (@ == $v)',
                                      jsonb_build_object('v', $5::text), true))",
    )
    .bind::<SqlUuid, _>(m)
    .bind::<SqlUuid, _>(c)
    .bind::<Text, _>(customer.to_string())
    .bind::<Text, _>(identity.email.unwrap_or_default())
    .bind::<Text, _>(identity.external_id)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE payment_methods SET is_default = false, gateway_token = 'erased',
                detached_at = coalesce(detached_at, $3)
          WHERE merchant_id = $1 AND customer_id = $2",
    )
    .bind::<SqlUuid, _>(m)
    .bind::<SqlUuid, _>(c)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}
