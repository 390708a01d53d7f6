//! A customer's payment methods: attach (gateway tokens only, never card numbers), list,
//! set the default (which retries the customer's open invoices), detach.
//!
//! Payment-method changes of one customer are serialised by locking the customer row, so
//! "at most one default" and "not the last one while a subscription renews" hold under
//! concurrent requests.

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::billing::gateway::{CardDetails, customer_token};
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::ids::{CustomerId, GenerateId, MerchantId, PaymentMethodId};
use tenure_store::repo::{customers, payment_methods as repo};

use crate::App;
use crate::billing::gateways;
use crate::dto::billing::{AttachPaymentMethod, PaymentMethodDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

const TOKEN_MAX: usize = 255;

async fn pm_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    pm: &PaymentMethod,
    before: Option<&PaymentMethod>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let before = before.map(|b| PaymentMethodDto::render(b, at));
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "payment_method",
            resource_id: pm.id.to_string(),
            after: &PaymentMethodDto::render(pm, at),
            before: before.as_ref(),
            at,
        },
    )
    .await
}

/// Locks the customer (404 when it is not this merchant's).
async fn lock_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<()> {
    customers::get(conn, merchant, customer, true)
        .await
        .map_err(AppError::from_store("customer"))?;
    Ok(())
}

/// Makes `pm` the default, recording `payment_method.updated` for the method that loses
/// the flag and (unless it was just attached) for `pm`.
async fn make_default(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    pm: &mut PaymentMethod,
    at: DateTime<Utc>,
    record_self: bool,
) -> AppResult<()> {
    if pm.is_default {
        return Ok(());
    }
    if let Some(previous) = repo::clear_default(conn, merchant, pm.customer_id).await? {
        let mut after = repo::get(conn, merchant, pm.customer_id, previous, false).await?;
        let mut before = after.clone();
        before.is_default = true;
        after.is_default = false;
        pm_event(
            conn,
            merchant,
            "payment_method.updated",
            &after,
            Some(&before),
            at,
        )
        .await?;
    }
    repo::set_default(conn, merchant, pm.id).await?;
    let before = pm.clone();
    pm.is_default = true;
    if record_self {
        pm_event(
            conn,
            merchant,
            "payment_method.updated",
            pm,
            Some(&before),
            at,
        )
        .await?;
    }
    Ok(())
}

/// The token to keep and the card behind what the caller gave. The sandbox takes its
/// tokens as they are. A gateway with customers (Stripe) takes a payment method id
/// (`pm_…`, from a setup intent the frontend confirmed) that belongs to this customer's
/// gateway customer, or to none yet (then it is attached to it); one that belongs to
/// another customer is refused.
async fn gateway_card(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    token: &str,
) -> AppResult<(String, CardDetails)> {
    let gateway = gateways::resolve_alone(state, merchant).await?;
    let Some(collection) = gateway.card_collection() else {
        let card = gateway.gateway.card_details(token).await.ok_or_else(|| {
            AppError::field(
                "token",
                format!(
                    "is not a payment method token known to the {} gateway",
                    gateway.gateway.name()
                ),
            )
        })?;
        return Ok((token.to_owned(), card));
    };
    if !token.starts_with("pm_")
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(AppError::field(
            "token",
            "must be a payment method id (pm_…) from a confirmed setup intent",
        ));
    }
    let customer_ref =
        gateways::ensure_gateway_customer(state, &gateway, merchant, customer).await?;
    let found = collection
        .payment_method(token)
        .await
        .map_err(gateways::gateway_error)?
        .ok_or_else(|| AppError::field("token", "is not a payment method known to the gateway"))?;
    let card = match found.customer_ref.as_deref() {
        Some(owner) if owner == customer_ref => found.card,
        Some(_) => {
            return Err(AppError::field(
                "token",
                "belongs to another customer at the gateway",
            ));
        }
        None => {
            collection
                .attach_payment_method(token, &customer_ref)
                .await
                .map_err(gateways::gateway_error)?
                .card
        }
    };
    Ok((customer_token(&customer_ref, token), card))
}

