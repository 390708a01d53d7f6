//! Command line and environment. Every flag has an environment twin (`TENURE_…`, and the
//! conventional `DATABASE_URL`), so the same binary configures from a shell, a container
//! or a process manager. A switch's twin takes the usual spellings of yes and no
//! (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case: clap's
//! `BoolishValueParser`).

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tenure_api::auth::operator::OperatorToken;
use tenure_api::middleware::rate_limit::{Limit, RateLimitConfig, RateLimitStore};
use tenure_app::replica::ReplicaSettings;
use tenure_domain::cors::Origin;
use tenure_domain::data_retention::RetentionDays;
use tenure_domain::outbound::TargetPolicy;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/tenure";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

#[derive(Debug, Parser)]
#[command(
    name = "tenure",
    version,
    about = "Headless subscription management API"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// PostgreSQL URL; the database is created on `serve` and `migrate` if missing.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Log format.
    #[arg(long, env = "TENURE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Maximum database connections per process. `serve` gives the background loops one
    /// per task (renewal tasks + 2) and splits the rest evenly between a pool per HTTP
    /// worker, at least two each; it refuses to start when they do not fit.
    #[arg(long, env = "TENURE_POOL_SIZE", default_value_t = 16, global = true)]
    pub pool_size: usize,
    /// The operator's key that merchants' gateway secrets (Stripe keys) are encrypted
    /// with: 32 random bytes, standard base64 (`openssl rand -base64 32`). Without it,
    /// merchants can use only the sandbox gateway.
    #[arg(
        long,
        env = "TENURE_SECRETS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secrets_key: Option<String>,
    /// Earlier secrets keys, comma-separated, still accepted for decryption while a
    /// rotation is under way (`tenure secrets reseal` re-encrypts with the current key).
    #[arg(
        long,
        env = "TENURE_SECRETS_OLD_KEYS",
        hide_env_values = true,
        global = true,
        value_delimiter = ','
    )]
    pub secrets_old_keys: Vec<String>,
    /// Stripe's API base URL (a Stripe emulator's in tests).
    #[arg(long, env = "TENURE_STRIPE_API_BASE", default_value = tenure_engine::stripe::DEFAULT_API_BASE,
        global = true)]
    pub stripe_api_base: String,
    /// How long one Stripe call may take, in milliseconds; a charge without an answer by
    /// then is checked again under the same key after its lease (keep the lease above
    /// twice this).
    #[arg(long, env = "TENURE_STRIPE_TIMEOUT_MS", default_value_t = 30_000, global = true,
        value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub stripe_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve the API (the default).
    Serve(ServeArgs),
    /// Run pending migrations and exit.
    Migrate,
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Create a demo merchant with a catalog and customers, and print how to try it.
    Demo(DemoArgs),
    /// Run only the background workers (scheduled changes, webhook delivery), no HTTP.
    Worker(WorkerArgs),
    /// Operator tasks on merchants' gateway secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Migrate, then check the schema can be distributed by merchant (Citus): print each
    /// table that breaks it and fail (docs/scaling.md).
    CheckDistribution,
    /// Operator checks of a merchant's subscriber metrics (docs/metrics.md).
    #[command(subcommand)]
    Metrics(MetricsCommand),
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Compare the metrics the rollups answer with a full recomputation from the
    /// subscriptions and their events, over consecutive periods ending at `--to`; print
    /// every figure that differs and fail if any does.
    Reconcile {
        #[command(flatten)]
        merchant: MerchantArg,
        /// End of the latest period (RFC 3339; default: now).
        #[arg(long)]
        to: Option<String>,
        /// Length of each period, in days.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=366))]
        days: u16,
        /// How many consecutive periods, going back from `--to`.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=1000))]
        periods: u16,
    },
    /// Rebuild a merchant's rollups from its subscriptions and their events (the repair
    /// when a reconciliation finds differences). Subscription writes wait meanwhile.
    Rebuild {
        #[command(flatten)]
        merchant: MerchantArg,
    },
}

#[derive(Debug, Clone, Args)]
pub struct MerchantArg {
    /// The merchant (tenant) id, `mer_…`.
    #[arg(long = "merchant", value_parser = parse_merchant_id)]
    pub id: tenure_domain::ids::MerchantId,
}

