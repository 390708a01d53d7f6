-- Issue #19, stock: a plan's stock, and the notices its changes fan out to the affected
-- subscribers in bounded batches (docs/orders.md, "Stock").
ALTER TABLE plans
    ADD COLUMN stock_status text NOT NULL DEFAULT 'in_stock'
        CHECK (stock_status IN ('in_stock', 'low', 'out_of_stock', 'discontinued')),
    ADD COLUMN stock_expected_at timestamptz;

-- One row per stock change: what it says, and how far its fan-out has come. The engine
-- walks the plan's subscriptions by id after `cursor_id`, one batch per transaction.
CREATE TABLE stock_notices (
    merchant_id         uuid NOT NULL REFERENCES merchants (id),
    id                  uuid NOT NULL,
    plan_id             uuid NOT NULL,
    status              text NOT NULL
        CHECK (status IN ('in_stock', 'low', 'out_of_stock', 'discontinued')),
    expected_at         timestamptz,
    next_order          text NOT NULL CHECK (next_order IN ('ship_anyway', 'skip', 'swap')),
    substitute_plan_id  uuid,
    choices             text[] NOT NULL DEFAULT '{}',
    -- The last subscription handled (ids ascending); NULL before the first batch.
    cursor_id           uuid,
    notified            bigint NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    done_at             timestamptz,
    -- The newer change of the same plan that ended this one's fan-out.
    superseded_by       uuid,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, plan_id) REFERENCES plans (merchant_id, id),
    FOREIGN KEY (merchant_id, substitute_plan_id) REFERENCES plans (merchant_id, id)
);
CREATE INDEX stock_notices_plan ON stock_notices (merchant_id, plan_id, id);
-- The engine's claim: unfinished notices, oldest first.
CREATE INDEX stock_notices_pending ON stock_notices (id) WHERE done_at IS NULL;

-- One row per subscriber a notice reached, written with its event in the batch's
-- transaction: the primary key makes a second notification impossible, and the row
-- keeps what was done to the next order and what the subscriber chose.
CREATE TABLE stock_notice_recipients (
    merchant_id      uuid NOT NULL,
    notice_id        uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    -- The action applied: the notice's, or `ship_anyway` when it could not apply.
    applied          text NOT NULL CHECK (applied IN ('ship_anyway', 'skip', 'swap')),
    -- Why the notice's action did not apply (a refusal's code), if it did not.
    not_applied_code text,
    -- The renewal skipped, or the scheduled plan change made, by `applied`.
    skipped_renewal_at timestamptz,
    scheduled_change_id uuid,
    choice           text CHECK (choice IN ('ship_anyway', 'skip', 'swap')),
    chosen_at        timestamptz,
    notified_at      timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, notice_id, subscription_id),
    FOREIGN KEY (merchant_id, notice_id) REFERENCES stock_notices (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id)
);
CREATE INDEX stock_notice_recipients_subscription
    ON stock_notice_recipients (merchant_id, subscription_id, notice_id);