/// Attaches a card by gateway token to a customer.
pub async fn attach(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    input: AttachPaymentMethod,
) -> AppResult<PaymentMethod> {
    let token = input.token.trim();
    if token.is_empty() || token.len() > TOKEN_MAX {
        return Err(AppError::field(
            "token",
            format!("must be 1 to {TOKEN_MAX} characters"),
        ));
    }
    let (token, card) = gateway_card(state, merchant, customer, token).await?;
    let token = token.as_str();
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_customer(&mut conn, merchant, customer, state.now()).await?;
    let pm = conn
        .transaction(async |conn| {
            let locked = customers::get(conn, merchant, customer, true)
                .await
                .map_err(AppError::from_store("customer"))?;
            locked.ensure_not_erased()?;
            let existing = repo::list_for_customer(conn, merchant, customer).await?;
            let mut pm = PaymentMethod {
                id: PaymentMethodId::generate(),
                customer_id: customer,
                gateway_token: token.to_owned(),
                card,
                is_default: false,
                created_at: now,
                detached_at: None,
            };
            repo::insert(conn, merchant, &pm).await?;
            if existing.is_empty() || input.set_default == Some(true) {
                make_default(conn, merchant, &mut pm, now, false).await?;
            }
            pm_event(conn, merchant, "payment_method.attached", &pm, None, now).await?;
            Ok::<_, AppError>(pm)
        })
        .await?;
    // Back to the pool before the retry takes one: a worker's pool may hold one connection.
    drop(conn);
    if pm.is_default {
        crate::billing::charging::retry_open_invoices(state, merchant, customer).await;
    }
    Ok(pm)
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
) -> AppResult<Vec<PaymentMethod>> {
    let mut conn = state.db.conn().await?;
    customers::get(&mut conn, merchant, customer, false)
        .await
        .map_err(AppError::from_store("customer"))?;
    Ok(repo::list_for_customer(&mut conn, merchant, customer).await?)
}

pub async fn set_default(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    id: PaymentMethodId,
) -> AppResult<PaymentMethod> {
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_customer(&mut conn, merchant, customer, state.now()).await?;
    let pm = conn
        .transaction(async |conn| {
            lock_customer(conn, merchant, customer).await?;
            let mut pm = repo::get(conn, merchant, customer, id, true)
                .await
                .map_err(AppError::from_store("payment_method"))?;
            make_default(conn, merchant, &mut pm, now, true).await?;
            Ok::<_, AppError>(pm)
        })
        .await?;
    drop(conn);
    crate::billing::charging::retry_open_invoices(state, merchant, customer).await;
    Ok(pm)
}

/// Removes a payment method. The last one cannot go while the customer has a renewing
/// subscription; when the default goes, the newest remaining one becomes the default.
pub async fn detach(
    state: &App,
    merchant: MerchantId,
    customer: CustomerId,
    id: PaymentMethodId,
) -> AppResult<PaymentMethod> {
    let mut conn = state.db.conn().await?;
    let now =
        crate::test_clocks::now_for_customer(&mut conn, merchant, customer, state.now()).await?;
    conn.transaction(async |conn| {
        lock_customer(conn, merchant, customer).await?;
        let pm = repo::get(conn, merchant, customer, id, true)
            .await
            .map_err(AppError::from_store("payment_method"))?;
        let others: Vec<PaymentMethod> = repo::list_for_customer(conn, merchant, customer)
            .await?
            .into_iter()
            .filter(|other| other.id != pm.id)
            .collect();
        if others.is_empty()
            && repo::customer_has_renewing_subscription(conn, merchant, customer).await?
        {
            return Err(AppError::conflict(
                "last_payment_method",
                "the customer's last payment method cannot be removed while a subscription \
                 renews; add another one first",
            ));
        }
        repo::detach(conn, merchant, pm.id, now).await?;
        let mut detached = pm.clone();
        detached.is_default = false;
        detached.detached_at = Some(now);
        pm_event(
            conn,
            merchant,
            "payment_method.detached",
            &detached,
            None,
            now,
        )
        .await?;
        if pm.is_default
            && let Some(next) = others.into_iter().next()
        {
            let mut next = next;
            make_default(conn, merchant, &mut next, now, true).await?;
        }
        Ok(detached)
    })
    .await
}
