DROP INDEX audit_event_occurred_at_idx;
DROP TABLE login_failure;
