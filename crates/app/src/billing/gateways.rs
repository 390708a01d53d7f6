//! Each merchant's payment gateway: its settings (`/v1/gateway_settings`, secrets sealed
//! with the operator's key, see [`crate::secrets`]), and which gateway a charge, refund
//! or card collection of the merchant goes to.
//!
//! A merchant without settings (or with `sandbox`) uses [`App::gateway`], the built-in
//! sandbox, in test mode; a live tenant has no sandbox (its cards would be pretend money),
//! so until it connects a gateway every use of one is refused with 422
//! `live_mode_requires_gateway`. A Stripe merchant's gateway is made by the [`GatewayConnector`] the server
//! gives the app: the HTTP client lives in `tenure-engine`, the only crate that talks to
//! the outside, and the app sees it only through `PaymentGateway`. Each process keeps a
//! merchant's resolved gateway for [`TTL`] (forgotten at once when this process changes
//! the settings), so a charge batch does not read and open the keys once per charge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::gateway::{CardCollection, CollectionError, PaymentGateway};
use tenure_domain::billing::gateway_settings::{GatewayProvider, StripeKeys, last4};
use tenure_domain::ids::{CustomerId, MerchantId};
use tenure_store::repo::gateway_settings::{self as repo, GatewaySettingsRow, NewGatewaySettings};
use tenure_store::repo::{customers, merchants};

use crate::App;
use crate::dto::billing::{GatewaySettingsDto, PutGatewaySettings, SetupIntentDto};
use crate::error::{AppError, AppResult, Validator, checked};
use crate::secrets::Keyring;

/// How long another process's change of a merchant's gateway may take to show here.
pub const TTL: Duration = Duration::from_secs(2);

/// Makes network gateways from a merchant's keys (implemented by `tenure-engine`).
pub trait GatewayConnector: Send + Sync + std::fmt::Debug {
    /// A Stripe gateway that calls with `secret_key`.
    fn stripe(&self, secret_key: &str) -> Arc<dyn PaymentGateway>;
}

/// A merchant's gateway, resolved from its settings.
#[derive(Debug)]
pub struct MerchantGateway {
    pub provider: GatewayProvider,
    pub gateway: Arc<dyn PaymentGateway>,
    pub publishable_key: Option<String>,
    /// Stripe's signing secret of the events it sends (`whsec_…`), if set.
    pub webhook_secret: Option<String>,
}

impl MerchantGateway {
    pub fn card_collection(&self) -> Option<&dyn CardCollection> {
        self.gateway.card_collection()
    }
}

/// A merchant's gateway as this process resolved it.
#[derive(Clone)]
enum Resolved {
    /// The sandbox, which is always [`App::gateway`] (tests swap it in clones).
    Sandbox,
    Network(Arc<MerchantGateway>),
    /// A live tenant without a gateway of its own.
    LiveWithoutGateway,
}

type Cached = (Instant, Resolved);

/// The operator's secrets key, the connector to network gateways, and the per-process
/// cache of resolved gateways. Cloning shares the cache.
#[derive(Clone, Default)]
pub struct Gateways {
    keyring: Option<Arc<Keyring>>,
    connector: Option<Arc<dyn GatewayConnector>>,
    cache: Arc<Mutex<HashMap<MerchantId, Cached>>>,
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateways")
            .field("keyring", &self.keyring.is_some())
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl Gateways {
    pub fn new(keyring: Option<Keyring>, connector: Option<Arc<dyn GatewayConnector>>) -> Self {
        Self {
            keyring: keyring.map(Arc::new),
            connector,
            cache: Arc::default(),
        }
    }

    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    fn cached(&self, merchant: MerchantId) -> Option<Resolved> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(&merchant)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, g)| g.clone())
    }

    fn keep(&self, merchant: MerchantId, gateway: Resolved) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|_, (at, _)| at.elapsed() < TTL);
        cache.insert(merchant, (Instant::now(), gateway));
    }

    /// This process changed the merchant's settings.
    pub fn forget(&self, merchant: MerchantId) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&merchant);
    }
}

fn context(merchant: MerchantId, field: &str) -> String {
    format!("{merchant}:{field}")
}

fn no_keyring() -> AppError {
    AppError::conflict(
        "secrets_key_not_configured",
        "the operator has not configured TENURE_SECRETS_KEY, which gateway secrets are \
         encrypted with; only the sandbox can be used",
    )
}

