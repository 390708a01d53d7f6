//! The renewal engine: renewals, charging, dunning retries and upcoming-renewal notices.
//!
//! [`run_due_renewals`] runs three kinds of work, claimed with `FOR UPDATE SKIP LOCKED`
//! so any number of workers share them. Renewals and charges are claimed in batches of
//! up to 500 and the common case of each is written with a few bulk statements (see
//! `renew_batch` here and `tenure_app::billing::charging`); the rest go one by one:
//!
//! 1. **Renew.** A subscription whose period (or trial) ended: the due scheduled changes
//!    apply first (a cancellation or downgrade at period end takes effect before
//!    billing), then the domain's `renew(now)` starts the next period. Saving the
//!    transition invoices the new period in the same transaction (`UNIQUE (merchant,
//!    subscription, period_start)`: a period already invoiced is skipped) and schedules
//!    its first charge for now (`next_payment_attempt_at`).
//! 2. **Charge** ([`tenure_app::billing::charging`]). An invoice whose `next_payment_attempt_at` is due
//!    is charged through the gateway with the idempotency key `"{invoice}:{attempt}"`,
//!    prepared and settled in two transactions with no lock held across the call.
//!    Success: paid, and a past-due or unpaid subscription recovers. Decline: the
//!    subscription goes past due and the next retry is scheduled per the merchant's
//!    dunning policy (offsets from the first failure); when none is left, the
//!    subscription ends `canceled` (the invoice becomes `uncollectible`) or `unpaid` (the
//!    invoice stays open for the customer).
//! 3. **Notify.** `invoice.upcoming` once per subscription period, `upcoming_notice_days`
//!    before it ends (marker column `upcoming_notice_for`); none before a skipped renewal.
//!    And `order.upcoming` once per renewal of a subscription that ships,
//!    `order_notice_days` before it (marker column `order_notice_for`), with what will
//!    ship, where, for how much and until when it may be changed; none before a skipped
//!    renewal. Taking a skip back reopens both notices of that renewal.
//!
//! A crash anywhere rolls the batch's (or item's) transaction back: nothing is
//! half-renewed and no invoice number is lost. A charge interrupted between its two
//! transactions is sent again with the same key once its lease ends, and the gateway
//! replays it instead of charging twice (see `tenure_app::billing::charging`). Charging starts after the
//! renewal's commit, so the invoice id in that key is durable before the gateway is
//! called.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_app::billing::invoicing::{renewal_lines, upcoming_of};
use tenure_app::dto::subscriptions::SubscriptionDto;
use tenure_app::events::{EventDraft, record_event, record_events};
use tenure_app::orders::upcoming_order_of;
use tenure_app::subscriptions::{apply_due_in_tx, persist_system};
use tenure_app::{App, AppError, AppResult};
use tenure_domain::billing::invoice::{self, InvoiceStatus};
use tenure_domain::billing::period::Period;
use tenure_domain::ids::{CustomerId, MerchantId, PlanId, ProductId, SubscriptionId};
use tenure_domain::subscription::{Actor, SubscriptionEvent, SubscriptionStatus};
use tenure_domain::test_clock::WorkScope;
use tenure_domain::time::{next_update_time, truncate_to_micros};
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::credits as credits_repo;
use tenure_store::repo::discounts as discounts_repo;
use tenure_store::repo::invoices::{self as invoices_repo, NewInvoice};
use tenure_store::repo::pending_items as pending_repo;
use tenure_store::repo::renewals as repo;
use tenure_store::repo::subscriptions::{self as subs_repo, StoredSubscription};

use crate::tolerate_item_failure;

/// One real-time round of the renewal engine at `now` (every customer without a test
/// clock): see [`run_due_renewals_in`].
pub async fn run_due_renewals(state: &App, now: DateTime<Utc>, batch: usize) -> AppResult<usize> {
    run_due_renewals_in(state, WorkScope::RealTime, now, batch).await
}

