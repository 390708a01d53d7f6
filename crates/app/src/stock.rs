//! Stock: a merchant's change of a plan's stock, its fan-out to every subscriber it
//! affects in bounded batches, and the subscriber's choice for their next order
//! (docs/orders.md, "Stock").
//!
//! The change is one row (a [`StockNotice`]) written with the plan's new stock in the
//! request's transaction, and answered at once. The engine then calls
//! [`fan_out_batch_in_tx`] on the notice it claimed: each call walks the next subscriptions
//! of the plan by id after the notice's cursor, applies the merchant's action to each,
//! records one `subscription.stock_notice` per subscriber and a recipient row (whose key
//! makes a second notice impossible), and moves the cursor, all in the caller's one
//! transaction. A crash loses a whole batch or nothing; a second worker cannot claim the
//! notice while a batch holds it. So every affected subscriber is notified exactly once.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::DomainError;
use tenure_domain::ids::{GenerateId, MerchantId, PlanId, StockNoticeId, SubscriptionId};
use tenure_domain::stock::{AFFECTED_STATUSES, NextOrderAction, Stock, StockChange};
use tenure_domain::subscription::{Actor, PlanChangeRequest, SubscriptionEvent, Transition};
use tenure_store::StoreError;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::stock::{self as repo, Recipient, StockNotice};
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};

use crate::App;
use crate::dto::catalog::PlanDto;
use crate::dto::common::parse_field_id;
use crate::dto::stock::{
    ChangeStock, StockChoice, SubscriptionStockDto, SubscriptionStockNoticeDto,
};
use crate::error::{AppError, AppResult, Validator};
use crate::events::{EventDraft, record_event, record_events};
use crate::subscriptions::{Scope, persist_system, plan_change_request};
use crate::versions::check_if_match;

/// Subscribers one batch of a fan-out reaches at most, unless the caller says otherwise.
pub const DEFAULT_BATCH: i64 = 500;

/// Changes plan `plan`'s stock: the plan shows it at once (`plan.updated`), and a new
/// notice, answered with its progress, is fanned out by the engine. An unfinished notice
/// of the plan is superseded (its fan-out ends where it is). 422 on every invalid field;
/// 404 for a plan of another merchant.
pub async fn change_stock(
    state: &App,
    merchant: MerchantId,
    plan_id: PlanId,
    input: ChangeStock,
) -> AppResult<StockNotice> {
    let mut v = Validator::default();
    let substitute = match input.substitute_plan_id.as_deref() {
        Some(raw) => v.check(
            parse_field_id::<tenure_domain::ids::PlanTag>(raw, "substitute_plan_id").map_err(
                |_| DomainError::validation("substitute_plan_id", "must be a plan id (plan_…)"),
            ),
        ),
        None => None,
    };
    let mut change = StockChange {
        stock: Stock {
            status: input.status.into(),
            expected_at: input
                .expected_at
                .map(tenure_domain::time::truncate_to_micros),
        },
        next_order: input.next_order.map(Into::into).unwrap_or_default(),
        substitute_plan_id: substitute,
        choices: input.choices.into_iter().map(Into::into).collect(),
    };
    for (field, reason) in change.validate(plan_id) {
        v.fail(field, reason);
    }
    v.finish()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before_stock = repo::lock_plan_stock(conn, merchant, plan_id)
            .await
            .map_err(AppError::from_store("plan"))?;
        let plan = catalog_repo::get_plan(conn, merchant, plan_id).await?;
        if let Some(id) = change.substitute_plan_id {
            let substitute =
                catalog_repo::get_plan(conn, merchant, id)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound => {
                            AppError::field("substitute_plan_id", "no such plan")
                        }
                        other => other.into(),
                    })?;
            if !substitute.active {
                return Err(AppError::field(
                    "substitute_plan_id",
                    "the plan is not active",
                ));
            }
            if substitute.price.currency != plan.price.currency {
                return Err(AppError::field(
                    "substitute_plan_id",
                    format!(
                        "must be billed in {} like the plan it replaces",
                        plan.price.currency.code()
                    ),
                ));
            }
            if substitute.product_id != plan.product_id {
                let product =
                    catalog_repo::get_product(conn, merchant, plan.product_id, false).await?;
                if !product
                    .swappable_product_ids
                    .contains(&substitute.product_id)
                {
                    return Err(AppError::field(
                        "substitute_plan_id",
                        "must be a plan of the same product or of a product it may swap to \
                         (swappable_product_ids)",
                    ));
                }
            }
            if substitute.stock.status.unavailable() {
                return Err(AppError::field(
                    "substitute_plan_id",
                    format!("the plan is {} itself", substitute.stock.status),
                ));
            }
        }
        let notice = StockNotice {
            id: StockNoticeId::generate(),
            plan_id,
            change: change.clone(),
            cursor: None,
            notified: 0,
            created_at: now,
            done_at: None,
            superseded_by: None,
        };
        repo::supersede_unfinished(conn, merchant, plan_id, notice.id, now).await?;
        repo::set_plan_stock(conn, merchant, plan_id, change.stock, now).await?;
        repo::insert_notice(conn, merchant, &notice).await?;
        let after = tenure_domain::catalog::Plan {
            stock: change.stock,
            updated_at: now,
            ..plan.clone()
        };
        let before = tenure_domain::catalog::Plan {
            stock: before_stock,
            ..plan
        };
        record_event(
            conn,
            merchant,
            EventDraft {
                event_type: "plan.updated",
                resource_type: "plan",
                resource_id: plan_id.to_string(),
                after: &PlanDto::from(&after),
                before: Some(&PlanDto::from(&before)),
                at: now,
            },
        )
        .await?;
        Ok(notice)
    })
    .await
}

