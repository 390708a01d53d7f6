//! Orders (docs/orders.md): made with the invoice of each period of a subscription to a
//! shippable product, moved by that invoice's payment (every payment route records an
//! invoice event through [`crate::billing::invoices::invoice_event`], which calls
//! [`follow_invoice`], or pays in bulk and calls [`follow_paid_invoices`]), and moved
//! through fulfilment by the merchant. Every change records its event in its
//! transaction.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::invoice::Invoice;
use tenure_domain::catalog::Product;
use tenure_domain::error::DomainError;
use tenure_domain::ids::{GenerateId, MerchantId, OrderId, SubscriptionId};
use tenure_domain::money::Money;
use tenure_domain::order::{InvoiceOutcome, Order, OrderLine, OrderStatus, Shipment};
use tenure_domain::order_cutoff;
use tenure_domain::policy::{PolicyActor, PolicyLimit};
use tenure_domain::subscription::Subscription;
use tenure_domain::time::next_update_time;
use tenure_store::repo::addresses as addresses_repo;
use tenure_store::repo::catalog as catalog_repo;
use tenure_store::repo::customers as customers_repo;
use tenure_store::repo::orders::{self as repo, OrderFilter};
use tenure_store::repo::renewals as renewals_repo;
use tenure_store::repo::subscriptions::StoredSubscription;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::orders::{OrderDto, OrderLineDto, PostalAddressDto, ShipOrder, UpcomingOrderDto};
use crate::error::{AppError, AppResult, Validator, checked};
use crate::events::{EventDraft, record_event};
use crate::subscriptions::Scope;

async fn order_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &Order,
    before: Option<&Order>,
) -> AppResult<()> {
    let before = before.map(OrderDto::from);
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "order",
            resource_id: after.id.to_string(),
            after: &OrderDto::from(after),
            before: before.as_ref(),
            at: after.updated_at,
        },
    )
    .await
}

/// Makes the order of a period's `invoice` just created for `sub`, in the caller's
/// transaction, when its product ships: `awaiting_payment`, with the plan and its
/// variant (as the plan carries it now: a later edit does not change the order), the quantity,
/// what the invoice totals and a snapshot of the subscription's shipping address
/// (`order.created`). Nothing for a product that does not ship.
pub(crate) async fn create_for_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    plan: &tenure_domain::catalog::Plan,
    invoice: &Invoice,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let Some(period) = invoice.period else {
        return Ok(());
    };
    let product = catalog_repo::get_product(conn, merchant, sub.product_id, false).await?;
    if !product.shippable {
        return Ok(());
    }
    let terms = &sub.subscription.plan;
    let quantity = sub.subscription.quantity;
    let address = addresses_repo::shipping_address_of(conn, merchant, sub.subscription.id)
        .await?
        .map(|a| a.address);
    // A credit larger than the charges leaves a negative total: nothing to collect.
    let total = invoice.totals.total;
    let order = Order {
        id: OrderId::generate(),
        customer_id: sub.customer_id,
        subscription_id: sub.subscription.id,
        invoice_id: invoice.id,
        period,
        status: OrderStatus::AwaitingPayment,
        lines: vec![OrderLine {
            product_id: product.id,
            product_name: product.name,
            plan_id: terms.plan_id,
            plan_name: plan.name.clone(),
            variant: plan.variant.clone(),
            quantity,
            unit_amount: terms.price,
            amount: terms.price.times(quantity)?,
        }],
        amount_total: Money::new(total.amount.max(0), total.currency),
        shipping_address: address,
        shipment: None,
        held_at: None,
        released_at: None,
        fulfilled_at: None,
        shipped_at: None,
        delivered_at: None,
        canceled_at: None,
        created_at: now,
        updated_at: now,
    };
    repo::insert(conn, merchant, &order).await?;
    order_event(conn, merchant, "order.created", &order, None).await
}

/// Moves the order of `invoice` (if it has one) after the invoice event `event_type`:
/// paid (`order.paid`, or `order.released` from `on_hold`), a failed payment
/// (`order.held`), voided (`order.canceled`). In the caller's transaction.
pub(crate) async fn follow_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    invoice: &Invoice,
) -> AppResult<()> {
    let outcome = match event_type {
        "invoice.paid" => InvoiceOutcome::Paid,
        "invoice.payment_failed" => InvoiceOutcome::PaymentFailed,
        "invoice.voided" => InvoiceOutcome::Voided,
        _ => return Ok(()),
    };
    // Only a period's invoice of a subscription has an order.
    if invoice.subscription_id.is_none() || invoice.period.is_none() {
        return Ok(());
    }
    let Some(before) = repo::lock_of_invoice(conn, merchant, invoice.id).await? else {
        return Ok(());
    };
    let at = next_update_time(before.updated_at, invoice.updated_at);
    let Some((mut after, change)) = before.follow_invoice(outcome, at) else {
        return Ok(());
    };
    after.updated_at = at;
    repo::update(conn, merchant, &after).await?;
    order_event(conn, merchant, change.event_type(), &after, Some(&before)).await
}

