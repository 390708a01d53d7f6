//! Agents' overrides (`agent_overrides`): what an agent granted beyond the default
//! policy for one subscriber, with the reason and the agent; read per customer and summed
//! per agent, kind and currency for the metrics.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId, OverrideId, SubscriptionId};
use tenure_domain::money::{Currency, Money};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::agent_overrides as o;

/// One override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub id: OverrideId,
    pub customer_id: CustomerId,
    pub subscription_id: Option<SubscriptionId>,
    /// What was granted: `credit`, `discount`, `pause`, `cancel`, `plan_change`, …
    pub kind: String,
    pub reason: String,
    pub agent: String,
    /// The money granted, for credits and amount discounts.
    pub amount: Option<Money>,
    pub created_at: DateTime<Utc>,
    /// The portal-policy limits it exceeded (`max_pause_days`, …), by name.
    pub limits: Vec<String>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = o)]
struct Row {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    subscription_id: Option<uuid::Uuid>,
    kind: String,
    reason: String,
    agent: String,
    amount: Option<i64>,
    currency: Option<String>,
    created_at: DateTime<Utc>,
    limits: Vec<String>,
}

impl Row {
    fn into_domain(self) -> StoreResult<Override> {
        let amount = match (self.amount, self.currency) {
            (Some(amount), Some(code)) => {
                let currency: Currency = code
                    .parse()
                    .map_err(|_| StoreError::corrupt(format!("unknown currency {code}")))?;
                Some(Money::new(amount, currency))
            }
            _ => None,
        };
        Ok(Override {
            id: OverrideId::from_uuid(self.id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: self.subscription_id.map(SubscriptionId::from_uuid),
            kind: self.kind,
            reason: self.reason,
            agent: self.agent,
            amount,
            created_at: self.created_at,
            limits: self.limits,
        })
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    record: &Override,
) -> StoreResult<()> {
    diesel::insert_into(o::table)
        .values(Row {
            merchant_id: merchant.uuid(),
            id: record.id.uuid(),
            customer_id: record.customer_id.uuid(),
            subscription_id: record.subscription_id.map(|s| s.uuid()),
            kind: record.kind.clone(),
            reason: record.reason.clone(),
            agent: record.agent.clone(),
            amount: record.amount.map(|m| m.amount),
            currency: record.amount.map(|m| m.currency.code().to_owned()),
            created_at: record.created_at,
            limits: record.limits.clone(),
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// A page of the customer's overrides, newest first.
pub async fn of_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    page: PageRequest,
) -> StoreResult<Page<Override>> {
    let mut query = o::table
        .filter(o::merchant_id.eq(merchant.uuid()))
        .filter(o::customer_id.eq(customer.uuid()))
        .order(o::id.desc())
        .select(Row::as_select())
        .into_boxed();
    if let Some(cursor) = page.starting_after {
        query = query.filter(o::id.lt(cursor));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(Row::into_domain)
}

/// What agents granted in `[from, to)`: one row per agent, kind and currency (`None` for
/// overrides without money), with the count and the exact sum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantedTotal {
    pub agent: String,
    pub kind: String,
    pub currency: Option<String>,
    pub count: i64,
    pub amount: i64,
}

#[derive(QueryableByName)]
struct TotalRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    agent: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    currency: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    amount: i64,
}

pub async fn granted_totals(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> StoreResult<Vec<GrantedTotal>> {
    use diesel::sql_types::{Timestamptz, Uuid};
    // Sums of at most MAX_AMOUNT each: numeric in SQL, back to bigint (a sum beyond it
    // fails the cast rather than wrap).
    let rows: Vec<TotalRow> = diesel::sql_query(
        "SELECT agent, kind, currency, count(*)::int8 AS count, \
                COALESCE(sum(amount), 0)::int8 AS amount \
           FROM agent_overrides \
          WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 \
          GROUP BY agent, kind, currency \
          ORDER BY agent, kind, currency NULLS FIRST",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| GrantedTotal {
            agent: r.agent,
            kind: r.kind,
            currency: r.currency,
            count: r.count,
            amount: r.amount,
        })
        .collect())
}
