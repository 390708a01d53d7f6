//! Retention offers and their outcomes (every presentation and what became of it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{
    CancellationRequestId, CustomerId, MerchantId, OfferOutcomeId, RetentionOfferId, SubscriptionId,
};
use tenure_domain::retention::{Eligibility, OfferKind, OutcomeStatus, RetentionOffer};
use tenure_domain::subscription::CancellationReason;

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{retention_offer_outcomes, retention_offers};

/// A merchant's retention offer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOffer {
    pub id: RetentionOfferId,
    pub name: String,
    pub kind: OfferKind,
    pub eligibility: Eligibility,
    pub active: bool,
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredOffer {
    /// The offer as the domain's ranking rules see it.
    pub fn to_domain(&self) -> RetentionOffer {
        RetentionOffer {
            id: self.id.to_string(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            eligibility: self.eligibility.clone(),
            active: self.active,
            priority: self.priority,
        }
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = retention_offers)]
struct OfferRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    name: String,
    kind: serde_json::Value,
    eligibility: serde_json::Value,
    active: bool,
    priority: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OfferRow {
    fn from_stored(merchant: MerchantId, o: &StoredOffer) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: o.id.uuid(),
            name: o.name.clone(),
            kind: serde_json::to_value(&o.kind).map_err(StoreError::corrupt)?,
            eligibility: serde_json::to_value(&o.eligibility).map_err(StoreError::corrupt)?,
            active: o.active,
            priority: o.priority,
            created_at: o.created_at,
            updated_at: o.updated_at,
        })
    }

    fn into_stored(self) -> StoreResult<StoredOffer> {
        Ok(StoredOffer {
            id: RetentionOfferId::from_uuid(self.id),
            name: self.name,
            kind: serde_json::from_value(self.kind).map_err(StoreError::corrupt)?,
            eligibility: serde_json::from_value(self.eligibility).map_err(StoreError::corrupt)?,
            active: self.active,
            priority: self.priority,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_offer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    offer: &StoredOffer,
) -> StoreResult<()> {
    diesel::insert_into(retention_offers::table)
        .values(OfferRow::from_stored(merchant, offer)?)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_offer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    offer: &StoredOffer,
) -> StoreResult<()> {
    let n = diesel::update(retention_offers::table.find((merchant.uuid(), offer.id.uuid())))
        .set(OfferRow::from_stored(merchant, offer)?)
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Reads an offer; with `for_update` the row stays locked until the transaction ends.
pub async fn get_offer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: RetentionOfferId,
    for_update: bool,
) -> StoreResult<StoredOffer> {
    let query = retention_offers::table
        .find((merchant.uuid(), id.uuid()))
        .select(OfferRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_stored()
}

/// Offers newest first; only active ones unless `include_inactive`.
pub async fn list_offers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    include_inactive: bool,
    page: PageRequest,
) -> StoreResult<Page<StoredOffer>> {
    let mut query = retention_offers::table
        .filter(retention_offers::merchant_id.eq(merchant.uuid()))
        .select(OfferRow::as_select())
        .order(retention_offers::id.desc())
        .into_boxed();
    if !include_inactive {
        query = query.filter(retention_offers::active.eq(true));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(retention_offers::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(OfferRow::into_stored)
}

/// Every active offer of the merchant (what eligibility is decided over). Merchants
/// define a handful; the cap only bounds a pathological configuration.
pub async fn active_offers(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
) -> StoreResult<Vec<StoredOffer>> {
    let rows: Vec<OfferRow> = retention_offers::table
        .filter(retention_offers::merchant_id.eq(merchant.uuid()))
        .filter(retention_offers::active.eq(true))
        .select(OfferRow::as_select())
        .order(retention_offers::id.asc())
        .limit(1000)
        .load(conn)
        .await?;
    rows.into_iter().map(OfferRow::into_stored).collect()
}

/// The offers with these ids (any state).
pub async fn offers_by_ids(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[RetentionOfferId],
) -> StoreResult<Vec<StoredOffer>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.uuid()).collect();
    let rows: Vec<OfferRow> = retention_offers::table
        .filter(retention_offers::merchant_id.eq(merchant.uuid()))
        .filter(retention_offers::id.eq_any(ids))
        .select(OfferRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter().map(OfferRow::into_stored).collect()
}

/// One presentation of an offer and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferOutcome {
    pub id: OfferOutcomeId,
    pub offer_id: RetentionOfferId,
    pub customer_id: CustomerId,
    pub subscription_id: SubscriptionId,
    pub cancellation_request_id: Option<CancellationRequestId>,
    pub reason: Option<CancellationReason>,
    pub outcome: OutcomeStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = retention_offer_outcomes)]
struct OutcomeRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    offer_id: uuid::Uuid,
    customer_id: uuid::Uuid,
    subscription_id: uuid::Uuid,
    cancellation_request_id: Option<uuid::Uuid>,
    reason: Option<String>,
    outcome: String,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
}

