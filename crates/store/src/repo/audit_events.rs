//! The audit trail: one row per state-changing merchant request, written by the API
//! once the request's own transaction has committed (docs/keys.md says why).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
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
    /// Migration `2026-12-08-150001_audit_insert_function`.
    #[allow(clippy::too_many_arguments)]
    fn tenure_record_audit_event(
        merchant_id: diesel::sql_types::Uuid,
        id: diesel::sql_types::Uuid,
        api_key_id: diesel::sql_types::Uuid,
        agent: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        method: diesel::sql_types::Text,
        route: diesel::sql_types::Text,
        resource_id: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        request_id: diesel::sql_types::Text,
        idempotency_key: diesel::sql_types::Nullable<diesel::sql_types::Text>,
        status: diesel::sql_types::SmallInt,
        request_body: diesel::sql_types::Nullable<diesel::sql_types::Jsonb>,
        created_at: diesel::sql_types::Timestamptz,
    ) -> diesel::sql_types::Uuid;
}

/// Inserts one entry without waiting for its WAL record to reach the disk
/// (`synchronous_commit = off` for this call's own transaction only), through the
/// migration's `tenure_record_audit_event`, so the statement stays prepared.
///
/// The entry is written after the request's own transaction committed durably, and the
/// events that transaction recorded name the same key, agent and request; waiting for a
/// second flush per request cost merchant writes about 45% of their throughput
/// (BENCHMARKS.md, "Issue 20"). What a crash can lose is the entries of the last few
/// hundred milliseconds (three `wal_writer_delay`s), never a change's events.
pub async fn insert(conn: &mut AsyncPgConnection, row: &AuditEventRow) -> StoreResult<()> {
    diesel::select(tenure_record_audit_event(
        row.merchant_id,
        row.id,
        row.api_key_id,
        row.agent.as_deref(),
        &row.method,
        &row.route,
        row.resource_id.as_deref(),
        &row.request_id,
        row.idempotency_key.as_deref(),
        row.status,
        row.request_body.as_ref(),
        row.created_at,
    ))
    .get_result::<uuid::Uuid>(conn)
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
