//! The invoice tables' row types, their conversions to domain types, and SQL fragments.

use chrono::{DateTime, Utc};
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression, ValidGrouping};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Nullable, Timestamptz, Uuid};
use tenure_domain::billing::invoice::{self, Invoice, InvoiceLine, LineKind, Payment, Refund};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{
    CustomerId, InvoiceId, PaymentId, PaymentMethodId, RefundId, SubscriptionId,
};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::schema::{invoice_lines, invoices, payments, refunds};

/// The constraint that allows one invoice per subscription period.
pub const SUBSCRIPTION_PERIOD_UNIQUE: &str = "invoices_subscription_period_unique";
/// The constraint that makes a gateway idempotency key usable once per merchant.
pub const PAYMENT_IDEMPOTENCY_UNIQUE: &str = "payments_idempotency_key_unique";

#[derive(Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = invoices)]
pub(super) struct InvoiceRow {
    pub(super) merchant_id: uuid::Uuid,
    pub(super) id: uuid::Uuid,
    pub(super) number: i64,
    pub(super) customer_id: uuid::Uuid,
    pub(super) subscription_id: Option<uuid::Uuid>,
    pub(super) period_start: Option<DateTime<Utc>>,
    pub(super) period_end: Option<DateTime<Utc>>,
    pub(super) status: String,
    pub(super) currency: String,
    pub(super) total: i64,
    pub(super) amount_paid: i64,
    pub(super) amount_refunded: i64,
    pub(super) attempt_count: i32,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) paid_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = invoice_lines)]
pub(super) struct LineRow {
    pub(super) merchant_id: uuid::Uuid,
    pub(super) invoice_id: uuid::Uuid,
    pub(super) position: i32,
    pub(super) kind: String,
    pub(super) description: String,
    pub(super) amount: i64,
    pub(super) quantity: i32,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = payments)]
pub(super) struct PaymentRow {
    pub(super) merchant_id: uuid::Uuid,
    pub(super) id: uuid::Uuid,
    pub(super) invoice_id: uuid::Uuid,
    pub(super) customer_id: uuid::Uuid,
    pub(super) payment_method_id: Option<uuid::Uuid>,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) status: String,
    pub(super) gateway: String,
    pub(super) gateway_ref: Option<String>,
    pub(super) failure_code: Option<String>,
    pub(super) failure_message: Option<String>,
    pub(super) idempotency_key: String,
    pub(super) amount_refunded: i64,
    pub(super) created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub(super) struct RefundRow {
    pub(super) merchant_id: uuid::Uuid,
    pub(super) id: uuid::Uuid,
    pub(super) invoice_id: uuid::Uuid,
    pub(super) payment_id: uuid::Uuid,
    pub(super) amount: i64,
    pub(super) currency: String,
    pub(super) gateway_ref: String,
    pub(super) reason: Option<String>,
    pub(super) created_at: DateTime<Utc>,
}

pub(super) fn currency(code: &str) -> StoreResult<Currency> {
    code.parse()
        .map_err(|_| StoreError::corrupt(format!("unknown currency {code}")))
}

pub(super) fn to_u32(n: i32) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::corrupt("negative count"))
}

