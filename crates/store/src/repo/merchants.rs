//! Merchants and their secret API keys.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{ApiKeyId, GenerateId, MerchantId};

use crate::error::StoreResult;
use crate::schema::{api_keys, merchants};

#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
struct MerchantRow {
    id: uuid::Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<MerchantRow> for Merchant {
    fn from(row: MerchantRow) -> Self {
        Self {
            id: MerchantId::from_uuid(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

pub async fn create(conn: &mut AsyncPgConnection, name: &str) -> StoreResult<Merchant> {
    let row: MerchantRow = diesel::insert_into(merchants::table)
        .values((
            merchants::id.eq(MerchantId::generate().uuid()),
            merchants::name.eq(name),
        ))
        .returning(MerchantRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

pub async fn get(conn: &mut AsyncPgConnection, id: MerchantId) -> StoreResult<Merchant> {
    let row: MerchantRow = merchants::table
        .find(id.uuid())
        .select(MerchantRow::as_select())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

/// Records a key by its hash; the key itself is never stored.
pub async fn insert_api_key(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    key_hash: &[u8],
    key_prefix: &str,
) -> StoreResult<ApiKeyId> {
    let id = ApiKeyId::generate();
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::merchant_id.eq(merchant.uuid()),
            api_keys::id.eq(id.uuid()),
            api_keys::key_hash.eq(key_hash),
            api_keys::key_prefix.eq(key_prefix),
        ))
        .execute(conn)
        .await?;
    Ok(id)
}

/// The merchant owning an unrevoked key with this hash.
pub async fn merchant_by_key_hash(
    conn: &mut AsyncPgConnection,
    key_hash: &[u8],
) -> StoreResult<Option<MerchantId>> {
    let found: Option<uuid::Uuid> = api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::merchant_id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.map(MerchantId::from_uuid))
}
