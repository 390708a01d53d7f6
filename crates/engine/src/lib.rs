//! Tenure's background work: renewal rounds and upcoming notices, charge collection and
//! dunning, refunds taken over after a crash, scheduled lifecycle changes, access-ending
//! and card-expiry notices, webhook delivery, the purge of records past their
//! retention, and advancing test clocks, with the loops that `tenure worker` and
//! `tenure serve` run. Each round claims its work with
//! `FOR UPDATE SKIP LOCKED`, so any number of processes share it with no leader. The
//! rules and the writes are the use cases of `tenure-app`; this crate decides when they
//! run and what a failed item does to its round. It knows nothing of HTTP serving.

pub mod collection;
pub mod delivery;
pub mod lifecycle;
pub mod loops;
pub mod notices;
pub mod purge;
pub mod refunds;
pub mod renewals;
pub mod stock;
pub mod stripe;
pub mod test_clocks;

use tenure_app::AppError;

/// One item of a round failed. A lost database ends the round (the error is returned);
/// anything else is logged and the item is left for the next round, so one bad item
/// never stops the others.
pub(crate) fn tolerate_item_failure(
    err: &AppError,
    work: &'static str,
    item: &str,
) -> Result<(), AppError> {
    if let AppError::Unavailable(cause) = err {
        return Err(AppError::Unavailable(cause.clone()));
    }
    tracing::error!(work, item, error = %err, cause = ?err,
        "background item failed; set aside until the next round");
    Ok(())
}
