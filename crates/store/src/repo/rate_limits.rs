//! Rate-limit buckets shared by every process (`rate_limit_buckets`, UNLOGGED): one
//! upsert per counted request, timed by the database's clock. Not tenant data: a key
//! names a merchant, a customer or a client address (docs/hardening.md).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::StoreResult;

/// What counting one request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Taken {
    #[diesel(sql_type = Bool)]
    pub allowed: bool,
    /// How far the bucket's theoretical arrival time now is ahead of the database's now.
    #[diesel(sql_type = BigInt)]
    pub ahead_us: i64,
}

/// Counts one request against `key` (GCRA, see `tenure_domain::rate_limit`): in one
/// statement, so concurrent requests from any number of processes serialise on the
/// row and none is counted twice or lost. A refused request leaves the bucket as it was.
pub async fn take(
    conn: &mut AsyncPgConnection,
    key: &str,
    interval_us: i64,
    capacity_us: i64,
) -> StoreResult<Taken> {
    // `excluded.tat_us - $2` is the statement's now; SET sees the row as it was.
    Ok(diesel::sql_query(
        "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us) \
         INSERT INTO rate_limit_buckets AS b (key, tat_us, allowed) \
         SELECT $1, clock.now_us + $2, true FROM clock \
         ON CONFLICT (key) DO UPDATE SET \
           allowed = greatest(b.tat_us, excluded.tat_us - $2) + $2 <= excluded.tat_us - $2 + $3, \
           tat_us = CASE WHEN greatest(b.tat_us, excluded.tat_us - $2) + $2 \
                              <= excluded.tat_us - $2 + $3 \
                         THEN greatest(b.tat_us, excluded.tat_us - $2) + $2 \
                         ELSE b.tat_us END \
         RETURNING b.allowed, b.tat_us - (SELECT now_us FROM clock) AS ahead_us",
    )
    .bind::<Text, _>(key)
    .bind::<BigInt, _>(interval_us)
    .bind::<BigInt, _>(capacity_us)
    .get_result(conn)
    .await?)
}

/// Removes up to `batch` buckets that have filled up again (their time has passed, so
/// they hold nothing a missing row would not); returns how many went.
pub async fn sweep(conn: &mut AsyncPgConnection, batch: i64) -> StoreResult<usize> {
    Ok(diesel::sql_query(
        "DELETE FROM rate_limit_buckets WHERE key IN ( \
           SELECT key FROM rate_limit_buckets \
            WHERE tat_us < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
            LIMIT $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<BigInt, _>(batch)
    .execute(conn)
    .await?)
}
