//! The merchant's CORS settings: the web origins allowed to call the customer portal
//! from a browser (CORS).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::MerchantId;

use crate::error::StoreResult;
use crate::schema::cors_settings;

/// A merchant's allowed origins, in its order, and when they last changed (`None`: never
/// set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSettingsRow {
    pub allowed_origins: Vec<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<CorsSettingsRow> {
    let row: Option<(Vec<String>, DateTime<Utc>)> = cors_settings::table
        .find(merchant.uuid())
        .select((cors_settings::allowed_origins, cors_settings::updated_at))
        .first(conn)
        .await
        .optional()?;
    Ok(
        row.map_or_else(CorsSettingsRow::default, |(origins, at)| CorsSettingsRow {
            allowed_origins: origins,
            updated_at: Some(at),
        }),
    )
}

/// Replaces the merchant's allowed origins (already normalised by the domain).
pub async fn set_allowed_origins(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    origins: &[String],
    at: DateTime<Utc>,
) -> StoreResult<CorsSettingsRow> {
    let (origins, at): (Vec<String>, DateTime<Utc>) = diesel::insert_into(cors_settings::table)
        .values((
            cors_settings::merchant_id.eq(merchant.uuid()),
            cors_settings::allowed_origins.eq(origins),
            cors_settings::updated_at.eq(at),
        ))
        .on_conflict(cors_settings::merchant_id)
        .do_update()
        .set((
            cors_settings::allowed_origins.eq(excluded(cors_settings::allowed_origins)),
            cors_settings::updated_at.eq(excluded(cors_settings::updated_at)),
        ))
        .returning((cors_settings::allowed_origins, cors_settings::updated_at))
        .get_result(conn)
        .await?;
    Ok(CorsSettingsRow {
        allowed_origins: origins,
        updated_at: Some(at),
    })
}

/// Every merchant's allowed origins, for the per-process set that answers browsers'
/// preflights (which carry no credential, so no merchant) and checks their requests
/// without a query. Across tenants by design, like the lookup of a secret key's hash.
pub async fn all_allowed_origins(
    conn: &mut AsyncPgConnection,
) -> StoreResult<Vec<(MerchantId, Vec<String>)>> {
    let rows: Vec<(uuid::Uuid, Vec<String>)> = cors_settings::table
        .filter(cors_settings::allowed_origins.ne(Vec::<String>::new()))
        .select((cors_settings::merchant_id, cors_settings::allowed_origins))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(merchant, origins)| (MerchantId::from_uuid(merchant), origins))
        .collect())
}