fn parse_merchant_id(raw: &str) -> Result<tenure_domain::ids::MerchantId, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a merchant id (mer_…)"))
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every merchant's gateway secrets with TENURE_SECRETS_KEY (after a
    /// rotation, with the previous key in TENURE_SECRETS_OLD_KEYS).
    Reseal,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TENURE_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// HTTP worker threads (default: one per core, as far as the pool size allows two
    /// connections each).
    #[arg(long, env = "TENURE_HTTP_WORKERS")]
    pub http_workers: Option<std::num::NonZeroUsize>,
    /// HS256 secret for customer session tokens, at least 32 bytes. When unset, a random
    /// key is generated once and kept in the database, so tokens survive restarts and
    /// every process agrees.
    #[arg(long, env = "TENURE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Lifetime of customer session tokens, in seconds.
    #[arg(long, env = "TENURE_SESSION_TTL_SECS", default_value_t = 3600)]
    pub session_ttl_secs: u32,
    /// Do not run the background workers in this process: only serve HTTP (run
    /// `tenure worker` elsewhere).
    #[arg(long, env = "TENURE_NO_WORKERS", value_parser = BoolishValueParser::new())]
    pub no_workers: bool,
    /// Look every secret key up in the database instead of keeping accepted ones in
    /// memory (for databases where the cache's NOTIFY cannot reach it: a distributed
    /// engine whose triggers fire elsewhere). Frees the listener's connection.
    #[arg(long, env = "TENURE_NO_API_KEY_CACHE", value_parser = BoolishValueParser::new())]
    pub no_api_key_cache: bool,
    /// Require `Authorization: Bearer <token>` to read `/metrics`.
    #[arg(long, env = "TENURE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve `/metrics` on this address only (e.g. one the public cannot reach), not on
    /// the API's.
    #[arg(long, env = "TENURE_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Web origins allowed to call the customer portal (/v1/portal/) from a browser for
    /// every merchant, comma separated (`https://portal.example.com,http://localhost:3000`),
    /// beside each merchant's own list (`PUT /v1/cors_settings`). Each is
    /// `scheme://host[:port]`: https, or http for localhost, 127.0.0.1 and [::1].
    #[arg(long, env = "TENURE_CORS_ALLOWED_ORIGINS", value_delimiter = ',',
        value_parser = parse_allowed_origin)]
    pub cors_allowed_origins: Vec<Origin>,
    /// The operator's token: with it, `POST/GET /v1/operator/merchants` create and list
    /// merchants over HTTP (without it those routes refuse everyone). At least 32
    /// characters, not starting with `sk_`.
    ///
    /// Taken as text and checked by [`ServeArgs::operator_token`]: a value clap's parser
    /// refused would be quoted in its error, and this one is a secret.
    #[arg(long, env = "TENURE_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    #[command(flatten)]
    pub workers: WorkerArgs,
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
    #[command(flatten)]
    pub replica: ReplicaArgs,
}

/// A streaming replica for the API's reads (docs/scaling.md, "A read replica").
#[derive(Debug, Clone, Args)]
pub struct ReplicaArgs {
    /// PostgreSQL URL of a streaming replica of the database (a standby, e.g. made with
    /// `pg_basebackup -R`). `GET` requests of merchants and customers read from it while
    /// it holds the caller's own writes and is not too far behind; everything else, and
    /// any read while it is down, goes to the primary. Each HTTP worker has a pool on it
    /// as large as its pool on the primary.
    #[arg(long, env = "TENURE_REPLICA_DATABASE_URL", hide_env_values = true)]
    pub replica_url: Option<String>,
    /// Behind the primary by more than this, in milliseconds, the replica serves no read.
    #[arg(long, env = "TENURE_REPLICA_MAX_LAG_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub replica_max_lag_ms: u64,
    /// How long a look at how far the replica has replayed is trusted, in milliseconds
    /// (a look is a one-row query on the primary and one on the replica).
    #[arg(long, env = "TENURE_REPLICA_CHECK_INTERVAL_MS", default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub replica_check_interval_ms: u64,
}

impl ReplicaArgs {
    pub fn settings(&self) -> ReplicaSettings {
        ReplicaSettings {
            max_lag: std::time::Duration::from_millis(self.replica_max_lag_ms),
            check_interval: std::time::Duration::from_millis(self.replica_check_interval_ms),
            ..ReplicaSettings::default()
        }
    }
}

