-- Webhooks: endpoints a merchant registers, one delivery per (event, endpoint) created in
-- the same transaction as the event, and a log of every HTTP attempt.

-- The signing secret is kept as issued (whsec_…): an HMAC key must be readable to sign.
-- During a rotation the previous secret keeps signing until previous_secret_expires_at.
CREATE TABLE webhook_endpoints (
    merchant_id                 uuid NOT NULL REFERENCES merchants (id),
    id                          uuid NOT NULL,
    url                         text NOT NULL CHECK (char_length(url) <= 2048),
    description                 text,
    enabled_events              text[] NOT NULL,
    retry_schedule_secs         integer[] NOT NULL,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    disabled                    boolean NOT NULL DEFAULT false,
    -- 'manual' (PATCH disabled=true) or 'failing' (automatic).
    disabled_reason             text CHECK (disabled_reason IN ('manual', 'failing')),
    -- The first failed attempt since the last successful one; null while healthy.
    failing_since               timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (merchant_id) WHERE NOT disabled;

CREATE TABLE webhook_deliveries (
    merchant_id           uuid NOT NULL,
    id                    uuid NOT NULL,
    endpoint_id           uuid NOT NULL,
    event_id              uuid NOT NULL,
    event_type            text NOT NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'canceled')),
    -- Attempts started so far; a worker increments it when it claims the delivery.
    attempts              integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a worker may (next) claim it; while an attempt is in flight, the end of the
    -- claim's lease. Null once the delivery is settled.
    next_attempt_at       timestamptz,
    first_attempt_at      timestamptz,
    last_attempt_at       timestamptz,
    last_response_status  integer,
    last_latency_ms       integer,
    last_error            text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, endpoint_id) REFERENCES webhook_endpoints (merchant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (merchant_id, event_id) REFERENCES events (merchant_id, id),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- What workers scan: due deliveries, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (merchant_id, endpoint_id, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (merchant_id, event_id);

CREATE TABLE webhook_attempts (
    merchant_id      uuid NOT NULL,
    delivery_id      uuid NOT NULL,
    attempt          integer NOT NULL CHECK (attempt >= 1),
    attempted_at     timestamptz NOT NULL,
    succeeded        boolean NOT NULL,
    response_status  integer,
    latency_ms       integer NOT NULL CHECK (latency_ms >= 0),
    error            text,
    PRIMARY KEY (merchant_id, delivery_id, attempt),
    FOREIGN KEY (merchant_id, delivery_id) REFERENCES webhook_deliveries (merchant_id, id) ON DELETE CASCADE
);
