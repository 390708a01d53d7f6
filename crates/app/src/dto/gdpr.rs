//! GDPR: the export document of one customer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::billing::{InvoiceDto, PaymentMethodDto};
use super::customers::CustomerDto;
use super::subscriptions::SubscriptionDto;
use super::support::{CancellationRequestDto, SupportTicketDto};
use crate::dto::events::EventDto;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "note_01jf9zd0f4e3a8r7m2k4t5n6bd", "body": "Asked about annual billing.",
    "channel": "phone", "author": "Bob (support)", "created_at": "2026-11-25T10:00:00Z"}))]
pub struct ExportNoteDto {
    pub id: String,
    pub body: String,
    #[schema(value_type = super::context::NoteChannel)]
    pub channel: String,
    pub author: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "rout_01jf9zd0f4e3a8r7m2k4t5n6bd", "offer_id": "roff_01jf9zd0f4e3a8r7m2k4t5n6bc",
    "offer_name": "Half off", "offer_kind": {"type": "discount_percent", "percent": 50, "cycles": 3},
    "subscription_id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "cancellation_request_id": null,
    "reason": "too_expensive", "outcome": "declined", "created_at": "2026-11-25T10:00:00Z",
    "decided_at": "2026-11-25T10:01:00Z"}))]
pub struct ExportOfferOutcomeDto {
    pub id: String,
    pub offer_id: String,
    /// The offer's name, if the offer still exists.
    pub offer_name: Option<String>,
    /// The offer's kind (discount, pause instead, …) as configured.
    #[schema(value_type = Option<Object>)]
    pub offer_kind: Option<serde_json::Value>,
    pub subscription_id: String,
    pub cancellation_request_id: Option<String>,
    pub reason: Option<String>,
    #[schema(value_type = super::retention::OutcomeStatusDto)]
    pub outcome: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// Everything Tenure holds about one customer, in one document (GDPR Art. 15 and 20).
/// Payment methods carry brand, last4 and expiry only: Tenure never holds card numbers
/// and does not export gateway tokens.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CustomerExportDto {
    /// Always `customer_export`.
    pub object: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub exported_at: DateTime<Utc>,
    pub customer: CustomerDto,
    pub notes: Vec<ExportNoteDto>,
    pub subscriptions: Vec<SubscriptionDto>,
    pub cancellation_requests: Vec<CancellationRequestDto>,
    /// Support tickets with their messages.
    pub support_tickets: Vec<SupportTicketDto>,
    /// Every payment method, detached ones included.
    pub payment_methods: Vec<PaymentMethodDto>,
    /// Invoices with their lines, payment attempts and refunds.
    pub invoices: Vec<InvoiceDto>,
    /// Events about the customer and its resources, oldest first.
    pub events: Vec<EventDto>,
    pub retention_offer_outcomes: Vec<ExportOfferOutcomeDto>,
}
