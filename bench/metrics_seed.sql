-- Seeds one merchant with a subscription history for the metrics measurements
-- (docs/metrics.md, "Performance"; BENCHMARKS.md):
--   psql -v merchant=<uuid of an existing merchant> -v n=1000000 -f bench/metrics_seed.sql
-- One customer and one subscription per i, created over the last two years; 40 % of them
-- change 1 to 3 times since (plan changes within the currency, pauses, dunning, and a
-- cancellation as the last change in a third of the cases), each change an event whose
-- data is the subscription as the API renders it (what the full computation reads), the
-- row holding the last state. 80 % EUR, 20 % USD. The rollups are then rebuilt from that
-- history by the migration's backfill function (timed).
\set ON_ERROR_STOP on
\timing on
SET jit = off;

CREATE FUNCTION pg_temp.uuid_at(t timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
            || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid
$$;

INSERT INTO products (merchant_id, id, name, portal_policy)
VALUES (:'merchant', pg_temp.uuid_at(now() - interval '800 days'), 'Metrics bench', '{}');

CREATE TEMP TABLE seed_plans AS
SELECT p.*, pg_temp.uuid_at(now() - interval '800 days') AS id,
       (SELECT id FROM products WHERE merchant_id = :'merchant' AND name = 'Metrics bench') AS product_id
  FROM (VALUES (0, 1000, 'EUR', 'month', 1), (1, 2500, 'EUR', 'month', 1),
               (2, 12006, 'EUR', 'year', 1), (3, 500, 'USD', 'month', 1),
               (4, 4800, 'USD', 'year', 1)) AS p(k, amount, currency, billing_interval, interval_count);
INSERT INTO plans (merchant_id, id, product_id, name, amount, currency, billing_interval, interval_count)
SELECT :'merchant', id, product_id, amount || ' ' || currency, amount, currency, billing_interval,
       interval_count FROM seed_plans;

CREATE TEMP TABLE seed_subs AS
SELECT i, pg_temp.uuid_at(created_at) AS id, pg_temp.uuid_at(created_at) AS customer_id, created_at,
       CASE WHEN r < 0.6 THEN 0 WHEN r < 0.85 THEN 1 WHEN r < 0.95 THEN 2 ELSE 3 END AS k,
       usd
  FROM (SELECT i, date_trunc('milliseconds', now() - random() * interval '730 days') AS created_at,
               random() AS r, i % 5 = 0 AS usd
          FROM generate_series(1, :n) AS i) g;

-- Step 0 is the signup; steps 1..k the changes, in time order.
CREATE TEMP TABLE seed_steps AS
SELECT s.id, s.customer_id, s.k, j,
       CASE WHEN j = 0 THEN s.created_at
            ELSE date_trunc('milliseconds',
                            s.created_at + (now() - s.created_at) * ((j - 1 + random()) / s.k)) END AS at,
       CASE WHEN j = 0 THEN 'active'
            WHEN j = s.k AND random() < 0.35 THEN 'canceled'
            ELSE (ARRAY['active', 'active', 'active', 'paused', 'paused', 'past_due', 'unpaid'])[1 + floor(random() * 7)::int]
       END AS status,
       CASE WHEN s.usd THEN 3 + floor(random() * 2)::int ELSE floor(random() * 3)::int END AS plan
  FROM seed_subs s, generate_series(0, s.k) AS j;

INSERT INTO customers (merchant_id, id, external_id, email, created_at, updated_at)
SELECT :'merchant', customer_id, 'metrics-' || i, 'metrics' || i || '@example.test', created_at, created_at
  FROM seed_subs;

ALTER TABLE subscriptions DISABLE TRIGGER subscriptions_metrics_insert;
INSERT INTO subscriptions (merchant_id, id, customer_id, product_id, plan_id, status,
                           current_period_end, state, created_at, updated_at)
SELECT :'merchant', st.id, st.customer_id, p.product_id, p.id, st.status, now() + interval '10 years',
       jsonb_build_object('plan', jsonb_build_object(
           'plan_id', p.id, 'price', jsonb_build_object('amount', p.amount, 'currency', p.currency),
           'cadence', jsonb_build_object('interval', p.billing_interval, 'count', p.interval_count)),
           'quantity', 1),
       s.created_at, st.at
  FROM seed_steps st JOIN seed_subs s ON s.id = st.id JOIN seed_plans p ON p.k = st.plan
 WHERE st.j = st.k;
ALTER TABLE subscriptions ENABLE TRIGGER subscriptions_metrics_insert;

INSERT INTO events (merchant_id, id, event_type, resource_type, resource_id, data, created_at, customer_id)
SELECT :'merchant', pg_temp.uuid_at(st.at),
       CASE WHEN st.j = 0 THEN 'subscription.created'
            WHEN st.status = 'paused' AND st.previous <> 'paused' THEN 'subscription.paused'
            WHEN st.status = 'canceled' THEN 'subscription.canceled'
            WHEN st.status = 'past_due' THEN 'subscription.past_due'
            WHEN st.status = 'unpaid' THEN 'subscription.unpaid'
            ELSE 'subscription.plan_changed' END,
       'subscription', tenure_typeid('sub', st.id),
       jsonb_build_object('object', 'subscription', 'status', st.status,
                          'price', jsonb_build_object('amount', p.amount, 'currency', p.currency),
                          'quantity', 1, 'interval', p.billing_interval,
                          'interval_count', p.interval_count),
       st.at, st.customer_id
  FROM (SELECT *, lag(status) OVER (PARTITION BY id ORDER BY j) AS previous FROM seed_steps) st
  JOIN seed_plans p ON p.k = st.plan;

ANALYZE customers;
ANALYZE subscriptions;
ANALYZE events;

-- The backfill, as the migration runs it.
SELECT tenure_metrics_rebuild(:'merchant');
ANALYZE metric_changes;
ANALYZE metric_days;
ANALYZE metric_customer_counts;

SELECT (SELECT count(*) FROM seed_subs) AS subscriptions,
       (SELECT count(*) FROM seed_steps) AS subscription_events,
       (SELECT count(*) FROM seed_subs s WHERE EXISTS (
            SELECT 1 FROM seed_steps st WHERE st.id = s.id AND st.j > 0
              AND st.at > now() - interval '30 days')) AS changed_in_the_last_30_days,
       (SELECT count(*) FROM metric_changes WHERE merchant_id = :'merchant') AS metric_changes,
       (SELECT count(*) FROM metric_days WHERE merchant_id = :'merchant') AS metric_days;
