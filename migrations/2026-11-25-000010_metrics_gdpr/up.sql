-- Metrics and GDPR (issue 6): erased customers, two SQL helpers the metrics queries use,
-- and an index for the cancellation-reasons breakdown of a period.

-- Set when the customer's personal data was anonymised (POST /v1/customers/{id}/erase).
ALTER TABLE customers ADD COLUMN erased_at timestamptz;

-- The TypeID text of a uuid (`sub_01jd…`), exactly as the API renders ids: the 128 bits
-- behind two zero bits, in 26 Crockford base32 digits. Lets SQL join `events.resource_id`
-- (text) to a row's uuid through the events_resource index.
CREATE FUNCTION tenure_typeid(prefix text, id uuid) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT prefix || '_' || string_agg(
               substr('0123456789abcdefghjkmnpqrstvwxyz',
                      substring(bits FROM i * 5 + 1 FOR 5)::bit(5)::int + 1, 1),
               '' ORDER BY i)
      FROM (SELECT B'00' || ('x' || replace(id::text, '-', ''))::bit(128) AS bits) b,
           generate_series(0, 25) AS i
$$;

-- The monthly value of a price billed every `count` `interval`s, in minor units: the SQL
-- twin of tenure_domain::context::monthly_amount (one integer division at the end,
-- rounded half up; negative prices count as 0, counts below 1 as 1). The e2e metrics
-- tests check both agree.
CREATE FUNCTION tenure_monthly_amount(amount bigint, billing_interval text, count integer)
RETURNS numeric LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    -- One expression without FROM, so that the planner inlines it into the metrics query.
    SELECT div(2 * (greatest(amount, 0)::numeric
                    * CASE billing_interval WHEN 'week' THEN 52 WHEN 'day' THEN 365 ELSE 1 END)
               + greatest(count, 1)::numeric * CASE billing_interval WHEN 'month' THEN 1 ELSE 12 END,
               2 * greatest(count, 1)::numeric * CASE billing_interval WHEN 'month' THEN 1 ELSE 12 END)
$$;

CREATE INDEX cancellation_requests_created ON cancellation_requests (merchant_id, created_at);
