-- The subscription lifecycle: subscriptions, their scheduled changes (claimed by
-- workers with FOR UPDATE SKIP LOCKED), cancellation requests and support tickets.
-- Every table is keyed by merchant_id first.

-- The whole domain value lives in `state` (jsonb); the columns beside it mirror what
-- lists filter and sort on, and are rewritten from `state` on every save.
CREATE TABLE subscriptions (
    merchant_id         uuid NOT NULL REFERENCES merchants (id),
    id                  uuid NOT NULL,
    customer_id         uuid NOT NULL,
    product_id          uuid NOT NULL,
    plan_id             uuid NOT NULL,
    status              text NOT NULL CHECK (status IN
                            ('trialing', 'active', 'past_due', 'paused', 'canceled', 'unpaid')),
    current_period_end  timestamptz NOT NULL,
    state               jsonb NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, product_id) REFERENCES products (merchant_id, id),
    FOREIGN KEY (merchant_id, plan_id) REFERENCES plans (merchant_id, id)
);
CREATE INDEX subscriptions_status ON subscriptions (merchant_id, status, id);
CREATE INDEX subscriptions_customer ON subscriptions (merchant_id, customer_id, id);
CREATE INDEX subscriptions_plan ON subscriptions (merchant_id, plan_id, id);
CREATE INDEX subscriptions_period_end ON subscriptions (merchant_id, current_period_end);

-- One row per pending change of a subscription (and its trial end), mirrored from the
-- subscription's state in the same transaction. `payload` is the domain's change.
CREATE TABLE scheduled_changes (
    merchant_id      uuid NOT NULL,
    id               uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN
                         ('pause', 'resume', 'cancel', 'plan_change', 'trial_end')),
    due_at           timestamptz NOT NULL,
    payload          jsonb NOT NULL,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id)
        ON DELETE CASCADE
);
-- Workers scan across tenants by due time.
CREATE INDEX scheduled_changes_due ON scheduled_changes (due_at);
CREATE INDEX scheduled_changes_subscription ON scheduled_changes (merchant_id, subscription_id);

CREATE TABLE support_tickets (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid,
    subject          text NOT NULL,
    status           text NOT NULL CHECK (status IN ('open', 'resolved', 'closed')),
    channel          text NOT NULL CHECK (channel IN ('portal', 'api')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id)
);
CREATE INDEX support_tickets_status ON support_tickets (merchant_id, status, id);
CREATE INDEX support_tickets_customer ON support_tickets (merchant_id, customer_id, id);

CREATE TABLE ticket_messages (
    merchant_id  uuid NOT NULL,
    id           uuid NOT NULL,
    ticket_id    uuid NOT NULL,
    author       text NOT NULL CHECK (author IN ('merchant', 'customer', 'system')),
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, ticket_id) REFERENCES support_tickets (merchant_id, id)
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (merchant_id, ticket_id, id);

CREATE TABLE cancellation_requests (
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    id               uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    customer_id      uuid NOT NULL,
    ticket_id        uuid NOT NULL,
    reason           text NOT NULL CHECK (reason IN ('too_expensive', 'missing_features',
                         'switched_service', 'unused', 'customer_service', 'too_complex',
                         'low_quality', 'other')),
    message          text,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'withdrawn', 'approved', 'declined', 'completed')),
    effective_at     timestamptz NOT NULL,
    decline_message  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, subscription_id) REFERENCES subscriptions (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customers (merchant_id, id),
    FOREIGN KEY (merchant_id, ticket_id) REFERENCES support_tickets (merchant_id, id)
);
CREATE INDEX cancellation_requests_status ON cancellation_requests (merchant_id, status, id);
CREATE INDEX cancellation_requests_customer ON cancellation_requests (merchant_id, customer_id, id);
