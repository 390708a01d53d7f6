//! The outbox side of every use case: an event is the resource as rendered after the
//! change (and before it, for `previous_attributes`), recorded in the transaction that
//! made the change.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use tenure_domain::ids::{EventId, GenerateId, MerchantId};
use tenure_store::repo::events::{self, EventFilter, EventRow, NewEvent, PlannedEvent};
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::events::EventFilterParams;
use crate::error::{AppError, AppResult};

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
    fn into_new_event(self) -> AppResult<(NewEvent, DateTime<Utc>)> {
        let data = serde_json::to_value(self.after).map_err(AppError::internal)?;
        let previous_attributes = match self.before {
            Some(before) => {
                let before = serde_json::to_value(before).map_err(AppError::internal)?;
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
            actor: crate::audit::current_actor(),
        };
        Ok((event, self.at))
    }
}

/// Records an event in the current transaction.
pub async fn record_event<T: Serialize>(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    draft: EventDraft<'_, T>,
) -> AppResult<()> {
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
) -> AppResult<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let batch = drafts
        .into_iter()
        .map(EventDraft::into_new_event)
        .collect::<AppResult<Vec<_>>>()?;
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
    pub fn add<T: Serialize>(&mut self, draft: EventDraft<'_, T>) -> AppResult<()> {
        let (event, at) = draft.into_new_event()?;
        self.0.push(PlannedEvent {
            id: EventId::generate(),
            event,
            at,
        });
        Ok(())
    }

    pub async fn record(self, conn: &AsyncPgConnection, merchant: MerchantId) -> AppResult<()> {
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

/// A page of the merchant's events, newest first, optionally of one type or resource.
pub async fn list(
    state: &App,
    merchant: MerchantId,
    filter: EventFilterParams,
    page: PageRequest,
) -> AppResult<Page<EventRow>> {
    // As endpoints' `enabled_events` are checked: a misspelt type must not read as "none".
    if let Some(event_type) = &filter.event_type
        && !tenure_domain::webhooks::is_known_event_type(event_type)
    {
        return Err(AppError::field(
            "type",
            "is not a known event type (see docs/events.md)",
        ));
    }
    let filter = EventFilter {
        event_type: filter.event_type,
        resource_id: filter.resource_id,
    };
    let mut conn = state.db.conn().await?;
    Ok(events::list(&mut conn, merchant, &filter, page).await?)
}

/// One of the merchant's events.
pub async fn get(state: &App, merchant: MerchantId, id: EventId) -> AppResult<EventRow> {
    let mut conn = state.db.conn().await?;
    events::get(&mut conn, merchant, id)
        .await
        .map_err(AppError::from_store("event"))
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
}