/// [`follow_invoice`] for invoices the renewal engine recorded paid in bulk: one
/// statement finds which of them have orders.
pub async fn follow_paid_invoices(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoices: &[&Invoice],
) -> AppResult<()> {
    let ids: Vec<_> = invoices.iter().map(|i| i.id).collect();
    let with_orders = repo::invoices_with_orders(conn, merchant, &ids).await?;
    for invoice in invoices.iter().filter(|i| with_orders.contains(&i.id)) {
        follow_invoice(conn, merchant, "invoice.paid", invoice).await?;
    }
    Ok(())
}

/// The merchant's orders (or the scope's customer's), newest first.
pub async fn list(
    state: &App,
    scope: Scope,
    mut filter: OrderFilter,
    page: PageRequest,
) -> AppResult<Page<Order>> {
    if let Some(customer) = scope.customer {
        filter.customer = Some(customer);
    }
    let mut conn = state.db.conn().await?;
    Ok(repo::list(&mut conn, scope.merchant, &filter, page).await?)
}

pub async fn get(state: &App, scope: Scope, id: OrderId) -> AppResult<Order> {
    let mut conn = state.db.conn().await?;
    repo::get(&mut conn, scope.merchant, id, scope.customer, false)
        .await
        .map_err(AppError::from_store("order"))
}

/// `POST /v1/orders/{id}/fulfill`: picked and packed (`order.fulfilled`).
pub async fn fulfill(state: &App, merchant: MerchantId, id: OrderId) -> AppResult<Order> {
    transition(state, merchant, id, "order.fulfilled", |o, now| {
        o.fulfill(now)
    })
    .await
}

/// `POST /v1/orders/{id}/ship`: handed to a carrier (`order.shipped`); the tracking is
/// checked first (422 with every invalid field).
pub async fn ship(
    state: &App,
    merchant: MerchantId,
    id: OrderId,
    input: ShipOrder,
) -> AppResult<Order> {
    let mut v = Validator::default();
    let shipment = v.check_all(Shipment::parse(
        &input.carrier,
        &input.tracking_number,
        input.tracking_url.as_deref(),
    ));
    v.finish()?;
    let shipment = checked(shipment)?;
    transition(state, merchant, id, "order.shipped", move |o, now| {
        o.ship(shipment.clone(), now)
    })
    .await
}

/// `POST /v1/orders/{id}/deliver` (`order.delivered`).
pub async fn deliver(state: &App, merchant: MerchantId, id: OrderId) -> AppResult<Order> {
    transition(state, merchant, id, "order.delivered", |o, now| {
        o.deliver(now)
    })
    .await
}

/// `POST /v1/orders/{id}/cancel`: called off before it ships (`order.canceled`). The
/// invoice is left as it is: a refund or a void is the merchant's billing decision.
pub async fn cancel(state: &App, merchant: MerchantId, id: OrderId) -> AppResult<Order> {
    transition(state, merchant, id, "order.canceled", |o, now| {
        o.cancel(now)
    })
    .await
}

/// Runs one fulfilment step on the locked order at its customer's time.
async fn transition(
    state: &App,
    merchant: MerchantId,
    id: OrderId,
    event_type: &'static str,
    step: impl Fn(&Order, DateTime<Utc>) -> Result<Order, DomainError> + Send + Sync,
) -> AppResult<Order> {
    let mut conn = state.db.conn().await?;
    let found = repo::get(&mut conn, merchant, id, None, false)
        .await
        .map_err(AppError::from_store("order"))?;
    let now = crate::test_clocks::now_for_customer(
        &mut conn,
        merchant,
        found.customer_id,
        state.now_micros(),
    )
    .await?;
    conn.transaction(async |conn| {
        let before = repo::get(conn, merchant, id, None, true).await?;
        let at = next_update_time(before.updated_at, now);
        let mut after = step(&before, at)?;
        after.updated_at = at;
        repo::update(conn, merchant, &after).await?;
        order_event(conn, merchant, event_type, &after, Some(&before)).await?;
        Ok(after)
    })
    .await
}

/// Gives the subscription's orders that have no address yet (made before it had one)
/// the address it now ships to, so they can be fulfilled. In the caller's transaction.
pub(crate) async fn address_waiting_orders(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    address: &tenure_domain::address::Address,
    now: DateTime<Utc>,
) -> AppResult<()> {
    for before in
        repo::lock_unaddressed_of_subscription(conn, merchant, sub.subscription.id).await?
    {
        let after = Order {
            shipping_address: Some(address.clone()),
            updated_at: next_update_time(before.updated_at, now),
            ..before.clone()
        };
        repo::update(conn, merchant, &after).await?;
        order_event(conn, merchant, "order.updated", &after, Some(&before)).await?;
    }
    Ok(())
}

