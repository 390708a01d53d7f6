//! Billing use cases: payment methods, invoice reads, charging an invoice, refunds.
//!
//! Payment-method changes of one customer are serialised by locking the customer row, so
//! "at most one default" and "not the last one while a subscription renews" hold under
//! concurrent requests.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::gateway::{RefundOutcome, RefundRequest};
use tenure_domain::billing::invoice::{
    self, Invoice, InvoiceStatus, Payment, PaymentStatus, Refund,
};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::error::DomainError;
use tenure_domain::ids::{
    CustomerId, GenerateId, InvoiceId, MerchantId, PaymentMethodId, RefundId,
};
use tenure_domain::text;
use tenure_store::repo::charge_intents as intents_repo;
use tenure_store::repo::invoices::{self as invoices_repo, InvoiceFilter};
use tenure_store::repo::{customers, payment_methods as repo};
use tenure_store::{Page, PageRequest};

use super::subscriptions::truncate;
use super::{EventDraft, record_event};
use crate::dto::billing::{AttachPaymentMethod, InvoiceDto, PaymentMethodDto, RefundInvoice};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const REASON_MAX: usize = 200;
const TOKEN_MAX: usize = 255;

async fn pm_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    pm: &PaymentMethod,
    before: Option<&PaymentMethod>,
    at: DateTime<Utc>,
) -> ApiResult<()> {
    let before = before.map(|b| PaymentMethodDto::render(b, at));
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "payment_method",
            resource_id: pm.id.to_string(),
            after: &PaymentMethodDto::render(pm, at),
            before: before.as_ref(),
            at,
        },
    )
    .await
}

/// Locks the customer (404 when it is not this merchant's).
async fn lock_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> ApiResult<()> {
    customers::get(conn, merchant, customer, true)
        .await
        .map_err(ApiError::from_store("customer"))?;
    Ok(())
}

/// Makes `pm` the default, recording `payment_method.updated` for the method that loses
/// the flag and (unless it was just attached) for `pm`.
async fn make_default(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    pm: &mut PaymentMethod,
    at: DateTime<Utc>,
    record_self: bool,
) -> ApiResult<()> {
    if pm.is_default {
        return Ok(());
    }
    if let Some(previous) = repo::clear_default(conn, merchant, pm.customer_id).await? {
        let mut after = repo::get(conn, merchant, pm.customer_id, previous, false).await?;
        let mut before = after.clone();
        before.is_default = true;
        after.is_default = false;
        pm_event(
            conn,
            merchant,
            "payment_method.updated",
            &after,
            Some(&before),
            at,
        )
        .await?;
    }
    repo::set_default(conn, merchant, pm.id).await?;
    let before = pm.clone();
    pm.is_default = true;
    if record_self {
        pm_event(
            conn,
            merchant,
            "payment_method.updated",
            pm,
            Some(&before),
            at,
        )
        .await?;
    }
    Ok(())
}

/// Attaches a card by gateway token to a customer.
pub async fn attach(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
    input: AttachPaymentMethod,
) -> ApiResult<PaymentMethod> {
    let token = input.token.trim();
    if token.is_empty() || token.len() > TOKEN_MAX {
        return Err(ApiError::field(
            "token",
            format!("must be 1 to {TOKEN_MAX} characters"),
        ));
    }
    let card = state.gateway.card_details(token).await.ok_or_else(|| {
        ApiError::field(
            "token",
            format!(
                "is not a payment method token known to the {} gateway",
                state.gateway.name()
            ),
        )
    })?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let pm = conn
        .transaction(async |conn| {
            let locked = customers::get(conn, merchant, customer, true)
                .await
                .map_err(ApiError::from_store("customer"))?;
            super::gdpr::ensure_not_erased(&locked)?;
            let existing = repo::list_for_customer(conn, merchant, customer).await?;
            let mut pm = PaymentMethod {
                id: PaymentMethodId::generate(),
                customer_id: customer,
                gateway_token: token.to_owned(),
                card,
                is_default: false,
                created_at: now,
                detached_at: None,
            };
            repo::insert(conn, merchant, &pm).await?;
            if existing.is_empty() || input.set_default == Some(true) {
                make_default(conn, merchant, &mut pm, now, false).await?;
            }
            pm_event(conn, merchant, "payment_method.attached", &pm, None, now).await?;
            Ok::<_, ApiError>(pm)
        })
        .await?;
    // Back to the pool before the retry takes one: a worker's pool may hold one connection.
    drop(conn);
    if pm.is_default {
        super::charges::retry_open_invoices(state, merchant, customer).await;
    }
    Ok(pm)
}

