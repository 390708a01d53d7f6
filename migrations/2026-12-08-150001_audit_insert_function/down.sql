DROP FUNCTION tenure_record_audit_event(uuid, uuid, uuid, text, text, text, text, text, text,
                                        smallint, jsonb, timestamptz);
