//! Notices ahead of an end: `subscription.access_ending`
//! [`ACCESS_ENDING_NOTICE_DAYS`] days before a subscriber's access ends (a pending
//! cancellation's `access_until`, or what remains of a canceled subscription's access),
//! and `payment_method.expiring` [`EXPIRING_SOON_DAYS`] days before a customer's default
//! card expires.
//!
//! Each notice is sent once: the event and its marker (the access end it announced, or
//! the card's notice time) are written in one transaction, and the claim skips what is
//! marked, so a second round, a rerun or a second worker sends nothing more. A moved
//! end of access (a new cancellation date) is a new end and gets its own notice.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_app::dto::billing::PaymentMethodDto;
use tenure_app::dto::subscriptions::SubscriptionDto;
use tenure_app::events::{EventDraft, record_event};
use tenure_app::{App, AppError, AppResult};
use tenure_domain::billing::dunning::{EXPIRING_SOON_DAYS, expiry_months_ending_within};
use tenure_domain::subscription::{ACCESS_ENDING_NOTICE_DAYS, Actor};
use tenure_domain::test_clock::WorkScope;
use tenure_domain::time::truncate_to_micros;
use tenure_store::repo::notices as repo;
use tenure_store::repo::payment_methods as pm_repo;
use tenure_store::repo::subscriptions as subs_repo;

use crate::tolerate_item_failure;

/// One real-time round at `now` (every customer without a test clock): see
/// [`run_due_notices_in`].
pub async fn run_due_notices(state: &App, now: DateTime<Utc>, batch: usize) -> AppResult<usize> {
    run_due_notices_in(state, WorkScope::RealTime, now, batch).await
}

/// One round at `now` over the notices of `scope`: at most `batch` access-ending and
/// `batch` card-expiry notices. Returns how many items were handled; call it again while
/// that is not zero to drain a backlog.
pub async fn run_due_notices_in(
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let now = truncate_to_micros(now);
    let mut conn = state.db.conn().await?;
    let access = notify_access_ending(&mut conn, scope, now, batch).await?;
    let cards = notify_expiring_cards(&mut conn, scope, now, batch).await?;
    if access + cards > 0 {
        tracing::info!(access, cards, "notice round");
    }
    Ok(access + cards)
}

/// How one item's transaction went.
enum Item {
    /// Nothing (more) to claim.
    Idle,
    Handled,
}

/// Counts an item's outcome into the round: a failed item (its id known once it was
/// claimed) is set aside for the round unless the database is gone.
fn settle(
    result: AppResult<Item>,
    claimed: Option<uuid::Uuid>,
    work: &'static str,
    skip: &mut Vec<uuid::Uuid>,
) -> AppResult<Option<usize>> {
    match result {
        Ok(Item::Idle) => Ok(None),
        Ok(Item::Handled) => Ok(Some(1)),
        Err(err) => {
            let Some(id) = claimed else { return Err(err) };
            tolerate_item_failure(&err, work, &id.to_string())?;
            skip.push(id);
            Ok(Some(0))
        }
    }
}

async fn notify_access_ending(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let horizon = now
        .checked_add_signed(chrono::Duration::days(i64::from(ACCESS_ENDING_NOTICE_DAYS)))
        .ok_or_else(|| AppError::internal("the notice horizon is out of range"))?;
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let mut claimed = None;
        let result = conn
            .transaction(async |conn| {
                let Some((merchant, id)) =
                    repo::claim_access_ending(conn, scope, now, horizon, &skip).await?
                else {
                    return Ok(Item::Idle);
                };
                claimed = Some(id.uuid());
                let stored = subs_repo::get(conn, merchant, id, false).await?;
                if let Some(until) = stored.subscription.access_ending_soon(now) {
                    record_event(
                        conn,
                        merchant,
                        EventDraft {
                            event_type: "subscription.access_ending",
                            resource_type: "subscription",
                            resource_id: id.to_string(),
                            after: &SubscriptionDto::render(&stored, Actor::Merchant),
                            before: None,
                            at: now,
                        },
                    )
                    .await?;
                    tracing::debug!(subscription = %id, %until, "access ending announced");
                }
                // Marked either way: an end the domain does not announce (no access left to
                // lose) is not claimed again every round.
                repo::mark_access_ending_sent(conn, merchant, id, stored.subscription.access_until)
                    .await?;
                Ok(Item::Handled)
            })
            .await;
        match settle(result, claimed, "access ending notice", &mut skip)? {
            None => break,
            Some(n) => done += n,
        }
    }
    Ok(done)
}

async fn notify_expiring_cards(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let months = expiry_months_ending_within(now, EXPIRING_SOON_DAYS);
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let mut claimed = None;
        let result = conn
            .transaction(async |conn| {
                let Some((merchant, customer, id)) =
                    repo::claim_expiring_card(conn, scope, months, &skip).await?
                else {
                    return Ok(Item::Idle);
                };
                claimed = Some(id.uuid());
                let pm = pm_repo::get(conn, merchant, customer, id, false).await?;
                if pm.expiring_notice_due(now) {
                    record_event(
                        conn,
                        merchant,
                        EventDraft {
                            event_type: "payment_method.expiring",
                            resource_type: "payment_method",
                            resource_id: id.to_string(),
                            after: &PaymentMethodDto::render(&pm, now),
                            before: None,
                            at: now,
                        },
                    )
                    .await?;
                }
                repo::mark_expiring_sent(conn, merchant, id, now).await?;
                Ok(Item::Handled)
            })
            .await;
        match settle(result, claimed, "card expiry notice", &mut skip)? {
            None => break,
            Some(n) => done += n,
        }
    }
    Ok(done)
}
