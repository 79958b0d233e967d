-- tokend schema, PostgreSQL flavour. Times are UTC, whole seconds, TIMESTAMP without zone.

CREATE TABLE identity (
    id BIGSERIAL PRIMARY KEY,
    identity_type TEXT NOT NULL CHECK (identity_type IN ('service_account', 'user')),
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    login TEXT UNIQUE,
    password_hash TEXT,
    role TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- latest expiry among the identity's unrevoked tokens (kept up to date on issue/revoke)
    expires_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by BIGINT,
    revocation_reason TEXT,
    last_used_at TIMESTAMP
);
CREATE INDEX identity_type_scope_idx ON identity (identity_type, scope);
CREATE INDEX identity_name_idx ON identity (name);
CREATE INDEX identity_expires_at_idx ON identity (expires_at);

-- One row per token ever issued: its id, times and a short fingerprint, never the token.
CREATE TABLE issued_token (
    jti TEXT PRIMARY KEY,
    identity_id BIGINT NOT NULL REFERENCES identity (id) ON DELETE CASCADE,
    kid TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX issued_token_identity_idx ON issued_token (identity_id, expires_at);
CREATE INDEX issued_token_expires_at_idx ON issued_token (expires_at);

-- Revoked tokens that have not expired yet; pruned once token_exp is past.
-- txid is the 64-bit id of the writing transaction. Replicas poll with
-- "txid >= xmin of the snapshot taken before the previous poll", which also catches
-- transactions that committed out of id order (see src/tokens/revocation.rs).
CREATE TABLE token_revocation (
    id BIGSERIAL PRIMARY KEY,
    token_jti TEXT NOT NULL UNIQUE,
    identity_id BIGINT NOT NULL,
    token_exp TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    revoked_by BIGINT,
    reason TEXT,
    txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)
);
CREATE INDEX token_revocation_token_exp_idx ON token_revocation (token_exp);
CREATE INDEX token_revocation_identity_idx ON token_revocation (identity_id);
CREATE INDEX token_revocation_txid_idx ON token_revocation (txid);

CREATE TABLE audit_event (
    id BIGSERIAL PRIMARY KEY,
    occurred_at TIMESTAMP NOT NULL,
    actor_id BIGINT,
    action TEXT NOT NULL,
    identity_id BIGINT,
    token_id TEXT,
    reason TEXT,
    remote_addr TEXT,
    detail TEXT
);
CREATE INDEX audit_event_identity_idx ON audit_event (identity_id, id);
CREATE INDEX audit_event_action_idx ON audit_event (action, id);

-- Signing keys. The private key is sealed with the key-encryption key, never stored plain.
CREATE TABLE signing_key (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    activated_at TIMESTAMP,
    retired_at TIMESTAMP
);

-- When each periodic job last ran, so that one run per interval happens across replicas.
CREATE TABLE worker_lease (
    name TEXT PRIMARY KEY,
    last_run_at TIMESTAMP NOT NULL,
    holder TEXT
);
