//! Reading subscriptions: one or a page, as the merchant sees them and as the portal
//! shows them (with the actions the product's policy allows right now).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::ids::{MerchantId, SubscriptionId};
use tenure_domain::subscription::{Actor, available_actions};
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::discounts::{self as discounts_repo, StoredDiscount};
use tenure_store::repo::subscriptions::{self as repo, StoredSubscription, SubscriptionFilter};
use tenure_store::{Page, PageRequest};

use super::scope::{ActionOutcome, Scope, subscription_not_found, visible};
use crate::App;
use crate::dto::subscriptions::{PortalSubscriptionDto, SubscriptionDto, SubscriptionPlanDto};
use crate::error::{AppError, AppResult};
use crate::portal_terms::PortalTerms;

pub async fn get(state: &App, scope: Scope, id: SubscriptionId) -> AppResult<StoredSubscription> {
    let mut conn = state.db.conn().await?;
    let s = visible(&mut conn, scope, id).await?;
    Ok(s)
}

pub async fn list(
    state: &App,
    scope: Scope,
    mut filter: SubscriptionFilter,
    page: PageRequest,
) -> AppResult<Page<StoredSubscription>> {
    if scope.customer.is_some() {
        filter.customer = scope.customer;
    }
    let mut conn = state.db.conn().await?;
    Ok(repo::list(&mut conn, scope.merchant, &filter, page).await?)
}

/// The active discounts of each of `subs` (oldest first), one query for all.
pub(crate) async fn discounts_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> AppResult<HashMap<SubscriptionId, Vec<StoredDiscount>>> {
    let ids: Vec<SubscriptionId> = subs.iter().map(|s| s.subscription.id).collect();
    let mut by_sub: HashMap<SubscriptionId, Vec<StoredDiscount>> = HashMap::new();
    for d in discounts_repo::active_for_subscriptions(conn, merchant, &ids).await? {
        by_sub.entry(d.subscription_id).or_default().push(d);
    }
    Ok(by_sub)
}

/// [`merchant_view`] of an action's subscription, without the discount read when the
/// outcome rules discounts out.
pub async fn merchant_outcome_view(
    state: &App,
    merchant: MerchantId,
    outcome: &ActionOutcome,
) -> AppResult<SubscriptionDto> {
    if outcome.may_have_discounts {
        return merchant_view(state, merchant, &outcome.subscription).await;
    }
    Ok(SubscriptionDto::render(&outcome.subscription, Actor::Merchant).with_discounts(&[]))
}

