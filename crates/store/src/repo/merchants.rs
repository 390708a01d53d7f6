//! Merchants (tenants); their keys are in [`super::api_keys`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::ids::{GenerateId, MerchantId};

use crate::error::StoreResult;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::merchants;

#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
struct MerchantRow {
    id: uuid::Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<MerchantRow> for Merchant {
    fn from(row: MerchantRow) -> Self {
        Self {
            id: MerchantId::from_uuid(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

pub async fn create(conn: &mut AsyncPgConnection, name: &str) -> StoreResult<Merchant> {
    let row: MerchantRow = diesel::insert_into(merchants::table)
        .values((
            merchants::id.eq(MerchantId::generate().uuid()),
            merchants::name.eq(name),
        ))
        .returning(MerchantRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

pub async fn get(conn: &mut AsyncPgConnection, id: MerchantId) -> StoreResult<Merchant> {
    let row: MerchantRow = merchants::table
        .find(id.uuid())
        .select(MerchantRow::as_select())
        .get_result(conn)
        .await?;
    Ok(row.into())
}

/// Merchants, newest first (the operator's list).
pub async fn list(conn: &mut AsyncPgConnection, page: PageRequest) -> StoreResult<Page<Merchant>> {
    let mut query = merchants::table
        .select(MerchantRow::as_select())
        .order(merchants::id.desc())
        .into_boxed();
    if let Some(after) = page.starting_after {
        query = query.filter(merchants::id.lt(after));
    }
    let rows: Vec<MerchantRow> = query.fetch_page(&page).load(conn).await?;
    let page_of_rows = Page::from_overfetch(rows, &page);
    Ok(Page {
        items: page_of_rows.items.into_iter().map(Merchant::from).collect(),
        has_more: page_of_rows.has_more,
    })
}