/// One round of the renewal engine at `now` over the work of `scope`: at most `batch`
/// renewals, `batch` charges, a few refunds taken over after their lease (in real time
/// only: a lease is a worker's, in real time) and `batch` notices. Returns how many items
/// were handled; call it again while that is not zero to drain a backlog.
pub async fn run_due_renewals_in(
    state: &App,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let now = truncate_to_micros(now);
    let mut conn = state.db.conn().await?;
    let renewed = renew_due(&mut conn, scope, now, batch).await?;
    let charged = crate::collection::collect_due(&mut conn, state, scope, now, batch).await?;
    let refunds_recovered = match scope {
        WorkScope::RealTime => {
            crate::refunds::recover_stalled_refunds(&mut conn, state, now, batch).await?
        }
        WorkScope::Clock(_) => 0,
    };
    let notified = notify_due(&mut conn, scope, now, batch).await?;
    let orders_notified = notify_orders_due(&mut conn, scope, now, batch).await?;
    let handled = renewed + charged + refunds_recovered + notified + orders_notified;
    if handled > 0 {
        tracing::info!(
            renewed,
            charged,
            refunds_recovered,
            notified,
            orders_notified,
            "renewal round"
        );
    }
    Ok(handled)
}

/// Runs rounds until nothing is due (tests, and `tenure worker` start-up catch-up).
pub async fn run_until_idle(state: &App, now: DateTime<Utc>) -> AppResult<usize> {
    let mut total = 0;
    for _ in 0..10_000 {
        let n = run_due_renewals(state, now, 100).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    Ok(total)
}

enum Round {
    Idle,
    Skipped(uuid::Uuid),
    Done,
}

/// Renews up to `batch` due subscriptions: claimed in batches, most of them renewed in
/// bulk (see [`renew_batch`]); the rest one by one, each in a transaction of its own.
async fn renew_due(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let limit = (batch - done).min(RENEW_CHUNK);
        let outcome = conn
            .transaction(async |conn| renew_batch(conn, scope, now, limit, &skip).await)
            .await?;
        if outcome.claimed == 0 {
            break;
        }
        done += outcome.renewed;
        for (merchant, id) in outcome.one_by_one {
            match renew_one(conn, merchant, id, now).await {
                Ok(Round::Done) => done += 1,
                Ok(Round::Skipped(id)) => skip.push(id),
                Ok(Round::Idle) => {}
                Err(err) => {
                    tolerate_item_failure(&err, "renewal", &id.to_string())?;
                    skip.push(id.uuid());
                }
            }
        }
    }
    Ok(done)
}

/// Subscriptions claimed per renewal transaction. Larger batches mean fewer commits and
/// counter round trips, but hold their row locks (and the merchant's invoice counter,
/// from the invoice insert to the commit) longer.
const RENEW_CHUNK: usize = 500;

struct BatchOutcome {
    claimed: usize,
    renewed: usize,
    /// Claimed but not plain renewals: handled one by one after the batch commits.
    one_by_one: Vec<(MerchantId, SubscriptionId)>,
}

/// A claimed subscription whose renewal is plain: no due or pending scheduled change,
/// not in a trial, and `renew` starts the next period of the same plan.
struct PlainRenewal {
    before: StoredSubscription,
    after: StoredSubscription,
    period: Period,
}

fn plain_renewal(before: &StoredSubscription, now: DateTime<Utc>) -> Option<PlainRenewal> {
    let sub = &before.subscription;
    if !sub.scheduled_changes.is_empty() || sub.status == SubscriptionStatus::Trialing {
        return None;
    }
    let applied = sub.apply_due(now).ok()?;
    if !applied.events.is_empty() {
        return None;
    }
    let renewed = applied.subscription.renew(now).ok()?;
    let [SubscriptionEvent::Renewed { period }] = renewed.events.as_slice() else {
        return None;
    };
    let next = &renewed.subscription;
    if next.plan.plan_id != sub.plan.plan_id
        || !next.scheduled_changes.is_empty()
        || next.status == SubscriptionStatus::Trialing
    {
        return None;
    }
    let period = *period;
    let after = StoredSubscription {
        subscription: renewed.subscription,
        updated_at: next_update_time(before.updated_at, now),
        ..before.clone()
    };
    Some(PlainRenewal {
        before: before.clone(),
        after,
        period,
    })
}

