-- Same-statement ceiling of the search_tag scenario (bench/pgbench/README.md): the
-- statements GET /v1/customers?tag=…&limit=20 runs (one, outside a transaction), captured from PostgreSQL's log of one request (2026-12-07, branch benchkit),
-- with ids drawn from bench.* instead of the captured ones. Run by bench/run.sh as
-- pgbench -n -M prepared -f this -D merchant=… -D customers=… -D tags=… …
\set t random(1, :tags)
SELECT tag FROM bench.tags WHERE n = :t \gset
SELECT "customers"."merchant_id", "customers"."id", "customers"."external_id", "customers"."email", "customers"."name", "customers"."locale", "customers"."metadata", "customers"."tags", "customers"."created_at", "customers"."updated_at", "customers"."erased_at", "customers"."test_clock_id" FROM "customers" WHERE (("customers"."merchant_id" = :merchant) AND ("customers"."tags" @> ARRAY[:tag]::text[])) ORDER BY "customers"."id" DESC LIMIT 21;
