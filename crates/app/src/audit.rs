//! The audit trail of merchant requests, and who acted for the events they cause.
//!
//! Every state-changing merchant request is recorded once it has been answered (the API's
//! `middleware::audit` calls [`record`]), with the key, the agent it named, the route,
//! the resource, the request and idempotency ids, the status and the request body,
//! redacted. The events a request records while it runs carry its key, agent and request
//! id: the API runs the handler inside [`acting`], and `events::record_event` reads it,
//! so no use case has to pass it along.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenure_domain::ids::{ApiKeyTag, AuditEventId, AuditEventTag, GenerateId, MerchantId};
use tenure_store::repo::audit_events::{self as repo, AuditEventRow, AuditFilter};
use tenure_store::repo::events::EventActor;
use tenure_store::{Db, Page, PageRequest, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::App;
use crate::dto::access::{AuditEventDto, AuditFilterParams};
use crate::dto::common::{ListParams, parse_field_id};
use crate::error::{AppError, AppResult};

tokio::task_local! {
    static ACTOR: EventActor;
}

/// Runs `work` (a merchant request's handler) as `actor`: the events it records name it.
pub async fn acting<F: Future>(actor: EventActor, work: F) -> F::Output {
    ACTOR.scope(actor, work).await
}

/// The merchant request the current task serves, if any.
pub(crate) fn current_actor() -> Option<EventActor> {
    ACTOR.try_with(Clone::clone).ok()
}

/// What is kept in place of a secret or anything like a card number.
pub const REDACTED: &str = "[redacted]";

/// Field names whose values are secrets wherever they appear in a body, normalised
/// ([`normalised_name`]).
const SECRET_FIELDS: &[&str] = &[
    "verificationkey",
    "authorization",
    "cardnumber",
    "number",
    "cvc",
];

/// Words that make any field holding them secret, wherever they sit in its normalised
/// name: `client_secret`, `clientSecret`, `accessToken`, `api-key`, `privateKey`.
const SECRET_WORDS: &[&str] = &["secret", "token", "password", "apikey", "privatekey"];

/// A field's name as compared: lowercase, without `_` and `-`, so that free-form
/// metadata's `apiKey`, `api-key` and `API_KEY` are one name.
fn normalised_name(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_secret_name(name: &str) -> bool {
    let name = normalised_name(name);
    SECRET_FIELDS.contains(&name.as_str()) || SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// A URL's credentials (`user:password@`) and query (where tokens travel) dropped; any
/// other string as it is.
fn without_url_credentials(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let cleaned = format!("{scheme}://{host}{path}");
    (cleaned != text).then_some(cleaned)
}

/// The body as recorded: every value of a secret-named field, and every string that
/// looks like a card number, replaced by [`REDACTED`], at any depth; URLs lose their
/// userinfo and query.
pub fn redact(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let secret =
                        is_secret_name(key) || tenure_domain::billing::pan::contains_pan(key);
                    let key = if tenure_domain::billing::pan::contains_pan(key) {
                        REDACTED.to_owned()
                    } else {
                        key.clone()
                    };
                    let value = if secret && !value.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) if tenure_domain::billing::pan::contains_pan(text) => {
            Value::String(REDACTED.to_owned())
        }
        Value::String(text) => match without_url_credentials(text) {
            Some(cleaned) => Value::String(cleaned),
            None => Value::String(text.clone()),
        },
        Value::Number(n) if tenure_domain::billing::pan::contains_pan(&n.to_string()) => {
            Value::String(REDACTED.to_owned())
        }
        other => other.clone(),
    }
}

/// One answered merchant request, as the API saw it.
pub struct NewAuditEvent {
    pub merchant: MerchantId,
    pub actor: EventActor,
    pub method: String,
    pub route: String,
    pub resource_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub status: u16,
    /// The request body if it was JSON, not yet redacted.
    pub request_body: Option<Value>,
    pub at: DateTime<Utc>,
}

pub async fn record(state: &App, event: NewAuditEvent) -> AppResult<AuditEventId> {
    let id = AuditEventId::generate();
    let row = AuditEventRow {
        merchant_id: event.merchant.uuid(),
        id: id.uuid(),
        api_key_id: event.actor.api_key,
        agent: event.actor.agent.map(storable),
        method: storable(event.method),
        route: storable(event.route),
        resource_id: event.resource_id.map(storable),
        request_id: storable(event.actor.request_id),
        idempotency_key: event.idempotency_key.map(storable),
        status: i16::try_from(event.status).unwrap_or(i16::MAX),
        request_body: event
            .request_body
            .as_ref()
            .map(|b| storable_json(redact(b))),
        created_at: event.at,
    };
    state.audit_log.write(&state.db, row).await?;
    Ok(id)
}

/// What stands in for NUL, which PostgreSQL's `text` and `jsonb` cannot hold: the
/// Unicode replacement character.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// `text` with every NUL replaced by [`NUL_REPLACEMENT`], so that no caller's input can
/// make the insert fail (and with it the other entries of its batch).
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', &NUL_REPLACEMENT.to_string())
    } else {
        text
    }
}

