//! The OpenAPI document, collected from the handlers by utoipa-actix-web and finished
//! here with what every operation shares: security, and problem+json error responses.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use crate::error::{FieldError, Problem};
use crate::middleware::replica;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenure API",
        version = "1.0.0",
        description = "Headless subscription management: catalog, customers, self-service \
portal, billing, events and webhooks.\n\nTwo credentials: merchant secret keys \
(`Authorization: Bearer sk_test_…` in test mode, `sk_live_…` in live mode) for every route under \
/v1 except /v1/portal, and customer session tokens (`Authorization: Bearer <JWT>` from POST \
/v1/customer_sessions) for /v1/portal. Test and live data never see each other, and every object \
answered says its mode in `livemode`. \
A restricted key holds scopes (`customers:read`, `customers:write`, …; write implies read): each \
merchant operation names the one it requires in `x-required-scope` and in its security \
requirement, and a key without it gets 403 `missing_scope`. A merchant's backend may name \
itself in `Tenure-Agent`; the audit trail (GET /v1/audit_events) and events record it. \
Money is integer minor units plus an ISO 4217 currency. Lists page newest first with `limit` \
and `starting_after`. Every POST accepts `Idempotency-Key`. Errors are RFC 9457 \
application/problem+json with a stable `code`.",
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "Catalog", description = "Products with their portal policy, and plans"),
        (name = "Customers", description = "The merchant's subscribers"),
        (name = "Customer sessions", description = "Portal tokens and identity providers"),
        (name = "Subscriptions", description = "Subscribe, pause, resume, cancel, change plan, skip renewals; scheduled changes"),
        (name = "Cancellation requests", description = "Customers' requests to cancel (request mode): approve early or decline"),
        (name = "Support tickets", description = "Tickets opened by cancellation requests, with their conversation"),
        (name = "Portal", description = "Self-service routes for a signed-in customer"),
        (name = "Events", description = "What happened, for polling"),
        (name = "Webhooks", description = "Signed event delivery (Standard Webhooks): endpoints, delivery log, redelivery"),
        (name = "Operations", description = "Health and readiness"),
        (name = "Payment methods", description = "Cards as gateway tokens; card numbers are refused everywhere"),
        (name = "Gateway", description = "The merchant's payment gateway (sandbox or Stripe) and the events Stripe sends"),
        (name = "Invoices", description = "Invoices, payment attempts and refunds"),
        (name = "Credits", description = "Customer credit balances and their ledger, credit notes, one-off invoice items, goodwill discounts and agents' overrides"),
        (name = "Billing settings", description = "Dunning policy and upcoming-renewal notices"),
        (name = "Retention offers", description = "Offers shown to customers who start a cancellation, with eligibility rules and outcome counts"),
        (name = "Coupons", description = "Coupons (percent or amount off, for once, some or every invoice) and the promotion codes customers redeem at subscribe or plan change"),
        (name = "Metrics", description = "Subscriber metrics of a period: MRR, churn, ARPU, LTV, pauses, reasons, save offers"),
        (name = "API keys", description = "Secret keys (create, roll, revoke; restricted keys with scopes) and the audit trail of changes made with them"),
        (name = "Test clocks", description = "Simulated time for test customers: create a clock, attach customers at creation, advance it and watch renewals, trials and dunning happen"),
        (name = "Addresses", description = "Customers' address books; a subscription ships to one of its customer's addresses"),
        (name = "Orders", description = "What each paid period of a subscription to a shippable product sends, and its fulfilment: fulfil, ship (carrier and tracking), deliver, cancel"),
        (name = "Operator", description = "The operator's routes (TENURE_OPERATOR_TOKEN): merchants"),
    )
)]
pub struct ApiDoc;

pub const MERCHANT_KEY: &str = "merchant_key";
pub const CUSTOMER_TOKEN: &str = "customer_token";
pub const OPERATOR_TOKEN: &str = "operator_token";
/// The extension naming the scope a merchant operation requires.
pub const REQUIRED_SCOPE_EXTENSION: &str = "x-required-scope";

/// Whether a path is a merchant route (a secret key, scopes, the audit trail): everything
/// under /v1 except the portal's, the operator's and the gateways' signed event endpoints.
pub fn is_merchant_path(path: &str) -> bool {
    path.starts_with("/v1/")
        && !path.starts_with("/v1/portal/")
        && !path.starts_with("/v1/operator/")
        && !path.starts_with(GATEWAY_EVENTS)
}
const PROBLEM_RESPONSE: &str = "Problem";
/// The gateways' event endpoints: no credential, a signature instead.
const GATEWAY_EVENTS: &str = "/v1/gateway_events/";

