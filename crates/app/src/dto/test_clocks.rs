//! Test clocks: request and response shapes (docs/test-clocks.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenure_domain::test_clock::{ClockStatus, TestClock};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"frozen_time": "2027-01-31T09:00:00Z", "name": "annual renewal"}))]
pub struct CreateTestClock {
    /// The clock's time to start from: between 2000-01-01 and 2100-01-01.
    pub frozen_time: DateTime<Utc>,
    /// A label of your own (at most 300 characters).
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"frozen_time": "2028-01-31T09:00:00Z"}))]
pub struct AdvanceTestClock {
    /// Where to move the clock: later than its `frozen_time`, by at most 24 months
    /// (`MAX_ADVANCE_MONTHS`).
    pub frozen_time: DateTime<Utc>,
}

/// Where a clock is: `ready` to be advanced, or `advancing` while the engine makes the
/// time pass for its customers (then `advancing_to` is the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestClockStatusDto {
    Ready,
    Advancing,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "clock_01jf9zb3f4e3a8r7m2k4t5n6bc", "object": "test_clock",
    "name": "annual renewal", "frozen_time": "2027-01-31T09:00:00Z", "status": "advancing",
    "advancing_to": "2028-01-31T09:00:00Z", "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:05:00Z"}))]
pub struct TestClockDto {
    pub id: String,
    /// Always `test_clock`.
    pub object: String,
    pub name: Option<String>,
    /// The clock's time: "now" for its customers. While advancing it shows how far the
    /// engine has come.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub frozen_time: DateTime<Utc>,
    pub status: TestClockStatusDto,
    /// The target of the advance under way; null when `ready`.
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339_opt")]
    pub advancing_to: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::dto::timestamps::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<&TestClock> for TestClockDto {
    fn from(c: &TestClock) -> Self {
        let (status, advancing_to) = match c.status {
            ClockStatus::Ready => (TestClockStatusDto::Ready, None),
            ClockStatus::Advancing { target } => (TestClockStatusDto::Advancing, Some(target)),
        };
        Self {
            id: c.id.to_string(),
            object: "test_clock".to_owned(),
            name: c.name.clone(),
            frozen_time: c.frozen_time,
            status,
            advancing_to,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}
