-- Signup with a synchronous first payment: a subscription is `incomplete` until its
-- first invoice is paid, and `incomplete_expired` when that did not happen within 23
-- hours (docs/lifecycle.md). The check is added NOT VALID and validated after, so the
-- validation scan takes no lock that blocks writes.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check CHECK (status IN
    ('trialing', 'active', 'past_due', 'paused', 'canceled', 'unpaid',
     'incomplete', 'incomplete_expired')) NOT VALID;
ALTER TABLE subscriptions VALIDATE CONSTRAINT subscriptions_status_check;

-- The lifecycle round finds the signups past their deadline: few rows at any time, so
-- a partial index on the signup time.
CREATE INDEX subscriptions_incomplete_created
    ON subscriptions (created_at) WHERE status = 'incomplete';
