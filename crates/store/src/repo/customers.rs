//! Customers.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::context::Segment;
use tenure_domain::customer::{ChannelPreference, Customer};
use tenure_domain::ids::{CustomerId, MerchantId, TestClockId};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{customer_tags, customers};

// The whole row is written on update, so a field set to None must become NULL (diesel
// would skip it otherwise, and a cleared e-mail or an erasure would not stick).
#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = customers, treat_none_as_null = true)]
struct CustomerRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    external_id: String,
    email: Option<String>,
    name: Option<String>,
    locale: Option<String>,
    metadata: serde_json::Value,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    erased_at: Option<DateTime<Utc>>,
    test_clock_id: Option<uuid::Uuid>,
    channel_preference: String,
}

impl CustomerRow {
    fn from_domain(merchant: MerchantId, c: &Customer) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            id: c.id.uuid(),
            external_id: c.external_id.clone(),
            email: c.email.clone(),
            name: c.name.clone(),
            locale: c.locale.clone(),
            metadata: serde_json::Value::Object(c.metadata.clone()),
            tags: c.tags.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            erased_at: c.erased_at,
            test_clock_id: c.test_clock_id.map(|t| t.uuid()),
            channel_preference: c.channel_preference.as_str().to_owned(),
        }
    }

    fn into_domain(self) -> StoreResult<Customer> {
        let serde_json::Value::Object(metadata) = self.metadata else {
            return Err(StoreError::corrupt("customer metadata is not an object"));
        };
        let channel_preference = ChannelPreference::parse(&self.channel_preference)
            .map_err(|_| StoreError::corrupt("unknown customer channel_preference"))?;
        Ok(Customer {
            id: CustomerId::from_uuid(self.id),
            external_id: self.external_id,
            email: self.email,
            name: self.name,
            locale: self.locale,
            metadata,
            tags: self.tags,
            created_at: self.created_at,
            updated_at: self.updated_at,
            erased_at: self.erased_at,
            test_clock_id: self.test_clock_id.map(TestClockId::from_uuid),
            channel_preference,
        })
    }
}

