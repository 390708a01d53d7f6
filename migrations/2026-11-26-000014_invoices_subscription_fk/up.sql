-- An invoice's subscription must exist (of the same merchant). The billing migration
-- could not say so: it ran before the subscriptions table existed.
--
-- Added NOT VALID here and validated by the next migration, each in its own
-- transaction: adding the key then only holds its brief SHARE ROW EXCLUSIVE lock, and
-- the scan of existing invoices runs under VALIDATE's lock, which lets renewals and
-- reads go on. New and updated rows are checked from this commit on.

-- Adding a foreign key waits for SHARE ROW EXCLUSIVE on the tables it names, and every
-- write to them queues behind that wait: give up after 10 s (the migration fails and
-- can be run again) rather than stall writes behind a long transaction.
SET LOCAL lock_timeout = '10s';

ALTER TABLE invoices
    ADD CONSTRAINT invoices_subscription_fk
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id)
    NOT VALID;
