//! Agents' overrides: each goodwill credit or discount and each policy limit an agent
//! exceeds for one subscriber (agents are held to the product's policy unless their
//! request overrides it: `Scope::acting`) is recorded with its reason, the agent and the
//! limits exceeded
//! (`agent_overrides`, event `override.created`), shows in the customer's timeline (the
//! event carries the customer) and context, and is summed per agent, kind and currency in
//! `GET /v1/metrics/overrides`.
//!
//! The agent is the request's `Tenure-Agent`, or the key's id (`key_…`) when the request
//! named none: an override is never anonymous, and a backend without agents still sees
//! what it granted.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tenure_domain::ids::{
    ApiKeyId, CustomerId, GenerateId, MerchantId, OverrideId, SubscriptionId,
};
use tenure_domain::money::Money;
use tenure_domain::overrides::{self as domain, OverrideKind};
use tenure_domain::policy::PolicyLimit;
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::overrides::{self as repo, Override};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::credits::{GrantedDto, OverrideDto, OverrideMetricsDto, OverrideRequest};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

/// Who acts in the current merchant request: its `Tenure-Agent`, else its key's id;
/// `None` outside a merchant request (the billing engine, a test below HTTP).
pub fn acting_agent() -> Option<String> {
    crate::audit::current_actor().map(|actor| {
        actor
            .agent
            .unwrap_or_else(|| ApiKeyId::from_uuid(actor.api_key).to_string())
    })
}

/// What an override grants, before it is recorded.
pub struct Grant {
    pub customer: CustomerId,
    pub subscription: Option<SubscriptionId>,
    pub kind: OverrideKind,
    pub amount: Option<Money>,
    /// The policy limits exceeded (none for goodwill credits and discounts).
    pub limits: Vec<PolicyLimit>,
}

/// The reason of an `override` in a request body (422 on `override.reason` when empty).
pub fn reason_of(request: &OverrideRequest) -> AppResult<String> {
    Ok(domain::reason("override.reason", &request.reason)?)
}

/// Records an override in the caller's transaction, with its event.
pub async fn record(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    grant: Grant,
    reason: String,
    now: DateTime<Utc>,
) -> AppResult<Override> {
    let record = Override {
        id: OverrideId::generate(),
        customer_id: grant.customer,
        subscription_id: grant.subscription,
        kind: grant.kind.as_str().to_owned(),
        reason,
        agent: acting_agent().unwrap_or_else(|| "unattributed".to_owned()),
        amount: grant.amount,
        created_at: now,
        limits: grant.limits.iter().map(|l| l.as_str().to_owned()).collect(),
    };
    repo::insert(conn, merchant, &record).await?;
    let view = OverrideDto::render(&record)
        .ok_or_else(|| AppError::internal("an override of an unknown kind"))?;
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type: "override.created",
            resource_type: "override",
            resource_id: record.id.to_string(),
            after: &view,
            before: None,
            at: now,
        },
    )
    .await?;
    Ok(record)
}

/// `GET /v1/customers/{id}/overrides`: the customer's overrides, newest first.
pub async fn of_customer(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> AppResult<Page<OverrideDto>> {
    let mut conn = state.db.conn().await?;
    customers_repo::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    let page = repo::of_customer(&mut conn, merchant, customer, page).await?;
    page.try_map(|o| {
        OverrideDto::render(&o).ok_or_else(|| AppError::internal("an override of an unknown kind"))
    })
}

/// `GET /v1/metrics/overrides`: what agents granted in `[from, to)` (the period rules of
/// `GET /v1/metrics`), per agent, kind and currency.
pub async fn metrics(
    state: &App,
    merchant: MerchantId,
    from: Option<&str>,
    to: Option<&str>,
) -> AppResult<OverrideMetricsDto> {
    let (from, to) = crate::metrics::period(from, to, state.now())?;
    let mut conn = state.db.conn().await?;
    let totals = repo::granted_totals(&mut conn, merchant, from, to).await?;
    Ok(OverrideMetricsDto {
        object: "override_metrics".to_owned(),
        from,
        to,
        granted: totals.iter().filter_map(GrantedDto::render).collect(),
    })
}
