//! Customer context: tenure, subscriptions, lifetime value, MRR, payment health, support,
//! cancellation and pause history, tags and segments — computed on read from the real
//! tables (segments included, so they are never stale); segment settings; agent notes
//! and the timeline.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::Interval;
use tenure_domain::context::{
    self, PaymentFacts, PaymentHealth, Segment, SegmentFacts, monthly_amount,
};
use tenure_domain::customer::Customer;
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, EventId, GenerateId, MerchantId, NoteId, PlanId,
    SubscriptionId, TicketId, TicketMessageId,
};
use tenure_domain::money::{Currency, Money};
use tenure_domain::text;
use tenure_domain::time::next_update_time;
use tenure_store::repo::context as repo;
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::payment_methods;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::MoneyDto;
use crate::dto::context::*;
use crate::dto::customers::CustomerDto;
use crate::error::{AppError, AppResult};
use crate::error::{Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::versions::check_if_match;

/// Statuses that count towards MRR: the ones that are billed.
const MRR_STATUSES: [&str; 2] = ["active", "past_due"];
pub const NOTE_CHANNELS: [&str; 6] = ["portal", "email", "chat", "phone", "api", "system"];
const NOTE_MAX_CHARS: usize = 10_000;

/// What the context is computed from; also the input of offer eligibility.
pub struct CustomerSnapshot {
    pub customer: Customer,
    pub now: DateTime<Utc>,
    pub tenure_days: i64,
    pub ltv: Vec<repo::CurrencyTotals>,
    pub subscriptions: Vec<repo::SubscriptionSummaryRow>,
    pub payment: PaymentFacts,
    pub health: PaymentHealth,
    pub tickets: Vec<repo::TicketSummaryRow>,
    pub cancellations: Vec<repo::CancellationSummaryRow>,
    pub segments: Vec<Segment>,
}

impl CustomerSnapshot {
    pub fn ltv_map(&self) -> BTreeMap<String, i64> {
        self.ltv
            .iter()
            .map(|t| (t.currency.clone(), t.paid - t.refunded))
            .collect()
    }
}

/// Whole days from `since` to `now` (0 if `since` is in the future).
pub fn tenure_days(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - since).num_days().max(0)
}

