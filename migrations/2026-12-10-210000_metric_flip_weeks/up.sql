-- New and churned subscribers of a long period at a cost bounded by weeks (issue 22;
-- docs/metrics.md, "How it is computed"). The flips' points summed per UTC week of a and
-- of y, maintained beside the day rows (metric_flip_days) in the same pass at commit: a
-- period reads its whole weeks from here and only its ragged days (the days before the
-- first whole week, those of the last week) from the day rows.

-- No subscription changes while the week rows are summed from the day rows.
LOCK TABLE subscriptions IN SHARE MODE;

-- The Monday of a date's ISO week (date arithmetic only: no time zone is involved).
CREATE FUNCTION tenure_week(d date) RETURNS date LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN d - (extract(isodow FROM d)::int - 1);

-- metric_flip_days summed per week (the Monday) of a_day and of y_day; sharded like the
-- day rows: only the diagonal (a_week = y_week), which every flip of the week writes.
CREATE TABLE metric_flip_weeks (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    a_week       date NOT NULL CHECK (extract(isodow FROM a_week) = 1),
    y_week       date NOT NULL CHECK (extract(isodow FROM y_week) = 1),
    currency     text NOT NULL,
    shard        smallint NOT NULL DEFAULT 0,
    new_w        bigint NOT NULL,
    churn_w      bigint NOT NULL,
    churn_mrr_w  numeric NOT NULL,
    PRIMARY KEY (merchant_id, a_week, y_week, currency, shard)
);

-- A period's last ragged days: the day rows by y_day (the primary key leads with a_day).
-- Keys only, so that the sums' updates stay HOT.
CREATE INDEX metric_flip_days_y ON metric_flip_days (merchant_id, y_day, a_day);

