ALTER TABLE customers DROP COLUMN channel_preference;
ALTER TABLE subscriptions DROP COLUMN order_notice_for;
ALTER TABLE billing_settings
    DROP CONSTRAINT billing_settings_cutoff_after_notice,
    DROP COLUMN order_cutoff_hours,
    DROP COLUMN order_notice_days;