/// The error statuses an operation can answer with, from what it is: each is a
/// problem+json document. What only some use cases answer (402 `payment_declined`, a 409
/// outside POST) is declared on their handlers.
///
/// - every route: 413 (a declared `Content-Length` over the limit, also without a body),
///   414 and 431 (request target or headers over their limits), 422 (a query with `%00`,
///   or one the operation does not document) and 500 (`middleware::input_limits`);
/// - with a credential: 401 (missing or invalid), 403 (a credential of the other kind,
///   or a browser origin the token's merchant does not allow), 429 (rate limits per
///   credential and per address with refused credentials), 503 (the database);
/// - with a body: 400 `invalid_json`, 415, 422 (a body of the wrong shape or values);
/// - POST (idempotency keys): 400 `invalid_idempotency_key`, 409 `idempotency_key_in_use`
///   or `idempotent_replay_withheld`,
///   422 `idempotency_key_reused`;
/// - with an id in the path: 404 (also another tenant's id, and a malformed one);
/// - honouring `If-Match` (`VERSIONED`): 412.
fn error_statuses(
    authenticated: bool,
    method: &HttpMethod,
    has_body: bool,
    has_path_id: bool,
    if_match: bool,
) -> Vec<&'static str> {
    let mut statuses = vec!["413", "414", "422", "431", "500"];
    if authenticated {
        statuses.extend(["401", "403", "429", "503"]);
    }
    if has_body {
        statuses.extend(["400", "415", "422"]);
    }
    if method_name(method)
        .eq_ignore_ascii_case(crate::middleware::idempotency::COVERED_METHOD.as_str())
    {
        statuses.extend(["400", "409", "422"]);
    }
    if has_path_id {
        statuses.push("404");
    }
    if if_match {
        statuses.push("412");
    }
    statuses
}

/// Adds security schemes, per-operation security and the shared error responses.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        MERCHANT_KEY,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A merchant secret key, sk_test_… (test mode) or sk_live_… (live mode); a restricted key holds the scopes listed in each operation's security requirement"))
                .build(),
        ),
    );
    components.add_security_scheme(
        OPERATOR_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The operator's token (TENURE_OPERATOR_TOKEN)"))
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
        // Signed by the gateway instead of a credential (routes/gateways.rs).
        let signed = path.starts_with(GATEWAY_EVENTS);
        let scheme = if signed {
            None
        } else if path.starts_with("/v1/portal/") {
            Some(CUSTOMER_TOKEN)
        } else if path.starts_with("/v1/operator/") {
            Some(OPERATOR_TOKEN)
        } else if path.starts_with("/v1/") {
            Some(MERCHANT_KEY)
        } else {
            None
        };
        for (method, operation) in operations_mut(item) {
            // The scope a restricted key needs, from the table the extractor enforces.
            let scope = (scheme == Some(MERCHANT_KEY))
                .then(|| crate::auth::scopes::required(&actix_method(&method), path))
                .flatten()
                .map(|scope| scope.to_string());
            if let Some(scheme) = scheme {
                operation.security = Some(vec![SecurityRequirement::new(
                    scheme,
                    scope.iter().cloned().collect::<Vec<_>>(),
                )]);
            }
            if let Some(scope) = &scope {
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert(REQUIRED_SCOPE_EXTENSION.to_owned(), scope.clone().into());
                let description = operation.description.get_or_insert_with(String::new);
                if !description.is_empty() {
                    description.push_str("\n\n");
                }
                description.push_str(&format!(
                    "Requires the scope `{scope}` (or an unrestricted key)."
                ));
            }
            if scheme == Some(MERCHANT_KEY) && !matches!(method, HttpMethod::Get) {
                add_parameter(operation, AGENT_PARAMETER);
            }
            let if_match = VERSIONED.iter().any(|(m, p, precondition)| {
                *m == method_name(&method) && p == path && precondition.if_match
            });
            // A signed endpoint answers like an authenticated one: the rate limits and the
            // credential check run before it (a stray bearer token is still judged), and
            // the merchant's signing secret is read from the database.
            let mut statuses = error_statuses(
                scheme.is_some() || signed,
                &method,
                operation.request_body.is_some(),
                path.contains('{'),
                if_match,
            );
            // A read's `Tenure-Consistency-Token` that is not a token (middleware::replica).
            if replica::reads_from_replica(&actix_method(&method), path) {
                statuses.push("400");
            }
            for status in statuses {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name(PROBLEM_RESPONSE)));
            }
        }
    }
    HttpHeaders.modify(&mut api);
    refer_list_items(&mut api);
    mark_livemode(&mut api);
    // Relative: the API is wherever this document was fetched from (Schemathesis resolves it
    // against the document's URL). Generators keep it as a default base URL only; the
    // TypeScript SDK's wrapper always asks for the real one (sdk/typescript).
    api.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some("The server that serves this document"))
            .build(),
    ]);
    api
}

const LIST_RESPONSE_PREFIX: &str = "ListResponse_";
/// The schema of the `livemode` every merchant and portal response carries.
pub const LIVEMODE_SCHEMA: &str = "Livemode";