/// Claims up to `limit` due subscriptions in the caller's transaction and renews the
/// plain ones in bulk, per merchant: one `UPDATE` of the subscriptions, one insert of
/// their `subscription.renewed` events, then their invoices with one counter update and
/// one insert each for invoices and lines. The same rows and events as the one-by-one
/// path; the whole batch commits or rolls back together. The others (due scheduled
/// changes, trials, pending items, discounts, a zero invoice) are returned for
/// [`renew_one`].
async fn renew_batch(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    limit: usize,
    skip: &[uuid::Uuid],
) -> AppResult<BatchOutcome> {
    let claimed = repo::claim_due_renewals(conn, scope, now, limit, skip).await?;
    let mut outcome = BatchOutcome {
        claimed: claimed.len(),
        renewed: 0,
        one_by_one: Vec::new(),
    };
    let mut plain: BTreeMap<uuid::Uuid, Vec<PlainRenewal>> = BTreeMap::new();
    for (merchant, sub) in claimed {
        match plain_renewal(&sub, now) {
            Some(r) => plain.entry(merchant.uuid()).or_default().push(r),
            None => outcome.one_by_one.push((merchant, sub.subscription.id)),
        }
    }
    // Merchants in a fixed order, so two batches take invoice counters in the same order.
    for (merchant, renewals) in plain {
        let merchant = MerchantId::from_uuid(merchant);
        let (renewed, one_by_one) = renew_plain(conn, merchant, renewals, now).await?;
        outcome.renewed += renewed;
        outcome
            .one_by_one
            .extend(one_by_one.into_iter().map(|id| (merchant, id)));
    }
    Ok(outcome)
}

