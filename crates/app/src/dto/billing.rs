//! Payment methods, invoices, payments and refunds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::billing::invoice::{
    Invoice, InvoiceLine, InvoiceStatus, LineKind, Payment, PaymentStatus, Refund,
};
use tenure_domain::billing::payment_method::PaymentMethod;
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;

wire_enum! {
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    InvoiceStatusDto from InvoiceStatus { Draft, Open, Paid, Void, Uncollectible }
}

wire_enum! {
    /// `plan`, `proration`, `discount`, `one_off` (a one-off charge or credit) or
    /// `customer_balance` (the customer's credit used before charging).
    LineKindDto from LineKind { Plan, Proration, Discount, OneOff, CustomerBalance }
}

wire_enum! {
    /// `succeeded`, `declined` (by the issuer) or `failed` (processing error, retryable).
    PaymentStatusDto from PaymentStatus { Succeeded, Declined, Failed }
}

/// Attach a card by its gateway token. Brand, last4 and expiry come from the gateway;
/// card numbers are refused everywhere with 422 `card_number_not_allowed`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "pm_card_visa", "set_default": true}))]
pub struct AttachPaymentMethod {
    /// A gateway token. The sandbox knows `pm_card_visa`, `pm_card_mastercard`,
    /// `pm_card_amex`, `pm_card_chargeDeclined`, `pm_card_insufficientFunds`,
    /// `pm_card_expired` and `pm_card_processingError`.
    pub token: String,
    /// Make it the default. The customer's first payment method always becomes the
    /// default.
    pub set_default: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "pm_01jf9zd8f4e3a8r7m2k4t5n6bc", "object": "payment_method",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "brand": "visa", "last4": "4242",
    "exp_month": 12, "exp_year": 2034, "is_default": true, "expired": false, "expiring_soon": false,
    "created_at": "2026-11-25T10:00:00Z"}))]
pub struct PaymentMethodDto {
    pub id: String,
    /// Always `payment_method`.
    pub object: String,
    pub customer_id: String,
    /// `visa`, `mastercard`, `amex`, …
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub is_default: bool,
    /// The card is past the last day of its expiry month.
    pub expired: bool,
    /// The card expires within 30 days (or already has).
    pub expiring_soon: bool,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl PaymentMethodDto {
    pub fn render(pm: &PaymentMethod, now: DateTime<Utc>) -> Self {
        Self {
            id: pm.id.to_string(),
            object: "payment_method".to_owned(),
            customer_id: pm.customer_id.to_string(),
            brand: pm.card.brand.clone(),
            last4: pm.card.last4.clone(),
            exp_month: pm.card.exp_month,
            exp_year: pm.card.exp_year,
            is_default: pm.is_default,
            expired: pm.is_expired(now),
            expiring_soon: pm.expiring_soon(now),
            created_at: pm.created_at,
        }
    }
}

/// The payment methods of a customer, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentMethodList {
    pub data: Vec<PaymentMethodDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"kind": "plan", "description": "Gold (Nov 25 – Dec 25)", "amount": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "unit_amount": {"amount": 1999, "currency": "EUR"}}))]
pub struct InvoiceLineDto {
    pub kind: LineKindDto,
    pub description: String,
    /// Negative for credits and discounts.
    pub amount: MoneyDto,
    /// Units billed: a `plan` line's subscription quantity, 1 for other lines.
    pub quantity: u32,
    /// `amount` / `quantity`, exact: the price of one unit.
    pub unit_amount: MoneyDto,
}

impl From<&InvoiceLine> for InvoiceLineDto {
    fn from(l: &InvoiceLine) -> Self {
        Self {
            kind: l.kind.into(),
            description: l.description.clone(),
            amount: l.amount.into(),
            quantity: l.quantity,
            unit_amount: l.unit_amount().into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "pay_01jf9zf2f4e3a8r7m2k4t5n6bc", "object": "payment",
    "invoice_id": "inv_01jf9ze1f4e3a8r7m2k4t5n6bc", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "payment_method_id": "pm_01jf9zd8f4e3a8r7m2k4t5n6bc", "amount": {"amount": 1999, "currency": "EUR"},
    "status": "succeeded", "failure_code": null, "failure_message": null,
    "amount_refunded": {"amount": 0, "currency": "EUR"}, "created_at": "2026-11-25T10:00:00Z"}))]
