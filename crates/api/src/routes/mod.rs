//! HTTP routes. Each handler parses its input, calls one use case from `service`, and
//! renders the result; the OpenAPI document is collected from these same handlers.

pub mod api_keys;
pub mod billing;
pub mod catalog;
pub mod context;
pub mod coupons;
pub mod credits;
pub mod customers;
pub mod events;
pub mod gateways;
pub mod health;
pub mod metrics;
pub mod operator;
pub mod orders;
pub mod portal;
pub mod portal_subscriptions;
pub mod renewals;
pub mod retention;
pub mod sessions;
pub mod stock;
pub mod subscriptions;
pub mod support;
pub mod test_clocks;
pub mod webhooks;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use tenure_app::dto::InMode;
use tenure_app::versions::etag;
use tenure_domain::access::Mode;

/// Registers every `/v1` route. The portal's routes sit in their own `/portal` scope:
/// actix tries a request against each route of a scope in turn (a regex per route with a
/// path parameter), so the portal's hot reads do not first try every merchant route.
pub fn configure_v1(cfg: &mut ServiceConfig) {
    cfg.service(
        scope::scope("/portal")
            .configure(portal::configure)
            .configure(portal_subscriptions::configure)
            .configure(billing::configure_portal)
            .configure(gateways::configure_portal)
            .configure(renewals::configure_portal)
            .configure(support::configure_portal)
            .configure(retention::configure_portal)
            .configure(orders::configure_portal)
            .configure(stock::configure_portal),
    )
    .configure(catalog::configure)
    .configure(customers::configure)
    .configure(context::configure)
    .configure(sessions::configure)
    .configure(events::configure)
    .configure(webhooks::configure)
    .configure(billing::configure)
    .configure(credits::configure)
    .configure(gateways::configure)
    .configure(subscriptions::configure)
    .configure(support::configure)
    .configure(renewals::configure)
    .configure(retention::configure)
    .configure(coupons::configure)
    .configure(metrics::configure)
    .configure(api_keys::configure)
    .configure(test_clocks::configure)
    .configure(orders::configure)
    .configure(stock::configure)
    .configure(operator::configure);
}

/// 201 with the created resource, in the caller's mode, and its ETag.
pub fn created<T: Serialize>(mode: Mode, body: &T, version: DateTime<Utc>) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::ETAG, etag(version)))
        .json(InMode::new(mode, body))
}

/// Marks a response that holds a secret shown once (a new key, a signing secret):
/// `Cache-Control: no-store`, so no cache keeps it, and the idempotency layer keeps a
/// refusal to replay it instead of its body (`middleware::idempotency`).
pub fn holding_secret(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// 200 with a resource and its ETag.
pub fn ok_versioned<T: Serialize>(mode: Mode, body: &T, version: DateTime<Utc>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag(version)))
        .json(InMode::new(mode, body))
}

/// The `If-Match` header, if sent.
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
