//! CORS for the customer-facing routes only: `/v1/portal/…`, the OpenAPI document
//! (`/openapi.json`) and the API reference (`/docs`). Merchant routes take a secret key,
//! which must never reach a browser, so they answer no CORS at all: no `Access-Control-*`
//! header, and a preflight there is a plain `OPTIONS` (405).
//!
//! Which origins may call is each merchant's to set (`PUT /v1/cors_settings`), beside
//! the operator's list (`TENURE_CORS_ALLOWED_ORIGINS`), which allows an origin for every
//! merchant. Two steps, because a preflight carries no credential:
//!
//! - [`cors`], outside the input limits and the credential check, answers a preflight
//!   from an origin that the operator or *any* merchant allows, and puts the CORS headers
//!   on every answer to such an origin (errors included: a page must be able to read a
//!   401, 413 or 429). An origin nobody allows gets 403 `origin_not_allowed` on the
//!   portal and no CORS header anywhere.
//! - [`require_allowed_origin`], inside `rate_limit` (which resolved the credential),
//!   refuses a portal request whose customer token belongs to a merchant that does not
//!   allow the origin (403 `origin_not_allowed`), before any body is read or anything
//!   changes.
//!
//! Requests without `Origin` (apps, servers, same-origin reads) are not affected. Both
//! steps read the process's set of allowed origins (`tenure_app::cors_settings`), so a
//! browser's request costs no query while it is fresh.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, web};
use tenure_app::cors_settings::{self, AllowedOrigins};
use tenure_domain::cors::Origin;

use crate::auth::{Principal, authenticate};
use crate::error::ApiError;
use crate::state::AppState;

/// What a browser may send: the credential, JSON bodies, the idempotency key, the
/// conditional headers, and the merchant beside a token from its own identity provider.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, Tenure-Merchant, \
     Tenure-Consistency-Token";
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// Two hours: the most Chromium keeps a preflight (Firefox keeps up to a day).
const MAX_AGE_SECS: &str = "7200";

/// The operator-wide list of allowed origins (`--cors-allowed-origins`,
/// `TENURE_CORS_ALLOWED_ORIGINS`): each is allowed for every merchant's customers.
#[derive(Debug, Clone, Default)]
pub struct OperatorOrigins(Arc<HashSet<Origin>>);

impl OperatorOrigins {
    pub fn new(origins: impl IntoIterator<Item = Origin>) -> Self {
        Self(Arc::new(origins.into_iter().collect()))
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.contains(origin)
    }
}

/// Which customer-facing surface a path belongs to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/v1/portal/…`: customer tokens, checked against the token's merchant.
    Portal,
    /// The OpenAPI document and the API reference: public, nothing to refuse.
    Document,
}

fn surface(path: &str) -> Option<Surface> {
    if path.starts_with("/v1/portal/") || path == "/v1/portal" {
        Some(Surface::Portal)
    } else if path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/") {
        Some(Surface::Document)
    } else {
        None
    }
}

/// Left by [`cors`] for [`require_allowed_origin`]: a portal request from an origin that
/// the operator does not allow, to be checked against the token's merchant.
#[derive(Clone)]
struct MerchantMustAllow {
    origin: Origin,
    allowed: Arc<AllowedOrigins>,
}

fn not_allowed(detail: String) -> ApiError {
    ApiError::Forbidden {
        code: "origin_not_allowed",
        detail,
    }
}

const HOW_TO_ALLOW: &str = "the merchant allows an origin with PUT /v1/cors_settings \
{\"allowed_origins\": [...]}, or the operator for every merchant with TENURE_CORS_ALLOWED_ORIGINS";

fn origin_unknown(origin: Option<&Origin>) -> ApiError {
    not_allowed(match origin {
        Some(origin) => format!("{origin} may not call this API from a browser: {HOW_TO_ALLOW}"),
        None => format!(
            "the Origin header is not an http(s) origin (scheme://host[:port]) that could be allowed: {HOW_TO_ALLOW}"
        ),
    })
}

fn append_vary(res: &mut ServiceResponse<BoxBody>) {
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}

