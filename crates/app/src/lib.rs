//! Tenure's use cases: each loads what it needs, applies the domain's rules, persists the
//! result and records its events in one transaction. No HTTP lives here: `tenure-api`
//! parses a request, calls one function of this crate and renders what it returns, and
//! `tenure-engine` calls the same functions from its background loops.
//!
//! | module | what it does |
//! |---|---|
//! | [`catalog`] | products, plans, their portal policy |
//! | [`customers`], [`context`] | customers; notes, tags and the unified customer context |
//! | [`subscriptions`] | subscribe, pause, resume, cancel, change plan; requests; views |
//! | [`billing`] | payment methods, invoices, charging, prorations, settings, gateways |
//! | [`secrets`] | sealing merchants' gateway secrets with the operator's key |
//! | [`retention`], [`support`] | retention offers; cancellation requests' tickets |
//! | [`gdpr`], [`metrics`] | export and erasure; subscriber metrics |
//! | [`backlog`] | the background work waiting, for the operator's `/metrics` |
//! | [`rate_limits`] | request limits shared by every process |
//! | [`replica`] | where a read is served from: a streaming replica, with read-your-writes |
//! | [`purge`] | removing events, deliveries and idempotency keys past their retention |
//! | [`webhooks`], [`events`] | webhook endpoints and redelivery; the event outbox |
//! | [`outbound`] | where webhooks may be sent (the operator's target policy, DNS checks) |
//! | [`merchants`], [`sessions`] | merchants and their keys; customer sessions and identity providers |
//! | [`test_clocks`] | test clocks, and the time a customer on one lives in |
//! | [`dto`] | the request and response shapes, which events are rendered from too |

pub mod addresses;
pub mod audit;
pub mod backlog;
pub mod billing;
pub mod catalog;
pub mod context;
pub mod cors_settings;
pub mod coupons;
pub mod customers;
pub mod dto;
pub mod error;
pub mod events;
pub mod gdpr;
pub mod merchants;
pub mod metrics;
pub mod orders;
pub mod outbound;
pub mod overrides;
pub mod portal_terms;
pub mod purge;
pub mod rate_limits;
pub mod replica;
pub mod retention;
pub mod secrets;
pub mod sessions;
pub mod stock;
pub mod subscriptions;
pub mod support;
pub mod test_clocks;
pub mod versions;
pub mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tenure_domain::billing::gateway::PaymentGateway;
use tenure_domain::clock::Clock;
use tenure_domain::data_retention::RetentionDays;
use tenure_domain::outbound::TargetPolicy;
use tenure_domain::time::truncate_to_micros;
use tenure_store::Db;

pub use error::{AppError, AppResult, FieldError};

use cors_settings::AllowedOriginsCache;
use portal_terms::PortalTermsCache;
use sessions::tokens::SessionSigner;

/// What every use case shares: the database, the clock, the payment gateway, the
/// customer-session signer and the portal's short-lived cache of product terms.
#[derive(Clone, Debug)]
pub struct App {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub sessions: SessionSigner,
    /// Where charges and refunds go for merchants without gateway settings: the
    /// deterministic sandbox (tests put their own doubles here).
    pub gateway: Arc<dyn PaymentGateway>,
    /// Merchants' own gateways (Stripe): the operator's secrets key, the connector that
    /// makes them, and the per-process cache of them ([`billing::gateways`]).
    pub gateways: billing::gateways::Gateways,
    /// Products' portal policies and plans, kept briefly for the portal's reads.
    pub portal_terms: PortalTermsCache,
    /// Every merchant's allowed web origins (CORS), kept briefly for browsers' requests.
    pub allowed_origins: AllowedOriginsCache,
    /// How long a prepared charge may take before the engine sends it again
    /// ([`billing::charging`]).
    pub charge_lease: chrono::Duration,
    /// Which addresses a webhook endpoint's URL may point to (public only, unless the
    /// operator allows private targets for development).
    pub webhook_targets: TargetPolicy,
    /// How long events and settled webhook deliveries are kept unless the merchant set
    /// its own period (the operator's `--retention-days`).
    pub default_retention: RetentionDays,
    /// A streaming replica that serves the API's reads (`--replica-url`), if any.
    pub replica: Option<replica::Replica>,
    /// Writes the audit trail's entries in batches ([`audit::AuditLog`]).
    pub audit_log: audit::AuditLog,
}

impl App {
    /// The application as an operator without settings gets it: the sandbox for merchants
    /// without gateway settings, no Stripe, empty caches, the default charge lease, public
    /// webhook targets only, the default retention and no replica. Settings and tests
    /// change a field with `App { field, ..App::new(…) }`, so a new field is added here
    /// once.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        sessions: SessionSigner,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        Self {
            db,
            clock,
            sessions,
            gateway,
            gateways: billing::gateways::Gateways::default(),
            portal_terms: PortalTermsCache::default(),
            allowed_origins: AllowedOriginsCache::default(),
            charge_lease: billing::charging::DEFAULT_LEASE,
            webhook_targets: TargetPolicy::default(),
            default_retention: RetentionDays::DEFAULT,
            replica: None,
            audit_log: audit::AuditLog::default(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Now, to the microsecond PostgreSQL keeps, so a response and a later read agree.
    pub fn now_micros(&self) -> DateTime<Utc> {
        truncate_to_micros(self.now())
    }
}
