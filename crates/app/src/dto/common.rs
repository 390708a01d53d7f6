//! Shapes shared by every resource: money, lists, list parameters.

use serde::{Deserialize, Serialize};
use tenure_domain::access::Mode;
use tenure_domain::money::Money;
use tenure_store::pagination::{DEFAULT_LIMIT, MAX_LIMIT};
use tenure_store::{Page, PageRequest};
use type_safe_id::{StaticType, TypeSafeId};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;

/// An amount in the currency's minor units (cents for EUR, yen for JPY) and an ISO 4217
/// currency code.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 1999, "currency": "EUR"}))]
pub struct MoneyDto {
    /// Minor units: 1999 is 19.99 EUR, 500 is 500 JPY.
    pub amount: i64,
    #[schema(value_type = String, example = "EUR")]
    pub currency: tenure_domain::money::Currency,
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        Self {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

impl From<MoneyDto> for Money {
    fn from(m: MoneyDto) -> Self {
        Money::new(m.amount, m.currency)
    }
}

/// The schema of a closed set of strings that Rust keeps as a list rather than an enum (the
/// event catalogue, note channels): a string whose `enum` is that list.
pub(crate) fn string_enum(description: &str, values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// An object as rendered to a caller: its fields and `livemode`, the mode of the caller's
/// tenant (the key's or the customer session's). The mode is the principal's, not read
/// from each row: a tenant holds the data of one mode only. The OpenAPI document shows it
/// on every response of a merchant or portal operation (`Livemode`, added by
/// `tenure_api::openapi`); a page of a list carries it on each item.
#[derive(Debug, Serialize)]
pub struct InMode<T> {
    #[serde(flatten)]
    pub object: T,
    pub livemode: bool,
}

impl<T> InMode<T> {
    pub fn new(mode: Mode, object: T) -> Self {
        Self {
            object,
            livemode: mode.is_live(),
        }
    }

    /// Each of `items`, in `mode`.
    pub fn each(mode: Mode, items: Vec<T>) -> Vec<Self> {
        items
            .into_iter()
            .map(|item| Self::new(mode, item))
            .collect()
    }
}

/// A page of a list, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `starting_after` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    /// The page with each item in `mode`.
    pub fn in_mode(self, mode: Mode) -> ListResponse<InMode<T>> {
        ListResponse {
            data: InMode::each(mode, self.data),
            has_more: self.has_more,
            next_cursor: self.next_cursor,
        }
    }

    /// Renders a page; `cursor_of` gives each item's id.
    pub fn from_page<D>(
        page: Page<D>,
        render: impl Fn(D) -> T,
        cursor_of: impl Fn(&D) -> String,
    ) -> Self {
        let next_cursor = if page.has_more {
            page.items.last().map(&cursor_of)
        } else {
            None
        };
        Self {
            data: page.items.into_iter().map(render).collect(),
            has_more: page.has_more,
            next_cursor,
        }
    }
}

/// Cursor pagination parameters shared by every list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// How many items to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page: the id of its last item. Empty means the
    /// first page, like leaving it out.
    pub starting_after: Option<String>,
}

impl ListParams {
    /// Validates the parameters for a list of items whose ids have type `T`.
    pub fn page<T: StaticType>(&self) -> Result<PageRequest, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let starting_after = self
            .starting_after
            .as_deref()
            .filter(|cursor| !cursor.is_empty())
            .map(|cursor| {
                cursor
                    .parse::<TypeSafeId<T>>()
                    .map(|id| id.uuid())
                    .map_err(|_| {
                        AppError::field(
                            "starting_after",
                            format!("must be an id starting with {}_", T::TYPE),
                        )
                    })
            })
            .transpose()?;
        Ok(PageRequest {
            limit,
            starting_after,
        })
    }
}

/// Parses a path id; a malformed id names nothing, so it is a 404 like an unknown one.
pub fn parse_id<T: StaticType>(
    raw: &str,
    resource: &'static str,
) -> Result<TypeSafeId<T>, AppError> {
    raw.parse().map_err(|_| AppError::NotFound(resource))
}

/// Parses an id given in a body or query field.
pub fn parse_field_id<T: StaticType>(raw: &str, field: &str) -> Result<TypeSafeId<T>, AppError> {
    raw.parse()
        .map_err(|_| AppError::field(field, format!("must be an id starting with {}_", T::TYPE)))
}
