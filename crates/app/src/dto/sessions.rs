use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The algorithm an identity provider signs with:
/// `crate::sessions::tokens::ALLOWED_PROVIDER_ALGORITHMS` as a schema, for the fields that
/// carry one (they stay strings in Rust, checked by `create_identity_provider`).
pub struct ProviderAlgorithm;

impl PartialSchema for ProviderAlgorithm {
    fn schema() -> RefOr<Schema> {
        super::common::string_enum(
            "A JWT signing algorithm an identity provider may use: `HS256` (a shared secret), \
`RS256`, `ES256` or `EdDSA` (a public key)",
            crate::sessions::tokens::ALLOWED_PROVIDER_ALGORITHMS,
        )
    }
}

impl ToSchema for ProviderAlgorithm {}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc"}))]
pub struct CreateCustomerSession {
    pub customer_id: String,
}

/// A short-lived token for the portal routes, scoped to one customer. Hand it to the
/// customer's browser or app; never hand out the secret key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "customer_session", "customer_id": "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
    "token": "eyJhbGciOiJIUzI1NiJ9.…", "expires_at": "2026-11-25T11:00:00Z"}))]
pub struct CustomerSessionDto {
    /// Always `customer_session`.
    pub object: String,
    pub customer_id: String,
    /// A JWT: send it as `Authorization: Bearer <token>` to /v1/portal/ routes.
    pub token: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"issuer": "https://id.example.com/", "audience": "tenure",
    "algorithm": "EdDSA", "customer_claim": "sub",
    "verification_key": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA8d89AiIc28zP7OvVVLePIhumq/4INO/3pN/2/z2jiNQ=\n-----END PUBLIC KEY-----\n"}))]
pub struct CreateIdentityProvider {
    /// The `iss` of the provider's tokens. Several merchants may share an issuer (a
    /// public one such as Google's) and even an audience: the frontend sends its
    /// merchant id in the `Tenure-Merchant` header beside the token, and the token is
    /// matched only among that merchant's providers.
    pub issuer: String,
    /// The `aud` the tokens must carry. The pair is unique among your own providers (409
    /// `identity_provider_exists`), and a token naming two of your registered audiences
    /// is refused: tokens meant for this provider should carry this audience alone.
    pub audience: String,
    #[schema(value_type = ProviderAlgorithm)]
    pub algorithm: String,
    /// An HS256 secret (at least 32 bytes) or a PEM public key.
    pub verification_key: String,
    /// The claim holding the customer's `external_id` (default `sub`).
    pub customer_claim: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentityProviderDto {
    pub id: String,
    /// Always `identity_provider`.
    pub object: String,
    pub issuer: String,
    pub audience: String,
    #[schema(value_type = ProviderAlgorithm)]
    pub algorithm: String,
    pub customer_claim: String,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The merchant's CORS settings: which web origins may call the portal from a browser.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"object": "cors_settings",
    "allowed_origins": ["https://shop.example.com", "http://localhost:3000"],
    "updated_at": "2026-11-25T10:00:00Z"}))]
pub struct CorsSettingsDto {
    /// Always `cors_settings`.
    pub object: String,
    /// The web origins whose pages may call the /v1/portal/ routes from a browser (CORS),
    /// in their normal spelling. A browser request from any other origin with one of this
    /// merchant's customer tokens is refused with 403 `origin_not_allowed`.
    pub allowed_origins: Vec<String>,
    /// When the settings last changed; null until they are first set.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"allowed_origins": ["https://shop.example.com", "http://localhost:3000"]}))]
pub struct PutCorsSettings {
    /// At most 20 origins, each `scheme://host[:port]` with no path: `https`, or `http`
    /// for `localhost`, `127.0.0.1` and `[::1]` (development). Stored normalised
    /// (lower case, default port dropped). An empty list allows no origin.
    #[schema(max_items = 20)]
    pub allowed_origins: Vec<String>,
}