/// The plan's stock notice `id`, with its progress.
pub async fn get_notice(
    state: &App,
    merchant: MerchantId,
    plan: PlanId,
    id: StockNoticeId,
) -> AppResult<StockNotice> {
    let mut conn = state.db.conn().await?;
    repo::get_notice(&mut conn, merchant, plan, id, false)
        .await
        .map_err(AppError::from_store("stock_notice"))
}

/// The plan's latest stock notices, newest first (at most 20).
pub async fn list_notices(
    state: &App,
    merchant: MerchantId,
    plan: PlanId,
) -> AppResult<Vec<StockNotice>> {
    let mut conn = state.db.conn().await?;
    catalog_repo::get_plan(&mut conn, merchant, plan)
        .await
        .map_err(AppError::from_store("plan"))?;
    Ok(repo::list_notices(&mut conn, merchant, plan, 20).await?)
}

/// A swap's refusal when its substitute plan can no longer be bought (deactivated, or
/// its product archived, after the notice was posted): the subscriber ships anyway.
pub const SUBSTITUTE_UNAVAILABLE: &str = "substitute_plan_unavailable";

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Subscribers notified by this batch.
    pub notified: usize,
    /// Whether the notice has reached everyone (its `done_at` is set).
    pub done: bool,
}

/// One batch of `notice`'s fan-out, in the caller's transaction, which holds the notice's
/// row (claimed `FOR UPDATE SKIP LOCKED`): at most `limit` subscriptions after the
/// cursor, each notified once with the merchant's action applied, and the cursor moved
/// past them. When the walk finds fewer than `limit`, the notice is done.
pub async fn fan_out_batch_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    notice: &StockNotice,
    limit: i64,
    now: DateTime<Utc>,
) -> AppResult<BatchOutcome> {
    let candidates =
        repo::next_affected(conn, merchant, notice.plan_id, notice.cursor, limit).await?;
    let last = candidates.last().map(|(s, _)| *s).or(notice.cursor);
    let done = (candidates.len() as i64) < limit;
    // The plan change a swap makes: the same for every subscriber of the plan (they
    // share its product), so read once, with the first subscriber locked. When the
    // substitute can no longer be bought (deactivated, its product archived since the
    // notice was posted), that is every subscriber's refusal: each is notified with
    // the code and ships anyway, and the fan-out goes on.
    let mut swap: Option<Result<PlanChangeRequest, &'static str>> = None;
    let mut recipients = Vec::with_capacity(candidates.len());
    for (sub, customer) in candidates {
        let mut recipient = Recipient {
            notice_id: notice.id,
            subscription_id: sub,
            customer_id: customer,
            applied: NextOrderAction::ShipAnyway,
            not_applied_code: None,
            skipped_renewal_at: None,
            scheduled_change_id: None,
            choice: None,
            chosen_at: None,
            notified_at: now,
        };
        match notice.change.next_order {
            NextOrderAction::ShipAnyway => {}
            action => {
                let locked = subs_repo::lock_with_policy(conn, merchant, sub).await?;
                let before = &locked.subscription;
                // Moved off the plan, or ended, since the batch read it: not affected.
                if before.subscription.plan.plan_id != notice.plan_id
                    || !AFFECTED_STATUSES.contains(&before.subscription.status)
                {
                    continue;
                }
                let at = locked.clock_time.unwrap_or(now);
                let transition = match action {
                    NextOrderAction::Skip => {
                        before
                            .subscription
                            .skip_renewal(&locked.policy, Actor::Merchant, at)
                    }
                    _ => {
                        let request = match swap {
                            Some(request) => request,
                            None => {
                                let to = notice.change.substitute_plan_id.ok_or_else(|| {
                                    AppError::internal("a swap without its substitute")
                                })?;
                                *swap.insert(
                                    match plan_change_request(conn, merchant, before, to).await {
                                        Ok(request) => Ok(request),
                                        Err(AppError::Validation(_)) => Err(SUBSTITUTE_UNAVAILABLE),
                                        Err(other) => return Err(other),
                                    },
                                )
                            }
                        };
                        match request {
                            Ok(request) => swap_to(before, &request, &locked.policy, at),
                            Err(code) => {
                                recipient.not_applied_code = Some(code.to_owned());
                                recipients.push(recipient);
                                continue;
                            }
                        }
                    }
                };
                match transition {
                    Ok(t) => {
                        note_effects(&mut recipient, &t);
                        recipient.applied = action;
                        persist_system(conn, merchant, before, t, at).await?;
                    }
                    Err(refusal) => recipient.not_applied_code = Some(refusal.code().to_owned()),
                }
            }
        }
        recipients.push(recipient);
    }
    let views: Vec<SubscriptionStockNoticeDto> = recipients
        .iter()
        .map(|r| SubscriptionStockNoticeDto::render(notice, r))
        .collect();
    repo::insert_recipients(conn, merchant, &recipients).await?;
    record_events(
        conn,
        merchant,
        views
            .iter()
            .map(|view| EventDraft {
                event_type: "subscription.stock_notice",
                resource_type: "subscription",
                resource_id: view.subscription_id.clone(),
                after: view,
                before: None,
                at: now,
            })
            .collect(),
    )
    .await?;
    repo::advance(
        conn,
        merchant,
        notice.id,
        last,
        recipients.len() as i64,
        done.then_some(now),
    )
    .await?;
    Ok(BatchOutcome {
        notified: recipients.len(),
        done,
    })
}

