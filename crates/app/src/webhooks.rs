//! Webhook endpoints (create, update, rotate the secret, delete), their delivery log, and
//! redelivery of one event or a range. Delivery itself is `tenure-engine`'s.
use std::collections::HashMap;

use base64::Engine;
use chrono::Duration;
use diesel_async::AsyncConnection;
use rand::RngCore;
use tenure_domain::ids::{EventId, GenerateId, MerchantId, WebhookDeliveryId, WebhookEndpointId};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_domain::webhooks::{
    self as rules, DEFAULT_RETRY_SCHEDULE_SECS, DEFAULT_SECRET_OVERLAP_SECS, DeliveryAttempt,
    DeliveryStatus, DisabledReason, MAX_SECRET_OVERLAP_SECS, WebhookDelivery, WebhookEndpoint,
};
use tenure_store::repo::events::{self};
use tenure_store::repo::webhooks::{self as repo, NewDelivery};
use tenure_store::{Page, PageRequest};

use crate::dto::webhooks::{
    CreateWebhookEndpoint, RedeliverEvent, RedeliverRange, RotateWebhookSecret,
    UpdateWebhookEndpoint,
};
use crate::error::{AppError, AppResult};
use crate::error::{Validator, checked};
use crate::versions::check_if_match;
use crate::{App, outbound};

pub const URL_MAX: usize = 2048;
/// At most this many endpoints per merchant: every event is sent to each of them.
pub const MAX_ENDPOINTS: i64 = 16;
const DESCRIPTION_MAX: usize = 500;
/// At most this many events per range redelivery.
pub const MAX_REDELIVER_EVENTS: i64 = 10_000;

fn endpoint_missing(err: tenure_store::StoreError) -> AppError {
    AppError::from_store("webhook_endpoint")(err)
}

/// Checks a webhook URL: absolute http(s) with a host, no credentials, at most 2048
/// characters. Where it points is checked afterwards ([`check_target`]).
fn validate_url(v: &mut Validator, raw: &str) -> Option<url::Url> {
    if raw.len() > URL_MAX {
        v.fail("url", format!("must be at most {URL_MAX} characters"));
        return None;
    }
    match url::Url::parse(raw) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            v.fail("url", "must be an http or https URL");
            None
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            v.fail("url", "must name a host");
            None
        }
        Ok(url) if !url.username().is_empty() || url.password().is_some() => {
            v.fail("url", "must not contain credentials");
            None
        }
        Ok(url) if url.as_str().len() > URL_MAX => {
            v.fail("url", format!("must be at most {URL_MAX} characters"));
            None
        }
        Ok(url) => Some(url),
        Err(_) => {
            v.fail("url", "must be an absolute http or https URL");
            None
        }
    }
}

