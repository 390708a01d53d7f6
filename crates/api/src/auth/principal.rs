use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use tenure_domain::access::Mode;
use tenure_domain::ids::{CustomerId, MerchantId};
use tenure_store::repo::{api_keys, customers, identity_providers, merchants};

use super::{key_cache, scopes};
use crate::error::ApiError;
use crate::state::AppState;
use tenure_app::merchants::api_keys::{self as keys, MerchantKey};
use tenure_app::sessions::tokens::{self as jwt, Session, TokenError};

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A merchant's secret key, with what it may do.
    Merchant(MerchantKey),
    Customer(Session),
    /// The operator's token (`TENURE_OPERATOR_TOKEN`): the `/v1/operator/` routes only.
    Operator,
}

impl Principal {
    /// The merchant whose data this caller reaches; none for the operator.
    pub fn merchant(&self) -> Option<MerchantId> {
        match self {
            Principal::Merchant(key) => Some(key.merchant),
            Principal::Customer(s) => Some(s.merchant),
            Principal::Operator => None,
        }
    }

    /// The mode of the tenant this caller reaches; none for the operator.
    pub fn mode(&self) -> Option<Mode> {
        match self {
            Principal::Merchant(key) => Some(key.mode),
            Principal::Customer(s) => Some(s.mode),
            Principal::Operator => None,
        }
    }

    /// The key under which this caller's rate limits are kept: a merchant's keys share
    /// the merchant's.
    pub fn scope(&self) -> String {
        match self {
            Principal::Merchant(key) => key.merchant.to_string(),
            Principal::Customer(s) => format!("{}/{}", s.merchant, s.customer),
            Principal::Operator => "operator".to_owned(),
        }
    }

    /// The key under which this caller's idempotency keys are kept: a merchant's per
    /// secret key (as Stripe keeps them per account and key), so a stored response is
    /// only ever replayed to the key that made the request, never to another key of the
    /// merchant (perhaps restricted, which must not read what an unrestricted one got).
    /// Stored beside the merchant's id (a column of its own, for the erasure's search and
    /// distribution by merchant).
    pub fn idempotency_scope(&self) -> String {
        match self {
            Principal::Merchant(key) => format!("{}/{}", key.merchant, key.key),
            other => other.scope(),
        }
    }
}

/// A refused credential, remembered like an accepted one so it is checked only once.
#[derive(Debug, Clone, Copy)]
struct Refused(&'static str);

/// Resolves (once per request) the caller from `Authorization: Bearer …`. Both outcomes
/// are cached in the request's extensions: a principal, or the refusal of a credential
/// (errors such as an unreachable database are not, so a later attempt tries again).
pub async fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(*principal);
    }
    if let Some(Refused(reason)) = req.extensions().get::<Refused>() {
        return Err(ApiError::Unauthenticated(reason));
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let resolved = match bearer(req) {
        Ok(credential) if keys::looks_like_secret_key(credential) => {
            merchant_from_key(state, credential).await
        }
        Ok(credential) if state.operator_token.matches(credential) => Ok(Principal::Operator),
        Ok(credential) => customer_from_token(state, credential, named_merchant(req)).await,
        Err(err) => Err(err),
    };
    match resolved {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            Ok(principal)
        }
        Err(ApiError::Unauthenticated(reason)) => {
            req.extensions_mut().insert(Refused(reason));
            Err(ApiError::Unauthenticated(reason))
        }
        Err(other) => Err(other),
    }
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated(
            "send Authorization: Bearer <secret key or customer session token>",
        ))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not valid text"))?;
    let credential = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or(ApiError::Unauthenticated(
            "the Authorization header must use the Bearer scheme",
        ))?;
    if credential.len() > jwt::MAX_TOKEN_BYTES {
        return Err(ApiError::Unauthenticated("the credential is too long"));
    }
    Ok(credential)
}

/// The header a frontend sends beside a token from the merchant's own identity provider
/// to say which merchant it signs in to. The merchant id is public (like a publishable
/// key): it only chooses among whose providers the token is looked up, and the token must
/// still verify with one of them.
pub const MERCHANT_HEADER: &str = "tenure-merchant";

/// The merchant named by [`MERCHANT_HEADER`]: `None` when the header is absent, an error
/// when it names no merchant id.
fn named_merchant(req: &HttpRequest) -> Result<Option<MerchantId>, ApiError> {
    let Some(value) = req.headers().get(MERCHANT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<MerchantId>().ok())
        .map(Some)
        .ok_or(ApiError::Unauthenticated(
            "the Tenure-Merchant header must be your merchant id (mer_…)",
        ))
}

async fn merchant_from_key(state: &AppState, key: &str) -> Result<Principal, ApiError> {
    let hash = keys::hash(key);
    let cache_key = key_cache::hex(&hash);
    let now = state.now();
    let found = match state.api_keys.get(&cache_key) {
        Some(found) => found,
        None => {
            let started = state.api_keys.lookup_start();
            let mut conn = state.app.db.conn().await?;
            let grant = api_keys::by_hash(&mut conn, &hash)
                .await?
                .ok_or(ApiError::Unauthenticated("the secret key is not valid"))?;
            let found = MerchantKey::from_grant(&grant, key);
            state.api_keys.put(cache_key, found, started);
            found
        }
    };
    // A rolled key's end is checked on every request, cached or not.
    if !found.works_at(now) {
        return Err(ApiError::Unauthenticated("the secret key has expired"));
    }
    state.api_keys.note_use(&state.app, found, now);
    Ok(Principal::Merchant(found))
}

