DROP INDEX issued_token_parent_jti_idx;
DROP TABLE oauth_client_key;
DROP TABLE oauth_client_secret;
