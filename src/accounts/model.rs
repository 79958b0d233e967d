//! Accounts and their tokens as the API shows them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::models::{IdentityRow, IssuedTokenRow};
use crate::db::DbError;
use crate::scope::{Scope, ValidMetadata};
use crate::time::{self, rfc3339};

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Not revoked, and holds at least one token that has not expired.
    Active,
    /// Not revoked, but its latest unrevoked token has expired.
    Expired,
    /// Revoked: the account was (`revoked_at` is set), or every token it held was
    /// (`revoked_at` is null; a new token for it makes it active again). Either way none of
    /// its tokens is accepted any more, and none of them merely expired.
    Revoked,
}

/// A service account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Account {
    #[schema(example = 42)]
    pub identity_id: i64,
    #[schema(example = "sensor:core.timer")]
    pub name: String,
    pub scope: Scope,
    pub description: Option<String>,
    #[schema(value_type = Object, example = json!({"trigger_types": ["core.timer"]}))]
    pub metadata: Map<String, Value>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The latest expiry among the account's unrevoked tokens.
    #[serde(with = "rfc3339::option")]
    pub expires_at: Option<DateTime<Utc>>,
    pub status: AccountStatus,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_reason: Option<String>,
    #[serde(with = "rfc3339::option")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Account {
    pub fn from_row(row: IdentityRow, now: DateTime<Utc>) -> Result<Account, DbError> {
        let scope = Scope::parse(&row.scope).map_err(|_| {
            DbError::Corrupt(format!("identity {} has scope '{}'", row.id, row.scope))
        })?;
        let metadata = ValidMetadata::from_stored(&row.metadata)
            .map_err(|e| DbError::Corrupt(format!("identity {} metadata: {e}", row.id)))?;
        let expires_at = row.expires_at.map(time::from_db);
        let revoked_at = row.revoked_at.map(time::from_db);
        // `expires_at` is the latest expiry among the unrevoked tokens: none means every
        // token was revoked, which is not the same as having expired.
        let status = match (revoked_at, expires_at) {
            (Some(_), _) | (None, None) => AccountStatus::Revoked,
            (None, Some(exp)) if exp > now => AccountStatus::Active,
            (None, Some(_)) => AccountStatus::Expired,
        };
        Ok(Account {
            identity_id: row.id,
            name: row.name,
            scope,
            description: row.description,
            metadata: metadata.into_map(),
            created_at: time::from_db(row.created_at),
            expires_at,
            status,
            revoked_at,
            revocation_reason: row.revocation_reason,
            last_used_at: row.last_used_at.map(time::from_db),
        })
    }
}

/// A token's record: never the token itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenRecord {
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub issued_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// First 16 hex digits of the token's SHA-256.
    #[schema(example = "3f7a9c01b2d4e6f8")]
    pub fingerprint: String,
    /// The first token of this token's refresh chain; revoking any member revokes them all.
    pub family_id: Option<String>,
    /// The token this one was refreshed from.
    pub parent_token_id: Option<String>,
}

impl TokenRecord {
    pub fn from_row(row: IssuedTokenRow) -> Result<TokenRecord, DbError> {
        Ok(TokenRecord {
            token_id: Uuid::parse_str(&row.jti)
                .map_err(|_| DbError::Corrupt(format!("issued_token id '{}'", row.jti)))?,
            issued_at: time::from_db(row.issued_at),
            expires_at: time::from_db(row.expires_at),
            revoked_at: row.revoked_at.map(time::from_db),
            fingerprint: row.fingerprint,
            family_id: row.family_id,
            parent_token_id: row.parent_jti,
        })
    }
}

/// An account with its tokens (`GET /service-accounts/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountDetail {
    #[serde(flatten)]
    pub account: Account,
    pub tokens: Vec<TokenRecord>,
}
