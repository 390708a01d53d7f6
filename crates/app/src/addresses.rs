//! A customer's address book and the shipping address of each subscription
//! (docs/orders.md). The merchant names the customer; in the portal it is the session's.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::address::{Address, MAX_ADDRESSES_PER_CUSTOMER};
use tenure_domain::ids::{AddressId, CustomerId, GenerateId, MerchantId, SubscriptionId};
use tenure_domain::time::next_update_time;
use tenure_store::repo::addresses::{self as repo, StoredAddress};
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::subscriptions as subs_repo;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::orders::{AddressDto, CreateAddress, ShippingAddressDto, UpdateAddress};
use crate::error::{AppError, AppResult, Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::subscriptions::Scope;
use crate::test_clocks::now_for_customer;

fn parse(input: tenure_domain::address::AddressInput<'_>) -> AppResult<Address> {
    let mut v = Validator::default();
    let address = v.check_all(Address::parse(&input));
    v.finish()?;
    checked(address)
}

async fn address_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &StoredAddress,
    before: Option<&StoredAddress>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let before = before.map(AddressDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "address",
            resource_id: after.id.to_string(),
            after: &AddressDto::from(after),
            before: before.as_ref(),
            at,
        },
    )
    .await
}

/// The customer, locked, and not erased: a 404 for one that does not exist.
async fn writable_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<()> {
    customers_repo::get(conn, merchant, customer, true)
        .await
        .map_err(AppError::from_store("customer"))?
        .ensure_not_erased()?;
    Ok(())
}

/// Adds an address to the customer's book (`address.created`): every invalid field is
/// a 422; at most [`MAX_ADDRESSES_PER_CUSTOMER`] (409 `address_limit_reached`).
pub async fn create(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    input: CreateAddress,
) -> AppResult<StoredAddress> {
    let address = parse(input.input())?;
    let mut conn = state.db.conn().await?;
    let now = now_for_customer(&mut conn, merchant, customer, state.now_micros()).await?;
    conn.transaction(async |conn| {
        writable_customer(conn, merchant, customer).await?;
        if repo::count_of_customer(conn, merchant, customer).await? >= MAX_ADDRESSES_PER_CUSTOMER
        {
            return Err(AppError::conflict(
                "address_limit_reached",
                format!(
                    "a customer keeps at most {MAX_ADDRESSES_PER_CUSTOMER} addresses; delete one first"
                ),
            ));
        }
        let stored = StoredAddress {
            id: AddressId::generate(),
            customer_id: customer,
            address,
            created_at: now,
            updated_at: now,
        };
        repo::insert(conn, merchant, &stored).await?;
        address_event(conn, merchant, "address.created", &stored, None, now).await?;
        Ok(stored)
    })
    .await
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> AppResult<Page<StoredAddress>> {
    let mut conn = state.db.conn().await?;
    customers_repo::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    Ok(repo::list(&mut conn, merchant, customer, page).await?)
}

pub async fn get(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    id: AddressId,
) -> AppResult<StoredAddress> {
    let mut conn = state.db.conn().await?;
    repo::get(&mut conn, merchant, customer, id, false)
        .await
        .map_err(AppError::from_store("address"))
}

/// Changes fields of an address (`address.updated`); the result is checked whole.
/// Subscriptions shipping there ship to the new address from their next order on;
/// orders already made keep their snapshot.
pub async fn update(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    id: AddressId,
    input: UpdateAddress,
) -> AppResult<StoredAddress> {
    let mut conn = state.db.conn().await?;
    let now = now_for_customer(&mut conn, merchant, customer, state.now_micros()).await?;
    conn.transaction(async |conn| {
        writable_customer(conn, merchant, customer).await?;
        let before = repo::get(conn, merchant, customer, id, true)
            .await
            .map_err(AppError::from_store("address"))?;
        let address = parse(input.over(&before.address))?;
        let after = StoredAddress {
            address,
            updated_at: next_update_time(before.updated_at, now),
            ..before.clone()
        };
        repo::update(conn, merchant, &after).await?;
        address_event(
            conn,
            merchant,
            "address.updated",
            &after,
            Some(&before),
            after.updated_at,
        )
        .await?;
        Ok(after)
    })
    .await
}

/// Deletes an address (`address.deleted`); refused while a live subscription ships to it
/// (409 `address_in_use`): give the subscription another address first. Ended
/// subscriptions let go of it.
pub async fn delete(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    id: AddressId,
) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    let now = now_for_customer(&mut conn, merchant, customer, state.now_micros()).await?;
    conn.transaction(async |conn| {
        writable_customer(conn, merchant, customer).await?;
        let before = repo::get(conn, merchant, customer, id, true)
            .await
            .map_err(AppError::from_store("address"))?;
        repo::release_from_ended_subscriptions(conn, merchant, id).await?;
        let users = repo::subscriptions_using(conn, merchant, id).await?;
        if let Some(first) = users.first() {
            return Err(AppError::conflict(
                "address_in_use",
                format!(
                    "{} subscription(s) ship to this address ({first}…): give them another \
                     shipping address first",
                    users.len()
                ),
            ));
        }
        repo::delete(conn, merchant, id).await?;
        address_event(conn, merchant, "address.deleted", &before, None, now).await
    })
    .await
}

