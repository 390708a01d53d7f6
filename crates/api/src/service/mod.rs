//! Use cases: each loads what it needs, applies the domain rules, persists the result and
//! records its event in one transaction. Handlers call exactly one of these.

pub mod billing;
pub mod catalog;
pub mod charges;
pub mod context;
pub mod customers;
pub mod gdpr;
pub mod lifecycle;
pub mod merchants;
pub mod metrics;
pub mod portal_terms;
pub mod prorations;
pub mod renewals;
pub mod retention;
pub mod sessions;
pub mod subscriptions;
pub mod support;
pub mod webhooks;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use tenure_domain::DomainError;
use tenure_domain::ids::{EventId, GenerateId, MerchantId};
use tenure_store::repo::events::{self, NewEvent, PlannedEvent};

use crate::error::{ApiError, ApiResult, FieldError};

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        tenure_store::StoreError::from(err).into()
    }
}

/// Collects every invalid field of a request, so a caller fixes them all in one round.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the value of a successful check; records the failure of another.
    pub fn check<T>(&mut self, result: Result<T, DomainError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(DomainError::Validation { field, reason }) => {
                self.errors.push(FieldError {
                    field: field.into_owned(),
                    message: reason.into_owned(),
                });
                None
            }
            Err(other) => {
                self.errors.push(FieldError {
                    field: "body".to_owned(),
                    message: other.to_string(),
                });
                None
            }
        }
    }

    pub fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Unwraps a value that [`Validator::check`] accepted, once [`Validator::finish`] passed.
pub fn checked<T>(value: Option<T>) -> ApiResult<T> {
    value.ok_or_else(|| ApiError::internal("validated value missing"))
}

/// An event about to be recorded: the resource as rendered after the change and, for
/// updates, before it (to derive `previous_attributes`).
pub struct EventDraft<'a, T> {
    pub event_type: &'a str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub after: &'a T,
    pub before: Option<&'a T>,
    pub at: DateTime<Utc>,
}

impl<T: Serialize> EventDraft<'_, T> {
    /// The event as the outbox stores it, with its time.
    fn into_new_event(self) -> ApiResult<(NewEvent, DateTime<Utc>)> {
        let data = serde_json::to_value(self.after).map_err(ApiError::internal)?;
        let previous_attributes = match self.before {
            Some(before) => {
                let before = serde_json::to_value(before).map_err(ApiError::internal)?;
                previous_attributes(&before, &data)
            }
            None => None,
        };
        let event = NewEvent {
            event_type: self.event_type.to_owned(),
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            data,
            previous_attributes,
        };
        Ok((event, self.at))
    }
}

/// Records an event in the current transaction.
pub async fn record_event<T: Serialize>(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    draft: EventDraft<'_, T>,
) -> ApiResult<()> {
    let (event, at) = draft.into_new_event()?;
    events::record(conn, merchant, event, at).await?;
    Ok(())
}

/// Records several events of one merchant in the current transaction with one insert
/// (the renewal engine's batches); each is exactly what [`record_event`] would write.
pub async fn record_events<T: Serialize>(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    drafts: Vec<EventDraft<'_, T>>,
) -> ApiResult<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let batch = drafts
        .into_iter()
        .map(EventDraft::into_new_event)
        .collect::<ApiResult<Vec<_>>>()?;
    events::record_many(conn, merchant, batch).await?;
    Ok(())
}

/// Events a use case takes as they happen and records together before it commits, in
/// one round trip (see [`events::record_planned`]). Each keeps the place in the event
/// order it had when it was added, among events recorded directly in between.
#[derive(Debug, Default)]
#[must_use = "the events are written only by `record`"]
pub struct EventBatch(Vec<PlannedEvent>);

impl EventBatch {
    pub fn add<T: Serialize>(&mut self, draft: EventDraft<'_, T>) -> ApiResult<()> {
        let (event, at) = draft.into_new_event()?;
        self.0.push(PlannedEvent {
            id: EventId::generate(),
            event,
            at,
        });
        Ok(())
    }

    pub async fn record(self, conn: &AsyncPgConnection, merchant: MerchantId) -> ApiResult<()> {
        events::record_planned(conn, merchant, self.0).await?;
        Ok(())
    }
}

/// The top-level fields whose value differs, with their old values.
pub fn previous_attributes(
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> Option<serde_json::Value> {
    let (serde_json::Value::Object(before), serde_json::Value::Object(after)) = (before, after)
    else {
        return None;
    };
    let changed: serde_json::Map<_, _> = before
        .iter()
        .filter(|(key, value)| after.get(*key) != Some(value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!changed.is_empty()).then_some(serde_json::Value::Object(changed))
}

/// A strong validator for a resource version: its update time to the microsecond.
pub fn etag(updated_at: DateTime<Utc>) -> String {
    format!("\"{:x}\"", updated_at.timestamp_micros())
}

/// Honours `If-Match`: the change proceeds only if the caller saw the current version.
pub fn check_if_match(if_match: Option<&str>, updated_at: DateTime<Utc>) -> ApiResult<()> {
    match if_match {
        None => Ok(()),
        Some(value) if value.trim() == "*" => Ok(()),
        Some(value) => {
            let current = etag(updated_at);
            let matches = value
                .split(',')
                .map(|v| v.trim().trim_start_matches("W/"))
                .any(|v| v == current);
            if matches {
                Ok(())
            } else {
                Err(ApiError::PreconditionFailed)
            }
        }
    }
}

/// The update time of a changed resource: strictly after the previous one, so that ETags
/// change even when two updates land within one clock tick.
pub fn next_update_time(previous: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    if now > previous {
        now
    } else {
        previous + chrono::Duration::microseconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn previous_attributes_lists_changed_fields_only() {
        let before = json!({"name": "a", "email": "x", "tags": []});
        let after = json!({"name": "b", "email": "x", "tags": ["vip"]});
        assert_eq!(
            previous_attributes(&before, &after),
            Some(json!({"name": "a", "tags": []}))
        );
        assert_eq!(previous_attributes(&after, &after), None);
    }

    #[test]
    fn if_match_compares_etags() {
        let t = Utc::now();
        assert!(check_if_match(None, t).is_ok());
        assert!(check_if_match(Some("*"), t).is_ok());
        assert!(check_if_match(Some(&etag(t)), t).is_ok());
        assert!(check_if_match(Some(&format!("W/{}", etag(t))), t).is_ok());
        assert!(check_if_match(Some("\"stale\""), t).is_err());
    }
}
