//! Refunding a paid invoice, in the three steps charges take (see
//! [`crate::billing::charging`]), so that no lock is held while the gateway is called:
//!
//! 1. **Prepare**, in a short transaction: lock the invoice, plan the refund (never more
//!    than what was paid minus what was refunded), and write it down as a *refund
//!    intent* (`refund_intents`, at most one per invoice) with a lease: now +
//!    [`App::charge_lease`]. While it exists another refund of the invoice is refused
//!    (409 `refund_in_progress`), which is what keeps concurrent refunds within what was
//!    paid now that the invoice is not locked during the call.
//! 2. **Call** the gateway, outside any transaction, with the intent's idempotency key.
//! 3. **Settle**, in a second transaction: lock the invoice, take (delete) the intent and
//!    record the refund (`invoice.refunded`), or only drop the intent when the gateway
//!    refused. An intent that is gone was settled by the engine, and this outcome is
//!    dropped.
//!
//! A request that dies between 1 and 3 leaves the intent. Once its lease ends, the
//! engine claims it and sends the same request again (same key), which the gateway
//! answers by replaying its first outcome: the money goes out once and the refund is
//! recorded once.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::gateway::{RefundOutcome, RefundRequest};
use tenure_domain::billing::invoice::{self, Invoice, PaymentStatus, Refund};
use tenure_domain::ids::{GenerateId, InvoiceId, MerchantId, RefundId};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::credits as credits_repo;
use tenure_store::repo::invoices as invoices_repo;
use tenure_store::repo::refund_intents::{self as intents_repo, RefundIntent};

use crate::App;
use crate::billing::charging::lease_end;
use crate::billing::invoices::invoice_event;
use crate::dto::billing::RefundInvoice;
use crate::error::{AppError, AppResult};

const REASON_MAX: usize = 200;

/// What step 3 did.
pub enum Settled {
    Refunded(Box<(Refund, Invoice)>),
    /// The gateway refused: nothing was refunded, the intent is gone.
    Refused {
        code: String,
    },
    /// The intent was gone: the engine settled this refund after its lease ran out.
    AlreadySettled,
}

fn refund_failed(code: &str) -> AppError {
    AppError::conflict(
        "refund_failed",
        format!("the gateway refused the refund ({code})"),
    )
}

/// `POST /v1/invoices/{id}/refund`: refunds (part of) a paid invoice through the gateway.
pub async fn refund(
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    input: RefundInvoice,
) -> AppResult<(Refund, Invoice)> {
    let reason = text::clean_opt("reason", input.reason.as_deref(), REASON_MAX, false)?;
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    let intent = conn
        .transaction(async |conn| {
            prepare(conn, state, merchant, id, input.amount, reason, now).await
        })
        .await?;
    let outcome = call(&mut conn, state, merchant, &intent).await;
    let settled = conn
        .transaction(async |conn| settle(conn, merchant, &intent, &outcome, now).await)
        .await?;
    match settled {
        Settled::Refunded(recorded) => Ok(*recorded),
        Settled::Refused { code } => Err(refund_failed(&code)),
        // This request's lease ran out during the call and the engine recorded the same
        // refund (same key): answer it as recorded.
        Settled::AlreadySettled => {
            let invoice = invoices_repo::get(&mut conn, merchant, id, None, false).await?;
            let refund = invoices_repo::refunds_of_invoice(&mut conn, merchant, id)
                .await?
                .into_iter()
                .find(|r| r.id == intent.refund_id);
            match refund {
                Some(refund) => Ok((refund, invoice)),
                None => Err(refund_failed("refused after a retry")),
            }
        }
    }
}