/// A JSON value with NUL replaced in every string and every key, at any depth.
fn storable_json(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(storable(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(storable_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (storable(key), storable_json(value)))
                .collect(),
        ),
        other => other,
    }
}

/// The most entries one insert takes.
const MAX_BATCH: usize = 256;
/// Entries waiting beyond this make [`record`] wait for room (back-pressure).
const QUEUE: usize = 4_096;

/// Writes the process's audit entries in batches, as group commit does: while one batch
/// is being written, the entries of the requests that finish meanwhile queue up, and the
/// next insert takes them all. Each request still waits until its own entry is written,
/// so a client never sees a success whose entry is not in the table (unless the
/// database fails, which the caller logs). One insert and one commit per batch instead
/// of per request is what keeps the trail within a tenth of a merchant write's cost
/// (BENCHMARKS.md, "Issue 20").
///
/// The writer runs on a thread of its own (`tenure-audit`, with a single-threaded
/// runtime), not on any request's worker: a worker that stops or restarts, or is slow,
/// takes no one else's entry with it. `tenure serve` starts it at start-up with a
/// connection of its own ([`AuditLog::start`]) and, once the HTTP server has stopped,
/// [`AuditLog::shutdown`] writes what is still queued and waits for the thread. Where
/// nothing started it (tests, other commands), the first entry starts it with the
/// caller's pool. It stops by itself when every handle on the log is gone.
#[derive(Clone, Default)]
pub struct AuditLog {
    writer: Arc<Mutex<Writer>>,
    inserts: Arc<AtomicU64>,
}

#[derive(Default)]
enum Writer {
    #[default]
    NotStarted,
    Running {
        queue: mpsc::Sender<Queued>,
        thread: std::thread::JoinHandle<()>,
    },
    Stopped,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

struct Queued {
    row: AuditEventRow,
    written: oneshot::Sender<Result<(), String>>,
}

fn stopped() -> AppError {
    AppError::Unavailable("the audit writer stopped".to_owned())
}

impl AuditLog {
    /// The inserts the writer has made so far (a batch that failed and was written in
    /// halves counts each try): what tests compare with the entries written.
    pub fn inserts(&self) -> u64 {
        self.inserts.load(Ordering::Relaxed)
    }

    /// Starts the writer now, on its own thread, writing through `db` (a pool of its
    /// own: one connection is all it uses). Does nothing if it runs already.
    pub fn start(&self, db: Db) -> std::io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*writer, Writer::NotStarted) {
            *writer = self.spawn(db)?;
        }
        Ok(())
    }

    fn spawn(&self, db: Db) -> std::io::Result<Writer> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let inserts = self.inserts.clone();
        let thread = std::thread::Builder::new()
            .name("tenure-audit".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(write_batches(db, receiver, inserts)),
                    // The queue closes with the receiver: every entry is refused as
                    // unavailable, and logged by its caller.
                    Err(err) => tracing::error!(error = %err, "the audit writer could not start"),
                }
            })?;
        Ok(Writer::Running { queue, thread })
    }

    /// Stops taking entries, writes every entry already queued, and waits until the
    /// writer's thread has ended. An entry recorded afterwards is refused as unavailable
    /// (and logged by its caller). For the end of a graceful shutdown, once the HTTP
    /// server has answered its last request.
    pub async fn shutdown(&self) {
        let writer = std::mem::replace(
            &mut *self.writer.lock().unwrap_or_else(PoisonError::into_inner),
            Writer::Stopped,
        );
        if let Writer::Running { queue, thread } = writer {
            // The writer's receive ends once the last sender is gone and the queue is
            // empty.
            drop(queue);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn write(&self, db: &Db, row: AuditEventRow) -> AppResult<()> {
        let (written, done) = oneshot::channel();
        self.sender(db)?
            .send(Queued { row, written })
            .await
            .map_err(|_| stopped())?;
        done.await
            .map_err(|_| stopped())?
            .map_err(AppError::Unavailable)
    }

    fn sender(&self, db: &Db) -> AppResult<mpsc::Sender<Queued>> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // A writer whose thread ended on its own (a panic) closed its queue: the entries it
        // held were refused to their callers; the next entry starts another writer, so the
        // process does not go on answering writes without their trail.
        if matches!(&*writer, Writer::Running { queue, .. } if queue.is_closed())
            && let Writer::Running { thread, .. } = std::mem::take(&mut *writer)
        {
            let ended = thread.join();
            tracing::error!(
                panicked = ended.is_err(),
                "the audit writer stopped; starting another"
            );
        }
        if matches!(*writer, Writer::NotStarted) {
            *writer = self
                .spawn(db.clone())
                .map_err(|err| AppError::Unavailable(format!("the audit writer: {err}")))?;
        }
        match &*writer {
            Writer::Running { queue, .. } => Ok(queue.clone()),
            _ => Err(stopped()),
        }
    }
}

