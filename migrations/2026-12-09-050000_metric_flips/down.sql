LOCK TABLE subscriptions IN SHARE MODE;
-- Bodies of migration 2026-12-08-120001.
CREATE OR REPLACE FUNCTION tenure_metrics_apply(
    p_merchant uuid, p_subscription uuid, p_at timestamptz,
    o_customer uuid, o_status text, o_currency text, o_monthly numeric,
    n_customer uuid, n_status text, n_currency text, n_monthly numeric
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    side record;
    customer_now record;
    d_subscribers integer;
    d_pauses_started integer;
BEGIN
    FOR side IN
        SELECT customer, currency,
               sum(sign * (status IN ('active', 'past_due'))::int) AS subscriptions,
               sum(sign * CASE WHEN status IN ('active', 'past_due') THEN monthly ELSE 0 END)
                   AS mrr,
               sum(sign * (status NOT IN ('canceled', 'incomplete_expired'))::int) AS live,
               sum(sign * (status = 'paused')::int) AS paused
          FROM (VALUES (-1, o_customer, o_status, o_currency, o_monthly),
                       (1, n_customer, n_status, n_currency, n_monthly))
               AS v(sign, customer, status, currency, monthly)
         WHERE status IS NOT NULL AND currency IS NOT NULL
         GROUP BY customer, currency
         -- Rows are locked in one order: two changes of one customer cannot deadlock here.
         ORDER BY customer, currency
    LOOP
        CONTINUE WHEN side.subscriptions = 0 AND side.mrr = 0 AND side.live = 0
                      AND side.paused = 0;
        INSERT INTO metric_customer_counts AS c (merchant_id, customer_id, currency, paying,
                                                  live, mrr)
        VALUES (p_merchant, side.customer, side.currency, side.subscriptions, side.live, side.mrr)
        ON CONFLICT (merchant_id, customer_id, currency)
        DO UPDATE SET paying = c.paying + excluded.paying, live = c.live + excluded.live,
                      mrr = c.mrr + excluded.mrr
        RETURNING c.paying, c.live, c.mrr INTO customer_now;
        d_subscribers := (customer_now.paying > 0)::int
                         - (customer_now.paying - side.subscriptions > 0)::int;
        d_pauses_started := (side.paused > 0 AND o_status IS DISTINCT FROM 'paused')::int;
        INSERT INTO metric_changes (merchant_id, currency, customer_id, subscription_id, at,
                                    mrr, subscriptions, subscribers, live, paused,
                                    pauses_started, customer_paying, customer_live, customer_mrr)
        VALUES (p_merchant, side.currency, side.customer, p_subscription, p_at, side.mrr,
                side.subscriptions, d_subscribers, side.live, side.paused, d_pauses_started,
                customer_now.paying, customer_now.live, customer_now.mrr);
        INSERT INTO metric_days AS d (merchant_id, currency, day, mrr, subscriptions,
                                      subscribers, paused, pauses_started)
        VALUES (p_merchant, side.currency, (p_at AT TIME ZONE 'UTC')::date, side.mrr,
                side.subscriptions, d_subscribers, side.paused, d_pauses_started)
        ON CONFLICT (merchant_id, currency, day) DO UPDATE
           SET mrr = d.mrr + excluded.mrr,
               subscriptions = d.subscriptions + excluded.subscriptions,
               subscribers = d.subscribers + excluded.subscribers,
               paused = d.paused + excluded.paused,
               pauses_started = d.pauses_started + excluded.pauses_started;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION tenure_metrics_rebuild(p_merchant uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- No subscription may change while its history is read and replaced (every merchant's
    -- writes wait: a repair is an operator's act, measured in docs/metrics.md).
    LOCK TABLE subscriptions IN SHARE MODE;
    DELETE FROM metric_changes WHERE merchant_id = p_merchant;
    DELETE FROM metric_days WHERE merchant_id = p_merchant;
    DELETE FROM metric_customer_counts WHERE merchant_id = p_merchant;

    INSERT INTO metric_changes (merchant_id, currency, customer_id, subscription_id, at, mrr,
                                subscriptions, subscribers, live, paused, pauses_started,
                                customer_paying, customer_live, customer_mrr)
    WITH subs AS (
        SELECT id, customer_id, created_at, updated_at, status,
               state->'plan'->'price'->>'currency' AS currency,
               tenure_metric_row_monthly(state) AS monthly,
               tenure_typeid('sub', id) AS resource_id
          FROM subscriptions WHERE merchant_id = p_merchant
    ),
    snapshots AS (
        -- The latest snapshot at each instant of a subscription's history before its
        -- row's time (several events at one instant: the last recorded).
        SELECT DISTINCT ON (s.id, greatest(e.created_at, s.created_at))
               s.id, greatest(e.created_at, s.created_at) AS at, e.data->>'status' AS status,
               e.data->'price'->>'currency' AS currency,
               tenure_metric_monthly((e.data->'price'->>'amount')::numeric,
                                     (e.data->>'quantity')::numeric, e.data->>'interval',
                                     (e.data->>'interval_count')::numeric) AS monthly
          FROM subs s
          JOIN events e ON e.merchant_id = p_merchant AND e.resource_id = s.resource_id
                       AND e.resource_type = 'subscription'
                       AND e.data->>'object' = 'subscription'
                       AND e.created_at < s.updated_at
         ORDER BY s.id, greatest(e.created_at, s.created_at), e.created_at DESC, e.id DESC
    ),
    states AS (
        SELECT id, at, status, currency, monthly FROM snapshots
        UNION ALL
        -- The row from its time on, and from the creation when no event came before.
        SELECT s.id, t.at, s.status, s.currency, s.monthly
          FROM subs s
         CROSS JOIN LATERAL (VALUES (s.updated_at), (s.created_at)) AS t(at)
         WHERE t.at = s.updated_at
            OR (t.at < s.updated_at
                AND NOT EXISTS (SELECT 1 FROM snapshots n WHERE n.id = s.id AND n.at = s.created_at))
    ),
    steps AS (
        SELECT st.id, s.customer_id, st.at,
               lag(st.status) OVER w AS o_status, lag(st.currency) OVER w AS o_currency,
               lag(st.monthly) OVER w AS o_monthly,
               st.status AS n_status, st.currency AS n_currency, st.monthly AS n_monthly
          FROM states st JOIN subs s ON s.id = st.id
        WINDOW w AS (PARTITION BY st.id ORDER BY st.at)
    ),
    sides AS (
        SELECT st.id, st.customer_id, st.at, v.currency,
               sum(v.sign * (v.status IN ('active', 'past_due'))::int) AS subscriptions,
               sum(v.sign * CASE WHEN v.status IN ('active', 'past_due') THEN v.monthly ELSE 0 END)
                   AS mrr,
               sum(v.sign * (v.status NOT IN ('canceled', 'incomplete_expired'))::int) AS live,
               sum(v.sign * (v.status = 'paused')::int) AS paused,
               bool_or(v.sign = 1 AND v.status = 'paused')
                   AND st.o_status IS DISTINCT FROM 'paused' AS pause_started
          FROM steps st
         CROSS JOIN LATERAL (VALUES (-1, st.o_status, st.o_currency, st.o_monthly),
                                    (1, st.n_status, st.n_currency, st.n_monthly))
               AS v(sign, status, currency, monthly)
         WHERE v.status IS NOT NULL AND v.currency IS NOT NULL
         GROUP BY st.id, st.customer_id, st.at, v.currency, st.o_status
    ),
    moved AS (
        SELECT *, sum(subscriptions) OVER w AS customer_paying, sum(live) OVER w AS customer_live,
               sum(mrr) OVER w AS customer_mrr
          FROM sides
         WHERE subscriptions <> 0 OR mrr <> 0 OR live <> 0 OR paused <> 0
        WINDOW w AS (PARTITION BY customer_id, currency ORDER BY at, id ROWS UNBOUNDED PRECEDING)
    )
    SELECT p_merchant, currency, customer_id, id, at, mrr, subscriptions,
           (customer_paying > 0)::int - (customer_paying - subscriptions > 0)::int, live, paused,
           (pause_started AND paused > 0)::int, customer_paying, customer_live, customer_mrr
      FROM moved
     -- Identities in the order of the history, as the trigger would have taken them.
     ORDER BY at, customer_id, currency, id;

    INSERT INTO metric_days (merchant_id, currency, day, mrr, subscriptions, subscribers, paused,
                             pauses_started)
    SELECT p_merchant, currency, (at AT TIME ZONE 'UTC')::date, sum(mrr), sum(subscriptions),
           sum(subscribers), sum(paused), sum(pauses_started)
      FROM metric_changes WHERE merchant_id = p_merchant
     GROUP BY currency, (at AT TIME ZONE 'UTC')::date;

    INSERT INTO metric_customer_counts (merchant_id, customer_id, currency, paying, live, mrr)
    SELECT p_merchant, customer_id, currency, sum(subscriptions), sum(live), sum(mrr)
      FROM metric_changes WHERE merchant_id = p_merchant
     GROUP BY customer_id, currency;
END $$;

DROP TRIGGER metric_pending_flush ON metric_pending;
DROP FUNCTION tenure_metrics_flush();
DROP FUNCTION tenure_metrics_rebuild_flips(uuid);
DROP TABLE metric_pending;
DROP TABLE metric_flip_days;
DROP TABLE metric_flip_points;
-- The shards of a day back into one row.
WITH merged AS (
    DELETE FROM metric_days WHERE shard <> 0
    RETURNING merchant_id, currency, day, mrr, subscriptions, subscribers, paused, pauses_started
)
INSERT INTO metric_days AS d (merchant_id, currency, day, shard, mrr, subscriptions, subscribers,
                              paused, pauses_started)
SELECT merchant_id, currency, day, 0, sum(mrr), sum(subscriptions), sum(subscribers), sum(paused),
       sum(pauses_started)
  FROM merged GROUP BY merchant_id, currency, day
ON CONFLICT (merchant_id, currency, day, shard) DO UPDATE
   SET mrr = d.mrr + excluded.mrr, subscriptions = d.subscriptions + excluded.subscriptions,
       subscribers = d.subscribers + excluded.subscribers, paused = d.paused + excluded.paused,
       pauses_started = d.pauses_started + excluded.pauses_started;
ALTER TABLE metric_days DROP CONSTRAINT metric_days_pkey;
ALTER TABLE metric_days DROP COLUMN shard;
ALTER TABLE metric_days ADD PRIMARY KEY (merchant_id, currency, day);
DROP INDEX metric_changes_customer;
