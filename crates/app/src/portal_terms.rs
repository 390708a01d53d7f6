//! What a product lets its subscribers do in the portal (its portal policy and the plans
//! they may switch to), kept briefly in the process. The portal's hot read would
//! otherwise join the product and its plans on every page view; measured with pgbench on
//! the read's own statement, that join was a fifth of PostgreSQL's work for it.
//!
//! An entry lives for [`TTL`]. This process forgets a product's entry as soon as it
//! changes the product or one of its plans, or a product it may swap to or one of that
//! product's plans; a change made by another process shows here within the TTL. Only what the portal *shows* can lag that long: every change a
//! customer makes re-reads the policy inside its own transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;
use tenure_domain::catalog::{Plan, QuantityLimits};
use tenure_domain::ids::{MerchantId, PlanId, ProductId};
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::OfferedPlan;
use tenure_store::repo::catalog as catalog_repo;

use crate::App;
use crate::error::AppResult;

/// How long another process's change to a product may take to show in this one's portal.
pub const TTL: Duration = Duration::from_secs(2);
/// Beyond this many products the cache starts again empty, so it cannot grow unbounded.
const MAX_ENTRIES: usize = 10_000;

/// A product's portal policy and purchasable plans (as `catalog::portal_terms` reads them):
/// its own first, then those of the products it may swap to.
#[derive(Debug, PartialEq)]
pub struct PortalTerms {
    pub policy: PortalPolicy,
    pub quantity_limits: QuantityLimits,
    pub plans: Vec<OfferedPlan>,
    /// The products whose plans are offered as swaps: a change to one of them forgets
    /// these terms too.
    pub swap_products: Vec<ProductId>,
    /// The product's name and whether it ships.
    pub product_name: String,
    pub shippable: bool,
    /// Every plan of the product, retired ones too (newest first, bounded by
    /// `catalog_repo::PRODUCT_CATALOG_PLANS`): what names a subscription's plan in the
    /// portal after the merchant retired it.
    pub catalog: Vec<Plan>,
}

impl PortalTerms {
    /// The product's plan `id`, active or retired, if among [`Self::catalog`].
    pub fn plan(&self, id: PlanId) -> Option<&Plan> {
        self.catalog.iter().find(|p| p.id == id)
    }
}

type Entries = HashMap<(MerchantId, ProductId), (Instant, Arc<PortalTerms>)>;

/// Shared by every HTTP worker of the process (cloning shares it).
#[derive(Clone)]
pub struct PortalTermsCache {
    ttl: Duration,
    entries: Arc<Mutex<Entries>>,
    /// Moves on every `forget`: terms read before a change must not be stored after it.
    generation: Arc<AtomicU64>,
}

/// When a read of terms began, for [`PortalTermsCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct ReadStart {
    at: Instant,
    generation: u64,
}

impl std::fmt::Debug for PortalTermsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalTermsCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for PortalTermsCache {
    fn default() -> Self {
        Self::new(TTL)
    }
}

impl PortalTermsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Call before reading terms from the database; pass the result to [`Self::put`].
    pub fn read_start(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            generation: self.generation.load(Ordering::Acquire),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere while holding the lock leaves nothing half-written worth
        // refusing: each operation is a single map call.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, merchant: MerchantId, product: ProductId) -> Option<Arc<PortalTerms>> {
        let entries = self.entries();
        let (read_at, terms) = entries.get(&(merchant, product))?;
        (read_at.elapsed() < self.ttl).then(|| Arc::clone(terms))
    }

    /// Stores terms read since `start`, unless a product changed in the meantime (the
    /// terms might predate the change; they are still returned for this one use). Their
    /// age counts from `start`, so a change committed during the read shows within the
    /// TTL in other processes.
    pub fn put(
        &self,
        merchant: MerchantId,
        product: ProductId,
        terms: PortalTerms,
        start: ReadStart,
    ) -> Arc<PortalTerms> {
        let terms = Arc::new(terms);
        let mut entries = self.entries();
        if self.generation.load(Ordering::Acquire) != start.generation {
            return terms;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert((merchant, product), (start.at, Arc::clone(&terms)));
        terms
    }

    /// Called by every change to a product or its plans, so this process never shows
    /// terms older than its own last change.
    pub fn forget(&self, merchant: MerchantId, product: ProductId) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(merchant, product));
        // The products offering this one's plans as swaps (catalog writes are rare).
        entries
            .retain(|(m, _), (_, terms)| *m != merchant || !terms.swap_products.contains(&product));
    }
}

