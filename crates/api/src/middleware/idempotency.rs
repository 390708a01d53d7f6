//! `Idempotency-Key` on POST (Stripe semantics, IETF draft): the first request with a key
//! runs and its response is stored; a retry with the same key and body gets that response
//! again with `Idempotent-Replayed: true` (a JSON body is compared by value, not bytes);
//! the same key with another body is 422 `idempotency_key_reused`; a duplicate arriving
//! while the first runs is 409 `idempotency_key_in_use`. Keys are scoped to the caller
//! (a merchant's to the secret key that sent them) and kept 24 hours.
//!
//! A response that says `Cache-Control: no-store` holds a secret shown once (a new API
//! key, a webhook signing secret): its body is not kept, and a retry gets 409
//! `idempotent_replay_withheld` instead of it, and runs nothing.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenure_domain::ids::MerchantId;
use tenure_store::repo::idempotency::{self, Claim, StoredResponse};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
pub const MAX_KEY_LEN: usize = 255;
/// Requests of any other method are never stored or replayed, with or without a key.
pub const COVERED_METHOD: Method = Method::POST;
/// Response headers worth replaying; per-request ones (X-Request-Id) are not.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::ETAG, header::LOCATION];

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if req.method() != COVERED_METHOD || !req.headers().contains_key(&IDEMPOTENCY_KEY) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let key = match idempotency_key(req.headers()) {
        Ok(key) => key,
        Err(err) => return Ok(req.error_response(err)),
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(ApiError::internal("application state missing")));
    };
    let principal = match authenticate(req.request()).await {
        Ok(p) => p,
        Err(err) => return Ok(req.error_response(err)),
    };
    // The operator's requests (creating merchants) are not kept: they belong to no
    // merchant, whose erasure and retention the stored responses follow.
    let Some(merchant) = principal.merchant() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(err) => return Ok(req.error_response(err)),
    };
    let scope = principal.idempotency_scope();
    let hash = request_hash(&req, &body);
    let claimed_at = state.now();

    let claim = async {
        let mut conn = state.app.db.conn().await?;
        let claim =
            idempotency::claim(&mut conn, merchant, &scope, &key, &hash, claimed_at).await?;
        Ok::<_, ApiError>(claim)
    }
    .await;
    match claim {
        Err(err) => Ok(req.error_response(err)),
        Ok(Claim::Mismatch) => Ok(req.error_response(ApiError::IdempotencyKeyReused)),
        Ok(Claim::InProgress) => Ok(req.error_response(ApiError::IdempotencyKeyInUse)),
        Ok(Claim::Replay(stored)) => Ok(req.into_response(replay(&stored))),
        Ok(Claim::Acquired) => {
            req.set_payload(Payload::from(body));
            let res = next.call(req).await?;
            let claimed = Claimed {
                merchant,
                scope: &scope,
                key: &key,
                at: claimed_at,
            };
            remember(&state, claimed, res).await
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
    };
    let value = headers
        .get(&IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?
        .trim();
    if value.is_empty() || value.len() > MAX_KEY_LEN || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(value.to_owned())
}

async fn read_body(req: &mut ServiceRequest) -> Result<web::Bytes, ApiError> {
    crate::extract::read_capped(req.take_payload()).await
}

/// Identifies "the same request": method, path, query and body, a JSON body by its value
/// so that a client re-serialising on retry (other whitespace, other key order) still gets
/// its replay, as Stripe compares parameters rather than bytes.
///
/// Fingerprints stored before bodies were canonicalised differ for any body that was not
/// already compact with sorted keys. That is harmless: keys live 24 hours, and such a
/// retry is refused with 422 `idempotency_key_reused`, never run twice.
fn request_hash(req: &ServiceRequest, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [req.method().as_str(), req.path(), req.query_string()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        // Canonical JSON is itself valid JSON, so it never collides with a raw body
        // that is not.
        Ok(value) => {
            let mut canonical = Vec::with_capacity(body.len());
            write_canonical(&value, &mut canonical);
            hasher.update(&canonical);
        }
        Err(_) => hasher.update(body),
    }
    hasher.finalize().to_vec()
}

/// Compact JSON with every object's keys sorted. Sorted here rather than trusting
/// `serde_json::Map`'s order, which becomes insertion order wherever any crate in the
/// build enables serde_json's `preserve_order`.
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&serde_json::Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    // Writing a string, number, bool or null into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn replay(stored: &StoredResponse) -> HttpResponse {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if let serde_json::Value::Object(headers) = &stored.headers {
        for (name, value) in headers {
            if let (Ok(name), Some(value)) = (HeaderName::try_from(name.as_str()), value.as_str())
                && let Ok(value) = HeaderValue::from_str(value)
            {
                res.insert_header((name, value));
            }
        }
    }
    res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    res.body(stored.body.clone())
}