pub struct PaymentDto {
    pub id: String,
    /// Always `payment`.
    pub object: String,
    pub invoice_id: String,
    pub customer_id: String,
    pub payment_method_id: Option<String>,
    pub amount: MoneyDto,
    pub status: PaymentStatusDto,
    /// `card_declined`, `insufficient_funds`, `expired_card`, `processing_error`, …
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub amount_refunded: MoneyDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&Payment> for PaymentDto {
    fn from(p: &Payment) -> Self {
        Self {
            id: p.id.to_string(),
            object: "payment".to_owned(),
            invoice_id: p.invoice_id.to_string(),
            customer_id: p.customer_id.to_string(),
            payment_method_id: p.payment_method_id.map(|id| id.to_string()),
            amount: p.amount.into(),
            status: p.status.into(),
            failure_code: p.failure_code.clone(),
            failure_message: p.failure_message.clone(),
            amount_refunded: p.amount_refunded.into(),
            created_at: p.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "re_01jf9zg3f4e3a8r7m2k4t5n6bc", "object": "refund",
    "invoice_id": "inv_01jf9ze1f4e3a8r7m2k4t5n6bc", "payment_id": "pay_01jf9zf2f4e3a8r7m2k4t5n6bc",
    "amount": {"amount": 500, "currency": "EUR"}, "reason": "requested_by_customer",
    "created_at": "2026-11-26T10:00:00Z"}))]
