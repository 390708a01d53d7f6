-- Customer context (issue 6): the customer of an event (for the timeline), agent notes,
-- per-merchant segment settings, retention offers, their presentations/outcomes and the
-- subscription discounts an accepted offer grants. Keyed by merchant_id first.

-- Filled by the event recorder when the resource belongs to a customer (the customer
-- itself, or a resource whose snapshot carries `customer_id`). Older events stay null.
ALTER TABLE events ADD COLUMN customer_id uuid;
CREATE INDEX events_customer ON events (merchant_id, customer_id, id) WHERE customer_id IS NOT NULL;

CREATE TABLE customer_notes (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    id           uuid NOT NULL,
    customer_id  uuid NOT NULL,
    body         text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('portal', 'email', 'chat', 'phone', 'api', 'system')),
    author       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id)
);
CREATE INDEX customer_notes_customer ON customer_notes (merchant_id, customer_id, id);

-- The high_ltv threshold of a merchant, per currency.
CREATE TABLE segment_settings (
    merchant_id         uuid NOT NULL REFERENCES merchants (id),
    currency            text NOT NULL CHECK (char_length(currency) = 3),
    high_ltv_threshold  bigint NOT NULL CHECK (high_ltv_threshold >= 0),
    PRIMARY KEY (merchant_id, currency)
);

CREATE TABLE retention_offers (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    -- The domain's OfferKind and Eligibility, as JSON.
    kind         jsonb NOT NULL,
    eligibility  jsonb NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    priority     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

-- Every presentation of an offer to a customer and what became of it.
CREATE TABLE retention_offer_outcomes (
    merchant_id              uuid NOT NULL REFERENCES merchants (id),
    id                       uuid NOT NULL,
    offer_id                 uuid NOT NULL,
    customer_id              uuid NOT NULL,
    subscription_id          uuid NOT NULL,
    cancellation_request_id  uuid,
    reason                   text,
    outcome                  text NOT NULL CHECK (outcome IN ('presented', 'accepted', 'declined')),
    created_at               timestamptz NOT NULL DEFAULT now(),
    decided_at               timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, offer_id) REFERENCES retention_offers (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id)
);
CREATE INDEX retention_offer_outcomes_sub ON retention_offer_outcomes (merchant_id, subscription_id, offer_id);
CREATE INDEX retention_offer_outcomes_time ON retention_offer_outcomes (merchant_id, created_at);

-- Discounts granted to a subscription; the renewal engine reads active_discounts() and
-- adds a discount line per invoice, decrementing cycles_remaining.
CREATE TABLE subscription_discounts (
    merchant_id       uuid NOT NULL REFERENCES merchants (id),
    id                uuid NOT NULL,
    subscription_id   uuid NOT NULL,
    offer_id          uuid,
    percent           integer CHECK (percent BETWEEN 1 AND 100),
    amount            bigint CHECK (amount > 0),
    currency          text CHECK (char_length(currency) = 3),
    cycles            integer NOT NULL CHECK (cycles >= 1),
    cycles_remaining  integer NOT NULL CHECK (cycles_remaining >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id),
    CHECK ((percent IS NULL) <> (amount IS NULL)),
    CHECK ((amount IS NULL) = (currency IS NULL))
);
CREATE INDEX subscription_discounts_sub ON subscription_discounts (merchant_id, subscription_id);