/// Set on a response that refused the request for something other than the request
/// itself (a header such as `Tenure-Agent`), which a retry may well fix.
#[derive(Debug, Clone, Copy)]
pub struct NotFinal;

/// Whether a response is final for its key. Server errors, conflicts and rate limits are
/// transient, and a refusal of the credential (401, 403) or of a header
/// ([`NotFinal`]) changed nothing and says nothing about the request: the key is
/// released so that a retry runs the request again.
fn is_final(status: StatusCode, not_final: bool) -> bool {
    !(not_final
        || status.is_server_error()
        || status == StatusCode::CONFLICT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN)
}

/// Whether a response holds a secret shown once, which must not be kept: the handlers
/// of such responses say `Cache-Control: no-store`.
fn holds_secret(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"))
}

/// What is kept in place of a response that held a secret: the problem a retry gets.
async fn withheld() -> Result<StoredResponse, ApiError> {
    let res = actix_web::ResponseError::error_response(&ApiError::IdempotentReplayWithheld);
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|_| ApiError::internal("problem body could not be buffered"))?;
    let mut headers = serde_json::Map::new();
    if let Some(content_type) = content_type {
        headers.insert(
            header::CONTENT_TYPE.as_str().to_owned(),
            content_type.into(),
        );
    }
    Ok(StoredResponse {
        status: status.as_u16(),
        headers: serde_json::Value::Object(headers),
        body: body.to_vec(),
    })
}

/// The key this request holds, and since when.
#[derive(Clone, Copy)]
struct Claimed<'a> {
    merchant: MerchantId,
    scope: &'a str,
    key: &'a str,
    at: DateTime<Utc>,
}

async fn remember(
    state: &AppState,
    claimed: Claimed<'_>,
    res: ServiceResponse<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let status = res.status();
    let not_final = res.response().extensions().get::<NotFinal>().is_some();
    let (req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let body = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| ApiError::internal("response body could not be buffered"))?;

    let outcome = async {
        let mut conn = state.app.db.conn().await?;
        if is_final(status, not_final) && holds_secret(res.headers()) {
            // Nothing here names a customer, so no erasure lock is needed.
            idempotency::store_response(
                &mut conn,
                claimed.merchant,
                claimed.scope,
                claimed.key,
                &withheld().await?,
                state.now(),
            )
            .await?;
        } else if is_final(status, not_final) {
            let headers: serde_json::Map<String, serde_json::Value> = REPLAYED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = res.headers().get(name)?.to_str().ok()?;
                    Some((name.as_str().to_owned(), value.into()))
                })
                .collect();
            let stored = StoredResponse {
                status: status.as_u16(),
                headers: serde_json::Value::Object(headers),
                body: body.to_vec(),
            };
            let anonymised = tenure_app::gdpr::complete_idempotent_request(
                &mut conn,
                claimed.merchant,
                (claimed.scope, claimed.key, claimed.at),
                &stored,
                state.now(),
            )
            .await?;
            if anonymised {
                tracing::info!(
                    key = claimed.key,
                    "idempotent response anonymised: it names a customer erased meanwhile"
                );
            }
        } else {
            idempotency::release(&mut conn, claimed.merchant, claimed.scope, claimed.key).await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(err) = outcome {
        // The request itself succeeded; failing to remember it only means a retry would
        // run again (and, for a create, could duplicate), so it is logged loudly.
        tracing::error!(error = %err, key = claimed.key, "could not store the idempotent response");
    }
    let res = res.set_body(body).map_into_boxed_body();
    Ok(ServiceResponse::new(req, res))
}
