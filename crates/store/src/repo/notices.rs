//! The markers of the notices the engine sends once each: `subscription.access_ending`
//! (per subscription and end of access, `subscriptions.access_ending_notice_for`) and
//! `payment_method.expiring` (per card, `payment_methods.expiring_notice_sent_at`).
//!
//! The claim queries are cross-tenant reads like the renewal engine's: each returns one
//! row locked with `FOR UPDATE SKIP LOCKED`, so any number of workers share the work.
//! They only narrow the candidates through their partial indexes (migration 000023); the
//! domain decides whether a notice is due.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Timestamptz, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{CustomerId, MerchantId, PaymentMethodId, SubscriptionId};
use tenure_domain::test_clock::WorkScope;

use crate::error::StoreResult;

#[derive(QueryableByName)]
struct ClaimedSubscription {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
}

/// Claims one subscription (not `unpaid`) whose `access_until` lies in `(now, until]`
/// and whose notice for that instant has not been sent.
pub async fn claim_access_ending(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, SubscriptionId)>> {
    // The expression and the predicate repeat the index's, so that it serves the scan.
    let row: Option<ClaimedSubscription> = diesel::sql_query(format!(
        "SELECT s.merchant_id, s.id FROM subscriptions s \
         WHERE tenure_state_instant(s.state ->> 'access_until') > $1 \
           AND tenure_state_instant(s.state ->> 'access_until') <= $2 \
           AND s.access_ending_notice_for \
               IS DISTINCT FROM tenure_state_instant(s.state ->> 'access_until') \
           AND s.status <> 'unpaid' \
           AND NOT (s.id = ANY($3)) AND {} \
         ORDER BY tenure_state_instant(s.state ->> 'access_until') \
         LIMIT 1 FOR UPDATE OF s SKIP LOCKED",
        crate::repo::test_clocks::sql_scope("s", 4, scope)
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(until)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<Nullable<Uuid>, _>(crate::repo::test_clocks::scope_param(scope))
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        (
            MerchantId::from_uuid(r.merchant_id),
            SubscriptionId::from_uuid(r.id),
        )
    }))
}

/// Records that the access end at `access_until` was handled (announced, or found not
/// to need it), so that no round claims it again.
pub async fn mark_access_ending_sent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sub: SubscriptionId,
    access_until: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE subscriptions SET access_ending_notice_for = $3 \
         WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(sub.uuid())
    .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(access_until)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct ClaimedCard {
    #[diesel(sql_type = Uuid)]
    merchant_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    customer_id: uuid::Uuid,
    #[diesel(sql_type = Uuid)]
    id: uuid::Uuid,
}

/// Claims one attached default card not yet noticed whose expiry month
/// (`tenure_domain::billing::dunning::expiry_month_index`) lies in `months`.
pub async fn claim_expiring_card(
    conn: &mut AsyncPgConnection,
    scope: WorkScope,
    months: (i64, i64),
    skip: &[uuid::Uuid],
) -> StoreResult<Option<(MerchantId, CustomerId, PaymentMethodId)>> {
    let row: Option<ClaimedCard> = diesel::sql_query(format!(
        "SELECT merchant_id, customer_id, id FROM payment_methods \
         WHERE exp_year * 12 + exp_month - 1 BETWEEN $1 AND $2 \
           AND is_default AND detached_at IS NULL AND expiring_notice_sent_at IS NULL \
           AND NOT (id = ANY($3)) AND {} \
         ORDER BY exp_year * 12 + exp_month - 1 \
         LIMIT 1 FOR UPDATE SKIP LOCKED",
        crate::repo::test_clocks::sql_scope("payment_methods", 4, scope)
    ))
    .bind::<BigInt, _>(months.0)
    .bind::<BigInt, _>(months.1)
    .bind::<Array<Uuid>, _>(skip)
    .bind::<Nullable<Uuid>, _>(crate::repo::test_clocks::scope_param(scope))
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| {
        (
            MerchantId::from_uuid(r.merchant_id),
            CustomerId::from_uuid(r.customer_id),
            PaymentMethodId::from_uuid(r.id),
        )
    }))
}

/// Records that the card's expiry notice was handled at `at`.
pub async fn mark_expiring_sent(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    pm: PaymentMethodId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    diesel::sql_query(
        "UPDATE payment_methods SET expiring_notice_sent_at = $3 \
         WHERE merchant_id = $1 AND id = $2",
    )
    .bind::<Uuid, _>(merchant.uuid())
    .bind::<Uuid, _>(pm.uuid())
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(())
}
