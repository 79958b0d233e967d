DROP TABLE revocation_rule;
ALTER TABLE identity DROP COLUMN disabled_at;
DROP INDEX issued_token_family_idx;
ALTER TABLE issued_token DROP COLUMN parent_jti;
ALTER TABLE issued_token DROP COLUMN family_id;