/// The refusal of the sandbox to a live tenant.
pub fn live_mode_requires_gateway() -> AppError {
    AppError::Unprocessable {
        code: "live_mode_requires_gateway",
        detail: "the sandbox gateway and its test cards work in test mode only; connect a \
                 payment gateway for live mode first (PUT /v1/gateway_settings with a live key)"
            .to_owned(),
    }
}

fn found(state: &App, resolved: Resolved) -> AppResult<Arc<MerchantGateway>> {
    match resolved {
        Resolved::Sandbox => Ok(Arc::new(sandbox(state))),
        Resolved::Network(gateway) => Ok(gateway),
        Resolved::LiveWithoutGateway => Err(live_mode_requires_gateway()),
    }
}

/// The merchant's gateway (the sandbox without settings, in test mode only), through the
/// process's cache.
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    state: &App,
    merchant: MerchantId,
) -> AppResult<Arc<MerchantGateway>> {
    if let Some(hit) = state.gateways.cached(merchant) {
        return found(state, hit);
    }
    let row = repo::get(conn, merchant, false).await?;
    let resolved = match build(state, merchant, row)? {
        Some(gateway) => Resolved::Network(Arc::new(gateway)),
        None if merchants::mode(conn, merchant).await?.is_live() => Resolved::LiveWithoutGateway,
        None => Resolved::Sandbox,
    };
    state.gateways.keep(merchant, resolved.clone());
    found(state, resolved)
}

/// [`resolve`] on a connection of its own.
pub async fn resolve_alone(state: &App, merchant: MerchantId) -> AppResult<Arc<MerchantGateway>> {
    if let Some(hit) = state.gateways.cached(merchant) {
        return found(state, hit);
    }
    let mut conn = state.db.conn().await?;
    resolve(&mut conn, state, merchant).await
}

fn sandbox(state: &App) -> MerchantGateway {
    MerchantGateway {
        provider: GatewayProvider::Sandbox,
        gateway: state.gateway.clone(),
        publishable_key: None,
        webhook_secret: None,
    }
}

fn build(
    state: &App,
    merchant: MerchantId,
    row: Option<GatewaySettingsRow>,
) -> AppResult<Option<MerchantGateway>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let provider: GatewayProvider = row.provider.parse()?;
    if provider == GatewayProvider::Sandbox {
        return Ok(None);
    }
    // Not `Unavailable`: that would end a whole charge round, not only this merchant's.
    let keyring = state
        .gateways
        .keyring()
        .ok_or_else(|| AppError::internal("TENURE_SECRETS_KEY is not configured"))?;
    let open = |field: &str, sealed: Option<&[u8]>| -> AppResult<Option<String>> {
        sealed
            .map(|s| keyring.open(&context(merchant, field), s))
            .transpose()
            .map_err(|e| AppError::internal(format!("{field} of {merchant}: {e}")))
    };
    let secret_key = open("secret_key", row.secret_key_sealed.as_deref())?
        .ok_or_else(|| AppError::internal("stripe settings without a secret key"))?;
    let webhook_secret = open("webhook_secret", row.webhook_secret_sealed.as_deref())?;
    let connector = state
        .gateways
        .connector
        .as_ref()
        .ok_or_else(|| AppError::internal("no gateway connector configured"))?;
    Ok(Some(MerchantGateway {
        provider,
        gateway: connector.stripe(&secret_key),
        publishable_key: row.publishable_key,
        webhook_secret,
    }))
}

fn render(row: Option<GatewaySettingsRow>) -> GatewaySettingsDto {
    match row {
        None => GatewaySettingsDto {
            object: "gateway_settings".to_owned(),
            provider: GatewayProvider::Sandbox.into(),
            secret_key_last4: None,
            webhook_secret_set: false,
            webhook_secret_last4: None,
            publishable_key: None,
            updated_at: None,
        },
        Some(row) => GatewaySettingsDto {
            object: "gateway_settings".to_owned(),
            provider: row
                .provider
                .parse::<GatewayProvider>()
                .unwrap_or(GatewayProvider::Sandbox)
                .into(),
            secret_key_last4: row.secret_key_last4,
            webhook_secret_set: row.webhook_secret_sealed.is_some(),
            webhook_secret_last4: row.webhook_secret_last4,
            publishable_key: row.publishable_key,
            updated_at: Some(row.updated_at),
        },
    }
}

