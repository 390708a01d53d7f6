//! The `tenure` subcommands.

use std::cell::OnceCell;
use std::num::NonZeroUsize;
use std::sync::Arc;

use chrono::Duration;
use tenure_api::Metrics;
use tenure_api::auth::key_cache;
use tenure_api::middleware::cors::OperatorOrigins;
use tenure_api::middleware::metrics::MetricsAccess;
use tenure_api::middleware::rate_limit::RateLimits;
use tenure_app::dto::catalog::{
    CancellationModeDto, CreatePlan, CreateProduct, IntervalDto, PortalPolicyInput, PriceInput,
};
use tenure_app::dto::customers::CreateCustomer;
use tenure_app::dto::sessions::PutCorsSettings;
use tenure_app::replica::Replica;
use tenure_app::{
    App, AppError, catalog, cors_settings, customers, merchants, sessions, subscriptions,
};
use tenure_domain::access::Mode;
use tenure_domain::clock::SystemClock;
use tenure_engine::delivery::WebhookSender;
use tenure_engine::loops;
use tenure_store::Db;

use crate::config::{DemoArgs, GlobalArgs, ServeArgs, WorkerArgs};
use crate::startup::{self, StartupError};

fn connect(global: &GlobalArgs) -> Result<Db, StartupError> {
    Ok(Db::connect(&global.database_url, global.pool_size)?)
}

async fn app(
    global: &GlobalArgs,
    jwt_secret: Option<&str>,
    ttl_secs: u32,
) -> Result<App, StartupError> {
    let db = connect(global)?;
    let mut app = startup::build_app(
        db,
        Arc::new(SystemClock),
        jwt_secret,
        Duration::seconds(i64::from(ttl_secs)),
    )
    .await?;
    app.gateways = startup::gateways(global)?;
    Ok(app)
}

/// `tenure secrets reseal`.
pub async fn reseal_secrets(global: &GlobalArgs) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let app = app(global, None, 3600).await?;
    let changed = tenure_app::billing::gateways::reseal_all(&app)
        .await
        .map_err(|e| StartupError::Config(format!("reseal: {e}")))?;
    println!("re-encrypted the gateway secrets of {changed} merchant(s)");
    Ok(())
}

pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), StartupError> {
    // Checked before anything else is started, with an error that leaves the value out.
    let operator_token = args.operator_token().map_err(StartupError::Config)?;
    let applied = startup::prepare_database(global).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let background_tasks = (!args.no_workers).then(|| background_connections(&args.workers));
    let budget = PoolBudget::plan(
        global.pool_size,
        args.http_workers.map(NonZeroUsize::get),
        cores,
        background_tasks,
        !args.no_api_key_cache,
    )
    .map_err(StartupError::Config)?;
    // Start-up, and then the background loops if they run here, use this pool; without
    // the loops it is closed once start-up is done, so the budget is the workers' alone.
    let shared = Db::connect(&global.database_url, budget.background.max(1))?;
    let mut state = startup::build_state(
        shared.clone(),
        Arc::new(SystemClock),
        args.jwt_secret.as_deref(),
        Duration::seconds(i64::from(args.session_ttl_secs)),
    )
    .await?;
    state.rate_limits = RateLimits::new(args.rate_limits.config());
    state.cors_allowed_origins = OperatorOrigins::new(args.cors_allowed_origins.iter().cloned());
    state.operator_token = operator_token;
    state.app.charge_lease = args.workers.charge_lease();
    state.app.webhook_targets = args.workers.webhook_targets();
    state.app.default_retention = args.workers.default_retention();
    state.metrics_access =
        MetricsAccess::new(args.metrics_token.as_deref(), args.metrics_bind.is_some());
    let metrics = Metrics::new().map_err(|e| StartupError::Config(e.to_string()))?;
    if args.no_workers {
        shared.close();
    } else {
        spawn_workers(&state.app, &args.workers)?;
    }
    if !args.no_api_key_cache {
        tokio::spawn(key_cache::keep_current(
            state.api_keys.clone(),
            global.database_url.clone(),
        ));
    }
    // Each HTTP worker is a single-threaded runtime, and a pooled connection's I/O runs as
    // a task on the runtime that opened it: with one pool shared by the workers, most
    // queries hopped threads twice (a fifth more CPU per portal read, measured). So each
    // worker thread builds a pool of its own the first time actix calls the factory on
    // it (actix calls it once per worker and bound address, and again for a restarted
    // worker, which gets a new thread). Pools open connections lazily, so the fallback
    // (used only if a pool could not be built on a worker) holds none unless used.
    // The audit trail's writer runs on a thread of its own, with a connection of its
    // own, from now until the HTTP server has stopped (`AuditLog::shutdown` below).
    let audit_log = state.app.audit_log.clone();
    audit_log.start(Db::connect(&global.database_url, AUDIT_WRITER)?)?;
    let url = global.database_url.clone();
    let per_worker = budget.per_http_worker;
    let fallback = Db::connect(&url, per_worker)?;
    // The replica's pools follow the primary's: one per worker thread, as large.
    let replica = match &args.replica.replica_url {
        Some(replica_url) => {
            let db = Db::connect(replica_url, per_worker)?;
            tracing::info!("reads of merchants and customers may be served by the replica");
            Some((
                replica_url.clone(),
                Replica::new(db, args.replica.settings()),
            ))
        }
        None => None,
    };
    // On an address of its own, /metrics gets one worker and the fallback pool, which
    // is otherwise idle (a scrape is one statement, a few times a minute).
    let metrics_server = match &args.metrics_bind {
        Some(bind) => {
            let (mut state, metrics) = (state.clone(), metrics.clone());
            state.app.db = fallback.clone();
            let server = crate::transport::serve(
                move || tenure_api::metrics_app(state.clone(), metrics.clone()),
                1,
                bind,
            )?;
            tracing::info!(bind = %bind, "serving /metrics");
            Some(server)
        }
        None => None,
    };
    let server = crate::transport::serve(
        move || {
            let mut state = state.clone();
            state.app.db = WORKER_POOL.with(|pool| {
                pool.get_or_init(|| {
                    Db::connect(&url, per_worker).unwrap_or_else(|_| fallback.clone())
                })
                .clone()
            });
            state.app.replica = replica.as_ref().map(|(replica_url, replica)| {
                replica.through(REPLICA_POOL.with(|pool| {
                    pool.get_or_init(|| {
                        Db::connect(replica_url, per_worker).unwrap_or_else(|_| replica.db.clone())
                    })
                    .clone()
                }))
            });
            tenure_api::app(state, metrics.clone())
        },
        budget.http_workers,
        &args.bind,
    )?;
    tracing::info!(
        bind = %args.bind,
        http_workers = budget.http_workers,
        per_worker_pool = per_worker,
        background_pool = budget.background,
        "serving; API docs at /docs/"
    );
    let served = match metrics_server {
        Some(metrics_server) => tokio::try_join!(server, metrics_server).map(|_| ()),
        None => server.await,
    };
    // Every request has been answered: the entries still queued are written before the
    // process ends.
    audit_log.shutdown().await;
    served?;
    Ok(())
}

thread_local! {
    /// The connection pool of the HTTP worker running on this thread.
    static WORKER_POOL: OnceCell<Db> = const { OnceCell::new() };
    /// The HTTP worker's connection pool on the replica, with `--replica-url`.
    static REPLICA_POOL: OnceCell<Db> = const { OnceCell::new() };
}

/// The audit trail's writer's connection (`tenure_app::audit::AuditLog`).
const AUDIT_WRITER: usize = 1;

/// Connections the background loops use at once: one per renewal task, one for the
/// scheduled-change loop, webhook delivery's outcomes recorded at once, one for advancing
/// test clocks.
fn background_connections(args: &WorkerArgs) -> usize {
    usize::from(args.renewal_tasks) + 2 + tenure_engine::delivery::RECORDING_CONCURRENCY
}

/// How `serve` spends a process's connection budget (`--pool-size`): one for the
/// listener that keeps the API key cache current, one for the audit writer, the background loops' connections
/// (when they run here), and the rest split evenly between a pool per HTTP worker, at
/// least two each (a request may read through a second connection while its first is
/// busy). Without `--http-workers`, one worker per core as far as the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolBudget {
    http_workers: usize,
    per_http_worker: usize,
    background: usize,
}

impl PoolBudget {
    const MIN_PER_WORKER: usize = 2;

