//! Support tickets and cancellation requests, as merchants and customers read and answer
//! them. Settling a request (withdraw, approve, decline) changes its subscription and
//! lives in [`super::subscriptions`].

use diesel_async::AsyncConnection;
use tenure_domain::ids::{CancellationRequestId, CustomerId, MerchantId, TicketId};
use tenure_domain::support::{
    CancellationRequest, MessageAuthor, SupportTicket, TicketMessage, TicketStatus,
};
use tenure_domain::text;
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::support::{self as repo, RequestFilter, TicketFilter};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::error::{AppError, AppResult};
use crate::subscriptions::{Scope, post_to_ticket};

pub async fn list_requests(
    state: &App,
    merchant: MerchantId,
    filter: RequestFilter,
    page: PageRequest,
) -> AppResult<Page<CancellationRequest>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_requests(&mut conn, merchant, &filter, page).await?)
}

pub async fn get_request(
    state: &App,
    scope: Scope,
    id: CancellationRequestId,
) -> AppResult<CancellationRequest> {
    let mut conn = state.db.conn().await?;
    let request = repo::get_request(&mut conn, scope.merchant, id, false)
        .await
        .map_err(AppError::from_store("cancellation_request"))?;
    if scope.customer.is_some_and(|c| c != request.customer_id) {
        return Err(AppError::NotFound("cancellation_request"));
    }
    Ok(request)
}

/// Tickets, with their messages when `with_messages`.
pub async fn list_tickets(
    state: &App,
    scope: Scope,
    mut filter: TicketFilter,
    page: PageRequest,
    with_messages: bool,
) -> AppResult<(Page<SupportTicket>, Option<Vec<TicketMessage>>)> {
    if scope.customer.is_some() {
        filter.customer = scope.customer;
    }
    let mut conn = state.db.conn().await?;
    let tickets = repo::list_tickets(&mut conn, scope.merchant, &filter, page).await?;
    let messages = if with_messages {
        let ids: Vec<TicketId> = tickets.items.iter().map(|t| t.id).collect();
        Some(repo::messages_of(&mut conn, scope.merchant, &ids).await?)
    } else {
        None
    };
    Ok((tickets, messages))
}

pub async fn get_ticket(
    state: &App,
    scope: Scope,
    id: TicketId,
) -> AppResult<(SupportTicket, Vec<TicketMessage>)> {
    let mut conn = state.db.conn().await?;
    let ticket = repo::get_ticket(&mut conn, scope.merchant, id, false)
        .await
        .map_err(AppError::from_store("support_ticket"))?;
    if scope.customer.is_some_and(|c| c != ticket.customer_id) {
        return Err(AppError::NotFound("support_ticket"));
    }
    let messages = repo::messages_of(&mut conn, scope.merchant, &[id]).await?;
    Ok((ticket, messages))
}

/// A reply on a ticket: by the merchant (optionally moving its status) or by its
/// customer (reopening it if resolved).
pub async fn reply(
    state: &App,
    scope: Scope,
    id: TicketId,
    body: &str,
    status: Option<TicketStatus>,
) -> AppResult<(SupportTicket, Vec<TicketMessage>)> {
    let body = text::clean(
        "body",
        body,
        tenure_domain::support::MAX_MESSAGE_CHARS,
        true,
    )?;
    let author = if scope.customer.is_some() {
        MessageAuthor::Customer
    } else {
        MessageAuthor::Merchant
    };
    let customer: Option<CustomerId> = scope.customer;
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let unlocked = repo::get_ticket(conn, scope.merchant, id, false)
            .await
            .map_err(AppError::from_store("support_ticket"))?;
        if customer.is_some_and(|c| c != unlocked.customer_id) {
            return Err(AppError::NotFound("support_ticket"));
        }
        // An erased customer's tickets take no new messages (a reply would bring personal
        // data back). Erasure locks the customer before their tickets; so does this.
        let owner = customers_repo::get(conn, scope.merchant, unlocked.customer_id, true).await?;
        owner.ensure_not_erased()?;
        let ticket = repo::get_ticket(conn, scope.merchant, id, true)
            .await
            .map_err(AppError::from_store("support_ticket"))?;
        let next = ticket.check_reply(author).map_err(|_| {
            AppError::conflict("ticket_closed", "the ticket is closed; open a new one")
        })?;
        let ticket = post_to_ticket(
            conn,
            scope.merchant,
            id,
            author,
            body,
            Some(status.unwrap_or(next)),
            now,
        )
        .await?;
        let messages = repo::messages_of(conn, scope.merchant, &[id]).await?;
        Ok((ticket, messages))
    })
    .await
}
