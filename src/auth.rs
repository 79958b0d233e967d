//! Who is calling: the bearer-token extractor and the permission checks of management calls.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use crate::accounts::users::Role;
use crate::audit::Actor;
use crate::error::{ApiError, Code};
use crate::forwarded::client_ip;
use crate::log_budget::{LogBudget, Take};
use crate::scope::Scope;
use crate::state::AppState;
use crate::telemetry::{self, RequestIdentity, Verification};
use crate::tokens::{Claims, IdentityType, TokenError};

/// The verified token of the caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub claims: std::sync::Arc<Claims>,
}

impl Principal {
    /// The management role this token carries: an `admin` token is an admin; a user's `cli`
    /// token carries the user's role; every other token has none.
    pub fn role(&self) -> Option<Role> {
        match (self.claims.scope, self.claims.identity_type) {
            (Scope::Admin, _) => Some(Role::Admin),
            (Scope::Cli, IdentityType::User) => self
                .claims
                .metadata
                .get("role")
                .and_then(|r| r.as_str())
                .and_then(|r| Role::parse(r).ok()),
            _ => None,
        }
    }

    /// Management calls that change things: the admin role.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role() {
            Some(Role::Admin) => Ok(()),
            Some(Role::Viewer) => Err(ApiError::insufficient_scope(
                "this call changes things and needs the admin role; your role is viewer",
            )),
            None => Err(self.no_role()),
        }
    }

    /// Management calls that only read: admin or viewer.
    pub fn require_reader(&self) -> Result<(), ApiError> {
        match self.role() {
            Some(_) => Ok(()),
            None => Err(self.no_role()),
        }
    }

    fn no_role(&self) -> ApiError {
        ApiError::insufficient_scope(format!(
            "this call needs an admin token or a user's cli token; a {} token cannot manage tokend",
            self.claims.scope
        ))
    }

    /// The audit trail's view of this caller.
    pub fn actor(&self, req: &HttpRequest) -> Actor {
        Actor {
            identity_id: Some(self.claims.identity_id),
            remote_addr: client_ip(req).map(|ip| ip.to_string()),
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).inspect(|_| telemetry::verification(Verification::Ok)))
    }
}

/// Counts the outcome of a permission check.
fn granted(result: Result<(), ApiError>) -> Result<(), ApiError> {
    telemetry::verification(match result {
        Ok(()) => Verification::Ok,
        Err(_) => Verification::InsufficientScope,
    });
    result
}

/// A caller allowed to change things (an admin token). Checked while extracting, so a
/// caller without the right gets 401/403 before its request body is even looked at.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

/// A caller allowed to read management data.
#[derive(Debug, Clone)]
pub struct Reader(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|p| granted(p.require_admin()).map(|()| Admin(p))))
    }
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Ready<Result<Reader, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|p| granted(p.require_reader()).map(|()| Reader(p))))
    }
}

/// Verifies the request's bearer token (in memory: no database access).
pub fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::new(
            Code::InternalError,
            "application state missing",
        ));
    };
    let token =
        bearer_token(req).inspect_err(|_| telemetry::verification(Verification::Invalid))?;
    match state
        .tokens
        .verify_noting_use(token, crate::usage::USE_GRANULARITY_SECS)
    {
        Ok((claims, first_use_of_period)) => {
            if first_use_of_period {
                state.usage.used(claims.identity_id);
            }
            if telemetry::access_log_enabled() {
                req.extensions_mut()
                    .insert(RequestIdentity(claims.identity_id));
            }
            Ok(Principal { claims })
        }
        Err(e) => {
            telemetry::verification(match e {
                TokenError::Expired { .. } => Verification::Expired,
                TokenError::Revoked { .. } => Verification::Revoked,
                TokenError::Invalid(_) => Verification::Invalid,
                TokenError::Unavailable(_) => Verification::Unavailable,
            });
            if let TokenError::Revoked { jti, identity_id } = &e {
                let remote = client_ip(req).map(|ip| ip.to_string());
                state
                    .usage
                    .revoked_use(*jti, *identity_id, remote, req.path());
            }
            let err = ApiError::from(e);
            log_refusal(req, token, &err);
            Err(err)
        }
    }
}

/// Refused tokens logged a second at most; `tokend_verifications_total` counts them all.
const REFUSALS_LOGGED_PER_SECOND: u32 = 20;
static REFUSAL_LOG: LogBudget = LogBudget::new(REFUSALS_LOGGED_PER_SECOND);

/// One line per refused token, within [`REFUSAL_LOG`]'s budget: a flood of bad tokens is not
/// a flood of log lines.
fn log_refusal(req: &HttpRequest, token: &str, err: &ApiError) {
    if !log::log_enabled!(log::Level::Warn) {
        return;
    }
    let Take::Write { left_out } = REFUSAL_LOG.take(chrono::Utc::now().timestamp()) else {
        return;
    };
    if left_out > 0 {
        log::warn!(
            "{left_out} more refused tokens were not logged (at most {} lines a second; \
             tokend_verifications_total counts every one)",
            REFUSAL_LOG.per_second()
        );
    }
    log::warn!(
        "refused token=…{} method={} path={} code={} reason=\"{}\"",
        last_chars(token, 4),
        req.method(),
        req.path(),
        err.code(),
        err.message()
    );
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            Code::MissingToken,
            "no token: send it as `Authorization: Bearer <token>`",
        ));
    };
    // UTF-8 is checked a word at a time; anything beyond a token's characters is refused by
    // the verifier.
    let value = std::str::from_utf8(value.as_bytes()).map_err(|_| {
        ApiError::new(
            Code::InvalidToken,
            "the Authorization header is not valid text",
        )
    })?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::new(
            Code::MissingToken,
            "the Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::new(
            Code::MissingToken,
            "the Authorization header holds no token: `Authorization: Bearer <token>`",
        ));
    }
    Ok(token)
}

/// The last `n` characters of a token, the most of it that may ever appear in a log.
fn last_chars(token: &str, n: usize) -> &str {
    let start = token
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    &token[start..]
}