fn swap_to(
    before: &StoredSubscription,
    request: &PlanChangeRequest,
    policy: &tenure_domain::policy::PortalPolicy,
    at: DateTime<Utc>,
) -> Result<Transition, DomainError> {
    before
        .subscription
        .swap_at_next_renewal(request, policy, Actor::Merchant, at)
}

/// Remembers what a transition made for the notice (the renewal it skipped, the plan
/// change it scheduled), so that a choice can take exactly that back.
fn note_effects(recipient: &mut Recipient, t: &Transition) {
    for event in &t.events {
        match event {
            SubscriptionEvent::RenewalSkipScheduled { renewal_at, .. } => {
                recipient.skipped_renewal_at = Some(*renewal_at);
            }
            SubscriptionEvent::PlanChangeScheduled { change } => {
                recipient.scheduled_change_id = Some(change.id);
            }
            _ => {}
        }
    }
}

/// A subscription's stock for the portal (or a merchant): its plan's stock and the latest
/// notice of that plan it received.
pub async fn subscription_stock(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<SubscriptionStockDto> {
    let mut conn = state.db.conn().await?;
    let sub = subs_repo::get(&mut conn, scope.merchant, id, false)
        .await
        .map_err(AppError::from_store("subscription"))?;
    if scope.customer.is_some_and(|c| c != sub.customer_id) {
        return Err(AppError::NotFound("subscription"));
    }
    render_stock(&mut conn, scope.merchant, &sub).await
}

async fn render_stock(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
) -> AppResult<SubscriptionStockDto> {
    let plan_id = sub.subscription.plan.plan_id;
    let plan = catalog_repo::get_plan(conn, merchant, plan_id).await?;
    let notice = repo::latest_for_subscription(conn, merchant, sub.subscription.id, plan_id)
        .await?
        .map(|(n, r)| SubscriptionStockNoticeDto::render(&n, &r));
    Ok(SubscriptionStockDto {
        object: "subscription_stock".to_owned(),
        subscription_id: sub.subscription.id.to_string(),
        plan_id: plan_id.to_string(),
        stock: plan.stock.into(),
        notice,
    })
}

/// The subscriber picks `choice` for their next order among the latest notice's
/// `choices`, in one transaction under the subscription's lock (honouring `If-Match`):
/// what the notice did before is taken back (its skip, its scheduled swap) and the choice
/// applied with the merchant's authority, who offered it, under the state rules (409 with
/// the state's code otherwise). 409 `no_stock_notice` without a notice of the current
/// plan, `stock_notice_superseded` when a newer change of the plan replaced it; 422 on
/// `choice` when it is not offered; 409 `order_edit_cutoff_passed` when the choice would
/// change the next order after its edit cutoff. Records `subscription.stock_choice_made`.
pub async fn choose(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    if_match: Option<String>,
    input: StockChoice,
) -> AppResult<(StoredSubscription, SubscriptionStockDto)> {
    let choice: NextOrderAction = input.choice.into();
    let merchant = scope.merchant;
    let real_now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let locked = subs_repo::lock_with_policy(conn, merchant, id)
            .await
            .map_err(AppError::from_store("subscription"))?;
        if scope.customer.is_some_and(|c| c != locked.subscription.customer_id) {
            return Err(AppError::NotFound("subscription"));
        }
        check_if_match(if_match.as_deref(), locked.subscription.updated_at)?;
        let now = locked.clock_time.unwrap_or(real_now);
        let mut stored = locked.subscription.clone();
        let plan_id = stored.subscription.plan.plan_id;
        let Some((notice, mut recipient)) =
            repo::latest_for_subscription(conn, merchant, id, plan_id).await?
        else {
            return Err(AppError::conflict(
                "no_stock_notice",
                "no stock notice of the subscription's plan reached it",
            ));
        };
        let latest = repo::list_notices(conn, merchant, plan_id, 1).await?;
        if notice.superseded_by.is_some() || latest.first().is_some_and(|l| l.id != notice.id) {
            return Err(AppError::conflict(
                "stock_notice_superseded",
                "a newer stock change of the plan replaced this notice",
            ));
        }
        if !notice.change.offers(choice) {
            return Err(AppError::field(
                "choice",
                format!("{choice} is not offered by the stock notice"),
            ));
        }
        let current = recipient.choice.unwrap_or(recipient.applied);
        if current != choice {
            // Take back what the notice did.
            if let Some(at) = recipient.skipped_renewal_at.take() {
                let sub = &stored.subscription;
                if sub.skipped_renewals.last().map(|s| s.renewal_at) == Some(at) {
                    let t = sub.unskip_renewal(Actor::Merchant)?;
                    let restored_next = at == sub.current_period.end;
                    stored = persist_system(conn, merchant, &stored, t, now).await?;
                    if restored_next {
                        tenure_store::repo::renewals::forget_notice_sent(conn, merchant, id, at)
                            .await?;
                    }
                } else if sub.skipped_renewals.iter().any(|s| s.renewal_at == at) {
                    return Err(AppError::conflict(
                        "stock_choice_conflict",
                        "later renewals are skipped after the one the notice skipped: unskip them first",
                    ));
                }
            }
            if let Some(change) = recipient.scheduled_change_id.take()
                && stored
                    .subscription
                    .scheduled_changes
                    .iter()
                    .any(|c| c.id == change)
            {
                let t = stored
                    .subscription
                    .remove_scheduled_change(change, Actor::Merchant)?;
                stored = persist_system(conn, merchant, &stored, t, now).await?;
            }
            // Apply the choice.
            let t = match choice {
                NextOrderAction::ShipAnyway => None,
                NextOrderAction::Skip => Some(stored.subscription.skip_renewal(
                    &locked.policy,
                    Actor::Merchant,
                    now,
                )?),
                NextOrderAction::Swap => {
                    let to = notice
                        .change
                        .substitute_plan_id
                        .ok_or_else(|| AppError::internal("a swap offered without a plan"))?;
                    let request = plan_change_request(conn, merchant, &stored, to).await?;
                    Some(swap_to(&stored, &request, &locked.policy, now)?)
                }
            };
            if let Some(t) = t {
                note_effects(&mut recipient, &t);
                stored = persist_system(conn, merchant, &stored, t, now).await?;
            }
            // The choice is the subscriber's edit of their next order, held to its edit
            // cutoff like any other (docs/orders.md, "The edit cutoff"): refused, it
            // takes nothing back either.
            crate::orders::check_order_cutoff(
                conn,
                merchant,
                &locked.subscription,
                &stored.subscription,
                now,
                scope.acting().held,
            )
            .await?;
        }
        recipient.choice = Some(choice);
        recipient.chosen_at = Some(now);
        repo::update_recipient(conn, merchant, &recipient).await?;
        let view = SubscriptionStockNoticeDto::render(&notice, &recipient);
        record_event(
            conn,
            merchant,
            EventDraft {
                event_type: "subscription.stock_choice_made",
                resource_type: "subscription",
                resource_id: id.to_string(),
                after: &view,
                before: None,
                at: now,
            },
        )
        .await?;
        let stock = render_stock(conn, merchant, &stored).await?;
        Ok((stored, stock))
    })
    .await
}
