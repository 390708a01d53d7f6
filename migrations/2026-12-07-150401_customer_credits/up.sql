-- Customer credit balances, their ledger, credit notes, one-off invoice items and the
-- record of agents' overrides (issue 21, part A).

-- The running balance of one customer in one currency: the sum of its ledger rows,
-- kept in the transaction that writes each row (read without summing the ledger). It
-- never goes below zero: a credit is only ever used up.
CREATE TABLE customer_balances (
    merchant_id  uuid NOT NULL,
    customer_id  uuid NOT NULL,
    currency     text NOT NULL CHECK (char_length(currency) = 3),
    balance      bigint NOT NULL CHECK (balance >= 0),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, customer_id, currency),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id)
);

-- One row per change of a balance: a signed amount, why, where it came from and who
-- (the agent) made it. `balance_after` is the running balance it left.
CREATE TABLE customer_balance_transactions (
    merchant_id     uuid NOT NULL,
    id              uuid NOT NULL,
    customer_id     uuid NOT NULL,
    currency        text NOT NULL CHECK (char_length(currency) = 3),
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_after   bigint NOT NULL CHECK (balance_after >= 0),
    source          text NOT NULL CHECK (source IN ('adjustment', 'credit_note', 'invoice')),
    reason          text NOT NULL,
    invoice_id      uuid,
    credit_note_id  uuid,
    agent           text,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id)
);
-- A customer's ledger, newest first.
CREATE INDEX customer_balance_transactions_customer
    ON customer_balance_transactions (merchant_id, customer_id, id);

-- A credit note: part (or all) of a paid invoice given back, refunded through the
-- gateway or credited to the customer's balance.
CREATE TABLE credit_notes (
    merchant_id  uuid NOT NULL,
    id           uuid NOT NULL,
    invoice_id   uuid NOT NULL,
    customer_id  uuid NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     text NOT NULL CHECK (char_length(currency) = 3),
    reason       text NOT NULL,
    memo         text,
    destination  text NOT NULL CHECK (destination IN ('refund', 'balance')),
    refund_id    uuid,
    agent        text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, refund_id) REFERENCES refunds (merchant_id, id),
    CHECK ((destination = 'refund') = (refund_id IS NOT NULL))
);
CREATE INDEX credit_notes_invoice ON credit_notes (merchant_id, invoice_id, id);
CREATE INDEX credit_notes_customer ON credit_notes (merchant_id, customer_id, id);

-- Invoices carry one-off lines and the customer balance they used before charging.
ALTER TABLE invoice_lines
    DROP CONSTRAINT invoice_lines_kind_check,
    ADD CONSTRAINT invoice_lines_kind_check
        CHECK (kind IN ('plan', 'proration', 'discount', 'one_off', 'customer_balance'));

-- Pending items are prorations (written by plan and quantity changes) or one-off
-- charges and credits a merchant or an agent adds; only the latter may be deleted.
ALTER TABLE pending_invoice_items
    ADD COLUMN kind  text NOT NULL DEFAULT 'proration' CHECK (kind IN ('proration', 'one_off')),
    ADD COLUMN agent text;
-- The one-off items of a subscription, listed newest first.
CREATE INDEX pending_invoice_items_one_off ON pending_invoice_items (merchant_id, subscription_id, id)
    WHERE kind = 'one_off';

-- What agents granted beyond the default policy, with a reason: goodwill credits and
-- discounts (an amount), and policy limits exceeded for one subscriber.
CREATE TABLE agent_overrides (
    merchant_id      uuid NOT NULL,
    id               uuid NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid,
    kind             text NOT NULL,
    reason           text NOT NULL,
    agent            text NOT NULL,
    amount           bigint,
    currency         text CHECK (char_length(currency) = 3),
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    CHECK ((amount IS NULL) = (currency IS NULL))
);
CREATE INDEX agent_overrides_customer ON agent_overrides (merchant_id, customer_id, id);
-- Metrics of a period: what was granted, per agent and kind.
CREATE INDEX agent_overrides_created ON agent_overrides (merchant_id, created_at);
