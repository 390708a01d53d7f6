//! The end-to-end harness: each test gets its own PostgreSQL database (a
//! [`TestDb`] of `tenure-test-support`, cloned from a template that is migrated once per
//! migration set) and the real actix application in-process, with a test clock it can
//! move forward.

use std::rc::Rc;
use std::sync::Arc;

use actix_service::boxed::{self, BoxService};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::test;
use chrono::Duration;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use tenure_api::middleware::rate_limit::{RateLimitConfig, RateLimits};
use tenure_api::{AppState, Metrics};
use tenure_domain::outbound::TargetPolicy;
pub use tenure_test_support::{PrivateServer, TestClock, TestDb, server_url};

pub mod localstripe;

type App = Rc<BoxService<actix_http::Request, ServiceResponse<BoxBody>, actix_web::Error>>;

/// The application under test with its own database and clock.
pub struct TestApp {
    pub db: TestDb,
    pub state: AppState,
    pub clock: TestClock,
    app: App,
}

/// A merchant created for a test, with its secret key.
#[derive(Debug, Clone)]
pub struct TestMerchant {
    pub id: String,
    pub key: String,
    /// The key's record (`key_…`).
    pub key_id: String,
}

impl TestApp {
    /// The application without rate limits, so that tests may send as many requests as
    /// they like; [`TestApp::with_rate_limits`] turns them on.
    pub async fn new() -> Self {
        Self::with_rate_limits(RateLimitConfig::disabled()).await
    }

    pub async fn with_rate_limits(limits: RateLimitConfig) -> Self {
        Self::on(TestDb::new().await, limits).await
    }

    /// The application on a given database, e.g. one on a [`PrivateServer`]. Webhooks
    /// may go to private addresses, where the tests' receivers listen.
    pub async fn on(db: TestDb, limits: RateLimitConfig) -> Self {
        Self::configured(db, limits, |state| {
            state.app.webhook_targets = TargetPolicy::AllowPrivate;
        })
        .await
    }

    /// The application with the operator's default settings, besides no rate limits:
    /// webhooks go to public addresses only.
    pub async fn with_defaults() -> Self {
        Self::configured(TestDb::new().await, RateLimitConfig::disabled(), |_| {}).await
    }

    /// The application after `configure` changed its state (the operator's settings).
    pub async fn configured(
        db: TestDb,
        limits: RateLimitConfig,
        configure: impl FnOnce(&mut AppState),
    ) -> Self {
        let clock = TestClock::new();
        let pool = db.pool(20);
        let mut state = tenure_server::startup::build_state(
            pool,
            Arc::new(clock.clone()),
            None,
            Duration::hours(1),
        )
        .await
        .expect("state");
        state.rate_limits = RateLimits::new(limits);
        configure(&mut state);
        let metrics = Metrics::new().expect("metrics");
        let service = test::init_service(tenure_api::app(state.clone(), metrics)).await;
        let app = Rc::new(boxed::service(ServiceMapBody(service)));
        Self {
            db,
            state,
            clock,
            app,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            app: self,
            inner: test::TestRequest::default().method(method).uri(path),
        }
    }

    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::DELETE, path)
    }

    /// Requests sent by the holder of `credential` (a merchant's secret key or a
    /// customer's portal token), as `Authorization: Bearer <credential>`.
    pub fn by<'a>(&'a self, credential: &'a str) -> Caller<'a> {
        Caller {
            app: self,
            credential,
            idempotency_key: None,
            merchant: None,
        }
    }

    /// `GET path` with a bearer credential, expected to answer 200: its body.
    pub async fn get_ok(&self, path: &str, credential: &str) -> Value {
        self.by(credential).get(path).await.expect(200).body
    }

    /// A new merchant account's test tenant (`sk_test_…`).
    pub async fn merchant(&self, name: &str) -> TestMerchant {
        self.account(name).await.0
    }

    /// A new merchant account: its test tenant and its live tenant (`sk_live_…`).
    pub async fn account(&self, name: &str) -> (TestMerchant, TestMerchant) {
        let created = tenure_app::merchants::create(&self.state.app, name)
            .await
            .expect("create merchant");
        let tenant = |t: tenure_app::merchants::CreatedTenant| TestMerchant {
            id: t.merchant.id.to_string(),
            key: t.secret_key,
            key_id: t.api_key.to_string(),
        };
        (tenant(created.test), tenant(created.live))
    }

    /// A raw connection to this test's database, to assert on rows.
    pub async fn sql(&self) -> AsyncPgConnection {
        self.db.connect().await
    }

    /// Runs a SQL statement on this test's database (hand-built fixtures); panics with
    /// the statement when it fails.
    pub async fn exec(&self, statement: impl AsRef<str>) {
        let statement = statement.as_ref();
        let mut conn = self.sql().await;
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Counts rows with a SQL query returning one bigint column named `n`.
    pub async fn count(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.sql().await;
        let row: Count = diesel::sql_query(query)
            .get_result(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        row.n
    }
}

/// One caller of the API: every request it sends carries its bearer credential (and an
/// `Idempotency-Key` when given one), and a body is sent as JSON. For other headers or
/// raw bodies, use [`TestApp::request`].
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    app: &'a TestApp,
    credential: &'a str,
    idempotency_key: Option<&'a str>,
    merchant: Option<&'a str>,
}

