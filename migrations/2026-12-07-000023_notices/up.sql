-- Notices the engine sends once each (docs/events.md): `subscription.access_ending` a few
-- days before a subscriber's access ends, `payment_method.expiring` before a default
-- card expires.

-- A subscription's `access_until` is kept in its jsonb state as RFC 3339 with an explicit
-- offset ("…Z"), which PostgreSQL reads the same under every DateStyle and TimeZone: the
-- cast is immutable for these values, so it may key an index (the built-in cast is only
-- declared stable because other inputs depend on the session's settings).
CREATE FUNCTION tenure_state_instant(value text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT value::timestamptz $$;

-- The access end for which `subscription.access_ending` was sent: one notice per end.
ALTER TABLE subscriptions ADD COLUMN access_ending_notice_for timestamptz;
-- Workers scan across tenants for an access end coming up whose notice is not sent; a
-- notice sent takes its row out of the index.
CREATE INDEX subscriptions_access_ending_due
    ON subscriptions (tenure_state_instant(state ->> 'access_until'))
    WHERE access_ending_notice_for IS DISTINCT FROM tenure_state_instant(state ->> 'access_until');

-- When `payment_method.expiring` was sent for the card: one notice per card.
ALTER TABLE payment_methods ADD COLUMN expiring_notice_sent_at timestamptz;
-- Workers scan across tenants by expiry month (`year * 12 + month - 1`, as
-- tenure_domain::billing::dunning::expiry_month_index) among default cards not yet noticed.
CREATE INDEX payment_methods_expiring_due
    ON payment_methods ((exp_year * 12 + exp_month - 1))
    WHERE is_default AND detached_at IS NULL AND expiring_notice_sent_at IS NULL;
