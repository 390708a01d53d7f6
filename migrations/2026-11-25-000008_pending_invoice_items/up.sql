-- Pending invoice items: money owed or credited between invoices (today the proration
-- lines of an immediate plan change), added to the subscription's next invoice as
-- `proration` lines. `invoice_id` stays NULL until an invoice takes the item; the
-- invoice that takes it locks it first, so an item is never invoiced twice.
CREATE TABLE pending_invoice_items (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    description      text NOT NULL,
    -- Signed minor units: a charge is positive, a credit negative.
    amount           bigint NOT NULL,
    currency         text NOT NULL CHECK (char_length(currency) = 3),
    period_start     timestamptz,
    period_end       timestamptz,
    created_at       timestamptz NOT NULL,
    invoice_id       uuid,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id),
    CHECK ((period_start IS NULL) = (period_end IS NULL) AND (period_start IS NULL OR period_start < period_end))
);
-- The next invoice of a subscription reads (and locks) its un-invoiced items.
CREATE INDEX pending_invoice_items_uninvoiced ON pending_invoice_items (merchant_id, subscription_id, id)
    WHERE invoice_id IS NULL;
-- An invoice's items (the foreign key's referencing side).
CREATE INDEX pending_invoice_items_invoice ON pending_invoice_items (merchant_id, invoice_id)
    WHERE invoice_id IS NOT NULL;