    fn plan(
        pool_size: usize,
        http_workers: Option<usize>,
        cores: usize,
        background: Option<usize>,
        key_listener: bool,
    ) -> Result<Self, String> {
        let background = background.unwrap_or(0);
        // `auth::key_cache::keep_current`'s connection, and the audit writer's.
        let listener = usize::from(key_listener) + AUDIT_WRITER;
        let http = pool_size.saturating_sub(background + listener);
        let affordable = http / Self::MIN_PER_WORKER;
        if affordable == 0 {
            return Err(format!(
                "TENURE_POOL_SIZE={pool_size} leaves {http} connection(s) for HTTP after the \
                 background loops' {background} and the key listener's {listener}; HTTP \
                 workers need at least {} each: raise TENURE_POOL_SIZE, lower \
                 TENURE_RENEWAL_TASKS or run with --no-workers",
                Self::MIN_PER_WORKER
            ));
        }
        let http_workers = match http_workers {
            Some(n) if n > affordable => {
                return Err(format!(
                    "TENURE_POOL_SIZE={pool_size} leaves {http} connections for {n} HTTP \
                     workers; each needs at least {}: raise TENURE_POOL_SIZE or lower \
                     TENURE_HTTP_WORKERS",
                    Self::MIN_PER_WORKER
                ));
            }
            Some(n) => n,
            None => cores.clamp(1, affordable),
        };
        Ok(Self {
            http_workers,
            per_http_worker: http / http_workers,
            background,
        })
    }
}

/// Starts the background loops on the runtime, each in a task of its own.
fn spawn_workers(state: &App, args: &WorkerArgs) -> Result<(), StartupError> {
    let sender = WebhookSender::new(args.webhook_timeout(), args.webhook_targets())
        .map_err(|e| StartupError::Config(e.to_string()))?;
    tokio::spawn(loops::lifecycle_loop(
        state.clone(),
        std::time::Duration::from_millis(args.worker_interval_ms),
    ));
    for _ in 0..args.renewal_tasks {
        tokio::spawn(loops::renewal_loop(
            state.clone(),
            std::time::Duration::from_millis(args.worker_interval_ms),
        ));
    }
    tokio::spawn(loops::webhook_loop(
        state.clone(),
        sender,
        std::time::Duration::from_millis(args.webhook_interval_ms),
    ));
    tokio::spawn(loops::test_clock_loop(
        state.clone(),
        std::time::Duration::from_millis(args.worker_interval_ms),
    ));
    Ok(())
}

/// Runs the background workers until Ctrl-C or SIGTERM.
pub async fn worker(global: &GlobalArgs, args: &WorkerArgs) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let mut app = app(global, None, 3600).await?;
    app.charge_lease = args.charge_lease();
    app.webhook_targets = args.webhook_targets();
    app.default_retention = args.default_retention();
    spawn_workers(&app, args)?;
    shutdown_signal().await?;
    tracing::info!("worker stopping");
    Ok(())
}

async fn shutdown_signal() -> Result<(), StartupError> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}

pub async fn migrate(global: &GlobalArgs) -> Result<(), StartupError> {
    let applied = startup::prepare_database(global).await?;
    if applied.is_empty() {
        println!("no pending migrations");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

pub async fn check_distribution(global: &GlobalArgs) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let db = tenure_store::pool::Db::connect(&global.database_url, 1)?;
    let violations = tenure_store::distribution::violations(&mut *db.conn().await?).await?;
    if violations.is_empty() {
        println!("every table can be distributed by merchant");
        return Ok(());
    }
    for violation in &violations {
        println!("{violation}");
    }
    Err(StartupError::Config(format!(
        "{} table constraint(s) break distribution by merchant",
        violations.len()
    )))
}

/// `tenure metrics reconcile`: the rollups against the full computation, period by
/// period (docs/metrics.md, "Reconciliation").
pub async fn reconcile_metrics(
    global: &GlobalArgs,
    merchant: tenure_domain::ids::MerchantId,
    to: Option<&str>,
    days: u16,
    periods: u16,
) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = app(global, None, 3600).await?;
    let (_, end) = tenure_app::metrics::period(None, to, state.now()).map_err(use_case_failure)?;
    let length = Duration::days(i64::from(days));
    let windows: Vec<_> = (0..i32::from(periods))
        .map_while(|k| {
            let to = end.checked_sub_signed(length * k)?;
            Some((to.checked_sub_signed(length)?, to))
        })
        .collect();
    let differences = tenure_app::metrics::reconcile(&state, merchant, &windows)
        .await
        .map_err(use_case_failure)?;
    for d in &differences {
        println!(
            "{} .. {}  {}: rollups {} recomputed {}",
            d.from.to_rfc3339(),
            d.to.to_rfc3339(),
            d.figure,
            d.rollups,
            d.recomputed
        );
    }
    if differences.is_empty() {
        println!(
            "{merchant}: the rollups agree with the full computation over {} period(s)",
            windows.len()
        );
        return Ok(());
    }
    Err(StartupError::Config(format!(
        "{merchant}: {} figure(s) differ; `tenure metrics rebuild --merchant {merchant}` rebuilds the rollups",
        differences.len()
    )))
}

