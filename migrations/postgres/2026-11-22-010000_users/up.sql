-- Login attempts that are not (yet) known to have succeeded. An attempt is recorded before
-- the password is checked and removed when it succeeds, so parallel guesses cannot get past
-- the lockout. Rows older than the lockout window are pruned by the cleanup worker.
CREATE TABLE login_failure (
    id BIGSERIAL PRIMARY KEY,
    login TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL,
    remote_addr TEXT
);
CREATE INDEX login_failure_login_idx ON login_failure (login, failed_at);
CREATE INDEX audit_event_occurred_at_idx ON audit_event (occurred_at);
