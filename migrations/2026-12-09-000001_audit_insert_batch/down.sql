DROP FUNCTION tenure_record_audit_events(uuid[], uuid[], uuid[], text[], text[], text[],
                                         text[], text[], text[], smallint[], jsonb[],
                                         timestamptz[]);

CREATE FUNCTION tenure_record_audit_event(
    p_merchant_id uuid, p_id uuid, p_api_key_id uuid, p_agent text, p_method text,
    p_route text, p_resource_id text, p_request_id text, p_idempotency_key text,
    p_status smallint, p_request_body jsonb, p_created_at timestamptz
) RETURNS uuid
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO audit_events (merchant_id, id, api_key_id, agent, method, route,
                              resource_id, request_id, idempotency_key, status,
                              request_body, created_at)
    VALUES (p_merchant_id, p_id, p_api_key_id, p_agent, p_method, p_route,
            p_resource_id, p_request_id, p_idempotency_key, p_status,
            p_request_body, p_created_at);
    RETURN p_id;
END;
$$;