/// `tenure metrics rebuild`.
pub async fn rebuild_metrics(
    global: &GlobalArgs,
    merchant: tenure_domain::ids::MerchantId,
) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = app(global, None, 3600).await?;
    tenure_app::metrics::rebuild(&state, merchant)
        .await
        .map_err(use_case_failure)?;
    println!("{merchant}: rollups rebuilt");
    Ok(())
}

/// A use case's refusal, worded as the API would word it.
fn use_case_failure(err: AppError) -> StartupError {
    StartupError::Config(tenure_api::ApiError::from(err).problem().detail)
}

pub async fn create_merchant(
    global: &GlobalArgs,
    name: &str,
    json: bool,
) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = app(global, None, 3600).await?;
    let created = merchants::create(&state, name)
        .await
        .map_err(use_case_failure)?;
    let (test, live) = (&created.test, &created.live);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": test.merchant.id.to_string(),
                "secret_key": test.secret_key,
                "live_id": live.merchant.id.to_string(),
                "live_secret_key": live.secret_key,
            })
        );
    } else {
        println!("merchant (test mode): {}", test.merchant.id);
        println!("test secret key:      {}", test.secret_key);
        println!("merchant (live mode): {}", live.merchant.id);
        println!("live secret key:      {}", live.secret_key);
        println!("(the keys are shown only once; store them now)");
    }
    Ok(())
}

pub fn openapi() -> Result<(), StartupError> {
    let document = tenure_api::openapi_document()
        .to_pretty_json()
        .map_err(|e| StartupError::Config(e.to_string()))?;
    println!("{document}");
    Ok(())
}

