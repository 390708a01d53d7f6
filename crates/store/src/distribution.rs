//! Whether the schema can be distributed by merchant (Citus, `merchant_id` as the
//! distribution column), read from PostgreSQL's catalogue so that a new table cannot
//! quietly break it (`tenure check-distribution`, run by CI, and a test that breaks a
//! table on purpose).
//!
//! Citus co-locates rows of distributed tables that share the distribution column, and
//! can only enforce a primary key, a unique constraint or a foreign key between two
//! distributed tables on one node, that is when it includes that column. So every table
//! holding a merchant's data has a non-null `merchant_id` in its primary key, in each of
//! its unique indexes and in each foreign key to another distributed table. The few
//! tables that belong to no merchant are named below with the reason: reference tables
//! are copied to every node (small, read by every request); local tables stay on the
//! coordinator. A reference table may not point at a distributed one.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::error::StoreResult;

/// Tables copied to every node, and why they have no merchant column.
pub const REFERENCE_TABLES: &[(&str, &str)] = &[
    (
        "merchants",
        "the tenants themselves: one row each, read by every request",
    ),
    (
        "api_keys",
        "a request's key is found by its hash before its merchant is known",
    ),
    ("server_secrets", "the operator's, of no merchant"),
];

/// Tables that stay on the coordinator.
pub const LOCAL_TABLES: &[(&str, &str)] = &[
    (
        "__diesel_schema_migrations",
        "which migrations ran: the schema's, of no merchant",
    ),
    (
        "rate_limit_buckets",
        "UNLOGGED counters keyed by caller, shared by the processes of one coordinator",
    ),
];

/// One way a table breaks distribution by merchant.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Violation {
    #[diesel(sql_type = Text)]
    pub table: String,
    #[diesel(sql_type = Text)]
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.table, self.problem)
    }
}

/// Every violation in the connected database's `public` schema, by table.
pub async fn violations(conn: &mut AsyncPgConnection) -> StoreResult<Vec<Violation>> {
    let names = |tables: &[(&str, &str)]| -> Vec<String> {
        tables.iter().map(|(name, _)| (*name).to_owned()).collect()
    };
    Ok(diesel::sql_query(CHECK)
        .bind::<diesel::sql_types::Array<Text>, _>(names(REFERENCE_TABLES))
        .bind::<diesel::sql_types::Array<Text>, _>(names(LOCAL_TABLES))
        .load(conn)
        .await?)
}

/// $1: reference tables, $2: local tables. Every other table in `public` is distributed.
const CHECK: &str = r#"
WITH tables AS (
  SELECT c.oid, c.relname::text AS name,
         CASE WHEN c.relname = ANY ($1) THEN 'reference'
              WHEN c.relname = ANY ($2) THEN 'local'
              ELSE 'distributed' END AS kind,
         (SELECT a.attnum FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = 'merchant_id' AND NOT a.attisdropped) AS merchant_col,
         (SELECT a.attnotnull FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attname = 'merchant_id' AND NOT a.attisdropped) AS merchant_not_null
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
),
distributed AS (SELECT * FROM tables WHERE kind = 'distributed'),
problems AS (
  SELECT name, 'no merchant_id column (distribute it by merchant, or name it a reference or local table with the reason)' AS problem
    FROM distributed WHERE merchant_col IS NULL
  UNION ALL
  SELECT name, 'merchant_id may be null' FROM distributed
   WHERE merchant_col IS NOT NULL AND NOT merchant_not_null
  UNION ALL
  SELECT name, 'no primary key' FROM distributed d
   WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = d.oid AND i.indisprimary)
  UNION ALL
  SELECT d.name, format('unique index %s does not include merchant_id', ic.relname)
    FROM distributed d JOIN pg_index i ON i.indrelid = d.oid AND i.indisunique
    JOIN pg_class ic ON ic.oid = i.indexrelid
   WHERE d.merchant_col IS NULL OR NOT (d.merchant_col = ANY (i.indkey::int2[]))
  UNION ALL
  SELECT d.name, format('foreign key %s to %s does not pair merchant_id with merchant_id', con.conname, t.name)
    FROM distributed d JOIN pg_constraint con ON con.conrelid = d.oid AND con.contype = 'f'
    JOIN tables t ON t.oid = con.confrelid AND t.kind = 'distributed'
   WHERE NOT EXISTS (
     SELECT 1 FROM unnest(con.conkey, con.confkey) AS k(col, ref)
      WHERE k.col = d.merchant_col AND k.ref = t.merchant_col)
  UNION ALL
  SELECT d.name, format('foreign key %s points at the local table %s', con.conname, t.name)
    FROM distributed d JOIN pg_constraint con ON con.conrelid = d.oid AND con.contype = 'f'
    JOIN tables t ON t.oid = con.confrelid AND t.kind = 'local'
  UNION ALL
  SELECT r.name, format('reference table with foreign key %s to the distributed table %s', con.conname, t.name)
    FROM tables r JOIN pg_constraint con ON con.conrelid = r.oid AND con.contype = 'f'
    JOIN tables t ON t.oid = con.confrelid AND t.kind = 'distributed'
   WHERE r.kind = 'reference'
  UNION ALL
  SELECT listed, 'named a reference or local table but does not exist'
    FROM unnest($1 || $2) AS listed
   WHERE NOT EXISTS (SELECT 1 FROM tables t WHERE t.name = listed)
)
SELECT name AS table, problem FROM problems ORDER BY name, problem
"#;
