//! Server-wide secrets (the JWT signing key when none is configured).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::StoreResult;
use crate::schema::server_secrets;

/// Returns the secret stored under `name`, storing `candidate` first if there is none.
/// Every process that starts concurrently ends up with the same value.
pub async fn get_or_create(
    conn: &mut AsyncPgConnection,
    name: &str,
    candidate: &[u8],
) -> StoreResult<Vec<u8>> {
    diesel::insert_into(server_secrets::table)
        .values((
            server_secrets::name.eq(name),
            server_secrets::value.eq(candidate),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    let value = server_secrets::table
        .find(name)
        .select(server_secrets::value)
        .get_result(conn)
        .await?;
    Ok(value)
}
