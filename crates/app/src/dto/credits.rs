//! Customer credit balances and their ledger, credit notes, one-off invoice items and
//! agents' overrides.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::billing::credit::{BalanceSource, CreditNoteDestination, CreditNoteReason};
use tenure_domain::ids::{InvoiceItemId, SubscriptionId};
use tenure_store::repo::credits::{Balance, BalanceTransaction, CreditNote};
use tenure_store::repo::overrides::{GrantedTotal, Override};
use tenure_store::repo::pending_items::PendingItem;
use utoipa::{IntoParams, ToSchema};

use super::MoneyDto;
use super::billing::InvoiceDto;

wire_enum! {
    /// Where a balance change came from: `adjustment` (granted or debited through the
    /// API), `credit_note` (part of a paid invoice credited) or `invoice` (used up by an
    /// invoice before charging).
    BalanceSourceDto from BalanceSource { Adjustment, CreditNote, Invoice }
}

wire_enum! {
    /// Why a credit note was issued.
    CreditNoteReasonDto from CreditNoteReason {
        Duplicate, Fraudulent, OrderChange, ProductUnsatisfactory, Goodwill, Other
    }
}

impl From<CreditNoteReasonDto> for CreditNoteReason {
    fn from(value: CreditNoteReasonDto) -> Self {
        match value {
            CreditNoteReasonDto::Duplicate => Self::Duplicate,
            CreditNoteReasonDto::Fraudulent => Self::Fraudulent,
            CreditNoteReasonDto::OrderChange => Self::OrderChange,
            CreditNoteReasonDto::ProductUnsatisfactory => Self::ProductUnsatisfactory,
            CreditNoteReasonDto::Goodwill => Self::Goodwill,
            CreditNoteReasonDto::Other => Self::Other,
        }
    }
}

wire_enum! {
    /// Where a credit note's money goes: `refund` (back to the card through the gateway)
    /// or `balance` (the customer's credit balance in the invoice's currency).
    CreditNoteDestinationDto from CreditNoteDestination { Refund, Balance }
}

impl From<CreditNoteDestinationDto> for CreditNoteDestination {
    fn from(value: CreditNoteDestinationDto) -> Self {
        match value {
            CreditNoteDestinationDto::Refund => Self::Refund,
            CreditNoteDestinationDto::Balance => Self::Balance,
        }
    }
}

/// A customer's credit balance in one currency: what the next invoices in that currency
/// draw on before charging.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "customer_balance", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "balance": {"amount": 500, "currency": "EUR"}, "updated_at": "2026-12-07T10:00:00Z"}))]
pub struct CustomerBalanceDto {
    /// Always `customer_balance`.
    pub object: String,
    pub customer_id: String,
    /// Never negative.
    pub balance: MoneyDto,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Balance> for CustomerBalanceDto {
    fn from(b: &Balance) -> Self {
        Self {
            object: "customer_balance".to_owned(),
            customer_id: b.customer_id.to_string(),
            balance: b.balance.into(),
            updated_at: b.updated_at,
        }
    }
}

/// The customer's balances, one per currency it ever had credit in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerBalancesDto {
    /// Always `list`.
    pub object: String,
    pub data: Vec<CustomerBalanceDto>,
}

/// One change of a customer's balance (the ledger's row).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "cbtx_01jf9zg3f4e3a8r7m2k4t5n6bc", "object": "customer_balance_transaction",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "amount": {"amount": 500, "currency": "EUR"},
    "balance_after": {"amount": 500, "currency": "EUR"}, "source": "adjustment",
    "reason": "Late delivery in November", "invoice_id": null, "credit_note_id": null,
    "agent": "support-bot", "created_at": "2026-12-07T10:00:00Z"}))]
