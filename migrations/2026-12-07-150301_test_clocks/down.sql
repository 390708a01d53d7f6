DROP INDEX payment_methods_test_clock;
DROP INDEX invoices_test_clock;
DROP INDEX scheduled_changes_test_clock;
DROP INDEX subscriptions_test_clock;
DROP INDEX customers_test_clock;

DROP INDEX payment_methods_expiring_due;
CREATE INDEX payment_methods_expiring_due
    ON payment_methods ((exp_year * 12 + exp_month - 1))
    WHERE is_default AND detached_at IS NULL AND expiring_notice_sent_at IS NULL;
DROP INDEX subscriptions_access_ending_due;
CREATE INDEX subscriptions_access_ending_due
    ON subscriptions (tenure_state_instant(state ->> 'access_until'))
    WHERE access_ending_notice_for IS DISTINCT FROM tenure_state_instant(state ->> 'access_until');
DROP INDEX scheduled_changes_due;
CREATE INDEX scheduled_changes_due ON scheduled_changes (due_at);
DROP INDEX invoices_next_payment_attempt;
CREATE INDEX invoices_next_payment_attempt ON invoices (next_payment_attempt_at)
    WHERE next_payment_attempt_at IS NOT NULL;
DROP INDEX subscriptions_renewal_due;
CREATE INDEX subscriptions_renewal_due ON subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due');

DROP TRIGGER scheduled_changes_test_clock ON scheduled_changes;
DROP TRIGGER payment_methods_test_clock ON payment_methods;
DROP TRIGGER invoices_test_clock ON invoices;
DROP TRIGGER subscriptions_test_clock ON subscriptions;
DROP FUNCTION tenure_subscription_test_clock();
DROP FUNCTION tenure_customer_test_clock();

ALTER TABLE payment_methods DROP COLUMN test_clock_id;
ALTER TABLE invoices DROP COLUMN test_clock_id;
ALTER TABLE scheduled_changes DROP COLUMN test_clock_id;
ALTER TABLE subscriptions DROP COLUMN test_clock_id;
ALTER TABLE customers DROP CONSTRAINT customers_test_clock;
ALTER TABLE customers DROP COLUMN test_clock_id;

DROP TABLE test_clocks;
