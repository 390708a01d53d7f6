-- Fails while a subscription is incomplete or incomplete_expired: a version without the
-- statuses could not read it.
DROP INDEX subscriptions_incomplete_created;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check CHECK (status IN
    ('trialing', 'active', 'past_due', 'paused', 'canceled', 'unpaid'));
