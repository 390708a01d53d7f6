-- Each merchant's payment gateway (issue 18). No row: the built-in sandbox.
-- Secrets are sealed by the operator's key (TENURE_SECRETS_KEY, XChaCha20-Poly1305,
-- tenure_app::secrets): `*_sealed` holds key id, nonce and ciphertext, never the plain
-- value; `*_last4` is what the API shows of it.
CREATE TABLE gateway_settings (
    merchant_id             uuid PRIMARY KEY REFERENCES merchants (id),
    provider                text NOT NULL CHECK (provider IN ('sandbox', 'stripe')),
    secret_key_sealed       bytea,
    secret_key_last4        text,
    webhook_secret_sealed   bytea,
    webhook_secret_last4    text,
    publishable_key         text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (provider = 'sandbox' OR (secret_key_sealed IS NOT NULL AND publishable_key IS NOT NULL))
);

-- The gateway's customer for one of the merchant's customers (Stripe's `cus_…`),
-- created the first time a card is collected.
CREATE TABLE gateway_customers (
    merchant_id   uuid NOT NULL,
    customer_id   uuid NOT NULL,
    provider      text NOT NULL,
    gateway_ref   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, customer_id, provider),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id)
);

-- Gateway events (Stripe's `evt_…`) already applied: each is applied once.
CREATE TABLE gateway_events (
    merchant_id   uuid NOT NULL REFERENCES merchants (id),
    provider      text NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, provider, event_id)
);

-- Disputes the gateway reported (Stripe's `charge.dispute.*`), against a payment.
CREATE TABLE gateway_disputes (
    merchant_id   uuid NOT NULL REFERENCES merchants (id),
    gateway_ref   text NOT NULL,
    payment_id    uuid NOT NULL,
    invoice_id    uuid NOT NULL,
    amount        bigint NOT NULL,
    currency      text NOT NULL,
    reason        text,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, gateway_ref),
    FOREIGN KEY (merchant_id, payment_id) REFERENCES payments (merchant_id, id)
);
