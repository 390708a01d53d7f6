//! Removing what is past its retention (docs/events.md, "Retention"): settled webhook
//! deliveries with their attempts, then the events no delivery refers to any more (not
//! `subscription` events, which the metrics need), idempotency keys past their 24 h
//! replay window, and audit entries past the merchant's retention. Each step is one short statement of at most `batch` rows; the engine
//! calls this until a batch comes back short.

use chrono::{DateTime, Utc};
use tenure_store::repo::purge;

use crate::{App, AppResult};

/// Rows removed by one batch of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub deliveries: usize,
    pub events: usize,
    pub idempotency_keys: usize,
    pub audit_events: usize,
}

impl Purged {
    /// Whether any kind filled its batch, so more may be waiting.
    pub fn full(&self, batch: i64) -> bool {
        [
            self.deliveries,
            self.events,
            self.idempotency_keys,
            self.audit_events,
        ]
        .iter()
        .any(|&n| i64::try_from(n).is_ok_and(|n| n >= batch))
    }

    pub fn total(&self) -> usize {
        self.deliveries + self.events + self.idempotency_keys + self.audit_events
    }
}

/// One batch of each kind, as of `now`.
pub async fn purge_batch(app: &App, now: DateTime<Utc>, batch: i64) -> AppResult<Purged> {
    let days = i32::from(app.default_retention.days());
    let mut conn = app.db.conn().await?;
    let deliveries = purge::settled_deliveries(&mut conn, now, days, batch).await?;
    let events = purge::events(&mut conn, now, days, batch).await?;
    let idempotency_keys = purge::idempotency_keys(&mut conn, now, batch).await?;
    let audit_events = purge::audit_events(&mut conn, now, days, batch).await?;
    Ok(Purged {
        deliveries,
        events,
        idempotency_keys,
        audit_events,
    })
}
