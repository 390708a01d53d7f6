//! The background work waiting across every tenant, for the operator's `/metrics`.

use chrono::Duration;
pub use tenure_store::repo::backlog::Backlog;

use crate::{App, AppResult};

/// A renewal still waiting this long after its period ended counts as overdue: the
/// renewal loops run every second, so a backlog this old means they are stopped,
/// failing or too few.
pub const RENEWAL_OVERDUE_AFTER: Duration = Duration::minutes(10);

/// The backlog at the clock's now.
pub async fn read(state: &App) -> AppResult<Backlog> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    Ok(tenure_store::repo::backlog::read(&mut conn, now, now - RENEWAL_OVERDUE_AFTER).await?)
}
