//! `GET /v1/metrics`: subscriber metrics of a period, from one repeatable-read snapshot.

use chrono::{DateTime, Duration, Utc};
use tenure_domain::ids::MerchantId;
use tenure_domain::metrics;
use tenure_store::repo::metrics as repo;

use crate::App;
use crate::dto::metrics::*;
use crate::error::Validator;
use crate::error::{AppError, AppResult};

/// The period when `from` is not given.
pub const DEFAULT_DAYS: i64 = 30;
/// The longest period a request may ask for.
pub const MAX_DAYS: i64 = 366;

fn parse_instant(v: &mut Validator, field: &str, raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            v.fail(
                field,
                "must be an RFC 3339 date-time, e.g. 2026-11-01T00:00:00Z",
            );
            None
        }
    }
}

/// The period `[from, to)` of a request: `to` defaults to (and is capped at) `now`,
/// `from` to 30 days before `to`; `from < to` and at most 366 days apart.
pub fn period(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<(DateTime<Utc>, DateTime<Utc>)> {
    let mut v = Validator::default();
    let from = parse_instant(&mut v, "from", from);
    let to = parse_instant(&mut v, "to", to);
    v.finish()?;
    let to = to.map_or(now, |t| t.min(now));
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_signed(Duration::days(DEFAULT_DAYS))
            .ok_or_else(|| AppError::field("to", "is out of range"))?,
    };
    if from >= to {
        return Err(AppError::field(
            "from",
            "must be before `to` (and `to` is capped at now)",
        ));
    }
    if to - from > Duration::days(MAX_DAYS) {
        return Err(AppError::field(
            "from",
            format!("the period may span at most {MAX_DAYS} days"),
        ));
    }
    Ok((from, to))
}

pub async fn get(
    state: &App,
    merchant: MerchantId,
    from: Option<&str>,
    to: Option<&str>,
) -> AppResult<MetricsDto> {
    let (from, to) = period(from, to, state.now())?;
    let mut conn = state.db.conn().await?;
    let (rows, paused, pauses_started, reasons, offers) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| -> AppResult<_> {
            repo::prepare(conn).await?;
            Ok((
                repo::per_currency(conn, merchant, from, to).await?,
                repo::paused_at(conn, merchant, to).await?,
                repo::pauses_started(conn, merchant, from, to).await?,
                repo::cancellation_reasons(conn, merchant, from, to).await?,
                repo::save_offers(conn, merchant, from, to).await?,
            ))
        })
        .await?;
    let period_secs = (to - from).num_seconds();
    Ok(MetricsDto {
        object: "metrics".to_owned(),
        from,
        to,
        currencies: rows
            .into_iter()
            .map(|r| {
                let arpu = metrics::arpu(r.mrr, r.active_subscribers);
                CurrencyMetricsDto {
                    logo_churn_rate: metrics::rate(
                        r.churned_subscribers,
                        r.active_subscribers_at_start,
                    ),
                    revenue_churn_rate: metrics::rate(r.churned_mrr, r.mrr_at_start),
                    arpu,
                    ltv_estimate: metrics::ltv_estimate(
                        arpu,
                        r.active_subscribers_at_start,
                        r.churned_subscribers,
                        period_secs,
                    ),
                    currency: r.currency,
                    mrr: r.mrr,
                    mrr_at_start: r.mrr_at_start,
                    active_subscriptions: r.active_subscriptions,
                    active_subscribers: r.active_subscribers,
                    active_subscribers_at_start: r.active_subscribers_at_start,
                    new_subscribers: r.new_subscribers,
                    churned_subscribers: r.churned_subscribers,
                    churned_mrr: r.churned_mrr,
                }
            })
            .collect(),
        pauses: PauseMetricsDto {
            paused,
            pauses_started,
        },
        cancellation_reasons: reasons.into_iter().map(|r| (r.reason, r.count)).collect(),
        save_offers: SaveOfferMetricsDto {
            presented: offers.presented,
            accepted: offers.accepted,
            declined: offers.declined,
            acceptance_rate: metrics::rate(offers.accepted, offers.presented),
        },
    })
}
