//! Secret keys, the audit trail, and the operator's view of merchants.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::access::{KeyScopes, Scope};
use tenure_domain::ids::{ApiKeyId, AuditEventId, MerchantId};
use tenure_store::repo::api_keys::ApiKeyRow;
use tenure_store::repo::audit_events::AuditEventRow;
use tenure_store::repo::merchants::Merchant;

use crate::merchants::{CreatedMerchant, CreatedTenant};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A scope of a restricted key, `resource:read` or `resource:write` (write implies read):
/// every scope `tenure_domain::access` knows, as a schema.
pub struct ScopeName;

impl PartialSchema for ScopeName {
    fn schema() -> RefOr<Schema> {
        let names: Vec<String> = Scope::all().map(|s| s.to_string()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        super::common::string_enum(
            "A scope of a restricted key: resource:read or resource:write (write implies read)",
            &names,
        )
    }
}

impl ToSchema for ScopeName {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "support agent", "scopes": ["customers:read", "customer_sessions:write"]}))]
pub struct CreateApiKey {
    /// A name to recognise the key by (at most 100 characters).
    pub name: Option<String>,
    /// The scopes of a restricted key; leave out (or null) for an unrestricted key. A key
    /// can only create keys that grant no more than it holds.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"expires_in_secs": 3600}))]
pub struct RollApiKey {
    /// How long the old key keeps working, in seconds: 0 (at once) to 604800 (7 days),
    /// default 86400 (24 hours).
    #[schema(minimum = 0, maximum = 604800)]
    pub expires_in_secs: Option<i64>,
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    /// Works, with no end set.
    Active,
    /// Works until `expires_at` (a rolled key).
    Expiring,
    /// `expires_at` has passed.
    Expired,
    /// Revoked: refused at once on every process.
    Revoked,
}

/// A secret key as listed: never the secret itself.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "key_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "api_key", "name": "support agent",
    "prefix": "sk_test_a1B2", "scopes": ["customers:read"], "status": "active",
    "created_at": "2026-11-25T10:00:00Z", "last_used_at": null, "expires_at": null, "revoked_at": null}))]
pub struct ApiKeyDto {
    pub id: String,
    /// Always `api_key`.
    pub object: String,
    pub name: Option<String>,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// The scopes of a restricted key; null for an unrestricted key.
    #[schema(value_type = Option<Vec<ScopeName>>)]
    pub scopes: Option<Vec<String>>,
    pub status: ApiKeyStatus,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the key was last used, to the minute (written at most once a minute).
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When a rolled key stops working.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyDto {
    pub fn render(row: ApiKeyRow, now: DateTime<Utc>) -> Self {
        let status = match (row.revoked_at, row.expires_at) {
            (Some(_), _) => ApiKeyStatus::Revoked,
            (None, Some(at)) if at <= now => ApiKeyStatus::Expired,
            (None, Some(_)) => ApiKeyStatus::Expiring,
            (None, None) => ApiKeyStatus::Active,
        };
        // Shown as the domain writes them, so a scope no longer known is left out.
        let scopes = KeyScopes::from_stored(row.scopes.as_deref()).to_strings();
        Self {
            id: ApiKeyId::from_uuid(row.id).to_string(),
            object: "api_key".to_owned(),
            name: row.name,
            prefix: row.key_prefix,
            scopes,
            status,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A key just made (created or rolled), with its secret: shown this once, never again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "key_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "api_key", "name": "support agent",
    "prefix": "sk_test_a1B2", "scopes": ["customers:read"], "status": "active",
    "created_at": "2026-11-25T10:00:00Z", "last_used_at": null, "expires_at": null, "revoked_at": null,
    "secret": "sk_test_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0"}))]
pub struct CreatedApiKeyDto {
    #[serde(flatten)]
    pub key: ApiKeyDto,
    /// The secret key. Store it now: Tenure keeps only its hash.
    pub secret: String,
}

/// One state-changing request made with one of the merchant's keys.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "aud_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "audit_event",
    "api_key": "key_01jf9zc0f4e3a8r7m2k4t5n6bc", "agent": "renewal-assistant",
    "method": "POST", "route": "/v1/subscriptions/{id}/pause", "resource_id": "sub_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "request_id": "0193b2c4-…", "idempotency_key": "pause-42", "status": 200,
    "request_body": {"resume_at": null}, "created_at": "2026-11-25T10:00:00Z"}))]