-- As in migration 2026-12-09-050000, plus the week rows, written first, in the order of
-- their key (every transaction takes the shared rows in the same order: days, flips'
-- weeks, flips' days).
CREATE OR REPLACE FUNCTION tenure_metrics_flush() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_tx xid8 := pg_current_xact_id();
    v_shard smallint := (v_tx::text::bigint % 4)::smallint;
BEGIN
    -- The first call of a transaction moves all its rows; the others find none.
    WITH moved AS (
        DELETE FROM metric_pending WHERE tx = v_tx AND a_day IS NULL
        RETURNING merchant_id, currency, day, mrr, subscriptions, subscribers, paused,
                  pauses_started
    )
    INSERT INTO metric_days AS d (merchant_id, currency, day, shard, mrr, subscriptions,
                                  subscribers, paused, pauses_started)
    SELECT merchant_id, currency, day, v_shard, sum(mrr), sum(subscriptions), sum(subscribers),
           sum(paused), sum(pauses_started)
      FROM moved GROUP BY merchant_id, currency, day
     ORDER BY merchant_id, currency, day
    ON CONFLICT (merchant_id, currency, day, shard) DO UPDATE
       SET mrr = d.mrr + excluded.mrr,
           subscriptions = d.subscriptions + excluded.subscriptions,
           subscribers = d.subscribers + excluded.subscribers,
           paused = d.paused + excluded.paused,
           pauses_started = d.pauses_started + excluded.pauses_started;
    INSERT INTO metric_flip_weeks AS w (merchant_id, a_week, y_week, currency, shard, new_w,
                                        churn_w, churn_mrr_w)
    SELECT merchant_id, a_week, y_week, currency,
           CASE WHEN a_week = y_week THEN v_shard ELSE 0 END, sum(new_w), sum(churn_w),
           sum(churn_mrr_w)
      FROM (SELECT merchant_id, tenure_week(a_day) AS a_week, tenure_week(day) AS y_week,
                   currency, new_w, churn_w, churn_mrr_w
              FROM metric_pending WHERE tx = v_tx AND a_day IS NOT NULL) p
     GROUP BY merchant_id, a_week, y_week, currency
     ORDER BY merchant_id, a_week, y_week, currency
    ON CONFLICT (merchant_id, a_week, y_week, currency, shard) DO UPDATE
       SET new_w = w.new_w + excluded.new_w, churn_w = w.churn_w + excluded.churn_w,
           churn_mrr_w = w.churn_mrr_w + excluded.churn_mrr_w;
    WITH moved AS (
        DELETE FROM metric_pending WHERE tx = v_tx AND a_day IS NOT NULL
        RETURNING merchant_id, currency, a_day, day, new_w, churn_w, churn_mrr_w
    )
    INSERT INTO metric_flip_days AS f (merchant_id, a_day, y_day, currency, shard, new_w,
                                       churn_w, churn_mrr_w)
    SELECT merchant_id, a_day, day, currency,
           -- Only the row of the flips' own day is shared by every flip of the day; the
           -- others (a an earlier change's day) stay one row each, so that a long period
           -- reads no more rows for the shards.
           CASE WHEN a_day = day THEN v_shard ELSE 0 END, sum(new_w), sum(churn_w),
           sum(churn_mrr_w)
      FROM moved GROUP BY merchant_id, a_day, day, currency
     ORDER BY merchant_id, a_day, day, currency
    ON CONFLICT (merchant_id, a_day, y_day, currency, shard) DO UPDATE
       SET new_w = f.new_w + excluded.new_w, churn_w = f.churn_w + excluded.churn_w,
           churn_mrr_w = f.churn_mrr_w + excluded.churn_mrr_w;
    RETURN NULL;
END $$;

-- A merchant's week rows from its day rows (what the flushes add up, unsharded).
CREATE FUNCTION tenure_metrics_rebuild_flip_weeks(p_merchant uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metric_flip_weeks WHERE merchant_id = p_merchant;
    INSERT INTO metric_flip_weeks (merchant_id, a_week, y_week, currency, shard, new_w,
                                   churn_w, churn_mrr_w)
    SELECT p_merchant, tenure_week(a_day), tenure_week(y_day), currency, 0, sum(new_w),
           sum(churn_w), sum(churn_mrr_w)
      FROM metric_flip_days WHERE merchant_id = p_merchant
     GROUP BY 2, 3, 4;
END $$;

-- The rebuild of migration 2026-12-09-050000 (tenure metrics rebuild calls it too), with
-- the week rows.
CREATE OR REPLACE FUNCTION tenure_metrics_rebuild_flips(p_merchant uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metric_flip_points WHERE merchant_id = p_merchant;
    DELETE FROM metric_flip_days WHERE merchant_id = p_merchant;
    INSERT INTO metric_flip_points (merchant_id, currency, customer_id, a, y, new_w, churn_w,
                                    churn_mrr_w)
    WITH ch AS (
        SELECT id, currency, customer_id, at, subscribers AS dp, mrr AS dm,
               (customer_live > 0)::int - (customer_live - live > 0)::int AS dl,
               (customer_paying - subscriptions > 0)::int AS p0, customer_mrr - mrr AS m0
          FROM metric_changes WHERE merchant_id = p_merchant
    ),
    flips AS (SELECT * FROM ch WHERE dp <> 0 OR dl <> 0),
    points AS (
        SELECT y.id, y.currency, y.customer_id, y.at AS a, y.at AS y, y.dp * y.p0 AS new_w,
               y.dl * y.p0 AS churn_w, y.dl * y.m0 AS churn_mrr_w
          FROM flips y
        UNION ALL
        SELECT y.id, y.currency, y.customer_id, x.at, y.at, -y.dp * x.dp, -y.dl * x.dp,
               -y.dl * x.dm
          FROM flips y
          JOIN ch x ON x.customer_id = y.customer_id AND x.currency = y.currency
                   AND x.id < y.id AND x.at > y.at - interval '367 days'
                   AND (x.dp <> 0 OR x.dm <> 0)
    )
    SELECT p_merchant, currency, customer_id, a, y, sum(new_w), sum(churn_w), sum(churn_mrr_w)
      FROM points
     GROUP BY id, currency, customer_id, a, y
    HAVING sum(new_w) <> 0 OR sum(churn_w) <> 0 OR sum(churn_mrr_w) <> 0
     ORDER BY y, id, a;

    INSERT INTO metric_flip_days (merchant_id, a_day, y_day, currency, shard, new_w, churn_w,
                                  churn_mrr_w)
    SELECT p_merchant, (a AT TIME ZONE 'UTC')::date, (y AT TIME ZONE 'UTC')::date, currency, 0,
           sum(new_w), sum(churn_w), sum(churn_mrr_w)
      FROM metric_flip_points WHERE merchant_id = p_merchant
     GROUP BY 2, 3, 4;
    PERFORM tenure_metrics_rebuild_flip_weeks(p_merchant);
END $$;

-- The backfill: every merchant's week rows from its day rows (subscription writes wait).
SELECT tenure_metrics_rebuild_flip_weeks(id) FROM merchants;
