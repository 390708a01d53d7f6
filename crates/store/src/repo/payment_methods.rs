//! Payment methods: gateway tokens with the card's brand, last4 and expiry. At most one
//! attached method per customer is the default (partial unique index).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::billing::gateway::CardDetails;
use tenure_domain::billing::payment_method::PaymentMethod;
use tenure_domain::ids::{CustomerId, MerchantId, PaymentMethodId};

use crate::error::{StoreError, StoreResult};
use crate::schema::payment_methods;

/// The index that allows one default payment method per customer.
pub const ONE_DEFAULT: &str = "payment_methods_one_default";

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = payment_methods)]
struct PaymentMethodRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    gateway_token: String,
    brand: String,
    last4: String,
    exp_month: i32,
    exp_year: i32,
    is_default: bool,
    created_at: DateTime<Utc>,
    detached_at: Option<DateTime<Utc>>,
}

impl PaymentMethodRow {
    fn from_domain(merchant: MerchantId, pm: &PaymentMethod) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: pm.id.uuid(),
            customer_id: pm.customer_id.uuid(),
            gateway_token: pm.gateway_token.clone(),
            brand: pm.card.brand.clone(),
            last4: pm.card.last4.clone(),
            exp_month: i32::try_from(pm.card.exp_month)
                .map_err(|_| StoreError::corrupt("exp_month out of range"))?,
            exp_year: pm.card.exp_year,
            is_default: pm.is_default,
            created_at: pm.created_at,
            detached_at: pm.detached_at,
        })
    }

    fn into_domain(self) -> StoreResult<PaymentMethod> {
        Ok(PaymentMethod {
            id: PaymentMethodId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            gateway_token: self.gateway_token,
            card: CardDetails {
                brand: self.brand,
                last4: self.last4,
                exp_month: u32::try_from(self.exp_month)
                    .map_err(|_| StoreError::corrupt("negative exp_month"))?,
                exp_year: self.exp_year,
            },
            is_default: self.is_default,
            created_at: self.created_at,
            detached_at: self.detached_at,
        })
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    pm: &PaymentMethod,
) -> StoreResult<()> {
    diesel::insert_into(payment_methods::table)
        .values(PaymentMethodRow::from_domain(merchant, pm)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// An attached payment method of one customer; detached ones are not found.
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    id: PaymentMethodId,
    for_update: bool,
) -> StoreResult<PaymentMethod> {
    let query = payment_methods::table
        .find((merchant.uuid(), id.uuid()))
        .filter(payment_methods::customer_id.eq(customer.uuid()))
        .filter(payment_methods::detached_at.is_null())
        .select(PaymentMethodRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

/// The attached payment methods of a customer, newest first. A customer has few, so the
/// list is not paged.
pub async fn list_for_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<PaymentMethod>> {
    payment_methods::table
        .filter(payment_methods::merchant_id.eq(merchant.uuid()))
        .filter(payment_methods::customer_id.eq(customer.uuid()))
        .filter(payment_methods::detached_at.is_null())
        .order(payment_methods::id.desc())
        .select(PaymentMethodRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(PaymentMethodRow::into_domain)
        .collect()
}

/// Every payment method the customer ever had, detached ones included, newest first
/// (for the GDPR export).
pub async fn list_all_for_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Vec<PaymentMethod>> {
    payment_methods::table
        .filter(payment_methods::merchant_id.eq(merchant.uuid()))
        .filter(payment_methods::customer_id.eq(customer.uuid()))
        .order(payment_methods::id.desc())
        .select(PaymentMethodRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(PaymentMethodRow::into_domain)
        .collect()
}

/// The customer's default payment method, if any.
pub async fn default_for_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Option<PaymentMethod>> {
    payment_methods::table
        .filter(payment_methods::merchant_id.eq(merchant.uuid()))
        .filter(payment_methods::customer_id.eq(customer.uuid()))
        .filter(payment_methods::is_default)
        .select(PaymentMethodRow::as_select())
        .first(conn)
        .await
        .optional()?
        .map(PaymentMethodRow::into_domain)
        .transpose()
}

/// The gateway token of one of the merchant's payment methods, detached or not: a charge
/// prepared with it is sent again with it after a crash, so that the gateway replays it.
pub async fn token_of(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: PaymentMethodId,
) -> StoreResult<String> {
    Ok(payment_methods::table
        .find((merchant.uuid(), id.uuid()))
        .select(payment_methods::gateway_token)
        .get_result(conn)
        .await?)
}

/// The default payment methods of several customers (one query; customers without one
/// are absent).
pub async fn defaults_for_customers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customers: &[CustomerId],
) -> StoreResult<Vec<PaymentMethod>> {
    let ids: Vec<uuid::Uuid> = customers.iter().map(|c| c.uuid()).collect();
    payment_methods::table
        .filter(payment_methods::merchant_id.eq(merchant.uuid()))
        .filter(payment_methods::customer_id.eq_any(ids))
        .filter(payment_methods::is_default)
        .select(PaymentMethodRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(PaymentMethodRow::into_domain)
        .collect()
}

/// Clears the customer's default flag (before another method becomes the default).
/// Returns the id of the method that was the default, if any.
pub async fn clear_default(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<Option<PaymentMethodId>> {
    let ids: Vec<uuid::Uuid> = diesel::update(
        payment_methods::table
            .filter(payment_methods::merchant_id.eq(merchant.uuid()))
            .filter(payment_methods::customer_id.eq(customer.uuid()))
            .filter(payment_methods::is_default),
    )
    .set(payment_methods::is_default.eq(false))
    .returning(payment_methods::id)
    .get_results(conn)
    .await?;
    Ok(ids.into_iter().next().map(PaymentMethodId::from_uuid))
}

pub async fn set_default(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: PaymentMethodId,
) -> StoreResult<()> {
    let n = diesel::update(payment_methods::table.find((merchant.uuid(), id.uuid())))
        .filter(payment_methods::detached_at.is_null())
        .set(payment_methods::is_default.eq(true))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn detach(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: PaymentMethodId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let n = diesel::update(payment_methods::table.find((merchant.uuid(), id.uuid())))
        .filter(payment_methods::detached_at.is_null())
        .set((
            payment_methods::is_default.eq(false),
            payment_methods::detached_at.eq(Some(at)),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Whether the customer has a subscription that will bill again (trialing, active,
/// past_due, or paused and due to resume) and therefore needs a payment method on file.
/// Callers run it inside the transaction that holds the customer's payment-method locks.
pub async fn customer_has_renewing_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
) -> StoreResult<bool> {
    use crate::schema::subscriptions;
    let found = diesel::select(diesel::dsl::exists(
        subscriptions::table
            .filter(subscriptions::merchant_id.eq(merchant.uuid()))
            .filter(subscriptions::customer_id.eq(customer.uuid()))
            .filter(subscriptions::status.eq_any(["trialing", "active", "past_due", "paused"])),
    ))
    .get_result(conn)
    .await?;
    Ok(found)
}
