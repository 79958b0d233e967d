//! The one place where failures become HTTP responses.
//!
//! Error policy:
//! - Every failure a client can see is `{"error": {"code": "...", "message": "..."}}`, with a
//!   stable snake_case `code` (part of the contract) and a message that says what went wrong
//!   and what to do about it.
//! - [`Code::status`] is the only mapping from a failure to an HTTP status.
//! - Database, pool, crypto and I/O errors never reach the client: they become
//!   `internal_error` (or `storage_unavailable` when storage is down, full or read-only), and
//!   their whole cause chain goes to the log.
//! - 401 responses carry `WWW-Authenticate: Bearer error="invalid_token", ...` (RFC 6750).
//! - Messages never contain a token, a password or a secret.

use std::borrow::Cow;
use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Machine-readable error codes. The string forms are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidJson,
    InvalidRequest,
    InvalidQuery,
    InvalidCharacters,
    InvalidScope,
    InvalidTtl,
    TtlOutOfRange,
    InvalidMetadata,
    MissingToken,
    InvalidToken,
    TokenExpired,
    TokenRevoked,
    InsufficientScope,
    PathNotAllowed,
    TriggerTypeNotAllowed,
    ExecutionMismatch,
    IpNotAllowed,
    AmbiguousOriginalUri,
    ClientCertificateRequired,
    NotFound,
    MethodNotAllowed,
    AccountRevoked,
    AccountDisabled,
    LoginTaken,
    IssuerExists,
    TooManyClientSecrets,
    KeysNotManaged,
    RotationTooSoon,
    InvalidCredentials,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    UnsupportedMediaType,
    TooManyAttempts,
    StorageUnavailable,
    RevocationStateStale,
    ClockSkew,
    CleanupNotRun,
    InternalError,
}

impl Code {
    /// The contract's snake_case name of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidJson => "invalid_json",
            Code::InvalidRequest => "invalid_request",
            Code::InvalidQuery => "invalid_query",
            Code::InvalidCharacters => "invalid_characters",
            Code::InvalidScope => "invalid_scope",
            Code::InvalidTtl => "invalid_ttl",
            Code::TtlOutOfRange => "ttl_out_of_range",
            Code::InvalidMetadata => "invalid_metadata",
            Code::MissingToken => "missing_token",
            Code::InvalidToken => "invalid_token",
            Code::TokenExpired => "token_expired",
            Code::TokenRevoked => "token_revoked",
            Code::InsufficientScope => "insufficient_scope",
            Code::PathNotAllowed => "path_not_allowed",
            Code::TriggerTypeNotAllowed => "trigger_type_not_allowed",
            Code::ExecutionMismatch => "execution_mismatch",
            Code::IpNotAllowed => "ip_not_allowed",
            Code::AmbiguousOriginalUri => "ambiguous_original_uri",
            Code::ClientCertificateRequired => "client_certificate_required",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::AccountRevoked => "account_revoked",
            Code::AccountDisabled => "account_disabled",
            Code::LoginTaken => "login_taken",
            Code::IssuerExists => "issuer_exists",
            Code::TooManyClientSecrets => "too_many_client_secrets",
            Code::KeysNotManaged => "keys_not_managed",
            Code::RotationTooSoon => "rotation_too_soon",
            Code::InvalidCredentials => "invalid_credentials",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UriTooLong => "uri_too_long",
            Code::HeadersTooLarge => "headers_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::TooManyAttempts => "too_many_attempts",
            Code::StorageUnavailable => "storage_unavailable",
            Code::RevocationStateStale => "revocation_state_stale",
            Code::ClockSkew => "clock_skew",
            Code::CleanupNotRun => "cleanup_not_run",
            Code::InternalError => "internal_error",
        }
    }

    /// The HTTP status for this code: the single source of that mapping.
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidJson
            | Code::InvalidRequest
            | Code::InvalidQuery
            | Code::InvalidCharacters
            | Code::InvalidScope
            | Code::InvalidTtl
            | Code::TtlOutOfRange
            | Code::InvalidMetadata => StatusCode::BAD_REQUEST,
            Code::MissingToken | Code::InvalidToken | Code::TokenExpired | Code::TokenRevoked => {
                StatusCode::UNAUTHORIZED
            }
            Code::InsufficientScope
            | Code::PathNotAllowed
            | Code::TriggerTypeNotAllowed
            | Code::ExecutionMismatch
            | Code::IpNotAllowed
            | Code::AccountDisabled
            | Code::AmbiguousOriginalUri
            | Code::ClientCertificateRequired => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::AccountRevoked
            | Code::LoginTaken
            | Code::IssuerExists
            | Code::TooManyClientSecrets
            | Code::KeysNotManaged
            | Code::RotationTooSoon
            | Code::CleanupNotRun => StatusCode::CONFLICT,
            Code::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UriTooLong => StatusCode::URI_TOO_LONG,
            Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Code::StorageUnavailable | Code::RevocationStateStale | Code::ClockSkew => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as the client sees it: a code and a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: Code,
    message: Cow<'static, str>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds a `Retry-After` header (429 and 503).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(code, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn insufficient_scope(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::InsufficientScope, message)
    }

    /// An internal failure: the cause chain is logged here, the client gets a generic message.
    pub fn internal(context: &str, cause: &dyn std::error::Error) -> Self {
        log::error!("{context}: {}", cause_chain(cause));
        Self::new(
            Code::InternalError,
            "internal error; the failure was logged on the server, try again later",
        )
    }

    /// Storage cannot serve the request (unreachable, frozen, full, read-only, in recovery):
    /// 503, so clients retry and load balancers look elsewhere.
    pub fn unavailable(context: &str, cause: &dyn std::error::Error) -> Self {
        log::error!("{context}: {}", cause_chain(cause));
        Self::new(
            Code::StorageUnavailable,
            "the database cannot serve this request right now (unreachable, full or read-only); nothing was changed by the failed step, try again shortly",
        )
        .retry_after(1)
    }
}

/// Renders an error and all its sources on one line, for logs.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The error envelope every failing response carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "token_revoked", "message": "this token was revoked; ask for a new one"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `ttl_out_of_range`, `token_expired`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::UNAUTHORIZED && self.code != Code::InvalidCredentials {
            builder.insert_header((header::WWW_AUTHENTICATE, www_authenticate(self)));
        }
        if let Some(secs) = self.retry_after_secs {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        builder.insert_header((header::CACHE_CONTROL, "no-store"));
        builder.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.to_string(),
            },
        })
    }
}

/// RFC 6750 challenge. A request without any token gets the bare challenge (section 3.1).
fn www_authenticate(err: &ApiError) -> HeaderValue {
    let value = if err.code == Code::MissingToken {
        r#"Bearer realm="tokend""#.to_owned()
    } else {
        // The description must stay inside a quoted-string: drop quotes and backslashes.
        let description: String = err
            .message
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
            .collect();
        format!(
            r#"Bearer realm="tokend", error="invalid_token", error_description="{description}""#
        )
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ApiError::internal("blocking task failed", &err)
    }
}
