//! RFC 6749 §5.2 errors: the one error shape of the OAuth 2.0 endpoints (`/oauth2/*`), which
//! stock clients parse: `{"error": "invalid_client", "error_description": "…"}`.
//!
//! Everything else in tokend answers `{"error": {"code", "message"}}`; a failure that starts
//! as an [`ApiError`] (storage down, stale revocation state, a TTL out of range) is translated
//! here, once.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, Code};

/// The `error` values of RFC 6749 §5.2, RFC 7009 §2.2.1 and RFC 8693 §2.2.2 that tokend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    UnsupportedTokenType,
    /// Too many requests (429).
    SlowDown,
    /// Storage or revocation state unavailable (503): retry shortly, elsewhere.
    TemporarilyUnavailable,
    ServerError,
}

impl OAuthCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::InvalidTarget => "invalid_target",
            OAuthCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthCode::SlowDown => "slow_down",
            OAuthCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthCode::ServerError => "server_error",
        }
    }

    /// Every code, for metrics that must exist before their first event.
    pub const ALL: [OAuthCode; 11] = [
        OAuthCode::InvalidRequest,
        OAuthCode::InvalidClient,
        OAuthCode::InvalidGrant,
        OAuthCode::UnauthorizedClient,
        OAuthCode::UnsupportedGrantType,
        OAuthCode::InvalidScope,
        OAuthCode::InvalidTarget,
        OAuthCode::UnsupportedTokenType,
        OAuthCode::SlowDown,
        OAuthCode::TemporarilyUnavailable,
        OAuthCode::ServerError,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            OAuthCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            OAuthCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth 2.0 error response. The description says what went wrong and what to do; it never
/// holds a secret or a token.
#[derive(Debug)]
pub struct OAuthError {
    code: OAuthCode,
    description: Cow<'static, str>,
    /// The client authenticated with HTTP Basic: a 401 must challenge with Basic (§5.2).
    basic_challenge: bool,
    retry_after_secs: Option<u64>,
}

impl OAuthError {
    pub fn new(code: OAuthCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthCode::InvalidGrant, description)
    }

    pub fn code(&self) -> OAuthCode {
        self.code
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Adds a `Retry-After` header (`temporarily_unavailable`, `slow_down`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Marks a 401 as answering HTTP Basic credentials.
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// The error body of RFC 6749 §5.2.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "invalid_client", "error_description": "client authentication failed: unknown client or wrong secret"}))]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `unsupported_token_type`,
    /// `slow_down`, `temporarily_unavailable` or `server_error`.
    #[schema(example = "invalid_client")]
    pub error: &'static str,
    pub error_description: String,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if self.code == OAuthCode::InvalidClient {
            let challenge = if self.basic_challenge {
                r#"Basic realm="tokend", charset="UTF-8""#
            } else {
                // No credentials, or credentials in the body: still say how to authenticate.
                r#"Basic realm="tokend""#
            };
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        if let Some(secs) = self.retry_after_secs {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        builder
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(OAuthErrorBody {
                error: self.code.as_str(),
                error_description: self.description.to_string(),
            })
    }
}

impl From<ApiError> for OAuthError {
    fn from(err: ApiError) -> Self {
        let code = match err.code() {
            Code::StorageUnavailable | Code::RevocationStateStale | Code::ClockSkew => {
                OAuthCode::TemporarilyUnavailable
            }
            Code::TooManyAttempts => OAuthCode::SlowDown,
            Code::InternalError => OAuthCode::ServerError,
            Code::InvalidScope | Code::InsufficientScope => OAuthCode::InvalidScope,
            Code::AccountRevoked | Code::AccountDisabled => OAuthCode::InvalidGrant,
            Code::MissingToken | Code::InvalidToken | Code::TokenExpired | Code::TokenRevoked => {
                OAuthCode::InvalidGrant
            }
            Code::PayloadTooLarge | Code::UnsupportedMediaType => OAuthCode::InvalidRequest,
            _ => OAuthCode::InvalidRequest,
        };
        let retry = match code {
            OAuthCode::TemporarilyUnavailable => Some(1),
            _ => None,
        };
        OAuthError {
            code,
            description: Cow::Owned(err.message().to_owned()),
            basic_challenge: false,
            retry_after_secs: retry,
        }
    }
}

impl From<crate::db::DbError> for OAuthError {
    fn from(err: crate::db::DbError) -> Self {
        OAuthError::from(ApiError::from(err))
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(err: diesel::result::Error) -> Self {
        OAuthError::from(ApiError::from(err))
    }
}

/// An external token the federation check refused: `invalid_grant` with its words.
impl From<crate::federation::assertion::Refused> for OAuthError {
    fn from(err: crate::federation::assertion::Refused) -> Self {
        OAuthError::invalid_grant(err.0)
    }
}

impl From<actix_web::error::BlockingError> for OAuthError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        OAuthError::from(ApiError::from(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_faults_are_temporarily_unavailable_with_retry_after() {
        let err = OAuthError::from(ApiError::new(Code::StorageUnavailable, "down"));
        let resp = err.error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn invalid_client_challenges_with_basic() {
        let resp = OAuthError::invalid_client("no")
            .with_basic_challenge(true)
            .error_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp.headers().get(header::WWW_AUTHENTICATE).unwrap();
        assert!(challenge.to_str().unwrap().starts_with("Basic "));
    }
}
