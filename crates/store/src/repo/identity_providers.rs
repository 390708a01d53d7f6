//! Merchant-registered identity providers: their tokens are accepted on the portal.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{GenerateId, IdentityProviderId, MerchantId};

use crate::error::StoreResult;
use crate::schema::identity_providers as idp;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = idp)]
pub struct IdentityProviderRow {
    pub merchant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub issuer: String,
    pub audience: String,
    pub algorithm: String,
    pub verification_key: String,
    pub customer_claim: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewIdentityProvider<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub algorithm: &'a str,
    pub verification_key: &'a str,
    pub customer_claim: &'a str,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: NewIdentityProvider<'_>,
) -> StoreResult<IdentityProviderRow> {
    let row = diesel::insert_into(idp::table)
        .values((
            idp::merchant_id.eq(merchant.uuid()),
            idp::id.eq(IdentityProviderId::generate().uuid()),
            idp::issuer.eq(new.issuer),
            idp::audience.eq(new.audience),
            idp::algorithm.eq(new.algorithm),
            idp::verification_key.eq(new.verification_key),
            idp::customer_claim.eq(new.customer_claim),
        ))
        .returning(IdentityProviderRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row)
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<Vec<IdentityProviderRow>> {
    Ok(idp::table
        .filter(idp::merchant_id.eq(merchant.uuid()))
        .order(idp::id.desc())
        .select(IdentityProviderRow::as_select())
        .load(conn)
        .await?)
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: IdentityProviderId,
) -> StoreResult<bool> {
    let n = diesel::delete(
        idp::table
            .filter(idp::merchant_id.eq(merchant.uuid()))
            .filter(idp::id.eq(id.uuid())),
    )
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// The merchant's providers that accept tokens from `issuer` for one of `audiences` (a
/// token's `aud`): at most one per audience, since the triple is unique. Two are returned
/// at most; more than one means the token is ambiguous. Only the merchant the request
/// names is searched, so another merchant's registration can never capture a token.
pub async fn by_issuer_and_audience(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    issuer: &str,
    audiences: &[String],
) -> StoreResult<Vec<IdentityProviderRow>> {
    Ok(idp::table
        .filter(idp::merchant_id.eq(merchant.uuid()))
        .filter(idp::issuer.eq(issuer))
        .filter(idp::audience.eq_any(audiences))
        .select(IdentityProviderRow::as_select())
        .limit(2)
        .load(conn)
        .await?)
}
