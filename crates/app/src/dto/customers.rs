use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tenure_domain::customer::{ChannelPreference, Customer, MAX_TAG_CHARS};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A tag as stored and shown (`tenure_domain::customer::normalize_tag`): 1 to 64 of a-z,
/// 0-9, `-`, `_`, `:`, `.`. Tags sent are trimmed and lower-cased first. The fields stay
/// strings in Rust.
pub struct Tag;

impl PartialSchema for Tag {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A lower-case slug: letters a-z, digits, '-', '_', ':' and '.'; sent tags are \
trimmed and lower-cased first",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_TAG_CHARS))
            .pattern(Some(format!("^[a-z0-9_:.-]{{1,{MAX_TAG_CHARS}}}$")))
            .examples(["vip"])
            .into()
    }
}

impl ToSchema for Tag {}

wire_enum! {
    /// How the customer wants to hear from the merchant: `email` (the default), `sms`,
    /// `push`, or `none` for no messages (docs/customers.md).
    ChannelPreferenceDto from ChannelPreference { Email, Sms, Push, None }
}

/// Tells "field absent" (outer None) from "field: null" (Some(None)) in PATCH bodies.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"external_id": "user_4711", "email": "ada@example.com", "name": "Ada Lovelace",
    "locale": "en-GB", "metadata": {"crm_id": "A-17"}, "tags": ["vip"]}))]
pub struct CreateCustomer {
    /// The merchant's own id for this customer; unique per merchant.
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// A BCP 47 language tag.
    pub locale: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[schema(value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// How the customer wants to hear from the merchant; `email` when omitted.
    #[schema(value_type = Option<ChannelPreferenceDto>)]
    pub channel_preference: Option<String>,
    /// A test clock (`clock_…`) the customer lives on for good: everything that happens
    /// to it follows the clock's time (docs/test-clocks.md). Test mode only.
    pub test_clock: Option<String>,
}

/// Fields to change; null clears an optional field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@new.example.com", "tags": ["vip", "beta"]}))]
pub struct UpdateCustomer {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    /// Replaces the metadata object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Replaces the tags.
    #[schema(value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<ChannelPreferenceDto>)]
    pub channel_preference: Option<String>,
}

/// What a signed-in subscriber may change about themselves.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel_preference": "sms"}))]
pub struct UpdatePortalMe {
    #[schema(value_type = Option<ChannelPreferenceDto>)]
    pub channel_preference: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "customer", "external_id": "user_4711",
    "email": "ada@example.com", "name": "Ada Lovelace", "locale": "en-GB", "metadata": {"crm_id": "A-17"},
    "tags": ["vip"], "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z", "erased_at": null,
    "test_clock": null, "channel_preference": "email"}))]
pub struct CustomerDto {
    pub id: String,
    /// Always `customer`.
    pub object: String,
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Vec<Tag>)]
    pub tags: Vec<String>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// When the customer's personal data was erased (`POST /v1/customers/{id}/erase`);
    /// null for a customer that was not erased.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub erased_at: Option<DateTime<Utc>>,
    /// The test clock the customer lives on (`clock_…`); null for a customer in real
    /// time.
    pub test_clock: Option<String>,
    pub channel_preference: ChannelPreferenceDto,
}

impl From<&Customer> for CustomerDto {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id.to_string(),
            object: "customer".to_owned(),
            external_id: c.external_id.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            locale: c.locale.clone(),
            metadata: c.metadata.clone(),
            tags: c.tags.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            erased_at: c.erased_at,
            test_clock: c.test_clock_id.map(|id| id.to_string()),
            channel_preference: c.channel_preference.into(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerFilterParams {
    /// Exact e-mail address.
    pub email: Option<String>,
    /// The merchant's own id.
    pub external_id: Option<String>,
    /// Customers carrying this tag.
    #[param(value_type = Option<Tag>)]
    pub tag: Option<String>,
    /// Customers in this segment now (computed on read, see docs/customers.md).
    #[param(value_type = Option<super::context::SegmentDto>)]
    pub segment: Option<String>,
}

/// What the portal shows a signed-in customer about themselves.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PortalMeDto {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    /// How the subscriber wants to hear from the merchant (`PATCH /v1/portal/me`).
    pub channel_preference: ChannelPreferenceDto,
    /// The date the customer record was created.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub customer_since: DateTime<Utc>,
    /// Whole days since `customer_since`.
    pub tenure_days: i64,
    /// The customer's subscriptions by status, and current plans.
    pub subscriptions: Option<crate::dto::context::SubscriptionSummaryDto>,
}

impl From<&Customer> for PortalMeDto {
    fn from(c: &Customer) -> Self {
        Self {
            id: c.id.to_string(),
            email: c.email.clone(),
            name: c.name.clone(),
            locale: c.locale.clone(),
            channel_preference: c.channel_preference.into(),
            customer_since: c.created_at,
            tenure_days: 0,
            subscriptions: None,
        }
    }
}
