//! Idempotency keys with Stripe's semantics: the first request with a key runs, later
//! ones with the same key and body get its stored response, a different body is refused,
//! and a duplicate that arrives while the first still runs is told so.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text};
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
    merchant: MerchantId,
    scope: &str,
    key: &str,
    request_hash: &[u8],
    now: DateTime<Utc>,
) -> StoreResult<Claim> {
    let this_key = keys::merchant_id
        .eq(merchant.uuid())
        .and(keys::scope.eq(scope))
        .and(keys::idempotency_key.eq(key));
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
            keys::merchant_id.eq(merchant.uuid()),
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

/// How far back an erasure may have begun and still not be reflected in what a request
/// read: an erasure transaction running when the request began. Generous, as finding
/// one only costs rewriting a stored response with what it already holds.
pub const ERASURE_WINDOW: Duration = Duration::hours(1);

/// Locks the merchant's customers that a response body names (`FOR SHARE`, in id order)
/// and returns those erased since shortly before `claimed_at` (the request may have read
/// them before the erasure committed).
///
/// Called in the transaction that then stores the response ([`store_response`]), this
/// is what keeps a racing response from outliving an erasure: the erasure locks its
/// customer `FOR UPDATE` before it anonymises the stored responses, so either this lock
/// comes first, and the erasure (waiting for it) finds the stored response and
/// anonymises it, or the erasure comes first, and this lock waits for its commit and
/// returns the customer, whose data the caller scrubs before storing. Rows are locked
/// whatever their `erased_at` (a `WHERE` on it would skip the row the erasure is
/// changing) and filtered here.
pub async fn lock_named_customers_erased_since_claim(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    body: &[u8],
    claimed_at: DateTime<Utc>,
) -> StoreResult<Vec<CustomerId>> {
    let named = customer_ids_in(body);
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let locked: Vec<(uuid::Uuid, Option<DateTime<Utc>>)> = customers::table
        .filter(customers::merchant_id.eq(merchant.uuid()))
        .filter(customers::id.eq_any(named))
        .order(customers::id)
        .select((customers::id, customers::erased_at))
        .for_share()
        .load(conn)
        .await?;
    let since = claimed_at - ERASURE_WINDOW;
    Ok(locked
        .into_iter()
        .filter(|(_, erased_at)| erased_at.is_some_and(|at| at >= since))
        .map(|(id, _)| CustomerId::from_uuid(id))
        .collect())
}

/// Stores the response of the request that holds the key. Storing a response that may
/// name customers goes through `tenure_app::gdpr::complete_idempotent_request`, which
/// first locks them ([`lock_named_customers_erased_since_claim`]) in the same transaction.
pub async fn store_response(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    scope: &str,
    key: &str,
    response: &StoredResponse,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::update(
        keys::table
            .filter(keys::merchant_id.eq(merchant.uuid()))
            .filter(keys::scope.eq(scope))
            .filter(keys::idempotency_key.eq(key)),
    )
    .set((
        keys::response_status.eq(i16::try_from(response.status).unwrap_or(500)),
        keys::response_headers.eq(&response.headers),
        keys::response_body.eq(&response.body),
        keys::completed_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a response body names any customer (`cus_…`): only then does storing it
/// need [`lock_named_customers_erased_since_claim`].
pub fn names_customers(body: &[u8]) -> bool {
    !customer_ids_in(body).is_empty()
}

/// The customer ids (`cus_…`) a response body names, each once.
fn customer_ids_in(body: &[u8]) -> Vec<uuid::Uuid> {
    const PREFIX: &[u8] = b"cus_";
    // A TypeID's suffix: 26 characters of Crockford base32.
    const SUFFIX: usize = 26;
    let mut ids: Vec<uuid::Uuid> = body
        .windows(PREFIX.len() + SUFFIX)
        .filter(|w| w.starts_with(PREFIX))
        .filter_map(|w| std::str::from_utf8(w).ok()?.parse::<CustomerId>().ok())
        .map(|id| id.uuid())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Replaces the body of a stored response (with its anonymised form).
pub async fn replace_body(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    scope: &str,
    key: &str,
    body: &[u8],
) -> StoreResult<()> {
    diesel::update(
        keys::table
            .filter(keys::merchant_id.eq(merchant.uuid()))
            .filter(keys::scope.eq(scope))
            .filter(keys::idempotency_key.eq(key))
            .filter(keys::completed_at.is_not_null()),
    )
    .set(keys::response_body.eq(body))
    .execute(conn)
    .await?;
    Ok(())
}

/// A stored response: its key and body.
#[derive(Debug, Clone)]
pub struct StoredBody {
    pub scope: String,
    pub key: String,
    pub body: Vec<u8>,
}

/// The stored responses of the merchant's (and its customers' portal) requests that
/// name `customer`.
pub async fn responses_naming(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<StoredBody>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        scope: String,
        #[diesel(sql_type = Text)]
        idempotency_key: String,
        #[diesel(sql_type = Bytea)]
        response_body: Vec<u8>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT scope, idempotency_key, response_body FROM idempotency_keys
          WHERE merchant_id = $1 AND response_body IS NOT NULL
            AND position(convert_to($2, 'UTF8') IN response_body) > 0",
    )
    .bind::<diesel::sql_types::Uuid, _>(merchant.uuid())
    .bind::<Text, _>(customer.to_string())
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredBody {
            scope: r.scope,
            key: r.idempotency_key,
            body: r.response_body,
        })
        .collect())
}

/// Forgets a key whose request failed in a way worth retrying.
pub async fn release(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    scope: &str,
    key: &str,
) -> StoreResult<()> {
    diesel::delete(
        keys::table
            .filter(keys::merchant_id.eq(merchant.uuid()))
            .filter(keys::scope.eq(scope))
            .filter(keys::idempotency_key.eq(key))
            .filter(keys::completed_at.is_null()),
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_domain::ids::GenerateId;

    #[test]
    fn customer_ids_are_found_once_each_and_nothing_else() {
        let (a, b) = (CustomerId::generate(), CustomerId::generate());
        let body = format!(
            r#"{{"id":"{a}","customer":{{"id":"{b}"}},"again":"{a}","cus_":"cus_short","sub":"sub_01h455vb4pex5vsknk084sn02q"}}"#
        );
        let mut expected = vec![a.uuid(), b.uuid()];
        expected.sort_unstable();
        assert_eq!(customer_ids_in(body.as_bytes()), expected);
        assert!(customer_ids_in(b"{}").is_empty());
    }
}
