//! Merchants (tenants) and their secret keys. Created from the CLI, not over HTTP: a
//! merchant's first key has to come from the operator.

pub mod api_keys;

use diesel_async::AsyncConnection;
use tenure_domain::text;
use tenure_store::repo::merchants::{self, Merchant};

use crate::App;
use crate::error::AppResult;

/// A new merchant and its first secret key, shown this once.
pub struct CreatedMerchant {
    pub merchant: Merchant,
    pub secret_key: String,
}

pub async fn create(state: &App, name: &str) -> AppResult<CreatedMerchant> {
    let name = text::clean("name", name, 200, false)?;
    let key = api_keys::generate();
    let mut conn = state.db.conn().await?;
    let merchant = conn
        .transaction(async |conn| {
            let merchant = merchants::create(conn, &name).await?;
            merchants::insert_api_key(conn, merchant.id, &key.hash, &key.display_prefix).await?;
            Ok::<_, crate::error::AppError>(merchant)
        })
        .await?;
    Ok(CreatedMerchant {
        merchant,
        secret_key: key.secret,
    })
}
