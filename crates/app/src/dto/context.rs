//! Customer context, segments, tags, notes and the timeline.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::context::{PaymentHealth, Segment};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::common::MoneyDto;

/// Where a note was taken or a person was involved: `crate::context::NOTE_CHANNELS` as a
/// schema, for the fields that carry one (they stay strings in Rust).
pub struct NoteChannel;

impl PartialSchema for NoteChannel {
    fn schema() -> RefOr<Schema> {
        super::common::string_enum(
            "`portal`, `email`, `chat`, `phone`, `api` or `system`",
            &crate::context::NOTE_CHANNELS,
        )
    }
}

impl ToSchema for NoteChannel {}

/// What a timeline entry is: `event`, `note` or `ticket_message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineEntryKindDto {
    Event,
    Note,
    TicketMessage,
}

/// The `type` of a note on the timeline (`kind` `note`).
pub const NOTE_ENTRY_TYPE: &str = "note";
/// The `type` of a ticket message on the timeline (`kind` `ticket_message`).
pub const TICKET_MESSAGE_ENTRY_TYPE: &str = "ticket.message";

/// A timeline entry's `type`: an event type of the catalogue for an event, else
/// [`NOTE_ENTRY_TYPE`] or [`TICKET_MESSAGE_ENTRY_TYPE`] (the store's timeline query
/// writes the same two).
pub struct TimelineEntryType;

impl PartialSchema for TimelineEntryType {
    fn schema() -> RefOr<Schema> {
        let values: Vec<&str> = tenure_domain::webhooks::EVENT_TYPES
            .iter()
            .copied()
            .chain([NOTE_ENTRY_TYPE, TICKET_MESSAGE_ENTRY_TYPE])
            .collect();
        super::common::string_enum(
            "The event type of an event (`subscription.paused`), `note` for a note or \
`ticket.message` for a ticket message",
            &values,
        )
    }
}

impl ToSchema for TimelineEntryType {}

wire_enum! {
    /// `ok`, `at_risk` or `failing` (docs/customers.md).
    PaymentHealthStatusDto from PaymentHealth { Ok, AtRisk, Failing }
}

wire_enum! {
    /// A customer segment, computed on read (docs/customers.md): `new`, `loyal`, `high_ltv`,
    /// `at_risk`, `paused` or `churned`.
    SegmentDto from Segment { New, Loyal, HighLtv, AtRisk, Paused, Churned }
}

