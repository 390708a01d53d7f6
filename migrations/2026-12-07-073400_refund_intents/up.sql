-- A refund decided and about to be sent to the gateway (app/src/billing/refunds.rs). It
-- is committed before the gateway is called and deleted by the transaction that records
-- the refund, so no lock is held across the call. One per invoice at a time: while it
-- exists, another refund of the invoice is refused (409 refund_in_progress), so refunds
-- stay within what was paid. After a crash, the engine finds it once lease_until has
-- passed and sends the same request again, whose idempotency key makes the gateway
-- replay its first answer.

-- Adding a foreign key waits for SHARE ROW EXCLUSIVE on the tables it names, and every
-- write to them queues behind that wait: give up after 10 s (the migration fails and
-- can be run again) rather than stall writes behind a long transaction.
SET LOCAL lock_timeout = '10s';

CREATE TABLE refund_intents (
    merchant_id      uuid NOT NULL,
    invoice_id       uuid NOT NULL,
    -- The id the refund is recorded with.
    refund_id        uuid NOT NULL,
    -- The payment refunded, and its gateway_ref (the charge the gateway refunds).
    payment_id       uuid NOT NULL,
    charge_ref       text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    idempotency_key  text NOT NULL,
    reason           text,
    -- Until when the request that prepared it may still record it; after, the engine
    -- sends it again.
    lease_until      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, invoice_id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    FOREIGN KEY (merchant_id, payment_id) REFERENCES payments (merchant_id, id)
);

-- The engine's claim of refunds whose lease ended, across merchants.
CREATE INDEX refund_intents_lease ON refund_intents (lease_until);
