-- Same-statement ceiling of the search_tag scenario (bench/pgbench/README.md): the
-- statements GET /v1/customers?tag=…&limit=20 runs (one, outside a transaction), captured from PostgreSQL's log of one request (2026-12-07, branch benchkit;
-- since issue 22's customer_tags, branch tags, the tag read from that table),
-- with ids drawn from bench.* instead of the captured ones. Run by bench/run.sh as
-- pgbench -n -M prepared -f this -D merchant=… -D customers=… -D tags=… …
\set t random(1, :tags)
SELECT tag FROM bench.tags WHERE n = :t \gset
SELECT "customers"."merchant_id", "customers"."id", "customers"."external_id", "customers"."email", "customers"."name", "customers"."locale", "customers"."metadata", "customers"."tags", "customers"."created_at", "customers"."updated_at", "customers"."erased_at", "customers"."test_clock_id", "customers"."channel_preference" FROM "customers" WHERE (("customers"."merchant_id" = :merchant) AND "customers"."id" IN (SELECT "customer_tags"."customer_id" FROM "customer_tags" WHERE (("customer_tags"."merchant_id" = :merchant) AND ("customer_tags"."tag" = :tag)))) ORDER BY "customers"."id" DESC LIMIT 21;
