-- Same-statement ceiling of the context scenario (bench/pgbench/README.md): the
-- statements GET /v1/customers/{id}/context runs (one repeatable-read transaction), captured from PostgreSQL's log of one request
-- (2026-12-07, branch benchkit), with ids drawn from bench.* instead of the captured ones.
\set n random(1, :customers)
SELECT customer_id AS cid, subscription_id AS sid, sub_ref, email FROM bench.customers WHERE n = :n \gset
BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT "customers"."merchant_id", "customers"."id", "customers"."external_id", "customers"."email", "customers"."name", "customers"."locale", "customers"."metadata", "customers"."tags", "customers"."created_at", "customers"."updated_at", "customers"."erased_at", "customers"."test_clock_id" FROM "customers" WHERE (("customers"."merchant_id" = :merchant) AND ("customers"."id" = :cid));
SELECT currency, sum(paid)::int8 AS paid, sum(refunded)::int8 AS refunded FROM (
	             SELECT currency, amount AS paid, 0::int8 AS refunded FROM payments
	              WHERE merchant_id = :merchant AND customer_id = :cid AND status = 'succeeded'
	             UNION ALL
	             SELECT r.currency, 0, r.amount FROM refunds r
	               JOIN payments p ON p.merchant_id = r.merchant_id AND p.id = r.payment_id
	              WHERE r.merchant_id = :merchant AND p.customer_id = :cid
	         ) t GROUP BY currency ORDER BY currency;
SELECT s.id, s.status, s.plan_id, p.name AS plan_name, p.amount, p.currency,
	                p.billing_interval, p.interval_count, s.created_at
	           FROM subscriptions s JOIN plans p ON p.merchant_id = s.merchant_id AND p.id = s.plan_id
	          WHERE s.merchant_id = :merchant AND s.customer_id = :cid ORDER BY s.id DESC;
SELECT count(*) AS n FROM payments WHERE merchant_id = :merchant AND customer_id = :cid
	            AND status IN ('declined', 'failed') AND created_at >= (now() - interval '30 days');
SELECT "payment_methods"."merchant_id", "payment_methods"."id", "payment_methods"."customer_id", "payment_methods"."gateway_token", "payment_methods"."brand", "payment_methods"."last4", "payment_methods"."exp_month", "payment_methods"."exp_year", "payment_methods"."is_default", "payment_methods"."created_at", "payment_methods"."detached_at" FROM "payment_methods" WHERE ((("payment_methods"."merchant_id" = :merchant) AND ("payment_methods"."customer_id" = :cid)) AND "payment_methods"."is_default") LIMIT 1;
SELECT id, subject, status, channel, created_at, updated_at FROM (
	             SELECT *, row_number() OVER (ORDER BY id DESC) AS rn FROM support_tickets
	              WHERE merchant_id = :merchant AND customer_id = :cid
	         ) t WHERE status = 'open' OR rn <= 5 ORDER BY id DESC;
SELECT id, subscription_id, reason, status, effective_at, created_at
	           FROM cancellation_requests WHERE merchant_id = :merchant AND customer_id = :cid
	          ORDER BY id DESC LIMIT 50;
SELECT "segment_settings"."currency", "segment_settings"."high_ltv_threshold" FROM "segment_settings" WHERE ("segment_settings"."merchant_id" = :merchant) ORDER BY "segment_settings"."currency";
SELECT id, event_type, resource_id, created_at FROM events
	          WHERE merchant_id = :merchant AND resource_id = ANY(ARRAY[:sub_ref]::text[])
	            AND event_type IN ('subscription.paused', 'subscription.resumed',
	                'subscription.pause_scheduled', 'subscription.cancel_scheduled',
	                'subscription.canceled', 'subscription.cancellation_requested',
	                'subscription.cancellation_withdrawn')
	          ORDER BY id DESC LIMIT 100;
SELECT "orders"."merchant_id", "orders"."id", "orders"."customer_id", "orders"."subscription_id", "orders"."invoice_id", "orders"."status", "orders"."period_start", "orders"."shipped_at", "orders"."body", "orders"."created_at", "orders"."updated_at" FROM "orders" WHERE (("orders"."merchant_id" = :merchant) AND ("orders"."customer_id" = :cid)) ORDER BY "orders"."id" DESC LIMIT 5;
SELECT "orders"."merchant_id", "orders"."id", "orders"."customer_id", "orders"."subscription_id", "orders"."invoice_id", "orders"."status", "orders"."period_start", "orders"."shipped_at", "orders"."body", "orders"."created_at", "orders"."updated_at" FROM "orders" WHERE ((("orders"."merchant_id" = :merchant) AND ("orders"."customer_id" = :cid)) AND ("orders"."shipped_at" IS NOT NULL)) ORDER BY "orders"."shipped_at" DESC LIMIT 1;
SELECT "customer_balances"."currency", "customer_balances"."balance", "customer_balances"."updated_at" FROM "customer_balances" WHERE (("customer_balances"."merchant_id" = :merchant) AND ("customer_balances"."customer_id" = :cid)) ORDER BY "customer_balances"."currency" ASC;
SELECT "agent_overrides"."merchant_id", "agent_overrides"."id", "agent_overrides"."customer_id", "agent_overrides"."subscription_id", "agent_overrides"."kind", "agent_overrides"."reason", "agent_overrides"."agent", "agent_overrides"."amount", "agent_overrides"."currency", "agent_overrides"."created_at", "agent_overrides"."limits" FROM "agent_overrides" WHERE (("agent_overrides"."merchant_id" = :merchant) AND ("agent_overrides"."customer_id" = :cid)) ORDER BY "agent_overrides"."id" DESC LIMIT 11;
COMMIT;