/// Whether a path's responses are rendered in the caller's mode (`tenure_app::dto::InMode`):
/// the merchant routes and the portal's, whose credential reaches one tenant of one mode.
pub fn renders_livemode(path: &str) -> bool {
    is_merchant_path(path) || path.starts_with("/v1/portal/")
}

/// Every object a merchant or portal operation answers with says `livemode`, the mode of
/// the caller's tenant: the handlers render it with `InMode` from the principal, and the
/// document says so here, by the same rule, as `allOf` the object's schema and
/// [`LIVEMODE_SCHEMA`] (the object's own schema is left as it is, since it may also be
/// nested in another object, where it carries no `livemode`). A page of a list, or an
/// array, carries it on each item.
fn mark_livemode(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::AllOfBuilder;
    let in_mode = |name: &str| -> RefOr<Schema> {
        Schema::AllOf(
            AllOfBuilder::new()
                .item(Ref::from_schema_name(name))
                .item(Ref::from_schema_name(LIVEMODE_SCHEMA))
                .build(),
        )
        .into()
    };
    let mut lists = std::collections::BTreeSet::new();
    for (path, item) in api.paths.paths.iter_mut() {
        if !renders_livemode(path) {
            continue;
        }
        for (_, operation) in operations_mut(item) {
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if !status.starts_with('2') {
                    continue;
                }
                let Some(RefOr::T(content)) = response.content.get_mut("application/json") else {
                    continue;
                };
                let Some(schema) = content.schema.as_mut() else {
                    continue;
                };
                match schema {
                    RefOr::Ref(reference) => {
                        let name = schema_name(reference).to_owned();
                        if name.starts_with(LIST_RESPONSE_PREFIX) {
                            lists.insert(name);
                        } else {
                            *schema = in_mode(&name);
                        }
                    }
                    RefOr::T(Schema::Array(array)) => {
                        if let ArrayItems::RefOrSchema(items) = &mut array.items
                            && let RefOr::Ref(reference) = items.as_ref()
                        {
                            let name = schema_name(reference).to_owned();
                            **items = in_mode(&name);
                        }
                    }
                    RefOr::T(_) => {}
                }
            }
        }
    }
    let schemas = &mut api.components.get_or_insert_with(Default::default).schemas;
    for list in lists {
        let Some(RefOr::T(Schema::Object(page))) = schemas.get_mut(&list) else {
            continue;
        };
        let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") else {
            continue;
        };
        data.items =
            ArrayItems::RefOrSchema(Box::new(in_mode(&list[LIST_RESPONSE_PREFIX.len()..])));
    }
    schemas.insert(
        LIVEMODE_SCHEMA.to_owned(),
        ObjectBuilder::new()
            .description(Some(
                "The mode of the tenant the credential reaches: true in live mode (sk_live_ keys \
                 and the sessions they mint), false in test mode",
            ))
            .property("livemode", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("livemode")
            .into(),
    );
}

fn schema_name(reference: &Ref) -> &str {
    reference
        .ref_location
        .rsplit('/')
        .next()
        .unwrap_or(&reference.ref_location)
}

/// utoipa 6 composes a generic with its type argument's whole schema, so every
/// `ListResponse_X` copied X inline (juhaku/utoipa#1586) and generators made a second type
/// per list. This moves each item schema to its own component `X` (when no operation
/// registered it already) and refers to it.
fn refer_list_items(api: &mut utoipa::openapi::OpenApi) {
    let schemas = &mut api.components.get_or_insert_with(Default::default).schemas;
    let lists: Vec<String> = schemas
        .keys()
        .filter(|name| name.starts_with(LIST_RESPONSE_PREFIX))
        .cloned()
        .collect();
    for list in lists {
        let item_name = &list[LIST_RESPONSE_PREFIX.len()..];
        let Some(RefOr::T(Schema::Object(page))) = schemas.get_mut(&list) else {
            continue;
        };
        let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") else {
            continue;
        };
        let reference = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item_name).into()));
        if let ArrayItems::RefOrSchema(inline) = std::mem::replace(&mut data.items, reference) {
            schemas.entry(item_name.to_owned()).or_insert(*inline);
        }
    }
}