/// Refuses a URL that points into the operator's own network (unless allowed), once its
/// syntax is known to be valid.
async fn check_target(state: &App, url: Option<&url::Url>) -> AppResult<()> {
    if let Some(url) = url {
        outbound::check_url(url, state.webhook_targets).await?;
    }
    Ok(())
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

pub async fn create_endpoint(
    state: &App,
    merchant: MerchantId,
    input: CreateWebhookEndpoint,
) -> AppResult<WebhookEndpoint> {
    let mut v = Validator::default();
    let url = validate_url(&mut v, &input.url);
    let events = v.check(rules::validate_enabled_events(&input.enabled_events));
    let description = v.check(text::clean_opt(
        "description",
        input.description.as_deref(),
        DESCRIPTION_MAX,
        false,
    ));
    let schedule = v.check(rules::validate_retry_schedule(
        input
            .retry_schedule_secs
            .as_deref()
            .unwrap_or(DEFAULT_RETRY_SCHEDULE_SECS),
    ));
    v.finish()?;
    check_target(state, url.as_ref()).await?;
    let now = state.now();
    let endpoint = WebhookEndpoint {
        id: WebhookEndpointId::generate(),
        url: checked(url)?.into(),
        description: checked(description)?,
        enabled_events: checked(events)?,
        retry_schedule_secs: checked(schedule)?,
        secret: new_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.db.conn().await?;
    if repo::count_endpoints(&mut conn, merchant).await? >= MAX_ENDPOINTS {
        return Err(AppError::conflict(
            "too_many_endpoints",
            format!(
                "a merchant may have at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            ),
        ));
    }
    repo::insert_endpoint(&mut conn, merchant, &endpoint).await?;
    Ok(endpoint)
}

pub async fn get_endpoint(
    state: &App,
    merchant: MerchantId,
    id: WebhookEndpointId,
) -> AppResult<WebhookEndpoint> {
    let mut conn = state.db.conn().await?;
    repo::get_endpoint(&mut conn, merchant, id, false)
        .await
        .map_err(endpoint_missing)
}

pub async fn list_endpoints(
    state: &App,
    merchant: MerchantId,
    page: PageRequest,
) -> AppResult<Page<WebhookEndpoint>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list_endpoints(&mut conn, merchant, page).await?)
}

pub async fn update_endpoint(
    state: &App,
    merchant: MerchantId,
    id: WebhookEndpointId,
    input: UpdateWebhookEndpoint,
    if_match: Option<String>,
) -> AppResult<WebhookEndpoint> {
    let mut v = Validator::default();
    let url = input.url.as_deref().map(|u| validate_url(&mut v, u));
    let events = input
        .enabled_events
        .as_deref()
        .map(|e| v.check(rules::validate_enabled_events(e)));
    let description = input.description.as_ref().map(|d| {
        v.check(text::clean_opt(
            "description",
            d.as_deref(),
            DESCRIPTION_MAX,
            false,
        ))
    });
    let schedule = input
        .retry_schedule_secs
        .as_deref()
        .map(|s| v.check(rules::validate_retry_schedule(s)));
    v.finish()?;
    check_target(state, url.as_ref().and_then(Option::as_ref)).await?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_endpoint(conn, merchant, id, true)
            .await
            .map_err(endpoint_missing)?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut after = before.clone();
        if let Some(url) = url {
            after.url = checked(url)?.into();
        }
        if let Some(events) = events {
            after.enabled_events = checked(events)?;
        }
        if let Some(description) = description {
            after.description = checked(description)?;
        }
        if let Some(schedule) = schedule {
            after.retry_schedule_secs = checked(schedule)?;
        }
        match input.disabled {
            Some(true) if !before.disabled() => {
                after.disabled_reason = Some(DisabledReason::Manual);
                repo::cancel_pending(conn, merchant, id, now).await?;
            }
            Some(false) => {
                after.disabled_reason = None;
                after.failing_since = None;
            }
            _ => {}
        }
        if after == before {
            return Ok(after);
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_endpoint(conn, merchant, &after).await?;
        Ok(after)
    })
    .await
}

pub async fn delete_endpoint(
    state: &App,
    merchant: MerchantId,
    id: WebhookEndpointId,
) -> AppResult<()> {
    let mut conn = state.db.conn().await?;
    repo::delete_endpoint(&mut conn, merchant, id)
        .await
        .map_err(endpoint_missing)
}

/// Issues a new secret; the current one keeps signing (a second signature) for the
/// overlap.
pub async fn rotate_secret(
    state: &App,
    merchant: MerchantId,
    id: WebhookEndpointId,
    input: RotateWebhookSecret,
    if_match: Option<String>,
) -> AppResult<WebhookEndpoint> {
    let overlap = input.overlap_secs.unwrap_or(DEFAULT_SECRET_OVERLAP_SECS);
    if overlap > MAX_SECRET_OVERLAP_SECS {
        return Err(AppError::field(
            "overlap_secs",
            format!("must be between 0 and {MAX_SECRET_OVERLAP_SECS}"),
        ));
    }
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get_endpoint(conn, merchant, id, true)
            .await
            .map_err(endpoint_missing)?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut after = before.clone();
        after.secret = new_secret();
        if overlap > 0 {
            after.previous_secret = Some(before.secret.clone());
            after.previous_secret_expires_at = Some(now + Duration::seconds(i64::from(overlap)));
        } else {
            after.previous_secret = None;
            after.previous_secret_expires_at = None;
        }
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update_endpoint(conn, merchant, &after).await?;
        Ok(after)
    })
    .await
}