async fn write_batches(db: Db, mut queue: mpsc::Receiver<Queued>, inserts: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|q| (q.row, q.written)).unzip();
        write_split(&db, rows, replies, &inserts).await;
    }
}

/// Writes `rows` in one insert and answers each waiter. Should the insert fail for
/// anything but the database being out of reach, each half is written on its own, down
/// to single rows: one row the database refuses fails alone, and every other entry of
/// its batch is written.
async fn write_split(
    db: &Db,
    rows: Vec<AuditEventRow>,
    replies: Vec<oneshot::Sender<Result<(), String>>>,
    inserts: &AtomicU64,
) {
    let mut parts = vec![(rows, replies)];
    while let Some((mut rows, mut replies)) = parts.pop() {
        let result = async {
            let mut conn = db.conn().await?;
            inserts.fetch_add(1, Ordering::Relaxed);
            repo::insert_batch(&mut conn, &rows).await
        }
        .await;
        match result {
            Err(err) if rows.len() > 1 && !matches!(err, StoreError::Unavailable(_)) => {
                tracing::warn!(error = %err, rows = rows.len(), "an audit batch failed; writing it in halves");
                let half = rows.len() / 2;
                let (tail_rows, tail_replies) = (rows.split_off(half), replies.split_off(half));
                parts.push((tail_rows, tail_replies));
                parts.push((rows, replies));
            }
            result => {
                let result = result.map_err(|err| err.to_string());
                for reply in replies {
                    // A caller that gave up waiting (its request was dropped) needs no answer.
                    let _ = reply.send(result.clone());
                }
            }
        }
    }
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    filter: AuditFilterParams,
    page: &ListParams,
) -> AppResult<Page<AuditEventDto>> {
    let page: PageRequest = page.page::<AuditEventTag>()?;
    let api_key = filter
        .api_key
        .as_deref()
        .map(|raw| parse_field_id::<ApiKeyTag>(raw, "api_key"))
        .transpose()?;
    if let (Some(from), Some(to)) = (filter.created_from, filter.created_to)
        && to < from
    {
        return Err(AppError::field(
            "created_to",
            "must not be before created_from",
        ));
    }
    let filter = AuditFilter {
        api_key,
        agent: filter.agent,
        resource_id: filter.resource_id,
        created_from: filter.created_from,
        created_to: filter.created_to,
    };
    let mut conn = state.db.conn().await?;
    let rows = repo::list(&mut conn, merchant, &filter, page).await?;
    rows.try_map(|row| Ok(AuditEventDto::from(row)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_and_card_numbers_are_redacted_at_any_depth() {
        let body = json!({
            "name": "Ada",
            "verification_key": "-----BEGIN",
            "metadata": {"note": "card 4242 4242 4242 4242", "webhook_secret": "whsec_x"},
            "items": [{"token": "tok"}, 4242424242424242u64],
            "4242424242424242": 1,
            "scopes": ["customers:read"],
        });
        assert_eq!(
            redact(&body),
            json!({
                "name": "Ada",
                "verification_key": REDACTED,
                "metadata": {"note": REDACTED, "webhook_secret": REDACTED},
                "items": [{"token": REDACTED}, REDACTED],
                REDACTED: REDACTED,
                "scopes": ["customers:read"],
            })
        );
    }

    #[test]
    fn secret_names_are_found_in_any_case_and_spelling() {
        let body = json!({
            "metadata": {
                "apiKey": "k1", "API-KEY": "k2", "accessToken": "t", "privateKey": "p",
                "clientSecret": "c", "db_password_hash": "h", "Authorization": "Bearer x",
                "name": "Ada", "tokenizer": "also hidden: it says token", "keys": 3,
            },
        });
        assert_eq!(
            redact(&body),
            json!({
                "metadata": {
                    "apiKey": REDACTED, "API-KEY": REDACTED, "accessToken": REDACTED,
                    "privateKey": REDACTED, "clientSecret": REDACTED,
                    "db_password_hash": REDACTED, "Authorization": REDACTED,
                    "name": "Ada", "tokenizer": REDACTED, "keys": 3,
                },
            })
        );
    }

    #[test]
    fn urls_lose_their_credentials_and_query() {
        let body = json!({
            "url": "https://user:pa55@hooks.example.com/in/tenure?sig=abc#frag",
            "plain": "https://hooks.example.com/in",
            "with_port": "http://bob@localhost:8080/x?token=1",
            "text": "not a url: a://",
            "note": "see a@b.c?x",
        });
        assert_eq!(
            redact(&body),
            json!({
                "url": "https://hooks.example.com/in/tenure",
                "plain": "https://hooks.example.com/in",
                "with_port": "http://localhost:8080/x",
                "text": "not a url: a://",
                "note": "see a@b.c?x",
            })
        );
    }
}