/// Operations whose resource carries a version: they answer with its `ETag`, and those
/// marked `IF_MATCH` change it only if `If-Match` names the current one (412 otherwise).
/// Method and path as in the document; `every_versioned_operation_exists` keeps this list
/// honest, and the e2e test `platform::documented_preconditions_are_honoured` checks that
/// each If-Match operation answers a stale tag with 412 and each GET sends its ETag.
pub const VERSIONED: &[(&str, &str, Precondition)] = &[
    ("post", "/v1/products", ETAG),
    ("get", "/v1/products/{id}", ETAG),
    ("patch", "/v1/products/{id}", IF_MATCH),
    ("post", "/v1/products/{id}/archive", IF_MATCH),
    ("post", "/v1/plans", ETAG),
    ("get", "/v1/plans/{id}", ETAG),
    ("patch", "/v1/plans/{id}", IF_MATCH),
    ("post", "/v1/plans/{id}/archive", IF_MATCH),
    ("post", "/v1/customers", ETAG),
    ("get", "/v1/customers/{id}", ETAG),
    ("patch", "/v1/customers/{id}", IF_MATCH),
    ("post", "/v1/customers/{id}/erase", IF_MATCH),
    ("post", "/v1/customers/{id}/tags", IF_MATCH),
    ("delete", "/v1/customers/{id}/tags/{tag}", IF_MATCH),
    ("post", "/v1/webhook_endpoints", ETAG),
    ("get", "/v1/webhook_endpoints/{id}", ETAG),
    ("patch", "/v1/webhook_endpoints/{id}", IF_MATCH),
    ("post", "/v1/webhook_endpoints/{id}/rotate_secret", IF_MATCH),
    ("post", "/v1/retention_offers", ETAG),
    ("get", "/v1/retention_offers/{id}", ETAG),
    ("patch", "/v1/retention_offers/{id}", IF_MATCH),
    ("delete", "/v1/retention_offers/{id}", IF_MATCH),
    ("post", "/v1/subscriptions", ETAG),
    ("get", "/v1/subscriptions/{id}", ETAG),
    ("post", "/v1/subscriptions/{id}/pause", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/resume", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/cancel", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/change_plan", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/change_quantity", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/skip", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/unskip", IF_MATCH),
    ("post", "/v1/subscriptions/{id}/send_now", IF_MATCH),
    (
        "delete",
        "/v1/subscriptions/{id}/scheduled_changes/{change_id}",
        IF_MATCH,
    ),
    ("post", "/v1/portal/subscriptions", ETAG),
    ("get", "/v1/portal/subscriptions/{id}", ETAG),
    ("post", "/v1/portal/subscriptions/{id}/pause", IF_MATCH),
    ("post", "/v1/portal/subscriptions/{id}/resume", IF_MATCH),
    ("post", "/v1/portal/subscriptions/{id}/cancel", IF_MATCH),
    (
        "post",
        "/v1/portal/subscriptions/{id}/change_plan",
        IF_MATCH,
    ),
    (
        "post",
        "/v1/portal/subscriptions/{id}/change_quantity",
        IF_MATCH,
    ),
    ("post", "/v1/portal/subscriptions/{id}/skip", IF_MATCH),
    ("post", "/v1/portal/subscriptions/{id}/unskip", IF_MATCH),
    ("post", "/v1/portal/subscriptions/{id}/send_now", IF_MATCH),
    (
        "post",
        "/v1/portal/subscriptions/{id}/stock_choice",
        IF_MATCH,
    ),
    (
        "delete",
        "/v1/portal/subscriptions/{id}/scheduled_changes/{change_id}",
        IF_MATCH,
    ),
    (
        "post",
        "/v1/portal/cancellation_requests/{id}/withdraw",
        ETAG,
    ),
    (
        "post",
        "/v1/portal/cancellation_requests/{id}/retention_offers/{offer_id}/accept",
        ETAG,
    ),
];

/// What a versioned operation does with the version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Precondition {
    pub if_match: bool,
}
pub const ETAG: Precondition = Precondition { if_match: false };
pub const IF_MATCH: Precondition = Precondition { if_match: true };

const IDEMPOTENCY_KEY_PARAMETER: &str = "IdempotencyKey";
const AGENT_PARAMETER: &str = "TenureAgent";
const IF_MATCH_PARAMETER: &str = "IfMatch";
const IF_NONE_MATCH_PARAMETER: &str = "IfNoneMatch";
const ETAG_HEADER: &str = "ETag";
const CONSISTENCY_TOKEN_PARAMETER: &str = "ConsistencyToken";
const CONSISTENCY_TOKEN_HEADER: &str = "Tenure-Consistency-Token";

/// Declares the headers the API honours beyond each handler's own parameters, so that
/// generated clients can send and read them: `Idempotency-Key` on every operation the
/// idempotency middleware covers, `If-Match` and `ETag` on the operations in `VERSIONED`,
/// and `Tenure-Consistency-Token` answered by writes and sent back on reads
/// (`middleware::replica`).
struct HttpHeaders;

