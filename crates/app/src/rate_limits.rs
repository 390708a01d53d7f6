//! Request limits shared by every `tenure serve` process through PostgreSQL: the HTTP
//! layer asks here whether a bucket has room (docs/hardening.md).

use std::time::Duration;

use tenure_domain::rate_limit::Gcra;
use tenure_store::repo::rate_limits;

use crate::{App, AppResult};

/// Counts one request against the shared bucket `key` under `limit`; `Ok(Err(wait))`
/// when it is refused, with the wait until one would be allowed.
pub async fn take(app: &App, key: &str, limit: Gcra) -> AppResult<Result<(), Duration>> {
    let mut conn = app.db.conn().await?;
    let taken = rate_limits::take(&mut conn, key, limit.interval_us(), limit.capacity_us()).await?;
    Ok(if taken.allowed {
        Ok(())
    } else {
        Err(limit.wait_after_refusal(taken.ahead_us))
    })
}

/// Removes up to `batch` buckets that are full again; how many went.
pub async fn sweep(app: &App, batch: i64) -> AppResult<usize> {
    let mut conn = app.db.conn().await?;
    Ok(rate_limits::sweep(&mut conn, batch).await?)
}
