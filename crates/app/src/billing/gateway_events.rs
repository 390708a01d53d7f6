//! Events a gateway sends Tenure: `POST /v1/gateway_events/{merchant_id}/stripe`, one
//! endpoint per merchant (the merchant registers it in its Stripe dashboard and gives
//! Tenure the endpoint's signing secret, `whsec_…`).
//!
//! Each request is checked before its body is read as anything: the `Stripe-Signature`
//! header's HMAC-SHA256 over `{t}.{body}` with the merchant's signing secret (any `v1`
//! may match, as during Stripe's secret rolls), and its time `t` within [`TOLERANCE`] of
//! Tenure's clock (so a captured request cannot be replayed later). Each event id is
//! applied once (`gateway_events`); a repeat is acknowledged and does nothing. Unknown
//! types are acknowledged and ignored, so Stripe stops retrying them.
//!
//! | Stripe event | what Tenure does |
//! |---|---|
//! | `payment_intent.succeeded`, `payment_intent.payment_failed`, `payment_intent.processing` | the charge waiting for this PaymentIntent (an unknown outcome, or one still processing) becomes due now: the engine asks Stripe under the same key and settles it (paid, or a decline into dunning) |
//! | `charge.refunded` | a refund made outside Tenure (the Stripe dashboard) is recorded on its invoice, with `invoice.refunded` |
//! | `charge.dispute.created`, `charge.dispute.updated`, `charge.dispute.closed` | the dispute is recorded and announced with `payment.disputed` |
//! | `payment_method.updated`, `payment_method.automatically_updated` | the card's new expiry or number (a card network's updater) is saved, with `payment_method.updated` |

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value;
use tenure_domain::billing::gateway::CardDetails;
use tenure_domain::billing::gateway_settings::GatewayProvider;
use tenure_domain::billing::invoice::{self, Refund};
use tenure_domain::ids::{GenerateId, InvoiceId, MerchantId, PaymentId, RefundId};
use tenure_domain::money::{Currency, Money};
use tenure_domain::time::next_update_time;
use tenure_store::repo::gateway_settings::{self as repo, DisputeRow};
use tenure_store::repo::invoices as invoices_repo;
use tenure_store::repo::payment_methods as pm_repo;

use crate::App;
use crate::billing::gateways;
use crate::billing::invoices::invoice_event;
use crate::dto::MoneyDto;
use crate::dto::billing::{DisputeDto, GatewayEventReceipt, PaymentMethodDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

/// How far a signature's time may be from Tenure's clock (Stripe's libraries' default).
pub const TOLERANCE: Duration = Duration::minutes(5);

/// The largest event body read.
pub const MAX_BODY: usize = 256 * 1024;

fn bad(detail: &str) -> AppError {
    AppError::BadSignature(detail.to_owned())
}

/// Checks a `Stripe-Signature` header (`t=…,v1=…[,v1=…]`) over `body` with `secret`,
/// at `now`.
pub fn verify_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut timestamp: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| bad("the Stripe-Signature header has no timestamp"))?;
    if signatures.is_empty() {
        return Err(bad("the Stripe-Signature header has no v1 signature"));
    }
    let mut mac = hmac_sha256::HMAC::new(secret.as_bytes());
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize();
    // Compared in full whatever the first differing byte (no timing hint).
    let matches = signatures.iter().any(|sig| {
        decode_hex(sig).is_some_and(|given| {
            given.len() == expected.len()
                && given
                    .iter()
                    .zip(expected.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
    });
    if !matches {
        return Err(bad(
            "the signature does not match the merchant's Stripe signing secret",
        ));
    }
    let signed_at = DateTime::<Utc>::from_timestamp(t, 0)
        .ok_or_else(|| bad("the signature's timestamp is out of range"))?;
    if (now - signed_at).abs() > TOLERANCE {
        return Err(bad(
            "the signature's timestamp is more than 5 minutes from now (a replay, or a clock off)",
        ));
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `POST /v1/gateway_events/{merchant_id}/stripe`.
pub async fn receive_stripe(
    state: &App,
    merchant: MerchantId,
    signature: Option<&str>,
    body: &[u8],
) -> AppResult<GatewayEventReceipt> {
    let gateway = gateways::resolve_alone(state, merchant).await?;
    // A merchant not on Stripe, or one without a signing secret, has no such endpoint.
    let secret = match (&gateway.provider, &gateway.webhook_secret) {
        (GatewayProvider::Stripe, Some(secret)) => secret.clone(),
        _ => return Err(AppError::NotFound("gateway event endpoint")),
    };
    let signature = signature.ok_or_else(|| bad("the Stripe-Signature header is missing"))?;
    let now = state.now_micros();
    verify_signature(signature, body, &secret, now)?;
    let event: Value = serde_json::from_slice(body)
        .map_err(|_| AppError::field("body", "is not a Stripe event (JSON)"))?;
    let (Some(id), Some(event_type)) = (str_of(&event, "id"), str_of(&event, "type")) else {
        return Err(AppError::field(
            "body",
            "is not a Stripe event (no id or type)",
        ));
    };
    let object = event
        .get("data")
        .and_then(|d| d.get("object"))
        .cloned()
        .unwrap_or(Value::Null);
    let provider = GatewayProvider::Stripe.as_str();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        if !repo::mark_event_applied(conn, merchant, provider, id, event_type, now).await? {
            return Ok(GatewayEventReceipt {
                received: true,
                duplicate: true,
                handled: false,
            });
        }
        let handled = apply(conn, merchant, event_type, &object, now).await?;
        Ok(GatewayEventReceipt {
            received: true,
            duplicate: false,
            handled,
        })
    })
    .await
}

async fn apply(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    object: &Value,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    match event_type {
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.processing" => {
            if let Some(key) = object
                .get("metadata")
                .and_then(|m| str_of(m, "tenure_idempotency_key"))
            {
                repo::make_charge_due(conn, merchant, key, now).await?;
            }
            Ok(true)
        }
        "charge.refunded" => charge_refunded(conn, merchant, object, now).await,
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            dispute(conn, merchant, object, now).await
        }
        "payment_method.updated" | "payment_method.automatically_updated" => {
            card_updated(conn, merchant, object, now).await
        }
        _ => Ok(false),
    }
}