pub struct AuditEventDto {
    pub id: String,
    /// Always `audit_event`.
    pub object: String,
    /// The key the request was made with.
    pub api_key: String,
    /// The `Tenure-Agent` header the request carried, if any.
    pub agent: Option<String>,
    pub method: String,
    /// The route's template, as in the OpenAPI document.
    pub route: String,
    /// The resource the request acted on: the path's id, or the id of the resource it
    /// created.
    pub resource_id: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The HTTP status the request was answered with.
    pub status: u16,
    /// What the caller asked to change: the JSON body as sent, refused ones included (so
    /// any JSON value, not only an object), with secrets and anything like a card number
    /// replaced by `"[redacted]"`; null without a JSON body.
    pub request_body: Option<serde_json::Value>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<AuditEventRow> for AuditEventDto {
    fn from(row: AuditEventRow) -> Self {
        Self {
            id: AuditEventId::from_uuid(row.id).to_string(),
            object: "audit_event".to_owned(),
            api_key: ApiKeyId::from_uuid(row.api_key_id).to_string(),
            agent: row.agent,
            method: row.method,
            route: row.route,
            resource_id: row.resource_id,
            request_id: row.request_id,
            idempotency_key: row.idempotency_key,
            status: u16::try_from(row.status).unwrap_or_default(),
            request_body: row.request_body,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilterParams {
    /// Only requests made with this key (`key_…`).
    pub api_key: Option<String>,
    /// Only requests that named this agent in `Tenure-Agent`.
    pub agent: Option<String>,
    /// Only requests about this resource id.
    pub resource_id: Option<String>,
    /// Only requests made at or after this instant.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_from: Option<DateTime<Utc>>,
    /// Only requests made before this instant.
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme"}))]
pub struct CreateMerchant {
    pub name: String,
}

/// One tenant of a merchant account: its test tenant or its live tenant, each with data
/// of its own and keys of its mode (`sk_test_…`, `sk_live_…`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "mer_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "merchant", "name": "Acme",
    "created_at": "2026-11-25T10:00:00Z", "account_id": "acct_01jf9zc0f4e3a8r7m2k4t5n6bc", "livemode": false}))]
pub struct MerchantDto {
    pub id: String,
    /// Always `merchant`.
    pub object: String,
    pub name: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The account (`acct_…`) whose test or live tenant this is.
    pub account_id: String,
    /// Whether this is the account's live tenant.
    pub livemode: bool,
}

impl From<Merchant> for MerchantDto {
    fn from(m: Merchant) -> Self {
        Self {
            id: m.id.to_string(),
            object: "merchant".to_owned(),
            name: m.name,
            created_at: m.created_at,
            account_id: m.account.to_string(),
            livemode: m.mode.is_live(),
        }
    }
}

/// A tenant just created, with its first (unrestricted) secret key, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "mer_01jf9zc0f4e3a8r7m2k4t5n6bd", "object": "merchant", "name": "Acme",
    "created_at": "2026-11-25T10:00:00Z", "account_id": "acct_01jf9zc0f4e3a8r7m2k4t5n6bc", "livemode": true,
    "secret_key": "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0",
    "api_key": "key_01jf9zc0f4e3a8r7m2k4t5n6bd"}))]
pub struct CreatedTenantDto {
    #[serde(flatten)]
    pub merchant: MerchantDto,
    /// The tenant's first secret key, unrestricted. Store it now.
    pub secret_key: String,
    /// The key's record (`key_…`), as `GET /v1/api_keys` lists it.
    pub api_key: String,
}

impl From<CreatedTenant> for CreatedTenantDto {
    fn from(created: CreatedTenant) -> Self {
        Self {
            merchant: MerchantDto::from(created.merchant),
            secret_key: created.secret_key,
            api_key: created.api_key.to_string(),
        }
    }
}

/// A merchant account just created: its test tenant with its first `sk_test_` key, and
/// in `live` its live tenant with its first `sk_live_` key, each shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "mer_01jf9zc0f4e3a8r7m2k4t5n6bc", "object": "merchant", "name": "Acme",
    "created_at": "2026-11-25T10:00:00Z", "account_id": "acct_01jf9zc0f4e3a8r7m2k4t5n6bc", "livemode": false,
    "secret_key": "sk_test_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0",
    "api_key": "key_01jf9zc0f4e3a8r7m2k4t5n6bc",
    "live": {"id": "mer_01jf9zc0f4e3a8r7m2k4t5n6bd", "object": "merchant", "name": "Acme",
        "created_at": "2026-11-25T10:00:00Z", "account_id": "acct_01jf9zc0f4e3a8r7m2k4t5n6bc", "livemode": true,
        "secret_key": "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0",
        "api_key": "key_01jf9zc0f4e3a8r7m2k4t5n6bd"}}))]
pub struct CreatedMerchantDto {
    /// The test tenant.
    #[serde(flatten)]
    pub test: CreatedTenantDto,
    /// The live tenant.
    pub live: CreatedTenantDto,
}

impl From<CreatedMerchant> for CreatedMerchantDto {
    fn from(created: CreatedMerchant) -> Self {
        Self {
            test: created.test.into(),
            live: created.live.into(),
        }
    }
}

/// A merchant id for rendering a list cursor.
pub fn merchant_cursor(m: &Merchant) -> String {
    let id: MerchantId = m.id;
    id.to_string()
}
