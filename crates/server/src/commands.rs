//! The `tenure` subcommands.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::HttpServer;
use chrono::Duration;
use tenure_api::dto::MoneyDto;
use tenure_api::dto::catalog::{CreatePlan, CreateProduct, IntervalDto, PortalPolicyInput};
use tenure_api::dto::customers::CreateCustomer;
use tenure_api::middleware::rate_limit::RateLimits;
use tenure_api::service::{catalog, customers, merchants, sessions, subscriptions};
use tenure_api::{AppState, Metrics};
use tenure_domain::clock::SystemClock;
use tenure_store::Db;

use crate::config::{DemoArgs, GlobalArgs, ServeArgs, WorkerArgs};
use crate::startup::{self, StartupError};
use crate::workers;

fn connect(global: &GlobalArgs) -> Result<Db, StartupError> {
    Ok(Db::connect(&global.database_url, global.pool_size)?)
}

async fn state(
    global: &GlobalArgs,
    jwt_secret: Option<&str>,
    ttl_secs: u32,
) -> Result<AppState, StartupError> {
    let db = connect(global)?;
    startup::build_state(
        db,
        Arc::new(SystemClock),
        jwt_secret,
        Duration::seconds(i64::from(ttl_secs)),
    )
    .await
}

pub async fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), StartupError> {
    let applied = startup::prepare_database(global).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    let http_workers = args
        .http_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    let pools = PoolBudget::split(global.pool_size, http_workers, !args.no_workers);
    // The shared state (and the background loops) use the process-wide pool; each HTTP
    // worker then gets a pool of its own below.
    let mut state = startup::build_state(
        Db::connect(&global.database_url, pools.background)?,
        Arc::new(SystemClock),
        args.jwt_secret.as_deref(),
        Duration::seconds(i64::from(args.session_ttl_secs)),
    )
    .await?;
    state.rate_limits = RateLimits::new(args.rate_limits.config());
    let metrics = Metrics::new().map_err(|e| StartupError::Config(e.to_string()))?;
    if !args.no_workers {
        spawn_workers(&state, &args.workers);
    }
    // Each HTTP worker is a single-threaded runtime. A pooled connection's I/O runs as a
    // task on the runtime that opened it, so a pool shared by the workers makes most
    // queries hop threads twice (measured: a third more CPU per portal read). A pool per
    // worker keeps every query on its request's thread.
    let worker_pools: Arc<[Db]> = (0..http_workers)
        .map(|_| Db::connect(&global.database_url, pools.per_http_worker))
        .collect::<Result<Vec<_>, _>>()?
        .into();
    let next_pool = Arc::new(AtomicUsize::new(0));
    let server = HttpServer::new(move || {
        let mut state = state.clone();
        let turn = next_pool.fetch_add(1, Ordering::Relaxed);
        state.db = worker_pools[turn % worker_pools.len()].clone();
        tenure_api::app(state, metrics.clone())
    })
    .workers(http_workers)
    .bind(&args.bind)?;
    tracing::info!(bind = %args.bind, http_workers, per_worker_pool = pools.per_http_worker, "serving; API docs at /docs/");
    server.run().await?;
    Ok(())
}

/// How a process's connection budget (`--pool-size`) is shared: a pool per HTTP worker,
/// and one for the background loops when they run in the process. Each pool gets at
/// least one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolBudget {
    per_http_worker: usize,
    background: usize,
}

impl PoolBudget {
    fn split(pool_size: usize, http_workers: usize, background_loops: bool) -> Self {
        let pools = http_workers.max(1) + usize::from(background_loops);
        let share = (pool_size / pools).max(1);
        Self {
            per_http_worker: share,
            // Without background loops this pool serves start-up only.
            background: if background_loops { share } else { 1 },
        }
    }
}

/// Starts the background loops on the runtime, each in a task of its own.
fn spawn_workers(state: &AppState, args: &WorkerArgs) {
    tokio::spawn(workers::lifecycle_loop(
        state.clone(),
        std::time::Duration::from_millis(args.worker_interval_ms),
    ));
    for _ in 0..args.renewal_tasks {
        tokio::spawn(workers::renewal_loop(
            state.clone(),
            std::time::Duration::from_millis(args.worker_interval_ms),
        ));
    }
    tokio::spawn(workers::webhook_loop(
        state.clone(),
        std::time::Duration::from_millis(args.webhook_interval_ms),
    ));
}

/// Runs the background workers until Ctrl-C or SIGTERM.
pub async fn worker(global: &GlobalArgs, args: &WorkerArgs) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = state(global, None, 3600).await?;
    spawn_workers(&state, args);
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

fn api_failure(err: tenure_api::ApiError) -> StartupError {
    StartupError::Config(err.problem().detail)
}

pub async fn create_merchant(
    global: &GlobalArgs,
    name: &str,
    json: bool,
) -> Result<(), StartupError> {
    startup::prepare_database(global).await?;
    let state = state(global, None, 3600).await?;
    let created = merchants::create(&state, name).await.map_err(api_failure)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"id": created.merchant.id.to_string(), "secret_key": created.secret_key})
        );
    } else {
        println!("merchant:   {}", created.merchant.id);
        println!("secret key: {}", created.secret_key);
        println!("(the key is shown only once; store it now)");
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
    let state = state(global, args.jwt_secret.as_deref(), 24 * 3600).await?;
    let created = merchants::create(&state, "Demo Coffee Co.")
        .await
        .map_err(api_failure)?;
    let merchant = created.merchant.id;
    let eur = |amount| MoneyDto {
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
        },
    )
    .await
    .map_err(api_failure)?;
    let streaming = catalog::create_product(
        &state,
        merchant,
        CreateProduct {
            name: "Brewing videos".to_owned(),
            description: None,
            portal_policy: Some(PortalPolicyInput {
                allow_pause: Some(false),
                cancellation_mode: Some(tenure_api::dto::catalog::CancellationModeDto::Immediate),
                ..PortalPolicyInput::default()
            }),
        },
    )
    .await
    .map_err(api_failure)?;
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
            },
        )
        .await
        .map_err(api_failure)?;
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
            },
        )
        .await
        .map_err(api_failure)?;
        first_customer.get_or_insert(customer.id);
    }
    let customer =
        first_customer.ok_or_else(|| StartupError::Config("no demo customer".to_owned()))?;
    let monthly = plans
        .first()
        .copied()
        .ok_or_else(|| StartupError::Config("no demo plan".to_owned()))?;
    let subscription = subscriptions::create(&state, merchant, customer, monthly)
        .await
        .map_err(api_failure)?;
    let (token, _) = sessions::create_customer_session(&state, merchant, customer)
        .await
        .map_err(api_failure)?;
    let base = args.base_url.trim_end_matches('/');
    let key = created.secret_key;
    println!("merchant:       {merchant}");
    println!("secret key:     {key}");
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::PoolBudget;

    #[test]
    fn the_connection_budget_is_split_between_workers_and_background_loops() {
        assert_eq!(
            PoolBudget::split(16, 2, false),
            PoolBudget {
                per_http_worker: 8,
                background: 1
            }
        );
        assert_eq!(
            PoolBudget::split(16, 3, true),
            PoolBudget {
                per_http_worker: 4,
                background: 4
            }
        );
        // Never a pool without a connection.
        assert_eq!(
            PoolBudget::split(2, 4, true),
            PoolBudget {
                per_http_worker: 1,
                background: 1
            }
        );
    }
}
