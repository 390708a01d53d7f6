-- The renewal engine: per-merchant billing settings (dunning policy, notice lead time),
-- the dunning schedule on invoices, and the upcoming-notice marker on subscriptions.

CREATE TABLE billing_settings (
    merchant_id           uuid PRIMARY KEY REFERENCES merchants (id),
    -- The domain's DunningPolicy: {"retry_after_days": [1, 3, 5], "final_state": "canceled"}.
    dunning_policy        jsonb NOT NULL,
    upcoming_notice_days  integer NOT NULL DEFAULT 7 CHECK (upcoming_notice_days BETWEEN 0 AND 60),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- When dunning next charges an open invoice (NULL: nothing scheduled), and when its
-- first charge failed (retry offsets count from there).
ALTER TABLE invoices ADD COLUMN next_payment_attempt_at timestamptz;
ALTER TABLE invoices ADD COLUMN first_failed_at timestamptz;
-- Workers scan across tenants for due charges.
CREATE INDEX invoices_next_payment_attempt ON invoices (next_payment_attempt_at)
    WHERE next_payment_attempt_at IS NOT NULL;

-- The period end for which `invoice.upcoming` was sent: one notice per period.
ALTER TABLE subscriptions ADD COLUMN upcoming_notice_for timestamptz;
-- Workers scan across tenants for ended periods.
CREATE INDEX subscriptions_renewal_due ON subscriptions (current_period_end)
    WHERE status IN ('trialing', 'active', 'past_due');
