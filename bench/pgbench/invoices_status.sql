-- Same-statement ceiling of the invoices_status scenario (bench/pgbench/README.md): the
-- statements GET /v1/invoices?status=paid&limit=20 runs (two, outside a transaction), captured from PostgreSQL's log of one request (2026-12-07, branch benchkit),
-- with ids drawn from bench.* instead of the captured ones. Run by bench/run.sh as
-- pgbench -n -M prepared -f this -D merchant=… -D customers=… -D tags=… …
-- pgbench's \gset takes one row, so the page query is wrapped in array_agg to pass its
-- ids to the lines query, as the service passes the ids it read.
SELECT coalesce(array_agg(id), '{}') AS ids FROM (
SELECT "invoices"."merchant_id", "invoices"."id", "invoices"."number", "invoices"."customer_id", "invoices"."subscription_id", "invoices"."period_start", "invoices"."period_end", "invoices"."status", "invoices"."currency", "invoices"."total", "invoices"."amount_paid", "invoices"."amount_refunded", "invoices"."attempt_count", "invoices"."created_at", "invoices"."updated_at", "invoices"."paid_at", invoices.next_payment_attempt_at FROM "invoices" WHERE (("invoices"."merchant_id" = :merchant) AND ("invoices"."status" = 'paid')) ORDER BY "invoices"."created_at" DESC, "invoices"."id" DESC LIMIT 21
) page \gset
SELECT "invoice_lines"."merchant_id", "invoice_lines"."invoice_id", "invoice_lines"."position", "invoice_lines"."kind", "invoice_lines"."description", "invoice_lines"."amount", "invoice_lines"."quantity" FROM "invoice_lines" WHERE (("invoice_lines"."merchant_id" = :merchant) AND ("invoice_lines"."invoice_id" = ANY(:ids::uuid[]))) ORDER BY "invoice_lines"."invoice_id", "invoice_lines"."position";