/// Gathers the facts of one customer (inside the caller's transaction).
pub async fn read_snapshot(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer_id: CustomerId,
    now: DateTime<Utc>,
) -> AppResult<CustomerSnapshot> {
    let customer = customers_repo::get(conn, merchant, customer_id, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    let ltv = repo::lifetime_value(conn, merchant, customer_id).await?;
    let subscriptions = repo::subscriptions_of(conn, merchant, customer_id).await?;
    let failed =
        repo::failed_payments_since(conn, merchant, customer_id, now - Duration::days(30)).await?;
    let card = payment_methods::default_for_customer(conn, merchant, customer_id).await?;
    let (expired, expiring) = match card {
        Some(pm) => {
            let expired = pm.is_expired(now);
            (expired, !expired && pm.expiring_soon(now))
        }
        None => (false, false),
    };
    let tickets = repo::tickets_of(conn, merchant, customer_id, 5).await?;
    let cancellations = repo::cancellations_of(conn, merchant, customer_id).await?;
    let count = |pred: &dyn Fn(&str) -> bool| -> u32 {
        u32::try_from(subscriptions.iter().filter(|s| pred(&s.status)).count()).unwrap_or(u32::MAX)
    };
    let payment = PaymentFacts {
        failed_payments_30d: u32::try_from(failed).unwrap_or(u32::MAX),
        delinquent_subscriptions: count(&|s| s == "past_due" || s == "unpaid"),
        default_card_expired: expired,
        default_card_expiring: expiring,
    };
    let health = context::payment_health(payment);
    let tenure = tenure_days(customer.created_at, now);
    let thresholds = repo::high_ltv_thresholds(conn, merchant).await?;
    let mut facts = CustomerSnapshot {
        customer,
        now,
        tenure_days: tenure,
        ltv,
        payment,
        health,
        tickets,
        segments: Vec::new(),
        cancellations,
        subscriptions: Vec::new(),
    };
    let segment_facts = SegmentFacts {
        tenure_days: tenure,
        ltv: facts.ltv_map(),
        high_ltv_thresholds: thresholds.into_iter().collect(),
        payment_health: Some(health),
        pending_cancellation: facts.cancellations.iter().any(|c| c.status == "pending"),
        subscriptions_total: count(&|_| true),
        subscriptions_live: count(&|s| s != "canceled"),
        subscriptions_paused: count(&|s| s == "paused"),
    };
    facts.segments = context::segments(&segment_facts);
    facts.subscriptions = subscriptions;
    Ok(facts)
}

/// The monthly value of a subscription row's plan.
pub fn monthly_of(s: &repo::SubscriptionSummaryRow) -> i64 {
    let interval = s
        .billing_interval
        .parse::<Interval>()
        .unwrap_or(Interval::Month);
    monthly_amount(
        s.amount,
        interval,
        u32::try_from(s.interval_count).unwrap_or(1),
    )
}

fn summary(subs: &[repo::SubscriptionSummaryRow]) -> SubscriptionSummaryDto {
    let mut by_status = BTreeMap::new();
    for s in subs {
        *by_status.entry(s.status.clone()).or_insert(0u32) += 1;
    }
    SubscriptionSummaryDto {
        total: u32::try_from(subs.len()).unwrap_or(u32::MAX),
        by_status,
        current_plans: subs
            .iter()
            .filter(|s| s.status != "canceled")
            .filter_map(|s| {
                Some(CurrentPlanDto {
                    subscription_id: SubscriptionId::from_uuid(s.id).to_string(),
                    status: s.status.clone(),
                    plan_id: PlanId::from_uuid(s.plan_id).to_string(),
                    plan_name: s.plan_name.clone(),
                    price: MoneyDto {
                        amount: s.amount,
                        currency: s.currency.parse::<Currency>().ok()?,
                    },
                    interval: s.billing_interval.clone(),
                    interval_count: s.interval_count,
                })
            })
            .collect(),
    }
}

pub fn render(
    facts: &CustomerSnapshot,
    lifecycle: Vec<repo::LifecycleEventRow>,
) -> CustomerContextDto {
    let mut mrr: BTreeMap<String, i64> = BTreeMap::new();
    for s in facts
        .subscriptions
        .iter()
        .filter(|s| MRR_STATUSES.contains(&s.status.as_str()))
    {
        *mrr.entry(s.currency.clone()).or_insert(0) += monthly_of(s);
    }
    CustomerContextDto {
        object: "customer_context".to_owned(),
        customer_id: facts.customer.id.to_string(),
        tenure: TenureDto {
            since: facts.customer.created_at,
            days: facts.tenure_days,
        },
        subscriptions: summary(&facts.subscriptions),
        lifetime_value: facts
            .ltv
            .iter()
            .map(|t| LifetimeValueDto {
                currency: t.currency.clone(),
                paid: t.paid,
                refunded: t.refunded,
                net: t.paid - t.refunded,
            })
            .collect(),
        mrr: mrr
            .into_iter()
            .map(|(currency, amount)| CurrencyAmountDto { currency, amount })
            .collect(),
        payment_health: PaymentHealthDto {
            status: facts.health,
            failed_payments_30d: facts.payment.failed_payments_30d,
            delinquent_subscriptions: facts.payment.delinquent_subscriptions,
            default_card_expired: facts.payment.default_card_expired,
            default_card_expiring: facts.payment.default_card_expiring,
        },
        support: SupportSummaryDto {
            open_tickets: u32::try_from(
                facts.tickets.iter().filter(|t| t.status == "open").count(),
            )
            .unwrap_or(u32::MAX),
            tickets: facts
                .tickets
                .iter()
                .map(|t| TicketSummaryDto {
                    id: TicketId::from_uuid(t.id).to_string(),
                    subject: t.subject.clone(),
                    status: t.status.clone(),
                    channel: t.channel.clone(),
                    created_at: t.created_at,
                    updated_at: t.updated_at,
                })
                .collect(),
        },
        cancellations: facts
            .cancellations
            .iter()
            .map(|c| CancellationSummaryDto {
                id: CancellationRequestId::from_uuid(c.id).to_string(),
                subscription_id: SubscriptionId::from_uuid(c.subscription_id).to_string(),
                reason: c.reason.clone(),
                status: c.status.clone(),
                effective_at: c.effective_at,
                created_at: c.created_at,
            })
            .collect(),
        pause_history: lifecycle
            .into_iter()
            .map(|e| LifecycleEntryDto {
                event_id: EventId::from_uuid(e.id).to_string(),
                event_type: e.event_type,
                subscription_id: e.resource_id,
                created_at: e.created_at,
            })
            .collect(),
        tags: facts.customer.tags.clone(),
        channel_preference: facts.customer.channel_preference.into(),
        segments: facts.segments.clone(),
        credit_balances: None,
        overrides: None,
        recent_orders: None,
        last_shipment: None,
        computed_at: facts.now,
    }
}

/// How many of the latest overrides the context shows.
const CONTEXT_OVERRIDES: i64 = 10;

/// How many of the latest orders the context shows.
const CONTEXT_ORDERS: i64 = 5;

/// `GET /v1/customers/{id}/context`: one consistent snapshot (repeatable read). The
/// billing data (credit balances, agents' overrides) only `with_billing` (a key that may
/// read billing: `billing:read`); the recent orders and the last shipment only
/// `with_orders` (a key that may read orders: `orders:read`, which reads the same
/// orders, amounts included, at `GET /v1/orders`).
pub async fn get_context(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    with_billing: bool,
    with_orders: bool,
) -> AppResult<CustomerContextDto> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            let facts = read_snapshot(conn, merchant, customer, now).await?;
            let sub_ids: Vec<String> = facts
                .subscriptions
                .iter()
                .map(|s| SubscriptionId::from_uuid(s.id).to_string())
                .collect();
            let lifecycle = repo::lifecycle_events_of(conn, merchant, &sub_ids).await?;
            let mut ctx = render(&facts, lifecycle);
            if with_orders {
                let orders = tenure_store::repo::orders::recent_of_customer(
                    conn,
                    merchant,
                    customer,
                    CONTEXT_ORDERS,
                )
                .await?;
                ctx.recent_orders = Some(
                    orders
                        .iter()
                        .map(crate::dto::orders::OrderDto::from)
                        .collect(),
                );
                ctx.last_shipment =
                    tenure_store::repo::orders::last_shipped_of_customer(conn, merchant, customer)
                        .await?
                        .as_ref()
                        .and_then(crate::dto::context::LastShipmentDto::of);
            }
            if !with_billing {
                return Ok(ctx);
            }
            ctx.credit_balances = Some(
                tenure_store::repo::credits::balances(conn, merchant, customer)
                    .await?
                    .into_iter()
                    .map(|b| b.balance.into())
                    .collect(),
            );
            let recent = PageRequest {
                limit: CONTEXT_OVERRIDES,
                starting_after: None,
            };
            ctx.overrides = Some(
                tenure_store::repo::overrides::of_customer(conn, merchant, customer, recent)
                    .await?
                    .items
                    .iter()
                    .filter_map(crate::dto::credits::OverrideDto::render)
                    .collect(),
            );
            Ok(ctx)
        })
        .await
}

