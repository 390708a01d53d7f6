-- Subscriber metrics maintained as subscriptions change (issue 22), so that
-- GET /v1/metrics costs the same at any size (docs/metrics.md, "How it is computed").
--
-- A trigger on `subscriptions` is the one place every change passes through: the use
-- cases' `persist`, the renewal engine's bulk UPDATE, signups, test-clock advances and
-- rows written by SQL alike. It sees the row before and after, so it knows what moved
-- without reading anything, and it runs in the transaction that made the change.

-- Every change of a subscription that moves a figure, per currency: what it added to
-- each figure at `at` (the subscription's `updated_at`, the time its event is recorded
-- at; `created_at` for a new row). Append-only.
CREATE TABLE metric_changes (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    currency         text NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    at               timestamptz NOT NULL,
    -- Monthly value of the paying subscriptions (numeric, as the full computation sums).
    mrr              numeric NOT NULL,
    -- Paying (active, past_due) subscriptions.
    subscriptions    integer NOT NULL,
    -- Customers with a paying subscription in the currency (-1, 0 or 1).
    subscribers      integer NOT NULL,
    -- Subscriptions not canceled nor incomplete_expired (churn: none left at the end).
    live             integer NOT NULL,
    paused           integer NOT NULL,
    -- 1 when this change paused the subscription.
    pauses_started   integer NOT NULL,
    PRIMARY KEY (merchant_id, id)
);
-- The changes of a period (and of the day an instant falls in).
CREATE INDEX metric_changes_at ON metric_changes (merchant_id, at)
    INCLUDE (currency, customer_id, mrr, subscriptions, subscribers, paused, pauses_started);
-- One customer's history in a currency (its state at the period's two ends).
CREATE INDEX metric_changes_customer ON metric_changes (merchant_id, customer_id, currency, at)
    INCLUDE (mrr, subscriptions, live);

-- The changes summed per UTC day: a figure at an instant is the sum of the days before
-- it plus that day's changes up to the instant.
CREATE TABLE metric_days (
    merchant_id     uuid NOT NULL REFERENCES merchants (id),
    currency        text NOT NULL,
    day             date NOT NULL,
    mrr             numeric NOT NULL,
    subscriptions   bigint NOT NULL,
    subscribers     bigint NOT NULL,
    paused          bigint NOT NULL,
    pauses_started  bigint NOT NULL,
    PRIMARY KEY (merchant_id, currency, day)
);

-- Each customer's paying subscriptions now, per currency: the row lock serialises the
-- changes of one customer, so the step 0 -> 1 (a new subscriber) and 1 -> 0 is counted
-- once even when two of its subscriptions change at the same time.
CREATE TABLE metric_customer_counts (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    customer_id  uuid NOT NULL,
    currency     text NOT NULL,
    paying       integer NOT NULL,
    PRIMARY KEY (merchant_id, customer_id, currency)
);