/// Where the subscription ships (its address may be null).
pub async fn shipping_address(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<ShippingAddressDto> {
    let s = crate::subscriptions::get(state, scope, id).await?;
    let mut conn = state.db.conn().await?;
    let address = repo::shipping_address_of(&mut conn, scope.merchant, s.subscription.id).await?;
    Ok(ShippingAddressDto {
        object: "shipping_address".to_owned(),
        subscription_id: id.to_string(),
        address: address.as_ref().map(AddressDto::from),
    })
}

/// Ships the subscription to `address_id` of its customer's book
/// (`subscription.shipping_address_updated`); an id that names no address of that
/// customer is a 422 on `address_id`. Orders already made without an address take it.
pub async fn set_shipping_address(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
    address_id: &str,
) -> AppResult<ShippingAddressDto> {
    let mut conn = state.db.conn().await?;
    let found = crate::subscriptions::get(state, scope, id).await?;
    let now = now_for_customer(
        &mut conn,
        scope.merchant,
        found.customer_id,
        state.now_micros(),
    )
    .await?;
    conn.transaction(async |conn| {
        let sub = subs_repo::get(conn, scope.merchant, id, true).await?;
        let address = own_address(conn, scope.merchant, sub.customer_id, address_id).await?;
        if scope.held_to_order_cutoff() {
            crate::orders::check_address_cutoff(conn, scope.merchant, &sub, now).await?;
        }
        set_in_tx(conn, scope.merchant, &sub, &address, now).await
    })
    .await
}

/// The customer's address `raw` names, or a 422 on `address_id`; kept from deletion
/// until the caller's transaction ends, so that a delete racing the subscription that is
/// to ship to it is a 409 `address_in_use` (or, if it went first, this is the 422).
pub(crate) async fn own_address(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    raw: &str,
) -> AppResult<StoredAddress> {
    let unknown = || AppError::field("address_id", "names no address of this customer");
    let id: AddressId = raw.parse().map_err(|_| unknown())?;
    repo::get_kept(conn, merchant, customer, id)
        .await
        .map_err(|e| match e {
            tenure_store::StoreError::NotFound => unknown(),
            other => other.into(),
        })
}

/// Sets the locked subscription's shipping address, in the caller's transaction.
pub(crate) async fn set_in_tx(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &subs_repo::StoredSubscription,
    address: &StoredAddress,
    now: DateTime<Utc>,
) -> AppResult<ShippingAddressDto> {
    let before = repo::shipping_address_of(conn, merchant, sub.subscription.id).await?;
    repo::set_shipping_address(conn, merchant, sub.subscription.id, address.id).await?;
    crate::orders::address_waiting_orders(conn, merchant, sub, &address.address, now).await?;
    let view = |a: Option<&StoredAddress>| ShippingAddressDto {
        object: "shipping_address".to_owned(),
        subscription_id: sub.subscription.id.to_string(),
        address: a.map(AddressDto::from),
    };
    let after = view(Some(address));
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type: "subscription.shipping_address_updated",
            resource_type: "subscription",
            resource_id: sub.subscription.id.to_string(),
            after: &after,
            before: Some(&view(before.as_ref())),
            at: now,
        },
    )
    .await?;
    Ok(after)
}
