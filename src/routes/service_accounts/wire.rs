//! The JSON bodies and query of `/service-accounts`: requests parsed into domain types once,
//! responses as the contract shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::accounts::{Account, AccountName, Description, Issued, NewAccount, Reason};
use crate::db::queries::identities::{ListFilter, StatusFilter, SERVICE_ACCOUNT};
use crate::error::{ApiError, Code};
use crate::scope::{RequestedTtl, Scope, ScopePolicy, TtlFields, ValidMetadata};
use crate::time::{self, rfc3339};

/// A new service account and its first token. Give at most one `ttl_*` field; none means the
/// scope's default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"name": "sensor:core.timer", "scope": "sensor", "ttl_hours": 72, "metadata": {"trigger_types": ["core.timer", "core.interval"]}}),
    json!({"name": "execution:4711", "scope": "execution", "ttl_minutes": 30, "metadata": {"execution_id": 4711, "action_ref": "core.http"}}),
    json!({"name": "cli:alice", "scope": "cli", "ttl_days": 7, "description": "Alice's laptop"}),
    json!({"name": "webhook:github", "scope": "webhook", "ttl_days": 90, "metadata": {"allowed_paths": ["/webhooks/github", "/webhooks/ci/*"], "ip_allowlist": ["192.0.2.0/24"]}}),
    json!({"name": "admin:ops", "scope": "admin", "ttl_hours": 8}),
))]
pub struct CreateServiceAccountRequest {
    /// A label (1 to 128 printable ASCII characters); names need not be unique.
    #[schema(example = "sensor:core.timer")]
    pub name: String,
    /// `sensor`, `execution`, `cli`, `webhook` or `admin` (aliases: `action_execution`, `user`).
    #[schema(example = "sensor")]
    pub scope: String,
    pub description: Option<String>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_seconds: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_minutes: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_hours: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_days: Option<Value>,
    /// Checked per scope: sensor needs `trigger_types`, execution `execution_id`, webhook
    /// `allowed_paths` (and optionally `ip_allowlist`); cli and admin are free-form. 8 KiB at most.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

impl CreateServiceAccountRequest {
    /// Checks every field and builds the domain request (public for the fuzz target).
    pub fn parse(self, policy: &ScopePolicy) -> Result<NewAccount, ApiError> {
        let name = AccountName::parse(&self.name)?;
        let scope = Scope::parse(&self.scope)?;
        let description = self
            .description
            .as_deref()
            .map(Description::parse)
            .transpose()?
            .filter(|d| !d.as_str().is_empty());
        let ttl = RequestedTtl::from_fields(&TtlFields {
            ttl_seconds: self.ttl_seconds,
            ttl_minutes: self.ttl_minutes,
            ttl_hours: self.ttl_hours,
            ttl_days: self.ttl_days,
        })?;
        let ttl = policy.resolve(scope, ttl)?;
        let metadata = ValidMetadata::parse(scope, self.metadata)?;
        Ok(NewAccount {
            name,
            scope,
            description,
            ttl,
            metadata,
        })
    }
}

/// A token for an existing account. No field: the scope's default TTL.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenRequest {
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_seconds: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_minutes: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_hours: Option<Value>,
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_days: Option<Value>,
}

/// An account and a new token. The token is shown here once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenResponse {
    pub identity_id: i64,
    pub name: String,
    pub scope: Scope,
    pub description: Option<String>,
    /// The JWT. Store it now: tokend keeps only its id and fingerprint.
    pub token: String,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub issued_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

impl From<Issued> for IssuedTokenResponse {
    fn from(issued: Issued) -> Self {
        IssuedTokenResponse {
            identity_id: issued.account.identity_id,
            name: issued.account.name,
            scope: issued.account.scope,
            description: issued.account.description,
            token: issued.token.token,
            token_id: issued.token.jti,
            issued_at: issued.token.issued_at,
            expires_at: issued.token.expires_at,
            metadata: issued.account.metadata,
        }
    }
}

/// Filters and paging of `GET /service-accounts`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this scope (aliases accepted).
    #[param(value_type = Option<String>, example = "sensor")]
    pub scope: Option<String>,
    /// Only accounts with exactly this name.
    pub name: Option<String>,
    /// `active`, `expired`, `revoked` or `all`; default: everything not revoked. `revoked`
    /// takes in accounts whose every token was revoked: revoked is not expired.
    #[param(value_type = Option<String>, example = "active")]
    pub status: Option<String>,
    /// Only accounts whose latest token expires within this many hours (and has not yet).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 87600)]
    pub expiring_within_hours: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Accounts to skip (default 0).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 2147483647)]
    pub offset: Option<String>,
}

impl ListQuery {
    pub(crate) fn parse(self, now: DateTime<Utc>) -> Result<ListFilter, ApiError> {
        let bad = |msg: String| ApiError::new(Code::InvalidQuery, msg);
        let scope = self
            .scope
            .as_deref()
            .map(Scope::parse)
            .transpose()?
            .map(Scope::as_str);
        let status = match self.status.as_deref() {
            None => StatusFilter::NotRevoked,
            Some("active") => StatusFilter::Active,
            Some("expired") => StatusFilter::Expired,
            Some("revoked") => StatusFilter::Revoked,
            Some("all") => StatusFilter::All,
            Some(other) => {
                return Err(bad(format!(
                    "status '{}' is not one of active, expired, revoked, all",
                    crate::scope::printable(other, 40)
                )))
            }
        };
        let number =
            |name: &str, raw: Option<&str>, min: i64, max: i64| -> Result<Option<i64>, ApiError> {
                let Some(raw) = raw else { return Ok(None) };
                match raw.trim().parse::<i64>() {
                    Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
                    _ => Err(bad(format!(
                        "{name} must be a whole number from {min} to {max}"
                    ))),
                }
            };
        let hours = number(
            "expiring_within_hours",
            self.expiring_within_hours.as_deref(),
            0,
            24 * 365 * 10,
        )?;
        let limit = number("limit", self.limit.as_deref(), 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
        let offset = number("offset", self.offset.as_deref(), 0, i64::from(i32::MAX))?.unwrap_or(0);
        Ok(ListFilter {
            identity_type: SERVICE_ACCOUNT,
            scope,
            name: self.name,
            status,
            expiring_before: hours.map(|h| time::to_db(now + chrono::Duration::hours(h))),
            now: time::to_db(now),
            limit,
            offset,
        })
    }
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    pub data: Vec<Account>,
    /// How many accounts match the filters in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// Why an account is revoked.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// At most 500 characters; kept in the revocation record and the audit trail.
    #[schema(example = "Token rotation")]
    pub reason: Option<String>,
}

impl RevokeRequest {
    pub(crate) fn reason(&self) -> Result<Option<Reason>, ApiError> {
        Ok(self
            .reason
            .as_deref()
            .map(Reason::parse)
            .transpose()?
            .filter(|r| !r.as_str().is_empty()))
    }
}

/// What `DELETE /service-accounts/{id}` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRevokedResponse {
    #[schema(example = "Service account revoked")]
    pub message: &'static str,
    pub identity_id: i64,
    /// Tokens that were live and are now refused.
    pub revoked_tokens: usize,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
    /// The account had been revoked before; nothing changed.
    pub already_revoked: bool,
}

/// What `DELETE /service-accounts/{id}/tokens/{token_id}` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRevokedResponse {
    #[schema(example = "Token revoked")]
    pub message: &'static str,
    pub identity_id: i64,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
    pub already_revoked: bool,
}