impl<'a> Caller<'a> {
    /// The same caller, sending `Idempotency-Key: key` with each request.
    pub fn idempotency_key(self, key: &'a str) -> Self {
        Self {
            idempotency_key: Some(key),
            ..self
        }
    }

    /// The same caller, sending `Tenure-Merchant: merchant` with each request (as a
    /// frontend does beside a token from the merchant's own identity provider).
    pub fn merchant(self, merchant: &'a str) -> Self {
        Self {
            merchant: Some(merchant),
            ..self
        }
    }

    fn request(self, method: Method, path: &str) -> RequestBuilder<'a> {
        let mut request = self.app.request(method, path).bearer(self.credential);
        if let Some(key) = self.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(merchant) = self.merchant {
            request = request.header("tenure-merchant", merchant);
        }
        request
    }

    pub async fn get(self, path: &str) -> Response {
        self.request(Method::GET, path).send().await
    }

    pub async fn delete(self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await
    }

    pub async fn post(self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path).json(body).send().await
    }

    /// A `POST` without a body (the actions that take none: `…/archive`, `…/resume`).
    pub async fn post_empty(self, path: &str) -> Response {
        self.request(Method::POST, path).send().await
    }

    pub async fn patch(self, path: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path).json(body).send().await
    }

    pub async fn put(self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path).json(body).send().await
    }

    /// `method path` (`"GET"`, `"POST"`, …), with a JSON body when one is given: for
    /// tables of requests.
    pub async fn send(self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let method = method.parse().expect("an HTTP method");
        let request = self.request(method, path);
        match body {
            Some(body) => request.json(body).send().await,
            None => request.send().await,
        }
    }
}

/// Boxes the response body so the service has one nameable type.
struct ServiceMapBody<S>(S);

impl<S, B> Service<actix_http::Request> for ServiceMapBody<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future =
        futures_util::future::LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: actix_http::Request) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) })
    }
}

pub struct RequestBuilder<'a> {
    app: &'a TestApp,
    inner: test::TestRequest,
}

impl RequestBuilder<'_> {
    pub fn bearer(self, credential: &str) -> Self {
        self.header("authorization", &format!("Bearer {credential}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.inner = self.inner.insert_header((
            HeaderName::try_from(name).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        ));
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.inner = self.inner.set_json(body);
        self
    }

    /// A raw body with a content type, for malformed-input tests.
    pub fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.inner = self
            .inner
            .insert_header(("content-type", content_type))
            .set_payload(body.into());
        self
    }

    /// Sets the client's address (the peer of the connection).
    pub fn peer(mut self, addr: &str) -> Self {
        self.inner = self
            .inner
            .peer_addr(addr.parse().expect("socket address like 192.0.2.1:4000"));
        self
    }

    pub async fn send(self) -> Response {
        let req = self.inner.to_request();
        Self::call(self.app, req).await
    }

    /// Sends a body of `total` bytes (`{` and then spaces) produced lazily in 64 KiB
    /// chunks, with or without a `Content-Length`; also returns how many bytes the
    /// application pulled, to show that an oversized body was refused without being read.
    pub async fn send_streaming(
        self,
        content_type: &str,
        total: usize,
        declare_length: bool,
    ) -> (Response, usize) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const CHUNK: usize = 64 * 1024;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let stream = futures_util::stream::unfold(0usize, move |sent| {
            let counter = counter.clone();
            async move {
                if sent >= total {
                    return None;
                }
                let n = CHUNK.min(total - sent);
                let mut chunk = vec![b' '; n];
                if sent == 0 {
                    chunk[0] = b'{';
                }
                counter.fetch_add(n, Ordering::SeqCst);
                Some((
                    Ok::<_, actix_http::error::PayloadError>(actix_web::web::Bytes::from(chunk)),
                    sent + n,
                ))
            }
        });
        let mut inner = self.inner.insert_header(("content-type", content_type));
        if declare_length {
            inner = inner.insert_header(("content-length", total.to_string()));
        } else {
            inner = inner.insert_header(("transfer-encoding", "chunked"));
        }
        let req = inner.to_request();
        let boxed: actix_http::BoxedPayloadStream = Box::pin(stream);
        let (req, _) = req.replace_payload(actix_http::Payload::from(boxed));
        let res = Self::call(self.app, req).await;
        (res, AtomicUsize::load(&pulled, Ordering::SeqCst))
    }

    async fn call(app: &TestApp, req: actix_http::Request) -> Response {
        let res = test::call_service(&app.app, req).await;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = test::read_body(res).await;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            raw: bytes.to_vec(),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.raw)
        );
        self
    }

    /// Asserts a problem+json error with this status and code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        let this = self.expect(status);
        assert_eq!(
            this.header("content-type"),
            Some("application/problem+json"),
            "errors are problem+json"
        );
        assert_eq!(this.body["code"], code, "problem: {}", this.body);
        assert_eq!(this.body["status"], status);
        this
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("response has an id")
            .to_owned()
    }
}

/// The `tenure` binary of this build, for tests that start real processes:
/// `cargo nextest run --workspace` (or `cargo test`) builds it beside the test
/// executables, because tenure-server has an integration test
/// (`crates/server/tests/cli.rs`).
pub fn tenure_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/tenure
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(format!("tenure{}", std::env::consts::EXE_SUFFIX)))
        .expect("target directory");
    assert!(
        bin.exists(),
        "the `tenure` binary is missing at {}: build it with `cargo build -p tenure-server` \
         (`cargo nextest run --workspace` does)",
        bin.display()
    );
    bin
}
