-- Lineage: every token names its family (the first token of a login or an account's issue)
-- and the token it was refreshed from. Revoking a token revokes its family.
ALTER TABLE issued_token ADD COLUMN family_id TEXT;
ALTER TABLE issued_token ADD COLUMN parent_jti TEXT;
CREATE INDEX issued_token_family_idx ON issued_token (family_id);

-- A disabled user may not log in or refresh; their tokens were revoked when it was set.
ALTER TABLE identity ADD COLUMN disabled_at TIMESTAMP;

-- Revocation by selector. A rule covers every token issued before issued_before that matches
-- all of its selectors; it is checked in memory on every verification and pruned once
-- expires_at (the latest expiry any covered token can have) has passed.
CREATE TABLE revocation_rule (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT,
    name TEXT,
    name_prefix TEXT,
    identity_id BIGINT,
    key_id TEXT,
    issued_before TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    reason TEXT,
    matched BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX revocation_rule_expires_at_idx ON revocation_rule (expires_at);
