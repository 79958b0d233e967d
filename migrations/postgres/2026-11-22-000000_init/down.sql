DROP TABLE worker_lease;
DROP TABLE signing_key;
DROP TABLE audit_event;
DROP TABLE token_revocation;
DROP TABLE issued_token;
DROP TABLE identity;
