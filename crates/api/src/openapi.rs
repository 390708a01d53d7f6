//! The OpenAPI document, collected from the handlers by utoipa-actix-web and finished
//! here with what every operation shares: security, and problem+json error responses.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

use crate::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenure API",
        version = "1.0.0",
        description = "Headless subscription management: catalog, customers, self-service \
portal, billing, events and webhooks.\n\nTwo credentials: merchant secret keys \
(`Authorization: Bearer sk_test_…`) for every route under /v1 except /v1/portal, and customer \
session tokens (`Authorization: Bearer <JWT>` from POST /v1/customer_sessions) for /v1/portal. \
Money is integer minor units plus an ISO 4217 currency. Lists page newest first with `limit` \
and `starting_after`. Every POST accepts `Idempotency-Key`. Errors are RFC 9457 \
application/problem+json with a stable `code`.",
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "Catalog", description = "Products with their portal policy, and plans"),
        (name = "Customers", description = "The merchant's subscribers"),
        (name = "Customer sessions", description = "Portal tokens and identity providers"),
        (name = "Subscriptions", description = "Subscribe, pause, resume, cancel, change plan; scheduled changes"),
        (name = "Cancellation requests", description = "Customers' requests to cancel (request mode): approve early or decline"),
        (name = "Support tickets", description = "Tickets opened by cancellation requests, with their conversation"),
        (name = "Portal", description = "Self-service routes for a signed-in customer"),
        (name = "Events", description = "What happened, for polling"),
        (name = "Webhooks", description = "Signed event delivery (Standard Webhooks): endpoints, delivery log, redelivery"),
        (name = "Operations", description = "Health and readiness"),
        (name = "Payment methods", description = "Cards as gateway tokens; card numbers are refused everywhere"),
        (name = "Invoices", description = "Invoices, payment attempts and refunds"),
        (name = "Billing settings", description = "Dunning policy and upcoming-renewal notices"),
        (name = "Retention offers", description = "Offers shown to customers who start a cancellation, with eligibility rules and outcome counts"),
        (name = "Metrics", description = "Subscriber metrics of a period: MRR, churn, ARPU, LTV, pauses, reasons, save offers"),
    )
)]
pub struct ApiDoc;

pub const MERCHANT_KEY: &str = "merchant_key";
pub const CUSTOMER_TOKEN: &str = "customer_token";
const PROBLEM_RESPONSE: &str = "Problem";

/// Error statuses every authenticated operation may answer with.
const ERROR_STATUSES: &[(&str, &str)] = &[
    ("400", "Malformed request (bad JSON, bad Idempotency-Key)"),
    ("401", "Missing or invalid credential"),
    ("403", "A credential of the wrong kind for this route"),
    ("404", "No such resource (or another tenant's)"),
    (
        "409",
        "Conflicts with the current state, or a concurrent duplicate",
    ),
    ("412", "If-Match did not match the current ETag"),
    ("413", "Body too large"),
    ("415", "Body is not application/json"),
    (
        "422",
        "Invalid fields, or an Idempotency-Key reused with another body",
    ),
    ("429", "Rate limited; see Retry-After"),
    ("500", "Internal error"),
    ("503", "Database unavailable; retry"),
];

/// Adds security schemes, per-operation security and the shared error responses.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        MERCHANT_KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A merchant secret key, sk_test_…"))
                .build(),
        ),
    );
    components.add_security_scheme(
        CUSTOMER_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("A customer session token from POST /v1/customer_sessions, or from a registered identity provider"))
                .build(),
        ),
    );
    components.responses.insert(
        PROBLEM_RESPONSE.to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description("An RFC 9457 problem document")
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        ),
    );

    for (path, item) in api.paths.paths.iter_mut() {
        let scheme = if path.starts_with("/v1/portal/") {
            Some(CUSTOMER_TOKEN)
        } else if path.starts_with("/v1/") {
            Some(MERCHANT_KEY)
        } else {
            None
        };
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(scheme) = scheme {
                operation.security =
                    Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
            }
            let statuses: &[(&str, &str)] = if scheme.is_some() {
                ERROR_STATUSES
            } else {
                &ERROR_STATUSES[ERROR_STATUSES.len() - 2..]
            };
            for (status, _) in statuses {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(PROBLEM_RESPONSE)));
            }
        }
    }
    api
}
