-- Every statement that changes what the revocation sync reads (token_revocation,
-- revocation_rule) announces its commit on the channel `tokend_revocations`, whoever wrote it
-- (a replica, the CLI, an operator's SQL). Replicas LISTEN on it and poll at once instead of at
-- their next tick. The payload is empty: a notification is only a wake-up, the poll reads what
-- changed with its cursor, so a lost notification never loses a revocation. Identical
-- notifications of one transaction are folded into one by PostgreSQL.
CREATE FUNCTION tokend_notify_revocations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tokend_revocations', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER token_revocation_notify
    AFTER INSERT OR UPDATE ON token_revocation
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_notify_revocations();

CREATE TRIGGER revocation_rule_notify
    AFTER INSERT OR UPDATE ON revocation_rule
    FOR EACH STATEMENT EXECUTE FUNCTION tokend_notify_revocations();
