DROP INDEX payment_methods_expiring_due;
ALTER TABLE payment_methods DROP COLUMN expiring_notice_sent_at;
DROP INDEX subscriptions_access_ending_due;
ALTER TABLE subscriptions DROP COLUMN access_ending_notice_for;
DROP FUNCTION tenure_state_instant(text);