/// Creates a demo merchant with a catalog and customers, and prints a key, a customer
/// token and curl lines to try against a running `tenure serve`.
pub async fn demo(global: &GlobalArgs, args: &DemoArgs) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = app(global, args.jwt_secret.as_deref(), 24 * 3600).await?;
    let created = merchants::create(&state, "Demo Coffee Co.")
        .await
        .map_err(use_case_failure)?;
    // The demo's data is test data: the live tenant starts empty.
    let merchant = created.test.merchant.id;
    // The reference portal calls the API from its own origin, as a merchant's frontend would.
    cors_settings::put(
        &state,
        merchant,
        PutCorsSettings {
            allowed_origins: vec![args.portal_url.origin().to_string()],
        },
    )
    .await
    .map_err(use_case_failure)?;
    let eur = |amount| PriceInput {
        amount,
        currency: "EUR"
            .parse()
            .unwrap_or_else(|_| unreachable!("EUR is ISO 4217")),
    };

    let coffee = catalog::create_product(
        &state,
        merchant,
        CreateProduct {
            name: "Coffee club".to_owned(),
            description: Some("Fresh beans every month".to_owned()),
            portal_policy: Some(PortalPolicyInput {
                notice_period_days: Some(14),
                ..PortalPolicyInput::default()
            }),
            shippable: None,
            min_quantity: None,
            max_quantity: None,
            swappable_product_ids: None,
        },
    )
    .await
    .map_err(use_case_failure)?;
    let streaming = catalog::create_product(
        &state,
        merchant,
        CreateProduct {
            name: "Brewing videos".to_owned(),
            description: None,
            portal_policy: Some(PortalPolicyInput {
                allow_pause: Some(false),
                cancellation_mode: Some(CancellationModeDto::Immediate),
                ..PortalPolicyInput::default()
            }),
            shippable: None,
            min_quantity: None,
            max_quantity: None,
            swappable_product_ids: None,
        },
    )
    .await
    .map_err(use_case_failure)?;
    let mut plans = Vec::new();
    for (product, name, amount, interval, trial_days) in [
        (&coffee, "Monthly beans", 1999, IntervalDto::Month, Some(14)),
        (&coffee, "Yearly beans", 19900, IntervalDto::Year, None),
        (&streaming, "Video pass", 499, IntervalDto::Month, None),
    ] {
        let plan = catalog::create_plan(
            &state,
            merchant,
            CreatePlan {
                product_id: product.id.to_string(),
                name: name.to_owned(),
                price: eur(amount),
                interval,
                interval_count: None,
                trial_days,
                variant: None,
            },
        )
        .await
        .map_err(use_case_failure)?;
        plans.push(plan.id);
    }
    let mut first_customer = None;
    for (external_id, name, email) in [
        ("demo-ada", "Ada Lovelace", "ada@example.com"),
        ("demo-grace", "Grace Hopper", "grace@example.com"),
        ("demo-alan", "Alan Turing", "alan@example.com"),
    ] {
        let customer = customers::create(
            &state,
            merchant,
            CreateCustomer {
                external_id: external_id.to_owned(),
                email: Some(email.to_owned()),
                name: Some(name.to_owned()),
                locale: Some("en".to_owned()),
                metadata: None,
                tags: Some(vec!["demo".to_owned()]),
                channel_preference: None,
                test_clock: None,
            },
        )
        .await
        .map_err(use_case_failure)?;
        first_customer.get_or_insert(customer.id);
    }
    let customer =
        first_customer.ok_or_else(|| StartupError::Config("no demo customer".to_owned()))?;
    let monthly = plans
        .first()
        .copied()
        .ok_or_else(|| StartupError::Config("no demo plan".to_owned()))?;
    let subscription = subscriptions::create(
        &state,
        subscriptions::Scope::merchant(merchant),
        customer,
        monthly,
    )
    .await
    .map_err(use_case_failure)?;
    let (token, _) = sessions::create_customer_session(&state, merchant, Mode::Test, customer)
        .await
        .map_err(use_case_failure)?;
    let base = args.base_url();
    let key = created.test.secret_key;
    println!("merchant:       {merchant} (test mode)");
    println!("secret key:     {key}");
    println!(
        "live key:       {} (live mode, merchant {}: no data yet; it needs a gateway before it can charge)",
        created.live.secret_key, created.live.merchant.id
    );
    println!("customer:       {customer}");
    println!("subscription:   {}", subscription.subscription.id);
    println!("customer token: {token}");
    println!();
    println!("Try:");
    println!("curl -s {base}/v1/products -H 'Authorization: Bearer {key}'");
    println!("curl -s {base}/v1/customers?tag=demo -H 'Authorization: Bearer {key}'");
    println!("curl -s {base}/v1/portal/plans -H 'Authorization: Bearer {token}'");
    println!("curl -s {base}/v1/portal/subscriptions -H 'Authorization: Bearer {token}'");
    println!("curl -s {base}/v1/subscriptions?status=trialing -H 'Authorization: Bearer {key}'");
    println!();
    println!("Open the self-service portal (examples/portal, `npm run dev`):");
    println!("{}", args.portal_url.signed_in(&base, &token));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PoolBudget;

    fn plan(pool: usize, workers: Option<usize>, cores: usize, bg: Option<usize>) -> PoolBudget {
        PoolBudget::plan(pool, workers, cores, bg, true).expect("a budget that fits")
    }

    #[test]
    fn the_budget_covers_the_background_loops_then_splits_between_workers() {
        let budget = |http_workers, per_http_worker, background| PoolBudget {
            http_workers,
            per_http_worker,
            background,
        };
        // Defaults on two cores: the key listener, the audit writer, 2 renewal tasks + 2
        // loops, the rest
        // for two workers.
        assert_eq!(plan(16, None, 2, Some(4)), budget(2, 5, 4));
        assert_eq!(plan(16, None, 2, None), budget(2, 7, 0));
        assert_eq!(plan(16, Some(1), 2, None), budget(1, 14, 0));
        // Many cores: as many workers as get two connections each, never more.
        assert_eq!(plan(16, None, 32, Some(4)), budget(5, 2, 4));
        assert_eq!(plan(16, None, 32, None), budget(7, 2, 0));
        // Without the key cache, its listener's connection goes to HTTP.
        assert_eq!(
            PoolBudget::plan(16, Some(1), 2, None, false),
            Ok(budget(1, 15, 0))
        );
    }

    #[test]
    fn a_budget_that_cannot_fit_is_refused_with_the_settings_to_change() {
        let too_many = PoolBudget::plan(16, Some(8), 2, None, true).unwrap_err();
        assert!(too_many.contains("TENURE_HTTP_WORKERS"), "{too_many}");
        let none_left = PoolBudget::plan(4, None, 2, Some(4), true).unwrap_err();
        assert!(none_left.contains("TENURE_POOL_SIZE"), "{none_left}");
    }
}
