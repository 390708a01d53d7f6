//! Customer credit and credit notes (see `tenure_domain::billing::credit` for the rules).
//!
//! * A balance change locks the customer's balance row in its currency, computes the new
//!   balance with the domain's rule and writes the ledger row and the balance in one
//!   transaction (`customer.balance_changed`). Invoices draw on it where they are created
//!   (`crate::billing::invoicing`).
//! * A credit note to the balance locks the invoice, checks what remains uncredited and
//!   credits the balance in one transaction. A credit note by refund goes through the
//!   refund steps of `crate::billing::refunds` (the gateway call outside any transaction),
//!   then records the note with its refund; a refund the gateway refuses records no note.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::credit::{
    self, BalanceSource, CreditNoteDestination, CreditNoteReason, MAX_REASON_CHARS,
};
use tenure_domain::ids::{CreditNoteId, CustomerId, GenerateId, InvoiceId, MerchantId};
use tenure_domain::money::Money;
use tenure_domain::overrides::OverrideKind;
use tenure_domain::text;
use tenure_store::repo::credits::{self as repo, BalanceTransaction, CreditNote, NewBalanceChange};
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::invoices as invoices_repo;
use tenure_store::repo::refund_intents as intents_repo;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::billing::RefundInvoice;
use crate::dto::credits::{
    AdjustBalance, BalanceTransactionDto, CreateCreditNote, CreditNoteDto, CustomerBalanceDto,
    CustomerBalancesDto,
};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};
use crate::overrides::{self, Grant, acting_agent};

/// Records `customer.balance_changed` for a ledger row (the row is the event's data, so
/// it carries the customer and shows in their timeline).
pub(crate) async fn balance_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    change: &BalanceTransaction,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type: "customer.balance_changed",
            resource_type: "customer_balance_transaction",
            resource_id: change.id.to_string(),
            after: &BalanceTransactionDto::from(change),
            before: None,
            at: change.created_at,
        },
    )
    .await
}

/// Moves the customer's balance by `change` (locked, checked by the domain), writes the
/// ledger row and its event, in the caller's transaction.
pub(crate) async fn change_balance(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    change: NewBalanceChange,
    now: DateTime<Utc>,
) -> AppResult<BalanceTransaction> {
    let before = repo::lock_balance(
        conn,
        merchant,
        change.customer_id,
        change.amount.currency,
        now,
    )
    .await?;
    let after = credit::adjust_balance(before, change.amount)?;
    let recorded = repo::record_change(conn, merchant, &change, after, now).await?;
    balance_event(conn, merchant, &recorded).await?;
    Ok(recorded)
}

async fn existing_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    lock: bool,
) -> AppResult<tenure_domain::customer::Customer> {
    customers_repo::get(conn, merchant, customer, lock)
        .await
        .map_err(AppError::from_store("customer"))
}

/// `GET /v1/customers/{id}/balances`.
pub async fn balances(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<CustomerBalancesDto> {
    let mut conn = state.db.conn().await?;
    existing_customer(&mut conn, merchant, customer, false).await?;
    let balances = repo::balances(&mut conn, merchant, customer).await?;
    Ok(CustomerBalancesDto {
        object: "list".to_owned(),
        data: balances.iter().map(CustomerBalanceDto::from).collect(),
    })
}

/// `GET /v1/customers/{id}/balance_transactions`: the ledger, newest first.
pub async fn transactions(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> AppResult<Page<BalanceTransactionDto>> {
    let mut conn = state.db.conn().await?;
    existing_customer(&mut conn, merchant, customer, false).await?;
    let page = repo::transactions(&mut conn, merchant, customer, page).await?;
    page.try_map(|t| Ok::<_, AppError>(BalanceTransactionDto::from(&t)))
}

/// `POST /v1/customers/{id}/balance_transactions`: grants or debits credit with a reason.
/// A grant is a goodwill credit, recorded as an override of kind `credit`. A currency the
/// merchant bills nothing in is refused (422 on `amount.currency`): no invoice could ever
/// use it.
pub async fn adjust(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    input: AdjustBalance,
) -> AppResult<BalanceTransactionDto> {
    let reason = tenure_domain::overrides::reason("reason", &input.reason)?;
    let amount = Money::new(input.amount.amount, input.amount.currency);
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let found = existing_customer(conn, merchant, customer, true).await?;
        found.ensure_not_erased()?;
        let now = crate::test_clocks::now_for_customer(conn, merchant, customer, now).await?;
        if !repo::merchant_bills_in(conn, merchant, amount.currency).await? {
            return Err(AppError::field(
                "amount.currency",
                format!(
                    "no plan is priced in {}: credit in it could never be used",
                    amount.currency.code()
                ),
            ));
        }
        let change = NewBalanceChange {
            customer_id: customer,
            amount,
            source: BalanceSource::Adjustment,
            reason: reason.clone(),
            invoice_id: None,
            credit_note_id: None,
            agent: acting_agent(),
        };
        let recorded = change_balance(conn, merchant, change, now).await?;
        if amount.amount > 0 {
            let grant = Grant {
                customer,
                subscription: None,
                kind: OverrideKind::Credit,
                amount: Some(amount),
                limits: Vec::new(),
            };
            overrides::record(conn, merchant, grant, reason, now).await?;
        }
        Ok(BalanceTransactionDto::from(&recorded))
    })
    .await
}

