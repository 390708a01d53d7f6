//! Cancellation requests and their support tickets: opened when a customer asks to
//! cancel under a `request` policy, settled when the subscription changes, with their
//! events and the messages posted to the ticket.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::ids::{
    CancellationRequestId, GenerateId, MerchantId, TicketId, TicketMessageId,
};
use tenure_domain::support::{
    CancellationRequest, CancellationRequestStatus, MessageAuthor, SupportTicket, TicketChannel,
    TicketMessage, TicketStatus,
};
use tenure_domain::time::next_update_time;
use tenure_store::repo::subscriptions::StoredSubscription;
use tenure_store::repo::support as support_repo;

use crate::dto::support::{CancellationRequestDto, SupportTicketDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

/// What happens to a pending request when its cancellation is withdrawn.
#[derive(Debug, Clone)]
pub(crate) enum WithdrawnAs {
    Withdrawn,
    Declined(Option<String>),
}

pub(crate) async fn request_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    request: &CancellationRequest,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "cancellation_request",
            resource_id: request.id.to_string(),
            after: &CancellationRequestDto::from(request),
            before: None,
            at: request.updated_at,
        },
    )
    .await
}

pub(crate) async fn ticket_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    ticket: &SupportTicket,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "support_ticket",
            resource_id: ticket.id.to_string(),
            after: &SupportTicketDto::render(ticket, None),
            before: None,
            at: ticket.updated_at,
        },
    )
    .await
}

/// Adds a message to a ticket and moves it to `status` (if given), with its event.
pub async fn post_to_ticket(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ticket_id: TicketId,
    author: MessageAuthor,
    body: String,
    status: Option<TicketStatus>,
    now: DateTime<Utc>,
) -> AppResult<SupportTicket> {
    let mut ticket = support_repo::get_ticket(conn, merchant, ticket_id, true)
        .await
        .map_err(AppError::from_store("support_ticket"))?;
    support_repo::insert_message(
        conn,
        merchant,
        &TicketMessage {
            id: TicketMessageId::generate(),
            ticket_id,
            author,
            body,
            created_at: now,
        },
    )
    .await?;
    if let Some(status) = status {
        ticket.status = status;
    }
    ticket.updated_at = next_update_time(ticket.updated_at, now);
    support_repo::update_ticket(conn, merchant, &ticket).await?;
    ticket_event(conn, merchant, "support_ticket.updated", &ticket).await?;
    Ok(ticket)
}

/// Moves a cancellation request to `status` and resolves its ticket with `note`.
pub(crate) async fn settle_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CancellationRequestId,
    status: CancellationRequestStatus,
    note: (MessageAuthor, String),
    now: DateTime<Utc>,
) -> AppResult<CancellationRequest> {
    let mut request = support_repo::get_request(conn, merchant, id, true).await?;
    if request.status != CancellationRequestStatus::Pending {
        return Ok(request);
    }
    request.status = status;
    request.updated_at = next_update_time(request.updated_at, now);
    support_repo::update_request(conn, merchant, &request).await?;
    request_event(
        conn,
        merchant,
        &format!("cancellation_request.{}", status.as_str()),
        &request,
    )
    .await?;
    post_to_ticket(
        conn,
        merchant,
        request.ticket_id,
        note.0,
        note.1,
        Some(TicketStatus::Resolved),
        now,
    )
    .await?;
    Ok(request)
}

/// A customer's request-mode cancellation: the request and its support ticket.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    id: CancellationRequestId,
    reason: tenure_domain::subscription::CancellationReason,
    message: Option<String>,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<CancellationRequest> {
    let ticket = SupportTicket {
        id: TicketId::generate(),
        customer_id: sub.customer_id,
        subscription_id: Some(sub.subscription.id),
        subject: format!("Cancellation request: {reason}"),
        status: TicketStatus::Open,
        channel: TicketChannel::Portal,
        created_at: now,
        updated_at: now,
    };
    support_repo::insert_ticket(conn, merchant, &ticket).await?;
    let mut messages = vec![TicketMessage {
        id: TicketMessageId::generate(),
        ticket_id: ticket.id,
        author: MessageAuthor::System,
        body: format!(
            "The customer asked to cancel (reason: {reason}). Unless withdrawn, approved early \
             or declined, the subscription ends on {effective_at}."
        ),
        created_at: now,
    }];
    if let Some(body) = &message {
        messages.push(TicketMessage {
            id: TicketMessageId::generate(),
            ticket_id: ticket.id,
            author: MessageAuthor::Customer,
            body: body.clone(),
            created_at: now,
        });
    }
    for m in &messages {
        support_repo::insert_message(conn, merchant, m).await?;
    }
    ticket_event(conn, merchant, "support_ticket.created", &ticket).await?;
    let request = CancellationRequest {
        id,
        subscription_id: sub.subscription.id,
        customer_id: sub.customer_id,
        ticket_id: ticket.id,
        reason,
        message,
        status: CancellationRequestStatus::Pending,
        effective_at,
        decline_message: None,
        created_at: now,
        updated_at: now,
    };
    support_repo::insert_request(conn, merchant, &request).await?;
    request_event(conn, merchant, "cancellation_request.created", &request).await?;
    Ok(request)
}