/// Saves the plain renewals of one merchant (see [`renew_batch`]). Returns how many were
/// renewed and the subscriptions left for the one-by-one path: those with pending items
/// or discounts, of a customer with credit, and zero invoices (paid at once), which are
/// rare enough not to have a bulk form.
async fn renew_plain(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    renewals: Vec<PlainRenewal>,
    now: DateTime<Utc>,
) -> AppResult<(usize, Vec<SubscriptionId>)> {
    // Pending proration items and active discounts take locks and use up cycles: such
    // renewals take the full path. Both are only written under the subscription's row
    // lock, which this batch holds, so the answer stays true until the commit.
    let ids: Vec<SubscriptionId> = renewals.iter().map(|r| r.after.subscription.id).collect();
    let mut full_path = pending_repo::subscriptions_with_uninvoiced(conn, merchant, &ids).await?;
    full_path.extend(
        discounts_repo::active_for_subscriptions(conn, merchant, &ids)
            .await?
            .into_iter()
            .map(|d| d.subscription_id),
    );
    // A customer with credit: the invoice draws on it, which the one-by-one path does. A
    // grant that commits after this read stays on the balance for the next invoice.
    let customers: Vec<CustomerId> = renewals.iter().map(|r| r.after.customer_id).collect();
    let with_credit = credits_repo::customers_with_credit(conn, merchant, &customers).await?;
    let mut plan_names: HashMap<PlanId, String> = HashMap::new();
    let mut shippable: HashMap<ProductId, bool> = HashMap::new();
    let mut kept = Vec::with_capacity(renewals.len());
    let mut one_by_one = Vec::new();
    for r in renewals {
        // A product that ships makes an order with each invoice, which the one-by-one
        // path does (`invoice_period_in_tx`).
        let ships = match shippable.entry(r.after.product_id) {
            Entry::Occupied(ships) => *ships.get(),
            Entry::Vacant(slot) => *slot.insert(
                catalog_repo::get_product(conn, merchant, r.after.product_id, false)
                    .await?
                    .shippable,
            ),
        };
        if ships
            || full_path.contains(&r.after.subscription.id)
            || with_credit.contains(&r.after.customer_id)
        {
            one_by_one.push(r.after.subscription.id);
            continue;
        }
        let terms = &r.after.subscription.plan;
        let plan_name = match plan_names.entry(terms.plan_id) {
            Entry::Occupied(name) => name.into_mut(),
            Entry::Vacant(slot) => slot.insert(
                catalog_repo::get_plan(conn, merchant, terms.plan_id)
                    .await?
                    .name,
            ),
        };
        let quantity = r.after.subscription.quantity;
        let lines = renewal_lines(plan_name, terms, quantity, r.period, &[], &[])?.lines;
        let totals = invoice::totals(terms.price.currency, &lines)?;
        if totals.amount_due.is_zero() {
            one_by_one.push(r.after.subscription.id);
        } else {
            kept.push((r, lines));
        }
    }
    if kept.is_empty() {
        return Ok((0, one_by_one));
    }
    let saved: Vec<&StoredSubscription> = kept.iter().map(|(r, _)| &r.after).collect();
    repo::save_renewed(conn, merchant, &saved).await?;
    let rendered: Vec<(SubscriptionDto, SubscriptionDto)> = kept
        .iter()
        .map(|(r, _)| {
            (
                SubscriptionDto::render(&r.after, Actor::Merchant),
                SubscriptionDto::render(&r.before, Actor::Merchant),
            )
        })
        .collect();
    let drafts = kept
        .iter()
        .zip(&rendered)
        .map(|((r, _), (after, before))| EventDraft {
            event_type: RENEWED_EVENT,
            resource_type: "subscription",
            resource_id: r.after.subscription.id.to_string(),
            after,
            before: Some(before),
            at: r.after.updated_at,
        })
        .collect();
    record_events(conn, merchant, drafts).await?;
    // One invoice per subscription period: a period invoiced already is skipped, as in
    // `invoice_period_in_tx` (the row locks keep the answer true until the commit).
    let periods: Vec<(SubscriptionId, DateTime<Utc>)> = kept
        .iter()
        .map(|(r, _)| (r.after.subscription.id, r.period.start))
        .collect();
    let invoiced = invoices_repo::already_invoiced(conn, merchant, &periods).await?;
    let renewed = kept.len();
    let new: Vec<NewInvoice> = kept
        .into_iter()
        .filter(|(r, _)| {
            let done = invoiced.contains(&(r.after.subscription.id, r.period.start));
            if done {
                tracing::info!(subscription = %r.after.subscription.id,
                    period_start = %r.period.start, "period already invoiced; skipped");
            }
            !done
        })
        .map(|(r, lines)| NewInvoice {
            customer_id: r.after.customer_id,
            subscription_id: Some(r.after.subscription.id),
            period: Some(r.period),
            currency: r.after.subscription.plan.price.currency,
            lines,
            status: InvoiceStatus::Open,
        })
        .collect();
    // Last: this takes the merchant's invoice counter, held until the commit.
    invoices_repo::create_invoices(conn, merchant, new, Some(now), now).await?;
    Ok((renewed, one_by_one))
}

/// The event type of a plain renewal.
const RENEWED_EVENT: &str = "subscription.renewed";

/// Renews one subscription in a transaction of its own, the full way: due scheduled
/// changes first (`apply_due`), then `renew`, each transition saved with its events and
/// invoice. `Idle` when the subscription is no longer due or another worker holds it.
async fn renew_one(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
    now: DateTime<Utc>,
) -> AppResult<Round> {
    conn.transaction(async |conn| {
        let Some(mut current) = subs_repo::lock_if_free(conn, merchant, id).await? else {
            return Ok(Round::Idle);
        };
        let renews = matches!(
            current.subscription.status,
            SubscriptionStatus::Trialing | SubscriptionStatus::Active | SubscriptionStatus::PastDue
        );
        if !renews || current.subscription.current_period.end > now {
            return Ok(Round::Idle);
        }
        let applied = match apply_due_in_tx(conn, merchant, &current, now).await? {
            Ok(n) => n,
            Err(refusal) => {
                tracing::error!(subscription = %id, code = refusal.code(), error = %refusal,
                    "cannot apply the due changes before renewing");
                return Ok(Round::Skipped(id.uuid()));
            }
        };
        if applied > 0 {
            current = subs_repo::get(conn, merchant, id, true).await?;
        }
        let renewed = match current.subscription.renew(now) {
            Ok(transition) => {
                persist_system(conn, merchant, &current, transition, now).await?;
                true
            }
            Err(_) => false,
        };
        Ok::<_, AppError>(if renewed || applied > 0 {
            Round::Done
        } else {
            Round::Skipped(id.uuid())
        })
    })
    .await
}

