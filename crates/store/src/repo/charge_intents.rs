//! Charge intents: a charge decided and committed before the gateway is called, deleted
//! by the transaction that records its outcome (migration 000017 says why). At most one
//! per invoice.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::dunning::ChargeMode;
use tenure_domain::ids::{CustomerId, InvoiceId, MerchantId, PaymentMethodId};

use crate::error::{StoreError, StoreResult};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeIntent {
    pub invoice_id: InvoiceId,
    /// The invoice's `attempt_count` once this attempt is recorded.
    pub attempt: u32,
    pub idempotency_key: String,
    /// `None`: the customer had no default payment method.
    pub payment_method_id: Option<PaymentMethodId>,
    /// Minor units of the invoice's currency; 0 when nothing was due.
    pub amount: i64,
    pub mode: ChargeMode,
    /// The invoice's schedule before its lease.
    pub resume_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct IntentRow {
    #[diesel(sql_type = Uuid)]
    invoice_id: uuid::Uuid,
    #[diesel(sql_type = Integer)]
    attempt: i32,
    #[diesel(sql_type = Text)]
    idempotency_key: String,
    #[diesel(sql_type = Nullable<Uuid>)]
    payment_method_id: Option<uuid::Uuid>,
    #[diesel(sql_type = BigInt)]
    amount: i64,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resume_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl IntentRow {
    fn into_domain(self) -> StoreResult<ChargeIntent> {
        Ok(ChargeIntent {
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            attempt: u32::try_from(self.attempt).map_err(StoreError::corrupt)?,
            idempotency_key: self.idempotency_key,
            payment_method_id: self.payment_method_id.map(PaymentMethodId::from_uuid),
            amount: self.amount,
            mode: self.mode.parse().map_err(StoreError::corrupt)?,
            resume_at: self.resume_at,
            created_at: self.created_at,
        })
    }
}

const COLUMNS: &str =
    "invoice_id, attempt, idempotency_key, payment_method_id, amount, mode, resume_at, created_at";

/// Writes the intents of one merchant with one statement. An invoice that already has
/// one is a `StoreError::Conflict`: the caller holds the invoice row lock and checked.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    intents: &[ChargeIntent],
) -> StoreResult<()> {
    if intents.is_empty() {
        return Ok(());
    }
    let mut attempts = Vec::with_capacity(intents.len());
    for i in intents {
        attempts.push(i32::try_from(i.attempt).map_err(StoreError::corrupt)?);
    }
    diesel::sql_query(format!(
        "INSERT INTO charge_intents (merchant_id, {COLUMNS}) \
         SELECT $1, * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::uuid[], \
                $6::bigint[], $7::text[], $8::timestamptz[], $9::timestamptz[])"
    ))
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(
        intents
            .iter()
            .map(|i| i.invoice_id.uuid())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Integer>, _>(attempts)
    .bind::<Array<Text>, _>(
        intents
            .iter()
            .map(|i| i.idempotency_key.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Uuid>>, _>(
        intents
            .iter()
            .map(|i| i.payment_method_id.map(|p| p.uuid()))
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(intents.iter().map(|i| i.amount).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        intents
            .iter()
            .map(|i| i.mode.as_str().to_owned())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(
        intents.iter().map(|i| i.resume_at).collect::<Vec<_>>(),
    )
    .bind::<Array<Timestamptz>, _>(intents.iter().map(|i| i.created_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The intents of the merchant's `invoices` that exist.
pub async fn of_invoices(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoices: &[InvoiceId],
) -> StoreResult<Vec<ChargeIntent>> {
    let ids: Vec<uuid::Uuid> = invoices.iter().map(|i| i.uuid()).collect();
    let rows: Vec<IntentRow> = diesel::sql_query(format!(
        "SELECT {COLUMNS} FROM charge_intents WHERE merchant_id = $1 AND invoice_id = ANY($2)"
    ))
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(ids)
    .load(conn)
    .await?;
    rows.into_iter().map(IntentRow::into_domain).collect()
}

/// The intent of one invoice, if any.
pub async fn of_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
) -> StoreResult<Option<ChargeIntent>> {
    Ok(of_invoices(conn, merchant, &[invoice]).await?.pop())
}

/// Deletes the intents of these `(invoice, attempt)` pairs and returns the invoices whose
/// intent was there: the ones whose outcome this transaction records. An intent another
/// worker already settled (after this one's lease ran out) is not among them.
pub async fn take(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    attempts: &[(InvoiceId, u32)],
) -> StoreResult<Vec<InvoiceId>> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = Uuid)]
        invoice_id: uuid::Uuid,
    }
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut numbers = Vec::with_capacity(attempts.len());
    for (_, n) in attempts {
        numbers.push(i32::try_from(*n).map_err(StoreError::corrupt)?);
    }
    let taken: Vec<Taken> = diesel::sql_query(
        "DELETE FROM charge_intents c USING unnest($2::uuid[], $3::int[]) AS t(id, attempt) \
         WHERE c.merchant_id = $1 AND c.invoice_id = t.id AND c.attempt = t.attempt \
         RETURNING c.invoice_id",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(attempts.iter().map(|(i, _)| i.uuid()).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(numbers)
    .load(conn)
    .await?;
    Ok(taken
        .into_iter()
        .map(|t| InvoiceId::from_uuid(t.invoice_id))
        .collect())
}

/// Whether a charge of one of the customer's invoices is in flight.
pub async fn any_for_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<bool> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let row: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM charge_intents c JOIN invoices i \
           ON i.merchant_id = c.merchant_id AND i.id = c.invoice_id \
         WHERE c.merchant_id = $1 AND i.customer_id = $2) AS found",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(customer.uuid())
    .get_result(conn)
    .await?;
    Ok(row.found)
}
