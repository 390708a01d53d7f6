//! Keyset pagination, by id for most lists. TypeIDs wrap UUIDv7, so ids sort by creation
//! time and a page boundary stays stable however many rows are inserted meanwhile.
//! Invoices page by `(created_at, id)` instead (`repo::invoices::list`).

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Lists come newest first (like Stripe); `starting_after` is the last id of the previous
/// page.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub starting_after: Option<Uuid>,
}

impl PageRequest {
    /// Rows to fetch: one more than the page, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// The rows [`FetchPage::fetch_page`] reads: [`Self::fetch_limit`] rounded up to one
    /// of a few sizes (four for the API's pages of up to 100 rows, a power of two for a
    /// larger internal read), so that a list keeps a handful of prepared statements
    /// whatever page sizes its callers ask for. [`Page::from_overfetch`] trims the surplus.
    pub fn fetch_size(&self) -> i64 {
        const SIZES: [i64; 4] = [11, 21, 51, 101];
        let wanted = self.fetch_limit();
        SIZES
            .into_iter()
            .find(|&size| size >= wanted)
            .unwrap_or_else(|| {
                u64::try_from(wanted)
                    .ok()
                    .and_then(u64::checked_next_power_of_two)
                    .and_then(|size| i64::try_from(size).ok())
                    .unwrap_or(i64::MAX)
            })
    }
}

/// Reads a page of a list query: the query with `LIMIT` written into its text.
///
/// A bound `LIMIT $n` makes PostgreSQL plan the statement afresh on every call: the plan
/// it could keep must assume a tenth of the matching rows are wanted, which always looks
/// costlier than planning for the actual value. For a list that planning cost as much as
/// running it (pgbench, prepared: 14.7k tps with a bound limit, 28.7k with a written one).
/// The query must be ordered and not limited already.
pub trait FetchPage: Sized {
    fn fetch_page(self, page: &PageRequest) -> FetchFirst<Self> {
        FetchFirst {
            query: self,
            rows: page.fetch_size().to_string(),
        }
    }
}

impl<Q: Query> FetchPage for Q {}

/// See [`FetchPage`]. Its statement is cached by its text (no static query id: the
/// written limit is part of it).
#[derive(Debug, Clone)]
pub struct FetchFirst<Q> {
    query: Q,
    rows: String,
}

impl<Q: Query> Query for FetchFirst<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for FetchFirst<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for FetchFirst<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(" LIMIT ");
        out.push_sql(&self.rows);
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Trims the rows fetched beyond the page ([`PageRequest::fetch_limit`] or
    /// [`PageRequest::fetch_size`]); any of them means another page exists.
    pub fn from_overfetch(mut items: Vec<T>, request: &PageRequest) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Self { items, has_more }
    }

    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            has_more: self.has_more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(limit: i64) -> i64 {
        PageRequest {
            limit,
            starting_after: None,
        }
        .fetch_size()
    }

    #[test]
    fn a_page_reads_at_least_one_row_more_in_a_few_fixed_sizes() {
        assert_eq!(size(1), 11);
        assert_eq!(size(10), 11);
        assert_eq!(size(20), 21);
        assert_eq!(size(21), 51);
        assert_eq!(size(MAX_LIMIT), 101);
        // Beyond the API's largest page (an export), a power of two.
        assert_eq!(size(5000), 8192);
        assert_eq!(size(127), 128);
        assert_eq!(size(128), 256);
        let sizes: std::collections::BTreeSet<i64> = (1..=MAX_LIMIT).map(size).collect();
        assert_eq!(sizes.len(), 4);
    }

    #[test]
    fn the_surplus_is_trimmed_and_announces_another_page() {
        let request = PageRequest {
            limit: 3,
            starting_after: None,
        };
        let page = Page::from_overfetch((0..11).collect(), &request);
        assert_eq!((page.items, page.has_more), (vec![0, 1, 2], true));
        let page = Page::from_overfetch((0..3).collect(), &request);
        assert_eq!((page.items, page.has_more), (vec![0, 1, 2], false));
    }
}