/// The order the next billed renewal of `s` (whose product is `product`) will make, as
/// it stands at `now`: `None` when the subscription will not renew. It ships the product
/// of the plan that renewal bills (another one after a swap to another product's plan
/// due then). The totals are the upcoming invoice's
/// ([`crate::billing::invoicing::upcoming_of`]), the address the subscription's current
/// one.
pub async fn upcoming_order_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
    product: &Product,
    now: DateTime<Utc>,
) -> AppResult<Option<UpcomingOrderDto>> {
    let Some(parts) = crate::billing::invoicing::upcoming_parts(conn, merchant, s).await? else {
        return Ok(None);
    };
    let settings = renewals_repo::settings(conn, merchant).await?.orders;
    let customer = customers_repo::get(conn, merchant, s.customer_id, false).await?;
    let address = addresses_repo::shipping_address_of(conn, merchant, s.subscription.id)
        .await?
        .map(|a| a.address);
    // What ships is the product of the plan the renewal bills: a swap to another
    // product's plan at this renewal ships that product.
    let shipped = if parts.product_id == product.id {
        std::borrow::Cow::Borrowed(product)
    } else {
        std::borrow::Cow::Owned(
            catalog_repo::get_product(conn, merchant, parts.product_id, false).await?,
        )
    };
    let quantity = s.subscription.quantity;
    let line = OrderLine {
        product_id: shipped.id,
        product_name: shipped.name.clone(),
        plan_id: parts.terms.plan_id,
        plan_name: parts.plan_name,
        variant: parts.variant,
        quantity,
        unit_amount: parts.terms.price,
        amount: parts.terms.price.times(quantity)?,
    };
    let total = parts.totals.total;
    let renewal_at = parts.period.start;
    let cutoff_at = settings.cutoff_at(renewal_at);
    Ok(Some(UpcomingOrderDto {
        object: "upcoming_order".to_owned(),
        subscription_id: s.subscription.id.to_string(),
        customer_id: s.customer_id.to_string(),
        renewal_at,
        period_start: parts.period.start,
        period_end: parts.period.end,
        lines: vec![OrderLineDto::from(&line)],
        amount_total: Money::new(total.amount.max(0), total.currency).into(),
        shipping_address: address.as_ref().map(PostalAddressDto::from),
        cutoff_at,
        editable: cutoff_at.is_none_or(|cutoff| now < cutoff),
        channel_preference: customer.channel_preference.into(),
    }))
}

/// The upcoming order of subscription `id` (`GET …/upcoming_order`): 409
/// `subscription_not_shippable` when its product does not ship, 409 `no_upcoming_order`
/// when it will not renew. A clock customer's is computed at the clock's time.
pub async fn upcoming_order(
    state: &App,
    scope: Scope,
    id: SubscriptionId,
) -> AppResult<UpcomingOrderDto> {
    let s = crate::subscriptions::get(state, scope, id).await?;
    let mut conn = state.db.conn().await?;
    let product = catalog_repo::get_product(&mut conn, scope.merchant, s.product_id, false).await?;
    if !product.shippable {
        return Err(AppError::conflict(
            "subscription_not_shippable",
            "the subscription's product does not ship, so it has no orders",
        ));
    }
    let now = crate::test_clocks::now_for_customer(
        &mut conn,
        scope.merchant,
        s.customer_id,
        state.now_micros(),
    )
    .await?;
    upcoming_order_of(&mut conn, scope.merchant, &s, &product, now)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "no_upcoming_order",
                format!(
                    "the subscription is {} and has no coming renewal to ship",
                    s.subscription.status
                ),
            )
        })
}

/// Refuses, in the caller's transaction, a change of the locked subscription `before`
/// into `after` at `now` (the customer's time) by `held` that would change the order of
/// its next renewal after the merchant's edit cutoff (409 `order_edit_cutoff_passed`, see
/// [`tenure_domain::order_cutoff`]). Products that do not ship have no orders to lock.
/// Actions that change what a renewal ships call it with their transition before saving
/// it. A subscriber and an agent are held; an overriding agent passes, and the cutoff is
/// returned as the limit the change exceeded, to be recorded with the override; a
/// merchant's backend is not held.
pub async fn check_order_cutoff(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    before: &StoredSubscription,
    after: &Subscription,
    now: DateTime<Utc>,
    held: PolicyActor,
) -> AppResult<Option<PolicyLimit>> {
    if held == PolicyActor::System {
        return Ok(None);
    }
    let settings = renewals_repo::settings(conn, merchant).await?.orders;
    if !settings.locked(before.subscription.current_period.end, now) {
        return Ok(None);
    }
    let product = catalog_repo::get_product(conn, merchant, before.product_id, false).await?;
    if !product.shippable {
        return Ok(None);
    }
    Ok(order_cutoff::check_as(
        &settings,
        now,
        &before.subscription,
        after,
        held,
    )?)
}

/// [`check_order_cutoff`] for a change of where the subscription ships.
pub(crate) async fn check_address_cutoff(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: &StoredSubscription,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let settings = renewals_repo::settings(conn, merchant).await?.orders;
    if !settings.locked(sub.subscription.current_period.end, now) {
        return Ok(());
    }
    let product = catalog_repo::get_product(conn, merchant, sub.product_id, false).await?;
    if product.shippable {
        order_cutoff::check_address_change(&settings, now, &sub.subscription)?;
    }
    Ok(())
}