/// The product's terms, from the cache or (then cached) from the database.
pub async fn terms_of(
    state: &App,
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> AppResult<Arc<PortalTerms>> {
    if let Some(terms) = state.portal_terms.get(merchant, product) {
        return Ok(terms);
    }
    let start = state.portal_terms.read_start();
    let ((policy, quantity_limits, mut plans, swap_products), (product_row, catalog)) =
        futures_util::future::try_join(
            catalog_repo::portal_terms(conn, merchant, product),
            catalog_repo::product_catalog(conn, merchant, product),
        )
        .await?;
    if !swap_products.is_empty() {
        plans.extend(catalog_repo::swap_offers(conn, merchant, &swap_products).await?);
    }
    let terms = PortalTerms {
        policy,
        quantity_limits,
        plans,
        swap_products,
        product_name: product_row.name,
        shippable: product_row.shippable,
        catalog,
    };
    Ok(state.portal_terms.put(merchant, product, terms, start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_domain::ids::{GenerateId, PlanId};

    fn terms(plans: usize) -> PortalTerms {
        PortalTerms {
            policy: PortalPolicy::default(),
            quantity_limits: QuantityLimits::default(),
            plans: (0..plans)
                .map(|_| OfferedPlan {
                    plan_id: PlanId::generate(),
                    currency: "EUR".parse().unwrap(),
                    product: tenure_domain::subscription::TargetProduct::Same,
                })
                .collect(),
            swap_products: Vec::new(),
            product_name: String::new(),
            shippable: false,
            catalog: Vec::new(),
        }
    }

    #[test]
    fn a_change_to_a_swap_product_forgets_the_products_offering_it() {
        let cache = PortalTermsCache::new(Duration::from_secs(60));
        let (m, p, swap, other) = (
            MerchantId::generate(),
            ProductId::generate(),
            ProductId::generate(),
            ProductId::generate(),
        );
        let with_swap = PortalTerms {
            swap_products: vec![swap],
            ..terms(1)
        };
        cache.put(m, p, with_swap, cache.read_start());
        cache.put(m, other, terms(1), cache.read_start());
        cache.forget(MerchantId::generate(), swap);
        assert!(cache.get(m, p).is_some(), "another merchant's product");
        cache.forget(m, swap);
        assert!(cache.get(m, p).is_none());
        assert!(cache.get(m, other).is_some());
    }

    #[test]
    fn entries_are_kept_until_forgotten_or_expired() {
        let cache = PortalTermsCache::new(Duration::from_secs(60));
        let (m, p) = (MerchantId::generate(), ProductId::generate());
        assert!(cache.get(m, p).is_none());
        cache.put(m, p, terms(2), cache.read_start());
        assert_eq!(cache.get(m, p).map(|t| t.plans.len()), Some(2));
        assert!(
            cache.get(MerchantId::generate(), p).is_none(),
            "keyed by merchant too"
        );
        cache.forget(m, p);
        assert!(cache.get(m, p).is_none());

        let expired = PortalTermsCache::new(Duration::ZERO);
        expired.put(m, p, terms(1), expired.read_start());
        assert!(expired.get(m, p).is_none());
    }

    #[test]
    fn terms_read_before_a_change_are_not_kept_after_it() {
        let cache = PortalTermsCache::new(Duration::from_secs(60));
        let (m, p) = (MerchantId::generate(), ProductId::generate());
        let start = cache.read_start();
        // The merchant changes the product while the read is in flight.
        cache.forget(m, p);
        let used = cache.put(m, p, terms(1), start);
        assert_eq!(
            used.plans.len(),
            1,
            "still used for the read that fetched them"
        );
        assert!(cache.get(m, p).is_none(), "but not kept");
        cache.put(m, p, terms(2), cache.read_start());
        assert_eq!(cache.get(m, p).map(|t| t.plans.len()), Some(2));
    }

    #[test]
    fn a_full_cache_starts_again_empty() {
        let cache = PortalTermsCache::new(Duration::from_secs(60));
        let m = MerchantId::generate();
        let first = ProductId::generate();
        cache.put(m, first, terms(0), cache.read_start());
        for _ in 1..MAX_ENTRIES {
            cache.put(m, ProductId::generate(), terms(0), cache.read_start());
        }
        assert!(cache.get(m, first).is_some());
        cache.put(m, ProductId::generate(), terms(0), cache.read_start());
        assert!(cache.get(m, first).is_none());
        assert_eq!(cache.entries().len(), 1);
    }
}