/// The portal's subset: tenure and the subscription summary (no money figures).
pub async fn portal_summary(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<(Customer, TenureDto, SubscriptionSummaryDto)> {
    let now = state.now();
    let mut conn = state.db.conn().await?;
    let customer = customers_repo::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    let subs = repo::subscriptions_of(&mut conn, merchant, customer.id).await?;
    let tenure = TenureDto {
        since: customer.created_at,
        days: tenure_days(customer.created_at, now),
    };
    Ok((customer, tenure, summary(&subs)))
}

pub async fn get_segment_settings(
    state: &App,
    merchant: MerchantId,
) -> AppResult<SegmentSettingsDto> {
    let mut conn = state.db.conn().await?;
    let rows = repo::high_ltv_thresholds(&mut conn, merchant).await?;
    Ok(SegmentSettingsDto {
        high_ltv_thresholds: rows
            .into_iter()
            .filter_map(|(currency, amount)| {
                Some(MoneyDto {
                    amount,
                    currency: currency.parse().ok()?,
                })
            })
            .collect(),
    })
}

pub async fn put_segment_settings(
    state: &App,
    merchant: MerchantId,
    input: PutSegmentSettings,
) -> AppResult<SegmentSettingsDto> {
    let mut v = Validator::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    for (i, m) in input.high_ltv_thresholds.iter().enumerate() {
        let field = format!("high_ltv_thresholds[{i}]");
        if v.check(Money::price(m.amount, m.currency).map_err(|_| {
            tenure_domain::DomainError::validation(
                field.clone(),
                "amount must be 0 or more minor units",
            )
        }))
        .is_none()
        {
            continue;
        }
        if !seen.insert(m.currency.code()) {
            v.fail(field, "one threshold per currency");
            continue;
        }
        rows.push((m.currency.code().to_owned(), m.amount));
    }
    v.finish()?;
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| repo::set_high_ltv_thresholds(conn, merchant, &rows).await)
        .await?;
    // Back to the pool before the read takes one: a worker's pool may hold one connection.
    drop(conn);
    get_segment_settings(state, merchant).await
}