impl ServeArgs {
    /// The operator's token, checked; the error never quotes the value.
    pub fn operator_token(&self) -> Result<OperatorToken, String> {
        match self.operator_token.as_deref() {
            None => Ok(OperatorToken::default()),
            Some(value) => OperatorToken::new(value)
                .map_err(|reason| format!("TENURE_OPERATOR_TOKEN (--operator-token): {reason}")),
        }
    }
}

fn parse_allowed_origin(value: &str) -> Result<Origin, String> {
    Origin::allowed(value).map_err(|reason| format!("{value:?} {reason}"))
}

/// The background workers' settings, shared by `serve` and `worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// How often the lifecycle worker looks for due scheduled changes, in milliseconds.
    #[arg(long, env = "TENURE_WORKER_INTERVAL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub worker_interval_ms: u64,
    /// Pause between webhook delivery rounds when none are due, in milliseconds.
    #[arg(long, env = "TENURE_WEBHOOK_INTERVAL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub webhook_interval_ms: u64,
    /// How long one webhook request may take before it counts as failed, in milliseconds.
    #[arg(long, env = "TENURE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub webhook_timeout_ms: u64,
    /// Renewal-engine loops per process, each with its own database connection; they
    /// claim disjoint batches (`SKIP LOCKED`), so one process keeps the database busy
    /// while another loop waits for a commit.
    #[arg(long, env = "TENURE_RENEWAL_TASKS", default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub renewal_tasks: u16,
    /// How long a charge (or refund) prepared for the gateway may take before a worker sends
    /// it again (with the same idempotency key, so the gateway replays it), in seconds.
    /// More than twice the gateway's timeout: a batch stops sending at half the lease.
    #[arg(long, env = "TENURE_CHARGE_LEASE_SECS", default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub charge_lease_secs: u32,
    /// Let webhooks reach private, loopback, link-local and other non-public addresses
    /// (the operator's own network): for development, where receivers run on
    /// 127.0.0.1. Off by default: such URLs are refused at registration and at delivery.
    #[arg(long, env = "TENURE_WEBHOOK_ALLOW_PRIVATE_TARGETS", value_parser = BoolishValueParser::new())]
    pub webhook_allow_private_targets: bool,
    /// Days events and settled webhook deliveries are kept before the workers purge them,
    /// for merchants that set no period of their own (7–3650; docs/events.md).
    #[arg(long, env = "TENURE_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u32).range(7..=3650))]
    pub retention_days: u32,
}

impl WorkerArgs {
    pub fn default_retention(&self) -> RetentionDays {
        // The parser holds it to the bounds.
        RetentionDays::new(self.retention_days).unwrap_or(RetentionDays::DEFAULT)
    }

    pub fn webhook_targets(&self) -> TargetPolicy {
        TargetPolicy::allowing_private(self.webhook_allow_private_targets)
    }

    pub fn charge_lease(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.charge_lease_secs))
    }

    pub fn webhook_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.webhook_timeout_ms)
    }
}

/// Request limits (docs/hardening.md). A rate of 0 disables that limit.
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Sustained requests per second allowed per merchant secret key.
    #[arg(long, env = "TENURE_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,
    /// Requests a merchant key may send at once above the sustained rate.
    #[arg(long, env = "TENURE_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,
    /// Sustained requests per second allowed per customer session.
    #[arg(
        long,
        env = "TENURE_RATE_LIMIT_CUSTOMER_PER_SECOND",
        default_value_t = 20
    )]
    pub rate_limit_customer_per_second: u32,
    /// Burst per customer session.
    #[arg(long, env = "TENURE_RATE_LIMIT_CUSTOMER_BURST", default_value_t = 40)]
    pub rate_limit_customer_burst: u32,
    /// Refused credentials per second allowed per client address before it is blocked.
    #[arg(
        long,
        env = "TENURE_RATE_LIMIT_UNAUTHENTICATED_PER_SECOND",
        default_value_t = 10
    )]
    pub rate_limit_unauthenticated_per_second: u32,
    /// Burst of refused credentials per client address.
    #[arg(
        long,
        env = "TENURE_RATE_LIMIT_UNAUTHENTICATED_BURST",
        default_value_t = 100
    )]
    pub rate_limit_unauthenticated_burst: u32,
    /// Take the client address from the last X-Forwarded-For hop (set this only behind a
    /// proxy that appends it).
    #[arg(long, env = "TENURE_TRUST_FORWARDED_FOR", value_parser = BoolishValueParser::new())]
    pub trust_forwarded_for: bool,
    /// Where the buckets live: `postgres` shares them with every process on the database
    /// (one upsert per request); `memory` keeps them per process (N processes allow N
    /// times the rate).
    #[arg(long, env = "TENURE_RATE_LIMIT_STORE", value_enum, default_value_t = RateLimitStoreArg::Postgres)]
    pub rate_limit_store: RateLimitStoreArg,
}

