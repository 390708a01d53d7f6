//! The engine's bulk statements: a batch of renewals invoiced with one insert (the
//! merchant's invoice numbers taken in one statement), due charges claimed, and a batch
//! of successful charges recorded.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::gateway::ChargeOutcome;
use tenure_domain::billing::invoice::{
    self, Invoice, InvoiceLine, InvoiceStatus, Payment, PaymentStatus,
};
use tenure_domain::ids::{GenerateId, InvoiceId, MerchantId, PaymentId, SubscriptionId};
use tenure_domain::test_clock::WorkScope;

use crate::error::{StoreError, StoreResult};
use crate::schema::{invoice_counters, payments};

use super::payments::NewPaymentAttempt;
use super::rows::*;
use super::single::{NewInvoice, lines_of};

/// The columns of [`InvoiceRow`], for the raw queries below.
pub(super) const INVOICE_COLUMNS: &str = "merchant_id, id, number, customer_id, subscription_id, \
     period_start, period_end, status, currency, total, amount_paid, amount_refunded, \
     attempt_count, created_at, updated_at, paid_at";

pub(super) fn line_rows(
    merchant: MerchantId,
    invoice: InvoiceId,
    lines: &[InvoiceLine],
) -> StoreResult<Vec<LineRow>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(LineRow {
                merchant_id: merchant.uuid(),
                invoice_id: invoice.uuid(),
                position: i32::try_from(i).map_err(|_| StoreError::corrupt("too many lines"))?,
                kind: l.kind.as_str().to_owned(),
                description: l.description.clone(),
                amount: l.amount.amount,
                // At most MAX_QUANTITY (10 000): it fits.
                quantity: i32::try_from(l.quantity).map_err(StoreError::corrupt)?,
            })
        })
        .collect()
}

#[derive(QueryableByName)]
pub(super) struct PeriodKey {
    #[diesel(sql_type = Uuid)]
    subscription_id: uuid::Uuid,
    #[diesel(sql_type = Timestamptz)]
    period_start: DateTime<Utc>,
}

/// Which of `periods` (subscription, period start) already have an invoice. The renewal
/// engine asks before [`create_invoices`] while it holds the subscriptions' row locks, so
/// the answer stays true until it commits.
pub async fn already_invoiced(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    periods: &[(SubscriptionId, DateTime<Utc>)],
) -> StoreResult<Vec<(SubscriptionId, DateTime<Utc>)>> {
    if periods.is_empty() {
        return Ok(Vec::new());
    }
    let subs: Vec<uuid::Uuid> = periods.iter().map(|(s, _)| s.uuid()).collect();
    let starts: Vec<DateTime<Utc>> = periods.iter().map(|(_, p)| *p).collect();
    let rows: Vec<PeriodKey> = diesel::sql_query(
        "SELECT i.subscription_id, i.period_start FROM invoices i \
         JOIN unnest($2::uuid[], $3::timestamptz[]) AS u(s, p) \
           ON i.subscription_id = u.s AND i.period_start = u.p \
         WHERE i.merchant_id = $1",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Array<Uuid>, _>(subs)
    .bind::<Array<Timestamptz>, _>(starts)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (SubscriptionId::from_uuid(r.subscription_id), r.period_start))
        .collect())
}

