//! Secret keys this process has already checked, so that a merchant's request does not
//! spend a database round trip (a fifth of PostgreSQL's work for a page of invoices) on
//! learning who is calling.
//!
//! A revoked key must stop working at once, so the cache answers only while it hears of
//! every change to `api_keys`: a trigger (migration 000013) notifies the hash of each key
//! updated or deleted, [`keep_current`] forgets that key, and while its connection is not
//! listening (at start-up, after a lost connection) the cache is emptied and bypassed.
//! Its connection is checked every [`QUIET`], and an entry lives at most [`TTL`] in any
//! case. Only accepted keys are kept; a refused one is looked up every time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tenure_domain::ids::MerchantId;
use tenure_store::listener::Listener;

/// The channel the trigger notifies on.
pub const CHANNEL: &str = "tenure_api_keys";
/// How the listening connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "tenure api key listener";
/// The longest an entry is trusted, even while every notification arrives.
pub const TTL: Duration = Duration::from_secs(60);
/// With no notification for this long, the listening connection is checked.
pub const QUIET: Duration = Duration::from_secs(10);
/// Wait before listening again after the connection was lost.
const RETRY: Duration = Duration::from_secs(1);
/// Beyond this many keys the cache starts again empty, so it cannot grow unbounded.
const MAX_ENTRIES: usize = 10_000;

/// Shared by every HTTP worker of the process (cloning shares it).
#[derive(Clone, Default)]
pub struct ApiKeyCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By the key's SHA-256 in lower-case hex, as the trigger sends it.
    entries: Mutex<HashMap<String, (Instant, MerchantId)>>,
    /// Moves on every forget: a key read before a revocation must not be stored after it.
    generation: AtomicU64,
    listening: AtomicBool,
}

impl std::fmt::Debug for ApiKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyCache")
            .field("listening", &self.is_listening())
            .finish_non_exhaustive()
    }
}

/// When a key's database lookup began, for [`ApiKeyCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct LookupStart(u64);

/// A key hash as the cache and the trigger name it.
pub fn hex(hash: &[u8]) -> String {
    hash.iter()
        .fold(String::with_capacity(hash.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

impl ApiKeyCache {
    /// The merchant of an accepted key, if the cache may answer for it now.
    pub fn get(&self, hash: &str) -> Option<MerchantId> {
        if !self.is_listening() {
            return None;
        }
        let entries = self.entries();
        entries
            .get(hash)
            .filter(|(stored, _)| stored.elapsed() < TTL)
            .map(|&(_, merchant)| merchant)
    }

    /// To call before looking a key up in the database.
    pub fn lookup_start(&self) -> LookupStart {
        LookupStart(self.inner.generation.load(Ordering::Acquire))
    }

    /// Keeps a key the database accepted, unless anything was forgotten since the lookup
    /// began (it may have been this key's revocation) or the cache is not listening.
    pub fn put(&self, hash: String, merchant: MerchantId, started: LookupStart) {
        if !self.is_listening() {
            return;
        }
        let mut entries = self.entries();
        // Checked under the lock that `forget` bumps the generation under.
        if self.inner.generation.load(Ordering::Acquire) != started.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (Instant::now(), merchant));
    }

    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    fn forget(&self, hash: &str) {
        let mut entries = self.entries();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(hash);
    }

    /// Starts or stops answering; either way what was kept is dropped, since changes
    /// made while nobody listened were not heard.
    fn set_listening(&self, listening: bool) {
        let mut entries = self.entries();
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.inner.listening.store(listening, Ordering::Release);
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, MerchantId)>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Listens for key changes for as long as the process runs, reconnecting after a lost
/// connection; the cache answers only while this is connected.
pub async fn keep_current(cache: ApiKeyCache, database_url: String) {
    loop {
        match Listener::connect(&database_url, CHANNEL, APPLICATION_NAME).await {
            Ok(mut listener) => {
                cache.set_listening(true);
                let lost = loop {
                    match listener.next(QUIET).await {
                        Ok(Some(hash)) => cache.forget(&hash),
                        Ok(None) => {}
                        Err(err) => break err,
                    }
                };
                cache.set_listening(false);
                tracing::warn!(error = %lost, "api key listener lost its connection; keys are looked up each time until it is back");
            }
            Err(err) => {
                tracing::warn!(error = %err, "api key listener cannot connect; keys are looked up each time");
            }
        }
        actix_web::rt::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant() -> MerchantId {
        MerchantId::new()
    }

    #[test]
    fn it_answers_only_while_listening() {
        let cache = ApiKeyCache::default();
        let m = merchant();
        cache.put("aa".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), None, "not listening: nothing is kept");
        cache.set_listening(true);
        cache.put("aa".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), Some(m));
        cache.set_listening(false);
        assert_eq!(cache.get("aa"), None);
        cache.set_listening(true);
        assert_eq!(
            cache.get("aa"),
            None,
            "what was kept before the gap is gone"
        );
    }

    #[test]
    fn a_lookup_that_began_before_a_forget_is_not_kept() {
        let cache = ApiKeyCache::default();
        cache.set_listening(true);
        let m = merchant();
        let started = cache.lookup_start();
        cache.forget("aa");
        cache.put("aa".into(), m, started);
        assert_eq!(cache.get("aa"), None);
        cache.put("aa".into(), m, cache.lookup_start());
        assert_eq!(cache.get("aa"), Some(m));
        cache.forget("aa");
        assert_eq!(cache.get("aa"), None);
    }

    #[test]
    fn hashes_are_named_as_the_trigger_names_them() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