/// `--rate-limit-store`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RateLimitStoreArg {
    Postgres,
    Memory,
}

impl RateLimitArgs {
    pub fn config(&self) -> RateLimitConfig {
        RateLimitConfig {
            merchant: Limit::new(self.rate_limit_per_second, self.rate_limit_burst),
            customer: Limit::new(
                self.rate_limit_customer_per_second,
                self.rate_limit_customer_burst,
            ),
            unauthenticated: Limit::new(
                self.rate_limit_unauthenticated_per_second,
                self.rate_limit_unauthenticated_burst,
            ),
            trust_forwarded_for: self.trust_forwarded_for,
            store: match self.rate_limit_store {
                RateLimitStoreArg::Postgres => RateLimitStore::Postgres,
                RateLimitStoreArg::Memory => RateLimitStore::Memory,
            },
        }
    }
}

/// `serve`'s arguments when no subcommand is given: defaults and environment only.
#[derive(Debug, Parser)]
struct ServeFromEnv {
    #[command(flatten)]
    args: ServeArgs,
}

impl ServeArgs {
    pub fn from_env() -> Self {
        ServeFromEnv::parse_from(["tenure"]).args
    }
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant and print its id and secret key (shown only this once).
    Create {
        /// The merchant's display name.
        #[arg(long)]
        name: String,
        /// Print `{"id": …, "secret_key": …}` for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The address `tenure serve` listens on: the example curl lines use it unless
    /// `--public-url` is given.
    #[arg(long, env = "TENURE_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// The base URL printed in the example curl lines, when clients reach the server
    /// elsewhere than at its bind address (a proxy, a container's published port).
    /// Default: `http://<bind>`, with 0.0.0.0 and [::] shown as loopback.
    #[arg(long, visible_alias = "base-url", env = "TENURE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Same as `serve --jwt-secret`, so the printed token verifies on that server.
    #[arg(long, env = "TENURE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Where the reference portal (examples/portal, `npm run dev`) is served: the demo
    /// prints a link that opens it signed in as the demo customer, and allows its origin
    /// in the demo merchant's CORS settings. An https URL, or http for localhost.
    #[arg(long, env = "TENURE_DEMO_PORTAL_URL", default_value = DEFAULT_DEMO_PORTAL_URL,
        value_parser = parse_portal_url)]
    pub portal_url: PortalUrl,
}

/// Where `npm run dev` serves the reference portal (examples/portal) by default.
pub const DEFAULT_DEMO_PORTAL_URL: &str = "http://localhost:5173";

/// The reference portal's address, and its origin (which the demo merchant allows).
#[derive(Debug, Clone)]
pub struct PortalUrl {
    url: url::Url,
    origin: Origin,
}

fn parse_portal_url(value: &str) -> Result<PortalUrl, String> {
    let url = url::Url::parse(value.trim()).map_err(|err| format!("{value:?}: {err}"))?;
    // The page's origin is what its browser sends, so that is what the merchant allows.
    let origin = Origin::allowed(&url.origin().ascii_serialization())
        .map_err(|reason| format!("{value:?}: its origin {reason}"))?;
    Ok(PortalUrl { url, origin })
}

impl PortalUrl {
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The portal opened signed in: the API's base URL and a customer token in the
    /// fragment (`#api=…&token=…`, form-encoded), which the app reads at start; a
    /// fragment is never sent to a server, so the token stays out of access logs.
    pub fn signed_in(&self, api: &str, token: &str) -> String {
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("api", api)
            .append_pair("token", token)
            .finish();
        let mut url = self.url.clone();
        url.set_fragment(Some(&fragment));
        url.to_string()
    }
}

