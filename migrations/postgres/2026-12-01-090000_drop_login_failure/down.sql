CREATE TABLE login_failure (
    id BIGSERIAL PRIMARY KEY,
    login TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL,
    remote_addr TEXT
);
CREATE INDEX login_failure_login_idx ON login_failure (login, failed_at);
