//! Invoices, their lines, payment attempts and refunds.
//!
//! Invoice numbers are gapless per merchant: [`create_invoice`] takes the next number
//! from the merchant's `invoice_counters` row (`UPDATE … SET next_number = next_number + 1
//! … RETURNING`) inside the same transaction (or savepoint) that inserts the invoice. The
//! counter row stays locked until that transaction ends, and a rollback gives the number
//! back, so numbers are handed out in commit order without holes.

//!
//! | module | what |
//! |---|---|
//! | `single` | one invoice: create, read, list, lock, close |
//! | `payments` | payment attempts and refunds |
//! | `batch` | the engine's bulk statements (renewals, due charges) |
//! | `rows` | the tables' row types and SQL fragments the others share |

mod batch;
mod payments;
mod rows;
mod single;

pub use batch::{already_invoiced, claim_due, create_invoices, record_successful_charges};
pub use payments::{
    NewPaymentAttempt, list_payments, payments_of_invoice, record_payment_attempt, record_refund,
    refunds_of_invoice,
};
pub use rows::{PAYMENT_IDEMPOTENCY_UNIQUE, SUBSCRIPTION_PERIOD_UNIQUE};
pub use single::{
    InvoiceFilter, InvoiceVersion, NewInvoice, close, create_invoice, get, list,
    lock_open_of_subscription, lock_payable_of_customer, lock_versions, mark_paid_without_charge,
};
