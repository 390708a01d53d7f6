//! Discounts granted to a subscription (by an accepted retention offer). The renewal
//! engine reads the active ones and adds a discount line per invoice.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{MerchantId, SubscriptionId};

use crate::error::StoreError;
use crate::schema::subscription_discounts;

pub enum DiscountValue {
    Percent(u32),
    Amount(tenure_domain::money::Money),
}

pub struct NewDiscount {
    pub subscription_id: SubscriptionId,
    pub offer_id: Option<uuid::Uuid>,
    pub value: DiscountValue,
    pub cycles: u32,
}

pub struct StoredDiscount {
    pub id: uuid::Uuid,
    pub subscription_id: SubscriptionId,
    pub offer_id: Option<uuid::Uuid>,
    pub value: DiscountValue,
    pub cycles: u32,
    pub cycles_remaining: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = subscription_discounts)]
struct DiscountRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    offer_id: Option<uuid::Uuid>,
    percent: Option<i32>,
    amount: Option<i64>,
    currency: Option<String>,
    cycles: i32,
    cycles_remaining: i32,
    created_at: DateTime<Utc>,
}

impl DiscountRow {
    fn into_stored(self) -> Result<StoredDiscount, StoreError> {
        let value = match (self.percent, self.amount, self.currency) {
            (Some(p), None, None) => {
                DiscountValue::Percent(u32::try_from(p).map_err(StoreError::corrupt)?)
            }
            (None, Some(a), Some(c)) => DiscountValue::Amount(tenure_domain::money::Money::new(
                a,
                c.parse().map_err(StoreError::corrupt)?,
            )),
            _ => {
                return Err(StoreError::corrupt(
                    "discount has neither percent nor amount",
                ));
            }
        };
        let count = |v: i32| u32::try_from(v).map_err(StoreError::corrupt);
        Ok(StoredDiscount {
            id: self.id,
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            offer_id: self.offer_id,
            value,
            cycles: count(self.cycles)?,
            cycles_remaining: count(self.cycles_remaining)?,
            created_at: self.created_at,
        })
    }
}

/// Grants a discount for the next `cycles` invoices.
pub async fn grant(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    new: NewDiscount,
    at: DateTime<Utc>,
) -> Result<StoredDiscount, StoreError> {
    let int = |v: u32| i32::try_from(v).map_err(StoreError::corrupt);
    let (percent, amount, currency) = match &new.value {
        DiscountValue::Percent(p) => (Some(int(*p)?), None, None),
        DiscountValue::Amount(m) => (None, Some(m.amount), Some(m.currency.code().to_owned())),
    };
    let row = DiscountRow {
        merchant_id: merchant.uuid(),
        id: uuid::Uuid::now_v7(),
        subscription_id: new.subscription_id.uuid(),
        offer_id: new.offer_id,
        percent,
        amount,
        currency,
        cycles: int(new.cycles)?,
        cycles_remaining: int(new.cycles)?,
        created_at: at,
    };
    let row: DiscountRow = diesel::insert_into(subscription_discounts::table)
        .values(row)
        .returning(DiscountRow::as_returning())
        .get_result(conn)
        .await?;
    row.into_stored()
}

/// The discounts of a subscription with cycles left, oldest first.
pub async fn active_for_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
) -> Result<Vec<StoredDiscount>, StoreError> {
    let rows: Vec<DiscountRow> = subscription_discounts::table
        .filter(subscription_discounts::merchant_id.eq(merchant.uuid()))
        .filter(subscription_discounts::subscription_id.eq(subscription.uuid()))
        .filter(subscription_discounts::cycles_remaining.gt(0))
        .select(DiscountRow::as_select())
        .order(subscription_discounts::id.asc())
        .load(conn)
        .await?;
    rows.into_iter().map(DiscountRow::into_stored).collect()
}
