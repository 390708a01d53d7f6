//! The merchant's CORS settings: which web origins may call the customer portal from a
//! browser (CORS), and the per-process set of every merchant's allowed origins that the
//! HTTP layer checks browsers' requests against.
//!
//! The set is read whole from the database and kept for [`TTL`], so a browser's request
//! costs no query: a preflight carries no credential, so it asks whether *any* merchant
//! allows its origin, and a request with a token asks whether the token's merchant does.
//! This process forgets the set as soon as it changes a merchant's origins; a change
//! made by another process shows here within the TTL. Each merchant lists at most
//! [`cors::MAX_ALLOWED_ORIGINS`], so the set stays small.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tenure_domain::cors::{self, Origin};
use tenure_domain::ids::MerchantId;
use tenure_store::repo::cors_settings::{self as repo, CorsSettingsRow};

use crate::App;
use crate::dto::sessions::{CorsSettingsDto, PutCorsSettings};
use crate::error::{AppResult, Validator};

/// How long another process's change to a merchant's origins may take to show here.
pub const TTL: Duration = Duration::from_secs(2);

/// Every merchant's allowed origins at one moment.
#[derive(Debug, Default)]
pub struct AllowedOrigins {
    merchants_by_origin: HashMap<Origin, HashSet<MerchantId>>,
}

impl AllowedOrigins {
    /// Whether some merchant allows `origin` (what a preflight, with no credential, can
    /// ask).
    pub fn by_any_merchant(&self, origin: &Origin) -> bool {
        self.merchants_by_origin.contains_key(origin)
    }

    /// Whether `merchant` allows `origin`.
    pub fn by_merchant(&self, merchant: MerchantId, origin: &Origin) -> bool {
        self.merchants_by_origin
            .get(origin)
            .is_some_and(|merchants| merchants.contains(&merchant))
    }

    fn from_rows(rows: Vec<(MerchantId, Vec<String>)>) -> Self {
        let mut merchants_by_origin: HashMap<Origin, HashSet<MerchantId>> = HashMap::new();
        for (merchant, origins) in rows {
            // Stored normalised by `put`; anything else could never match a header.
            for origin in origins.iter().filter_map(|o| Origin::from_header(o)) {
                merchants_by_origin
                    .entry(origin)
                    .or_default()
                    .insert(merchant);
            }
        }
        Self {
            merchants_by_origin,
        }
    }
}

/// A set and when its read began.
type Snapshot = (Instant, Arc<AllowedOrigins>);

/// The per-process set, shared by every HTTP worker (cloning shares it).
#[derive(Clone)]
pub struct AllowedOriginsCache {
    ttl: Duration,
    current: Arc<Mutex<Option<Snapshot>>>,
    /// Moves on every `forget`: a set read before a change must not be kept after it.
    generation: Arc<AtomicU64>,
    /// One request refreshes a stale set while the others keep using it.
    refreshing: Arc<AtomicBool>,
}

impl std::fmt::Debug for AllowedOriginsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllowedOriginsCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for AllowedOriginsCache {
    fn default() -> Self {
        Self::new(TTL)
    }
}

/// Clears the refreshing mark however the refresh ends (an error, a dropped request).
struct RefreshGuard<'a>(&'a AtomicBool);

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl AllowedOriginsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            current: Arc::default(),
            generation: Arc::default(),
            refreshing: Arc::default(),
        }
    }

    fn cached(&self) -> Option<Snapshot> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// This process changed a merchant's origins: the next request reads them again.
    pub fn forget(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Every merchant's allowed origins, from the process's set while it is fresh.
pub async fn allowed_origins(app: &App) -> AppResult<Arc<AllowedOrigins>> {
    let cache = &app.allowed_origins;
    let stale = match cache.cached() {
        Some((read_at, set)) if read_at.elapsed() < cache.ttl => return Ok(set),
        Some((_, set)) => Some(set),
        None => None,
    };
    // While another request refreshes a stale set, this one keeps using it.
    if let Some(set) = &stale
        && cache.refreshing.swap(true, Ordering::AcqRel)
    {
        return Ok(Arc::clone(set));
    }
    let _guard = stale.is_some().then(|| RefreshGuard(&cache.refreshing));
    let (started, generation) = (Instant::now(), cache.generation.load(Ordering::Acquire));
    let rows = async {
        let mut conn = app.db.conn().await?;
        Ok::<_, crate::error::AppError>(repo::all_allowed_origins(&mut conn).await?)
    }
    .await;
    let set = match (rows, stale) {
        (Ok(rows), _) => Arc::new(AllowedOrigins::from_rows(rows)),
        // The database is unreachable: the last set still answers rather than refusing
        // every browser; it is read again on the next request.
        (Err(_), Some(stale)) => return Ok(stale),
        (Err(err), None) => return Err(err),
    };
    {
        let mut current = cache.current.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.generation.load(Ordering::Acquire) == generation {
            // Its age counts from before the read, so a change committed during the read
            // shows within the TTL.
            *current = Some((started, Arc::clone(&set)));
        }
    }
    Ok(set)
}

fn dto(row: CorsSettingsRow) -> CorsSettingsDto {
    CorsSettingsDto {
        object: "cors_settings".to_owned(),
        allowed_origins: row.allowed_origins,
        updated_at: row.updated_at,
    }
}

pub async fn get(app: &App, merchant: MerchantId) -> AppResult<CorsSettingsDto> {
    let mut conn = app.db.conn().await?;
    Ok(dto(repo::get(&mut conn, merchant).await?))
}

/// Replaces the merchant's allowed origins; every invalid entry is named
/// (`allowed_origins[2]`).
pub async fn put(
    app: &App,
    merchant: MerchantId,
    input: PutCorsSettings,
) -> AppResult<CorsSettingsDto> {
    let mut v = Validator::default();
    let origins = v.check_all(cors::allowed_origins(
        "allowed_origins",
        &input.allowed_origins,
    ));
    v.finish()?;
    let origins: Vec<String> = origins
        .unwrap_or_default()
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect();
    let mut conn = app.db.conn().await?;
    let row = repo::set_allowed_origins(&mut conn, merchant, &origins, app.now_micros()).await?;
    app.allowed_origins.forget();
    Ok(dto(row))
}
