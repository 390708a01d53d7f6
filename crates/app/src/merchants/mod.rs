//! Merchants (tenants) and their secret keys. A merchant's first key has to come from the
//! operator: `tenure merchant create` or `POST /v1/operator/merchants` with the
//! operator's token.

pub mod api_keys;

use diesel_async::AsyncConnection;
use tenure_domain::access::KeyScopes;
use tenure_domain::ids::ApiKeyId;
use tenure_domain::text;
use tenure_store::repo::merchants::{self, Merchant};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::error::AppResult;

/// A new merchant and its first secret key (unrestricted), shown this once.
pub struct CreatedMerchant {
    pub merchant: Merchant,
    pub secret_key: String,
    pub api_key: ApiKeyId,
}

pub async fn create(state: &App, name: &str) -> AppResult<CreatedMerchant> {
    let name = text::clean("name", name, 200, false)?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let (merchant, key, secret_key) = conn
        .transaction(async |conn| {
            let merchant = merchants::create(conn, &name).await?;
            let (key, secret) = api_keys::insert(
                conn,
                merchant.id,
                Some("default"),
                KeyScopes::Unrestricted,
                now,
            )
            .await?;
            Ok::<_, crate::error::AppError>((merchant, key, secret))
        })
        .await?;
    Ok(CreatedMerchant {
        merchant,
        secret_key,
        api_key: ApiKeyId::from_uuid(key.id),
    })
}

/// Every merchant, newest first (the operator's list).
pub async fn list(state: &App, page: PageRequest) -> AppResult<Page<Merchant>> {
    let mut conn = state.db.conn().await?;
    Ok(merchants::list(&mut conn, page).await?)
}
