//! A connection of its own that `LISTEN`s on a channel, for caches that must hear about
//! every change to what they keep (PostgreSQL's `NOTIFY`, sent by a trigger or a
//! transaction, arrives once that transaction commits).

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;

use crate::error::{StoreError, StoreResult};

/// How long a check that the connection is still alive may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Listener {
    conn: AsyncPgConnection,
}

impl Listener {
    /// Opens the connection, names it `application_name` (so operators can tell it apart
    /// in `pg_stat_activity`) and starts listening on `channel`, an identifier of ours.
    pub async fn connect(
        url: &str,
        channel: &'static str,
        application_name: &str,
    ) -> StoreResult<Self> {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        diesel::sql_query("SELECT set_config('application_name', $1, false)")
            .bind::<diesel::sql_types::Text, _>(application_name)
            .execute(&mut conn)
            .await?;
        diesel::sql_query(format!("LISTEN {channel}"))
            .execute(&mut conn)
            .await?;
        Ok(Self { conn })
    }

    /// The payload of the next notification, or `None` when none came within `quiet`;
    /// the connection has then been checked with a round trip, so a connection that died
    /// without a word is noticed within `quiet` and [`CHECK_TIMEOUT`]. Any error means
    /// notifications may have been missed: drop the listener and start again.
    pub async fn next(&mut self, quiet: Duration) -> StoreResult<Option<String>> {
        let waited = {
            let mut stream = std::pin::pin!(self.conn.notifications_stream());
            tokio::time::timeout(quiet, stream.next()).await
        };
        match waited {
            Ok(Some(Ok(notification))) => Ok(Some(notification.payload)),
            Ok(Some(Err(err))) => Err(err.into()),
            Ok(None) => Err(StoreError::Unavailable(
                "the listening connection closed".into(),
            )),
            Err(_) => {
                tokio::time::timeout(
                    CHECK_TIMEOUT,
                    diesel::sql_query("SELECT 1").execute(&mut self.conn),
                )
                .await
                .map_err(|_| {
                    StoreError::Unavailable("the listening connection stopped answering".into())
                })??;
                Ok(None)
            }
        }
    }
}
