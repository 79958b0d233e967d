//! `/auth/login`, `/auth/logout`, `/auth/refresh`: a person's CLI session and token renewal.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{JsonObject, OptionalJson};
use crate::accounts::passwords::Password;
use crate::accounts::users::{Login, Role};
use crate::accounts::{self, TokenOwner};
use crate::accounts::{sessions, throttle};
use crate::auth::Principal;
use crate::error::{ApiError, Code, ErrorBody};
use crate::scope::Scope;
use crate::scope::{RequestedTtl, TtlFields};
use crate::state::{with_db, AppState};
use crate::telemetry;
use crate::time::rfc3339;

/// A person's login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"login": "alice", "password": "correct horse battery staple", "ttl_days": 7}))]
pub struct LoginRequest {
    pub login: String,
    pub password: String,
    /// Lifetime of the cli token within the cli bounds (7 to 30 days; default 7).
    #[schema(value_type = Option<u64>, minimum = 1)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub ttl_days: Option<Value>,
}

/// A cli token for the person who logged in.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    pub identity_id: i64,
    pub login: String,
    pub role: Role,
}

/// Logs a user in and issues a `cli` token. Every failure is the same 401
/// `invalid_credentials`. Too many failures for this login from this client address, or
/// from this address for all logins, or every password check busy: 429 `too_many_attempts`
/// with `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in", body = LoginResponse),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "invalid login or password", body = ErrorBody),
        (status = 429, description = "too many failed logins from this address, or too many \
            password checks in progress; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonObject<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    // A replica that refuses every token (stale state, skewed clock) issues none either: the
    // expiry it would write depends on a clock it cannot trust.
    state
        .tokens
        .revocations()
        .freshness()
        .check()
        .map_err(crate::tokens::TokenError::Unavailable)?;
    let attempt = attempt_login(&state, &req, body.into_inner()).await;
    telemetry::login(match &attempt {
        Ok(_) => "success",
        Err(e) if e.code() == Code::TooManyAttempts => "throttled",
        Err(e) if e.code() == Code::InvalidCredentials => "invalid_credentials",
        Err(_) => "error",
    });
    let done = attempt?;
    telemetry::token_issued(Scope::Cli);
    accounts::apply_revoked(&done.revoked, state.tokens.revocations());
    log::info!(
        "user {} logged in, token {}",
        done.user.login,
        done.token.jti
    );
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: done.token.token,
        token_id: done.token.jti,
        expires_at: done.token.expires_at,
        identity_id: done.user.identity_id,
        login: done.user.login,
        role: done.user.role,
    }))
}

/// The client address logins are throttled by (trusted-proxy aware).
fn client_addr(req: &HttpRequest) -> IpAddr {
    crate::forwarded::client_ip(req).unwrap_or(throttle::UNKNOWN_ADDRESS)
}

/// Throttle, read the account, check the password on the hashing workers (no connection
/// held), issue the token.
async fn attempt_login(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: LoginRequest,
) -> Result<sessions::LoggedIn, ApiError> {
    // Malformed logins are refused as plain bad credentials: nothing to learn from the form.
    let login = Login::parse(&body.login).map_err(|_| sessions::invalid_credentials())?;
    let password = Password::presented(body.password)?;
    let ttl = RequestedTtl::from_fields(&TtlFields {
        ttl_days: body.ttl_days,
        ..TtlFields::default()
    })?;
    let ttl = state.settings.scopes.resolve(Scope::Cli, ttl)?;
    let addr = client_addr(req);
    let mut attempt = state.logins.admit(login.as_str(), addr)?;
    // A place on the hashing threads first: a refused login costs no database read. A login
    // from an address it succeeded from before may take a reserved place.
    let slot = if attempt.is_known_pair() {
        state.hasher.reserve_priority()?
    } else {
        state.hasher.reserve()?
    };
    let candidate = with_db(state, move |_, conn| sessions::find_candidate(conn, &login)).await?;
    attempt.hashing();
    if !slot.verify(candidate.password_hash(), password).await? {
        attempt.failed(candidate.identity_id());
        return Err(sessions::invalid_credentials());
    }
    let earlier = attempt.take_failures();
    let written = earlier.clone();
    let remote = Some(addr.to_string());
    let done = with_db(state, move |s, conn| {
        sessions::complete_login(
            conn,
            &s.tokens,
            &s.settings,
            candidate,
            ttl,
            remote,
            written.as_ref(),
        )
    })
    .await;
    match done {
        Ok(done) => {
            attempt.succeeded();
            Ok(done)
        }
        Err(e) => {
            state.logins.restore(earlier);
            attempt.give_back();
            Err(e)
        }
    }
}

/// What logging out did.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutResponse {
    #[schema(example = "Logged out")]
    pub message: &'static str,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
}

/// Revokes the presented token (any scope).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the token is revoked", body = LogoutResponse),
        (status = 401, description = "missing or bad token", body = ErrorBody),
    ))]
pub async fn logout(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let jti = principal.claims.jti;
    let actor = principal.actor(&req);
    let revoked = with_db(&state, move |s, conn| {
        accounts::revoke_token(
            conn,
            jti,
            TokenOwner::Anyone,
            Some("logout"),
            s.tokens.leeway(),
            &actor,
            "logout",
        )
    })
    .await?;
    revoked.apply(state.tokens.revocations());
    Ok(HttpResponse::Ok().json(LogoutResponse {
        message: "Logged out",
        token_id: jti,
        revoked_at: revoked.revoked_at,
    }))
}

/// Options of a refresh.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Revoke the presented token in the same transaction (default: it stays valid until it
    /// expires).
    #[serde(default)]
    pub revoke_current: bool,
}

/// The new token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshResponse {
    pub token: String,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub issued_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// A new token like the presented one (same account, scope, metadata and lifetime). Only
/// `sensor` and `cli` tokens; others get 403.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    security(("bearer" = [])),
    request_body(content = Option<RefreshRequest>, description = "`{}` or `{\"revoke_current\": true}`"),
    responses(
        (status = 200, description = "the new token", body = RefreshResponse),
        (status = 401, description = "missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "this scope cannot refresh", body = ErrorBody),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: OptionalJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let revoke_current = body.0.unwrap_or_default().revoke_current;
    let actor = principal.actor(&req);
    let claims = principal.claims;
    let scope = claims.scope;
    let refreshed = with_db(&state, move |s, conn| {
        sessions::refresh(
            conn,
            &s.tokens,
            &s.settings,
            &claims,
            revoke_current,
            &actor,
        )
    })
    .await?;
    accounts::apply_revoked(&refreshed.revoked, state.tokens.revocations());
    telemetry::refreshed();
    telemetry::token_issued(scope);
    Ok(HttpResponse::Ok().json(RefreshResponse {
        token: refreshed.token.token,
        token_id: refreshed.token.jti,
        issued_at: refreshed.token.issued_at,
        expires_at: refreshed.token.expires_at,
    }))
}
