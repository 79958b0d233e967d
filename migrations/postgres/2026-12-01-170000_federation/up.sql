-- Workload federation: external OIDC issuers an admin trusts (Kubernetes clusters, CI
-- providers), whose signed identity tokens tokend accepts at /oauth2/token (RFC 7523
-- jwt-bearer) in place of a secret. audiences and rules are JSON; exactly one of jwks_uri and
-- jwks (an inline JWKS) is set.
CREATE TABLE federation_issuer (
    id BIGSERIAL PRIMARY KEY,
    issuer TEXT NOT NULL UNIQUE,
    jwks_uri TEXT,
    jwks TEXT,
    audiences TEXT NOT NULL,
    max_token_age_seconds BIGINT NOT NULL,
    max_uses_per_token BIGINT NOT NULL,
    rules TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    created_by BIGINT,
    CHECK ((jwks_uri IS NULL) <> (jwks IS NULL))
);

-- The service account each workload (issuer URL, external sub) was given. Keyed by the issuer's
-- URL, not its row: an account an admin revoked stays refused even if the issuer is removed
-- and registered again.
CREATE TABLE federated_subject (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    identity_id BIGINT NOT NULL REFERENCES identity (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX federated_subject_identity_idx ON federated_subject (identity_id);

-- How often each external token was used (replay limit), by SHA-256 of iss and jti (or of
-- the whole token without a jti). Pruned by the cleanup once expires_at has passed.
CREATE TABLE federation_replay (
    replay_key TEXT PRIMARY KEY,
    uses BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX federation_replay_expires_at_idx ON federation_replay (expires_at);
