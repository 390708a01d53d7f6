//! Merchant secret keys: `sk_test_` (a test tenant's) or `sk_live_` (a live tenant's) and
//! 40 random alphanumerics (about 238 bits). Only a SHA-256 hash is stored; the key is
//! shown once, at creation. A merchant creates, lists,
//! rolls and revokes its keys over the API (docs/keys.md); a restricted key carries
//! scopes (`tenure_domain::access`).

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use tenure_domain::access::{
    DEFAULT_ROLL_EXPIRY_SECS, KeyScopes, MAX_KEY_NAME_CHARS, MAX_ROLL_EXPIRY_SECS, Mode, ScopeSet,
};
use tenure_domain::ids::{ApiKeyId, MerchantId};
use tenure_domain::text;
use tenure_store::repo::api_keys::{self as repo, ApiKeyRow, NewApiKey};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::access::{ApiKeyDto, CreateApiKey, CreatedApiKeyDto, RollApiKey};
use crate::error::{AppError, AppResult, Validator};

const RANDOM_CHARS: usize = 40;

/// A freshly generated key with what is stored about it.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: Vec<u8>,
    /// The first characters, kept to help a merchant recognise a key in a list.
    pub display_prefix: String,
}

/// A new key of a tenant in `mode`: its prefix says the mode.
pub fn generate(mode: Mode) -> GeneratedKey {
    let prefix = mode.secret_key_prefix();
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let secret = format!("{prefix}{random}");
    GeneratedKey {
        hash: hash(&secret),
        display_prefix: secret[..prefix.len() + 4].to_owned(),
        secret,
    }
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether a bearer credential is shaped like a secret key (as opposed to a JWT).
pub fn looks_like_secret_key(credential: &str) -> bool {
    credential.starts_with("sk_")
}

/// Who is calling with a secret key: the merchant (the tenant of one mode), the key's
/// record and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MerchantKey {
    pub merchant: MerchantId,
    pub key: ApiKeyId,
    pub scopes: KeyScopes,
    /// When a rolled key stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The tenant's mode, which the key's prefix says.
    pub mode: Mode,
}

impl MerchantKey {
    /// The key found for `secret`. Its mode is the secret's prefix: keys are made only
    /// with their tenant's prefix (and it is hashed with the rest), so this needs no
    /// lookup of the tenant.
    pub fn from_grant(grant: &repo::KeyGrant, secret: &str) -> Self {
        Self {
            merchant: MerchantId::from_uuid(grant.merchant_id),
            key: ApiKeyId::from_uuid(grant.id),
            scopes: KeyScopes::from_stored(grant.scopes.as_deref()),
            expires_at: grant.expires_at,
            mode: Mode::of_secret_key(secret).unwrap_or(Mode::Test),
        }
    }

    /// Whether the key still works at `now` (a rolled key's end is on Tenure's clock).
    pub fn works_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// Inserts a new key in the current transaction; the secret is returned, never stored.
pub(crate) async fn insert(
    conn: &mut diesel_async::AsyncPgConnection,
    merchant: MerchantId,
    mode: Mode,
    name: Option<&str>,
    scopes: KeyScopes,
    at: DateTime<Utc>,
) -> AppResult<(ApiKeyRow, String)> {
    let key = generate(mode);
    let row = repo::insert(
        conn,
        merchant,
        NewApiKey {
            hash: &key.hash,
            prefix: &key.display_prefix,
            name,
            scopes: scopes.to_strings(),
            created_at: at,
        },
    )
    .await?;
    Ok((row, key.secret))
}

fn exceeds(caller: MerchantKey) -> AppError {
    AppError::Forbidden {
        code: "scope_exceeds_key",
        detail: format!(
            "the key {} can only create, roll or revoke keys that grant no more than its own scopes",
            caller.key
        ),
    }
}

/// Creates a key: unrestricted, or restricted to `scopes`. The caller's key must cover
/// what the new one grants.
pub async fn create(
    state: &App,
    caller: MerchantKey,
    input: CreateApiKey,
) -> AppResult<CreatedApiKeyDto> {
    let mut v = Validator::default();
    let name = v.check(text::clean_opt(
        "name",
        input.name.as_deref(),
        MAX_KEY_NAME_CHARS,
        false,
    ));
    let scopes = match &input.scopes {
        None => Some(KeyScopes::Unrestricted),
        Some(list) => v.check(ScopeSet::parse(list)).map(KeyScopes::Restricted),
    };
    v.finish()?;
    let (Some(name), Some(scopes)) = (name, scopes) else {
        return Err(AppError::internal("validated fields missing"));
    };
    if !caller.scopes.covers(scopes) {
        return Err(exceeds(caller));
    }
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let (row, secret) = insert(
        &mut conn,
        caller.merchant,
        caller.mode,
        name.as_deref(),
        scopes,
        now,
    )
    .await?;
    Ok(CreatedApiKeyDto {
        key: ApiKeyDto::render(row, now),
        secret,
    })
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    page: PageRequest,
) -> AppResult<Page<ApiKeyDto>> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let page = repo::list(&mut conn, merchant, page).await?;
    page.try_map(|row| Ok(ApiKeyDto::render(row, now)))
}

