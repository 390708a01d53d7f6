-- EXPLAIN ANALYZE of the statements GET /v1/metrics runs on the rollups (docs/metrics.md,
-- "Performance"; BENCHMARKS.md), on a database seeded by bench/metrics_seed.sql:
--   psql -v merchant=<uuid> -f bench/metrics_explain.sql
-- `rollups_at` at each end of the default period (the last 30 days), then the new and
-- churned subscribers for the last 30 days, the last 366 days and 30 days a year ago:
-- `flip_sums_by_day` (every day row of the period: what GET /v1/metrics read before
-- migration 2026-12-10-210000) and, once that migration has run, `flip_sums` (whole
-- weeks plus the ragged days at both ends). The statements are those of
-- crates/store/src/repo/metrics.rs.
\set ON_ERROR_STOP on
SET jit = off;
PREPARE rollups_at(uuid, timestamptz) AS
WITH parts AS (
     SELECT currency, mrr, subscriptions, subscribers, paused,
            pauses_started AS pauses_started_before
       FROM metric_days
      WHERE merchant_id = $1 AND day < ($2 AT TIME ZONE 'UTC')::date
     UNION ALL
     SELECT currency, mrr, subscriptions, subscribers, paused,
            CASE WHEN at < $2 THEN pauses_started ELSE 0 END
       FROM metric_changes
      WHERE merchant_id = $1
        AND at >= date_trunc('day', $2 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        AND at <= $2
 )
 SELECT currency, coalesce(sum(mrr), 0) AS mrr,
        coalesce(sum(subscriptions), 0)::int8 AS subscriptions,
        coalesce(sum(subscribers), 0)::int8 AS subscribers,
        coalesce(sum(paused), 0)::int8 AS paused,
        coalesce(sum(pauses_started_before), 0)::int8 AS pauses_started_before
   FROM parts GROUP BY currency ORDER BY currency;
PREPARE flip_sums_by_day(uuid, timestamptz, timestamptz) AS
WITH parts AS (
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_days
      WHERE merchant_id = $1
        AND a_day > ($2 AT TIME ZONE 'UTC')::date
        AND a_day < ($3 AT TIME ZONE 'UTC')::date
        AND y_day < ($3 AT TIME ZONE 'UTC')::date
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_points
      WHERE merchant_id = $1 AND a > $2
        AND a < (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
        AND y <= $3
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_points
      WHERE merchant_id = $1
        AND y >= date_trunc('day', $3 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        AND y <= $3
        AND a >= (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
 )
 SELECT currency, coalesce(sum(new_w), 0)::int8 AS new_w,
        coalesce(sum(churn_w), 0)::int8 AS churn_w, coalesce(sum(churn_mrr_w), 0) AS churn_mrr_w
   FROM parts GROUP BY currency ORDER BY currency;
SELECT to_regclass('metric_flip_weeks') IS NOT NULL AS weeks \gset
\if :weeks
PREPARE flip_sums(uuid, timestamptz, timestamptz) AS
WITH parts AS (
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_weeks
      WHERE merchant_id = $1 AND a_week >= (tenure_week(($2 AT TIME ZONE 'UTC')::date) + 7) AND a_week < tenure_week(($3 AT TIME ZONE 'UTC')::date) AND y_week < tenure_week(($3 AT TIME ZONE 'UTC')::date)
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_days
      WHERE merchant_id = $1 AND a_day > ($2 AT TIME ZONE 'UTC')::date AND a_day < least((tenure_week(($2 AT TIME ZONE 'UTC')::date) + 7), ($3 AT TIME ZONE 'UTC')::date)
        AND y_day < ($3 AT TIME ZONE 'UTC')::date
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_days
      WHERE merchant_id = $1 AND y_day >= tenure_week(($3 AT TIME ZONE 'UTC')::date) AND y_day < ($3 AT TIME ZONE 'UTC')::date
        AND a_day >= (tenure_week(($2 AT TIME ZONE 'UTC')::date) + 7) AND a_day < ($3 AT TIME ZONE 'UTC')::date
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_days
      WHERE merchant_id = $1 AND a_day >= greatest((tenure_week(($2 AT TIME ZONE 'UTC')::date) + 7), tenure_week(($3 AT TIME ZONE 'UTC')::date)) AND a_day < ($3 AT TIME ZONE 'UTC')::date
        AND y_day < tenure_week(($3 AT TIME ZONE 'UTC')::date)
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_points
      WHERE merchant_id = $1 AND a > $2
        AND a < (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
        AND y <= $3
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w
       FROM metric_flip_points
      WHERE merchant_id = $1
        AND y >= date_trunc('day', $3 AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        AND y <= $3
        AND a >= (date_trunc('day', $2 AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
 )
 SELECT currency, coalesce(sum(new_w), 0)::int8 AS new_w,
        coalesce(sum(churn_w), 0)::int8 AS churn_w, coalesce(sum(churn_mrr_w), 0) AS churn_mrr_w
   FROM parts GROUP BY currency ORDER BY currency;
\endif
\echo rollups_at(now - 30 days)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE rollups_at(:'merchant', now() - interval '30 days');
\echo rollups_at(now)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE rollups_at(:'merchant', now());
\echo flip_sums_by_day(last 30 days)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums_by_day(:'merchant', now() - interval '30 days', now());
\echo flip_sums_by_day(last 366 days)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums_by_day(:'merchant', now() - interval '366 days', now());
\echo flip_sums_by_day(30 days, a year ago)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums_by_day(:'merchant', now() - interval '395 days',
                                                   now() - interval '365 days');
\if :weeks
\echo flip_sums(last 30 days)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums(:'merchant', now() - interval '30 days', now());
\echo flip_sums(last 366 days)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums(:'merchant', now() - interval '366 days', now());
\echo flip_sums(30 days, a year ago)
EXPLAIN (ANALYZE, SUMMARY) EXECUTE flip_sums(:'merchant', now() - interval '395 days',
                                            now() - interval '365 days');
\endif