/// Creates several invoices of one merchant at once: the batch form of
/// [`create_invoice`] for the renewal engine. Must run inside the caller's transaction.
///
/// The numbers are taken with **one** counter `UPDATE … SET next_number = next_number +
/// n` in the same statement that inserts the invoices (numbered in the order given) and
/// their lines, so the counter row is locked as late as possible and only for the rest
/// of the transaction: the caller should have done all its other writes before. A rollback
/// gives all n numbers back, so numbering stays gapless. `next_payment_attempt_at` is
/// the first charge of each invoice (`None`: not scheduled). A second invoice for a
/// subscription period fails the whole statement ([`SUBSCRIPTION_PERIOD_UNIQUE`]); the
/// caller filters those out first with [`already_invoiced`].
pub async fn create_invoices(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: Vec<NewInvoice>,
    next_payment_attempt_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<Invoice>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(new.len());
    let mut lines = Vec::new();
    for inv in &new {
        if !matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Open) {
            return Err(StoreError::corrupt("a new invoice is draft or open"));
        }
        let totals = invoice::totals(inv.currency, &inv.lines).map_err(StoreError::corrupt)?;
        let id = InvoiceId::generate();
        lines.push(line_rows(merchant, id, &inv.lines)?);
        rows.push(InvoiceRow {
            merchant_id: merchant.uuid(),
            id: id.uuid(),
            number: 0,
            customer_id: inv.customer_id.uuid(),
            subscription_id: inv.subscription_id.map(|s| s.uuid()),
            period_start: inv.period.map(|p| p.start),
            period_end: inv.period.map(|p| p.end),
            status: inv.status.as_str().to_owned(),
            currency: inv.currency.code().to_owned(),
            total: totals.total.amount,
            amount_paid: 0,
            amount_refunded: 0,
            attempt_count: 0,
            created_at: at,
            updated_at: at,
            paid_at: None,
        });
    }
    let line_rows: Vec<&LineRow> = lines.iter().flatten().collect();
    let mut numbered = insert_numbered(
        conn,
        merchant,
        &rows,
        &line_rows,
        next_payment_attempt_at,
        at,
    )
    .await?;
    if numbered.is_empty() {
        // The merchant's first invoices: create the counter, then take the numbers.
        diesel::insert_into(invoice_counters::table)
            .values((
                invoice_counters::merchant_id.eq(merchant.uuid()),
                invoice_counters::next_number.eq(1_i64),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        numbered = insert_numbered(
            conn,
            merchant,
            &rows,
            &line_rows,
            next_payment_attempt_at,
            at,
        )
        .await?;
    }
    if numbered.len() != rows.len() {
        return Err(StoreError::corrupt("the invoice counter is missing"));
    }
    let numbers: std::collections::HashMap<uuid::Uuid, i64> =
        numbered.into_iter().map(|r| (r.id, r.number)).collect();
    for row in &mut rows {
        row.number = *numbers
            .get(&row.id)
            .ok_or_else(|| StoreError::corrupt("an invoice was not numbered"))?;
    }
    rows.into_iter()
        .zip(lines)
        .map(|(row, lines)| row.into_domain(lines, next_payment_attempt_at))
        .collect()
}

#[derive(QueryableByName)]
pub(super) struct Numbered {
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = BigInt)]
    number: i64,
}

