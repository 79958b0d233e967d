//! Rows as diesel reads and writes them. Domain types live in `accounts/` and `tokens/`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    audit_event, federated_subject, federation_issuer, identity, issued_token, oauth_client_key,
    oauth_client_secret, revocation_rule, signing_key, token_revocation,
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identity)]
pub struct IdentityRow {
    pub id: i64,
    pub identity_type: String,
    pub name: String,
    pub scope: String,
    pub description: Option<String>,
    pub metadata: String,
    pub login: Option<String>,
    pub password_hash: Option<String>,
    pub role: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<i64>,
    pub revocation_reason: Option<String>,
    pub last_used_at: Option<NaiveDateTime>,
    pub disabled_at: Option<NaiveDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = identity)]
pub struct NewIdentity<'a> {
    pub identity_type: &'a str,
    pub name: &'a str,
    pub scope: &'a str,
    pub description: Option<&'a str>,
    pub metadata: &'a str,
    pub login: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub role: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = issued_token)]
pub struct IssuedTokenRow {
    pub jti: String,
    pub identity_id: i64,
    pub kid: String,
    pub fingerprint: String,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// The first token of this token's refresh chain (itself for a first token).
    pub family_id: Option<String>,
    /// The token this one was refreshed from.
    pub parent_jti: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = token_revocation)]
pub struct NewRevocation {
    pub token_jti: String,
    pub identity_id: i64,
    pub token_exp: NaiveDateTime,
    pub revoked_at: NaiveDateTime,
    pub revoked_by: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_event)]
pub struct AuditEventRow {
    pub id: i64,
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<i64>,
    pub action: String,
    pub identity_id: Option<i64>,
    pub token_id: Option<String>,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_event)]
pub struct NewAuditEvent {
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<i64>,
    pub action: String,
    pub identity_id: Option<i64>,
    pub token_id: Option<String>,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_key)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub public_key: String,
    pub sealed_private_key: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub activated_at: Option<NaiveDateTime>,
    pub retired_at: Option<NaiveDateTime>,
    pub retire_after: Option<NaiveDateTime>,
}

/// What a revocation rule selects, as `revocation_rule` holds it (and as the token tables
/// are matched against it).
#[derive(Debug, Clone, Default, Queryable, Selectable, Insertable)]
#[diesel(table_name = revocation_rule)]
pub struct RuleSelector {
    pub scope: Option<String>,
    pub name: Option<String>,
    pub name_prefix: Option<String>,
    pub identity_id: Option<i64>,
    pub key_id: Option<String>,
    /// Tokens issued at or before this.
    pub issued_before: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = revocation_rule)]
pub struct RevocationRuleRow {
    pub id: i64,
    #[diesel(embed)]
    pub selector: RuleSelector,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
    pub reason: Option<String>,
    pub matched: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = revocation_rule)]
pub struct NewRevocationRule {
    #[diesel(embed)]
    pub selector: RuleSelector,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub created_by: Option<i64>,
    pub reason: Option<String>,
    pub matched: i64,
}

/// A client secret of a service account: only its SHA-256 is kept.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_client_secret)]
pub struct ClientSecretRow {
    pub secret_id: String,
    pub identity_id: i64,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_by: Option<i64>,
}

/// The public keys a service account signs client assertions with (one of the two is set).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_client_key)]
pub struct ClientKeyRow {
    pub identity_id: i64,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub updated_at: NaiveDateTime,
}

/// A trusted external issuer (workload federation). `audiences` and `rules` are JSON; one of
/// `jwks_uri` and `jwks` is set.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = federation_issuer)]
pub struct FederationIssuerRow {
    pub id: i64,
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub jwks: Option<String>,
    pub audiences: String,
    pub max_token_age_seconds: i64,
    pub max_uses_per_token: i64,
    pub rules: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub created_by: Option<i64>,
}

/// The settable columns of a trusted issuer (insert and update alike).
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = federation_issuer, treat_none_as_null = true)]
pub struct FederationIssuerFields {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub jwks: Option<String>,
    pub audiences: String,
    pub max_token_age_seconds: i64,
    pub max_uses_per_token: i64,
    pub rules: String,
    pub updated_at: NaiveDateTime,
}

/// The service account a workload (issuer URL, external `sub`) was given.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = federated_subject)]
pub struct FederatedSubjectRow {
    pub issuer: String,
    pub subject: String,
    pub identity_id: i64,
    pub created_at: NaiveDateTime,
}
