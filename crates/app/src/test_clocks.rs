//! Test clocks (docs/test-clocks.md): create, read, list, delete and advance a merchant's
//! simulated time, and the time a use case takes as "now" for a customer that lives on
//! one. The engine moves an advancing clock (`tenure_engine::test_clocks`) and ends the
//! advance here ([`finish_advance`]).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tenure_domain::access::Mode;
use tenure_domain::ids::{
    CustomerId, GenerateId, InvoiceId, MerchantId, SubscriptionId, TestClockId,
};
use tenure_domain::test_clock::{self, ClockStatus, TestClock};
use tenure_domain::time::next_update_time;
use tenure_store::repo::test_clocks as repo;
use tenure_store::{Page, PageRequest};

use crate::App;
use crate::dto::test_clocks::{AdvanceTestClock, CreateTestClock, TestClockDto};
use crate::error::{AppError, AppResult};
use crate::events::{EventDraft, record_event};

/// Clocks exist in test mode only (as in Stripe): creating one, or a customer on one,
/// in a live tenant is refused here, the one place the rule lives. A live tenant thus has
/// no clocks, so reading, advancing or deleting one there finds nothing (404).
async fn require_test_mode(conn: &mut AsyncPgConnection, merchant: MerchantId) -> AppResult<()> {
    if tenure_store::repo::merchants::mode(conn, merchant).await? == Mode::Live {
        return Err(AppError::Unprocessable {
            code: "test_mode_only",
            detail: "test clocks exist in test mode only: use an sk_test_ key".into(),
        });
    }
    Ok(())
}

pub async fn create(
    state: &App,
    merchant: MerchantId,
    input: CreateTestClock,
) -> AppResult<TestClock> {
    let mut conn = state.db.conn().await?;
    require_test_mode(&mut conn, merchant).await?;
    let frozen_time = test_clock::validate_frozen_time(input.frozen_time)?;
    let name = tenure_domain::text::clean_opt(
        "name",
        input.name.as_deref(),
        test_clock::MAX_NAME_CHARS,
        false,
    )?;
    let now = state.now_micros();
    let clock = TestClock {
        id: TestClockId::generate(),
        name,
        frozen_time,
        status: ClockStatus::Ready,
        created_at: now,
        updated_at: now,
    };
    repo::insert(&mut conn, merchant, &clock).await?;
    Ok(clock)
}

pub async fn get(state: &App, merchant: MerchantId, id: TestClockId) -> AppResult<TestClock> {
    let mut conn = state.db.conn().await?;
    repo::get(&mut conn, merchant, id, false)
        .await
        .map_err(AppError::from_store("test_clock"))
}

pub async fn list(
    state: &App,
    merchant: MerchantId,
    page: PageRequest,
) -> AppResult<Page<TestClock>> {
    let mut conn = state.db.conn().await?;
    Ok(repo::list(&mut conn, merchant, page).await?)
}

/// Deletes a ready clock. Its customers stay on it, frozen at its time: nothing happens
/// to them any more (as in Stripe, a clock's customers are for that test only).
pub async fn delete(state: &App, merchant: MerchantId, id: TestClockId) -> AppResult<()> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let clock = repo::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("test_clock"))?;
        clock.ensure_deletable()?;
        repo::delete(conn, merchant, id, next_update_time(clock.updated_at, now)).await?;
        Ok(())
    })
    .await
}

/// Starts moving the clock to `frozen_time`: the clock becomes `advancing` (event
/// `test_clock.advancing`) and the engine's clock worker makes the time pass for its
/// customers, then sets it `ready` at the target (`test_clock.ready`).
pub async fn advance(
    state: &App,
    merchant: MerchantId,
    id: TestClockId,
    input: AdvanceTestClock,
) -> AppResult<TestClock> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = repo::get(conn, merchant, id, true)
            .await
            .map_err(AppError::from_store("test_clock"))?;
        let mut after = before.advance(input.frozen_time)?;
        after.updated_at = next_update_time(before.updated_at, now);
        repo::update(conn, merchant, &after).await?;
        clock_event(conn, merchant, "test_clock.advancing", &after, &before).await?;
        Ok(after)
    })
    .await
}

/// Ends an advance the engine has carried out: the clock shows `target` and is `ready`
/// (event `test_clock.ready`). Nothing happens if the clock is no longer advancing to
/// `target` (another worker finished it).
pub async fn finish_advance(
    state: &App,
    merchant: MerchantId,
    id: TestClockId,
    target: DateTime<Utc>,
) -> AppResult<Option<TestClock>> {
    let now = state.now_micros();
    let mut conn = state.db.conn().await?;
    conn.transaction(async |conn| {
        let before = match repo::get(conn, merchant, id, true).await {
            Ok(clock) => clock,
            Err(tenure_store::StoreError::NotFound) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if before.status != (ClockStatus::Advancing { target }) {
            return Ok(None);
        }
        let after = TestClock {
            frozen_time: target,
            status: ClockStatus::Ready,
            updated_at: next_update_time(before.updated_at, now),
            ..before.clone()
        };
        repo::update(conn, merchant, &after).await?;
        clock_event(conn, merchant, "test_clock.ready", &after, &before).await?;
        Ok(Some(after))
    })
    .await
}

async fn clock_event(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    event_type: &str,
    after: &TestClock,
    before: &TestClock,
) -> AppResult<()> {
    record_event(
        conn,
        merchant,
        EventDraft {
            event_type,
            resource_type: "test_clock",
            resource_id: after.id.to_string(),
            after: &TestClockDto::from(after),
            before: Some(&TestClockDto::from(before)),
            at: after.updated_at,
        },
    )
    .await
}

/// The clock a new customer is to live on, named in its `test_clock` field: one of the
/// merchant's clocks that is not deleted (else 422 on `test_clock`).
pub(crate) async fn clock_for_new_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    raw: &str,
) -> AppResult<TestClock> {
    require_test_mode(conn, merchant).await?;
    let id =
        crate::dto::common::parse_field_id::<tenure_domain::ids::TestClockTag>(raw, "test_clock")?;
    repo::get(conn, merchant, id, false)
        .await
        .map_err(|err| match err {
            tenure_store::StoreError::NotFound => {
                AppError::field("test_clock", "no such test clock")
            }
            other => other.into(),
        })
}

/// "Now" for the customer: its clock's time, or `real_now` for a customer in real time.
pub async fn now_for_customer(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    customer: CustomerId,
    real_now: DateTime<Utc>,
) -> AppResult<DateTime<Utc>> {
    Ok(repo::time_of_customer(conn, merchant, customer)
        .await?
        .unwrap_or(real_now))
}

/// "Now" for the subscription's customer, as [`now_for_customer`].
pub async fn now_for_subscription(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    subscription: SubscriptionId,
    real_now: DateTime<Utc>,
) -> AppResult<DateTime<Utc>> {
    Ok(repo::time_of_subscription(conn, merchant, subscription)
        .await?
        .unwrap_or(real_now))
}

/// "Now" for the invoice's customer, as [`now_for_customer`].
pub async fn now_for_invoice(
    conn: &mut AsyncPgConnection,
    merchant: MerchantId,
    invoice: InvoiceId,
    real_now: DateTime<Utc>,
) -> AppResult<DateTime<Utc>> {
    Ok(repo::time_of_invoice(conn, merchant, invoice)
        .await?
        .unwrap_or(real_now))
}
