//! Positions in PostgreSQL's write-ahead log, which tell whether a streaming replica has
//! replayed a write yet (docs/scaling.md, "A read replica").

use std::fmt;
use std::str::FromStr;

use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::{StoreError, StoreResult};

/// A WAL position (`pg_lsn`): what the primary has written, or a replica replayed, up to.
/// Written as PostgreSQL writes it, two hexadecimal halves (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    pub const fn new(position: u64) -> Self {
        Self(position)
    }
}

/// A text that is not a WAL position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WAL position (two hexadecimal numbers joined by `/`)")]
pub struct InvalidLsn;

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (high, low) = text.split_once('/').ok_or(InvalidLsn)?;
        let half = |part: &str| {
            let hex = !part.is_empty() && part.len() <= 8;
            let digits = part.bytes().all(|b| b.is_ascii_hexdigit());
            (hex && digits)
                .then(|| u32::from_str_radix(part, 16).ok())
                .flatten()
                .ok_or(InvalidLsn)
        };
        Ok(Self((u64::from(half(high)?) << 32) | u64::from(half(low)?)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(diesel::QueryableByName)]
struct Position {
    #[diesel(sql_type = Nullable<Text>)]
    lsn: Option<String>,
}

fn parse(position: Option<String>) -> StoreResult<Option<Lsn>> {
    position
        .map(|text| {
            text.parse()
                .map_err(|_| StoreError::Corrupt(format!("WAL position {text:?}")))
        })
        .transpose()
}

/// How far the primary has put records in its WAL: every transaction committed before
/// this call lies below it, including one that committed without waiting for its flush
/// (`synchronous_commit = off`, as the audit row does), which `pg_current_wal_lsn()`, the
/// position written out so far, may not cover yet. A replica holds it once the primary has
/// flushed it and the replica replayed it.
pub async fn written_position(conn: &mut AsyncPgConnection) -> StoreResult<Lsn> {
    let row: Position = diesel::sql_query("SELECT pg_current_wal_insert_lsn()::text AS lsn")
        .get_result(conn)
        .await?;
    parse(row.lsn)?.ok_or_else(|| StoreError::Corrupt("no WAL position".to_owned()))
}

/// How far a replica has replayed the primary's WAL; `None` from a server that is not
/// replaying (not in recovery: a primary, or a promoted replica), which holds every write
/// it was sent.
pub async fn replayed_position(conn: &mut AsyncPgConnection) -> StoreResult<Option<Lsn>> {
    let row: Position = diesel::sql_query("SELECT pg_last_wal_replay_lsn()::text AS lsn")
        .get_result(conn)
        .await?;
    parse(row.lsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_print_as_postgresql_writes_them() {
        for text in ["0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "0/1"] {
            assert_eq!(text.parse::<Lsn>().unwrap().to_string(), text);
        }
        assert_eq!(
            "16/b374d848".parse::<Lsn>().unwrap().to_string(),
            "16/B374D848"
        );
        assert!("1/0".parse::<Lsn>().unwrap() > "0/FFFFFFFF".parse::<Lsn>().unwrap());
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "1",
            "1/2/3",
            "g/0",
            "100000000/0",
            "+1/0",
            " 1/0",
        ] {
            assert_eq!(bad.parse::<Lsn>(), Err(InvalidLsn), "{bad:?}");
        }
    }
}
