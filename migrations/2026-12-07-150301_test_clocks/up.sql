-- Test clocks (docs/test-clocks.md): a merchant's simulated time. A customer created on a
-- clock lives in its time for good; what belongs to the customer (subscriptions, their
-- scheduled changes, invoices, payment methods) carries the clock too, so that the
-- engine's cross-tenant claims can leave clock work out of the real-time rounds, and take
-- one clock's work alone, without a join.

CREATE TABLE test_clocks (
    merchant_id         uuid NOT NULL REFERENCES merchants (id),
    id                  uuid NOT NULL,
    name                text,
    frozen_time         timestamptz NOT NULL,
    status              text NOT NULL CHECK (status IN ('ready', 'advancing')),
    -- Where an advance goes (set while advancing only).
    advance_to          timestamptz,
    -- Until when a worker holds the advance; another takes it over afterwards.
    advance_lease_until timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    -- A deleted clock stays for its customers, who keep its time and see nothing happen.
    deleted_at          timestamptz,
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT test_clocks_target CHECK ((status = 'advancing') = (advance_to IS NOT NULL))
);
-- The clock worker scans across tenants for advancing clocks.
CREATE INDEX test_clocks_advancing ON test_clocks (advance_lease_until)
    WHERE status = 'advancing';

ALTER TABLE customers ADD COLUMN test_clock_id uuid;
ALTER TABLE customers ADD CONSTRAINT customers_test_clock
    FOREIGN KEY (merchant_id, test_clock_id) REFERENCES test_clocks (merchant_id, id);
ALTER TABLE subscriptions ADD COLUMN test_clock_id uuid;
ALTER TABLE scheduled_changes ADD COLUMN test_clock_id uuid;
ALTER TABLE invoices ADD COLUMN test_clock_id uuid;
ALTER TABLE payment_methods ADD COLUMN test_clock_id uuid;

-- A customer's clock never changes, so a row takes it once, when it is inserted. The
-- triggers copy it so that no insert path (there are bulk ones) can forget it.
CREATE FUNCTION tenure_customer_test_clock() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.test_clock_id := (SELECT c.test_clock_id FROM customers c
                          WHERE c.merchant_id = NEW.merchant_id AND c.id = NEW.customer_id);
    RETURN NEW;
END $$;
CREATE FUNCTION tenure_subscription_test_clock() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.test_clock_id := (SELECT s.test_clock_id FROM subscriptions s
                          WHERE s.merchant_id = NEW.merchant_id AND s.id = NEW.subscription_id);
    RETURN NEW;
END $$;
CREATE TRIGGER subscriptions_test_clock BEFORE INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION tenure_customer_test_clock();
CREATE TRIGGER invoices_test_clock BEFORE INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION tenure_customer_test_clock();
CREATE TRIGGER payment_methods_test_clock BEFORE INSERT ON payment_methods
    FOR EACH ROW EXECUTE FUNCTION tenure_customer_test_clock();
CREATE TRIGGER scheduled_changes_test_clock BEFORE INSERT ON scheduled_changes
    FOR EACH ROW EXECUTE FUNCTION tenure_subscription_test_clock();

-- The real-time rounds' partial indexes leave clock rows out (their claims say
-- `test_clock_id IS NULL`), so a clock's customers cost them nothing; one clock's
-- work is found through the small indexes on `test_clock_id`.
DROP INDEX subscriptions_renewal_due;
CREATE INDEX subscriptions_renewal_due ON subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due') AND test_clock_id IS NULL;
DROP INDEX invoices_next_payment_attempt;
CREATE INDEX invoices_next_payment_attempt ON invoices (next_payment_attempt_at)
    WHERE next_payment_attempt_at IS NOT NULL AND test_clock_id IS NULL;
DROP INDEX scheduled_changes_due;
CREATE INDEX scheduled_changes_due ON scheduled_changes (due_at)
    WHERE test_clock_id IS NULL;
DROP INDEX subscriptions_access_ending_due;
CREATE INDEX subscriptions_access_ending_due
    ON subscriptions (tenure_state_instant(state ->> 'access_until'))
    WHERE access_ending_notice_for IS DISTINCT FROM tenure_state_instant(state ->> 'access_until')
      AND test_clock_id IS NULL;
DROP INDEX payment_methods_expiring_due;
CREATE INDEX payment_methods_expiring_due
    ON payment_methods ((exp_year * 12 + exp_month - 1))
    WHERE is_default AND detached_at IS NULL AND expiring_notice_sent_at IS NULL
      AND test_clock_id IS NULL;

CREATE INDEX customers_test_clock ON customers (merchant_id, test_clock_id)
    WHERE test_clock_id IS NOT NULL;
CREATE INDEX subscriptions_test_clock ON subscriptions (test_clock_id)
    WHERE test_clock_id IS NOT NULL;
CREATE INDEX scheduled_changes_test_clock ON scheduled_changes (test_clock_id)
    WHERE test_clock_id IS NOT NULL;
CREATE INDEX invoices_test_clock ON invoices (test_clock_id)
    WHERE test_clock_id IS NOT NULL;
CREATE INDEX payment_methods_test_clock ON payment_methods (test_clock_id)
    WHERE test_clock_id IS NOT NULL;