fn token_error(err: TokenError) -> ApiError {
    ApiError::Unauthenticated(match err {
        TokenError::Malformed => "the session token is malformed",
        TokenError::Invalid => {
            "the session token's signature, algorithm, issuer or audience is not accepted"
        }
        TokenError::Expired => "the session token has expired",
        TokenError::NotYetValid => "the session token is not valid yet",
    })
}

async fn customer_from_token(
    state: &AppState,
    token: &str,
    named_merchant: Result<Option<MerchantId>, ApiError>,
) -> Result<Principal, ApiError> {
    let now = state.now();
    let (issuer, audiences) = jwt::unverified_issuer_and_audiences(token).map_err(token_error)?;
    if issuer == jwt::ISSUER {
        let session = state.app.sessions.verify(token, now).map_err(token_error)?;
        return Ok(Principal::Customer(session));
    }
    // A provider's token is looked up only among the providers of the merchant the
    // request names: a token is never the one to choose its merchant, so another
    // merchant registering the same issuer and audience cannot capture or block it.
    let merchant = named_merchant?.ok_or(ApiError::Unauthenticated(
        "a token from your identity provider needs the Tenure-Merchant header naming your merchant id",
    ))?;
    let mut conn = state.app.db.conn().await?;
    let provider =
        match identity_providers::by_issuer_and_audience(&mut conn, merchant, &issuer, &audiences)
            .await?
            .as_slice()
        {
            [provider] => provider.clone(),
            // None, or a token addressed to two of the merchant's applications.
            _ => return Err(token_error(TokenError::Invalid)),
        };
    let (algorithm, key) = jwt::provider_key(&provider.algorithm, &provider.verification_key)
        .map_err(|_| token_error(TokenError::Invalid))?;
    let claims: serde_json::Map<String, serde_json::Value> =
        jwt::verify_signature(token, &key, algorithm, &provider.issuer, &provider.audience)
            .map_err(token_error)?;
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    let exp = number("exp").ok_or_else(|| token_error(TokenError::Invalid))?;
    let nbf = number("nbf")
        .or_else(|| number("iat"))
        .unwrap_or(i64::MIN / 2);
    jwt::check_lifetime(nbf, exp, now).map_err(token_error)?;
    let external_id = claims
        .get(&provider.customer_claim)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| token_error(TokenError::Invalid))?;
    let customer = customers::get_by_external_id(&mut conn, merchant, external_id)
        .await
        .map_err(|err| match err {
            tenure_store::StoreError::NotFound => {
                ApiError::Unauthenticated("the token names no customer of this merchant")
            }
            other => other.into(),
        })?;
    customer.ensure_not_erased()?;
    // The tenant named by the header is of one mode; its providers and customers are its
    // own, so the token reaches that mode only.
    let mode = merchants::mode(&mut conn, merchant).await?;
    Ok(Principal::Customer(Session {
        merchant,
        customer: customer.id,
        mode,
    }))
}

/// A merchant's secret key: every `/v1/` route except the portal and the operator's,
/// with the scope the route requires ([`scopes::required`]) checked here, for every
/// merchant route at once: a restricted key without it is refused with 403
/// `missing_scope`.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedMerchant(pub MerchantId, pub MerchantKey);

impl AuthenticatedMerchant {
    /// The mode of the key's tenant, which every object rendered to it carries.
    pub fn mode(&self) -> Mode {
        self.1.mode
    }
}

impl FromRequest for AuthenticatedMerchant {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(&req).await? {
                Principal::Merchant(key) => {
                    scopes::check(&req, key)?;
                    Ok(AuthenticatedMerchant(key.merchant, key))
                }
                Principal::Customer(_) => Err(ApiError::Forbidden {
                    code: "customer_token_not_allowed",
                    detail: "this route takes a merchant secret key; customer session tokens are for /v1/portal/ routes".to_owned(),
                }),
                Principal::Operator => Err(operator_not_allowed()),
            }
        })
    }
}

fn operator_not_allowed() -> ApiError {
    ApiError::Forbidden {
        code: "operator_token_not_allowed",
        detail: "the operator token is for /v1/operator/ routes only; act for a merchant with one of its secret keys".to_owned(),
    }
}

/// The operator's token: the `/v1/operator/` routes.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedOperator;

impl FromRequest for AuthenticatedOperator {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(&req).await? {
                Principal::Operator => Ok(AuthenticatedOperator),
                Principal::Merchant(_) | Principal::Customer(_) => Err(ApiError::Forbidden {
                    code: "operator_token_required",
                    detail: "operator routes take the operator's token (TENURE_OPERATOR_TOKEN)"
                        .to_owned(),
                }),
            }
        })
    }
}

/// A customer session token: the `/v1/portal/` routes, scoped to one customer.
#[derive(Debug, Clone, Copy)]
pub struct AuthenticatedCustomer {
    pub merchant: MerchantId,
    pub customer: CustomerId,
    /// The session's mode, which every object rendered to it carries.
    pub mode: Mode,
}

impl AuthenticatedCustomer {
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl FromRequest for AuthenticatedCustomer {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            match authenticate(&req).await? {
                Principal::Customer(s) => Ok(AuthenticatedCustomer {
                    merchant: s.merchant,
                    customer: s.customer,
                    mode: s.mode,
                }),
                Principal::Operator => Err(operator_not_allowed()),
                Principal::Merchant(_) => Err(ApiError::Forbidden {
                    code: "merchant_key_not_allowed",
                    detail: "portal routes take a customer session token (POST /v1/customer_sessions); merchant secret keys must never reach a browser or app".to_owned(),
                }),
            }
        })
    }
}