/// `GET /v1/gateway_settings`.
pub async fn get(state: &App, merchant: MerchantId) -> AppResult<GatewaySettingsDto> {
    let mut conn = state.db.conn().await?;
    Ok(render(repo::get(&mut conn, merchant, false).await?))
}

/// `PUT /v1/gateway_settings`: replaces the settings; the keys are checked, sealed and
/// never shown again. Takes effect at once in this process, within [`TTL`] in others.
pub async fn put(
    state: &App,
    merchant: MerchantId,
    input: PutGatewaySettings,
) -> AppResult<GatewaySettingsDto> {
    let provider = GatewayProvider::from(input.provider);
    let new = match provider {
        GatewayProvider::Sandbox => {
            let mut conn = state.db.conn().await?;
            if merchants::mode(&mut conn, merchant).await?.is_live() {
                return Err(live_mode_requires_gateway());
            }
            drop(conn);
            let mut v = Validator::default();
            for (field, value) in [
                ("secret_key", &input.secret_key),
                ("webhook_secret", &input.webhook_secret),
                ("publishable_key", &input.publishable_key),
            ] {
                if value.is_some() {
                    v.fail(field, "must not be given for the sandbox");
                }
            }
            v.finish()?;
            NewGatewaySettings {
                provider: provider.as_str().to_owned(),
                secret_key_sealed: None,
                secret_key_last4: None,
                webhook_secret_sealed: None,
                webhook_secret_last4: None,
                publishable_key: None,
            }
        }
        GatewayProvider::Stripe => {
            let mut v = Validator::default();
            if input.secret_key.is_none() {
                v.fail("secret_key", "is required for stripe");
            }
            if input.publishable_key.is_none() {
                v.fail("publishable_key", "is required for stripe");
            }
            let keys = match (input.secret_key, input.publishable_key) {
                (Some(secret), Some(publishable)) => {
                    v.check_all(StripeKeys::new(secret, input.webhook_secret, publishable))
                }
                _ => None,
            };
            v.finish()?;
            let keys = checked(keys)?;
            let mut conn = state.db.conn().await?;
            let tenant_is_live = merchants::mode(&mut conn, merchant).await?.is_live();
            drop(conn);
            keys.check_tenant_mode(tenant_is_live)?;
            let keyring = state.gateways.keyring().ok_or_else(no_keyring)?;
            check_with_stripe(state, &keys.secret_key).await?;
            NewGatewaySettings {
                provider: provider.as_str().to_owned(),
                secret_key_sealed: Some(
                    keyring.seal(&context(merchant, "secret_key"), &keys.secret_key),
                ),
                secret_key_last4: Some(last4(&keys.secret_key)),
                webhook_secret_sealed: keys
                    .webhook_secret
                    .as_deref()
                    .map(|w| keyring.seal(&context(merchant, "webhook_secret"), w)),
                webhook_secret_last4: keys.webhook_secret.as_deref().map(last4),
                publishable_key: Some(keys.publishable_key.clone()),
            }
        }
    };
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    let row = repo::put(&mut conn, merchant, new, now).await?;
    state.gateways.forget(merchant);
    Ok(render(Some(row)))
}

/// Asks Stripe whether it accepts `secret_key` (one authenticated read), before anything
/// is saved: a refused key is 422 on `secret_key`; a Stripe that cannot be reached is
/// 503, and nothing is saved either (a key that was never tried could stop every charge).
async fn check_with_stripe(state: &App, secret_key: &str) -> AppResult<()> {
    // Without a connector (a build that makes no network gateway) there is nothing to ask.
    let Some(connector) = state.gateways.connector.as_ref() else {
        return Ok(());
    };
    let gateway = connector.stripe(secret_key);
    let Some(collection) = gateway.card_collection() else {
        return Ok(());
    };
    match collection.check_credentials().await {
        Ok(()) => Ok(()),
        Err(CollectionError::Refused { code, message }) => Err(AppError::field(
            "secret_key",
            format!("was refused by Stripe ({code}): {message}"),
        )),
        Err(CollectionError::Unavailable(cause)) => Err(AppError::Unavailable(format!(
            "Stripe could not be reached to check the keys, which were not saved: {cause}"
        ))),
    }
}