pub async fn list(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
) -> ApiResult<Vec<PaymentMethod>> {
    let mut conn = state.db.conn().await?;
    customers::get(&mut conn, merchant, customer, false)
        .await
        .map_err(ApiError::from_store("customer"))?;
    Ok(repo::list_for_customer(&mut conn, merchant, customer).await?)
}

pub async fn set_default(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
    id: PaymentMethodId,
) -> ApiResult<PaymentMethod> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let pm = conn
        .transaction(async |conn| {
            lock_customer(conn, merchant, customer).await?;
            let mut pm = repo::get(conn, merchant, customer, id, true)
                .await
                .map_err(ApiError::from_store("payment_method"))?;
            make_default(conn, merchant, &mut pm, now, true).await?;
            Ok::<_, ApiError>(pm)
        })
        .await?;
    drop(conn);
    super::charges::retry_open_invoices(state, merchant, customer).await;
    Ok(pm)
}

/// Removes a payment method. The last one cannot go while the customer has a renewing
/// subscription; when the default goes, the newest remaining one becomes the default.
pub async fn detach(
    state: &AppState,
    merchant: MerchantId,
    customer: CustomerId,
    id: PaymentMethodId,
) -> ApiResult<PaymentMethod> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        lock_customer(conn, merchant, customer).await?;
        let pm = repo::get(conn, merchant, customer, id, true)
            .await
            .map_err(ApiError::from_store("payment_method"))?;
        let others: Vec<PaymentMethod> = repo::list_for_customer(conn, merchant, customer)
            .await?
            .into_iter()
            .filter(|other| other.id != pm.id)
            .collect();
        if others.is_empty()
            && repo::customer_has_renewing_subscription(conn, merchant, customer).await?
        {
            return Err(ApiError::conflict(
                "last_payment_method",
                "the customer's last payment method cannot be removed while a subscription \
                 renews; add another one first",
            ));
        }
        repo::detach(conn, merchant, pm.id, now).await?;
        let mut detached = pm.clone();
        detached.is_default = false;
        detached.detached_at = Some(now);
        pm_event(
            conn,
            merchant,
            "payment_method.detached",
            &detached,
            None,
            now,
        )
        .await?;
        if pm.is_default
            && let Some(next) = others.into_iter().next()
        {
            let mut next = next;
            make_default(conn, merchant, &mut next, now, true).await?;
        }
        Ok(detached)
    })
    .await
}

pub async fn list_invoices(
    state: &AppState,
    merchant: MerchantId,
    filter: InvoiceFilter,
    page: PageRequest,
) -> ApiResult<Page<Invoice>> {
    let mut conn = state.db.conn().await?;
    Ok(invoices_repo::list(&mut conn, merchant, &filter, page).await?)
}

/// An invoice with its payments and refunds; `customer` limits it to that customer's.
pub async fn get_invoice(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    customer: Option<CustomerId>,
) -> ApiResult<(Invoice, Vec<Payment>, Vec<Refund>)> {
    let mut conn = state.db.conn().await?;
    let invoice = invoices_repo::get(&mut conn, merchant, id, customer, false)
        .await
        .map_err(ApiError::from_store("invoice"))?;
    let payments = invoices_repo::payments_of_invoice(&mut conn, merchant, id).await?;
    let refunds = invoices_repo::refunds_of_invoice(&mut conn, merchant, id).await?;
    Ok((invoice, payments, refunds))
}

pub async fn list_payments(
    state: &AppState,
    merchant: MerchantId,
    customer: Option<CustomerId>,
    page: PageRequest,
) -> ApiResult<Page<Payment>> {
    let mut conn = state.db.conn().await?;
    Ok(invoices_repo::list_payments(&mut conn, merchant, customer, page).await?)
}

pub(crate) async fn invoice_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &Invoice,
    before: Option<&Invoice>,
) -> ApiResult<()> {
    let before = before.map(InvoiceDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "invoice",
            resource_id: after.id.to_string(),
            after: &InvoiceDto::from(after),
            before: before.as_ref(),
            at: after.updated_at,
        },
    )
    .await
}

/// `POST /v1/invoices/{id}/pay` (and the portal's, with the signed-in `customer`, whose
/// invoice it must be): charges an open or uncollectible invoice now, through the same
/// steps as the renewal engine (see [`super::charges::pay`]).
pub async fn pay_invoice(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    customer: Option<CustomerId>,
) -> ApiResult<(Invoice, Option<Payment>)> {
    if customer.is_some() {
        let mut conn = state.db.conn().await?;
        invoices_repo::get(&mut conn, merchant, id, customer, false)
            .await
            .map_err(ApiError::from_store("invoice"))?;
    }
    super::charges::pay(state, merchant, id).await
}

