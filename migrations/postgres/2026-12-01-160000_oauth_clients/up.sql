-- OAuth 2.0 client credentials of service accounts. A client secret is a 256-bit random
-- string shown once; only its SHA-256 is kept (a slow password hash would only let anyone
-- make the token endpoint burn CPU). Each secret expires; rotation adds one and shortens the
-- others' lives to an overlap.
CREATE TABLE oauth_client_secret (
    secret_id TEXT PRIMARY KEY,
    identity_id BIGINT NOT NULL REFERENCES identity (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    created_by BIGINT
);
CREATE INDEX oauth_client_secret_identity_idx ON oauth_client_secret (identity_id);

-- Public keys a service account signs its client assertions with (private_key_jwt, RFC 7523):
-- a JWKS inline or a URL to fetch it from.
CREATE TABLE oauth_client_key (
    identity_id BIGINT PRIMARY KEY REFERENCES identity (id) ON DELETE CASCADE,
    jwks TEXT,
    jwks_uri TEXT,
    updated_at TIMESTAMP NOT NULL
);

-- A token obtained by token exchange names the token it was exchanged for in parent_jti;
-- revoking that token's family finds the exchanged ones by it.
CREATE INDEX issued_token_parent_jti_idx ON issued_token (parent_jti);