pub struct BalanceTransactionDto {
    pub id: String,
    /// Always `customer_balance_transaction`.
    pub object: String,
    pub customer_id: String,
    /// Positive: credit granted; negative: credit used or debited.
    pub amount: MoneyDto,
    /// The balance this change left.
    pub balance_after: MoneyDto,
    pub source: BalanceSourceDto,
    pub reason: String,
    /// The invoice that used the credit (`invoice`) or was credited (`credit_note`).
    pub invoice_id: Option<String>,
    pub credit_note_id: Option<String>,
    /// The `Tenure-Agent` of the request (or its key's id when it named none); `null` for
    /// changes the billing engine made.
    pub agent: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&BalanceTransaction> for BalanceTransactionDto {
    fn from(t: &BalanceTransaction) -> Self {
        Self {
            id: t.id.to_string(),
            object: "customer_balance_transaction".to_owned(),
            customer_id: t.customer_id.to_string(),
            amount: t.amount.into(),
            balance_after: t.balance_after.into(),
            source: t.source.into(),
            reason: t.reason.clone(),
            invoice_id: t.invoice_id.map(|i| i.to_string()),
            credit_note_id: t.credit_note_id.map(|c| c.to_string()),
            agent: t.agent.clone(),
            created_at: t.created_at,
        }
    }
}

/// Grant (a positive amount) or debit (a negative one) a customer's credit balance. A
/// grant is a goodwill credit: it is recorded as an override of kind `credit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": {"amount": 500, "currency": "EUR"}, "reason": "Late delivery in November"}))]
pub struct AdjustBalance {
    /// Signed minor units, not zero; in a currency the merchant has plans in.
    pub amount: MoneyDto,
    /// Why (required, 1–500 characters).
    pub reason: String,
}

/// A credit note on a paid invoice.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 500, "reason": "product_unsatisfactory", "destination": "refund", "memo": "Box arrived damaged"}))]
pub struct CreateCreditNote {
    /// Minor units of the invoice's currency: positive, at most what remains uncredited
    /// (`paid − refunded − credited`).
    pub amount: i64,
    pub reason: CreditNoteReasonDto,
    pub destination: CreditNoteDestinationDto,
    /// A note for the customer or the books (at most 500 characters).
    pub memo: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "cn_01jf9zg3f4e3a8r7m2k4t5n6bc", "object": "credit_note",
    "invoice_id": "inv_01jf9ze1f4e3a8r7m2k4t5n6bc", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "amount": {"amount": 500, "currency": "EUR"}, "reason": "product_unsatisfactory", "memo": null,
    "destination": "refund", "refund_id": "re_01jf9zg3f4e3a8r7m2k4t5n6bc", "agent": "support-bot",
    "created_at": "2026-12-07T10:00:00Z"}))]
pub struct CreditNoteDto {
    pub id: String,
    /// Always `credit_note`.
    pub object: String,
    pub invoice_id: String,
    pub customer_id: String,
    pub amount: MoneyDto,
    pub reason: CreditNoteReasonDto,
    pub memo: Option<String>,
    pub destination: CreditNoteDestinationDto,
    /// The refund that carried it back to the card (`refund` only).
    pub refund_id: Option<String>,
    pub agent: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&CreditNote> for CreditNoteDto {
    fn from(c: &CreditNote) -> Self {
        Self {
            id: c.id.to_string(),
            object: "credit_note".to_owned(),
            invoice_id: c.invoice_id.to_string(),
            customer_id: c.customer_id.to_string(),
            amount: c.amount.into(),
            reason: c.reason.into(),
            memo: c.memo.clone(),
            destination: c.destination.into(),
            refund_id: c.refund_id.map(|r| r.to_string()),
            agent: c.agent.clone(),
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreditNoteFilterParams {
    /// Credit notes of this customer (cus_…).
    pub customer_id: Option<String>,
}

/// A one-off charge (positive) or credit (negative) for the subscription's next invoice,
/// or invoiced and charged at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1500, "description": "Express shipping", "invoice_now": false}))]
pub struct CreateInvoiceItem {
    /// Signed minor units of the subscription's currency, not zero.
    pub amount: i64,
    /// How the line reads on the invoice (1–500 characters).
    pub description: String,
    /// Invoice it now, alone, and charge the invoice at once (a charge only: a positive
    /// amount). Default: added to the next invoice.
    #[serde(default)]
    pub invoice_now: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "ii_01jf9zg3f4e3a8r7m2k4t5n6bc", "object": "invoice_item",
    "subscription_id": "sub_01jf9zc5f4e3a8r7m2k4t5n6bc", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "amount": {"amount": 1500, "currency": "EUR"}, "description": "Express shipping",
    "invoice_id": null, "agent": "support-bot", "created_at": "2026-12-07T10:00:00Z"}))]
pub struct InvoiceItemDto {
    pub id: String,
    /// Always `invoice_item`.
    pub object: String,
    pub subscription_id: String,
    pub customer_id: String,
    /// Positive: a charge; negative: a credit.
    pub amount: MoneyDto,
    pub description: String,
    /// The invoice that took it; `null` while it waits for the next one (and may be
    /// deleted).
    pub invoice_id: Option<String>,
    pub agent: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The invoice `invoice_now` created, as it stands after its charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Box<InvoiceDto>>,
}

impl From<&PendingItem> for InvoiceItemDto {
    fn from(i: &PendingItem) -> Self {
        Self {
            id: InvoiceItemId::from_uuid(i.id).to_string(),
            object: "invoice_item".to_owned(),
            subscription_id: i.subscription_id.to_string(),
            customer_id: i.customer_id.to_string(),
            amount: i.amount.into(),
            description: i.description.clone(),
            invoice_id: i.invoice_id.map(|id| id.to_string()),
            agent: i.agent.clone(),
            created_at: i.created_at,
            invoice: None,
        }
    }
}

/// An agent's override of the default policy: `override: {"reason": …}` in a merchant
/// request. The reason is required (422 without).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Three-year subscriber recovering from surgery"}))]
pub struct OverrideRequest {
    /// Why the agent exceeds the policy (1–500 characters).
    pub reason: String,
}

/// A one-off discount an agent grants a subscription as a goodwill gesture.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"percent": 20, "cycles": 3, "reason": "Keeps a valued subscriber"}))]
pub struct GrantDiscount {
    /// 1–100 % off each invoice's subtotal; or give `amount`.
    pub percent: Option<u32>,
    /// A fixed amount off each invoice, in the subscription's currency; or give `percent`.
    pub amount: Option<MoneyDto>,
    /// How many invoices it applies to (1–120; default 1).
    pub cycles: Option<u32>,
    /// Why (required, 1–500 characters).
    pub reason: String,
}

wire_enum! {
    /// What an override granted: a `credit` (goodwill balance grant), a `discount`, a
    /// `pause` beyond the policy's limit, a `cancel` without the notice period, a
    /// `plan_change` the policy does not offer.
    OverrideKindDto from tenure_domain::overrides::OverrideKind { Credit, Discount, Pause, Cancel, PlanChange, Skip, SendNow }
}

wire_enum! {
    /// A limit of the product's portal policy, named as the policy's field that sets it:
    /// `allow_pause`, `max_pause_days` (a longer or open-ended pause), `allow_cancel`,
    /// `cancellation_notice` (an end before the policy's notice), `allow_plan_change`,
    /// `switchable_plan_ids` (a plan the policy does not offer), `allow_skip`,
    /// `max_consecutive_skips`, `allow_send_now`, and the merchant's `order_cutoff_hours`
    /// (a change of the next order after its edit cutoff).
    PolicyLimitDto from tenure_domain::policy::PolicyLimit { AllowPause, MaxPauseDays, AllowCancel, CancellationNotice, AllowPlanChange, SwitchablePlanIds, AllowSkip, MaxConsecutiveSkips, AllowSendNow, OrderCutoffHours }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "ovr_01jf9zg3f4e3a8r7m2k4t5n6bc", "object": "override",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "subscription_id": "sub_01jf9zc5f4e3a8r7m2k4t5n6bc",
    "kind": "pause", "reason": "Recovering from surgery", "agent": "support-bot", "amount": null,
    "limits": ["max_pause_days"], "created_at": "2026-12-07T10:00:00Z"}))]