pub struct RefundDto {
    pub id: String,
    /// Always `refund`.
    pub object: String,
    pub invoice_id: String,
    pub payment_id: String,
    pub amount: MoneyDto,
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&Refund> for RefundDto {
    fn from(r: &Refund) -> Self {
        Self {
            id: r.id.to_string(),
            object: "refund".to_owned(),
            invoice_id: r.invoice_id.to_string(),
            payment_id: r.payment_id.to_string(),
            amount: r.amount.into(),
            reason: r.reason.clone(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "inv_01jf9ze1f4e3a8r7m2k4t5n6bc", "object": "invoice", "number": 42,
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "subscription_id": "sub_01jf9zc5f4e3a8r7m2k4t5n6bc",
    "period_start": "2026-11-25T10:00:00Z", "period_end": "2026-12-25T10:00:00Z", "status": "paid",
    "currency": "EUR",
    "lines": [{"kind": "plan", "description": "Gold", "amount": {"amount": 1999, "currency": "EUR"}, "quantity": 1, "unit_amount": {"amount": 1999, "currency": "EUR"}}],
    "subtotal": {"amount": 1999, "currency": "EUR"}, "discount": {"amount": 0, "currency": "EUR"},
    "total": {"amount": 1999, "currency": "EUR"}, "credit_applied": {"amount": 0, "currency": "EUR"}, "amount_due": {"amount": 1999, "currency": "EUR"},
    "amount_paid": {"amount": 1999, "currency": "EUR"}, "amount_refunded": {"amount": 0, "currency": "EUR"},
    "attempt_count": 1, "next_payment_attempt_at": null, "created_at": "2026-11-25T10:00:00Z", "paid_at": "2026-11-25T10:00:01Z"}))]
pub struct InvoiceDto {
    pub id: String,
    /// Always `invoice`.
    pub object: String,
    /// Gapless per merchant, starting at 1.
    pub number: i64,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub period_start: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub period_end: Option<DateTime<Utc>>,
    pub status: InvoiceStatusDto,
    #[schema(value_type = String, example = "EUR")]
    pub currency: tenure_domain::money::Currency,
    pub lines: Vec<InvoiceLineDto>,
    /// Plan, proration and one-off lines.
    pub subtotal: MoneyDto,
    /// Discount lines (zero or negative).
    pub discount: MoneyDto,
    /// `subtotal + discount`.
    pub total: MoneyDto,
    /// The customer's credit balance the invoice used before charging (zero or
    /// negative): `amount_due = max(0, total + credit_applied)`.
    pub credit_applied: MoneyDto,
    pub amount_due: MoneyDto,
    pub amount_paid: MoneyDto,
    pub amount_refunded: MoneyDto,
    /// Charge attempts so far.
    pub attempt_count: u32,
    /// When the billing engine charges it next: now for a new invoice, the next dunning
    /// retry after a failure; `null` when nothing is scheduled (paid, void, uncollectible,
    /// dunning exhausted, or the subscription canceled).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub next_payment_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub paid_at: Option<DateTime<Utc>>,
    /// Charge attempts, oldest first (single-invoice responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<PaymentDto>>,
    /// Refunds, oldest first (single-invoice responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunds: Option<Vec<RefundDto>>,
}

impl From<&Invoice> for InvoiceDto {
    fn from(i: &Invoice) -> Self {
        Self {
            id: i.id.to_string(),
            object: "invoice".to_owned(),
            number: i.number,
            customer_id: i.customer_id.to_string(),
            subscription_id: i.subscription_id.map(|s| s.to_string()),
            period_start: i.period.map(|p| p.start),
            period_end: i.period.map(|p| p.end),
            status: i.status.into(),
            currency: i.currency,
            lines: i.lines.iter().map(InvoiceLineDto::from).collect(),
            subtotal: i.totals.subtotal.into(),
            discount: i.totals.discount.into(),
            total: i.totals.total.into(),
            credit_applied: i.totals.credit_applied.into(),
            amount_due: i.totals.amount_due.into(),
            amount_paid: i.amount_paid.into(),
            amount_refunded: i.amount_refunded.into(),
            attempt_count: i.attempt_count,
            next_payment_attempt_at: i.next_payment_attempt_at,
            created_at: i.created_at,
            paid_at: i.paid_at,
            payments: None,
            refunds: None,
        }
    }
}

impl InvoiceDto {
    pub fn detailed(i: &Invoice, payments: &[Payment], refunds: &[Refund]) -> Self {
        Self {
            payments: Some(payments.iter().map(PaymentDto::from).collect()),
            refunds: Some(refunds.iter().map(RefundDto::from).collect()),
            ..Self::from(i)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InvoiceFilterParams {
    /// Invoices of this customer (cus_…).
    pub customer_id: Option<String>,
    /// Invoices of this subscription (sub_…).
    pub subscription_id: Option<String>,
    /// Invoices in this status.
    #[param(value_type = Option<InvoiceStatusDto>)]
    pub status: Option<String>,
    /// Created at or after this instant (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this instant (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
}

/// The portal's invoice filters: the signed-in customer's invoices only, so no
/// `customer_id`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PortalInvoiceFilterParams {
    /// Invoices of this subscription (sub_…) of the customer's.
    pub subscription_id: Option<String>,
    /// Invoices in this status.
    #[param(value_type = Option<InvoiceStatusDto>)]
    pub status: Option<String>,
    /// Created at or after this instant (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before this instant (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
}

impl From<PortalInvoiceFilterParams> for InvoiceFilterParams {
    fn from(params: PortalInvoiceFilterParams) -> Self {
        Self {
            customer_id: None,
            subscription_id: params.subscription_id,
            status: params.status,
            created_from: params.created_from,
            created_to: params.created_to,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentFilterParams {
    /// Payments of this customer (cus_…).
    pub customer_id: Option<String>,
}

/// Refund a paid invoice: everything still refundable when `amount` is omitted (send
/// `{}`), or `amount` minor units of the invoice's currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 500, "reason": "requested_by_customer"}))]
pub struct RefundInvoice {
    /// Minor units of the invoice's currency; at most what is left to refund.
    #[schema(minimum = 1)]
    pub amount: Option<i64>,
    /// Free text, up to 200 characters.
    pub reason: Option<String>,
}

/// The refund and the invoice after it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundResult {
    pub refund: RefundDto,
    pub invoice: InvoiceDto,
}

/// Which gateway a merchant's charges go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewayProviderDto {
    Sandbox,
    Stripe,
}

impl From<tenure_domain::billing::gateway_settings::GatewayProvider> for GatewayProviderDto {
    fn from(value: tenure_domain::billing::gateway_settings::GatewayProvider) -> Self {
        use tenure_domain::billing::gateway_settings::GatewayProvider;
        match value {
            GatewayProvider::Sandbox => Self::Sandbox,
            GatewayProvider::Stripe => Self::Stripe,
        }
    }
}

impl From<GatewayProviderDto> for tenure_domain::billing::gateway_settings::GatewayProvider {
    fn from(value: GatewayProviderDto) -> Self {
        match value {
            GatewayProviderDto::Sandbox => Self::Sandbox,
            GatewayProviderDto::Stripe => Self::Stripe,
        }
    }
}

/// Connect a payment gateway. `stripe` needs `secret_key` and `publishable_key` (and
/// `webhook_secret` to receive Stripe's events); `sandbox` takes no keys.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"provider": "stripe", "secret_key": "sk_test_51Hx…",
    "webhook_secret": "whsec_…", "publishable_key": "pk_test_51Hx…"}))]