/// A refund made at Stripe: what the charge says was refunded beyond what Tenure has
/// recorded is recorded as one refund.
async fn charge_refunded(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    charge: &Value,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let Some(pi) = str_of(charge, "payment_intent") else {
        return Ok(false);
    };
    let Some(payment) = repo::payment_by_ref(conn, merchant, "stripe", pi).await? else {
        return Ok(false);
    };
    let refunded_at_stripe = charge
        .get("amount_refunded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let missing = refunded_at_stripe - payment.amount_refunded;
    if missing <= 0 {
        return Ok(true);
    }
    let invoice_id = InvoiceId::from_uuid(payment.invoice_id);
    let before = invoices_repo::get(conn, merchant, invoice_id, None, true).await?;
    let plan = invoice::plan_refund(
        before.status,
        before.amount_paid,
        before.amount_refunded,
        Some(missing),
    )?;
    let reference = charge
        .get("refunds")
        .and_then(|r| r.get("data"))
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|r| str_of(r, "id"))
        .map_or_else(
            || {
                format!(
                    "{}:refunded:{refunded_at_stripe}",
                    str_of(charge, "id").unwrap_or(pi)
                )
            },
            str::to_owned,
        );
    let refund = Refund {
        id: RefundId::generate(),
        invoice_id,
        payment_id: PaymentId::from_uuid(payment.payment_id),
        amount: plan.amount,
        gateway_ref: reference,
        reason: Some("refunded at the gateway".to_owned()),
        created_at: now,
    };
    let at = next_update_time(before.updated_at, now);
    invoices_repo::record_refund(conn, merchant, &refund, plan.refunded_after, at).await?;
    let after = invoices_repo::get(conn, merchant, invoice_id, None, false).await?;
    invoice_event(conn, merchant, "invoice.refunded", &after, Some(&before)).await?;
    Ok(true)
}

