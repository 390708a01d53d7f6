//! A merchant's secret keys, by hash (the key itself is never stored). Every change of
//! what a process may cache of a key (revocation, expiry, scopes) fires the `NOTIFY`
//! trigger of migration 000013, so that every process forgets it at once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{ApiKeyId, GenerateId, MerchantId};

use crate::error::StoreResult;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::api_keys;

/// A key as listed: never its hash.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub merchant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub key_prefix: String,
    pub name: Option<String>,
    /// `None`: unrestricted.
    pub scopes: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What authentication needs of an unrevoked key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct KeyGrant {
    pub merchant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub struct NewApiKey<'a> {
    pub hash: &'a [u8],
    pub prefix: &'a str,
    pub name: Option<&'a str>,
    pub scopes: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    key: NewApiKey<'_>,
) -> StoreResult<ApiKeyRow> {
    Ok(diesel::insert_into(api_keys::table)
        .values((
            api_keys::merchant_id.eq(merchant.uuid()),
            api_keys::id.eq(ApiKeyId::generate().uuid()),
            api_keys::key_hash.eq(key.hash),
            api_keys::key_prefix.eq(key.prefix),
            api_keys::name.eq(key.name),
            api_keys::scopes.eq(key.scopes),
            api_keys::created_at.eq(key.created_at),
        ))
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The unrevoked key with this hash, whoever's it is; expiry is the caller's to check
/// (on Tenure's clock).
pub async fn by_hash(conn: &mut AsyncPgConnection, hash: &[u8]) -> StoreResult<Option<KeyGrant>> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(hash))
        .filter(api_keys::revoked_at.is_null())
        .select(KeyGrant::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ApiKeyId,
) -> StoreResult<ApiKeyRow> {
    Ok(api_keys::table
        .find((merchant.uuid(), id.uuid()))
        .select(ApiKeyRow::as_select())
        .get_result(conn)
        .await?)
}

/// The key, locked for a change in this transaction.
pub async fn get_for_update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ApiKeyId,
) -> StoreResult<ApiKeyRow> {
    Ok(api_keys::table
        .find((merchant.uuid(), id.uuid()))
        .select(ApiKeyRow::as_select())
        .for_update()
        .get_result(conn)
        .await?)
}

/// The merchant's keys, newest first, revoked ones included.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    page: PageRequest,
) -> StoreResult<Page<ApiKeyRow>> {
    let mut query = api_keys::table
        .filter(api_keys::merchant_id.eq(merchant.uuid()))
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.desc())
        .into_boxed();
    if let Some(after) = page.starting_after {
        query = query.filter(api_keys::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Ok(Page::from_overfetch(rows, &page))
}

/// How many of the merchant's unrestricted keys work at `now` and for good (neither
/// revoked nor expiring), locking them, so that two revocations at once cannot each see
/// the other key as the one that stays.
pub async fn lock_lasting_unrestricted(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<Vec<uuid::Uuid>> {
    Ok(api_keys::table
        .filter(api_keys::merchant_id.eq(merchant.uuid()))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::expires_at.is_null())
        .filter(api_keys::scopes.is_null())
        .select(api_keys::id)
        .order(api_keys::id)
        .for_update()
        .load(conn)
        .await?)
}

pub async fn revoke(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ApiKeyId,
    at: DateTime<Utc>,
) -> StoreResult<ApiKeyRow> {
    Ok(
        diesel::update(api_keys::table.find((merchant.uuid(), id.uuid())))
            .set(api_keys::revoked_at.eq(at))
            .returning(ApiKeyRow::as_returning())
            .get_result(conn)
            .await?,
    )
}

pub async fn set_expiry(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ApiKeyId,
    at: DateTime<Utc>,
) -> StoreResult<ApiKeyRow> {
    Ok(
        diesel::update(api_keys::table.find((merchant.uuid(), id.uuid())))
            .set(api_keys::expires_at.eq(at))
            .returning(ApiKeyRow::as_returning())
            .get_result(conn)
            .await?,
    )
}

/// Notes that the key was used at `at`, unless a use within `throttle` before is already
/// written (another process's). Touches only `last_used_at`, which fires no `NOTIFY`.
pub async fn touch(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ApiKeyId,
    at: DateTime<Utc>,
    throttle: chrono::Duration,
) -> StoreResult<()> {
    diesel::update(api_keys::table.find((merchant.uuid(), id.uuid())))
        .filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.lt(at - throttle)),
        )
        .set(api_keys::last_used_at.eq(at))
        .execute(conn)
        .await?;
    Ok(())
}
