// The diesel view of migrations/. Kept by hand in step with the SQL; the migration test
// (up, down, up) and every repository test fail if the two disagree.

diesel::table! {
    merchants (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        account_id -> Uuid,
        livemode -> Bool,
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
        name -> Nullable<Text>,
        scopes -> Nullable<Array<Text>>,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_events (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        api_key_id -> Uuid,
        agent -> Nullable<Text>,
        method -> Text,
        route -> Text,
        resource_id -> Nullable<Text>,
        request_id -> Text,
        idempotency_key -> Nullable<Text>,
        status -> SmallInt,
        request_body -> Nullable<Jsonb>,
        created_at -> Timestamptz,
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
        shippable -> Bool,
        min_quantity -> Int4,
        max_quantity -> Int4,
        swappable_product_ids -> Array<Uuid>,
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
        variant -> Nullable<Jsonb>,
        stock_status -> Text,
        stock_expected_at -> Nullable<Timestamptz>,
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
        erased_at -> Nullable<Timestamptz>,
        test_clock_id -> Nullable<Uuid>,
        channel_preference -> Text,
    }
}

diesel::table! {
    idempotency_keys (merchant_id, scope, idempotency_key) {
        merchant_id -> Uuid,
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
        customer_id -> Nullable<Uuid>,
        api_key_id -> Nullable<Uuid>,
        agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
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
        test_clock_id -> Nullable<Uuid>,
        shipping_address_id -> Nullable<Uuid>,
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
        test_clock_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    test_clocks (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        name -> Nullable<Text>,
        frozen_time -> Timestamptz,
        status -> Text,
        advance_to -> Nullable<Timestamptz>,
        advance_lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
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

// Customers by tag, kept from `customers.tags` by triggers (migration
// 2026-12-10-140000_customer_tags).

diesel::table! {
    customer_tags (merchant_id, tag, customer_id) {
        merchant_id -> Uuid,
        tag -> Text,
        customer_id -> Uuid,
    }
}

diesel::allow_tables_to_appear_in_same_query!(customers, customer_tags);

diesel::allow_tables_to_appear_in_same_query!(
    merchants,
    api_keys,
    audit_events,
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

// Webhooks (migrations/2026-11-25-000003_webhooks).

diesel::table! {
    webhook_endpoints (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        url -> Text,
        description -> Nullable<Text>,
        enabled_events -> Array<Text>,
        retry_schedule_secs -> Array<Int4>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        disabled -> Bool,
        disabled_reason -> Nullable<Text>,
        failing_since -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        first_attempt_at -> Nullable<Timestamptz>,
        last_attempt_at -> Nullable<Timestamptz>,
        last_response_status -> Nullable<Int4>,
        last_latency_ms -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_attempts (merchant_id, delivery_id, attempt) {
        merchant_id -> Uuid,
        delivery_id -> Uuid,
        attempt -> Int4,
        attempted_at -> Timestamptz,
        succeeded -> Bool,
        response_status -> Nullable<Int4>,
        latency_ms -> Int4,
        error -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
    events,
);

// Billing (migration 2026-11-25-000004_billing).

diesel::table! {
    payment_methods (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        gateway_token -> Text,
        brand -> Text,
        last4 -> Text,
        exp_month -> Int4,
        exp_year -> Int4,
        is_default -> Bool,
        created_at -> Timestamptz,
        detached_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    invoice_counters (merchant_id) {
        merchant_id -> Uuid,
        next_number -> Int8,
    }
}

diesel::table! {
    invoices (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        number -> Int8,
        customer_id -> Uuid,
        subscription_id -> Nullable<Uuid>,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        status -> Text,
        currency -> Text,
        total -> Int8,
        amount_paid -> Int8,
        amount_refunded -> Int8,
        attempt_count -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    invoice_lines (merchant_id, invoice_id, position) {
        merchant_id -> Uuid,
        invoice_id -> Uuid,
        position -> Int4,
        kind -> Text,
        description -> Text,
        amount -> Int8,
        quantity -> Int4,
    }
}

diesel::table! {
    payments (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        invoice_id -> Uuid,
        customer_id -> Uuid,
        payment_method_id -> Nullable<Uuid>,
        amount -> Int8,
        currency -> Text,
        status -> Text,
        gateway -> Text,
        gateway_ref -> Nullable<Text>,
        failure_code -> Nullable<Text>,
        failure_message -> Nullable<Text>,
        idempotency_key -> Text,
        amount_refunded -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refunds (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        invoice_id -> Uuid,
        payment_id -> Uuid,
        amount -> Int8,
        currency -> Text,
        gateway_ref -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

// Customer context (migration 2026-11-25-000006_context).

diesel::table! {
    customer_notes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        body -> Text,
        channel -> Text,
        author -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    cors_settings (merchant_id) {
        merchant_id -> Uuid,
        allowed_origins -> Array<Text>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    segment_settings (merchant_id, currency) {
        merchant_id -> Uuid,
        currency -> Text,
        high_ltv_threshold -> Int8,
    }
}

diesel::table! {
    retention_offers (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        name -> Text,
        kind -> Jsonb,
        eligibility -> Jsonb,
        active -> Bool,
        priority -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    retention_offer_outcomes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        offer_id -> Uuid,
        customer_id -> Uuid,
        subscription_id -> Uuid,
        cancellation_request_id -> Nullable<Uuid>,
        reason -> Nullable<Text>,
        outcome -> Text,
        created_at -> Timestamptz,
        decided_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    subscription_discounts (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        subscription_id -> Uuid,
        offer_id -> Nullable<Uuid>,
        percent -> Nullable<Int4>,
        amount -> Nullable<Int8>,
        currency -> Nullable<Text>,
        cycles -> Int4,
        cycles_remaining -> Int4,
        created_at -> Timestamptz,
        coupon_id -> Uuid,
        promotion_code_id -> Nullable<Uuid>,
        customer_id -> Uuid,
        forever -> Bool,
        description -> Nullable<Text>,
    }
}

// Coupons and promotion codes (migration 2026-12-07-150501_coupons).

diesel::table! {
    coupons (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        name -> Text,
        value -> Jsonb,
        duration -> Jsonb,
        max_redemptions -> Nullable<Int4>,
        times_redeemed -> Int4,
        redeem_by -> Nullable<Timestamptz>,
        applies_to_product_ids -> Array<Text>,
        applies_to_plan_ids -> Array<Text>,
        first_time_subscribers_only -> Bool,
        internal -> Bool,
        metadata -> Jsonb,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    promotion_codes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        coupon_id -> Uuid,
        code -> Text,
        normalized_code -> Text,
        active -> Bool,
        max_redemptions -> Nullable<Int4>,
        max_redemptions_per_customer -> Nullable<Int4>,
        times_redeemed -> Int4,
        expires_at -> Nullable<Timestamptz>,
        first_time_subscribers_only -> Bool,
        metadata -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(coupons, promotion_codes);

// The portal's subscription read asks, in its one statement, whether there are discounts
// to list.
diesel::allow_tables_to_appear_in_same_query!(subscription_discounts, subscriptions);

// A change of a subscription reads its test clock's time with the locked row.
diesel::allow_tables_to_appear_in_same_query!(subscriptions, test_clocks);

// Pending invoice items (migration 2026-11-25-000008_pending_invoice_items).

diesel::table! {
    pending_invoice_items (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        subscription_id -> Uuid,
        customer_id -> Uuid,
        description -> Text,
        amount -> Int8,
        currency -> Text,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        invoice_id -> Nullable<Uuid>,
        kind -> Text,
        agent -> Nullable<Text>,
    }
}

diesel::table! {
    gateway_settings (merchant_id) {
        merchant_id -> Uuid,
        provider -> Text,
        secret_key_sealed -> Nullable<Bytea>,
        secret_key_last4 -> Nullable<Text>,
        webhook_secret_sealed -> Nullable<Bytea>,
        webhook_secret_last4 -> Nullable<Text>,
        publishable_key -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_customers (merchant_id, customer_id, provider) {
        merchant_id -> Uuid,
        customer_id -> Uuid,
        provider -> Text,
        gateway_ref -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_events (merchant_id, provider, event_id) {
        merchant_id -> Uuid,
        provider -> Text,
        event_id -> Text,
        event_type -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    gateway_disputes (merchant_id, gateway_ref) {
        merchant_id -> Uuid,
        gateway_ref -> Text,
        payment_id -> Uuid,
        invoice_id -> Uuid,
        amount -> Int8,
        currency -> Text,
        reason -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

// Rate-limit buckets shared by every process (migration
// 2026-12-07-130001_rate_limit_buckets); written by `repo::rate_limits` in SQL.

diesel::table! {
    rate_limit_buckets (key) {
        key -> Text,
        tat_us -> Int8,
        allowed -> Bool,
    }
}

// Customer credit balances, credit notes and agents' overrides (migration
// 2026-12-07-150401_customer_credits).

diesel::table! {
    customer_balances (merchant_id, customer_id, currency) {
        merchant_id -> Uuid,
        customer_id -> Uuid,
        currency -> Text,
        balance -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    customer_balance_transactions (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        currency -> Text,
        amount -> Int8,
        balance_after -> Int8,
        source -> Text,
        reason -> Text,
        invoice_id -> Nullable<Uuid>,
        credit_note_id -> Nullable<Uuid>,
        agent -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    credit_notes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        invoice_id -> Uuid,
        customer_id -> Uuid,
        amount -> Int8,
        currency -> Text,
        reason -> Text,
        memo -> Nullable<Text>,
        destination -> Text,
        refund_id -> Nullable<Uuid>,
        agent -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    agent_overrides (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        subscription_id -> Nullable<Uuid>,
        kind -> Text,
        reason -> Text,
        agent -> Text,
        amount -> Nullable<Int8>,
        currency -> Nullable<Text>,
        created_at -> Timestamptz,
        limits -> Array<Text>,
    }
}

diesel::table! {
    metric_changes (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Int8,
        currency -> Text,
        customer_id -> Uuid,
        subscription_id -> Uuid,
        at -> Timestamptz,
        mrr -> Numeric,
        subscriptions -> Int4,
        subscribers -> Int4,
        live -> Int4,
        paused -> Int4,
        pauses_started -> Int4,
        customer_paying -> Int4,
        customer_live -> Int4,
        customer_mrr -> Numeric,
    }
}

diesel::table! {
    metric_days (merchant_id, currency, day, shard) {
        merchant_id -> Uuid,
        currency -> Text,
        day -> Date,
        mrr -> Numeric,
        subscriptions -> Int8,
        subscribers -> Int8,
        paused -> Int8,
        pauses_started -> Int8,
        shard -> Int2,
    }
}

// New and churned subscribers (migration 2026-12-09-050000_metric_flips).

diesel::table! {
    metric_flip_points (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Int8,
        currency -> Text,
        customer_id -> Uuid,
        a -> Timestamptz,
        y -> Timestamptz,
        new_w -> Int4,
        churn_w -> Int4,
        churn_mrr_w -> Numeric,
    }
}

diesel::table! {
    metric_flip_days (merchant_id, a_day, y_day, currency, shard) {
        merchant_id -> Uuid,
        a_day -> Date,
        y_day -> Date,
        currency -> Text,
        shard -> Int2,
        new_w -> Int8,
        churn_w -> Int8,
        churn_mrr_w -> Numeric,
    }
}

// The flips' points per week (migration 2026-12-10-210000_metric_flip_weeks).

diesel::table! {
    metric_flip_weeks (merchant_id, a_week, y_week, currency, shard) {
        merchant_id -> Uuid,
        a_week -> Date,
        y_week -> Date,
        currency -> Text,
        shard -> Int2,
        new_w -> Int8,
        churn_w -> Int8,
        churn_mrr_w -> Numeric,
    }
}

// `metric_pending.tx` (xid8, the writing transaction's id) is left out: diesel has no
// type for it and only SQL reads it.
diesel::table! {
    metric_pending (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Int8,
        currency -> Text,
        a_day -> Nullable<Date>,
        day -> Date,
        mrr -> Numeric,
        subscriptions -> Int4,
        subscribers -> Int4,
        paused -> Int4,
        pauses_started -> Int4,
        new_w -> Int8,
        churn_w -> Int8,
        churn_mrr_w -> Numeric,
    }
}

diesel::table! {
    metric_customer_counts (merchant_id, customer_id, currency) {
        merchant_id -> Uuid,
        customer_id -> Uuid,
        currency -> Text,
        paying -> Int4,
        live -> Int4,
        mrr -> Numeric,
    }
}

// Addresses and orders (migration 2026-12-08-110001_addresses_and_orders).

diesel::table! {
    customer_addresses (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        name -> Text,
        line1 -> Text,
        line2 -> Nullable<Text>,
        city -> Text,
        state -> Nullable<Text>,
        postal_code -> Nullable<Text>,
        country -> Text,
        phone -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    orders (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        customer_id -> Uuid,
        subscription_id -> Uuid,
        invoice_id -> Uuid,
        status -> Text,
        period_start -> Timestamptz,
        shipped_at -> Nullable<Timestamptz>,
        body -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(customer_addresses, subscriptions);

// Stock (migration 2026-12-09-030000_stock).

diesel::table! {
    stock_notices (merchant_id, id) {
        merchant_id -> Uuid,
        id -> Uuid,
        plan_id -> Uuid,
        status -> Text,
        expected_at -> Nullable<Timestamptz>,
        next_order -> Text,
        substitute_plan_id -> Nullable<Uuid>,
        choices -> Array<Text>,
        cursor_id -> Nullable<Uuid>,
        notified -> Int8,
        created_at -> Timestamptz,
        done_at -> Nullable<Timestamptz>,
        superseded_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    stock_notice_recipients (merchant_id, notice_id, subscription_id) {
        merchant_id -> Uuid,
        notice_id -> Uuid,
        subscription_id -> Uuid,
        customer_id -> Uuid,
        applied -> Text,
        not_applied_code -> Nullable<Text>,
        skipped_renewal_at -> Nullable<Timestamptz>,
        scheduled_change_id -> Nullable<Uuid>,
        choice -> Nullable<Text>,
        chosen_at -> Nullable<Timestamptz>,
        notified_at -> Timestamptz,
    }
}
diesel::allow_tables_to_appear_in_same_query!(stock_notices, stock_notice_recipients);