impl Modify for HttpHeaders {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.parameters.insert(
            IDEMPOTENCY_KEY_PARAMETER.to_owned(),
            RefOr::T(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Makes a retry safe: the first response is stored for 24 hours and \
replayed (with `Idempotent-Replayed: true`) to a retry with the same key and the same request \
(a JSON body compared by value); the same key with another request is 422 \
`idempotency_key_reused`, and while the first is still running 409 `idempotency_key_in_use`. \
Keys are kept per secret key. A response holding a secret shown once (`Cache-Control: no-store`) \
is not kept: its retry is 409 `idempotent_replay_withheld` and runs nothing.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(crate::middleware::idempotency::MAX_KEY_LEN))
                            .pattern(Some("^[!-~]+$")),
                    ))
                    .build(),
            ),
        );
        components.parameters.insert(
            AGENT_PARAMETER.to_owned(),
            RefOr::T(
                ParameterBuilder::new()
                    .name("Tenure-Agent")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Who is acting through the key (an agent, a job, a tool): recorded in \
the audit trail and on the events the request causes. 422 when it is not 1 to 64 printable \
ASCII characters without leading or trailing spaces.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(tenure_domain::access::MAX_AGENT_CHARS))
                            .pattern(Some("^[!-~]([ -~]*[!-~])?$")),
                    ))
                    .build(),
            ),
        );
        components.parameters.insert(
            IF_MATCH_PARAMETER.to_owned(),
            RefOr::T(
                ParameterBuilder::new()
                    .name("If-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "An ETag from an earlier response: the change is made only if the \
resource is still at that version, 412 otherwise. `*` or no header: unconditional.",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        );
        components.parameters.insert(
            IF_NONE_MATCH_PARAMETER.to_owned(),
            RefOr::T(
                ParameterBuilder::new()
                    .name("If-None-Match")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "ETags from earlier responses: when one is the resource's current \
version the answer is 304 Not Modified, with no body.",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        );
        components.headers.insert(
            ETAG_HEADER.to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some(
                        "The resource's version, to send back as If-Match on a change",
                    ))
                    .build(),
            ),
        );

        components.parameters.insert(
            CONSISTENCY_TOKEN_PARAMETER.to_owned(),
            RefOr::T(
                ParameterBuilder::new()
                    .name(CONSISTENCY_TOKEN_HEADER)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "An opaque token from an earlier write's `Tenure-Consistency-Token` \
response header, sent back unchanged: the read then sees that write even when it is served by \
another process behind a load balancer, or by a read replica that has not caught up (it is \
served by the primary instead). Without it, a caller's reads in the process that served its \
write see the write anyway. 400 `invalid_consistency_token` when it is not such a token.",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        );
        components.headers.insert(
            CONSISTENCY_TOKEN_HEADER.to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some(
                        "Where this write left the database, as an opaque token: send it \
back as `Tenure-Consistency-Token` on the reads that must see the write. Answered when the \
server reads from a replica.",
                    ))
                    .build(),
            ),
        );

        let idempotent = crate::middleware::idempotency::COVERED_METHOD;
        for (path, item) in api.paths.paths.iter_mut() {
            let versioned = |method: &str| {
                VERSIONED
                    .iter()
                    .find(|(m, p, _)| *m == method && p == path)
                    .map(|(_, _, precondition)| *precondition)
            };
            for (method, operation) in operations_mut(item) {
                let name = method_name(&method);
                if name.eq_ignore_ascii_case(idempotent.as_str()) {
                    add_parameter(operation, IDEMPOTENCY_KEY_PARAMETER);
                }
                if replica::reads_from_replica(&actix_method(&method), path) {
                    add_parameter(operation, CONSISTENCY_TOKEN_PARAMETER);
                }
                if replica::answers_consistency_token(&actix_method(&method), path) {
                    for (status, response) in operation.responses.responses.iter_mut() {
                        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                            response.headers.insert(
                                CONSISTENCY_TOKEN_HEADER.to_owned(),
                                RefOr::Ref(Ref::new(format!(
                                    "#/components/headers/{CONSISTENCY_TOKEN_HEADER}"
                                ))),
                            );
                        }
                    }
                }
                if let Some(precondition) = versioned(name) {
                    if precondition.if_match {
                        add_parameter(operation, IF_MATCH_PARAMETER);
                    }
                    if matches!(method, HttpMethod::Get) {
                        add_parameter(operation, IF_NONE_MATCH_PARAMETER);
                        operation.responses.responses.insert(
                            "304".to_owned(),
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(
                                        "Not modified: If-None-Match names the current version",
                                    )
                                    .header(
                                        ETAG_HEADER,
                                        HeaderBuilder::new()
                                            .schema(Some(
                                                ObjectBuilder::new().schema_type(Type::String),
                                            ))
                                            .build(),
                                    )
                                    .build(),
                            ),
                        );
                    }
                    for (status, response) in operation.responses.responses.iter_mut() {
                        if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                            response.headers.insert(
                                ETAG_HEADER.to_owned(),
                                RefOr::Ref(Ref::new(format!("#/components/headers/{ETAG_HEADER}"))),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The operations of a path item that the API serves, each with its method.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Delete, &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

fn actix_method(method: &HttpMethod) -> actix_web::http::Method {
    match method {
        HttpMethod::Get => actix_web::http::Method::GET,
        HttpMethod::Post => actix_web::http::Method::POST,
        HttpMethod::Put => actix_web::http::Method::PUT,
        HttpMethod::Patch => actix_web::http::Method::PATCH,
        HttpMethod::Delete => actix_web::http::Method::DELETE,
        HttpMethod::Head => actix_web::http::Method::HEAD,
        HttpMethod::Options => actix_web::http::Method::OPTIONS,
        HttpMethod::Trace => actix_web::http::Method::TRACE,
    }
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Put => "put",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
        HttpMethod::Options => "options",
        HttpMethod::Head => "head",
        HttpMethod::Trace => "trace",
    }
}

fn add_parameter(operation: &mut Operation, name: &str) {
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::Ref(Ref::new(format!(
            "#/components/parameters/{name}"
        ))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tenure_domain::billing::dunning::{MAX_RETRIES, MAX_RETRY_DAY};
    use tenure_domain::catalog::{MAX_INTERVAL_COUNT, MAX_TRIAL_DAYS};
    use tenure_domain::data_retention::RetentionDays;
    use tenure_domain::money::MAX_AMOUNT;
    use tenure_domain::policy::{MAX_NOTICE_PERIOD_DAYS, MAX_PAUSE_DAYS_LIMIT, MAX_PENDING_SKIPS};
    use tenure_domain::retention::{MAX_OFFER_CYCLES, MAX_OFFER_DAYS};
    use tenure_domain::subscription::pause::MAX_PAUSE_CYCLES;
    use tenure_domain::webhooks::MAX_SECRET_OVERLAP_SECS;
    use tenure_store::pagination::MAX_LIMIT;
    use tenure_store::repo::renewals::MAX_UPCOMING_NOTICE_DAYS;

    #[test]
    fn every_versioned_operation_exists() {
        let api = crate::openapi_document();
        for (method, path, _) in VERSIONED {
            let item = api.paths.paths.get(*path);
            let operation = item.and_then(|item| match *method {
                "get" => item.get.as_ref(),
                "post" => item.post.as_ref(),
                "patch" => item.patch.as_ref(),
                "delete" => item.delete.as_ref(),
                _ => None,
            });
            assert!(
                operation.is_some(),
                "{method} {path} is not in the document"
            );
        }
    }

    fn document() -> Value {
        serde_json::to_value(crate::openapi_document()).unwrap()
    }

    /// The property `name` of the component `schema`; for a tagged enum, of the variant
    /// whose `type` is `variant`.
    fn property<'a>(doc: &'a Value, schema: &str, variant: Option<&str>, name: &str) -> &'a Value {
        let schema = &doc["components"]["schemas"][schema];
        let object = match variant {
            None => schema,
            Some(tag) => schema["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["properties"]["type"]["enum"][0] == tag)
                .unwrap_or_else(|| panic!("no variant {tag}")),
        };
        &object["properties"][name]
    }

    /// A documented property: its schema, the variant's tag for a tagged enum, its name,
    /// and the bounds the server enforces.
    type Case = (&'static str, Option<&'static str>, &'static str, (i64, i64));

    fn bounds(property: &Value) -> (Option<i64>, Option<i64>) {
        (property["minimum"].as_i64(), property["maximum"].as_i64())
    }

    // utoipa takes only literals for bounds, so the documented numbers are copies; these
    // keep them equal to the limits the server enforces.
    #[test]
    fn documented_bounds_are_the_enforced_ones() {
        let doc = document();
        let bound = i64::from;
        let cases: [Case; 16] = [
            (
                "CreatePlan",
                None,
                "interval_count",
                (1, bound(MAX_INTERVAL_COUNT)),
            ),
            ("CreatePlan", None, "trial_days", (0, bound(MAX_TRIAL_DAYS))),
            ("UpdatePlan", None, "trial_days", (0, bound(MAX_TRIAL_DAYS))),
            ("PriceInput", None, "amount", (0, MAX_AMOUNT)),
            (
                "PortalPolicyInput",
                None,
                "notice_period_days",
                (0, bound(MAX_NOTICE_PERIOD_DAYS)),
            ),
            (
                "PortalPolicyInput",
                None,
                "max_pause_days",
                (1, bound(MAX_PAUSE_DAYS_LIMIT)),
            ),
            (
                "PortalPolicyInput",
                None,
                "max_consecutive_skips",
                (1, bound(MAX_PENDING_SKIPS)),
            ),
            (
                "OfferKindDto",
                Some("discount_percent"),
                "percent",
                (1, 100),
            ),
            (
                "OfferKindDto",
                Some("discount_percent"),
                "cycles",
                (1, bound(MAX_OFFER_CYCLES)),
            ),
            (
                "OfferKindDto",
                Some("discount_amount"),
                "cycles",
                (1, bound(MAX_OFFER_CYCLES)),
            ),
            (
                "OfferKindDto",
                Some("pause_instead"),
                "days",
                (1, bound(MAX_OFFER_DAYS)),
            ),
            (
                "OfferKindDto",
                Some("extend_trial"),
                "days",
                (1, bound(MAX_OFFER_DAYS)),
            ),
            (
                "PauseEndDto",
                Some("after_cycles"),
                "cycles",
                (1, bound(MAX_PAUSE_CYCLES)),
            ),
            (
                "RotateWebhookSecret",
                None,
                "overlap_secs",
                (0, bound(MAX_SECRET_OVERLAP_SECS)),
            ),
            (
                "PutBillingSettings",
                None,
                "upcoming_notice_days",
                (0, bound(MAX_UPCOMING_NOTICE_DAYS)),
            ),
            (
                "PutBillingSettings",
                None,
                "retention_days",
                (
                    bound(u32::from(RetentionDays::MIN)),
                    bound(u32::from(RetentionDays::MAX)),
                ),
            ),
        ];
        for (schema, variant, name, (min, max)) in cases {
            assert_eq!(
                bounds(property(&doc, schema, variant, name)),
                (Some(min), Some(max)),
                "{schema}.{name}"
            );
        }
        for schema in ["CreateWebhookEndpoint", "UpdateWebhookEndpoint"] {
            let events = property(&doc, schema, None, "enabled_events");
            assert_eq!(events["minItems"].as_u64(), Some(1), "{schema}");
            assert_eq!(
                events["maxItems"].as_u64(),
                Some(tenure_domain::webhooks::MAX_ENABLED_EVENTS as u64),
                "{schema}"
            );
        }
        let retries = property(&doc, "PutDunningPolicy", None, "retry_after_days");
        assert_eq!(retries["maxItems"].as_u64(), Some(MAX_RETRIES as u64));
        assert_eq!(
            bounds(&retries["items"]),
            (Some(1), Some(i64::from(MAX_RETRY_DAY)))
        );
    }

    /// Generators name functions after operationIds and silently rename a duplicate
    /// (`listSubscriptions2`), so a merchant's call could reach a portal route.
    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"].as_str().expect("an operationId");
                if let Some(first) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("operationId {id} is used by {first} and {method} {path}");
                }
            }
        }
        assert!(seen.contains_key("list_subscriptions"));
        assert!(seen.contains_key("portal_list_subscriptions"));
    }

    #[test]
    fn list_items_refer_to_their_schema() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let lists: Vec<_> = schemas
            .iter()
            .filter(|(name, _)| name.starts_with(LIST_RESPONSE_PREFIX))
            .collect();
        assert!(lists.len() > 10);
        for (name, list) in lists {
            let item = &name[LIST_RESPONSE_PREFIX.len()..];
            let reference = serde_json::json!({"$ref": format!("#/components/schemas/{item}")});
            // The lists of merchant and portal routes carry `livemode` on each item.
            let in_mode = serde_json::json!({"allOf": [reference,
                {"$ref": format!("#/components/schemas/{LIVEMODE_SCHEMA}")}]});
            let items = &list["properties"]["data"]["items"];
            assert!(*items == reference || *items == in_mode, "{name}: {items}");
            assert!(schemas.contains_key(item), "{item} is not a component");
        }
    }

    /// The values a schema allows: its own `enum`, or that of the component it refers to
    /// (for a nullable one, besides null).
    fn allowed_values(doc: &Value, schema: &Value) -> Vec<String> {
        if let Some(variants) = schema["oneOf"].as_array() {
            let not_null = variants.iter().find(|v| v["type"] != "null").unwrap();
            return allowed_values(doc, not_null);
        }
        let schema = match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                &doc["components"]["schemas"][name]
            }
            None => schema,
        };
        let values = schema["enum"].as_array();
        let values = values.unwrap_or_else(|| panic!("no enum in {schema}"));
        values
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn closed_sets_are_enums_of_the_values_the_code_has() {
        let doc = document();
        let schema = |name: &str| &doc["components"]["schemas"][name];
        let values =
            |schema: &str, field: &str| allowed_values(&doc, property(&doc, schema, None, field));
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

        let invoice_statuses =
            tenure_domain::billing::invoice::InvoiceStatus::ALL.map(|s| s.as_str());
        assert_eq!(values("InvoiceDto", "status"), strings(&invoice_statuses));
        assert_eq!(
            values("PaymentDto", "status"),
            ["succeeded", "declined", "failed"]
        );
        assert_eq!(
            values("InvoiceLineDto", "kind"),
            [
                "plan",
                "proration",
                "discount",
                "one_off",
                "customer_balance"
            ]
        );
        assert_eq!(
            values("WebhookDeliveryDto", "status"),
            ["pending", "delivered", "failed", "canceled"]
        );
        assert_eq!(
            values("ScheduledChangeDto", "type"),
            ["pause", "resume", "cancel", "plan_change"]
        );
        assert_eq!(
            values("PortalPolicyDto", "cancellation_mode"),
            ["request", "immediate"]
        );
        assert_eq!(
            values("PortalPolicyDto", "notice_rule"),
            ["later_of_notice_and_period_end", "notice_only"]
        );
        assert_eq!(
            values("DunningPolicyDto", "final_state"),
            ["canceled", "unpaid"]
        );
        assert_eq!(values("ProrationLineDto", "kind"), ["credit", "charge"]);
        let ticket_channels = tenure_domain::support::TicketChannel::ALL
            .iter()
            .map(|c| c.as_str());
        assert_eq!(
            values("SupportTicketDto", "channel"),
            strings(&ticket_channels.collect::<Vec<_>>())
        );
        let authors = tenure_domain::support::MessageAuthor::ALL
            .iter()
            .map(|a| a.as_str());
        assert_eq!(
            values("TicketMessageDto", "author"),
            strings(&authors.collect::<Vec<_>>())
        );
        assert_eq!(
            values("WebhookEndpointDto", "disabled_reason"),
            ["manual", "failing"]
        );
        assert_eq!(
            values("PutDunningPolicy", "final_state"),
            ["canceled", "unpaid"]
        );
        assert_eq!(
            values("PaymentHealthDto", "status"),
            ["ok", "at_risk", "failing"]
        );
        assert_eq!(
            values("TicketSummaryDto", "status"),
            ["open", "resolved", "closed"]
        );
        let channels = strings(&tenure_app::context::NOTE_CHANNELS);
        assert_eq!(values("CreateNote", "channel"), channels);
        assert_eq!(values("ExportNoteDto", "channel"), channels);
        let event_types = strings(tenure_domain::webhooks::EVENT_TYPES);
        assert_eq!(values("EventDto", "type"), event_types);
        assert_eq!(values("WebhookDeliveryDto", "event_type"), event_types);
        let mut enabled = strings(&[tenure_domain::webhooks::ALL_EVENTS]);
        enabled.extend(event_types.iter().cloned());
        for schema in [
            "CreateWebhookEndpoint",
            "UpdateWebhookEndpoint",
            "WebhookEndpointDto",
        ] {
            let items = &property(&doc, schema, None, "enabled_events")["items"];
            assert_eq!(allowed_values(&doc, items), enabled, "{schema}");
        }
        let mut timeline_types = event_types.clone();
        timeline_types.extend(strings(&["note", "ticket.message"]));
        assert_eq!(values("TimelineEntryDto", "type"), timeline_types);
        assert_eq!(
            values("TimelineEntryDto", "kind"),
            ["event", "note", "ticket_message"]
        );
        let algorithms = strings(tenure_app::sessions::tokens::ALLOWED_PROVIDER_ALGORITHMS);
        assert_eq!(values("CreateIdentityProvider", "algorithm"), algorithms);
        assert_eq!(values("IdentityProviderDto", "algorithm"), algorithms);
        assert_eq!(
            values("UpcomingInvoiceDto", "status"),
            strings(&invoice_statuses)
        );
        assert_eq!(values("HealthDto", "status"), ["ok"]);
        let segments = tenure_domain::context::Segment::ALL.map(|s| {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        });
        for (name, field) in [
            ("CustomerContextDto", "segments"),
            ("EligibilityDto", "segments"),
        ] {
            assert_eq!(
                allowed_values(&doc, &schema(name)["properties"][field]["items"]),
                segments,
                "{name}.{field}"
            );
        }

        assert_eq!(
            schema("Tag")["pattern"],
            format!(
                "^[a-z0-9_:.-]{{1,{}}}$",
                tenure_domain::customer::MAX_TAG_CHARS
            )
        );
        assert_eq!(
            property(&doc, "CustomerDto", None, "tags")["items"]["$ref"],
            "#/components/schemas/Tag"
        );
    }

    #[test]
    fn timestamp_parameters_are_date_times_and_a_server_is_named() {
        let doc = document();
        let metrics = doc["paths"]["/v1/metrics"]["get"]["parameters"]
            .as_array()
            .unwrap();
        for name in ["from", "to"] {
            let parameter = metrics.iter().find(|p| p["name"] == name).unwrap();
            assert_eq!(parameter["schema"]["format"], "date-time", "{name}");
        }
        let invoices = doc["paths"]["/v1/invoices"]["get"]["parameters"]
            .as_array()
            .unwrap();
        for name in ["created_from", "created_to"] {
            let parameter = invoices.iter().find(|p| p["name"] == name).unwrap();
            assert_eq!(parameter["schema"]["format"], "date-time", "{name}");
        }
        assert_eq!(doc["servers"][0]["url"], "/");
    }

    #[test]
    fn every_list_documents_the_page_size_limit() {
        let doc = document();
        let mut lists = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let Some(params) = operation["parameters"].as_array() else {
                    continue;
                };
                for limit in params.iter().filter(|p| p["name"] == "limit") {
                    lists += 1;
                    assert_eq!(
                        bounds(&limit["schema"]),
                        (Some(1), Some(MAX_LIMIT)),
                        "{method} {path}"
                    );
                }
            }
        }
        assert!(lists > 10);
    }
}
