DROP INDEX audit_events_retention;
