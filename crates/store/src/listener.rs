//! A connection of its own that `LISTEN`s on a channel, for caches that must hear about
//! every change to what they keep (PostgreSQL's `NOTIFY`, sent by a trigger or a
//! transaction, arrives once that transaction commits).
//!
//! A live connection is not proof of hearing: behind a transaction-mode pooler the
//! `LISTEN` lands on one server connection and the notifications on none, and a disabled
//! trigger sends nothing. So a listener can [`Listener::probe`] the whole path.

use std::time::Duration;

use diesel::sql_types::{Array, Bool, Integer, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;

use crate::error::{StoreError, StoreResult};

/// Payloads this module sends itself start with this; no other sender may use it.
const PROBE_PREFIX: &str = "probe:";

/// How long connecting and starting to listen may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Listener {
    conn: AsyncPgConnection,
    channel: &'static str,
    /// This connection's server process: every process listening on the channel sees
    /// every probe, so a probe names the one that sent it.
    backend_pid: i32,
    probes: u64,
}

#[derive(diesel::QueryableByName)]
struct Enabled {
    #[diesel(sql_type = Bool)]
    enabled: bool,
}

#[derive(diesel::QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

impl Listener {
    /// Opens the connection, names it `application_name` (so operators can tell it apart
    /// in `pg_stat_activity`) and starts listening on `channel`, an identifier of ours.
    pub async fn connect(
        url: &str,
        channel: &'static str,
        application_name: &str,
    ) -> StoreResult<Self> {
        tokio::time::timeout(
            CONNECT_TIMEOUT,
            Self::connect_now(url, channel, application_name),
        )
        .await
        .map_err(|_| StoreError::Unavailable("listening did not start in time".into()))?
    }

    async fn connect_now(
        url: &str,
        channel: &'static str,
        application_name: &str,
    ) -> StoreResult<Self> {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let BackendPid { pid } = diesel::sql_query(
            "SELECT set_config('application_name', $1, false), pg_backend_pid() AS pid",
        )
        .bind::<Text, _>(application_name)
        .get_result(&mut conn)
        .await?;
        diesel::sql_query(format!("LISTEN {channel}"))
            .execute(&mut conn)
            .await?;
        Ok(Self {
            conn,
            channel,
            backend_pid: pid,
            probes: 0,
        })
    }

    /// The payload of the next notification, or `None` once `until` has come. Probes
    /// (this listener's or another process's) are passed over without moving `until`.
    /// An error means notifications may have been missed: drop the listener.
    pub async fn next(&mut self, until: std::time::Instant) -> StoreResult<Option<String>> {
        let until = tokio::time::Instant::from_std(until);
        loop {
            match self.receive(Some(until)).await? {
                Some(payload) if payload.starts_with(PROBE_PREFIX) => continue,
                other => return Ok(other),
            }
        }
    }

    /// Proves, within `timeout`, that the `triggers` on `table` fire in every session
    /// (`ENABLE ALWAYS`, so also under `session_replication_role = replica`) and that a
    /// notification sent now comes back on this connection. Returns what else arrived
    /// meanwhile, in order; an error means the listener cannot be trusted.
    pub async fn probe(
        &mut self,
        table: &'static str,
        triggers: &[&'static str],
        timeout: Duration,
    ) -> StoreResult<Vec<String>> {
        tokio::time::timeout(timeout, self.probe_now(table, triggers))
            .await
            .map_err(|_| StoreError::Unavailable("the listener's probe timed out".into()))?
    }

    async fn probe_now(
        &mut self,
        table: &'static str,
        triggers: &[&'static str],
    ) -> StoreResult<Vec<String>> {
        let state: Enabled = diesel::sql_query(
            "SELECT count(*) = cardinality($2) AS enabled FROM pg_trigger \
             WHERE tgrelid = to_regclass($1) AND tgname = ANY($2) AND tgenabled = 'A'",
        )
        .bind::<Text, _>(table)
        .bind::<Array<Text>, _>(triggers)
        .get_result(&mut self.conn)
        .await?;
        if !state.enabled {
            return Err(StoreError::Unavailable(format!(
                "the triggers {triggers:?} on {table} are not all there and enabled always"
            )));
        }
        self.probes += 1;
        let probe = format!("{PROBE_PREFIX}{}:{}", self.backend_pid, self.probes);
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(self.channel)
            .bind::<Text, _>(&probe)
            .execute(&mut self.conn)
            .await?;
        let mut meanwhile = Vec::new();
        loop {
            // Bounded by `probe`'s timeout.
            match self.receive(None).await? {
                Some(payload) if payload == probe => return Ok(meanwhile),
                Some(payload) if payload.starts_with(PROBE_PREFIX) => {}
                Some(payload) => meanwhile.push(payload),
                None => {}
            }
        }
    }

    /// The next payload; `None` when `until` (if any) came first.
    async fn receive(
        &mut self,
        until: Option<tokio::time::Instant>,
    ) -> StoreResult<Option<String>> {
        let mut stream = std::pin::pin!(self.conn.notifications_stream());
        let next = match until {
            Some(until) => match tokio::time::timeout_at(until, stream.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(None),
            },
            None => stream.next().await,
        };
        match next {
            Some(Ok(notification)) => Ok(Some(notification.payload)),
            Some(Err(err)) => Err(err.into()),
            None => Err(StoreError::Unavailable(
                "the listening connection closed".into(),
            )),
        }
    }
}