/// A page of an endpoint's deliveries with their attempt logs.
pub async fn list_deliveries(
    state: &App,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> AppResult<Page<(WebhookDelivery, Vec<DeliveryAttempt>)>> {
    let mut conn = state.db.conn().await?;
    // One snapshot for the deliveries and their attempts: an attempt settled between two
    // plain reads would show beside a delivery still `pending`.
    let (deliveries, attempts) = conn
        .build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            repo::get_endpoint(conn, merchant, endpoint, false)
                .await
                .map_err(endpoint_missing)?;
            let deliveries = repo::list_deliveries(conn, merchant, endpoint, status, page).await?;
            let ids: Vec<WebhookDeliveryId> = deliveries.items.iter().map(|d| d.id).collect();
            let attempts = repo::attempts_of(conn, merchant, &ids).await?;
            AppResult::Ok((deliveries, attempts))
        })
        .await?;
    let mut logs: HashMap<WebhookDeliveryId, Vec<DeliveryAttempt>> = HashMap::new();
    for (delivery, attempt) in attempts {
        logs.entry(delivery).or_default().push(attempt);
    }
    Ok(Page {
        items: deliveries
            .items
            .into_iter()
            .map(|d| {
                let log = logs.remove(&d.id).unwrap_or_default();
                (d, log)
            })
            .collect(),
        has_more: deliveries.has_more,
    })
}

/// Queues an event again: to one endpoint, or to every enabled endpoint subscribed to its
/// type. Returns how many deliveries were queued.
pub async fn redeliver_event(
    state: &App,
    merchant: MerchantId,
    event: EventId,
    input: RedeliverEvent,
) -> AppResult<usize> {
    let endpoint = input
        .endpoint_id
        .as_deref()
        .map(|raw| crate::dto::common::parse_field_id(raw, "endpoint_id"))
        .transpose()?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let event = events::get(conn, merchant, event)
            .await
            .map_err(AppError::from_store("event"))?;
        let endpoints = match endpoint {
            Some(id) => {
                let endpoint = repo::get_endpoint(conn, merchant, id, false)
                    .await
                    .map_err(endpoint_missing)?;
                ensure_enabled(&endpoint)?;
                vec![endpoint.id]
            }
            None => repo::subscribed_endpoints(conn, merchant, &event.event_type).await?,
        };
        let rows = endpoints
            .into_iter()
            .map(|endpoint| NewDelivery {
                endpoint,
                event: EventId::from_uuid(event.id),
                event_type: event.event_type.clone(),
            })
            .collect();
        Ok(repo::insert_deliveries(conn, merchant, rows, now).await?)
    })
    .await
}

fn ensure_enabled(endpoint: &WebhookEndpoint) -> AppResult<()> {
    if endpoint.disabled() {
        return Err(AppError::conflict(
            "endpoint_disabled",
            "the webhook endpoint is disabled; enable it first (PATCH disabled=false)",
        ));
    }
    Ok(())
}

/// Queues again, for one endpoint, every event created in `[from, to)` of a type it
/// subscribes to, delivered before or not.
pub async fn redeliver_range(
    state: &App,
    merchant: MerchantId,
    endpoint: WebhookEndpointId,
    input: RedeliverRange,
) -> AppResult<usize> {
    if input.from >= input.to {
        return Err(AppError::field("to", "must be after from"));
    }
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let endpoint = repo::get_endpoint(conn, merchant, endpoint, false)
            .await
            .map_err(endpoint_missing)?;
        ensure_enabled(&endpoint)?;
        let events = repo::events_between(
            conn,
            merchant,
            input.from,
            input.to,
            MAX_REDELIVER_EVENTS + 1,
        )
        .await?;
        if i64::try_from(events.len()).unwrap_or(i64::MAX) > MAX_REDELIVER_EVENTS {
            return Err(AppError::field(
                "to",
                format!(
                    "the range holds more than {MAX_REDELIVER_EVENTS} events; split it into smaller ranges"
                ),
            ));
        }
        let rows = events
            .into_iter()
            .filter(|(_, event_type)| rules::subscribes_to(&endpoint.enabled_events, event_type))
            .map(|(event, event_type)| NewDelivery {
                endpoint: endpoint.id,
                event,
                event_type,
            })
            .collect();
        Ok(repo::insert_deliveries(conn, merchant, rows, now).await?)
    })
    .await
}

/// The parsed `status` filter of the delivery log.
pub fn parse_status(raw: Option<&str>) -> AppResult<Option<DeliveryStatus>> {
    raw.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            AppError::field("status", "must be pending, delivered, failed or canceled")
        })
    })
    .transpose()
}