impl OutcomeRow {
    fn from_domain(merchant: MerchantId, o: &OfferOutcome) -> Self {
        Self {
            merchant_id: merchant.uuid(),
            id: o.id.uuid(),
            offer_id: o.offer_id.uuid(),
            customer_id: o.customer_id.uuid(),
            subscription_id: o.subscription_id.uuid(),
            cancellation_request_id: o.cancellation_request_id.map(|r| r.uuid()),
            reason: o.reason.map(|r| r.as_str().to_owned()),
            outcome: o.outcome.as_str().to_owned(),
            created_at: o.created_at,
            decided_at: o.decided_at,
        }
    }

    fn into_domain(self) -> StoreResult<OfferOutcome> {
        Ok(OfferOutcome {
            id: OfferOutcomeId::from_uuid(self.id),
            offer_id: RetentionOfferId::from_uuid(self.offer_id),
            customer_id: CustomerId::from_uuid(self.customer_id),
            subscription_id: SubscriptionId::from_uuid(self.subscription_id),
            cancellation_request_id: self
                .cancellation_request_id
                .map(CancellationRequestId::from_uuid),
            reason: self
                .reason
                .map(|r| r.parse())
                .transpose()
                .map_err(StoreError::corrupt)?,
            outcome: self.outcome.parse().map_err(StoreError::corrupt)?,
            created_at: self.created_at,
            decided_at: self.decided_at,
        })
    }
}

pub async fn insert_outcomes(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    outcomes: &[OfferOutcome],
) -> StoreResult<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let rows: Vec<OutcomeRow> = outcomes
        .iter()
        .map(|o| OutcomeRow::from_domain(merchant, o))
        .collect();
    diesel::insert_into(retention_offer_outcomes::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// The outcomes of the offers presented for one cancellation request, in presentation
/// order; with `for_update` they stay locked until the transaction ends.
pub async fn outcomes_of_request(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    request: CancellationRequestId,
    for_update: bool,
) -> StoreResult<Vec<OfferOutcome>> {
    let query = retention_offer_outcomes::table
        .filter(retention_offer_outcomes::merchant_id.eq(merchant.uuid()))
        .filter(retention_offer_outcomes::cancellation_request_id.eq(request.uuid()))
        .select(OutcomeRow::as_select())
        .order(retention_offer_outcomes::id.asc());
    let rows: Vec<OutcomeRow> = if for_update {
        query.for_update().load(conn).await?
    } else {
        query.load(conn).await?
    };
    rows.into_iter().map(OutcomeRow::into_domain).collect()
}

/// Records a decision on a presented offer.
pub async fn decide(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: OfferOutcomeId,
    outcome: OutcomeStatus,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let n = diesel::update(retention_offer_outcomes::table.find((merchant.uuid(), id.uuid())))
        .set((
            retention_offer_outcomes::outcome.eq(outcome.as_str()),
            retention_offer_outcomes::decided_at.eq(Some(at)),
        ))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Presentations of an offer by outcome: how often it was shown (every presentation,
/// whatever became of it), accepted and declined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OfferStats {
    pub presented: i64,
    pub accepted: i64,
    pub declined: i64,
}

pub async fn stats(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    offers: &[RetentionOfferId],
) -> StoreResult<HashMap<RetentionOfferId, OfferStats>> {
    let ids: Vec<uuid::Uuid> = offers.iter().map(|i| i.uuid()).collect();
    let rows: Vec<(uuid::Uuid, String, i64)> = retention_offer_outcomes::table
        .filter(retention_offer_outcomes::merchant_id.eq(merchant.uuid()))
        .filter(retention_offer_outcomes::offer_id.eq_any(ids))
        .group_by((
            retention_offer_outcomes::offer_id,
            retention_offer_outcomes::outcome,
        ))
        .select((
            retention_offer_outcomes::offer_id,
            retention_offer_outcomes::outcome,
            diesel::dsl::count_star(),
        ))
        .load(conn)
        .await?;
    let mut out: HashMap<RetentionOfferId, OfferStats> = HashMap::new();
    for (offer, outcome, n) in rows {
        let s = out.entry(RetentionOfferId::from_uuid(offer)).or_default();
        s.presented += n;
        match outcome
            .parse::<OutcomeStatus>()
            .map_err(StoreError::corrupt)?
        {
            OutcomeStatus::Presented => {}
            OutcomeStatus::Accepted => s.accepted += n,
            OutcomeStatus::Declined => s.declined += n,
        }
    }
    Ok(out)
}
