DROP INDEX subscriptions_renewal_due;
ALTER TABLE subscriptions DROP COLUMN upcoming_notice_for;
DROP INDEX invoices_next_payment_attempt;
ALTER TABLE invoices DROP COLUMN first_failed_at;
ALTER TABLE invoices DROP COLUMN next_payment_attempt_at;
DROP TABLE billing_settings;
