//! Refund intents: a refund decided and committed before the gateway is called, deleted
//! by the transaction that records it (migration `refund_intents` says why). At most one
//! per invoice.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{InvoiceId, MerchantId, PaymentId, RefundId};
use tenure_domain::money::Money;

use crate::error::{StoreError, StoreResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundIntent {
    pub invoice_id: InvoiceId,
    /// The id the refund is recorded with.
    pub refund_id: RefundId,
    pub payment_id: PaymentId,
    /// The `gateway_ref` of the charge refunded.
    pub charge_ref: String,
    pub amount: Money,
    pub idempotency_key: String,
    pub reason: Option<String>,
    /// After this, the engine sends the refund again (same key) and records it.
    pub lease_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct IntentRow {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    invoice_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    refund_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    payment_id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    charge_ref: String,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = Text)]
    idempotency_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    lease_until: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl IntentRow {
    fn into_domain(self) -> StoreResult<(MerchantId, RefundIntent)> {
        let currency = self.currency.parse().map_err(StoreError::corrupt)?;
        Ok((
            MerchantId::from_uuid(self.merchant_id),
            RefundIntent {
                invoice_id: InvoiceId::from_uuid(self.invoice_id),
                refund_id: RefundId::from_uuid(self.refund_id),
                payment_id: PaymentId::from_uuid(self.payment_id),
                charge_ref: self.charge_ref,
                amount: Money::new(self.amount, currency),
                idempotency_key: self.idempotency_key,
                reason: self.reason,
                lease_until: self.lease_until,
                created_at: self.created_at,
            },
        ))
    }
}

const COLUMNS: &str = "merchant_id, invoice_id, refund_id, payment_id, charge_ref, amount, \
                       currency, idempotency_key, reason, lease_until, created_at";

/// Writes the intent. An invoice that already has one is a `StoreError::Conflict`: the
/// caller holds the invoice row lock and checked.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    intent: &RefundIntent,
) -> StoreResult<()> {
    diesel::sql_query(format!(
        "INSERT INTO refund_intents ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(intent.invoice_id.uuid())
    .bind::<Uuid, _>(intent.refund_id.uuid())
    .bind::<Uuid, _>(intent.payment_id.uuid())
    .bind::<Text, _>(&intent.charge_ref)
    .bind::<BigInt, _>(intent.amount.amount)
    .bind::<Text, _>(intent.amount.currency.code())
    .bind::<Text, _>(&intent.idempotency_key)
    .bind::<Nullable<Text>, _>(intent.reason.as_deref())
    .bind::<Timestamptz, _>(intent.lease_until)
    .bind::<Timestamptz, _>(intent.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a refund of the invoice is in flight.
pub async fn exists_for_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let row: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM refund_intents \
         WHERE merchant_id = $1 AND invoice_id = $2) AS found",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(invoice.uuid())
    .get_result(conn)
    .await?;
    Ok(row.found)
}

/// Deletes the intent of this refund; false when it was gone (another worker recorded
/// it after this one's lease ran out).
pub async fn take(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
    refund: RefundId,
) -> StoreResult<bool> {
    let deleted = diesel::sql_query(
        "DELETE FROM refund_intents \
         WHERE merchant_id = $1 AND invoice_id = $2 AND refund_id = $3",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(invoice.uuid())
    .bind::<Uuid, _>(refund.uuid())
    .execute(conn)
    .await?;
    Ok(deleted == 1)
}

/// Claims up to `limit` intents, of any merchant, whose lease ended by `now`, and leases
/// them again until `lease_until`, in one statement (`FOR UPDATE SKIP LOCKED`: workers
/// never claim the same one).
pub async fn claim_expired(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<(MerchantId, RefundIntent)>> {
    let rows: Vec<IntentRow> = diesel::sql_query(
        "UPDATE refund_intents r SET lease_until = $2 \
         FROM (SELECT merchant_id, invoice_id FROM refund_intents WHERE lease_until <= $1 \
               ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) AS due \
         WHERE r.merchant_id = due.merchant_id AND r.invoice_id = due.invoice_id \
         RETURNING r.*",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    rows.into_iter().map(IntentRow::into_domain).collect()
}