pub struct OverrideDto {
    pub id: String,
    /// Always `override`.
    pub object: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub kind: OverrideKindDto,
    pub reason: String,
    /// The `Tenure-Agent` of the request, or its key's id (`key_…`) when it named none.
    pub agent: String,
    /// The money granted (credits, amount discounts); `null` otherwise.
    pub amount: Option<MoneyDto>,
    /// The policy limits the agent exceeded (a pause, cancellation or plan change); empty
    /// for goodwill credits and discounts.
    pub limits: Vec<PolicyLimitDto>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl OverrideDto {
    pub fn render(o: &Override) -> Option<Self> {
        Some(Self {
            id: o.id.to_string(),
            object: "override".to_owned(),
            customer_id: o.customer_id.to_string(),
            subscription_id: o.subscription_id.map(|s: SubscriptionId| s.to_string()),
            kind: o
                .kind
                .parse::<tenure_domain::overrides::OverrideKind>()
                .ok()?
                .into(),
            reason: o.reason.clone(),
            agent: o.agent.clone(),
            amount: o.amount.map(Into::into),
            limits: o
                .limits
                .iter()
                .map(|l| tenure_domain::policy::PolicyLimit::parse(l).map(Into::into))
                .collect::<Option<_>>()?,
            created_at: o.created_at,
        })
    }
}

/// What agents granted in a period, per agent, kind and currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "override_metrics", "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z",
    "granted": [{"agent": "support-bot", "kind": "credit", "currency": "EUR", "count": 3, "amount": 1500},
                {"agent": "support-bot", "kind": "pause", "currency": null, "count": 1, "amount": null}]}))]
pub struct OverrideMetricsDto {
    /// Always `override_metrics`.
    pub object: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub to: DateTime<Utc>,
    pub granted: Vec<GrantedDto>,
}

/// The overrides of one agent and kind in one currency (or without money).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantedDto {
    pub agent: String,
    pub kind: OverrideKindDto,
    /// `null` for overrides without money (pauses, cancellations, plan changes, percent
    /// discounts).
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    pub count: i64,
    /// Minor units granted in `currency`, exact; `null` without a currency.
    pub amount: Option<i64>,
}

impl GrantedDto {
    pub fn render(t: &GrantedTotal) -> Option<Self> {
        Some(Self {
            agent: t.agent.clone(),
            kind: t
                .kind
                .parse::<tenure_domain::overrides::OverrideKind>()
                .ok()?
                .into(),
            currency: t.currency.clone(),
            count: t.count,
            amount: t.currency.as_ref().map(|_| t.amount),
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverrideMetricsParams {
    /// Start of the period (RFC 3339; default: 30 days before `to`).
    pub from: Option<String>,
    /// End of the period, exclusive (RFC 3339; default: now).
    pub to: Option<String>,
}