/// One statement: take `rows.len()` numbers from the merchant's counter (which stays
/// locked until the transaction ends), insert the invoices numbered in the given order,
/// and their lines. Returns nothing when the merchant has no counter row yet.
pub(super) async fn insert_numbered(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    rows: &[InvoiceRow],
    lines: &[&LineRow],
    next_payment_attempt_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<Numbered>> {
    let n = i64::try_from(rows.len()).map_err(|_| StoreError::corrupt("too many invoices"))?;
    Ok(diesel::sql_query(
        "WITH counter AS ( \
           UPDATE invoice_counters SET next_number = next_number + $2 \
           WHERE merchant_id = $1 RETURNING next_number - $2 AS first), \
         inserted AS ( \
           INSERT INTO invoices (merchant_id, id, number, customer_id, subscription_id, \
             period_start, period_end, status, currency, total, amount_paid, amount_refunded, \
             attempt_count, created_at, updated_at, paid_at, next_payment_attempt_at) \
           SELECT $1, u.id, counter.first + u.ord - 1, u.customer_id, u.subscription_id, \
             u.period_start, u.period_end, u.status, u.currency, u.total, 0, 0, 0, $3, $3, \
             NULL, $4 \
           FROM counter, unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::timestamptz[], \
             $9::timestamptz[], $10::text[], $11::text[], $12::bigint[]) WITH ORDINALITY \
             AS u(id, customer_id, subscription_id, period_start, period_end, status, \
                  currency, total, ord) \
           RETURNING id, number), \
         lines AS ( \
           INSERT INTO invoice_lines (merchant_id, invoice_id, position, kind, description, \
             amount, quantity) \
           SELECT $1, l.invoice_id, l.position, l.kind, l.description, l.amount, l.quantity \
           FROM unnest($13::uuid[], $14::integer[], $15::text[], $16::text[], $17::bigint[], \
             $18::integer[]) \
             AS l(invoice_id, position, kind, description, amount, quantity) \
           JOIN inserted ON inserted.id = l.invoice_id) \
         SELECT id, number FROM inserted",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<BigInt, _>(n)
    .bind::<Timestamptz, _>(at)
    .bind::<Nullable<Timestamptz>, _>(next_payment_attempt_at)
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(rows.iter().map(|r| r.customer_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Uuid>>, _>(rows.iter().map(|r| r.subscription_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(
        rows.iter().map(|r| r.period_start).collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.period_end).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.status.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.currency.clone()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.total).collect::<Vec<_>>())
    .bind::<Array<Uuid>, _>(lines.iter().map(|l| l.invoice_id).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(lines.iter().map(|l| l.position).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(lines.iter().map(|l| l.kind.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        lines
            .iter()
            .map(|l| l.description.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<BigInt>, _>(lines.iter().map(|l| l.amount).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(lines.iter().map(|l| l.quantity).collect::<Vec<_>>())
    .load(conn)
    .await?)
}

/// Claims up to `limit` invoices whose next charge attempt is due at `now` (oldest first,
/// skipping `skip` and rows other workers hold), with their lines. The rows stay locked
/// until the transaction ends.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> StoreResult<Vec<(MerchantId, Invoice)>> {
    let limit = i64::try_from(limit).map_err(|_| StoreError::corrupt("limit out of range"))?;
    let due: Vec<DueRow> = diesel::sql_query(format!(
        "SELECT {INVOICE_COLUMNS}, next_payment_attempt_at FROM invoices \
         WHERE next_payment_attempt_at <= $1 AND NOT (id = ANY($2)) AND {scope} \
         ORDER BY next_payment_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        scope = crate::repo::test_clocks::sql_scope("invoices", 4, scope)
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<BigInt, _>(limit)
    .bind::<diesel::sql_types::Nullable<Uuid>, _>(crate::repo::test_clocks::scope_param(scope))
    .load(conn)
    .await?;
    let (rows, attempts_at): (Vec<InvoiceRow>, Vec<Option<DateTime<Utc>>>) = due
        .into_iter()
        .map(|d| (d.invoice, d.next_payment_attempt_at))
        .unzip();
    let mut merchants: Vec<uuid::Uuid> = rows.iter().map(|r| r.merchant_id).collect();
    merchants.sort_unstable();
    merchants.dedup();
    let mut lines = Vec::new();
    for m in merchants {
        let ids: Vec<uuid::Uuid> = rows
            .iter()
            .filter(|r| r.merchant_id == m)
            .map(|r| r.id)
            .collect();
        lines.extend(lines_of(conn, MerchantId::from_uuid(m), &ids).await?);
    }
    let mut by_invoice: std::collections::HashMap<uuid::Uuid, Vec<LineRow>> =
        std::collections::HashMap::new();
    for l in lines {
        by_invoice.entry(l.invoice_id).or_default().push(l);
    }
    rows.into_iter()
        .zip(attempts_at)
        .map(|(row, attempt_at)| {
            let merchant = MerchantId::from_uuid(row.merchant_id);
            let lines = by_invoice.remove(&row.id).unwrap_or_default();
            Ok((merchant, row.into_domain(lines, attempt_at)?))
        })
        .collect()
}

/// An invoice row with its charge schedule (the invoices table is at diesel's 16-column
/// limit, so the schedule is read beside the row).
#[derive(QueryableByName)]
pub(super) struct DueRow {
    #[diesel(embed)]
    invoice: InvoiceRow,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    next_payment_attempt_at: Option<DateTime<Utc>>,
}

/// Records successful charges of several locked, open invoices of one merchant: one
/// `INSERT` of the payments and one `UPDATE` that marks the invoices paid, raises their
/// attempt counts and ends their dunning schedules (`next_payment_attempt_at` cleared).
/// The batch form of [`record_payment_attempt`] for succeeded attempts. Returns each
/// invoice after the change with its payment, in the order given.
pub async fn record_successful_charges(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    charges: Vec<(&Invoice, NewPaymentAttempt)>,
    at: DateTime<Utc>,
) -> StoreResult<Vec<(Invoice, Payment)>> {
    if charges.is_empty() {
        return Ok(Vec::new());
    }
    let mut payments_rows = Vec::with_capacity(charges.len());
    for (invoice, attempt) in &charges {
        let ChargeOutcome::Succeeded { gateway_ref } = &attempt.outcome else {
            return Err(StoreError::corrupt(
                "only succeeded charges are recorded in bulk",
            ));
        };
        if attempt.invoice_id != invoice.id || attempt.amount.currency != invoice.currency {
            return Err(StoreError::corrupt("payment does not match its invoice"));
        }
        payments_rows.push(PaymentRow {
            merchant_id: merchant.uuid(),
            id: PaymentId::generate().uuid(),
            invoice_id: invoice.id.uuid(),
            customer_id: invoice.customer_id.uuid(),
            payment_method_id: attempt.payment_method_id.map(|p| p.uuid()),
            amount: attempt.amount.amount,
            currency: invoice.currency.code().to_owned(),
            status: PaymentStatus::Succeeded.as_str().to_owned(),
            gateway: attempt.gateway.clone(),
            gateway_ref: Some(gateway_ref.clone()),
            failure_code: None,
            failure_message: None,
            idempotency_key: attempt.idempotency_key.clone(),
            amount_refunded: 0,
            created_at: at,
        });
    }
    // PostgreSQL takes at most 65535 bind parameters per statement (15 per payment).
    for chunk in payments_rows.chunks(2000) {
        diesel::insert_into(payments::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    let ids: Vec<uuid::Uuid> = charges.iter().map(|(i, _)| i.id.uuid()).collect();
    let amounts: Vec<i64> = charges.iter().map(|(_, a)| a.amount.amount).collect();
    let updated: Vec<InvoiceRow> = diesel::sql_query(format!(
        "UPDATE invoices i SET status = 'paid', amount_paid = i.amount_paid + u.amount, \
           attempt_count = i.attempt_count + 1, paid_at = $2, \
           updated_at = GREATEST(i.updated_at, $2), next_payment_attempt_at = NULL \
         FROM unnest($3::uuid[], $4::bigint[]) AS u(id, amount) \
         WHERE i.merchant_id = $1 AND i.id = u.id AND i.status = 'open' \
         RETURNING {}",
        INVOICE_COLUMNS
            .split(", ")
            .map(|c| format!("i.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(at)
    .bind::<Array<Uuid>, _>(ids)
    .bind::<Array<BigInt>, _>(amounts)
    .load(conn)
    .await?;
    if updated.len() != charges.len() {
        return Err(StoreError::corrupt(
            "an invoice charged in bulk was not open",
        ));
    }
    let mut updated: std::collections::HashMap<uuid::Uuid, InvoiceRow> =
        updated.into_iter().map(|r| (r.id, r)).collect();
    charges
        .iter()
        .zip(payments_rows)
        .map(|((before, _), payment)| {
            let row = updated
                .remove(&before.id.uuid())
                .ok_or_else(|| StoreError::corrupt("an invoice charged in bulk is missing"))?;
            let lines = line_rows(merchant, before.id, &before.lines)?;
            // Paid: no attempt is scheduled any more.
            Ok((row.into_domain(lines, None)?, payment.into_domain()?))
        })
        .collect()
}
