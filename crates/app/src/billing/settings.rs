//! The merchant's billing settings: the dunning policy, how early `invoice.upcoming`
//! and `order.upcoming` are sent, the edit cutoff of orders, and how long events and webhook deliveries are kept.

use diesel_async::AsyncConnection;
use tenure_domain::billing::dunning::DunningPolicy;
use tenure_domain::data_retention::RetentionDays;
use tenure_domain::error::DomainError;
use tenure_domain::ids::MerchantId;
use tenure_domain::order_cutoff::OrderNoticeSettings;
use tenure_store::repo::renewals::{self as repo, BillingSettings};

use crate::App;
use crate::error::{AppError, AppResult};

/// The merchant's billing settings (defaults until saved).
pub async fn settings(state: &App, merchant: MerchantId) -> AppResult<BillingSettings> {
    let mut conn = state.db.conn().await?;
    Ok(repo::settings(&mut conn, merchant).await?)
}

/// Replaces the merchant's dunning policy.
pub async fn put_dunning_policy(
    state: &App,
    merchant: MerchantId,
    policy: DunningPolicy,
) -> AppResult<BillingSettings> {
    policy.validate()?;
    update_settings(state, merchant, |s| s.dunning_policy = policy).await
}

/// Sets how many days before a renewal `invoice.upcoming` is sent (0: never) and, when
/// `retention_days` is given, the merchant's retention period in days (`Some(None)`:
/// the operator's default again).
/// `orders` gives `order_notice_days` and `order_cutoff_hours` (each kept when `None`):
/// the result is checked whole (the notice comes before the cutoff).
pub async fn put_billing_settings(
    state: &App,
    merchant: MerchantId,
    days: u32,
    retention_days: Option<Option<u32>>,
    orders: (Option<u32>, Option<u32>),
) -> AppResult<BillingSettings> {
    if days > repo::MAX_UPCOMING_NOTICE_DAYS {
        return Err(AppError::field(
            "upcoming_notice_days",
            format!("must be between 0 and {}", repo::MAX_UPCOMING_NOTICE_DAYS),
        ));
    }
    let retention = retention_days
        .map(|days| days.map(RetentionDays::new).transpose())
        .transpose()?;
    let (notice_days, cutoff_hours) = orders;
    try_update_settings(state, merchant, |s| {
        s.upcoming_notice_days = days;
        if let Some(retention) = retention {
            s.retention_days = retention;
        }
        if notice_days.is_some() || cutoff_hours.is_some() {
            s.orders = OrderNoticeSettings::new(
                notice_days.unwrap_or(s.orders.notice_days),
                cutoff_hours.unwrap_or(s.orders.cutoff_hours),
            )?;
        }
        Ok(())
    })
    .await
}

async fn update_settings(
    state: &App,
    merchant: MerchantId,
    change: impl FnOnce(&mut BillingSettings) + Send,
) -> AppResult<BillingSettings> {
    try_update_settings(state, merchant, |s| {
        change(s);
        Ok(())
    })
    .await
}

async fn try_update_settings(
    state: &App,
    merchant: MerchantId,
    change: impl FnOnce(&mut BillingSettings) -> Result<(), DomainError> + Send,
) -> AppResult<BillingSettings> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let mut s = repo::lock_settings(conn, merchant, now).await?;
        change(&mut s)?;
        s.updated_at = Some(now);
        repo::save_settings(conn, merchant, &s, now).await?;
        Ok::<_, AppError>(s)
    })
    .await
}
