-- Checks, on a seeded database (bench/metrics_seed.sql) migrated to 2026-12-10-210000, that
-- the new and churned subscribers' sums read as whole weeks plus ragged days (`flip_sums`
-- of crates/store/src/repo/metrics.rs, what GET /v1/metrics reads) equal the sums of every
-- day row of the period (`flip_sums_by_day`), for :periods random periods of up to 366
-- days over the last two years, half of them starting or ending at midnight or on a Monday:
--   psql -v merchant=<uuid> -v periods=500 -f bench/metrics_weeks_check.sql
-- Prints how many (period, currency) rows were compared and how many differ (0).
\set ON_ERROR_STOP on
SET jit = off;
CREATE FUNCTION pg_temp.by_day(m uuid, f timestamptz, t timestamptz)
RETURNS TABLE (currency text, nw bigint, cw bigint, cmw numeric) LANGUAGE sql AS $$
 WITH b AS (SELECT (f AT TIME ZONE 'UTC')::date AS fd, (t AT TIME ZONE 'UTC')::date AS td),
 parts AS (
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_days, b
      WHERE merchant_id = m AND a_day > fd AND a_day < td AND y_day < td
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND a > f AND a < (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' AND y <= t
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND y >= date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND y <= t
        AND a >= (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
 SELECT currency, sum(new_w)::bigint, sum(churn_w)::bigint, sum(churn_mrr_w) FROM parts GROUP BY currency $$;
CREATE FUNCTION pg_temp.by_week(m uuid, f timestamptz, t timestamptz)
RETURNS TABLE (currency text, nw bigint, cw bigint, cmw numeric) LANGUAGE sql AS $$
 WITH b AS (SELECT (f AT TIME ZONE 'UTC')::date AS fd, (t AT TIME ZONE 'UTC')::date AS td,
                   tenure_week((f AT TIME ZONE 'UTC')::date) + 7 AS a0,
                   tenure_week((t AT TIME ZONE 'UTC')::date) AS t0),
 parts AS (
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_weeks, b
      WHERE merchant_id = m AND a_week >= a0 AND a_week < t0 AND y_week < t0
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_days, b
      WHERE merchant_id = m AND a_day > fd AND a_day < least(a0, td) AND y_day < td
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_days, b
      WHERE merchant_id = m AND y_day >= t0 AND y_day < td AND a_day >= a0 AND a_day < td
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_days, b
      WHERE merchant_id = m AND a_day >= greatest(a0, t0) AND a_day < td AND y_day < t0
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND a > f AND a < (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' AND y <= t
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND y >= date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND y <= t
        AND a >= (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
 SELECT currency, sum(new_w)::bigint, sum(churn_w)::bigint, sum(churn_mrr_w) FROM parts GROUP BY currency $$;
WITH raw AS (
  SELECT f, least(f + random() * interval '366 days', now()) AS t, random() AS r1, random() AS r2
    FROM (SELECT now() - random() * interval '730 days' AS f FROM generate_series(1, :periods)) x
), periods AS (
  SELECT CASE WHEN r1 < 0.25 THEN date_trunc('day', f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
              WHEN r1 < 0.5 THEN tenure_week((f AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC'
              ELSE f END AS f,
         CASE WHEN r2 < 0.25 THEN date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
              WHEN r2 < 0.5 THEN tenure_week((t AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC'
              ELSE t END AS t
    FROM raw
), cmp AS (
  SELECT p.f, p.t, d.currency, (d.nw, d.cw, d.cmw) AS by_day, (w.nw, w.cw, w.cmw) AS by_week
    FROM periods p CROSS JOIN LATERAL pg_temp.by_day(:'merchant', p.f, p.t) d
    LEFT JOIN LATERAL pg_temp.by_week(:'merchant', p.f, p.t) w ON w.currency = d.currency
   WHERE p.f < p.t
)
SELECT count(*) AS compared, count(*) FILTER (WHERE by_day IS DISTINCT FROM by_week) AS differing,
       count(*) FILTER (WHERE t - f > interval '14 days') AS longer_than_two_weeks FROM cmp;