-- The monthly value of a price × quantity billed every `count` `interval`s: the
-- computation of tenure_monthly_amount (migration 000010), taking numerics so that no
-- price or quantity can make the trigger, and with it the change, fail.
CREATE FUNCTION tenure_metric_monthly(amount numeric, quantity numeric, billing_interval text,
                                      count numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT div(2 * (greatest(amount * coalesce(quantity, 1), 0)
                    * CASE billing_interval WHEN 'week' THEN 52 WHEN 'day' THEN 365 ELSE 1 END)
               + greatest(count, 1) * CASE billing_interval WHEN 'month' THEN 1 ELSE 12 END,
               2 * greatest(count, 1) * CASE billing_interval WHEN 'month' THEN 1 ELSE 12 END)
$$;

-- The monthly value of a subscription row's state (its plan's price and cadence).
CREATE FUNCTION tenure_metric_row_monthly(state jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT tenure_metric_monthly((state->'plan'->'price'->>'amount')::numeric,
                                 (state->>'quantity')::numeric,
                                 state->'plan'->'cadence'->>'interval',
                                 (state->'plan'->'cadence'->>'count')::numeric)
$$;

-- Records the move of one subscription from the old state (NULL status: it did not
-- exist) to the new at `at`: per customer and currency touched, a metric_changes row,
-- its day's sums and the customer's count. The figures follow docs/metrics.md: a
-- subscription pays when active or past_due, is live unless canceled or
-- incomplete_expired.
CREATE FUNCTION tenure_metrics_apply(
    p_merchant uuid, p_subscription uuid, p_at timestamptz,
    o_customer uuid, o_status text, o_currency text, o_monthly numeric,
    n_customer uuid, n_status text, n_currency text, n_monthly numeric
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    side record;
    now_paying integer;
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
        d_subscribers := 0;
        IF side.subscriptions <> 0 THEN
            INSERT INTO metric_customer_counts AS c (merchant_id, customer_id, currency, paying)
            VALUES (p_merchant, side.customer, side.currency, side.subscriptions)
            ON CONFLICT (merchant_id, customer_id, currency)
            DO UPDATE SET paying = c.paying + excluded.paying
            RETURNING paying INTO now_paying;
            d_subscribers := (now_paying > 0)::int - (now_paying - side.subscriptions > 0)::int;
        END IF;
        d_pauses_started := (side.paused > 0 AND o_status IS DISTINCT FROM 'paused')::int;
        INSERT INTO metric_changes (merchant_id, currency, customer_id, subscription_id, at,
                                    mrr, subscriptions, subscribers, live, paused,
                                    pauses_started)
        VALUES (p_merchant, side.currency, side.customer, p_subscription, p_at, side.mrr,
                side.subscriptions, d_subscribers, side.live, side.paused, d_pauses_started);
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

CREATE FUNCTION tenure_metrics_on_subscription() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM tenure_metrics_apply(NEW.merchant_id, NEW.id, NEW.created_at,
                                     NULL, NULL, NULL, NULL,
                                     NEW.customer_id, NEW.status,
                                     NEW.state->'plan'->'price'->>'currency',
                                     tenure_metric_row_monthly(NEW.state));
    ELSE
        PERFORM tenure_metrics_apply(NEW.merchant_id, NEW.id, NEW.updated_at,
                                     OLD.customer_id, OLD.status,
                                     OLD.state->'plan'->'price'->>'currency',
                                     tenure_metric_row_monthly(OLD.state),
                                     NEW.customer_id, NEW.status,
                                     NEW.state->'plan'->'price'->>'currency',
                                     tenure_metric_row_monthly(NEW.state));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER subscriptions_metrics_insert AFTER INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION tenure_metrics_on_subscription();
-- Only what a figure reads: a renewal, a period or a notice moves nothing and costs
-- nothing (the condition is checked without calling the function).
CREATE TRIGGER subscriptions_metrics_update AFTER UPDATE ON subscriptions
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
          OR OLD.state->'plan'->'price' IS DISTINCT FROM NEW.state->'plan'->'price'
          OR OLD.state->'quantity' IS DISTINCT FROM NEW.state->'quantity'
          OR OLD.state->'plan'->'cadence' IS DISTINCT FROM NEW.state->'plan'->'cadence')
    EXECUTE FUNCTION tenure_metrics_on_subscription();

-- Rebuilds one merchant's rollups from the history the full computation reads
-- (docs/metrics.md, "A subscription's state at an instant"): each subscription is, from
-- its creation, the snapshot of its latest `subscription.*` event (the row when it has
-- none), then its row from its `updated_at` on. Events of one subscription are taken in
-- the order of their time (their ids, UUIDv7, follow it). One set-based statement per
-- table; the migration runs it for every merchant, and operators after a repair
-- (docs/metrics.md, "Reconciliation").
CREATE FUNCTION tenure_metrics_rebuild(p_merchant uuid) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- No subscription may change while its history is read and replaced (every merchant's
    -- writes wait: a repair is an operator's act, measured in docs/metrics.md).
    LOCK TABLE subscriptions IN SHARE MODE;
    DELETE FROM metric_changes WHERE merchant_id = p_merchant;
    DELETE FROM metric_days WHERE merchant_id = p_merchant;
    DELETE FROM metric_customer_counts WHERE merchant_id = p_merchant;

    INSERT INTO metric_changes (merchant_id, currency, customer_id, subscription_id, at, mrr,
                                subscriptions, subscribers, live, paused, pauses_started)
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
        SELECT *, sum(subscriptions) OVER (PARTITION BY customer_id, currency
                                           ORDER BY at, id ROWS UNBOUNDED PRECEDING) AS paying
          FROM sides
         WHERE subscriptions <> 0 OR mrr <> 0 OR live <> 0 OR paused <> 0
    )
    SELECT p_merchant, currency, customer_id, id, at, mrr, subscriptions,
           (paying > 0)::int - (paying - subscriptions > 0)::int, live, paused,
           (pause_started AND paused > 0)::int
      FROM moved;

    INSERT INTO metric_days (merchant_id, currency, day, mrr, subscriptions, subscribers, paused,
                             pauses_started)
    SELECT p_merchant, currency, (at AT TIME ZONE 'UTC')::date, sum(mrr), sum(subscriptions),
           sum(subscribers), sum(paused), sum(pauses_started)
      FROM metric_changes WHERE merchant_id = p_merchant
     GROUP BY currency, (at AT TIME ZONE 'UTC')::date;

    INSERT INTO metric_customer_counts (merchant_id, customer_id, currency, paying)
    SELECT p_merchant, customer_id, currency, sum(subscriptions)
      FROM metric_changes WHERE merchant_id = p_merchant
     GROUP BY customer_id, currency;
END $$;

-- The backfill, in the migration's transaction: CREATE TRIGGER above locks subscriptions
-- against writes until it commits, so no change can fall between the history read here
-- and the trigger recording the next one (bounded batches would need a second mechanism
-- for that). Measured in docs/metrics.md.
SELECT tenure_metrics_rebuild(id) FROM merchants;
