//! Each merchant's payment gateway settings (sealed secrets only), the gateway's
//! customers for the merchant's customers, and the gateway events already applied.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId};

use crate::error::StoreResult;
use crate::schema::{
    gateway_customers, gateway_disputes, gateway_events, gateway_settings, payment_methods,
    payments,
};

/// A merchant's stored settings. The secrets are sealed by the application; the store
/// never sees them in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = gateway_settings)]
pub struct GatewaySettingsRow {
    pub provider: String,
    pub secret_key_sealed: Option<Vec<u8>>,
    pub secret_key_last4: Option<String>,
    pub webhook_secret_sealed: Option<Vec<u8>>,
    pub webhook_secret_last4: Option<String>,
    pub publishable_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a `put` writes.
#[derive(Debug, Clone)]
pub struct NewGatewaySettings {
    pub provider: String,
    pub secret_key_sealed: Option<Vec<u8>>,
    pub secret_key_last4: Option<String>,
    pub webhook_secret_sealed: Option<Vec<u8>>,
    pub webhook_secret_last4: Option<String>,
    pub publishable_key: Option<String>,
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    for_update: bool,
) -> StoreResult<Option<GatewaySettingsRow>> {
    let query = gateway_settings::table
        .find(merchant.uuid())
        .select(GatewaySettingsRow::as_select());
    let row = if for_update {
        query.for_update().first(conn).await.optional()?
    } else {
        query.first(conn).await.optional()?
    };
    Ok(row)
}

/// Creates or replaces the merchant's settings.
pub async fn put(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: NewGatewaySettings,
    at: DateTime<Utc>,
) -> StoreResult<GatewaySettingsRow> {
    use gateway_settings::dsl as g;
    Ok(diesel::insert_into(gateway_settings::table)
        .values((
            g::merchant_id.eq(merchant.uuid()),
            g::provider.eq(&new.provider),
            g::secret_key_sealed.eq(&new.secret_key_sealed),
            g::secret_key_last4.eq(&new.secret_key_last4),
            g::webhook_secret_sealed.eq(&new.webhook_secret_sealed),
            g::webhook_secret_last4.eq(&new.webhook_secret_last4),
            g::publishable_key.eq(&new.publishable_key),
            g::created_at.eq(at),
            g::updated_at.eq(at),
        ))
        .on_conflict(g::merchant_id)
        .do_update()
        .set((
            g::provider.eq(excluded(g::provider)),
            g::secret_key_sealed.eq(excluded(g::secret_key_sealed)),
            g::secret_key_last4.eq(excluded(g::secret_key_last4)),
            g::webhook_secret_sealed.eq(excluded(g::webhook_secret_sealed)),
            g::webhook_secret_last4.eq(excluded(g::webhook_secret_last4)),
            g::publishable_key.eq(excluded(g::publishable_key)),
            g::updated_at.eq(excluded(g::updated_at)),
        ))
        .returning(GatewaySettingsRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Removes the merchant's settings (back to the sandbox); whether there were any.
pub async fn delete(conn: &mut AsyncPgConnection, merchant: MerchantId) -> StoreResult<bool> {
    let n = diesel::delete(gateway_settings::table.find(merchant.uuid()))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// A merchant's sealed secret key and webhook secret.
pub type SealedSecrets<M> = (M, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every merchant's sealed secrets, for re-sealing them under a new operator key.
/// Across tenants by design: an operator's command.
pub async fn all_sealed(
    conn: &mut AsyncPgConnection,
) -> StoreResult<Vec<SealedSecrets<MerchantId>>> {
    let rows: Vec<SealedSecrets<uuid::Uuid>> = gateway_settings::table
        .select((
            gateway_settings::merchant_id,
            gateway_settings::secret_key_sealed,
            gateway_settings::webhook_secret_sealed,
        ))
        .for_update()
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(m, a, b)| (MerchantId::from_uuid(m), a, b))
        .collect())
}

/// Replaces the sealed secrets of one merchant (same plain values, new seal).
pub async fn reseal(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    secret_key_sealed: Option<Vec<u8>>,
    webhook_secret_sealed: Option<Vec<u8>>,
) -> StoreResult<()> {
    diesel::update(gateway_settings::table.find(merchant.uuid()))
        .set((
            gateway_settings::secret_key_sealed.eq(secret_key_sealed),
            gateway_settings::webhook_secret_sealed.eq(webhook_secret_sealed),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The gateway's customer for `customer`, if one was created.
pub async fn customer_ref(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    provider: &str,
) -> StoreResult<Option<String>> {
    Ok(gateway_customers::table
        .find((merchant.uuid(), customer.uuid(), provider))
        .select(gateway_customers::gateway_ref)
        .first(conn)
        .await
        .optional()?)
}

/// Records the gateway's customer; when another request recorded one first, that one
/// is kept and returned.
pub async fn insert_customer_ref(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    provider: &str,
    gateway_ref: &str,
    at: DateTime<Utc>,
) -> StoreResult<String> {
    diesel::insert_into(gateway_customers::table)
        .values((
            gateway_customers::merchant_id.eq(merchant.uuid()),
            gateway_customers::customer_id.eq(customer.uuid()),
            gateway_customers::provider.eq(provider),
            gateway_customers::gateway_ref.eq(gateway_ref),
            gateway_customers::created_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(customer_ref(conn, merchant, customer, provider)
        .await?
        .unwrap_or_else(|| gateway_ref.to_owned()))
}

/// The Tenure customer whose gateway customer is `gateway_ref`.
pub async fn customer_of_ref(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    provider: &str,
    gateway_ref: &str,
) -> StoreResult<Option<CustomerId>> {
    let id: Option<uuid::Uuid> = gateway_customers::table
        .filter(gateway_customers::merchant_id.eq(merchant.uuid()))
        .filter(gateway_customers::provider.eq(provider))
        .filter(gateway_customers::gateway_ref.eq(gateway_ref))
        .select(gateway_customers::customer_id)
        .first(conn)
        .await
        .optional()?;
    Ok(id.map(CustomerId::from_uuid))
}

/// Marks a gateway event applied; `false` when it already was (apply it no more).
pub async fn mark_event_applied(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    provider: &str,
    event_id: &str,
    event_type: &str,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = diesel::insert_into(gateway_events::table)
        .values((
            gateway_events::merchant_id.eq(merchant.uuid()),
            gateway_events::provider.eq(provider),
            gateway_events::event_id.eq(event_id),
            gateway_events::event_type.eq(event_type),
            gateway_events::received_at.eq(at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A payment found by the gateway's reference of its charge.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct PaymentByRef {
    pub payment_id: uuid::Uuid,
    pub invoice_id: uuid::Uuid,
    pub amount: i64,
    pub currency: String,
    pub amount_refunded: i64,
}

/// The successful payment whose gateway reference is `gateway_ref` (a PaymentIntent).
pub async fn payment_by_ref(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    gateway: &str,
    gateway_ref: &str,
) -> StoreResult<Option<PaymentByRef>> {
    Ok(payments::table
        .filter(payments::merchant_id.eq(merchant.uuid()))
        .filter(payments::gateway.eq(gateway))
        .filter(payments::gateway_ref.eq(gateway_ref))
        .filter(payments::status.eq("succeeded"))
        .select((
            payments::id,
            payments::invoice_id,
            payments::amount,
            payments::currency,
            payments::amount_refunded,
        ))
        .first(conn)
        .await
        .optional()?)
}

/// Makes the invoice whose charge intent carries `idempotency_key` due now, so the
/// engine takes the charge over and asks the gateway under the same key (it answers
/// what the event said). `false` when no such charge is waiting.
pub async fn make_charge_due(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    idempotency_key: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    use diesel::sql_types::{Text, Timestamptz, Uuid};
    let n = diesel::sql_query(
        "UPDATE invoices i SET next_payment_attempt_at = $3 FROM charge_intents c \
         WHERE c.merchant_id = $1 AND c.idempotency_key = $2 AND i.merchant_id = $1 \
         AND i.id = c.invoice_id AND i.next_payment_attempt_at > $3",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Text, _>(idempotency_key)
    .bind::<Timestamptz, _>(now)
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// The payment methods (id, customer) whose token ends in `suffix` (`/pm_…`), locked.
pub async fn payment_methods_by_token_suffix(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    suffix: &str,
) -> StoreResult<Vec<(uuid::Uuid, uuid::Uuid)>> {
    Ok(payment_methods::table
        .filter(payment_methods::merchant_id.eq(merchant.uuid()))
        .filter(payment_methods::gateway_token.like(format!("%{suffix}")))
        .select((payment_methods::id, payment_methods::customer_id))
        .for_update()
        .load(conn)
        .await?)
}

/// Replaces what is known of a payment method's card (a card updater's new expiry or
/// number).
pub async fn update_card(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: uuid::Uuid,
    card: &tenure_domain::billing::gateway::CardDetails,
) -> StoreResult<()> {
    diesel::update(payment_methods::table.find((merchant.uuid(), id)))
        .set((
            payment_methods::brand.eq(&card.brand),
            payment_methods::last4.eq(&card.last4),
            payment_methods::exp_month.eq(i32::try_from(card.exp_month).unwrap_or(12)),
            payment_methods::exp_year.eq(card.exp_year),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A dispute to record.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Insertable)]
#[diesel(table_name = gateway_disputes)]
pub struct DisputeRow {
    pub merchant_id: uuid::Uuid,
    pub gateway_ref: String,
    pub payment_id: uuid::Uuid,
    pub invoice_id: uuid::Uuid,
    pub amount: i64,
    pub currency: String,
    pub reason: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Records a dispute or its new status.
pub async fn upsert_dispute(conn: &mut AsyncPgConnection, row: &DisputeRow) -> StoreResult<()> {
    diesel::insert_into(gateway_disputes::table)
        .values(row)
        .on_conflict((gateway_disputes::merchant_id, gateway_disputes::gateway_ref))
        .do_update()
        .set((
            gateway_disputes::status.eq(excluded(gateway_disputes::status)),
            gateway_disputes::reason.eq(excluded(gateway_disputes::reason)),
            gateway_disputes::updated_at.eq(excluded(gateway_disputes::updated_at)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
