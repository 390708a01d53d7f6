-- Issue #19 part B: a customer's address book, the shipping address of a subscription,
-- and the orders each paid period of a shippable subscription sends (docs/orders.md).
CREATE TABLE customer_addresses (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    id           uuid NOT NULL,
    customer_id  uuid NOT NULL,
    name         text NOT NULL,
    line1        text NOT NULL,
    line2        text,
    city         text NOT NULL,
    state        text,
    postal_code  text,
    -- ISO 3166-1 alpha-2, upper case (checked by the domain).
    country      text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    phone        text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id)
);
CREATE INDEX customer_addresses_customer ON customer_addresses (merchant_id, customer_id, id);

-- Where the subscription ships: an entry of its customer's address book (an edit of the
-- entry moves it; deleting an entry in use is refused).
ALTER TABLE subscriptions
    ADD COLUMN shipping_address_id uuid,
    ADD CONSTRAINT subscriptions_shipping_address
        FOREIGN KEY (merchant_id, shipping_address_id)
        REFERENCES customer_addresses (merchant_id, id);
CREATE INDEX subscriptions_shipping_address ON subscriptions (merchant_id, shipping_address_id)
    WHERE shipping_address_id IS NOT NULL;

CREATE TABLE orders (
    merchant_id       uuid NOT NULL REFERENCES merchants (id),
    id                uuid NOT NULL,
    customer_id       uuid NOT NULL,
    subscription_id   uuid NOT NULL,
    invoice_id        uuid NOT NULL,
    status            text NOT NULL CHECK (status IN ('awaiting_payment', 'on_hold',
        'unfulfilled', 'fulfilled', 'shipped', 'delivered', 'canceled')),
    period_start      timestamptz NOT NULL,
    -- The customer context reads the last shipment by it.
    shipped_at        timestamptz,
    -- The rest of the domain's Order (lines, amounts, the address snapshot, the
    -- shipment, the other steps' times), written whole on every change.
    body              jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id),
    FOREIGN KEY (merchant_id, invoice_id) REFERENCES invoices (merchant_id, id)
);
-- One order per invoice: what the period sends is decided once.
CREATE UNIQUE INDEX orders_invoice ON orders (merchant_id, invoice_id);
CREATE INDEX orders_customer ON orders (merchant_id, customer_id, id);
CREATE INDEX orders_subscription ON orders (merchant_id, subscription_id, id);
CREATE INDEX orders_status ON orders (merchant_id, status, id);
