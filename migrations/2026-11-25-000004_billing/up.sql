-- Billing: payment methods (gateway tokens, never card numbers), invoices with gapless
-- per-merchant numbers, their lines, payment attempts and refunds. Keyed by merchant_id
-- first like every tenant table.

CREATE TABLE payment_methods (
    merchant_id    uuid NOT NULL REFERENCES merchants (id),
    id             uuid NOT NULL,
    customer_id    uuid NOT NULL,
    gateway_token  text NOT NULL,
    brand          text NOT NULL,
    last4          text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month      integer NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year       integer NOT NULL,
    is_default     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    detached_at    timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    CHECK (NOT (is_default AND detached_at IS NOT NULL))
);
CREATE INDEX payment_methods_customer ON payment_methods (merchant_id, customer_id, id);
-- At most one default payment method per customer.
CREATE UNIQUE INDEX payment_methods_one_default ON payment_methods (merchant_id, customer_id)
    WHERE is_default;

-- The next invoice number of each merchant. The row is updated in the transaction that
-- creates the invoice, so a rolled-back invoice gives its number back: no gaps.
CREATE TABLE invoice_counters (
    merchant_id  uuid PRIMARY KEY REFERENCES merchants (id),
    next_number  bigint NOT NULL CHECK (next_number >= 1)
);

CREATE TABLE invoices (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL,
    number           bigint NOT NULL CHECK (number >= 1),
    customer_id      uuid NOT NULL,
    -- Plain uuid: the subscriptions table is added by the lifecycle migration.
    subscription_id  uuid,
    period_start     timestamptz,
    period_end       timestamptz,
    status           text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency         text NOT NULL CHECK (char_length(currency) = 3),
    -- The signed sum of the lines (subtotal, discount and amount due follow from them).
    total            bigint NOT NULL,
    amount_paid      bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    amount_refunded  bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    attempt_count    integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    paid_at          timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    CONSTRAINT invoices_number_unique UNIQUE (merchant_id, number),
    -- One invoice per subscription period, whatever crashes or races.
    CONSTRAINT invoices_subscription_period_unique UNIQUE (merchant_id, subscription_id, period_start),
    CHECK (amount_refunded <= amount_paid),
    CHECK ((period_start IS NULL) = (period_end IS NULL) AND (period_start IS NULL OR period_start < period_end))
);
CREATE INDEX invoices_customer ON invoices (merchant_id, customer_id, id);
CREATE INDEX invoices_status ON invoices (merchant_id, status, id);

CREATE TABLE invoice_lines (
    merchant_id  uuid NOT NULL,
    invoice_id   uuid NOT NULL,
    position     integer NOT NULL CHECK (position >= 0),
    kind         text NOT NULL CHECK (kind IN ('plan', 'proration', 'discount')),
    description  text NOT NULL,
    amount       bigint NOT NULL,
    PRIMARY KEY (merchant_id, invoice_id, position),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id)
);

-- Every charge attempt, successful or not.
CREATE TABLE payments (
    merchant_id        uuid NOT NULL,
    id                 uuid NOT NULL,
    invoice_id         uuid NOT NULL,
    customer_id        uuid NOT NULL,
    payment_method_id  uuid,
    amount             bigint NOT NULL CHECK (amount >= 0),
    currency           text NOT NULL CHECK (char_length(currency) = 3),
    status             text NOT NULL CHECK (status IN ('succeeded', 'declined', 'failed')),
    gateway            text NOT NULL,
    gateway_ref        text,
    failure_code       text,
    failure_message    text,
    idempotency_key    text NOT NULL,
    amount_refunded    bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    CONSTRAINT payments_idempotency_key_unique UNIQUE (merchant_id, idempotency_key),
    CHECK ((status = 'succeeded') = (gateway_ref IS NOT NULL))
);
CREATE INDEX payments_invoice ON payments (merchant_id, invoice_id, id);
CREATE INDEX payments_customer ON payments (merchant_id, customer_id, id);

CREATE TABLE refunds (
    merchant_id  uuid NOT NULL,
    id           uuid NOT NULL,
    invoice_id   uuid NOT NULL,
    payment_id   uuid NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     text NOT NULL CHECK (char_length(currency) = 3),
    gateway_ref  text NOT NULL,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    FOREIGN KEY (merchant_id, payment_id) REFERENCES payments (merchant_id, id)
);
CREATE INDEX refunds_invoice ON refunds (merchant_id, invoice_id, id);
