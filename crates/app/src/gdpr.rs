//! GDPR: export everything Tenure holds about a customer, and erase (anonymise) a
//! customer's personal data while keeping its financial records. See docs/customers.md.

use chrono::{DateTime, SubsecRound, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::Value;
use tenure_domain::customer::Customer;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, MerchantId, NoteId, OfferOutcomeId, RetentionOfferId,
    SubscriptionId,
};
use tenure_domain::subscription::Actor;
use tenure_domain::time::next_update_time;
use tenure_store::PageRequest;
use tenure_store::repo::charge_intents;
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::gdpr as repo;
use tenure_store::repo::idempotency::{self, StoredResponse};
use tenure_store::repo::invoices::{self, InvoiceFilter};
use tenure_store::repo::payment_methods;
use tenure_store::repo::subscriptions::{self as subs_repo, SubscriptionFilter};
use tenure_store::repo::support::{self, RequestFilter, TicketFilter};

use crate::App;
use crate::dto::billing::{InvoiceDto, PaymentMethodDto};
use crate::dto::customers::CustomerDto;
use crate::dto::events::EventDto;
use crate::dto::gdpr::*;
use crate::dto::subscriptions::SubscriptionDto;
use crate::dto::support::{CancellationRequestDto, SupportTicketDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};
use crate::versions::check_if_match;

/// Rows read per section of an export: a customer's history is far below this.
const EXPORT_ROWS: i64 = 100_000;

fn all_rows() -> PageRequest {
    PageRequest {
        limit: EXPORT_ROWS,
        starting_after: None,
    }
}

/// `GET /v1/customers/{id}/export`: one repeatable-read snapshot of everything about the
/// customer.
pub async fn export(
    state: &App,
    merchant: MerchantId,
    id: CustomerId,
) -> AppResult<CustomerExportDto> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| read_export(conn, merchant, id, now).await)
        .await
}

