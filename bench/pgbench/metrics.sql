-- Same-statement ceiling of the metrics scenario (bench/pgbench/README.md): the
-- statements GET /v1/metrics (the default period, the last 30 days) runs (one repeatable-read transaction); the period's ends are now() - 30 days and now() (the service binds the same instants), captured from PostgreSQL's log of one request
-- (2026-12-07, branch benchkit), with ids drawn from bench.* instead of the captured ones;
-- the new and churned subscribers' statement replaced by the one of crates/store/src/repo/
-- metrics.rs `flip_sums` (the flips' points, whole weeks plus ragged days: migration
-- 2026-12-10-210000; branch metricsweek, written from the code, not captured).
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
WITH parts AS (
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_weeks
	              WHERE merchant_id = :merchant AND a_week >= (tenure_week(((now() - interval '30 days') AT TIME ZONE 'UTC')::date) + 7) AND a_week < tenure_week((now() AT TIME ZONE 'UTC')::date) AND y_week < tenure_week((now() AT TIME ZONE 'UTC')::date)
	             UNION ALL
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_days
	              WHERE merchant_id = :merchant AND a_day > ((now() - interval '30 days') AT TIME ZONE 'UTC')::date AND a_day < least((tenure_week(((now() - interval '30 days') AT TIME ZONE 'UTC')::date) + 7), (now() AT TIME ZONE 'UTC')::date)
	                AND y_day < (now() AT TIME ZONE 'UTC')::date
	             UNION ALL
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_days
	              WHERE merchant_id = :merchant AND y_day >= tenure_week((now() AT TIME ZONE 'UTC')::date) AND y_day < (now() AT TIME ZONE 'UTC')::date
	                AND a_day >= (tenure_week(((now() - interval '30 days') AT TIME ZONE 'UTC')::date) + 7) AND a_day < (now() AT TIME ZONE 'UTC')::date
	             UNION ALL
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_days
	              WHERE merchant_id = :merchant AND a_day >= greatest((tenure_week(((now() - interval '30 days') AT TIME ZONE 'UTC')::date) + 7), tenure_week((now() AT TIME ZONE 'UTC')::date)) AND a_day < (now() AT TIME ZONE 'UTC')::date
	                AND y_day < tenure_week((now() AT TIME ZONE 'UTC')::date)
	             UNION ALL
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_points
	              WHERE merchant_id = :merchant AND a > (now() - interval '30 days')
	                AND a < (date_trunc('day', (now() - interval '30 days') AT TIME ZONE 'UTC') + interval '1 day')
	                        AT TIME ZONE 'UTC'
	                AND y <= now()
	             UNION ALL
	             SELECT currency, new_w, churn_w, churn_mrr_w
	               FROM metric_flip_points
	              WHERE merchant_id = :merchant
	                AND y >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	                AND y <= now()
	                AND a >= (date_trunc('day', (now() - interval '30 days') AT TIME ZONE 'UTC') + interval '1 day')
	                         AT TIME ZONE 'UTC'
	         )
	         SELECT currency, coalesce(sum(new_w), 0)::int8 AS new_w,
	                coalesce(sum(churn_w), 0)::int8 AS churn_w, least(greatest(coalesce(sum(churn_mrr_w), 0), -9223372036854775808), 9223372036854775807)::int8 AS churn_mrr_w
	           FROM parts GROUP BY currency ORDER BY currency;
SELECT reason, count(*) AS count FROM cancellation_requests
	          WHERE merchant_id = :merchant AND created_at >= (now() - interval '30 days') AND created_at < now()
	          GROUP BY reason ORDER BY reason;
SELECT count(*) AS presented,
	                count(*) FILTER (WHERE outcome = 'accepted') AS accepted,
	                count(*) FILTER (WHERE outcome = 'declined') AS declined
	           FROM retention_offer_outcomes
	          WHERE merchant_id = :merchant AND created_at >= (now() - interval '30 days') AND created_at < now();
COMMIT;