/// `POST /v1/invoices/{id}/void`: an open or uncollectible invoice is cancelled: it is
/// never charged again and owes nothing (`invoice.voided`). Its subscription is not
/// changed: a past-due one recovers only when an invoice is paid, as in Stripe.
pub async fn void_invoice(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
) -> ApiResult<Invoice> {
    close_invoice(state, merchant, id, InvoiceStatus::void, "invoice.voided").await
}

/// `POST /v1/invoices/{id}/mark_uncollectible`: the merchant gives up on an open invoice:
/// dunning stops (`invoice.marked_uncollectible`). It may still be paid later.
pub async fn mark_invoice_uncollectible(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
) -> ApiResult<Invoice> {
    close_invoice(
        state,
        merchant,
        id,
        InvoiceStatus::mark_uncollectible,
        "invoice.marked_uncollectible",
    )
    .await
}

/// Moves the locked invoice to the status `transition` allows (a 409
/// `invalid_invoice_transition` otherwise), stops its dunning and records `event_type`.
/// Refused (409 `payment_in_progress`) while a charge of it is in flight: the gateway
/// may take the money, which must find the invoice as it was.
async fn close_invoice(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    transition: fn(InvoiceStatus) -> Result<InvoiceStatus, DomainError>,
    event_type: &'static str,
) -> ApiResult<Invoice> {
    let now = truncate(state.now());
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = invoices_repo::get(conn, merchant, id, None, true)
            .await
            .map_err(ApiError::from_store("invoice"))?;
        let status = transition(before.status)?;
        if intents_repo::of_invoice(conn, merchant, id)
            .await?
            .is_some()
        {
            return Err(super::charges::payment_in_progress());
        }
        let at = super::next_update_time(before.updated_at, now);
        invoices_repo::close(conn, merchant, id, status, at).await?;
        let after = invoices_repo::get(conn, merchant, id, None, false).await?;
        invoice_event(conn, merchant, event_type, &after, Some(&before)).await?;
        Ok(after)
    })
    .await
}

/// Refunds (part of) a paid invoice through the gateway. The invoice row is locked, so
/// concurrent refunds are serialised and together never exceed what was paid.
pub async fn refund(
    state: &AppState,
    merchant: MerchantId,
    id: InvoiceId,
    input: RefundInvoice,
) -> ApiResult<(Refund, Invoice)> {
    let reason = text::clean_opt("reason", input.reason.as_deref(), REASON_MAX, false)?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = invoices_repo::get(conn, merchant, id, None, true)
            .await
            .map_err(ApiError::from_store("invoice"))?;
        let plan = invoice::plan_refund(
            before.status,
            before.amount_paid,
            before.amount_refunded,
            input.amount,
        )?;
        let payment = invoices_repo::payments_of_invoice(conn, merchant, id)
            .await?
            .into_iter()
            .find(|p| p.status == PaymentStatus::Succeeded)
            .ok_or_else(|| ApiError::internal("paid invoice without a successful payment"))?;
        let charge_ref = payment
            .gateway_ref
            .clone()
            .ok_or_else(|| ApiError::internal("successful payment without a gateway ref"))?;
        let refund_id = RefundId::generate();
        // Refunds of one invoice are serialised by the row lock, so "the refund that
        // follows `amount_refunded` = N" names this refund: should the transaction fail
        // after the gateway refunded, the retry replays that refund instead of paying
        // the money out twice.
        let request = RefundRequest {
            charge_ref,
            amount: plan.amount,
            idempotency_key: format!(
                "{}:refund-after:{}:{}",
                before.id, before.amount_refunded.amount, plan.amount.amount
            ),
        };
        let outcome = state.gateway.refund(&request).await;
        let gateway_ref = match outcome {
            RefundOutcome::Succeeded { gateway_ref } => gateway_ref,
            RefundOutcome::Failed { code } => {
                return Err(ApiError::conflict(
                    "refund_failed",
                    format!("the gateway refused the refund ({code})"),
                ));
            }
        };
        let refund = Refund {
            id: refund_id,
            invoice_id: before.id,
            payment_id: payment.id,
            amount: plan.amount,
            gateway_ref,
            reason,
            created_at: now,
        };
        let at = super::next_update_time(before.updated_at, now);
        invoices_repo::record_refund(conn, merchant, &refund, plan.refunded_after, at).await?;
        let after = invoices_repo::get(conn, merchant, id, None, false).await?;
        invoice_event(conn, merchant, "invoice.refunded", &after, Some(&before)).await?;
        Ok((refund, after))
    })
    .await
}
