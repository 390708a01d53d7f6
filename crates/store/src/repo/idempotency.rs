//! Idempotency keys with Stripe's semantics: the first request with a key runs, later
//! ones with the same key and body get its stored response, a different body is refused,
//! and a duplicate that arrives while the first still runs is told so.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId};

use crate::error::StoreResult;
use crate::schema::{customers, idempotency_keys as keys};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::hours(24);
/// A request that has not completed after this long is presumed dead (its process
/// crashed) and the key may be taken over.
pub const ABANDONED_AFTER: Duration = Duration::minutes(5);

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: serde_json::Value,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum Claim {
    /// This request owns the key and must run.
    Acquired,
    /// A request with this key and body completed; here is its response.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// A request with this key is running now.
    InProgress,
}

pub async fn claim(
    conn: &mut AsyncPgConnection,
    scope: &str,
    key: &str,
    request_hash: &[u8],
    now: DateTime<Utc>,
) -> StoreResult<Claim> {
    let this_key = keys::scope.eq(scope).and(keys::idempotency_key.eq(key));
    diesel::delete(
        keys::table.filter(this_key).filter(
            keys::created_at.lt(now - RETENTION).or(keys::completed_at
                .is_null()
                .and(keys::created_at.lt(now - ABANDONED_AFTER))),
        ),
    )
    .execute(conn)
    .await?;

    let inserted = diesel::insert_into(keys::table)
        .values((
            keys::scope.eq(scope),
            keys::idempotency_key.eq(key),
            keys::request_hash.eq(request_hash),
            keys::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(Claim::Acquired);
    }

    type Existing = (
        Vec<u8>,
        Option<i16>,
        Option<serde_json::Value>,
        Option<Vec<u8>>,
    );
    let existing: Option<Existing> = keys::table
        .filter(this_key)
        .select((
            keys::request_hash,
            keys::response_status,
            keys::response_headers,
            keys::response_body,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(match existing {
        // Released between our insert and our read: the caller may simply retry.
        None => Claim::InProgress,
        Some((hash, _, _, _)) if hash != request_hash => Claim::Mismatch,
        Some((_, Some(status), headers, body)) => Claim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            headers: headers.unwrap_or(serde_json::Value::Null),
            body: body.unwrap_or_default(),
        }),
        Some(_) => Claim::InProgress,
    })
}

/// Whether [`complete`] kept the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Stored,
    /// The response names a customer whose erasure committed while the request ran, so
    /// it was dropped with its key: a retry runs the request again.
    DroppedForErasure,
}

/// Stores the response of the request that claimed the key at `claimed_at`.
///
/// A request may read a customer just before an erasure commits and store what it read
/// just after the erasure deleted the stored responses naming that customer. So once the
/// response is stored (and committed), the customers of `merchant` erased since shortly
/// before the claim are looked up, and a response that names one is dropped. The margin
/// ([`ABANDONED_AFTER`]) covers an erasure that began before the claim and committed
/// after it; the erasure deletes such responses once more after its commit, which
/// covers a response stored before this lookup could see the erasure.
pub async fn complete(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    scope: &str,
    key: &str,
    claimed_at: DateTime<Utc>,
    response: &StoredResponse,
    now: DateTime<Utc>,
) -> StoreResult<Completion> {
    let this_key = keys::scope.eq(scope).and(keys::idempotency_key.eq(key));
    diesel::update(keys::table.filter(this_key))
        .set((
            keys::response_status.eq(i16::try_from(response.status).unwrap_or(500)),
            keys::response_headers.eq(&response.headers),
            keys::response_body.eq(&response.body),
            keys::completed_at.eq(now),
        ))
        .execute(conn)
        .await?;
    let erased: Vec<uuid::Uuid> = customers::table
        .filter(customers::merchant_id.eq(merchant.uuid()))
        .filter(customers::erased_at.ge(claimed_at - ABANDONED_AFTER))
        .select(customers::id)
        .load(conn)
        .await?;
    let names_erased = erased.into_iter().any(|id| {
        let id = CustomerId::from_uuid(id).to_string();
        response.body.windows(id.len()).any(|w| w == id.as_bytes())
    });
    if !names_erased {
        return Ok(Completion::Stored);
    }
    diesel::delete(keys::table.filter(this_key))
        .execute(conn)
        .await?;
    Ok(Completion::DroppedForErasure)
}

/// Forgets a key whose request failed in a way worth retrying.
pub async fn release(conn: &mut AsyncPgConnection, scope: &str, key: &str) -> StoreResult<()> {
    diesel::delete(
        keys::table
            .filter(keys::scope.eq(scope))
            .filter(keys::idempotency_key.eq(key))
            .filter(keys::completed_at.is_null()),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes keys past their retention; run periodically by the workers.
pub async fn purge_expired(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> StoreResult<usize> {
    Ok(
        diesel::delete(keys::table.filter(keys::created_at.lt(now - RETENTION)))
            .execute(conn)
            .await?,
    )
}
