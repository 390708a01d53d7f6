//! Merchants (tenants) and their secret keys. A merchant's first keys have to come from
//! the operator: `tenure merchant create` or `POST /v1/operator/merchants` with the
//! operator's token, which make the account's two tenants, test and live, each with its
//! first key (docs/keys.md#test-and-live-mode).

pub mod api_keys;

use diesel_async::AsyncConnection;
use tenure_domain::access::{KeyScopes, Mode};
use tenure_domain::ids::ApiKeyId;
use tenure_domain::text;
use tenure_store::repo::merchants::{self, Merchant};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::error::AppResult;

/// One tenant of a new account and its first secret key (unrestricted), shown this once.
pub struct CreatedTenant {
    pub merchant: Merchant,
    pub secret_key: String,
    pub api_key: ApiKeyId,
}

/// A new merchant account: its test tenant (`sk_test_…`) and its live tenant
/// (`sk_live_…`).
pub struct CreatedMerchant {
    pub test: CreatedTenant,
    pub live: CreatedTenant,
}

pub async fn create(state: &App, name: &str) -> AppResult<CreatedMerchant> {
    let name = text::clean("name", name, 200, false)?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let test = merchants::create(conn, &name).await?;
        let live = merchants::create_live(conn, &test).await?;
        let mut first_key = async |merchant: Merchant| {
            let (key, secret_key) = api_keys::insert(
                conn,
                merchant.id,
                merchant.mode,
                Some("default"),
                KeyScopes::Unrestricted,
                now,
            )
            .await?;
            Ok::<_, crate::error::AppError>(CreatedTenant {
                merchant,
                secret_key,
                api_key: ApiKeyId::from_uuid(key.id),
            })
        };
        let test = first_key(test).await?;
        let live = first_key(live).await?;
        debug_assert_eq!(live.merchant.mode, Mode::Live);
        Ok(CreatedMerchant { test, live })
    })
    .await
}

/// Every merchant, newest first (the operator's list).
pub async fn list(state: &App, page: PageRequest) -> AppResult<Page<Merchant>> {
    let mut conn = state.db.conn().await?;
    Ok(merchants::list(&mut conn, page).await?)
}