async fn read_export(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CustomerId,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<CustomerExportDto> {
    let customer = customers_repo::get(conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    let notes = repo::notes_of(conn, merchant, id).await?;
    let mut subscriptions = subs_repo::list(
        conn,
        merchant,
        &SubscriptionFilter {
            customer: Some(id),
            ..Default::default()
        },
        all_rows(),
    )
    .await?
    .items;
    subscriptions.reverse();
    let mut requests = support::list_requests(
        conn,
        merchant,
        &RequestFilter {
            customer: Some(id),
            ..Default::default()
        },
        all_rows(),
    )
    .await?
    .items;
    requests.reverse();
    let mut tickets = support::list_tickets(
        conn,
        merchant,
        &TicketFilter {
            customer: Some(id),
            ..Default::default()
        },
        all_rows(),
    )
    .await?
    .items;
    tickets.reverse();
    let ticket_ids: Vec<_> = tickets.iter().map(|t| t.id).collect();
    let messages = support::messages_of(conn, merchant, &ticket_ids).await?;
    let methods = payment_methods::list_all_for_customer(conn, merchant, id).await?;
    let mut invoice_rows = invoices::list(
        conn,
        merchant,
        &InvoiceFilter {
            customer: Some(id),
            ..Default::default()
        },
        all_rows(),
    )
    .await?
    .items;
    invoice_rows.reverse();
    let mut invoice_dtos = Vec::with_capacity(invoice_rows.len());
    for invoice in &invoice_rows {
        let payments = invoices::payments_of_invoice(conn, merchant, invoice.id).await?;
        let refunds = invoices::refunds_of_invoice(conn, merchant, invoice.id).await?;
        invoice_dtos.push(InvoiceDto::detailed(invoice, &payments, &refunds));
    }
    let events = repo::events_of(conn, merchant, id).await?;
    let outcomes = repo::offer_outcomes_of(conn, merchant, id).await?;
    Ok(CustomerExportDto {
        object: "customer_export".to_owned(),
        exported_at: now,
        customer: CustomerDto::from(&customer),
        notes: notes
            .into_iter()
            .map(|n| ExportNoteDto {
                id: NoteId::from_uuid(n.id).to_string(),
                body: n.body,
                channel: n.channel,
                author: n.author,
                created_at: n.created_at,
            })
            .collect(),
        subscriptions: subscriptions
            .iter()
            .map(|s| SubscriptionDto::render(s, Actor::Merchant))
            .collect(),
        cancellation_requests: requests.iter().map(CancellationRequestDto::from).collect(),
        support_tickets: tickets
            .iter()
            .map(|t| SupportTicketDto::render(t, Some(&messages)))
            .collect(),
        payment_methods: methods
            .iter()
            .map(|pm| PaymentMethodDto::render(pm, now))
            .collect(),
        invoices: invoice_dtos,
        events: events.into_iter().map(EventDto::from).collect(),
        retention_offer_outcomes: outcomes
            .into_iter()
            .map(|o| ExportOfferOutcomeDto {
                id: OfferOutcomeId::from_uuid(o.id).to_string(),
                offer_id: RetentionOfferId::from_uuid(o.offer_id).to_string(),
                offer_name: o.offer_name,
                offer_kind: o.offer_kind,
                subscription_id: SubscriptionId::from_uuid(o.subscription_id).to_string(),
                cancellation_request_id: o
                    .cancellation_request_id
                    .map(|c| CancellationRequestId::from_uuid(c).to_string()),
                reason: o.reason,
                outcome: o.outcome,
                created_at: o.created_at,
                decided_at: o.decided_at,
            })
            .collect(),
    })
}

/// Keys of event snapshots that hold personal data: their values are replaced by null
/// (`metadata` by `{}`, `tags` by `[]`), wherever they appear in the snapshot.
const PERSONAL_KEYS: [&str; 13] = [
    "email",
    "name",
    "locale",
    "phone",
    "message",
    "body",
    "decline_message",
    // Addresses (docs/orders.md): an order's snapshot and a subscription's address whole,
    // an address book entry's lines (its country stays, like an invoice's currency).
    "shipping_address",
    "address",
    "line1",
    "line2",
    "city",
    "postal_code",
];

/// Replaces the value of a personal field with its erased form; false for other fields.
fn scrub_field(key: &str, value: &mut Value, erased: &CustomerDto) -> bool {
    match key {
        k if PERSONAL_KEYS.contains(&k) => *value = Value::Null,
        "metadata" => *value = Value::Object(Default::default()),
        "tags" => *value = Value::Array(Vec::new()),
        "external_id" => *value = Value::String(erased.external_id.clone()),
        "subject" => *value = Value::String(repo::ERASED_TEXT.to_owned()),
        _ => return false,
    }
    true
}

/// Removes personal data from an event snapshot of the erased customer, in place: every
/// personal field at any depth (the event is about the customer).
pub fn scrub(value: &mut Value, erased: &CustomerDto) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if !scrub_field(key, v, erased) {
                    scrub(v, erased);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, erased)),
        _ => {}
    }
}

/// Ids of objects that are the merchant's, never a customer's personal data, whatever
/// they are nested in (a plan's or a retention offer's `name`).
const MERCHANT_OWNED: &[&str] = &["prod_", "plan_", "roff_", "whep_", "idp_", "mer_", "key_"];

/// Whose personal data an object of a response body holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The erased customer: its own object, or one that names it.
    Erased,
    /// Another customer, or the merchant.
    Other,
    /// No one said: as the object it is nested in (a ticket's messages).
    Inherited,
}

/// The customer id a `customer_id` or `customer` field holds: a string, or an object's id.
fn customer_ref(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::String(id)) => Some(id),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