async fn notify_due(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let round = conn
            .transaction(async |conn| {
                let Some((merchant, id)) = repo::claim_due_notice(conn, scope, now, &skip).await?
                else {
                    return Ok(Round::Idle);
                };
                let s = subs_repo::get(conn, merchant, id, true).await?;
                // A skipped renewal bills nothing, nor one a send now billed already, so
                // there is nothing to announce.
                let skipped =
                    s.subscription.next_renewal_skipped() || s.subscription.renewal_prepaid();
                if !skipped && let Some(upcoming) = upcoming_of(conn, merchant, &s).await? {
                    record_event(
                        conn,
                        merchant,
                        EventDraft {
                            event_type: "invoice.upcoming",
                            resource_type: "subscription",
                            resource_id: id.to_string(),
                            after: &upcoming,
                            before: None,
                            at: now,
                        },
                    )
                    .await?;
                }
                repo::mark_notice_sent(conn, merchant, id, s.subscription.current_period.end)
                    .await?;
                Ok::<_, AppError>(Round::Done)
            })
            .await?;
        match round {
            Round::Idle => break,
            Round::Skipped(id) => skip.push(id),
            Round::Done => done += 1,
        }
    }
    Ok(done)
}

/// Sends `order.upcoming` for the renewals of subscriptions that ship coming within their
/// merchant's `order_notice_days`, once per renewal (the marker is written with the
/// event). A skipped renewal ships nothing: it is marked without an event, and taking
/// the skip back clears the marker (`forget_notice_sent`). A subscription that does not
/// ship (its product is not shippable, or its merchant's `order_notice_days` is 0) is
/// marked without an event too.
async fn notify_orders_due(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    batch: usize,
) -> AppResult<usize> {
    let mut skip = Vec::new();
    let mut done = 0;
    while done < batch {
        let mut claimed = None;
        let result = conn
            .transaction(async |conn| {
                let Some((merchant, id, ships)) =
                    repo::claim_due_order_notice(conn, scope, now, &skip).await?
                else {
                    return Ok(Round::Idle);
                };
                claimed = Some(id.uuid());
                let s = subs_repo::get(conn, merchant, id, true).await?;
                let renewal_at = s.subscription.current_period.end;
                // One that does not ship is only marked, once per renewal, so that the
                // claim's index no longer holds it.
                if ships && !s.subscription.next_renewal_skipped() {
                    let product =
                        catalog_repo::get_product(conn, merchant, s.product_id, false).await?;
                    let upcoming = upcoming_order_of(conn, merchant, &s, &product, now).await?;
                    // Only the order of this renewal: one that will not renew has none.
                    if let Some(order) = upcoming.filter(|o| o.renewal_at == renewal_at) {
                        record_event(
                            conn,
                            merchant,
                            EventDraft {
                                event_type: "order.upcoming",
                                resource_type: "subscription",
                                resource_id: id.to_string(),
                                after: &order,
                                before: None,
                                at: now,
                            },
                        )
                        .await?;
                    }
                }
                repo::mark_order_notice_sent(conn, merchant, id, renewal_at).await?;
                Ok::<_, AppError>(Round::Done)
            })
            .await;
        match result {
            Ok(Round::Idle) => break,
            Ok(Round::Skipped(id)) => skip.push(id),
            Ok(Round::Done) => done += 1,
            Err(err) => {
                let Some(id) = claimed else { return Err(err) };
                tolerate_item_failure(&err, "order notice", &id.to_string())?;
                skip.push(id);
            }
        }
    }
    Ok(done)
}
