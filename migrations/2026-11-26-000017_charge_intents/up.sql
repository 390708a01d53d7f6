-- A charge decided and about to be sent to the gateway (service/charges.rs). It is
-- committed before the gateway is called and deleted by the transaction that records
-- the outcome, so no lock is held across the call. One per invoice at a time: while it
-- exists nothing else charges, voids or gives up the invoice. After a crash, the engine
-- finds it once the invoice's lease (next_payment_attempt_at) ends and sends the same
-- request again, whose idempotency key makes the gateway replay its first answer.

-- Adding a foreign key waits for SHARE ROW EXCLUSIVE on the tables it names, and every
-- write to them queues behind that wait: give up after 10 s (the migration fails and
-- can be run again) rather than stall writes behind a long transaction.
SET LOCAL lock_timeout = '10s';

CREATE TABLE charge_intents (
    merchant_id        uuid NOT NULL,
    invoice_id         uuid NOT NULL,
    -- The invoice's attempt_count once this attempt is recorded.
    attempt            integer NOT NULL CHECK (attempt >= 1),
    idempotency_key    text NOT NULL,
    -- NULL: the customer had no default payment method (a decline without a call).
    payment_method_id  uuid,
    -- The invoice's amount due when decided (its currency), 0 when nothing was due.
    amount             bigint NOT NULL CHECK (amount >= 0),
    -- Who asked: 'scheduled' (the engine), 'immediate' (a new payment method) or
    -- 'manual' (POST /v1/invoices/{id}/pay); it decides what a decline does.
    mode               text NOT NULL CHECK (mode IN ('scheduled', 'immediate', 'manual')),
    -- The schedule the invoice had before its lease, restored by a declined immediate
    -- or manual attempt.
    resume_at          timestamptz,
    created_at         timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, invoice_id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    FOREIGN KEY (merchant_id, payment_method_id) REFERENCES payment_methods (merchant_id, id)
);
