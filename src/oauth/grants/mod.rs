//! The grants behind `POST /oauth2/token`: one function per grant type, each one transaction
//! that checks the client or subject and issues an ordinary tokend token.
//!
//! - [`client_credentials`]: a service account's own token (RFC 6749 §4.4);
//! - [`token_exchange`]: a tokend token for a narrower one (RFC 8693);
//! - [`federated`]: a workload's external identity token, already verified by
//!   `crate::federation`, for a token of the account its issuer's rules give it (RFC 7523
//!   jwt-bearer, and RFC 8693 with a `…:jwt` subject token).
//!
//! This file holds what they share: the response, and the `scope` and `ttl_seconds`
//! parameters.

pub mod client_credentials;
pub mod federated;
pub mod token_exchange;

pub use client_credentials::ClientCredentialsGrant;
pub use token_exchange::{is_federated_exchange, token_exchange};

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::oauth::clients::AuthenticatedClient;
use crate::oauth::error::{OAuthCode, OAuthError};
use crate::oauth::form::Form;
use crate::scope::{RequestedTtl, Scope, TtlFields};

pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §3 token types tokend reads and writes (its tokens are JWT access tokens).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The grant types this server supports, as the metadata lists them.
pub const SUPPORTED: &[&str] = &[CLIENT_CREDENTIALS, TOKEN_EXCHANGE, JWT_BEARER];

/// A check of the request's client credentials, run inside the grant's transaction.
pub type Authenticate =
    Box<dyn FnOnce(&mut DbConnection) -> Result<AuthenticatedClient, OAuthError> + Send>;

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiJ9…", "token_type": "Bearer", "expires_in": 259200, "scope": "sensor"}))]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// The tokend scope of the token.
    pub scope: String,
    /// Token exchange only: `urn:ietf:params:oauth:token-type:access_token` or `…:jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// A grant's result, for the response, the log and the metrics.
pub struct Granted {
    pub response: TokenResponse,
    pub identity_id: i64,
    pub token_id: uuid::Uuid,
    pub scope: Scope,
    /// The account's `expires_at` to bring forward after the commit (a grant that held only
    /// a shared lock on the account's row could not).
    pub extend_after_commit: Option<chrono::NaiveDateTime>,
}

/// The optional `ttl_seconds` extension, as a TTL request checked against the scope's bounds.
pub(crate) fn requested_ttl(form: &Form) -> Result<Option<RequestedTtl>, OAuthError> {
    let Some(secs) = form.positive_int("ttl_seconds")? else {
        return Ok(None);
    };
    Ok(RequestedTtl::from_fields(&TtlFields {
        ttl_seconds: Some(Value::from(secs)),
        ..TtlFields::default()
    })?)
}

/// The `scope` parameter as one tokend scope: space-separated values (RFC 6749 §3.3) that
/// all name the same scope.
pub(crate) fn requested_scope(form: &Form) -> Result<Option<Scope>, OAuthError> {
    let Some(raw) = form.get("scope") else {
        return Ok(None);
    };
    let mut scope = None;
    for item in raw.split(' ').filter(|s| !s.is_empty()) {
        let parsed = Scope::parse(item)
            .map_err(|e| OAuthError::new(OAuthCode::InvalidScope, e.message().to_owned()))?;
        if scope.is_some_and(|s| s != parsed) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                "a tokend token has exactly one scope; ask for one",
            ));
        }
        scope = Some(parsed);
    }
    Ok(scope)
}

pub(super) fn response(
    granted: crate::tokens::MintedToken,
    scope: Scope,
    exchange: Option<&'static str>,
) -> TokenResponse {
    TokenResponse {
        expires_in: (granted.expires_at - Utc::now()).num_seconds().max(0),
        access_token: granted.token,
        token_type: "Bearer",
        scope: scope.as_str().to_owned(),
        issued_token_type: exchange,
    }
}
