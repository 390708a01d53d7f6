//! Customers' address books and the shipping address of each subscription (migration
//! 2026-12-08-110001_addresses_and_orders).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::address::Address;
use tenure_domain::ids::{AddressId, CustomerId, MerchantId, SubscriptionId};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{customer_addresses, subscriptions};

/// An entry of a customer's address book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAddress {
    pub id: AddressId,
    pub customer_id: CustomerId,
    pub address: Address,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = customer_addresses)]
struct AddressRow {
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    state: Option<String>,
    postal_code: Option<String>,
    country: String,
    phone: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AddressRow {
    fn into_domain(self) -> StoredAddress {
        StoredAddress {
            id: AddressId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            address: Address {
                name: self.name,
                line1: self.line1,
                line2: self.line2,
                city: self.city,
                state: self.state,
                postal_code: self.postal_code,
                country: self.country,
                phone: self.phone,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    a: &StoredAddress,
) -> StoreResult<()> {
    let ad = &a.address;
    diesel::insert_into(customer_addresses::table)
        .values((
            customer_addresses::merchant_id.eq(merchant.uuid()),
            customer_addresses::id.eq(a.id.uuid()),
            customer_addresses::customer_id.eq(a.customer_id.uuid()),
            customer_addresses::name.eq(&ad.name),
            customer_addresses::line1.eq(&ad.line1),
            customer_addresses::line2.eq(&ad.line2),
            customer_addresses::city.eq(&ad.city),
            customer_addresses::state.eq(&ad.state),
            customer_addresses::postal_code.eq(&ad.postal_code),
            customer_addresses::country.eq(&ad.country),
            customer_addresses::phone.eq(&ad.phone),
            customer_addresses::created_at.eq(a.created_at),
            customer_addresses::updated_at.eq(a.updated_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    a: &StoredAddress,
) -> StoreResult<()> {
    let ad = &a.address;
    let n = diesel::update(customer_addresses::table.find((merchant.uuid(), a.id.uuid())))
        .set((
            customer_addresses::name.eq(&ad.name),
            customer_addresses::line1.eq(&ad.line1),
            customer_addresses::line2.eq(&ad.line2),
            customer_addresses::city.eq(&ad.city),
            customer_addresses::state.eq(&ad.state),
            customer_addresses::postal_code.eq(&ad.postal_code),
            customer_addresses::country.eq(&ad.country),
            customer_addresses::phone.eq(&ad.phone),
            customer_addresses::updated_at.eq(a.updated_at),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One address of `customer`.
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    id: AddressId,
    for_update: bool,
) -> StoreResult<StoredAddress> {
    let query = customer_addresses::table
        .find((merchant.uuid(), id.uuid()))
        .filter(customer_addresses::customer_id.eq(customer.uuid()))
        .select(AddressRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    Ok(row.into_domain())
}

/// One address of `customer`, kept from deletion (`FOR KEY SHARE`) until the caller's
/// transaction ends: what a subscription about to ship to it takes first. A concurrent
/// delete then either waits and finds the subscription using it, or went first and the
/// address is not found here, instead of the subscription's foreign key failing.
pub async fn get_kept(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    id: AddressId,
) -> StoreResult<StoredAddress> {
    let row = customer_addresses::table
        .find((merchant.uuid(), id.uuid()))
        .filter(customer_addresses::customer_id.eq(customer.uuid()))
        .select(AddressRow::as_select())
        .for_key_share()
        .get_result(conn)
        .await?;
    Ok(row.into_domain())
}

/// The customer's addresses, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> StoreResult<Page<StoredAddress>> {
    let mut query = customer_addresses::table
        .filter(customer_addresses::merchant_id.eq(merchant.uuid()))
        .filter(customer_addresses::customer_id.eq(customer.uuid()))
        .select(AddressRow::as_select())
        .order(customer_addresses::id.desc())
        .into_boxed();
    if let Some(after) = page.starting_after {
        query = query.filter(customer_addresses::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(|r| Ok(r.into_domain()))
}

pub async fn count_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<usize> {
    let n: i64 = customer_addresses::table
        .filter(customer_addresses::merchant_id.eq(merchant.uuid()))
        .filter(customer_addresses::customer_id.eq(customer.uuid()))
        .count()
        .get_result(conn)
        .await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: AddressId,
) -> StoreResult<()> {
    diesel::delete(customer_addresses::table.find((merchant.uuid(), id.uuid())))
        .execute(conn)
        .await?;
    Ok(())
}

/// Every address of the customer, gone (erasure): no subscription ships anywhere after.
pub async fn delete_all_of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<()> {
    diesel::update(
        subscriptions::table
            .filter(subscriptions::merchant_id.eq(merchant.uuid()))
            .filter(subscriptions::customer_id.eq(customer.uuid())),
    )
    .set(subscriptions::shipping_address_id.eq(None::<uuid::Uuid>))
    .execute(conn)
    .await?;
    diesel::delete(
        customer_addresses::table
            .filter(customer_addresses::merchant_id.eq(merchant.uuid()))
            .filter(customer_addresses::customer_id.eq(customer.uuid())),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The subscriptions that ship to the address.
pub async fn subscriptions_using(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: AddressId,
) -> StoreResult<Vec<SubscriptionId>> {
    let ids: Vec<uuid::Uuid> = subscriptions::table
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .filter(subscriptions::shipping_address_id.eq(id.uuid()))
        .select(subscriptions::id)
        .load(conn)
        .await?;
    Ok(ids.into_iter().map(SubscriptionId::from_uuid).collect())
}

/// Forgets the shipping address of the customer's ended subscriptions (canceled, or
/// expired unpaid) that point at `id`: they ship nothing more, and their orders keep a
/// snapshot of where they went, so an address they used can be deleted.
pub async fn release_from_ended_subscriptions(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: AddressId,
) -> StoreResult<usize> {
    Ok(diesel::update(
        subscriptions::table
            .filter(subscriptions::merchant_id.eq(merchant.uuid()))
            .filter(subscriptions::shipping_address_id.eq(id.uuid()))
            .filter(subscriptions::status.eq_any(["canceled", "incomplete_expired"])),
    )
    .set(subscriptions::shipping_address_id.eq(None::<uuid::Uuid>))
    .execute(conn)
    .await?)
}

/// The id of the address the subscription ships to.
pub async fn shipping_address_id(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Option<AddressId>> {
    let id: Option<uuid::Uuid> = subscriptions::table
        .find((merchant.uuid(), subscription.uuid()))
        .select(subscriptions::shipping_address_id)
        .get_result(conn)
        .await?;
    Ok(id.map(AddressId::from_uuid))
}

/// The address the subscription ships to, if it has one.
pub async fn shipping_address_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> StoreResult<Option<StoredAddress>> {
    let row = subscriptions::table
        .inner_join(
            customer_addresses::table.on(customer_addresses::merchant_id
                .eq(subscriptions::merchant_id)
                .and(
                    customer_addresses::id
                        .nullable()
                        .eq(subscriptions::shipping_address_id),
                )),
        )
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .filter(subscriptions::id.eq(subscription.uuid()))
        .select(AddressRow::as_select())
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(AddressRow::into_domain))
}

/// Makes the address the subscription's shipping address (the caller checked it is its
/// customer's).
pub async fn set_shipping_address(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
    address: AddressId,
) -> StoreResult<()> {
    let n = diesel::update(subscriptions::table.find((merchant.uuid(), subscription.uuid())))
        .set(subscriptions::shipping_address_id.eq(Some(address.uuid())))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}
