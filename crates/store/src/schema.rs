// The diesel view of migrations/. Kept by hand in step with the SQL; the migration test
// (up, down, up) and every repository test fail if the two disagree.

diesel::table! {
    merchants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        key_hash -> Bytea,
        key_prefix -> Text,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    products (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        portal_policy -> Jsonb,
        archived_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    plans (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        product_id -> Uuid,
        name -> Text,
        amount -> Int8,
        currency -> Text,
        billing_interval -> Text,
        interval_count -> Int4,
        trial_days -> Int4,
        active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    customers (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        external_id -> Text,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        locale -> Nullable<Text>,
        metadata -> Jsonb,
        tags -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (scope, idempotency_key) {
        scope -> Text,
        idempotency_key -> Text,
        request_hash -> Bytea,
        response_status -> Nullable<Int2>,
        response_body -> Nullable<Bytea>,
        response_headers -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    events (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        event_type -> Text,
        resource_type -> Text,
        resource_id -> Text,
        data -> Jsonb,
        previous_attributes -> Nullable<Jsonb>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    identity_providers (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        issuer -> Text,
        audience -> Text,
        algorithm -> Text,
        verification_key -> Text,
        customer_claim -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    subscriptions (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        product_id -> Uuid,
        plan_id -> Uuid,
        status -> Text,
        current_period_end -> Timestamptz,
        state -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    scheduled_changes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        subscription_id -> Uuid,
        kind -> Text,
        due_at -> Timestamptz,
        payload -> Jsonb,
    }
}

diesel::table! {
    support_tickets (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        subscription_id -> Nullable<Uuid>,
        subject -> Text,
        status -> Text,
        channel -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ticket_messages (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        ticket_id -> Uuid,
        author -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    cancellation_requests (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        subscription_id -> Uuid,
        customer_id -> Uuid,
        ticket_id -> Uuid,
        reason -> Text,
        message -> Nullable<Text>,
        status -> Text,
        effective_at -> Timestamptz,
        decline_message -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    merchants,
    api_keys,
    products,
    plans,
    customers,
    events,
    identity_providers,
    subscriptions,
    scheduled_changes,
    support_tickets,
    ticket_messages,
    cancellation_requests,
);