/// Step 1: plans the refund under the invoice's lock and commits its intent.
async fn prepare(
    conn: &mut AsyncPgConnection,
    state: &App,
    merchant: MerchantId,
    id: InvoiceId,
    requested: Option<i64>,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<RefundIntent> {
    let before = invoices_repo::get(conn, merchant, id, None, true)
        .await
        .map_err(AppError::from_store("invoice"))?;
    let credited = credits_repo::credited_to_balance(conn, merchant, id, before.currency).await?;
    let plan = invoice::plan_refund_after_credits(
        before.status,
        before.amount_paid,
        before.amount_refunded,
        credited,
        requested,
    )?;
    if intents_repo::exists_for_invoice(conn, merchant, id).await? {
        return Err(AppError::conflict(
            "refund_in_progress",
            "a refund of this invoice is in progress; retry shortly",
        ));
    }
    let payment = invoices_repo::payments_of_invoice(conn, merchant, id)
        .await?
        .into_iter()
        .find(|p| p.status == PaymentStatus::Succeeded)
        .ok_or_else(|| AppError::internal("paid invoice without a successful payment"))?;
    let charge_ref = payment
        .gateway_ref
        .clone()
        .ok_or_else(|| AppError::internal("successful payment without a gateway ref"))?;
    let intent = RefundIntent {
        invoice_id: id,
        refund_id: RefundId::generate(),
        payment_id: payment.id,
        charge_ref,
        amount: plan.amount,
        // Refunds of one invoice follow one another (one intent at a time), so "the
        // refund that follows `amount_refunded` = N" names this one: a refund the gateway
        // made but Tenure did not record is replayed by its retry, not paid out twice.
        idempotency_key: format!(
            "{}:refund-after:{}:{}",
            id, before.amount_refunded.amount, plan.amount.amount
        ),
        reason,
        lease_until: lease_end(state, now),
        created_at: now,
    };
    intents_repo::insert(conn, merchant, &intent).await?;
    Ok(intent)
}

/// Step 2: the gateway call, outside any transaction. A refund goes to the gateway that
/// took the charge: a sandbox charge (`ch_sandbox_…`) to the sandbox even after the
/// merchant connected Stripe. A gateway that cannot be resolved refuses it (nothing was
/// sent; the refund can be asked for again).
pub async fn call(
    conn: &mut AsyncPgConnection,
    state: &App,
    merchant: MerchantId,
    intent: &RefundIntent,
) -> RefundOutcome {
    let request = RefundRequest {
        charge_ref: intent.charge_ref.clone(),
        amount: intent.amount,
        idempotency_key: intent.idempotency_key.clone(),
    };
    if intent.charge_ref.starts_with("ch_sandbox_") {
        return state.gateway.refund(&request).await;
    }
    match crate::billing::gateways::resolve(conn, state, merchant).await {
        Ok(resolved) => resolved.gateway.refund(&request).await,
        Err(err) => {
            tracing::warn!(error = %err, merchant = %merchant, "no gateway for a refund");
            RefundOutcome::Failed {
                code: "gateway_unavailable".to_owned(),
            }
        }
    }
}

/// Step 3: records the refund (or the gateway's refusal) under the invoice's lock, once.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    intent: &RefundIntent,
    outcome: &RefundOutcome,
    now: DateTime<Utc>,
) -> AppResult<Settled> {
    let id = intent.invoice_id;
    let before = invoices_repo::get(conn, merchant, id, None, true).await?;
    if !intents_repo::take(conn, merchant, id, intent.refund_id).await? {
        return Ok(Settled::AlreadySettled);
    }
    let gateway_ref = match outcome {
        RefundOutcome::Succeeded { gateway_ref } => gateway_ref.clone(),
        RefundOutcome::Failed { code } => return Ok(Settled::Refused { code: code.clone() }),
    };
    // Planned again on the locked invoice: nothing else refunds it while the intent
    // exists, so this holds unless the data is inconsistent (then the intent stays and
    // the engine tries again after each lease, with an error in the log).
    let credited = credits_repo::credited_to_balance(conn, merchant, id, before.currency).await?;
    let plan = invoice::plan_refund_after_credits(
        before.status,
        before.amount_paid,
        before.amount_refunded,
        credited,
        Some(intent.amount.amount),
    )?;
    let refund = Refund {
        id: intent.refund_id,
        invoice_id: id,
        payment_id: intent.payment_id,
        amount: intent.amount,
        gateway_ref,
        reason: intent.reason.clone(),
        created_at: intent.created_at,
    };
    let at = next_update_time(before.updated_at, now);
    invoices_repo::record_refund(conn, merchant, &refund, plan.refunded_after, at).await?;
    let after = invoices_repo::get(conn, merchant, id, None, false).await?;
    invoice_event(conn, merchant, "invoice.refunded", &after, Some(&before)).await?;
    Ok(Settled::Refunded(Box::new((refund, after))))
}
