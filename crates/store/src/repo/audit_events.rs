//! The audit trail: one row per state-changing merchant request, written by the API
//! once the request's own transaction has committed (docs/keys.md says why).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{ApiKeyId, AuditEventId, MerchantId};

use crate::error::StoreResult;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::audit_events;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub merchant_id: uuid::Uuid,
    pub id: uuid::Uuid,
    pub api_key_id: uuid::Uuid,
    pub agent: Option<String>,
    pub method: String,
    pub route: String,
    pub resource_id: Option<String>,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub status: i16,
    pub request_body: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl AuditEventRow {
    pub fn merchant(&self) -> MerchantId {
        MerchantId::from_uuid(self.merchant_id)
    }
}

diesel::define_sql_function! {
    /// Migration `2026-12-09-000001_audit_insert_batch`: one row per element of the
    /// arrays, which are of one length.
    #[allow(clippy::too_many_arguments)]
    fn tenure_record_audit_events(
        merchant_ids: Array<diesel::sql_types::Uuid>,
        ids: Array<diesel::sql_types::Uuid>,
        api_key_ids: Array<diesel::sql_types::Uuid>,
        agents: Array<Nullable<Text>>,
        methods: Array<Text>,
        routes: Array<Text>,
        resource_ids: Array<Nullable<Text>>,
        request_ids: Array<Text>,
        idempotency_keys: Array<Nullable<Text>>,
        statuses: Array<SmallInt>,
        request_bodies: Array<Nullable<Jsonb>>,
        created_ats: Array<Timestamptz>,
    ) -> diesel::sql_types::Integer;
}

/// Inserts a batch of entries in one call, one statement and one commit, without waiting
/// for the commit's WAL record to reach the disk (`synchronous_commit = off` for this
/// call's own transaction only), through the migration's `tenure_record_audit_events`,
/// whose fixed signature keeps the statement prepared whatever the batch's size.
///
/// Each entry is written after its request's own transaction committed durably, and the
/// events that transaction recorded name the same key, agent and request; waiting for a
/// second flush per request cost merchant writes about 45% of their throughput
/// (BENCHMARKS.md, "Issue 20"). What a crash can lose is the entries of the last few
/// hundred milliseconds (three `wal_writer_delay`s), never a change's events.
pub async fn insert_batch(conn: &mut AsyncPgConnection, rows: &[AuditEventRow]) -> StoreResult<()> {
    fn column<'a, T>(rows: &'a [AuditEventRow], field: impl Fn(&'a AuditEventRow) -> T) -> Vec<T> {
        rows.iter().map(field).collect()
    }
    diesel::select(tenure_record_audit_events(
        column(rows, |r| r.merchant_id),
        column(rows, |r| r.id),
        column(rows, |r| r.api_key_id),
        column(rows, |r| r.agent.as_deref()),
        column(rows, |r| r.method.as_str()),
        column(rows, |r| r.route.as_str()),
        column(rows, |r| r.resource_id.as_deref()),
        column(rows, |r| r.request_id.as_str()),
        column(rows, |r| r.idempotency_key.as_deref()),
        column(rows, |r| r.status),
        column(rows, |r| r.request_body.as_ref()),
        column(rows, |r| r.created_at),
    ))
    .get_result::<i32>(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub api_key: Option<ApiKeyId>,
    pub agent: Option<String>,
    pub resource_id: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

/// The merchant's audit events, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &AuditFilter,
    page: PageRequest,
) -> StoreResult<Page<AuditEventRow>> {
    let mut query = audit_events::table
        .filter(audit_events::merchant_id.eq(merchant.uuid()))
        .select(AuditEventRow::as_select())
        .order(audit_events::id.desc())
        .into_boxed();
    if let Some(key) = filter.api_key {
        query = query.filter(audit_events::api_key_id.eq(key.uuid()));
    }
    if let Some(agent) = &filter.agent {
        query = query.filter(audit_events::agent.eq(agent));
    }
    if let Some(resource) = &filter.resource_id {
        query = query.filter(audit_events::resource_id.eq(resource));
    }
    if let Some(from) = filter.created_from {
        query = query.filter(audit_events::created_at.ge(from));
    }
    if let Some(to) = filter.created_to {
        query = query.filter(audit_events::created_at.lt(to));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(audit_events::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Ok(Page::from_overfetch(rows, &page))
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: AuditEventId,
) -> StoreResult<AuditEventRow> {
    Ok(audit_events::table
        .find((merchant.uuid(), id.uuid()))
        .select(AuditEventRow::as_select())
        .get_result(conn)
        .await?)
}
