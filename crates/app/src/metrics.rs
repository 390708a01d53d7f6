//! `GET /v1/metrics`: subscriber metrics of a period, from one repeatable-read snapshot of
//! the rollups; the full computation they are reconciled with (docs/metrics.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
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

/// The metrics of a period from the rollups the subscriptions keep as they change
/// (docs/metrics.md, "How it is computed"): the same figures as [`recompute`], at a cost
/// that grows with the changes in the period, not with the number of subscriptions.
pub async fn get(
    state: &App,
    merchant: MerchantId,
    from: Option<&str>,
    to: Option<&str>,
) -> AppResult<MetricsDto> {
    let (from, to) = period(from, to, state.now())?;
    let mut conn = state.db.conn().await?;
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| from_rollups(conn, merchant, from, to).await)
        .await
}

async fn from_rollups(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<MetricsDto> {
    repo::prepare(conn).await?;
    let start = repo::rollups_at(conn, merchant, from).await?;
    let end = repo::rollups_at(conn, merchant, to).await?;
    let flips = repo::flip_sums(conn, merchant, from, to).await?;
    let reasons = repo::cancellation_reasons(conn, merchant, from, to).await?;
    let offers = repo::save_offers(conn, merchant, from, to).await?;
    let paused = end.iter().map(|r| r.paused).sum();
    let pauses_started = end.iter().map(|r| r.pauses_started_before).sum::<i64>()
        - start.iter().map(|r| r.pauses_started_before).sum::<i64>();
    let mut codes: Vec<&str> = start
        .iter()
        .chain(&end)
        .filter(|r| r.subscribers > 0)
        .map(|r| r.currency.as_str())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let rows = codes
        .into_iter()
        .map(|code| {
            let at_start = start.iter().find(|r| r.currency == code);
            let at_end = end.iter().find(|r| r.currency == code);
            let flips = flips.iter().find(|r| r.currency == code);
            let subscribers_at_start = at_start.map_or(0, |r| r.subscribers);
            let subscribers = at_end.map_or(0, |r| r.subscribers);
            repo::CurrencyMetricsRow {
                currency: code.to_owned(),
                mrr: at_end.map_or(0, |r| r.mrr),
                mrr_at_start: at_start.map_or(0, |r| r.mrr),
                active_subscriptions: at_end.map_or(0, |r| r.subscriptions),
                active_subscribers: subscribers,
                active_subscribers_at_start: subscribers_at_start,
                // Σ P(from)·P(to) = subscribers(from) + new_w (docs/metrics.md).
                new_subscribers: subscribers
                    .saturating_sub(subscribers_at_start)
                    .saturating_sub(flips.map_or(0, |r| r.new_w)),
                churned_subscribers: flips.map_or(0, |r| r.churn_w.saturating_neg()),
                churned_mrr: flips.map_or(0, |r| r.churn_mrr_w.saturating_neg()),
            }
        })
        .collect();
    Ok(render(
        from,
        to,
        Figures {
            rows,
            paused,
            pauses_started,
            reasons,
            offers,
        },
    ))
}

/// The metrics of a period computed from the subscriptions and their events, as
/// `GET /v1/metrics` did before the rollups: the reference a reconciliation compares the
/// rollups with. It reads every subscription of the merchant (seconds at 100,000).
pub async fn recompute(
    state: &App,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<MetricsDto> {
    let mut conn = state.db.conn().await?;
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| recomputed(conn, merchant, from, to).await)
        .await
}

async fn recomputed(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<MetricsDto> {
    repo::prepare(conn).await?;
    let figures = Figures {
        rows: repo::per_currency(conn, merchant, from, to).await?,
        paused: repo::paused_at(conn, merchant, to).await?,
        pauses_started: repo::pauses_started(conn, merchant, from, to).await?,
        reasons: repo::cancellation_reasons(conn, merchant, from, to).await?,
        offers: repo::save_offers(conn, merchant, from, to).await?,
    };
    Ok(render(from, to, figures))
}

/// One figure on which the rollups and the full computation disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The figure's path in the response, e.g. `currencies.EUR.mrr`.
    pub figure: String,
    pub rollups: serde_json::Value,
    pub recomputed: serde_json::Value,
}

/// Compares the rollups with the full computation over each period (each validated as
/// `GET /v1/metrics` validates one), both read from one snapshot per period, and returns
/// every figure that differs (none: they agree).
pub async fn reconcile(
    state: &App,
    merchant: MerchantId,
    periods: &[(DateTime<Utc>, DateTime<Utc>)],
) -> AppResult<Vec<Difference>> {
    let now = state.now();
    let mut differences = Vec::new();
    let mut conn = state.db.conn().await?;
    for &(from, to) in periods {
        let (from, to) = period(Some(&from.to_rfc3339()), Some(&to.to_rfc3339()), now)?;
        let (rollups, recomputed) = conn
            .build_transaction()
            .repeatable_read()
            .read_only()
            .run(async |conn| -> AppResult<_> {
                Ok((
                    from_rollups(conn, merchant, from, to).await?,
                    recomputed(conn, merchant, from, to).await?,
                ))
            })
            .await?;
        let (rollups, recomputed) = (by_path(&rollups)?, by_path(&recomputed)?);
        let figures: std::collections::BTreeSet<&String> =
            rollups.keys().chain(recomputed.keys()).collect();
        for figure in figures {
            let (a, b) = (rollups.get(figure), recomputed.get(figure));
            if a != b {
                differences.push(Difference {
                    from,
                    to,
                    figure: figure.clone(),
                    rollups: a.cloned().unwrap_or(serde_json::Value::Null),
                    recomputed: b.cloned().unwrap_or(serde_json::Value::Null),
                });
            }
        }
    }
    Ok(differences)
}

/// Rebuilds the merchant's rollups from the subscriptions and their events (the repair
/// after a reconciliation found differences). Every subscription write waits meanwhile.
pub async fn rebuild(state: &App, merchant: MerchantId) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    conn.build_transaction()
        .run(async |conn| -> AppResult<()> {
            repo::rebuild_rollups(conn, merchant).await?;
            Ok(())
        })
        .await
}

/// Every leaf of a response by its path, currencies keyed by their code.
fn by_path(dto: &MetricsDto) -> AppResult<BTreeMap<String, serde_json::Value>> {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut BTreeMap<String, serde_json::Value>,
    ) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, v) in fields {
                    walk(&format!("{prefix}{key}."), v, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    let key = item["currency"].as_str().unwrap_or("?");
                    walk(&format!("{prefix}{key}."), item, out);
                }
            }
            leaf => {
                out.insert(prefix.trim_end_matches('.').to_owned(), leaf.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        "",
        &serde_json::to_value(dto).map_err(AppError::internal)?,
        &mut out,
    );
    Ok(out)
}

/// What a response is made of, however it was computed.
struct Figures {
    rows: Vec<repo::CurrencyMetricsRow>,
    paused: i64,
    pauses_started: i64,
    reasons: Vec<repo::ReasonCount>,
    offers: repo::OfferCounts,
}

fn render(from: DateTime<Utc>, to: DateTime<Utc>, figures: Figures) -> MetricsDto {
    let Figures {
        rows,
        paused,
        pauses_started,
        reasons,
        offers,
    } = figures;
    let period_secs = (to - from).num_seconds();
    MetricsDto {
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
    }
}
