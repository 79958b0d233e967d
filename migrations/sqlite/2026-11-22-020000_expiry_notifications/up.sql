-- Expiry warnings to deliver to TOKEND_EXPIRY_WEBHOOK_URL: one row per token and threshold,
-- written before the first attempt and kept after delivery, so a restart neither loses a
-- warning nor repeats one that was delivered.
CREATE TABLE expiry_notification (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_jti TEXT NOT NULL,
    threshold_secs BIGINT NOT NULL,
    identity_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    last_error TEXT,
    UNIQUE (token_jti, threshold_secs)
);
CREATE INDEX expiry_notification_due_idx ON expiry_notification (status, next_attempt_at);
