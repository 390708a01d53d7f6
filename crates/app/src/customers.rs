//! Customers.

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::customer::{self, ChannelPreference, Customer};
use tenure_domain::ids::{CustomerId, GenerateId, MerchantId};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::customers as repo;
use tenure_store::{Page, PageRequest, StoreError};

use crate::App;
use crate::dto::customers::{
    CreateCustomer, CustomerDto, PortalMeDto, UpdateCustomer, UpdatePortalMe,
};
use crate::error::{AppError, AppResult};
use crate::error::{Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::versions::check_if_match;

const NAME_MAX: usize = 200;

fn duplicate_external_id(err: StoreError) -> AppError {
    match err {
        StoreError::Conflict { constraint } if constraint == repo::EXTERNAL_ID_UNIQUE => {
            AppError::conflict(
                "external_id_taken",
                "a customer with this external_id already exists",
            )
        }
        other => other.into(),
    }
}

async fn customer_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    customer: &Customer,
    before: Option<&Customer>,
) -> AppResult<()> {
    let before = before.map(CustomerDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "customer",
            resource_id: customer.id.to_string(),
            after: &CustomerDto::from(customer),
            before: before.as_ref(),
            at: customer.updated_at,
        },
    )
    .await
}

pub async fn create(
    state: &App,
    merchant: MerchantId,
    input: CreateCustomer,
) -> AppResult<Customer> {
    let mut v = Validator::default();
    let external_id = v.check(customer::validate_external_id(&input.external_id));
    let email = v.check(input.email.as_deref().map(text::email).transpose());
    let name = v.check(text::clean_opt(
        "name",
        input.name.as_deref(),
        NAME_MAX,
        false,
    ));
    let locale = v.check(
        input
            .locale
            .as_deref()
            .map(customer::validate_locale)
            .transpose(),
    );
    let metadata = input.metadata.unwrap_or_default();
    v.check(customer::validate_metadata(&metadata));
    let tags = v.check(customer::normalize_tags(&input.tags.unwrap_or_default()));
    let channel_preference = v.check(
        input
            .channel_preference
            .as_deref()
            .map(ChannelPreference::parse)
            .transpose(),
    );
    v.finish()?;
    let mut conn = state.db.conn().await?;
    // A customer on a test clock is created at the clock's time, and stays on it.
    let clock = match input.test_clock.as_deref() {
        Some(raw) => {
            Some(crate::test_clocks::clock_for_new_customer(&mut conn, merchant, raw).await?)
        }
        None => None,
    };
    let now = clock
        .as_ref()
        .map_or_else(|| state.now(), |c| c.frozen_time);
    let customer = Customer {
        id: CustomerId::generate(),
        external_id: checked(external_id)?,
        email: checked(email)?,
        name: checked(name)?,
        locale: checked(locale)?,
        metadata,
        tags: checked(tags)?,
        created_at: now,
        updated_at: now,
        erased_at: None,
        test_clock_id: clock.map(|c| c.id),
        channel_preference: checked(channel_preference)?.unwrap_or_default(),
    };
    conn.transaction(async |conn| {
        repo::insert(conn, merchant, &customer)
            .await
            .map_err(duplicate_external_id)?;
        customer_event(conn, merchant, "customer.created", &customer, None).await
    })
    .await?;
    Ok(customer)
}

pub async fn get(state: &App, merchant: MerchantId, id: CustomerId) -> AppResult<Customer> {
    let mut conn = state.db.conn().await?;
    repo::get(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("customer"))
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    filter: repo::CustomerFilter,
    page: PageRequest,
) -> AppResult<Page<Customer>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list(&mut conn, merchant, &filter, page).await?)
}

pub async fn update(
    state: &App,
    merchant: MerchantId,
    id: CustomerId,
    input: UpdateCustomer,
    if_match: Option<String>,
) -> AppResult<Customer> {
    let mut v = Validator::default();
    let email = input
        .email
        .map(|e| v.check(e.as_deref().map(text::email).transpose()));
    let name = input
        .name
        .map(|n| v.check(text::clean_opt("name", n.as_deref(), NAME_MAX, false)));
    let locale = input
        .locale
        .map(|l| v.check(l.as_deref().map(customer::validate_locale).transpose()));
    if let Some(metadata) = &input.metadata {
        v.check(customer::validate_metadata(metadata));
    }
    let tags = input.tags.map(|t| v.check(customer::normalize_tags(&t)));
    let channel_preference = input
        .channel_preference
        .as_deref()
        .map(|c| v.check(ChannelPreference::parse(c)));
    v.finish()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("customer"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        before.ensure_not_erased()?;
        let mut after = before.clone();
        if let Some(email) = email {
            after.email = checked(email)?;
        }
        if let Some(name) = name {
            after.name = checked(name)?;
        }
        if let Some(locale) = locale {
            after.locale = checked(locale)?;
        }
        if let Some(metadata) = input.metadata {
            after.metadata = metadata;
        }
        if let Some(tags) = tags {
            after.tags = checked(tags)?;
        }
        if let Some(channel) = channel_preference {
            after.channel_preference = checked(channel)?;
        }
        save_update(conn, merchant, &before, after, now).await
    })
    .await
}

/// Saves `after` over `before` with its event (`customer.updated`), unless nothing
/// changed.
async fn save_update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &Customer,
    mut after: Customer,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<Customer> {
    if after == *before {
        return Ok(after);
    }
    after.updated_at = next_update_time(before.updated_at, now);
    repo::update(conn, merchant, &after).await?;
    customer_event(conn, merchant, "customer.updated", &after, Some(before)).await?;
    Ok(after)
}

/// The signed-in subscriber changes what the portal lets them change about themselves
/// (their channel preference), with the same event as a merchant's update; answers what
/// `GET /v1/portal/me` shows.
pub async fn update_portal_me(
    state: &App,
    merchant: MerchantId,
    id: CustomerId,
    input: UpdatePortalMe,
) -> AppResult<PortalMeDto> {
    update_portal_customer(state, merchant, id, input).await?;
    let (customer, tenure, subscriptions) =
        crate::context::portal_summary(state, merchant, id).await?;
    let mut me = PortalMeDto::from(&customer);
    me.tenure_days = tenure.days;
    me.subscriptions = Some(subscriptions);
    Ok(me)
}

async fn update_portal_customer(
    state: &App,
    merchant: MerchantId,
    id: CustomerId,
    input: UpdatePortalMe,
) -> AppResult<Customer> {
    let mut v = Validator::default();
    let channel_preference = input
        .channel_preference
        .as_deref()
        .map(|c| v.check(ChannelPreference::parse(c)));
    v.finish()?;
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_customer(&mut conn, merchant, id, state.now_micros()).await?;
    conn.transaction(async |conn| {
        let before = repo::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("customer"))?;
        before.ensure_not_erased()?;
        let mut after = before.clone();
        if let Some(channel) = channel_preference {
            after.channel_preference = checked(channel)?;
        }
        save_update(conn, merchant, &before, after, now).await
    })
    .await
}