pub struct PutGatewaySettings {
    pub provider: GatewayProviderDto,
    /// Stripe's secret (or restricted) API key, `sk_test_…`/`sk_live_…`/`rk_…`. Stored
    /// encrypted; never shown again (only its last four characters).
    pub secret_key: Option<String>,
    /// The signing secret of the Stripe webhook endpoint that points at
    /// `/v1/gateway_events/{merchant_id}/stripe` (`whsec_…`). Stored encrypted; never
    /// shown again.
    pub webhook_secret: Option<String>,
    /// Stripe's publishable key (`pk_test_…`/`pk_live_…`), of the same mode as the
    /// secret key; handed to the frontend with setup intents and payments to confirm.
    pub publishable_key: Option<String>,
}

/// A merchant's gateway settings. Secrets are never returned: only whether they are set
/// and their last four characters.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "gateway_settings", "provider": "stripe",
    "secret_key_last4": "x9Qa", "webhook_secret_set": true, "webhook_secret_last4": "3kPz",
    "publishable_key": "pk_test_51Hx…", "updated_at": "2026-12-07T12:00:00Z"}))]
pub struct GatewaySettingsDto {
    /// Always `gateway_settings`.
    pub object: String,
    pub provider: GatewayProviderDto,
    /// The last four characters of the secret key; null without one.
    pub secret_key_last4: Option<String>,
    pub webhook_secret_set: bool,
    pub webhook_secret_last4: Option<String>,
    pub publishable_key: Option<String>,
    /// When they last changed; null for a merchant on the default sandbox.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// What the frontend needs to collect a card with Stripe.js or a mobile SDK: confirm the
/// setup intent with `client_secret` and `publishable_key`, then attach the resulting
/// payment method (`POST /v1/portal/payment_methods` with `{"token": "pm_…"}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "setup_intent", "provider": "stripe",
    "id": "seti_1Qx…", "client_secret": "seti_1Qx…_secret_…", "publishable_key": "pk_test_51Hx…"}))]
pub struct SetupIntentDto {
    /// Always `setup_intent`.
    pub object: String,
    pub provider: GatewayProviderDto,
    /// The gateway's setup intent id.
    pub id: String,
    pub client_secret: String,
    pub publishable_key: String,
}

/// A dispute (chargeback) of a payment, as the gateway reported it; the data of
/// `payment.disputed`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DisputeDto {
    /// Always `dispute`.
    pub object: String,
    /// The gateway's id of the dispute (Stripe's `dp_…`).
    pub id: String,
    pub payment_id: String,
    pub invoice_id: String,
    pub amount: MoneyDto,
    /// The card network's reason (`fraudulent`, `product_not_received`, …).
    pub reason: Option<String>,
    /// The gateway's status of the dispute (`needs_response`, `won`, `lost`, …).
    pub status: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The answer to a gateway's event: received (and applied once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GatewayEventReceipt {
    pub received: bool,
    /// The event id was already applied: nothing was done again.
    pub duplicate: bool,
    /// Whether Tenure acted on this type of event (others are acknowledged and ignored).
    pub handled: bool,
}

/// The portal's pay of an invoice whose card asks for the customer's authentication
/// (3-D Secure): confirm the payment in the frontend with the gateway's library (Stripe.js
/// `confirmCardPayment(client_secret)`, or a mobile SDK) and `publishable_key`. The invoice
/// stays open and is settled when the gateway reports the outcome.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "payment_action", "invoice_id": "inv_01jd…",
    "provider": "stripe", "type": "authenticate",
    "client_secret": "pi_3Qx…_secret_…", "publishable_key": "pk_test_51Hx…"}))]
pub struct PaymentActionDto {
    /// Always `payment_action`.
    pub object: String,
    pub invoice_id: String,
    pub provider: GatewayProviderDto,
    /// Always `authenticate`.
    #[serde(rename = "type")]
    pub action_type: String,
    pub client_secret: String,
    pub publishable_key: String,
}