pub async fn get(state: &App, merchant: MerchantId, id: ApiKeyId) -> AppResult<ApiKeyDto> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let row = repo::get(&mut conn, merchant, id)
        .await
        .map_err(AppError::from_store("api_key"))?;
    Ok(ApiKeyDto::render(row, now))
}

/// Replaces a key: a new key with the same name and scopes, while the old one keeps
/// working until `expires_in_secs` from now (bounded), so that the new one can be
/// deployed first. Rolling a key already rolled brings its end forward, never back.
pub async fn roll(
    state: &App,
    caller: MerchantKey,
    id: ApiKeyId,
    input: RollApiKey,
) -> AppResult<CreatedApiKeyDto> {
    let secs = input
        .expires_in_secs
        .unwrap_or(i64::from(DEFAULT_ROLL_EXPIRY_SECS));
    if !(0..=i64::from(MAX_ROLL_EXPIRY_SECS)).contains(&secs) {
        return Err(AppError::field(
            "expires_in_secs",
            format!("must be between 0 and {MAX_ROLL_EXPIRY_SECS}"),
        ));
    }
    let now = state.now();
    let end = now + chrono::Duration::seconds(secs);
    let mut conn = state.db.conn().await?;
    let (row, secret) = conn
        .transaction(async |conn| -> AppResult<(ApiKeyRow, String)> {
            let old = repo::get_for_update(conn, caller.merchant, id)
                .await
                .map_err(AppError::from_store("api_key"))?;
            let scopes = KeyScopes::from_stored(old.scopes.as_deref());
            if !caller.scopes.covers(scopes) {
                return Err(exceeds(caller));
            }
            ensure_usable(&old, now)?;
            let keep_until = old.expires_at.map_or(end, |current| current.min(end));
            repo::set_expiry(conn, caller.merchant, id, keep_until).await?;
            insert(
                conn,
                caller.merchant,
                caller.mode,
                old.name.as_deref(),
                scopes,
                now,
            )
            .await
        })
        .await?;
    Ok(CreatedApiKeyDto {
        key: ApiKeyDto::render(row, now),
        secret,
    })
}

fn ensure_usable(row: &ApiKeyRow, now: DateTime<Utc>) -> AppResult<()> {
    if row.revoked_at.is_some() {
        return Err(AppError::conflict(
            "api_key_revoked",
            "the key is revoked already",
        ));
    }
    if row.expires_at.is_some_and(|end| end <= now) {
        return Err(AppError::conflict("api_key_expired", "the key has expired"));
    }
    Ok(())
}

/// Revokes a key: every process refuses it from the moment this commits. The merchant's
/// last unrestricted key that works for good cannot be revoked (409
/// `last_unrestricted_key`): nothing could then create keys again but the operator;
/// create or roll another first.
pub async fn revoke(state: &App, caller: MerchantKey, id: ApiKeyId) -> AppResult<ApiKeyDto> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let row = conn
        .transaction(async |conn| -> AppResult<ApiKeyRow> {
            // Lasting unrestricted keys first, in id order, so that two revocations at once
            // serialise here and the second sees what the first left.
            let lasting = repo::lock_lasting_unrestricted(conn, caller.merchant).await?;
            let old = repo::get_for_update(conn, caller.merchant, id)
                .await
                .map_err(AppError::from_store("api_key"))?;
            let scopes = KeyScopes::from_stored(old.scopes.as_deref());
            if !caller.scopes.covers(scopes) {
                return Err(exceeds(caller));
            }
            if old.revoked_at.is_some() {
                return Err(AppError::conflict(
                    "api_key_revoked",
                    "the key is revoked already",
                ));
            }
            if lasting == [id.uuid()] {
                return Err(AppError::conflict(
                    "last_unrestricted_key",
                    "this is the merchant's last unrestricted key without an expiry; create or roll another unrestricted key before revoking it",
                ));
            }
            Ok(repo::revoke(conn, caller.merchant, id, now).await?)
        })
        .await?;
    Ok(ApiKeyDto::render(row, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        for mode in Mode::ALL {
            let a = generate(mode);
            let b = generate(mode);
            assert_ne!(a.secret, b.secret);
            assert!(a.secret.starts_with(mode.secret_key_prefix()));
            assert_eq!(Mode::of_secret_key(&a.secret), Some(mode));
            assert_eq!(
                a.secret.len(),
                mode.secret_key_prefix().len() + RANDOM_CHARS
            );
            assert!(a.display_prefix.starts_with(mode.secret_key_prefix()));
            assert_eq!(hash(&a.secret), a.hash);
            assert!(looks_like_secret_key(&a.secret));
        }
    }
}
