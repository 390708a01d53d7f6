//! Cancellation requests and support tickets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::support::{
    CancellationRequest, CancellationRequestStatus, MessageAuthor, SupportTicket, TicketChannel,
    TicketMessage, TicketStatus,
};
use utoipa::{IntoParams, ToSchema};

use super::subscriptions::{CancellationReasonDto, PortalSubscriptionDto};

wire_enum! {
    /// `merchant`, `customer` or `system`.
    MessageAuthorDto from MessageAuthor { Merchant, Customer, System }
}

wire_enum! {
    /// How the ticket was opened: `portal` or `api`.
    TicketChannelDto from TicketChannel { Portal, Api }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CancellationRequestStatusDto {
    Pending,
    Withdrawn,
    Approved,
    Declined,
    Completed,
}

impl From<CancellationRequestStatus> for CancellationRequestStatusDto {
    fn from(s: CancellationRequestStatus) -> Self {
        match s {
            CancellationRequestStatus::Pending => Self::Pending,
            CancellationRequestStatus::Withdrawn => Self::Withdrawn,
            CancellationRequestStatus::Approved => Self::Approved,
            CancellationRequestStatus::Declined => Self::Declined,
            CancellationRequestStatus::Completed => Self::Completed,
        }
    }
}

impl From<CancellationRequestStatusDto> for CancellationRequestStatus {
    fn from(s: CancellationRequestStatusDto) -> Self {
        match s {
            CancellationRequestStatusDto::Pending => Self::Pending,
            CancellationRequestStatusDto::Withdrawn => Self::Withdrawn,
            CancellationRequestStatusDto::Approved => Self::Approved,
            CancellationRequestStatusDto::Declined => Self::Declined,
            CancellationRequestStatusDto::Completed => Self::Completed,
        }
    }
}

/// A customer's request to cancel (request mode).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "creq_01jf9zd0f4e3a8r7m2k4t5n6bc", "object": "cancellation_request",
    "subscription_id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "ticket_id": "tkt_01jf9zd0f4e3a8r7m2k4t5n6bd", "reason": "too_expensive", "message": "Going on a budget.",
    "status": "pending", "effective_at": "2026-12-25T10:00:00Z", "decline_message": null,
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct CancellationRequestDto {
    pub id: String,
    /// Always `cancellation_request`.
    pub object: String,
    pub subscription_id: String,
    pub customer_id: String,
    /// The support ticket opened with the request.
    pub ticket_id: String,
    pub reason: CancellationReasonDto,
    pub message: Option<String>,
    pub status: CancellationRequestStatusDto,
    /// When the subscription ends unless the request is withdrawn, approved early or
    /// declined: the later of now + notice period and the end of the current period (or
    /// now + notice only, per the product's `notice_rule`).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub effective_at: DateTime<Utc>,
    /// The merchant's message when declined.
    pub decline_message: Option<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&CancellationRequest> for CancellationRequestDto {
    fn from(r: &CancellationRequest) -> Self {
        Self {
            id: r.id.to_string(),
            object: "cancellation_request".to_owned(),
            subscription_id: r.subscription_id.to_string(),
            customer_id: r.customer_id.to_string(),
            ticket_id: r.ticket_id.to_string(),
            reason: r.reason.into(),
            message: r.message.clone(),
            status: r.status.into(),
            effective_at: r.effective_at,
            decline_message: r.decline_message.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancellationRequestFilterParams {
    pub status: Option<CancellationRequestStatusDto>,
    /// Only requests of this customer (cus_…).
    pub customer_id: Option<String>,
    /// Only requests to cancel this subscription (sub_…).
    pub subscription_id: Option<String>,
}

/// Declines a pending request; the subscription continues and the customer sees the
/// message on the ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "Your contract runs until March; we cannot end it earlier."}))]
pub struct DeclineCancellationRequest {
    pub message: String,
}

/// The answer to a portal cancellation: the subscription and, in request mode, the
/// cancellation request with its `effective_at`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalCancelResult {
    pub subscription: PortalSubscriptionDto,
    pub cancellation_request: Option<CancellationRequestDto>,
    /// When the cancellation opened a request: the retention offers the customer is
    /// eligible for, best first (possibly none). Accept one with
    /// `POST /v1/portal/cancellation_requests/{id}/retention_offers/{offer_id}/accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_offers: Option<Vec<crate::dto::retention::PresentedOfferDto>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatusDto {
    Open,
    Resolved,
    Closed,
}

impl From<TicketStatus> for TicketStatusDto {
    fn from(s: TicketStatus) -> Self {
        match s {
            TicketStatus::Open => Self::Open,
            TicketStatus::Resolved => Self::Resolved,
            TicketStatus::Closed => Self::Closed,
        }
    }
}

impl From<TicketStatusDto> for TicketStatus {
    fn from(s: TicketStatusDto) -> Self {
        match s {
            TicketStatusDto::Open => Self::Open,
            TicketStatusDto::Resolved => Self::Resolved,
            TicketStatusDto::Closed => Self::Closed,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketMessageDto {
    pub id: String,
    pub author: MessageAuthorDto,
    pub body: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<&TicketMessage> for TicketMessageDto {
    fn from(m: &TicketMessage) -> Self {
        Self {
            id: m.id.to_string(),
            author: m.author.into(),
            body: m.body.clone(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "tkt_01jf9zd0f4e3a8r7m2k4t5n6bd", "object": "support_ticket",
    "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "subscription_id": "sub_01jf9zc0f4e3a8r7m2k4t5n6bc",
    "subject": "Cancellation request: too_expensive", "status": "open", "channel": "portal",
    "messages": [{"id": "tmsg_01jf9zd0f4e3a8r7m2k4t5n6be", "author": "customer", "body": "Going on a budget.",
                  "created_at": "2026-11-25T10:00:00Z"}],
    "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct SupportTicketDto {
    pub id: String,
    /// Always `support_ticket`.
    pub object: String,
    pub customer_id: String,
    pub subscription_id: Option<String>,
    pub subject: String,
    pub status: TicketStatusDto,
    pub channel: TicketChannelDto,
    /// The conversation, oldest first (omitted in merchant lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TicketMessageDto>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl SupportTicketDto {
    pub fn render(t: &SupportTicket, messages: Option<&[TicketMessage]>) -> Self {
        Self {
            id: t.id.to_string(),
            object: "support_ticket".to_owned(),
            customer_id: t.customer_id.to_string(),
            subscription_id: t.subscription_id.map(|s| s.to_string()),
            subject: t.subject.clone(),
            status: t.status.into(),
            channel: t.channel.into(),
            messages: messages.map(|ms| {
                ms.iter()
                    .filter(|m| m.ticket_id == t.id)
                    .map(TicketMessageDto::from)
                    .collect()
            }),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketFilterParams {
    pub status: Option<TicketStatusDto>,
    /// Only tickets of this customer (cus_…).
    pub customer_id: Option<String>,
}

/// A merchant's reply; `status` optionally moves the ticket (e.g. to `resolved`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Thanks, we've applied a discount instead.", "status": "resolved"}))]
pub struct CreateTicketReply {
    pub body: String,
    pub status: Option<TicketStatusDto>,
}

/// A customer's reply; it reopens a resolved ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"body": "Thanks, that works for me."}))]
pub struct CreatePortalTicketReply {
    pub body: String,
}