/// Renders subscriptions for their merchant, with their active discounts.
pub async fn merchant_views(
    state: &App,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> AppResult<Vec<SubscriptionDto>> {
    let mut conn = state.db.conn().await?;
    let discounts = discounts_of(&mut conn, merchant, subs).await?;
    Ok(subs
        .iter()
        .map(|s| {
            SubscriptionDto::render(s, Actor::Merchant).with_discounts(
                discounts
                    .get(&s.subscription.id)
                    .map_or(&[][..], Vec::as_slice),
            )
        })
        .collect())
}

/// [`merchant_views`] of one subscription.
pub async fn merchant_view(
    state: &App,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> AppResult<SubscriptionDto> {
    merchant_views(state, merchant, std::slice::from_ref(s))
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("no view rendered"))
}

/// Renders subscriptions for the portal, with the actions the product's policy allows
/// the customer now and their active discounts.
pub async fn portal_views(
    state: &App,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> AppResult<Vec<PortalSubscriptionDto>> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    let discounts = discounts_of(&mut conn, merchant, subs).await?;
    let mut views = Vec::with_capacity(subs.len());
    for s in subs {
        let terms = crate::portal_terms::terms_of(state, &conn, merchant, s.product_id).await?;
        let own = discounts
            .get(&s.subscription.id)
            .map_or(&[][..], Vec::as_slice);
        let plan = plan_of(&conn, merchant, &terms, s).await?;
        views.push(portal_dto(s, &terms, plan, own, now));
    }
    Ok(views)
}

/// One of the signed-in customer's subscriptions as the portal shows it: one statement
/// (the subscription, and whether it has discounts), its product's terms from
/// [`portal_terms`](crate::portal_terms), and a second statement only when there are
/// discounts to list. The hot read of the portal; renders like [`portal_views`].
pub async fn portal_get(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<(StoredSubscription, PortalSubscriptionDto)> {
    let now = state.now_micros();
    let conn = state.db.conn().await?;
    let read = repo::get_for_portal(&conn, scope.merchant, id)
        .await
        .map_err(subscription_not_found)?;
    let s = read.subscription;
    if !scope.sees(&s) {
        return Err(AppError::NotFound("subscription"));
    }
    let terms = crate::portal_terms::terms_of(state, &conn, scope.merchant, s.product_id).await?;
    let discounts = if read.has_discounts {
        discounts_repo::active_for_subscription(&conn, scope.merchant, id).await?
    } else {
        Vec::new()
    };
    let plan = plan_of(&conn, scope.merchant, &terms, &s).await?;
    let view = portal_dto(&s, &terms, plan, &discounts, now);
    Ok((s, view))
}

/// One subscription as the portal shows it, from a subscription already read (after a
/// change): its product's terms and its discounts, in one round trip.
pub async fn portal_view(
    state: &App,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> AppResult<PortalSubscriptionDto> {
    portal_view_reading(state, merchant, s, true).await
}

/// [`portal_view`] of an action's subscription, without the discount read when the
/// outcome rules discounts out.
pub async fn portal_outcome_view(
    state: &App,
    merchant: MerchantId,
    outcome: &ActionOutcome,
) -> AppResult<PortalSubscriptionDto> {
    portal_view_reading(
        state,
        merchant,
        &outcome.subscription,
        outcome.may_have_discounts,
    )
    .await
}

pub(crate) async fn portal_view_reading(
    state: &App,
    merchant: MerchantId,
    s: &StoredSubscription,
    read_discounts: bool,
) -> AppResult<PortalSubscriptionDto> {
    let now = state.now_micros();
    let conn = state.db.conn().await?;
    let (terms, discounts) = futures_util::future::try_join(
        crate::portal_terms::terms_of(state, &conn, merchant, s.product_id),
        async {
            if !read_discounts {
                return Ok(Vec::new());
            }
            discounts_repo::active_for_subscription(&conn, merchant, s.subscription.id)
                .await
                .map_err(AppError::from)
        },
    )
    .await?;
    let plan = plan_of(&conn, merchant, &terms, s).await?;
    Ok(portal_dto(s, &terms, plan, &discounts, now))
}

/// The plan the subscription is on, retired or not: from the product's cached terms (no
/// statement), else read (a product with more plans than the terms keep).
async fn plan_of(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    terms: &PortalTerms,
    s: &StoredSubscription,
) -> AppResult<SubscriptionPlanDto> {
    let id = s.subscription.plan.plan_id;
    if let Some(plan) = terms.plan(id) {
        return Ok(SubscriptionPlanDto::render(
            plan,
            &terms.product_name,
            terms.shippable,
        ));
    }
    let plan = catalog_repo::get_plan_shared(conn, merchant, id).await?;
    Ok(SubscriptionPlanDto::render(
        &plan,
        &terms.product_name,
        terms.shippable,
    ))
}

/// A subscription as its customer sees it: with its discounts and the actions its
/// product's terms allow now.
pub(crate) fn portal_dto(
    s: &StoredSubscription,
    terms: &PortalTerms,
    plan: SubscriptionPlanDto,
    discounts: &[StoredDiscount],
    now: DateTime<Utc>,
) -> PortalSubscriptionDto {
    PortalSubscriptionDto {
        subscription: SubscriptionDto::render(s, Actor::Customer).with_discounts(discounts),
        plan,
        available_actions: available_actions(
            &s.subscription,
            &terms.policy,
            &terms.plans,
            terms.quantity_limits,
            now,
        )
        .into(),
    }
}