async fn credit_note_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    note: &CreditNote,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type: "credit_note.created",
            resource_type: "credit_note",
            resource_id: note.id.to_string(),
            after: &CreditNoteDto::from(note),
            before: None,
            at: note.created_at,
        },
    )
    .await
}

/// What remains creditable on the invoice, checked for `amount` (the domain's rule),
/// under the invoice's lock when the caller holds it.
async fn plan_note(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: InvoiceId,
    amount: i64,
    lock: bool,
) -> AppResult<(tenure_domain::billing::invoice::Invoice, Money)> {
    let invoice = invoices_repo::get(conn, merchant, id, None, lock)
        .await
        .map_err(AppError::from_store("invoice"))?;
    let credited = repo::credited_to_balance(conn, merchant, id, invoice.currency).await?;
    let planned = credit::plan_credit_note(
        invoice.status,
        invoice.amount_paid,
        invoice.amount_refunded,
        credited,
        amount,
    )?;
    Ok((invoice, planned))
}

/// `POST /v1/invoices/{id}/credit_notes`.
pub async fn create_credit_note(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    input: CreateCreditNote,
) -> AppResult<CreditNoteDto> {
    let memo = text::clean_opt("memo", input.memo.as_deref(), MAX_REASON_CHARS, true)?;
    let reason: CreditNoteReason = input.reason.into();
    let destination: CreditNoteDestination = input.destination.into();
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_invoice(&mut conn, merchant, id, state.now_micros()).await?;
    match destination {
        CreditNoteDestination::Balance => {
            conn.transaction(async |conn| {
                let (invoice, amount) = plan_note(conn, merchant, id, input.amount, true).await?;
                // A refund in flight may take what this would credit.
                if intents_repo::exists_for_invoice(conn, merchant, id).await? {
                    return Err(AppError::conflict(
                        "refund_in_progress",
                        "a refund of this invoice is in progress; retry shortly",
                    ));
                }
                let note = CreditNote {
                    id: CreditNoteId::generate(),
                    invoice_id: id,
                    customer_id: invoice.customer_id,
                    amount,
                    reason,
                    memo,
                    destination,
                    refund_id: None,
                    agent: acting_agent(),
                    created_at: now,
                };
                repo::insert_credit_note(conn, merchant, &note).await?;
                let change = NewBalanceChange {
                    customer_id: invoice.customer_id,
                    amount,
                    source: BalanceSource::CreditNote,
                    reason: format!("Credit note on invoice {} ({reason})", invoice.number),
                    invoice_id: Some(id),
                    credit_note_id: Some(note.id),
                    agent: note.agent.clone(),
                };
                change_balance(conn, merchant, change, now).await?;
                credit_note_event(conn, merchant, &note).await?;
                Ok(CreditNoteDto::from(&note))
            })
            .await
        }
        CreditNoteDestination::Refund => {
            // Checked first for a clear answer; the refund checks again under its lock.
            plan_note(&mut conn, merchant, id, input.amount, false).await?;
            let (refund, invoice) = crate::billing::refunds::refund(
                state,
                merchant,
                id,
                RefundInvoice {
                    amount: Some(input.amount),
                    reason: Some(format!("credit note: {reason}")),
                },
            )
            .await?;
            conn.transaction(async |conn| {
                let note = CreditNote {
                    id: CreditNoteId::generate(),
                    invoice_id: id,
                    customer_id: invoice.customer_id,
                    amount: refund.amount,
                    reason,
                    memo,
                    destination,
                    refund_id: Some(refund.id),
                    agent: acting_agent(),
                    created_at: now,
                };
                repo::insert_credit_note(conn, merchant, &note).await?;
                credit_note_event(conn, merchant, &note).await?;
                Ok(CreditNoteDto::from(&note))
            })
            .await
        }
    }
}