/// An amount per currency: never summed across currencies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrencyAmountDto {
    #[schema(example = "EUR")]
    pub currency: String,
    /// Minor units.
    pub amount: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LifetimeValueDto {
    #[schema(example = "EUR")]
    pub currency: String,
    /// Succeeded payments, minor units.
    pub paid: i64,
    /// Refunds of those payments.
    pub refunded: i64,
    /// `paid - refunded`.
    pub net: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenureDto {
    /// When the customer record was created.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub since: DateTime<Utc>,
    /// Whole days since then.
    pub days: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrentPlanDto {
    pub subscription_id: String,
    // Strings read from the subscription rows, whose values are those of the enums named.
    #[schema(value_type = super::subscriptions::SubscriptionStatusDto)]
    pub status: String,
    pub plan_id: String,
    pub plan_name: String,
    pub price: MoneyDto,
    #[schema(value_type = super::catalog::IntervalDto)]
    pub interval: String,
    pub interval_count: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionSummaryDto {
    pub total: u32,
    /// Counts per status (`trialing`, `active`, `past_due`, `paused`, `canceled`, `unpaid`).
    #[schema(value_type = Object, example = json!({"active": 1, "canceled": 1}))]
    pub by_status: BTreeMap<String, u32>,
    /// Subscriptions that are not canceled, with their plans.
    pub current_plans: Vec<CurrentPlanDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentHealthDto {
    #[schema(value_type = PaymentHealthStatusDto, example = "ok")]
    pub status: PaymentHealth,
    pub failed_payments_30d: u32,
    pub delinquent_subscriptions: u32,
    pub default_card_expired: bool,
    pub default_card_expiring: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketSummaryDto {
    pub id: String,
    pub subject: String,
    #[schema(value_type = super::support::TicketStatusDto)]
    pub status: String,
    #[schema(value_type = super::support::TicketChannelDto)]
    pub channel: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancellationSummaryDto {
    pub id: String,
    pub subscription_id: String,
    pub reason: String,
    #[schema(value_type = super::support::CancellationRequestStatusDto)]
    pub status: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub effective_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LifecycleEntryDto {
    pub event_id: String,
    #[schema(value_type = super::events::EventType, example = "subscription.paused")]
    pub event_type: String,
    pub subscription_id: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupportSummaryDto {
    pub open_tickets: u32,
    /// Open tickets and the five most recent ones, newest first.
    pub tickets: Vec<TicketSummaryDto>,
}

/// Everything a merchant (or an agent on any channel) needs to know about a customer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "customer_context", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "tenure": {"since": "2025-11-25T10:00:00Z", "days": 365},
    "subscriptions": {"total": 1, "by_status": {"active": 1}, "current_plans": []},
    "lifetime_value": [{"currency": "EUR", "paid": 12000, "refunded": 1000, "net": 11000}],
    "mrr": [{"currency": "EUR", "amount": 1000}],
    "payment_health": {"status": "ok", "failed_payments_30d": 0, "delinquent_subscriptions": 0,
        "default_card_expired": false, "default_card_expiring": false},
    "support": {"open_tickets": 0, "tickets": []}, "cancellations": [], "pause_history": [],
    "tags": ["vip"], "segments": ["loyal", "high_ltv"], "channel_preference": "email", "recent_orders": [],
    "last_shipment": {"order_id": "ord_01jf9zb3f4e3a8r7m2k4t5n6bc", "status": "delivered",
        "carrier": "UPS", "tracking_number": "1Z999AA10123456784", "tracking_url": null,
        "shipped_at": "2026-11-20T10:00:00Z", "delivered_at": "2026-11-23T10:00:00Z"},
    "computed_at": "2026-11-25T10:00:00Z"}))]
pub struct CustomerContextDto {
    /// Always `customer_context`.
    pub object: String,
    pub customer_id: String,
    pub tenure: TenureDto,
    pub subscriptions: SubscriptionSummaryDto,
    /// Net paid (payments minus refunds) per currency.
    pub lifetime_value: Vec<LifetimeValueDto>,
    /// Monthly recurring revenue of `active` and `past_due` subscriptions per currency.
    pub mrr: Vec<CurrencyAmountDto>,
    pub payment_health: PaymentHealthDto,
    pub support: SupportSummaryDto,
    /// Cancellation requests, newest first.
    pub cancellations: Vec<CancellationSummaryDto>,
    /// Pause, resume and cancellation events of the customer's subscriptions.
    pub pause_history: Vec<LifecycleEntryDto>,
    #[schema(value_type = Vec<super::customers::Tag>)]
    pub tags: Vec<String>,
    #[schema(value_type = Vec<SegmentDto>, example = json!(["loyal"]))]
    pub segments: Vec<Segment>,
    /// How the customer wants to hear from the merchant.
    pub channel_preference: super::customers::ChannelPreferenceDto,
    /// The customer's credit balances, one per currency it ever had credit in. Billing
    /// data: only for a key with `billing:read` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_balances: Option<Vec<MoneyDto>>,
    /// What agents granted the customer beyond the default policy, the latest
    /// `CONTEXT_OVERRIDES` (10), newest first (all: `GET /v1/customers/{id}/overrides`).
    /// Billing data (credits and discounts granted, with their amounts): only for a key
    /// with `billing:read` (absent otherwise), as the list is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Vec<super::credits::OverrideDto>>,
    /// The latest `CONTEXT_ORDERS` (5) orders, newest first (all: `GET /v1/orders?customer_id=`).
    /// Order data: only for a key with `orders:read` (absent otherwise), as the list is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_orders: Option<Vec<super::orders::OrderDto>>,
    /// The order shipped last and where it is ("your last box landed two days ago"). Order
    /// data: null for a key without `orders:read`.
    pub last_shipment: Option<LastShipmentDto>,
    /// Segments are computed on read, at this time.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tag": "vip"}))]
pub struct AddTag {
    #[schema(value_type = super::customers::Tag)]
    pub tag: String,
}

/// The merchant's segment settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"high_ltv_thresholds": [{"amount": 50000, "currency": "EUR"}, {"amount": 50000, "currency": "USD"}]}))]
pub struct SegmentSettingsDto {
    /// A customer is `high_ltv` when the net lifetime value in one of these currencies
    /// reaches the threshold of that currency. One entry per currency.
    pub high_ltv_thresholds: Vec<MoneyDto>,
}

/// The merchant's segment settings, replaced (a request apart from the response, which
/// also says its `livemode`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"high_ltv_thresholds": [{"amount": 50000, "currency": "EUR"}, {"amount": 50000, "currency": "USD"}]}))]
pub struct PutSegmentSettings {
    /// A customer is `high_ltv` when the net lifetime value in one of these currencies
    /// reaches the threshold of that currency. One entry per currency.
    pub high_ltv_thresholds: Vec<MoneyDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Called about the price increase; offered a pause.", "channel": "phone", "author": "agent:maria"}))]
pub struct CreateNote {
    pub body: String,
    #[schema(value_type = NoteChannel)]
    pub channel: String,
    /// Who wrote it (an agent's name or id).
    pub author: String,
}

/// One entry of a customer's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "note_01jf9zb3f4e3a8r7m2k4t5n6bc", "kind": "note", "type": "note",
    "created_at": "2026-11-25T10:00:00Z", "channel": "phone", "author": "agent:maria", "body": "Called about the price"}))]
pub struct TimelineEntryDto {
    /// `evt_…`, `note_…` or `tmsg_…`.
    pub id: String,
    pub kind: TimelineEntryKindDto,
    /// The event type (`subscription.paused`), `note` or `ticket.message`.
    #[serde(rename = "type")]
    #[schema(value_type = TimelineEntryType)]
    pub entry_type: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Where a person was involved.
    #[schema(value_type = Option<NoteChannel>)]
    pub channel: Option<String>,
    pub author: Option<String>,
    pub body: Option<String>,
    pub ticket_id: Option<String>,
    /// For an event a merchant request caused: the request, its key and agent.
    pub request: Option<super::events::EventRequestDto>,
}

/// The customer's order shipped last, as an agent tells it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastShipmentDto {
    pub order_id: String,
    /// Where the parcel is: shipped or delivered.
    pub status: super::orders::OrderStatusDto,
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub shipped_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl LastShipmentDto {
    /// `None` for an order that has not shipped.
    pub fn of(order: &tenure_domain::order::Order) -> Option<Self> {
        let shipment = order.shipment.as_ref()?;
        Some(Self {
            order_id: order.id.to_string(),
            status: order.status.into(),
            carrier: shipment.carrier.clone(),
            tracking_number: shipment.tracking_number.clone(),
            tracking_url: shipment.tracking_url.clone(),
            shipped_at: order.shipped_at?,
            delivered_at: order.delivered_at,
        })
    }
}
