-- Foundation: tenants, keys, catalog, customers, idempotency, the event outbox.
-- Every tenant-owned table is keyed by merchant_id first so the schema can be
-- distributed by tenant (e.g. Citus) without changes.

CREATE TABLE merchants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secret keys are stored only as SHA-256 hashes: they are 256-bit random values, so a
-- slow password hash would add latency to every request without adding safety.
CREATE TABLE api_keys (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    id           uuid NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    PRIMARY KEY (merchant_id, id)
);

-- Server-wide secrets, e.g. the JWT signing key generated on first start when none is
-- configured, so customer tokens survive restarts and work across processes.
CREATE TABLE server_secrets (
    name        text PRIMARY KEY,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    merchant_id    uuid NOT NULL REFERENCES merchants (id),
    id             uuid NOT NULL,
    name           text NOT NULL,
    description    text,
    portal_policy  jsonb NOT NULL,
    archived_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

CREATE TABLE plans (
    merchant_id     uuid NOT NULL,
    id              uuid NOT NULL,
    product_id      uuid NOT NULL,
    name            text NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        text NOT NULL CHECK (char_length(currency) = 3),
    billing_interval text NOT NULL CHECK (billing_interval IN ('day', 'week', 'month', 'year')),
    interval_count  integer NOT NULL CHECK (interval_count >= 1),
    trial_days      integer NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, product_id) REFERENCES products (merchant_id, id)
);
CREATE INDEX plans_product ON plans (merchant_id, product_id);

CREATE TABLE customers (
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    id           uuid NOT NULL,
    external_id  text NOT NULL,
    email        text,
    name         text,
    locale       text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    tags         text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    CONSTRAINT customers_external_id_unique UNIQUE (merchant_id, external_id)
);
CREATE INDEX customers_email ON customers (merchant_id, email);
CREATE INDEX customers_tags ON customers USING gin (tags);

-- Idempotency keys (Stripe semantics): scoped to the caller, kept 24 hours.
CREATE TABLE idempotency_keys (
    scope             text NOT NULL,
    idempotency_key   text NOT NULL,
    request_hash      bytea NOT NULL,
    response_status   smallint,
    response_body     bytea,
    response_headers  jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The transactional outbox: every state change writes its event here in the same
-- transaction as the change itself.
CREATE TABLE events (
    merchant_id          uuid NOT NULL REFERENCES merchants (id),
    id                   uuid NOT NULL,
    event_type           text NOT NULL,
    resource_type        text NOT NULL,
    resource_id          text NOT NULL,
    data                 jsonb NOT NULL,
    previous_attributes  jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX events_type ON events (merchant_id, event_type, id);
CREATE INDEX events_resource ON events (merchant_id, resource_id, id);

-- Identity providers whose tokens the portal accepts besides Tenure's own.
CREATE TABLE identity_providers (
    merchant_id     uuid NOT NULL REFERENCES merchants (id),
    id              uuid NOT NULL,
    issuer          text NOT NULL UNIQUE,
    audience        text NOT NULL,
    algorithm       text NOT NULL,
    verification_key text NOT NULL,
    customer_claim  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);