fn owner_of(map: &serde_json::Map<String, Value>, erased: &str) -> Owner {
    let id = map.get("id").and_then(Value::as_str);
    let customer = customer_ref(map.get("customer_id")).or(customer_ref(map.get("customer")));
    if id == Some(erased) || customer == Some(erased) {
        Owner::Erased
    } else if customer.is_some()
        || id.is_some_and(|id| {
            id.starts_with("cus_") || MERCHANT_OWNED.iter().any(|p| id.starts_with(p))
        })
    {
        Owner::Other
    } else {
        Owner::Inherited
    }
}

/// Removes personal data from a response body, in place, from the objects that belong to
/// the erased customer only: the customer itself, the objects that name it (`customer_id`
/// or `customer`), and what is nested in those unless it names someone else or is the
/// merchant's (a plan). An event's `previous_attributes` belong to its `object`. Another
/// customer, a plan or a product in the same body keep their fields.
fn scrub_owned(value: &mut Value, erased: &CustomerDto, owned: bool) {
    match value {
        Value::Object(map) => {
            let owned = match owner_of(map, &erased.id) {
                Owner::Erased => true,
                Owner::Other => false,
                Owner::Inherited => owned,
            };
            // {"object": …, "previous_attributes": …}: the old values are the object's.
            let previous_owned = match map.get("object") {
                Some(Value::Object(object)) => match owner_of(object, &erased.id) {
                    Owner::Erased => true,
                    Owner::Other => false,
                    Owner::Inherited => owned,
                },
                _ => owned,
            };
            for (key, v) in map.iter_mut() {
                let owned = if key == "previous_attributes" {
                    previous_owned
                } else {
                    owned
                };
                if !(owned && scrub_field(key, v, erased)) {
                    scrub_owned(v, erased, owned);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_owned(v, erased, owned)),
        _ => {}
    }
}

/// A stored response body with the personal data of the `erased` customers scrubbed. A
/// body that is not JSON (none of Tenure's are) keeps nothing.
fn anonymised(body: &[u8], erased: &[CustomerDto]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    for customer in erased {
        scrub_owned(&mut value, customer, false);
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Rewrites every stored idempotent response of the merchant (and its portal sessions)
/// that names the erased customer in its anonymised form. The key stays, so a retry
/// replays the anonymised response instead of running the request again (a refund
/// retried after an erasure must not pay out twice).
async fn anonymise_stored_responses(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    erased: &CustomerDto,
) -> AppResult<()> {
    let id: CustomerId = erased
        .id
        .parse()
        .map_err(|_| AppError::internal("an erased customer's id does not parse"))?;
    for stored in idempotency::responses_naming(conn, merchant, id).await? {
        let body = anonymised(&stored.body, std::slice::from_ref(erased));
        idempotency::replace_body(conn, merchant, &stored.scope, &stored.key, &body).await?;
    }
    Ok(())
}

/// Stores the response of an idempotent request, anonymised when it names customers
/// whose erasure committed while the request ran. Returns whether it was.
///
/// The named customers are locked in the transaction that stores the response
/// (`idempotency::lock_named_customers_erased_since_claim`), so the store and an erasure
/// of one of them are serialised: a response stored first is found by the erasure's
/// anonymising pass, one stored after waits for the erasure's commit and is scrubbed
/// here. No pre-erasure data is ever committed after the erasure, not even for a moment.
pub async fn complete_idempotent_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    claimed: (&str, &str, DateTime<Utc>),
    response: &StoredResponse,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let (scope, key, claimed_at) = claimed;
    if !idempotency::names_customers(&response.body) {
        idempotency::store_response(conn, merchant, scope, key, response, now).await?;
        return Ok(false);
    }
    conn.transaction(async |conn| {
        let ids = idempotency::lock_named_customers_erased_since_claim(
            conn,
            merchant,
            &response.body,
            claimed_at,
        )
        .await?;
        if ids.is_empty() {
            idempotency::store_response(conn, merchant, scope, key, response, now).await?;
            return Ok(false);
        }
        let mut erased = Vec::with_capacity(ids.len());
        for id in ids {
            erased.push(CustomerDto::from(
                &customers_repo::get(conn, merchant, id, false).await?,
            ));
        }
        let scrubbed = StoredResponse {
            body: anonymised(&response.body, &erased),
            ..response.clone()
        };
        idempotency::store_response(conn, merchant, scope, key, &scrubbed, now).await?;
        Ok(true)
    })
    .await
}

/// The merchant's own id of an erased customer: unique, and free of the original (which
/// may have been an e-mail address).
pub fn erased_external_id(id: CustomerId) -> String {
    format!("erased_{id}")
}

/// `POST /v1/customers/{id}/erase`. Refused (409 `customer_has_live_subscriptions`) while
/// a subscription has not ended; idempotent once done (the same customer, no new event).
pub async fn erase(
    state: &App,
    merchant: MerchantId,
    id: CustomerId,
    if_match: Option<String>,
) -> AppResult<Customer> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        // The card's token is erased below, and a charge in flight must be sent again
        // exactly as it was should its worker stop (`tenure_app::billing::charging`). Locking the
        // customer's payable invoices waits for a charge being prepared and keeps new
        // ones out. They are locked before the customer: recording a charge holds its
        // invoice and then checks the customer row (the payment's foreign key).
        invoices::lock_payable_of_customer(conn, merchant, id).await?;
        let before = customers_repo::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("customer"))?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        if before.erased_at.is_some() {
            return Ok(before);
        }
        if charge_intents::any_for_customer(conn, merchant, id).await? {
            return Err(crate::billing::charging::payment_in_progress());
        }
        let live = repo::live_subscriptions(conn, merchant, id).await?;
        if live > 0 {
            return Err(AppError::conflict(
                "customer_has_live_subscriptions",
                format!(
                    "the customer has {live} subscription(s) that have not ended; cancel them first"
                ),
            ));
        }
        // Microseconds, as stored: a repeated erase answers exactly the same customer.
        let updated_at = next_update_time(before.updated_at, now.trunc_subsecs(6));
        let after = Customer {
            id,
            external_id: erased_external_id(id),
            email: None,
            name: None,
            locale: None,
            metadata: Default::default(),
            tags: Vec::new(),
            created_at: before.created_at,
            updated_at,
            erased_at: Some(updated_at),
            test_clock_id: before.test_clock_id,
            channel_preference: Default::default(),
        };
        customers_repo::update(conn, merchant, &after).await?;
        let identity = repo::ErasedIdentity {
            email: before.email.as_deref(),
            external_id: &before.external_id,
        };
        repo::anonymise_related(conn, merchant, id, identity, updated_at).await?;
        // Where the customer lives is personal data: the address book goes, and the orders
        // (kept, like invoices) forget where they were shipped.
        tenure_store::repo::addresses::delete_all_of_customer(conn, merchant, id).await?;
        tenure_store::repo::orders::erase_addresses_of_customer(conn, merchant, id).await?;
        let erased = CustomerDto::from(&after);
        // Under the customer's lock: a response still being stored holds the lock until
        // it commits, so this sees it (`complete_idempotent_request`), and one stored
        // later waits for this commit and scrubs itself.
        anonymise_stored_responses(conn, merchant, &erased).await?;
        for event in repo::events_of(conn, merchant, id).await? {
            let mut data = event.data.clone();
            scrub(&mut data, &erased);
            let mut previous = event.previous_attributes.clone();
            if let Some(p) = previous.as_mut() {
                scrub(p, &erased);
            }
            if data != event.data || previous != event.previous_attributes {
                repo::rewrite_event(conn, merchant, event.id, data, previous).await?;
            }
        }
        // The event carries the anonymised customer only: no personal data, not even the
        // fields that were erased.
        record_event(
            conn,
            merchant,
            EventDraft {
                event_type: "customer.erased",
                resource_type: "customer",
                resource_id: id.to_string(),
                after: &erased,
                before: None,
                at: updated_at,
            },
        )
        .await?;
        Ok(after)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tenure_domain::ids::GenerateId;

    fn erased_customer(id: CustomerId) -> CustomerDto {
        let now = chrono::Utc::now();
        CustomerDto {
            id: id.to_string(),
            object: "customer".to_owned(),
            external_id: erased_external_id(id),
            email: None,
            name: None,
            locale: None,
            metadata: Default::default(),
            tags: Vec::new(),
            created_at: now,
            updated_at: now,
            erased_at: Some(now),
            test_clock: None,
            channel_preference: crate::dto::customers::ChannelPreferenceDto::Email,
        }
    }

    #[test]
    fn a_response_loses_the_erased_customer_s_data_and_keeps_everyone_else_s() {
        let id = CustomerId::generate();
        let erased = erased_customer(id);
        let other = CustomerId::generate().to_string();
        let body = json!({
            "data": [
                {"id": id.to_string(), "email": "ada@example.org", "external_id": "ada-1",
                 "metadata": {"crm": "x"}},
                {"id": other, "email": "bob@example.org", "external_id": "bob-1"},
                {"id": "sub_1", "customer_id": id.to_string(),
                 "plan": {"id": "plan_1", "name": "Gold"},
                 "cancellation": {"message": "too dear"}},
                {"id": "tkt_1", "customer_id": other, "subject": "Bob's question"},
                {"id": "tkt_2", "customer_id": id.to_string(), "subject": "Ada's question",
                 "messages": [{"id": "tmsg_1", "body": "my address is …"}]},
                {"id": "evt_1", "data": {"object": {"id": id.to_string(), "name": null},
                 "previous_attributes": {"name": "Ada"}}},
                {"id": "pay_1", "customer": id.to_string(), "failure_message": "x",
                 "metadata": {"k": "v"}}
            ]
        });
        let scrubbed: Value = serde_json::from_slice(&anonymised(
            body.to_string().as_bytes(),
            std::slice::from_ref(&erased),
        ))
        .unwrap();
        assert_eq!(
            scrubbed,
            json!({
                "data": [
                    {"id": id.to_string(), "email": null, "external_id": erased.external_id,
                     "metadata": {}},
                    {"id": other, "email": "bob@example.org", "external_id": "bob-1"},
                    {"id": "sub_1", "customer_id": id.to_string(),
                     "plan": {"id": "plan_1", "name": "Gold"},
                     "cancellation": {"message": null}},
                    {"id": "tkt_1", "customer_id": other, "subject": "Bob's question"},
                    {"id": "tkt_2", "customer_id": id.to_string(), "subject": "[erased]",
                     "messages": [{"id": "tmsg_1", "body": null}]},
                    {"id": "evt_1", "data": {"object": {"id": id.to_string(), "name": null},
                     "previous_attributes": {"name": null}}},
                    {"id": "pay_1", "customer": id.to_string(), "failure_message": "x",
                     "metadata": {}}
                ]
            })
        );
        assert!(anonymised(b"not json", &[erased]).is_empty());
    }

    #[test]
    fn scrub_removes_personal_fields_at_any_depth() {
        let id = CustomerId::generate();
        let erased = erased_customer(id);
        let mut v = json!({"email": "a@b.c", "external_id": "a@b.c", "amount": 5,
            "metadata": {"x": 1}, "tags": ["vip"],
            "messages": [{"body": "hi", "author": "customer"}], "subject": "Help me, Ada"});
        scrub(&mut v, &erased);
        assert_eq!(
            v,
            json!({"email": null, "external_id": erased.external_id, "amount": 5,
                "metadata": {}, "tags": [], "messages": [{"body": null, "author": "customer"}],
                "subject": "[erased]"})
        );
    }
}