pub async fn add_note(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    input: CreateNote,
) -> AppResult<TimelineEntryDto> {
    let mut v = Validator::default();
    let body = v.check(text::clean("body", &input.body, NOTE_MAX_CHARS, true));
    let author = v.check(text::clean("author", &input.author, 200, false));
    if !NOTE_CHANNELS.contains(&input.channel.as_str()) {
        v.fail(
            "channel",
            "must be one of portal, email, chat, phone, api, system",
        );
    }
    v.finish()?;
    let note = repo::NewNote {
        id: NoteId::generate(),
        customer,
        body: checked(body)?,
        channel: input.channel,
        author: checked(author)?,
        at: state.now(),
    };
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| -> AppResult<()> {
        let c = customers_repo::get(conn, merchant, customer, true)
            .await
            .map_err(AppError::from_store("customer"))?;
        c.ensure_not_erased()?;
        repo::insert_note(conn, merchant, &note).await?;
        Ok(())
    })
    .await?;
    Ok(TimelineEntryDto {
        id: note.id.to_string(),
        kind: TimelineEntryKindDto::Note,
        entry_type: NOTE_ENTRY_TYPE.to_owned(),
        created_at: note.at,
        resource_type: Some("customer".to_owned()),
        resource_id: None,
        channel: Some(note.channel),
        author: Some(note.author),
        body: Some(note.body),
        ticket_id: None,
        request: None,
    })
}

/// Parses a timeline cursor: the id of an event, a note or a ticket message.
pub fn timeline_cursor(raw: &str) -> AppResult<uuid::Uuid> {
    raw.parse::<EventId>()
        .map(|id| id.uuid())
        .or_else(|_| raw.parse::<NoteId>().map(|id| id.uuid()))
        .or_else(|_| raw.parse::<TicketMessageId>().map(|id| id.uuid()))
        .map_err(|_| {
            AppError::field(
                "starting_after",
                "must be an id from this timeline (evt_, note_ or tmsg_)",
            )
        })
}

pub async fn timeline(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> AppResult<Page<TimelineEntryDto>> {
    let mut conn = state.db.conn().await?;
    customers_repo::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    let rows = repo::timeline(&mut conn, merchant, customer, page).await?;
    Ok(Page {
        has_more: rows.has_more,
        items: rows
            .items
            .into_iter()
            .map(|r| {
                let (kind, id) = match r.entry_kind.as_str() {
                    "event" => (
                        TimelineEntryKindDto::Event,
                        EventId::from_uuid(r.id).to_string(),
                    ),
                    "note" => (
                        TimelineEntryKindDto::Note,
                        NoteId::from_uuid(r.id).to_string(),
                    ),
                    _ => (
                        TimelineEntryKindDto::TicketMessage,
                        TicketMessageId::from_uuid(r.id).to_string(),
                    ),
                };
                TimelineEntryDto {
                    id,
                    kind,
                    entry_type: r.entry_type,
                    created_at: r.created_at,
                    resource_type: r.resource_type,
                    resource_id: r.resource_id,
                    channel: r.channel,
                    author: r.author,
                    body: r.body,
                    ticket_id: r.ticket_id.map(|t| TicketId::from_uuid(t).to_string()),
                    request: crate::dto::events::EventRequestDto::from_columns(
                        r.api_key_id,
                        r.agent,
                        r.request_id,
                    ),
                }
            })
            .collect(),
    })
}

/// Adds (`add = true`) or removes a tag; `customer.updated` when something changed.
pub async fn change_tag(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    tag: &str,
    add: bool,
    if_match: Option<String>,
) -> AppResult<Customer> {
    let tag = tenure_domain::customer::normalize_tag(tag)
        .map_err(|e| AppError::field("tag", e.to_string()))?;
    let now = state.now();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = customers_repo::get(conn, merchant, customer, true)
            .await
            .map_err(AppError::from_store("customer"))?;
        before.ensure_not_erased()?;
        check_if_match(if_match.as_deref(), before.updated_at)?;
        let mut after = before.clone();
        if add {
            let mut tags = after.tags.clone();
            tags.push(tag.clone());
            after.tags = tenure_domain::customer::normalize_tags(&tags)
                .map_err(|e| AppError::field("tag", e.to_string()))?;
        } else {
            after.tags.retain(|t| *t != tag);
        }
        if after == before {
            return Ok(after);
        }
        after.updated_at = next_update_time(before.updated_at, now);
        customers_repo::update(conn, merchant, &after).await?;
        let before_dto = CustomerDto::from(&before);
        record_event(
            conn,
            merchant,
            EventDraft {
                event_type: "customer.updated",
                resource_type: "customer",
                resource_id: after.id.to_string(),
                after: &CustomerDto::from(&after),
                before: Some(&before_dto),
                at: after.updated_at,
            },
        )
        .await?;
        Ok(after)
    })
    .await
}
