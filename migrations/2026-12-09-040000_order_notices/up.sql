-- Upcoming-order notices and the edit cutoff (docs/orders.md), and the customer's
-- channel preference (docs/customers.md).

-- Days before a shippable subscription's renewal that `order.upcoming` is sent (0:
-- never), and hours before it after which the subscriber's edits of that order are
-- refused (0: no cutoff). The notice always comes before the cutoff.
ALTER TABLE billing_settings
    ADD COLUMN order_notice_days integer NOT NULL DEFAULT 3
        CHECK (order_notice_days BETWEEN 0 AND 60),
    ADD COLUMN order_cutoff_hours integer NOT NULL DEFAULT 0
        CHECK (order_cutoff_hours BETWEEN 0 AND 1440),
    ADD CONSTRAINT billing_settings_cutoff_after_notice
        CHECK (order_notice_days = 0 OR order_cutoff_hours <= order_notice_days * 24);

-- The period end for which `order.upcoming` was handled: one notice per renewal.
ALTER TABLE subscriptions ADD COLUMN order_notice_for timestamptz;

-- How the customer wants to hear from the merchant.
ALTER TABLE customers ADD COLUMN channel_preference text NOT NULL DEFAULT 'email'
    CHECK (channel_preference IN ('email', 'sms', 'push', 'none'));