impl DemoArgs {
    /// Where the printed curl lines send their requests, without a trailing slash.
    pub fn base_url(&self) -> String {
        let base = match &self.public_url {
            Some(url) => url.clone(),
            None => url_of_bind_address(&self.bind),
        };
        base.trim_end_matches('/').to_owned()
    }
}

/// `http://` and the address a server bound to `bind` is reached at on this machine: an
/// unspecified address (listening on every interface) is reached at loopback.
fn url_of_bind_address(bind: &str) -> String {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(mut addr) => {
            if addr.ip().is_unspecified() {
                addr.set_ip(match addr.ip() {
                    std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{addr}")
        }
        // A host name and port.
        Err(_) => format!("http://{bind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo(bind: &str, public_url: Option<&str>) -> String {
        DemoArgs {
            bind: bind.to_owned(),
            public_url: public_url.map(str::to_owned),
            jwt_secret: None,
            portal_url: parse_portal_url(DEFAULT_DEMO_PORTAL_URL).unwrap(),
        }
        .base_url()
    }

    #[test]
    fn the_demo_s_portal_link_carries_the_api_and_the_token_in_its_fragment() {
        let portal =
            |value: &str| match Cli::try_parse_from(["tenure", "demo", "--portal-url", value]) {
                Ok(Cli {
                    command: Some(Command::Demo(args)),
                    ..
                }) => Ok(args.portal_url),
                Ok(_) => panic!("not demo"),
                Err(err) => Err(err.to_string()),
            };
        let default = parse_portal_url(DEFAULT_DEMO_PORTAL_URL).unwrap();
        assert_eq!(default.origin().as_str(), "http://localhost:5173");
        assert_eq!(
            default.signed_in("http://127.0.0.1:8080", "eyJ.a-b_c.d"),
            "http://localhost:5173/#api=http%3A%2F%2F127.0.0.1%3A8080&token=eyJ.a-b_c.d"
        );
        let hosted = portal("https://Portal.example.com:443/app/?x=1#old").unwrap();
        assert_eq!(hosted.origin().as_str(), "https://portal.example.com");
        assert_eq!(
            hosted.signed_in("https://api.example.com", "t"),
            "https://portal.example.com/app/?x=1#api=https%3A%2F%2Fapi.example.com&token=t"
        );
        let refused = portal("http://portal.example.com").unwrap_err();
        assert!(refused.contains("must use https"), "{refused}");
        let refused = portal("portal").unwrap_err();
        assert!(refused.contains("relative URL"), "{refused}");
    }

    #[test]
    fn the_operator_s_origins_are_a_comma_separated_list_checked_at_start() {
        let serve = |origins: &str| match Cli::try_parse_from([
            "tenure",
            "serve",
            "--cors-allowed-origins",
            origins,
        ]) {
            Ok(Cli {
                command: Some(Command::Serve(args)),
                ..
            }) => Ok(args
                .cors_allowed_origins
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
            Ok(_) => panic!("not serve"),
            Err(err) => Err(err.to_string()),
        };
        assert_eq!(
            serve("https://Portal.example.com, http://localhost:3000").unwrap(),
            ["https://portal.example.com", "http://localhost:3000"]
        );
        let refused = serve("https://portal.example.com,http://portal.example.com").unwrap_err();
        assert!(refused.contains("must use https"), "{refused}");
        let refused = serve("https://portal.example.com/app").unwrap_err();
        assert!(refused.contains("no path"), "{refused}");
    }

    #[test]
    fn the_demo_s_urls_follow_the_bind_address_unless_a_public_url_is_set() {
        assert_eq!(demo(DEFAULT_BIND, None), "http://127.0.0.1:8080");
        assert_eq!(demo("127.0.0.1:9000", None), "http://127.0.0.1:9000");
        assert_eq!(demo("0.0.0.0:9000", None), "http://127.0.0.1:9000");
        assert_eq!(demo("[::]:9000", None), "http://[::1]:9000");
        assert_eq!(demo("[::1]:9000", None), "http://[::1]:9000");
        assert_eq!(demo("localhost:9000", None), "http://localhost:9000");
        assert_eq!(
            demo("0.0.0.0:9000", Some("https://billing.example.com/")),
            "https://billing.example.com"
        );
    }
}