fn allow_origin(res: &mut ServiceResponse<BoxBody>, origin: &Origin) {
    if let Ok(value) = HeaderValue::from_str(origin.as_str()) {
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}

/// Answers preflights and puts the CORS headers on answers to allowed origins; see the
/// module's documentation.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(surface) = surface(req.path()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(header_value) = req.headers().get(header::ORIGIN) else {
        // The answer depends on Origin, so caches must keep the two apart.
        let mut res = next.call(req).await?.map_into_boxed_body();
        append_vary(&mut res);
        return Ok(res);
    };
    let origin = header_value.to_str().ok().and_then(Origin::from_header);
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?
        .clone();
    let by_operator = origin
        .as_ref()
        .is_some_and(|o| state.cors_allowed_origins.allows(o));
    let allowed = match &origin {
        Some(_) if by_operator => None,
        Some(_) => match cors_settings::allowed_origins(&state.app).await {
            Ok(allowed) => Some(allowed),
            Err(err) => return Ok(req.error_response(ApiError::from(err))),
        },
        None => None,
    };
    let known = origin
        .clone()
        .filter(|o| by_operator || allowed.as_ref().is_some_and(|set| set.by_any_merchant(o)));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);

    let mut res = match known {
        Some(origin) if preflight => {
            let mut res = req.into_response(
                HttpResponse::build(StatusCode::NO_CONTENT)
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE_SECS))
                    .finish(),
            );
            allow_origin(&mut res, &origin);
            res
        }
        Some(origin) => {
            if let (Surface::Portal, Some(allowed)) = (surface, allowed) {
                req.extensions_mut().insert(MerchantMustAllow {
                    origin: origin.clone(),
                    allowed,
                });
            }
            let mut res = next.call(req).await?.map_into_boxed_body();
            allow_origin(&mut res, &origin);
            res.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
            res
        }
        None if preflight || surface == Surface::Portal => {
            req.error_response(origin_unknown(origin.as_ref()))
        }
        // A public document read from an origin nobody allows: answered, without CORS
        // headers, so the browser keeps it from the page.
        None => next.call(req).await?.map_into_boxed_body(),
    };
    append_vary(&mut res);
    Ok(res)
}

/// What a page may read of an answer besides the basic headers.
const EXPOSE_HEADERS: &str =
    "ETag, Retry-After, X-Request-Id, Idempotent-Replayed, Tenure-Consistency-Token";

/// Refuses a portal request from a browser whose customer token belongs to a merchant
/// that does not allow the page's origin. Runs after `rate_limit`, whose credential check
/// it reuses; requests without a customer token are left to the handler (401, or 403 for
/// a secret key).
pub async fn require_allowed_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let pending = req.extensions().get::<MerchantMustAllow>().cloned();
    if let Some(MerchantMustAllow { origin, allowed }) = pending
        && let Ok(Principal::Customer(session)) = authenticate(req.request()).await
        && !allowed.by_merchant(session.merchant, &origin)
    {
        return Ok(req.error_response(not_allowed(format!(
            "{origin} is not among the allowed origins of merchant {}: {HOW_TO_ALLOW}",
            session.merchant
        ))));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MERCHANT_HEADER;
    use crate::middleware::idempotency::IDEMPOTENT_REPLAYED;
    use crate::middleware::replica::CONSISTENCY_TOKEN;
    use crate::middleware::request_id::REQUEST_ID;

    #[test]
    fn only_the_customer_facing_paths_answer_cors() {
        assert_eq!(surface("/v1/portal/subscriptions"), Some(Surface::Portal));
        assert_eq!(surface("/v1/portal"), Some(Surface::Portal));
        assert_eq!(surface("/openapi.json"), Some(Surface::Document));
        assert_eq!(surface("/docs"), Some(Surface::Document));
        assert_eq!(surface("/docs/index.html"), Some(Surface::Document));
        for merchant in [
            "/v1/cors_settings",
            "/v1/portals",
            "/v1/subscriptions",
            "/v1/customer_sessions",
            "/docsx",
            "/metrics",
            "/healthz",
        ] {
            assert_eq!(surface(merchant), None, "{merchant}");
        }
    }

    #[test]
    fn the_allowed_and_exposed_headers_are_the_ones_the_api_uses() {
        let allowed = ALLOW_HEADERS.to_ascii_lowercase();
        assert!(allowed.contains(MERCHANT_HEADER));
        assert!(allowed.contains(CONSISTENCY_TOKEN.as_str()));
        let exposed = EXPOSE_HEADERS.to_ascii_lowercase();
        assert!(exposed.contains(CONSISTENCY_TOKEN.as_str()));
        assert!(exposed.contains(REQUEST_ID.as_str()));
        assert!(exposed.contains(IDEMPOTENT_REPLAYED.as_str()));
    }
}
