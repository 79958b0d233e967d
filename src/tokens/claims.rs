//! The claims every tokend token carries, exactly as the contract lists them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::scope::Scope;

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityType {
    ServiceAccount,
    User,
}

impl IdentityType {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityType::ServiceAccount => "service_account",
            IdentityType::User => "user",
        }
    }
}

/// The JWT payload. Times are UNIX seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account's name, e.g. `sensor:core.timer`.
    pub sub: String,
    /// The token id.
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub identity_id: i64,
    pub identity_type: IdentityType,
    pub scope: Scope,
    pub metadata: Map<String, Value>,
    /// RFC 8693 §4.1: for a token obtained by token exchange, the token it was exchanged for
    /// (`sub`, `identity_id`, `token_id`, and that token's own `act` if it had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Map<String, Value>>,
    /// The signing key (from the header, not a claim): revocation rules may select by it.
    #[serde(skip)]
    pub kid: String,
}
