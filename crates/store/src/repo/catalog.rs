//! Products and plans.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tenure_domain::catalog::{Plan, Product, QuantityLimits, Variant};
use tenure_domain::ids::{MerchantId, PlanId, ProductId};
use tenure_domain::money::Money;
use tenure_domain::policy::PortalPolicy;
use tenure_domain::subscription::{OfferedPlan, TargetProduct};

use crate::error::{StoreError, StoreResult};
use crate::pagination::{FetchPage, Page, PageRequest};
use crate::schema::{plans, products};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = products)]
struct ProductRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    name: String,
    description: Option<String>,
    portal_policy: serde_json::Value,
    archived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    shippable: bool,
    min_quantity: i32,
    max_quantity: i32,
    swappable_product_ids: Vec<uuid::Uuid>,
}

/// Quantity limits as stored (the table's CHECK keeps them valid; a row that is not is
/// reported as corrupt rather than trusted).
fn limits_from_row(min: i32, max: i32) -> StoreResult<QuantityLimits> {
    let (min, max) = (
        u32::try_from(min).map_err(StoreError::corrupt)?,
        u32::try_from(max).map_err(StoreError::corrupt)?,
    );
    QuantityLimits::new(min, max).map_err(StoreError::corrupt)
}

impl ProductRow {
    fn from_domain(merchant: MerchantId, p: &Product) -> StoreResult<Self> {
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: p.id.uuid(),
            name: p.name.clone(),
            description: p.description.clone(),
            portal_policy: serde_json::to_value(&p.portal_policy).map_err(StoreError::corrupt)?,
            archived_at: p.archived_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            shippable: p.shippable,
            // At most MAX_QUANTITY (10 000), so they fit.
            min_quantity: i32::try_from(p.quantity_limits.min()).map_err(StoreError::corrupt)?,
            max_quantity: i32::try_from(p.quantity_limits.max()).map_err(StoreError::corrupt)?,
            swappable_product_ids: p
                .swappable_product_ids
                .iter()
                .map(ProductId::uuid)
                .collect(),
        })
    }

    fn into_domain(self) -> StoreResult<Product> {
        let portal_policy: PortalPolicy =
            serde_json::from_value(self.portal_policy).map_err(StoreError::corrupt)?;
        Ok(Product {
            id: ProductId::from_uuid(self.id),
            name: self.name,
            description: self.description,
            portal_policy,
            shippable: self.shippable,
            quantity_limits: limits_from_row(self.min_quantity, self.max_quantity)?,
            swappable_product_ids: self
                .swappable_product_ids
                .into_iter()
                .map(ProductId::from_uuid)
                .collect(),
            archived_at: self.archived_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: &Product,
) -> StoreResult<()> {
    diesel::insert_into(products::table)
        .values(ProductRow::from_domain(merchant, product)?)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: &Product,
) -> StoreResult<()> {
    let n = diesel::update(products::table.find((merchant.uuid(), product.id.uuid())))
        .set(ProductRow::from_domain(merchant, product)?)
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Reads a product; with `for_update` the row stays locked until the transaction ends.
pub async fn get_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: ProductId,
    for_update: bool,
) -> StoreResult<Product> {
    let query = products::table
        .find((merchant.uuid(), id.uuid()))
        .select(ProductRow::as_select());
    let row = if for_update {
        query.for_update().get_result(conn).await?
    } else {
        query.get_result(conn).await?
    };
    row.into_domain()
}

pub async fn list_products(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    include_archived: bool,
    page: PageRequest,
) -> StoreResult<Page<Product>> {
    let mut query = products::table
        .filter(products::merchant_id.eq(merchant.uuid()))
        .select(ProductRow::as_select())
        .order(products::id.desc())
        .into_boxed();
    if !include_archived {
        query = query.filter(products::archived_at.is_null());
    }
    if let Some(after) = page.starting_after {
        query = query.filter(products::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(ProductRow::into_domain)
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = plans)]
struct PlanRow {
    merchant_id: uuid::Uuid,
    id: uuid::Uuid,
    product_id: uuid::Uuid,
    name: String,
    amount: i64,
    currency: String,
    billing_interval: String,
    interval_count: i32,
    trial_days: i32,
    active: bool,
    // Written on insert only: a plan's update must not put back a stock read before a
    // concurrent stock change (`repo::stock`).
    #[diesel(skip_update)]
    stock_status: String,
    #[diesel(skip_update)]
    stock_expected_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The domain's `Variant` as JSON (`{"name", "sku", "options"}`).
    variant: Option<serde_json::Value>,
}

impl PlanRow {
    fn from_domain(merchant: MerchantId, p: &Plan) -> StoreResult<Self> {
        let int = |v: u32| i32::try_from(v).map_err(StoreError::corrupt);
        Ok(Self {
            merchant_id: merchant.uuid(),
            id: p.id.uuid(),
            product_id: p.product_id.uuid(),
            name: p.name.clone(),
            amount: p.price.amount,
            currency: p.price.currency.code().to_owned(),
            billing_interval: p.interval.as_str().to_owned(),
            interval_count: int(p.interval_count)?,
            trial_days: int(p.trial_days)?,
            active: p.active,
            stock_status: p.stock.status.as_str().to_owned(),
            stock_expected_at: p.stock.expected_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            variant: p
                .variant
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(StoreError::corrupt)?,
        })
    }

    fn into_domain(self) -> StoreResult<Plan> {
        let uint = |v: i32| u32::try_from(v).map_err(StoreError::corrupt);
        Ok(Plan {
            id: PlanId::from_uuid(self.id),
            product_id: ProductId::from_uuid(self.product_id),
            name: self.name,
            price: Money::new(
                self.amount,
                self.currency.parse().map_err(StoreError::corrupt)?,
            ),
            interval: self.billing_interval.parse().map_err(StoreError::corrupt)?,
            interval_count: uint(self.interval_count)?,
            trial_days: uint(self.trial_days)?,
            active: self.active,
            stock: tenure_domain::stock::Stock {
                status: self.stock_status.parse().map_err(StoreError::corrupt)?,
                expected_at: self.stock_expected_at,
            },
            variant: self
                .variant
                .map(serde_json::from_value::<Variant>)
                .transpose()
                .map_err(StoreError::corrupt)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

pub async fn insert_plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: &Plan,
) -> StoreResult<()> {
    diesel::insert_into(plans::table)
        .values(PlanRow::from_domain(merchant, plan)?)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    plan: &Plan,
) -> StoreResult<()> {
    let n = diesel::update(plans::table.find((merchant.uuid(), plan.id.uuid())))
        .set(PlanRow::from_domain(merchant, plan)?)
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub async fn get_plan(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    id: PlanId,
) -> StoreResult<Plan> {
    plans::table
        .find((merchant.uuid(), id.uuid()))
        .select(PlanRow::as_select())
        .get_result(conn)
        .await?
        .into_domain()
}

/// Most plans [`product_catalog`] reads of one product.
pub const PRODUCT_CATALOG_PLANS: i64 = 1000;

/// A product and every plan of it, retired ones too (newest first, at most
/// [`PRODUCT_CATALOG_PLANS`]), in two statements on one connection: what names a
/// subscription's plan in the portal whichever of them it is on, when the list of
/// plans a subscriber may choose no longer shows it.
pub async fn product_catalog(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> StoreResult<(Product, Vec<Plan>)> {
    let product_row = async {
        products::table
            .find((merchant.uuid(), product.uuid()))
            .select(ProductRow::as_select())
            .get_result::<ProductRow>(&mut &*conn)
            .await
            .map_err(StoreError::from)
    };
    let plan_rows = async {
        plans::table
            .filter(plans::merchant_id.eq(merchant.uuid()))
            .filter(plans::product_id.eq(product.uuid()))
            .select(PlanRow::as_select())
            .order(plans::id.desc())
            .limit(PRODUCT_CATALOG_PLANS)
            .load::<PlanRow>(&mut &*conn)
            .await
            .map_err(StoreError::from)
    };
    let (product_row, plan_rows) = futures_util::future::try_join(product_row, plan_rows).await?;
    Ok((
        product_row.into_domain()?,
        plan_rows
            .into_iter()
            .map(PlanRow::into_domain)
            .collect::<StoreResult<_>>()?,
    ))
}

/// One plan, active or retired, read on a shared connection.
pub async fn get_plan_shared(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    id: PlanId,
) -> StoreResult<Plan> {
    plans::table
        .find((merchant.uuid(), id.uuid()))
        .select(PlanRow::as_select())
        .get_result::<PlanRow>(&mut &*conn)
        .await?
        .into_domain()
}

/// Which of `ids` are plans of the merchant's `product` (active or not).
pub async fn plans_of_product(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
    ids: &[PlanId],
) -> StoreResult<Vec<PlanId>> {
    let uuids: Vec<uuid::Uuid> = ids.iter().map(PlanId::uuid).collect();
    let found: Vec<uuid::Uuid> = plans::table
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .filter(plans::product_id.eq(product.uuid()))
        .filter(plans::id.eq_any(uuids))
        .select(plans::id)
        .load(conn)
        .await?;
    Ok(found.into_iter().map(PlanId::from_uuid).collect())
}

/// Holds, until the caller's transaction ends, the merchant's lock on SKU `sku` (a
/// transaction-level advisory lock on a hash of the two): two transactions that check
/// then write the same SKU take turns, so the second sees the first's plan.
pub async fn lock_sku(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sku: &str,
) -> StoreResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/sku/' || $2, 0))")
        .bind::<diesel::sql_types::Text, _>(merchant.uuid().to_string())
        .bind::<diesel::sql_types::Text, _>(sku)
        .execute(conn)
        .await?;
    Ok(())
}

/// The products (other than `except`'s) whose plans carry the SKU `sku`.
pub async fn products_with_sku(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    sku: &str,
    except: PlanId,
) -> StoreResult<Vec<ProductId>> {
    let found: Vec<uuid::Uuid> = plans::table
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .filter(plans::variant.retrieve_as_text("sku").eq(sku))
        .filter(plans::id.ne(except.uuid()))
        .select(plans::product_id)
        .distinct()
        .load(conn)
        .await?;
    Ok(found.into_iter().map(ProductId::from_uuid).collect())
}

/// Which of `ids` are the merchant's products (archived or not).
pub async fn existing_products(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    ids: &[ProductId],
) -> StoreResult<Vec<ProductId>> {
    let uuids: Vec<uuid::Uuid> = ids.iter().map(ProductId::uuid).collect();
    let found: Vec<uuid::Uuid> = products::table
        .filter(products::merchant_id.eq(merchant.uuid()))
        .filter(products::id.eq_any(uuids))
        .select(products::id)
        .load(conn)
        .await?;
    Ok(found.into_iter().map(ProductId::from_uuid).collect())
}

/// The plans on sale of the merchant's `products` (active plans of products not
/// archived) as swaps offer them, each with its product's quantity limits; newest first.
pub async fn swap_offers(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    products: &[ProductId],
) -> StoreResult<Vec<OfferedPlan>> {
    let uuids: Vec<uuid::Uuid> = products.iter().map(ProductId::uuid).collect();
    let rows: Vec<(uuid::Uuid, String, i32, i32)> = plans::table
        .inner_join(
            products::table.on(products::merchant_id
                .eq(plans::merchant_id)
                .and(products::id.eq(plans::product_id))),
        )
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .filter(plans::product_id.eq_any(uuids))
        .filter(plans::active.eq(true))
        .filter(products::archived_at.is_null())
        .select((
            plans::id,
            plans::currency,
            products::min_quantity,
            products::max_quantity,
        ))
        .order(plans::id.desc())
        .limit(500)
        .load(&mut &*conn)
        .await?;
    rows.into_iter()
        .map(|(id, currency, min, max)| {
            Ok(OfferedPlan {
                plan_id: PlanId::from_uuid(id),
                currency: currency.parse().map_err(StoreError::corrupt)?,
                product: TargetProduct::Swappable(limits_from_row(min, max)?),
            })
        })
        .collect()
}

#[derive(Debug, Default, Clone)]
pub struct PlanFilter {
    pub product: Option<ProductId>,
    pub active: Option<bool>,
}

pub async fn list_plans(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    filter: &PlanFilter,
    page: PageRequest,
) -> StoreResult<Page<Plan>> {
    let mut query = plans::table
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .select(PlanRow::as_select())
        .order(plans::id.desc())
        .into_boxed();
    if let Some(product) = filter.product {
        query = query.filter(plans::product_id.eq(product.uuid()));
    }
    if let Some(active) = filter.active {
        query = query.filter(plans::active.eq(active));
    }
    if let Some(after) = page.starting_after {
        query = query.filter(plans::id.lt(after));
    }
    let rows = query.fetch_page(&page).load(conn).await?;
    Page::from_overfetch(rows, &page).try_map(PlanRow::into_domain)
}

/// What a subscriber of a product may do in the portal, in one statement: the product's
/// portal policy and the ids of the plans they may switch to (its active plans, none when
/// it is archived, as [`list_purchasable_plans`]), newest first. Built from the DSL (a
/// correlated `ARRAY(SELECT …)` over an alias of `plans`), so the connection keeps it
/// prepared.
pub async fn portal_terms(
    conn: &AsyncPgConnection,
    merchant: MerchantId,
    product: ProductId,
) -> StoreResult<(
    PortalPolicy,
    QuantityLimits,
    Vec<OfferedPlan>,
    Vec<ProductId>,
)> {
    let offered = diesel::alias!(plans as offered_plans);
    // Two arrays in the same order (by the unique id), so the pairs line up.
    let plan_ids = diesel::dsl::array(
        offered
            .filter(offered.field(plans::merchant_id).eq(products::merchant_id))
            .filter(offered.field(plans::product_id).eq(products::id))
            .filter(offered.field(plans::active).eq(true))
            .filter(products::archived_at.is_null())
            .select(offered.field(plans::id))
            .order(offered.field(plans::id).desc())
            .limit(500),
    );
    let currencies = diesel::dsl::array(
        offered
            .filter(offered.field(plans::merchant_id).eq(products::merchant_id))
            .filter(offered.field(plans::product_id).eq(products::id))
            .filter(offered.field(plans::active).eq(true))
            .filter(products::archived_at.is_null())
            .select(offered.field(plans::currency))
            .order(offered.field(plans::id).desc())
            .limit(500),
    );
    type Terms = (
        serde_json::Value,
        i32,
        i32,
        Vec<uuid::Uuid>,
        Vec<String>,
        Vec<uuid::Uuid>,
    );
    let (policy, min, max, plans, currencies, swappable) = products::table
        .find((merchant.uuid(), product.uuid()))
        .select((
            products::portal_policy,
            products::min_quantity,
            products::max_quantity,
            plan_ids,
            currencies,
            products::swappable_product_ids,
        ))
        .get_result::<Terms>(&mut &*conn)
        .await?;
    let offered = plans
        .into_iter()
        .zip(currencies)
        .map(|(id, currency)| {
            Ok(OfferedPlan {
                plan_id: PlanId::from_uuid(id),
                currency: currency.parse().map_err(StoreError::corrupt)?,
                product: TargetProduct::Same,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((
        serde_json::from_value(policy).map_err(StoreError::corrupt)?,
        limits_from_row(min, max)?,
        offered,
        swappable.into_iter().map(ProductId::from_uuid).collect(),
    ))
}

/// Active plans of active products, optionally of one product: what a subscriber may
/// choose from. Bounded: a catalog shown in a portal is small.
pub async fn list_purchasable_plans(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    product: Option<ProductId>,
) -> StoreResult<Vec<(Plan, Product)>> {
    let mut query = plans::table
        .inner_join(
            products::table.on(products::merchant_id
                .eq(plans::merchant_id)
                .and(products::id.eq(plans::product_id))),
        )
        .filter(plans::merchant_id.eq(merchant.uuid()))
        .filter(plans::active.eq(true))
        .filter(products::archived_at.is_null())
        .select((PlanRow::as_select(), ProductRow::as_select()))
        .order(plans::id.desc())
        .limit(500)
        .into_boxed();
    if let Some(product) = product {
        query = query.filter(plans::product_id.eq(product.uuid()));
    }
    let rows: Vec<(PlanRow, ProductRow)> = query.load(conn).await?;
    rows.into_iter()
        .map(|(plan, product)| Ok((plan.into_domain()?, product.into_domain()?)))
        .collect()
}
