//! Merchants (tenants); their keys are in [`super::api_keys`]. A merchant account is two
//! tenants, its test tenant and its live tenant, which share `account_id` (the test
//! tenant's id) and differ in `livemode`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::access::Mode;
use tenure_domain::ids::{AccountId, GenerateId, MerchantId};

use crate::error::StoreResult;
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::merchants;

#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub account: AccountId,
    pub mode: Mode,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = merchants)]
struct MerchantRow {
    id: uuid::Uuid,
    name: String,
    created_at: DateTime<Utc>,
    account_id: uuid::Uuid,
    livemode: bool,
}

impl From<MerchantRow> for Merchant {
    fn from(row: MerchantRow) -> Self {
        Self {
            id: MerchantId::from_uuid(row.id),
            name: row.name,
            created_at: row.created_at,
            account: AccountId::from_uuid(row.account_id),
            mode: Mode::from_livemode(row.livemode),
        }
    }
}

/// A new account's test tenant: the account is named by the test tenant's id.
pub async fn create(conn: &mut AsyncPgConnection, name: &str) -> StoreResult<Merchant> {
    let id = MerchantId::generate().uuid();
    insert(conn, id, name, id, Mode::Test).await
}

/// The live tenant of `test`'s account.
pub async fn create_live(conn: &mut AsyncPgConnection, test: &Merchant) -> StoreResult<Merchant> {
    let id = MerchantId::generate().uuid();
    insert(conn, id, &test.name, test.account.uuid(), Mode::Live).await
}

async fn insert(
    conn: &mut AsyncPgConnection,
    id: uuid::Uuid,
    name: &str,
    account: uuid::Uuid,
    mode: Mode,
) -> StoreResult<Merchant> {
    let row: MerchantRow = diesel::insert_into(merchants::table)
        .values((
            merchants::id.eq(id),
            merchants::name.eq(name),
            merchants::account_id.eq(account),
            merchants::livemode.eq(mode.is_live()),
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

/// The tenant's mode.
pub async fn mode(conn: &mut AsyncPgConnection, id: MerchantId) -> StoreResult<Mode> {
    let livemode: bool = merchants::table
        .find(id.uuid())
        .select(merchants::livemode)
        .get_result(conn)
        .await?;
    Ok(Mode::from_livemode(livemode))
}

/// Merchants, newest first (the operator's list): each tenant is listed, the live one
/// (made after its test tenant) first.
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
