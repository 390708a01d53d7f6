//! Tenure's HTTP surface: actix-web routes, extractors, middleware, authentication, the
//! one mapping of the use cases' errors to problem+json, and the OpenAPI document built
//! from the very handlers that serve. Each handler parses its request, calls one use
//! case of `tenure-app` and renders what it returns.

pub mod auth;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope};
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult, Problem};
pub use middleware::metrics::Metrics;
pub use state::AppState;

use middleware::fallback::RouteTable;

fn collect() -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<impl MessageBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .service(routes::health::healthz)
        .service(routes::health::readyz)
        .service(scope::scope("/v1").configure(routes::configure_v1))
        .split_for_parts();
    (app, openapi::finish(api))
}

/// The OpenAPI document, as `tenure openapi` prints it and `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    collect().1
}

/// The whole application. `tenure serve` (`tenure_server::transport`) calls this once per
/// worker; tests call it with
/// `actix_web::test::init_service`.
pub fn app(
    state: AppState,
    metrics: Metrics,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, api) = collect();
    let routes = RouteTable::from_openapi(&api);
    let app = match middleware::replica::ReplicaState::of(&state) {
        Some(on_replica) => app.app_data(on_replica),
        None => app,
    };
    app.app_data(web::Data::new(state))
        .app_data(web::Data::new(metrics))
        .app_data(web::Data::new(routes))
        .app_data(extract::json_config())
        .app_data(extract::path_config())
        .app_data(web::PayloadConfig::new(extract::MAX_BODY_BYTES))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        )
        .route("/metrics", web::get().to(middleware::metrics::api_metrics))
        .default_service(web::to(middleware::fallback::not_found_or_not_allowed))
        .wrap(from_fn(middleware::conditional::not_modified))
        .wrap(from_fn(middleware::audit::audit))
        // Outside the audit: a write's consistency token is taken after its audit row.
        .wrap(from_fn(middleware::replica::route_reads))
        .wrap(from_fn(middleware::idempotency::idempotency))
        .wrap(from_fn(middleware::cors::require_allowed_origin))
        .wrap(from_fn(middleware::rate_limit::rate_limit))
        .wrap(from_fn(middleware::input_limits::input_limits))
        .wrap(from_fn(middleware::cors::cors))
        .wrap(from_fn(middleware::metrics::metrics))
        .wrap(from_fn(middleware::request_id::request_id))
}

/// What `tenure serve` serves on `TENURE_METRICS_BIND`: `GET /metrics` only, with the
/// same figures and token as the API's address would have.
pub fn metrics_app(
    state: AppState,
    metrics: Metrics,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(metrics))
        .route("/metrics", web::get().to(middleware::metrics::scrape))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::RouteNotFound)
        }))
}
