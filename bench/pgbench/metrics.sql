-- Same-statement ceiling of the metrics scenario (bench/pgbench/README.md): the
-- statements GET /v1/metrics (the default period, the last 30 days) runs (one repeatable-read transaction); the period's ends are now() - 30 days and now() (the service binds the same instants), captured from PostgreSQL's log of one request
-- (2026-12-07, branch benchkit), with ids drawn from bench.* instead of the captured ones.
BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
SET LOCAL jit = off;
WITH parts AS (
	             SELECT currency, mrr, subscriptions, subscribers, paused,
	                    pauses_started AS pauses_started_before
	               FROM metric_days
	              WHERE merchant_id = :merchant AND day < ((now() - interval '30 days') AT TIME ZONE 'UTC')::date
	             UNION ALL
	             SELECT currency, mrr, subscriptions, subscribers, paused,
	                    CASE WHEN at < (now() - interval '30 days') THEN pauses_started ELSE 0 END
	               FROM metric_changes
	              WHERE merchant_id = :merchant
	                AND at >= date_trunc('day', (now() - interval '30 days') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	                AND at <= (now() - interval '30 days')
	         )
	         SELECT currency, least(greatest(coalesce(sum(mrr), 0), -9223372036854775808), 9223372036854775807)::int8 AS mrr,
	                coalesce(sum(subscriptions), 0)::int8 AS subscriptions,
	                coalesce(sum(subscribers), 0)::int8 AS subscribers,
	                coalesce(sum(paused), 0)::int8 AS paused,
	                coalesce(sum(pauses_started_before), 0)::int8 AS pauses_started_before
	           FROM parts GROUP BY currency ORDER BY currency;
WITH parts AS (
	             SELECT currency, mrr, subscriptions, subscribers, paused,
	                    pauses_started AS pauses_started_before
	               FROM metric_days
	              WHERE merchant_id = :merchant AND day < (now() AT TIME ZONE 'UTC')::date
	             UNION ALL
	             SELECT currency, mrr, subscriptions, subscribers, paused,
	                    CASE WHEN at < now() THEN pauses_started ELSE 0 END
	               FROM metric_changes
	              WHERE merchant_id = :merchant
	                AND at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	                AND at <= now()
	         )
	         SELECT currency, least(greatest(coalesce(sum(mrr), 0), -9223372036854775808), 9223372036854775807)::int8 AS mrr,
	                coalesce(sum(subscriptions), 0)::int8 AS subscriptions,
	                coalesce(sum(subscribers), 0)::int8 AS subscribers,
	                coalesce(sum(paused), 0)::int8 AS paused,
	                coalesce(sum(pauses_started_before), 0)::int8 AS pauses_started_before
	           FROM parts GROUP BY currency ORDER BY currency;
WITH per_customer AS (
	             SELECT currency,
	                    (array_agg(customer_paying - subscriptions ORDER BY id))[1] > 0
	                        AS paying_start,
	                    (array_agg(customer_mrr - mrr ORDER BY id))[1] AS mrr_start,
	                    (array_agg(customer_paying ORDER BY id DESC))[1] > 0 AS paying_end,
	                    (array_agg(customer_live ORDER BY id DESC))[1] > 0 AS live_end
	               FROM metric_changes
	              WHERE merchant_id = :merchant AND at > (now() - interval '30 days') AND at <= now()
	              GROUP BY currency, customer_id
	         )
	         SELECT currency,
	                count(*) FILTER (WHERE paying_end AND NOT paying_start) AS new_subscribers,
	                count(*) FILTER (WHERE paying_start AND NOT live_end) AS churned_subscribers,
	                least(greatest(coalesce(sum(mrr_start) FILTER (WHERE paying_start AND NOT live_end), 0), -9223372036854775808), 9223372036854775807)::int8 AS churned_mrr
	           FROM per_customer GROUP BY currency ORDER BY currency;
SELECT reason, count(*) AS count FROM cancellation_requests
	          WHERE merchant_id = :merchant AND created_at >= (now() - interval '30 days') AND created_at < now()
	          GROUP BY reason ORDER BY reason;
SELECT count(*) AS presented,
	                count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
	                count(*) FILTER (WHERE outcome = 'declined') AS declined
	           FROM retention_offer_outcomes
	          WHERE merchant_id = :merchant AND created_at >= (now() - interval '30 days') AND created_at < now();
COMMIT;