impl InvoiceRow {
    pub(super) fn into_domain(
        self,
        lines: Vec<LineRow>,
        next_payment_attempt_at: Option<DateTime<Utc>>,
    ) -> StoreResult<Invoice> {
        let cur = currency(&self.currency)?;
        let lines = lines
            .into_iter()
            .map(|l| {
                let kind: LineKind = l.kind.parse().map_err(StoreError::corrupt)?;
                Ok(InvoiceLine {
                    kind,
                    description: l.description,
                    amount: Money::new(l.amount, cur),
                    quantity: u32::try_from(l.quantity).map_err(StoreError::corrupt)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let totals = invoice::totals(cur, &lines).map_err(StoreError::corrupt)?;
        if totals.total.amount != self.total {
            return Err(StoreError::corrupt("invoice total differs from its lines"));
        }
        let period = match (self.period_start, self.period_end) {
            (Some(start), Some(end)) => Some(Period::new(start, end).map_err(StoreError::corrupt)?),
            _ => None,
        };
        Ok(Invoice {
            id: InvoiceId::from_uuid(self.id),
            number: self.number,
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: self.subscription_id.map(SubscriptionId::from_uuid),
            period,
            status: self.status.parse().map_err(StoreError::corrupt)?,
            currency: cur,
            totals,
            lines,
            amount_paid: Money::new(self.amount_paid, cur),
            amount_refunded: Money::new(self.amount_refunded, cur),
            attempt_count: to_u32(self.attempt_count)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            paid_at: self.paid_at,
            next_payment_attempt_at,
        })
    }
}

impl PaymentRow {
    pub(super) fn into_domain(self) -> StoreResult<Payment> {
        let cur = currency(&self.currency)?;
        Ok(Payment {
            id: PaymentId::from_uuid(self.id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            payment_method_id: self.payment_method_id.map(PaymentMethodId::from_uuid),
            amount: Money::new(self.amount, cur),
            status: self.status.parse().map_err(StoreError::corrupt)?,
            gateway: self.gateway,
            gateway_ref: self.gateway_ref,
            failure_code: self.failure_code,
            failure_message: self.failure_message,
            idempotency_key: self.idempotency_key,
            amount_refunded: Money::new(self.amount_refunded, cur),
            created_at: self.created_at,
        })
    }
}

impl RefundRow {
    pub(super) fn into_domain(self) -> StoreResult<Refund> {
        Ok(Refund {
            id: RefundId::from_uuid(self.id),
            invoice_id: InvoiceId::from_uuid(self.invoice_id),
            payment_id: PaymentId::from_uuid(self.payment_id),
            amount: Money::new(self.amount, currency(&self.currency)?),
            gateway_ref: self.gateway_ref,
            reason: self.reason,
            created_at: self.created_at,
        })
    }
}

/// `invoices.next_payment_attempt_at` (migration 000005), left out of `schema.rs` to keep
/// the invoices table within diesel's 16-column limit. A fragment of its own rather than
/// `dsl::sql`: diesel never keeps a statement holding a SQL literal prepared, and the
/// invoice reads run on every list and every charge.
#[derive(Debug, Clone, Copy)]
pub(super) struct NextPaymentAttemptAt;

impl Expression for NextPaymentAttemptAt {
    type SqlType = Nullable<Timestamptz>;
}

impl<GB> ValidGrouping<GB> for NextPaymentAttemptAt {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for NextPaymentAttemptAt {}
impl SelectableExpression<invoices::table> for NextPaymentAttemptAt {}

impl QueryId for NextPaymentAttemptAt {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for NextPaymentAttemptAt {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("invoices.next_payment_attempt_at");
        Ok(())
    }
}

/// `(created_at, id) < ` those of the invoice a page starts after: the rest of the list
/// in its order, as one index range. A cursor that names no invoice of this merchant (or
/// of this customer, on a customer's list) makes the comparison NULL and the page empty;
/// [`list`] tells that apart from a list that has simply ended.
pub(super) struct AfterCursor {
    pub(super) merchant: uuid::Uuid,
    pub(super) cursor: uuid::Uuid,
    pub(super) customer: Option<uuid::Uuid>,
}

impl Expression for AfterCursor {
    type SqlType = diesel::sql_types::Bool;
}

impl<GB> ValidGrouping<GB> for AfterCursor {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for AfterCursor {}

impl QueryId for AfterCursor {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for AfterCursor {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "(invoices.created_at, invoices.id) < \
             (SELECT cursor.created_at, cursor.id FROM invoices AS cursor \
             WHERE cursor.merchant_id = ",
        );
        out.push_bind_param::<Uuid, _>(&self.merchant)?;
        out.push_sql(" AND cursor.id = ");
        out.push_bind_param::<Uuid, _>(&self.cursor)?;
        if let Some(customer) = &self.customer {
            out.push_sql(" AND cursor.customer_id = ");
            out.push_bind_param::<Uuid, _>(customer)?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// A bound of a list's created window as `(SELECT $n)`: a value no plan can see. With
/// the bounds in view, PostgreSQL planned the window's statement afresh on every call
/// (about 0.13 ms, more than running it): for each window it weighed the status-and-time
/// index against the time index with the status as a filter, and the generic plan never
/// looked cheaper than the average of those. Behind a sub-select the value is unknown to
/// every plan, so the generic plan wins and is kept; the sub-select runs once per call
/// (an InitPlan) and bounds the same index range as before.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnseenBound(pub(super) DateTime<Utc>);

impl Expression for UnseenBound {
    type SqlType = Timestamptz;
}

impl<GB> ValidGrouping<GB> for UnseenBound {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<invoices::table> for UnseenBound {}

impl QueryId for UnseenBound {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for UnseenBound {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(SELECT ");
        out.push_bind_param::<Timestamptz, _>(&self.0)?;
        out.push_sql(")");
        Ok(())
    }
}