/// The name of the constraint that keeps `external_id` unique per merchant.
pub const EXTERNAL_ID_UNIQUE: &str = "customers_external_id_unique";

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: &Customer,
) -> StoreResult<()> {
    diesel::insert_into(customers::table)
        .values(CustomerRow::from_domain(merchant, customer))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: &Customer,
) -> StoreResult<()> {
    let n = diesel::update(customers::table.find((merchant.uuid(), customer.id.uuid())))
        .set(CustomerRow::from_domain(merchant, customer))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: CustomerId,
    for_update: bool,
) -> StoreResult<Customer> {
    let query = customers::table
        .find((merchant.uuid(), id.uuid()))
        .select(CustomerRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

pub async fn get_by_external_id(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    external_id: &str,
) -> StoreResult<Customer> {
    customers::table
        .filter(customers::merchant_id.eq(merchant.uuid()))
        .filter(customers::external_id.eq(external_id))
        .select(CustomerRow::as_select())
        .get_result(conn)
        .await?
        .into_domain()
}

#[derive(Debug, Default, Clone)]
pub struct CustomerFilter {
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub tag: Option<String>,
    /// Customers in this segment at the given time (see [`segment_predicate`]).
    pub segment: Option<(Segment, DateTime<Utc>)>,
}

/// The SQL form of `tenure_domain::context::segments` for one segment, so lists can
/// filter by a segment that is computed on read. The e2e tests check that both agree.
fn segment_predicate(
    segment: Segment,
    now: DateTime<Utc>,
) -> Box<dyn BoxableExpression<customers::table, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>>
{
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Timestamptz};
    let body = match segment {
        Segment::New => "customers.created_at > $NOW::timestamptz - interval '30 days'",
        Segment::Loyal => "customers.created_at <= $NOW::timestamptz - interval '365 days'",
        Segment::HighLtv => {
            "EXISTS (SELECT 1 FROM segment_settings ss WHERE ss.merchant_id = customers.merchant_id
               AND COALESCE((SELECT sum(p.amount) FROM payments p WHERE p.merchant_id = customers.merchant_id
                   AND p.customer_id = customers.id AND p.status = 'succeeded' AND p.currency = ss.currency), 0)
                 - COALESCE((SELECT sum(r.amount) FROM refunds r JOIN payments p
                   ON p.merchant_id = r.merchant_id AND p.id = r.payment_id
                   WHERE r.merchant_id = customers.merchant_id AND p.customer_id = customers.id
                     AND r.currency = ss.currency), 0)
                 >= ss.high_ltv_threshold)"
        }
        Segment::AtRisk => {
            "(EXISTS (SELECT 1 FROM cancellation_requests c WHERE c.merchant_id = customers.merchant_id
                  AND c.customer_id = customers.id AND c.status = 'pending')
              OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.merchant_id = customers.merchant_id
                  AND s.customer_id = customers.id AND s.status IN ('past_due', 'unpaid'))
              OR EXISTS (SELECT 1 FROM payments p WHERE p.merchant_id = customers.merchant_id
                  AND p.customer_id = customers.id AND p.status IN ('declined', 'failed')
                  AND p.created_at >= $NOW::timestamptz - interval '30 days')
              OR EXISTS (SELECT 1 FROM payment_methods pm WHERE pm.merchant_id = customers.merchant_id
                  AND pm.customer_id = customers.id AND pm.is_default
                  AND make_timestamptz(pm.exp_year, pm.exp_month, 1, 0, 0, 0, 'UTC') + interval '1 month'
                      <= $NOW::timestamptz + interval '30 days'))"
        }
        Segment::Paused => {
            "EXISTS (SELECT 1 FROM subscriptions s WHERE s.merchant_id = customers.merchant_id
                AND s.customer_id = customers.id AND s.status = 'paused')"
        }
        Segment::Churned => {
            "(EXISTS (SELECT 1 FROM subscriptions s WHERE s.merchant_id = customers.merchant_id
                 AND s.customer_id = customers.id)
              AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.merchant_id = customers.merchant_id
                 AND s.customer_id = customers.id AND s.status <> 'canceled'))"
        }
    };
    // The time is bound once, as the column of a one-row subquery the predicate reads.
    let body = body.replace("$NOW::timestamptz", "seg_now.t");
    Box::new(
        sql::<Bool>("(SELECT ")
            .sql(&body)
            .sql(" FROM (SELECT ")
            .bind::<Timestamptz, _>(now)
            .sql("::timestamptz AS t) seg_now)"),
    )
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &CustomerFilter,
    page: PageRequest,
) -> StoreResult<Page<Customer>> {
    let mut query = customers::table
        .filter(customers::merchant_id.eq(merchant.uuid()))
        .select(CustomerRow::as_select())
        .order(customers::id.desc())
        .into_boxed();
    if let Some(email) = &filter.email {
        query = query.filter(customers::email.eq(email));
    }
    if let Some(external_id) = &filter.external_id {
        query = query.filter(customers::external_id.eq(external_id));
    }
    if let Some(tag) = &filter.tag {
        // The tag's customers from `customer_tags` (kept from `customers.tags` by
        // triggers), newest first from its primary key, with the page's boundary in the
        // range: PostgreSQL turns the unique subquery into a join driven by that range
        // scan, so a page costs its rows whatever share of the customers carry the tag
        // (docs/scaling.md, "Customers by tag").
        let mut tagged = customer_tags::table
            .filter(customer_tags::merchant_id.eq(merchant.uuid()))
            .filter(customer_tags::tag.eq(tag))
            .select(customer_tags::customer_id)
            .into_boxed();
        if let Some(after) = page.starting_after {
            tagged = tagged.filter(customer_tags::customer_id.lt(after));
        }
        query = query.filter(customers::id.eq_any(tagged));
    }
    if let Some((segment, now)) = filter.segment {
        query = query.filter(segment_predicate(segment, now));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(customers::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(CustomerRow::into_domain)
}
