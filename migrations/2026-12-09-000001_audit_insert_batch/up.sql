-- The audit trail's insert takes a batch: the rows of every merchant request that
-- finished while the previous batch was being written go in one call, one statement and
-- one commit (tenure_app::audit::AuditLog). Like the one-row function it replaces, it
-- does not wait for its WAL flush (`synchronous_commit` off for its own transaction
-- only): each row's request committed durably before, and that transaction's events name
-- the same key, agent and request (docs/keys.md, BENCHMARKS.md "Issue 20").
DROP FUNCTION tenure_record_audit_event(uuid, uuid, uuid, text, text, text, text, text, text,
                                        smallint, jsonb, timestamptz);

CREATE FUNCTION tenure_record_audit_events(
    p_merchant_ids uuid[], p_ids uuid[], p_api_key_ids uuid[], p_agents text[],
    p_methods text[], p_routes text[], p_resource_ids text[], p_request_ids text[],
    p_idempotency_keys text[], p_statuses smallint[], p_request_bodies jsonb[],
    p_created_ats timestamptz[]
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    written integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    INSERT INTO audit_events (merchant_id, id, api_key_id, agent, method, route,
                              resource_id, request_id, idempotency_key, status,
                              request_body, created_at)
    SELECT * FROM unnest(p_merchant_ids, p_ids, p_api_key_ids, p_agents, p_methods,
                         p_routes, p_resource_ids, p_request_ids, p_idempotency_keys,
                         p_statuses, p_request_bodies, p_created_ats);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;