async fn dispute(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    dispute: &Value,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let (Some(id), Some(pi)) = (str_of(dispute, "id"), str_of(dispute, "payment_intent")) else {
        return Ok(false);
    };
    let Some(payment) = repo::payment_by_ref(conn, merchant, "stripe", pi).await? else {
        return Ok(false);
    };
    let currency: Currency = payment
        .currency
        .parse()
        .map_err(|_| AppError::internal("payment with an unknown currency"))?;
    let amount = dispute
        .get("amount")
        .and_then(Value::as_i64)
        .unwrap_or(payment.amount);
    let row = DisputeRow {
        merchant_id: merchant.uuid(),
        gateway_ref: id.to_owned(),
        payment_id: payment.payment_id,
        invoice_id: payment.invoice_id,
        amount,
        currency: payment.currency.clone(),
        reason: str_of(dispute, "reason").map(str::to_owned),
        status: str_of(dispute, "status")
            .unwrap_or("needs_response")
            .to_owned(),
        created_at: now,
        updated_at: now,
    };
    repo::upsert_dispute(conn, &row).await?;
    let payment_id = PaymentId::from_uuid(payment.payment_id);
    let dto = DisputeDto {
        object: "dispute".to_owned(),
        id: row.gateway_ref.clone(),
        payment_id: payment_id.to_string(),
        invoice_id: InvoiceId::from_uuid(payment.invoice_id).to_string(),
        amount: MoneyDto::from(Money::new(amount, currency)),
        reason: row.reason.clone(),
        status: row.status.clone(),
        created_at: now,
    };
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type: "payment.disputed",
            resource_type: "payment",
            resource_id: payment_id.to_string(),
            after: &dto,
            before: None,
            at: now,
        },
    )
    .await?;
    Ok(true)
}

/// A card network's update of a card (new expiry, or a new number's last four).
async fn card_updated(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    pm: &Value,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let (Some(id), Some(card)) = (str_of(pm, "id"), pm.get("card")) else {
        return Ok(false);
    };
    let (Some(last4), Some(exp_month), Some(exp_year)) = (
        str_of(card, "last4"),
        card.get("exp_month")
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| (1..=12).contains(m)),
        card.get("exp_year")
            .and_then(Value::as_i64)
            .and_then(|y| i32::try_from(y).ok()),
    ) else {
        return Ok(false);
    };
    for (pm_id, customer) in
        repo::payment_methods_by_token_suffix(conn, merchant, &format!("/{id}")).await?
    {
        let Ok(before) = pm_repo::get(
            conn,
            merchant,
            tenure_domain::ids::CustomerId::from_uuid(customer),
            tenure_domain::ids::PaymentMethodId::from_uuid(pm_id),
            false,
        )
        .await
        else {
            // Detached: nothing to keep current.
            continue;
        };
        let card = CardDetails {
            brand: str_of(card, "brand")
                .map_or_else(|| before.card.brand.clone(), str::to_ascii_lowercase),
            last4: last4.to_owned(),
            exp_month,
            exp_year,
        };
        if card == before.card {
            continue;
        }
        repo::update_card(conn, merchant, pm_id, &card).await?;
        let mut after = before.clone();
        after.card = card;
        record_event(
            conn,
            merchant,
            EventDraft {
                event_type: "payment_method.updated",
                resource_type: "payment_method",
                resource_id: after.id.to_string(),
                after: &PaymentMethodDto::render(&after, now),
                before: Some(&PaymentMethodDto::render(&before, now)),
                at: now,
            },
        )
        .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = hmac_sha256::HMAC::new(secret.as_bytes());
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn signatures_are_checked_with_the_secret_and_the_time() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let t = now.timestamp();
        let body = br#"{"id":"evt_1"}"#;
        let good = sign("whsec_a", t, body);
        let header = format!("t={t},v1={good}");
        assert!(verify_signature(&header, body, "whsec_a", now).is_ok());
        // Any of several v1 may match (a secret being rolled).
        let two = format!("t={t},v1={},v1={good}", sign("whsec_old", t, body));
        assert!(verify_signature(&two, body, "whsec_a", now).is_ok());
        for (header, body, secret, at) in [
            (header.clone(), &b"{\"id\":\"evt_2\"}"[..], "whsec_a", now),
            (header.clone(), &body[..], "whsec_b", now),
            (
                header.clone(),
                &body[..],
                "whsec_a",
                now + Duration::minutes(6),
            ),
            (format!("v1={good}"), &body[..], "whsec_a", now),
            (format!("t={t}"), &body[..], "whsec_a", now),
            (format!("t={t},v1=zz"), &body[..], "whsec_a", now),
            (String::new(), &body[..], "whsec_a", now),
        ] {
            assert!(
                matches!(
                    verify_signature(&header, body, secret, at),
                    Err(AppError::BadSignature(_))
                ),
                "{header}"
            );
        }
    }
}
