-- Checks, on a seeded database (bench/metrics_seed.sql, then migration 2026-12-09-050000),
-- that new and churned subscribers from the flips' points (what GET /v1/metrics reads)
-- equal what the changes of the period give customer by customer (the statement the
-- rollups used before, linear in the period's changes), for :periods random periods of
-- up to 366 days over the seeded two years plus the last 30 days:
--   psql -v merchant=<uuid> -v periods=100 -f bench/metrics_flips_check.sql
-- Prints how many (period, currency) rows were compared and how many differ (0).
\set ON_ERROR_STOP on
SET jit = off;
CREATE FUNCTION pg_temp.subs_at(m uuid, t timestamptz) RETURNS TABLE (currency text, subscribers bigint) LANGUAGE sql AS $$
  SELECT currency, sum(subscribers)::bigint FROM (
    SELECT currency, subscribers FROM metric_days WHERE merchant_id = m AND day < (t AT TIME ZONE 'UTC')::date
    UNION ALL SELECT currency, subscribers FROM metric_changes WHERE merchant_id = m
      AND at >= date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND at <= t) p GROUP BY currency $$;
CREATE FUNCTION pg_temp.old(m uuid, f timestamptz, t timestamptz) RETURNS TABLE (currency text, n bigint, c bigint, cm numeric) LANGUAGE sql AS $$
 WITH per_customer AS (
     SELECT currency,
            (array_agg(customer_paying - subscriptions ORDER BY id))[1] > 0 AS paying_start,
            (array_agg(customer_mrr - mrr ORDER BY id))[1] AS mrr_start,
            (array_agg(customer_paying ORDER BY id DESC))[1] > 0 AS paying_end,
            (array_agg(customer_live ORDER BY id DESC))[1] > 0 AS live_end
       FROM metric_changes WHERE merchant_id = m AND at > f AND at <= t
      GROUP BY currency, customer_id)
 SELECT currency, count(*) FILTER (WHERE paying_end AND NOT paying_start),
        count(*) FILTER (WHERE paying_start AND NOT live_end),
        coalesce(sum(mrr_start) FILTER (WHERE paying_start AND NOT live_end), 0)
   FROM per_customer GROUP BY currency $$;
CREATE FUNCTION pg_temp.flips(m uuid, f timestamptz, t timestamptz) RETURNS TABLE (currency text, nw bigint, cw bigint, cmw numeric) LANGUAGE sql AS $$
 WITH parts AS (
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_days
      WHERE merchant_id = m AND a_day > (f AT TIME ZONE 'UTC')::date AND a_day < (t AT TIME ZONE 'UTC')::date
        AND y_day < (t AT TIME ZONE 'UTC')::date
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND a > f AND a < (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC' AND y <= t
     UNION ALL
     SELECT currency, new_w, churn_w, churn_mrr_w FROM metric_flip_points
      WHERE merchant_id = m AND y >= date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AND y <= t
        AND a >= (date_trunc('day', f AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC')
 SELECT currency, sum(new_w)::bigint, sum(churn_w)::bigint, sum(churn_mrr_w) FROM parts GROUP BY currency $$;
CREATE FUNCTION pg_temp.new(m uuid, f timestamptz, t timestamptz) RETURNS TABLE (currency text, n bigint, c bigint, cm numeric) LANGUAGE sql AS $$
  SELECT e.currency, e.subscribers - coalesce(s.subscribers, 0) - coalesce(fl.nw, 0), -coalesce(fl.cw, 0), -coalesce(fl.cmw, 0)
    FROM pg_temp.subs_at(m, t) e LEFT JOIN pg_temp.subs_at(m, f) s USING (currency) LEFT JOIN pg_temp.flips(m, f, t) fl USING (currency) $$;
WITH periods AS (
  SELECT f, f + (random() * 366) * interval '1 day' AS t FROM (
    SELECT now() - random() * interval '760 days' AS f FROM generate_series(1, :periods)) x
  UNION ALL SELECT now() - interval '30 days', now()
  UNION ALL SELECT date_trunc('day', now()) - interval '30 days', date_trunc('day', now())
), cmp AS (
  SELECT p.f, p.t, o.currency, o.n AS o_n, nw.n AS nn, o.c AS oc, nw.c AS nc, o.cm AS ocm, nw.cm AS ncm
    FROM periods p CROSS JOIN LATERAL pg_temp.old(:'merchant', p.f, least(p.t, now())) o
    LEFT JOIN LATERAL pg_temp.new(:'merchant', p.f, least(p.t, now())) nw ON nw.currency = o.currency
)
SELECT count(*) AS compared, count(*) FILTER (WHERE (o_n, oc, ocm) IS DISTINCT FROM (nn, nc, ncm)) AS differing,
       sum(o_n) AS new_total, sum(oc) AS churned_total FROM cmp;
SELECT * FROM pg_temp.old(:'merchant', now() - interval '30 days', now()) ORDER BY 1;
SELECT * FROM pg_temp.new(:'merchant', now() - interval '30 days', now()) ORDER BY 1;
