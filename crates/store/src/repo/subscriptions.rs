//! Subscriptions and their scheduled changes.
//!
//! The domain value is stored whole as jsonb `state`; the indexed columns beside it
//! (status, customer, plan, period end) are rewritten from it on every save. Each pending
//! change (and the end of a trial) is mirrored as a `scheduled_changes` row in the same
//! transaction, so workers find due work with one indexed scan and claim it with
//! `FOR UPDATE SKIP LOCKED`.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::Uuid as SqlUuid;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{try_join, try_join_all, try_join3};
use tenure_domain::ids::{CustomerId, MerchantId, PlanId, ProductId, SubscriptionId};
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::{Subscription, SubscriptionStatus};
use tenure_domain::test_clock::WorkScope;

use crate::error::{StoreError, StoreResult};
use crate::jsonb::JsonbText;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{
    products, scheduled_changes, subscription_discounts, subscriptions, test_clocks,
};

/// A subscription with what the store keeps beside the domain value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSubscription {
    pub subscription: Subscription,
    pub customer_id: CustomerId,
    /// The product of the current plan, whose portal policy applies.
    pub product_id: ProductId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions)]
pub(crate) struct SubscriptionRow {
    pub(crate) merchant_id: uuid::Uuid,
    pub(crate) id: uuid::Uuid,
    pub(crate) customer_id: uuid::Uuid,
    pub(crate) product_id: uuid::Uuid,
    pub(crate) plan_id: uuid::Uuid,
    pub(crate) status: String,
    pub(crate) current_period_end: DateTime<Utc>,
    pub(crate) state: JsonbText,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl SubscriptionRow {
    pub(crate) fn from_domain(merchant: MerchantId, s: &StoredSubscription) -> StoreResult<Self> {
        let sub = &s.subscription;
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: sub.id.uuid(),
            customer_id: s.customer_id.uuid(),
            product_id: s.product_id.uuid(),
            plan_id: sub.plan.plan_id.uuid(),
            status: sub.status.as_str().to_owned(),
            current_period_end: sub.current_period.end,
            state: JsonbText::of(sub).map_err(StoreError::corrupt)?,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
    }

    pub(crate) fn into_domain(self) -> StoreResult<StoredSubscription> {
        let subscription: Subscription = self.state.parse().map_err(StoreError::corrupt)?;
        if subscription.status.as_str() != self.status {
            return Err(StoreError::corrupt(format!(
                "subscription {} has status {} in its row but {} in its state",
                subscription.id, self.status, subscription.status
            )));
        }
        Ok(StoredSubscription {
            subscription,
            customer_id: CustomerId::from_uuid(self.customer_id),
            product_id: ProductId::from_uuid(self.product_id),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> StoreResult<()> {
    let rows = scheduled_change_rows(merchant, &s.subscription)?;
    let shared: &AsyncPgConnection = conn;
    let insert = diesel::insert_into(subscriptions::table)
        .values(SubscriptionRow::from_domain(merchant, s)?)
        .execute(&mut &*shared);
    try_join(insert, insert_scheduled_changes(shared, rows)).await?;
    Ok(())
}

/// Saves a changed subscription: the row and its `scheduled_changes` mirror, in one round
/// trip, which may carry more (it takes a shared connection to be pipelined). Call it in a
/// transaction (every caller does): the mirror is removed and written again together
/// with the row's update, so if the update finds no row, only the rollback undoes the
/// rest.
pub async fn update(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    s: &StoredSubscription,
) -> StoreResult<()> {
    let rows = scheduled_change_rows(merchant, &s.subscription)?;
    let save = SaveRow(SubscriptionRow::from_domain(merchant, s)?).execute(&mut &*conn);
    let clear = diesel::delete(
        scheduled_changes::table
            .filter(scheduled_changes::merchant_id.eq(merchant.uuid()))
            .filter(scheduled_changes::subscription_id.eq(s.subscription.id.uuid())),
    )
    .execute(&mut &*conn);
    // Sent in argument order, so the removal reaches PostgreSQL before the new rows:
    // diesel-async sends a statement when its future is first polled, and prepares an
    // uncached one under its statement-cache lock, which queues the ones polled after it.
    let (saved, _, ()) = try_join3(save, clear, insert_scheduled_changes(conn, rows)).await?;
    if saved == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// `UPDATE subscriptions SET … WHERE (merchant_id, id) = …` for a whole row, written out
/// so that the connection keeps it prepared: diesel re-prepares every `UPDATE` it builds
/// (its `SET` list may vary with the values), and this one runs on every change of every
/// subscription.
#[derive(QueryId)]
struct SaveRow(SubscriptionRow);

impl QueryFragment<Pg> for SaveRow {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Jsonb, Text, Timestamptz};
        let row = &self.0;
        out.push_sql("UPDATE subscriptions SET customer_id = ");
        out.push_bind_param::<SqlUuid, _>(&row.customer_id)?;
        out.push_sql(", product_id = ");
        out.push_bind_param::<SqlUuid, _>(&row.product_id)?;
        out.push_sql(", plan_id = ");
        out.push_bind_param::<SqlUuid, _>(&row.plan_id)?;
        out.push_sql(", status = ");
        out.push_bind_param::<Text, _>(&row.status)?;
        out.push_sql(", current_period_end = ");
        out.push_bind_param::<Timestamptz, _>(&row.current_period_end)?;
        out.push_sql(", state = ");
        out.push_bind_param::<Jsonb, _>(&row.state)?;
        out.push_sql(", created_at = ");
        out.push_bind_param::<Timestamptz, _>(&row.created_at)?;
        out.push_sql(", updated_at = ");
        out.push_bind_param::<Timestamptz, _>(&row.updated_at)?;
        out.push_sql(" WHERE merchant_id = ");
        out.push_bind_param::<SqlUuid, _>(&row.merchant_id)?;
        out.push_sql(" AND id = ");
        out.push_bind_param::<SqlUuid, _>(&row.id)?;
        Ok(())
    }
}

/// A row of the `scheduled_changes` mirror.
struct ScheduledChangeRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    kind: &'static str,
    due_at: DateTime<Utc>,
    payload: serde_json::Value,
}

/// The `scheduled_changes` rows of a subscription's state: its scheduled changes, and
/// the end of its trial while it is trialing.
fn scheduled_change_rows(
    merchant: MerchantId,
    sub: &Subscription,
) -> StoreResult<Vec<ScheduledChangeRow>> {
    let mut rows = Vec::with_capacity(sub.scheduled_changes.len() + 1);
    for change in &sub.scheduled_changes {
        rows.push(ScheduledChangeRow {
            merchant_id: merchant.uuid(),
            id: change.id.uuid(),
            subscription_id: sub.id.uuid(),
            kind: change.kind.change_type().as_str(),
            due_at: change.due_at,
            payload: serde_json::to_value(change).map_err(StoreError::corrupt)?,
        });
    }
    if sub.status == SubscriptionStatus::Trialing
        && let Some(trial_end) = sub.trial_end
    {
        rows.push(ScheduledChangeRow {
            merchant_id: merchant.uuid(),
            id: uuid::Uuid::now_v7(),
            subscription_id: sub.id.uuid(),
            kind: "trial_end",
            due_at: trial_end,
            payload: serde_json::json!({"trial_end": trial_end}),
        });
    }
    Ok(rows)
}

/// Inserts mirror rows one statement each, all sent at once: a one-row insert of a tuple
/// stays prepared on the connection, where diesel prepares a multi-row one, or one of
/// a derived `Insertable`, again every time.
async fn insert_scheduled_changes(
    conn: &AsyncPgConnection,
    rows: Vec<ScheduledChangeRow>,
) -> QueryResult<()> {
    try_join_all(rows.into_iter().map(|row| async move {
        diesel::insert_into(scheduled_changes::table)
            .values((
                scheduled_changes::merchant_id.eq(row.merchant_id),
                scheduled_changes::id.eq(row.id),
                scheduled_changes::subscription_id.eq(row.subscription_id),
                scheduled_changes::kind.eq(row.kind),
                scheduled_changes::due_at.eq(row.due_at),
                scheduled_changes::payload.eq(row.payload),
            ))
            .execute(&mut &*conn)
            .await
    }))
    .await?;
    Ok(())
}

/// Reads a subscription; with `for_update` the row stays locked until the transaction
/// ends.
pub async fn get(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
    for_update: bool,
) -> StoreResult<StoredSubscription> {
    let query = subscriptions::table
        .find((merchant.uuid(), id.uuid()))
        .select(SubscriptionRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

/// A subscription locked for a change, with what the change and its response need.
#[derive(Clone, Debug)]
pub struct LockedForChange {
    pub subscription: StoredSubscription,
    /// The portal policy of its product (read, not locked).
    pub policy: PortalPolicy,
    /// Whether it has a discount still to apply, as [`PortalRead::has_discounts`].
    pub has_discounts: bool,
    /// The time of its customer's test clock, if the customer is on one: read with the
    /// row, so that the many subscriptions without a clock cost no statement of their own.
    pub clock_time: Option<DateTime<Utc>>,
}

/// Locks a subscription for a change, then reads its product's portal policy, whether it
/// has discounts and its test clock's time: two statements sent in one round trip. Not one
/// statement: under READ COMMITTED, a `SELECT … FOR UPDATE` that waited for the lock
/// returns the row as the holder committed it, but its subqueries still see the snapshot
/// from before the wait (a policy changed or a discount granted meanwhile would be missed). The second
/// statement starts after the lock is granted, so it sees them. The product row is read,
/// not locked. Call it in a transaction: outside one, the lock ends with its statement.
pub async fn lock_with_policy(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> StoreResult<LockedForChange> {
    let locked = subscriptions::table
        .find((merchant.uuid(), id.uuid()))
        .select(SubscriptionRow::as_select())
        .for_update()
        .get_result::<SubscriptionRow>(&mut &*conn);
    let policy = products::table
        .filter(products::merchant_id.eq(subscriptions::merchant_id))
        .filter(products::id.eq(subscriptions::product_id))
        .select(products::portal_policy)
        .single_value();
    let clock_time = test_clocks::table
        .filter(test_clocks::merchant_id.eq(subscriptions::merchant_id))
        .filter(test_clocks::id.nullable().eq(subscriptions::test_clock_id))
        .select(test_clocks::frozen_time)
        .single_value();
    let context = subscriptions::table
        .find((merchant.uuid(), id.uuid()))
        .select((policy, diesel::dsl::exists(active_discounts()), clock_time))
        .get_result::<(Option<serde_json::Value>, bool, Option<DateTime<Utc>>)>(&mut &*conn);
    // `try_join` sends and polls in argument order: the lock is taken first, and its own
    // error (a deadlock, say) is the one returned, not the aborted transaction it leaves
    // for the second statement.
    let (row, (policy, has_discounts, clock_time)) = try_join(locked, context).await?;
    let policy = policy.ok_or_else(|| {
        StoreError::corrupt(format!(
            "subscription {id} has no product to read a policy from"
        ))
    })?;
    Ok(LockedForChange {
        subscription: row.into_domain()?,
        policy: serde_json::from_value(policy).map_err(StoreError::corrupt)?,
        has_discounts,
        clock_time,
    })
}

/// The subscription's discounts with cycles left, correlated with the outer query's
/// subscription row.
#[diesel::dsl::auto_type(no_type_alias)]
fn active_discounts() -> _ {
    subscription_discounts::table
        .filter(subscription_discounts::merchant_id.eq(subscriptions::merchant_id))
        .filter(subscription_discounts::subscription_id.eq(subscriptions::id))
        .filter(subscription_discounts::cycles_remaining.gt(0_i32))
}

/// A subscription as the portal reads it: with whether it has discounts to list.
#[derive(Clone, Debug)]
pub struct PortalRead {
    pub subscription: StoredSubscription,
    /// Whether it has a discount still to apply: most have none, and then the portal
    /// needs no second statement to list them.
    pub has_discounts: bool,
}

/// Reads a [`PortalRead`] in one statement: a primary-key read with an `EXISTS` on its
/// discounts. Built from diesel's DSL without SQL literals, so the connection keeps it
/// prepared: the portal reads this on every page view, and re-parsing and re-planning it
/// each time cost PostgreSQL more than running it. (The product's terms come from
/// `api::service::portal_terms`.)
pub async fn get_for_portal(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> StoreResult<PortalRead> {
    let (row, has_discounts) = subscriptions::table
        .find((merchant.uuid(), id.uuid()))
        .select((
            SubscriptionRow::as_select(),
            diesel::dsl::exists(active_discounts()),
        ))
        .get_result::<(SubscriptionRow, bool)>(&mut &*conn)
        .await?;
    Ok(PortalRead {
        subscription: row.into_domain()?,
        has_discounts,
    })
}

/// Locks a subscription unless another transaction holds it (`None` then).
pub async fn lock_if_free(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: SubscriptionId,
) -> StoreResult<Option<StoredSubscription>> {
    subscriptions::table
        .find((merchant.uuid(), id.uuid()))
        .select(SubscriptionRow::as_select())
        .for_update()
        .skip_locked()
        .get_result(conn)
        .await
        .optional()?
        .map(SubscriptionRow::into_domain)
        .transpose()
}

#[derive(Debug, Default, Clone)]
pub struct SubscriptionFilter {
    pub status: Option<SubscriptionStatus>,
    pub customer: Option<CustomerId>,
    pub plan: Option<PlanId>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &SubscriptionFilter,
    page: PageRequest,
) -> StoreResult<Page<StoredSubscription>> {
    let mut query = subscriptions::table
        .filter(subscriptions::merchant_id.eq(merchant.uuid()))
        .select(SubscriptionRow::as_select())
        .order(subscriptions::id.desc())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(subscriptions::status.eq(status.as_str()));
    }
    if let Some(customer) = filter.customer {
        query = query.filter(subscriptions::customer_id.eq(customer.uuid()));
    }
    if let Some(plan) = filter.plan {
        query = query.filter(subscriptions::plan_id.eq(plan.uuid()));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(subscriptions::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(SubscriptionRow::into_domain)
}

/// Claims one scheduled-change row due at `now` that no other worker holds and that is
/// not in `skip`, locking it until the transaction ends. Returns the row's id and its
/// subscription. This is the only cross-tenant query: workers serve every merchant.
pub async fn claim_due_change(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(uuid::Uuid, MerchantId, SubscriptionId)>> {
    let row: Option<(uuid::Uuid, uuid::Uuid, uuid::Uuid)> = scheduled_changes::table
        .filter(scheduled_changes::due_at.le(now))
        .filter(diesel::dsl::not(scheduled_changes::id.eq_any(skip)))
        .filter(crate::repo::test_clocks::scheduled_changes_in(scope))
        .select((
            scheduled_changes::id,
            scheduled_changes::merchant_id,
            scheduled_changes::subscription_id,
        ))
        .order(scheduled_changes::due_at.asc())
        .limit(1)
        .for_update()
        .skip_locked()
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|(id, merchant, sub)| {
        (
            id,
            MerchantId::from_uuid(merchant),
            SubscriptionId::from_uuid(sub),
        )
    }))
}

/// Claims one `incomplete` subscription signed up at or before `signed_up_by` that no
/// other transaction holds and that is not in `skip`, locking it until the transaction
/// ends: a signup whose first payment did not come in time. Cross-tenant, like the
/// other workers' claims (the partial index `subscriptions_incomplete_created`), kept to
/// the subscriptions of `scope`.
pub async fn claim_expired_incomplete(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    signed_up_by: DateTime<Utc>,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, StoredSubscription)>> {
    let row: Option<SubscriptionRow> = subscriptions::table
        .filter(subscriptions::status.eq(SubscriptionStatus::Incomplete.as_str()))
        .filter(subscriptions::created_at.le(signed_up_by))
        .filter(crate::repo::test_clocks::subscriptions_in(scope))
        .filter(diesel::dsl::not(subscriptions::id.eq_any(skip)))
        .select(SubscriptionRow::as_select())
        .order(subscriptions::created_at.asc())
        .limit(1)
        .for_update()
        .skip_locked()
        .get_result(conn)
        .await
        .optional()?;
    row.map(|r| {
        let merchant = MerchantId::from_uuid(r.merchant_id);
        r.into_domain().map(|s| (merchant, s))
    })
    .transpose()
}

/// Inserts many new subscriptions of one merchant, several thousand per statement
/// (seeding tests and benchmarks). None may have scheduled changes yet.
pub async fn insert_many(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subs: &[StoredSubscription],
) -> StoreResult<()> {
    if subs
        .iter()
        .any(|s| !s.subscription.scheduled_changes.is_empty())
    {
        return Err(StoreError::corrupt(
            "insert_many takes subscriptions without scheduled changes",
        ));
    }
    let rows = subs
        .iter()
        .map(|s| SubscriptionRow::from_domain(merchant, s))
        .collect::<StoreResult<Vec<_>>>()?;
    // PostgreSQL takes at most 65535 bind parameters per statement (10 per row here).
    for chunk in rows.chunks(5000) {
        diesel::insert_into(subscriptions::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SaveRow` lists the columns by hand; a column `SubscriptionRow` gains must be
    /// saved too, or every change would silently drop it.
    #[test]
    fn save_row_writes_every_column_the_row_reads() {
        let now = Utc::now();
        let row = SubscriptionRow {
            merchant_id: uuid::Uuid::nil(),
            id: uuid::Uuid::nil(),
            customer_id: uuid::Uuid::nil(),
            product_id: uuid::Uuid::nil(),
            plan_id: uuid::Uuid::nil(),
            status: "active".into(),
            current_period_end: now,
            state: JsonbText("null".into()),
            created_at: now,
            updated_at: now,
        };
        let select = diesel::debug_query::<Pg, _>(
            &subscriptions::table.select(SubscriptionRow::as_select()),
        )
        .to_string();
        let save = diesel::debug_query::<Pg, _>(&SaveRow(row)).to_string();
        let columns: Vec<&str> = select
            .split("\"subscriptions\".\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(columns.len(), 10, "{select}");
        for column in columns {
            assert!(
                save.contains(&format!(" {column} = ")),
                "SaveRow does not write {column}: {save}"
            );
        }
    }
}