/// `DELETE /v1/gateway_settings`: back to the sandbox; the sealed keys are deleted.
pub async fn delete(state: &App, merchant: MerchantId) -> AppResult<GatewaySettingsDto> {
    let mut conn = state.db.conn().await?;
    repo::delete(&mut conn, merchant).await?;
    state.gateways.forget(merchant);
    Ok(render(None))
}

/// Seals every merchant's secrets again under the current operator key (after a
/// rotation); returns how many merchants' secrets changed. Values sealed with a key no
/// longer configured are an error: nothing is changed then.
pub async fn reseal_all(state: &App) -> AppResult<usize> {
    let keyring = state.gateways.keyring().ok_or_else(no_keyring)?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let mut changed = 0;
        for (merchant, secret, webhook) in repo::all_sealed(conn).await? {
            let stale = secret.as_deref().is_some_and(|s| keyring.is_stale(s))
                || webhook.as_deref().is_some_and(|s| keyring.is_stale(s));
            if !stale {
                continue;
            }
            let reseal = |field: &str, sealed: Option<Vec<u8>>| -> AppResult<Option<Vec<u8>>> {
                let ctx = context(merchant, field);
                sealed
                    .map(|s| {
                        keyring
                            .open(&ctx, &s)
                            .map(|plain| keyring.seal(&ctx, &plain))
                            .map_err(|e| AppError::internal(format!("{field} of {merchant}: {e}")))
                    })
                    .transpose()
            };
            let secret = reseal("secret_key", secret)?;
            let webhook = reseal("webhook_secret", webhook)?;
            repo::reseal(conn, merchant, secret, webhook).await?;
            changed += 1;
        }
        Ok::<_, AppError>(changed)
    })
    .await
}

/// The gateway's customer for `customer`, created at the gateway the first time it is
/// needed (with an idempotency key naming the customer, so two racing requests get one).
pub async fn ensure_gateway_customer(
    state: &App,
    gateway: &MerchantGateway,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<String> {
    let collection = gateway
        .card_collection()
        .ok_or_else(|| AppError::internal("ensure_gateway_customer on the sandbox"))?;
    let provider = gateway.provider.as_str();
    let mut conn = state.db.conn().await?;
    let stored = customers::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    stored.ensure_not_erased()?;
    if let Some(existing) = repo::customer_ref(&mut conn, merchant, customer, provider).await? {
        return Ok(existing);
    }
    // Not across the call: a connection held during a network call is one fewer for
    // everyone else.
    drop(conn);
    let created = collection
        .create_customer(
            &customer.to_string(),
            stored.email.as_deref(),
            &format!("tenure-customer-{customer}"),
        )
        .await
        .map_err(gateway_error)?;
    let mut conn = state.db.conn().await?;
    Ok(repo::insert_customer_ref(
        &mut conn,
        merchant,
        customer,
        provider,
        &created,
        state.now_micros(),
    )
    .await?)
}

/// A card-collection failure at the gateway, in the use case's terms.
pub fn gateway_error(err: CollectionError) -> AppError {
    match err {
        CollectionError::Refused { code, message } => AppError::Conflict {
            code: "gateway_refused",
            detail: format!("the payment gateway refused the request ({code}): {message}"),
        },
        CollectionError::Unavailable(cause) => {
            AppError::Unavailable(format!("payment gateway: {cause}"))
        }
    }
}

/// `POST /v1/portal/setup_intents`: a setup intent for the signed-in customer, created at
/// the merchant's gateway with the customer's gateway customer (made when first needed).
pub async fn create_setup_intent(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<SetupIntentDto> {
    let gateway = resolve_alone(state, merchant).await?;
    let Some(collection) = gateway.card_collection() else {
        return Err(AppError::conflict(
            "setup_intents_not_supported",
            "the merchant uses the sandbox gateway, which takes payment method tokens \
             directly (POST /v1/portal/payment_methods)",
        ));
    };
    let customer_ref = ensure_gateway_customer(state, &gateway, merchant, customer).await?;
    let intent = collection
        .create_setup_intent(&customer_ref)
        .await
        .map_err(gateway_error)?;
    Ok(SetupIntentDto {
        object: "setup_intent".to_owned(),
        provider: gateway.provider.into(),
        id: intent.id,
        client_secret: intent.client_secret,
        publishable_key: gateway.publishable_key.clone().unwrap_or_default(),
    })
}