/// `GET /v1/credit_notes/{id}`.
pub async fn get_credit_note(
    state: &App,
    merchant: MerchantId,
    id: CreditNoteId,
) -> AppResult<CreditNoteDto> {
    let mut conn = state.db.conn().await?;
    let note = repo::get_credit_note(&mut conn, merchant, id)
        .await
        .map_err(AppError::from_store("credit_note"))?;
    Ok(CreditNoteDto::from(&note))
}

/// `GET /v1/credit_notes`, newest first, optionally of one customer.
pub async fn list_credit_notes(
    state: &App,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    page: PageRequest,
) -> AppResult<Page<CreditNoteDto>> {
    let mut conn = state.db.conn().await?;
    let page = repo::list_credit_notes(&mut conn, merchant, customer, page).await?;
    page.try_map(|n| Ok::<_, AppError>(CreditNoteDto::from(&n)))
}

/// `GET /v1/invoices/{id}/credit_notes`, oldest first.
pub async fn credit_notes_of_invoice(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
) -> AppResult<Vec<CreditNoteDto>> {
    let mut conn = state.db.conn().await?;
    invoices_repo::get(&mut conn, merchant, id, None, false)
        .await
        .map_err(AppError::from_store("invoice"))?;
    let notes = repo::credit_notes_of_invoice(&mut conn, merchant, id).await?;
    Ok(notes.iter().map(CreditNoteDto::from).collect())
}

/// A voided invoice gives back the credit it drew from the balance (in the caller's
/// transaction, which voids it).
pub(crate) async fn return_credit_of_void(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: &tenure_domain::billing::invoice::Invoice,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let used = invoice.totals.credit_applied.negate();
    if used.amount <= 0 {
        return Ok(());
    }
    let change = NewBalanceChange {
        customer_id: invoice.customer_id,
        amount: used,
        source: BalanceSource::Invoice,
        reason: format!("Invoice {} voided", invoice.number),
        invoice_id: Some(invoice.id),
        credit_note_id: None,
        agent: acting_agent(),
    };
    change_balance(conn, merchant, change, now).await?;
    Ok(())
}

/// `POST /v1/subscriptions/{id}/discount_grants`: an agent's goodwill discount on the
/// subscription's next `cycles` invoices (the discount model retention offers use),
/// recorded as an override of kind `discount` with its reason. The override's amount is
/// what an amount discount can take off at most (`amount × cycles`); a percent discount
/// records none.
pub async fn grant_discount(
    state: &App,
    merchant: MerchantId,
    id: tenure_domain::ids::SubscriptionId,
    input: crate::dto::credits::GrantDiscount,
) -> AppResult<crate::dto::subscriptions::SubscriptionDiscountDto> {
    use tenure_domain::billing::discount::{DiscountValue, validate_cycles};
    use tenure_store::repo::discounts::{self as discounts_repo, NewDiscount};
    let reason = tenure_domain::overrides::reason("reason", &input.reason)?;
    let cycles = input.cycles.unwrap_or(1);
    validate_cycles(cycles)?;
    let value = match (input.percent, input.amount) {
        (Some(p), None) => DiscountValue::Percent(p),
        (None, Some(m)) => DiscountValue::Amount(Money::new(m.amount, m.currency)),
        _ => {
            return Err(AppError::field(
                "percent",
                "give either percent or amount, not both",
            ));
        }
    };
    value.validate()?;
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let sub = tenure_store::repo::subscriptions::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("subscription"))?;
        let now =
            crate::test_clocks::now_for_customer(conn, merchant, sub.customer_id, now).await?;
        if sub.subscription.is_canceled() {
            return Err(AppError::conflict(
                "subscription_canceled",
                "the subscription is canceled and has no next invoice",
            ));
        }
        let granted = match value {
            DiscountValue::Amount(m) if m.currency != sub.subscription.plan.price.currency => {
                return Err(AppError::field(
                    "amount.currency",
                    format!(
                        "must be the subscription's currency, {}",
                        sub.subscription.plan.price.currency.code()
                    ),
                ));
            }
            DiscountValue::Amount(m) => Some(m.times(cycles)?),
            DiscountValue::Percent(_) => None,
        };
        let discount = discounts_repo::grant(
            conn,
            merchant,
            NewDiscount {
                subscription_id: id,
                offer_id: None,
                value,
                cycles,
            },
            now,
        )
        .await?;
        let grant = Grant {
            customer: sub.customer_id,
            subscription: Some(id),
            kind: OverrideKind::Discount,
            amount: granted,
            limits: Vec::new(),
        };
        overrides::record(conn, merchant, grant, reason, now).await?;
        Ok(crate::dto::subscriptions::SubscriptionDiscountDto::from(
            &discount,
        ))
    })
    .await
}
