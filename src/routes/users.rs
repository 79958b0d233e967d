//! `/users`: people who log in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{json_response, JsonObject};
use crate::accounts;
use crate::accounts::passwords::Password;
use crate::accounts::users::{self, Login, Role, User, UserChange};
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Code, ErrorBody};
use crate::state::{with_db, AppState};

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"login": "alice", "password": "correct horse battery staple", "role": "admin"}))]
pub struct NewUserRequest {
    /// 1 to 64 of letters, digits, `.`, `_`, `@`, `-`; case-insensitive.
    pub login: String,
    /// At least 8 characters.
    pub password: String,
    /// `admin` (may do everything) or `viewer` (may only read).
    #[schema(value_type = Role)]
    pub role: String,
}

/// Adds a user who can log in with `POST /auth/login`.
#[utoipa::path(post, path = "/users", tag = "users",
    security(("bearer" = [])),
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "the user", body = User),
        (status = 400, description = "invalid login, password or role", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 409, description = "the login exists already", body = ErrorBody),
        (status = 429, description = "every password hashing thread busy; see Retry-After", body = ErrorBody),
    ))]
pub async fn add(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    body: JsonObject<NewUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let login = Login::parse(&body.login)?;
    let role = Role::parse(&body.role)?;
    let password = Password::new_password(body.password)?;
    let actor = principal.actor(&req);
    let hash = state.hasher.hash(password).await?;
    let user = with_db(&state, move |_, conn| {
        users::add(conn, &login, role, &hash, &actor)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, &user))
}

/// Every user (deleted ones are gone).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub data: Vec<User>,
}

/// Lists users, oldest first; needs an admin or viewer.
#[utoipa::path(get, path = "/users", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the users", body = UserList),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>, _reader: Reader) -> Result<HttpResponse, ApiError> {
    let data = with_db(&state, |_, conn| users::list(conn)).await?;
    Ok(HttpResponse::Ok().json(UserList { data }))
}

/// One user; needs an admin or viewer.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the user's identity id", minimum = 1)),
    responses(
        (status = 200, description = "the user", body = User),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    _reader: Reader,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = with_db(&state, move |_, conn| users::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// What to change about a user; absent fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "viewer"}))]
pub struct UserPatch {
    /// `admin` or `viewer`. A new role revokes the user's tokens (they carry the old one).
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// `true` revokes every token of the user and refuses their logins and refreshes;
    /// `false` lets them log in again.
    pub disabled: Option<bool>,
    /// A new password (at least 8 characters); revokes the user's tokens.
    pub password: Option<String>,
}

/// The user after the change, and how many of their tokens it revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserChangeResponse {
    #[serde(flatten)]
    pub user: User,
    pub revoked_tokens: usize,
}

/// Changes a user's role, disabled flag or password. Disabling, a new role or a new
/// password revokes every token the user holds, at once, on every replica.
#[utoipa::path(patch, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the user's identity id", minimum = 1)),
    request_body = UserPatch,
    responses(
        (status = 200, description = "the changed user", body = UserChangeResponse),
        (status = 400, description = "invalid role or password, or nothing to change", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
        (status = 429, description = "every password hashing thread busy; see Retry-After", body = ErrorBody),
    ))]
pub async fn update(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    id: web::Path<i64>,
    body: JsonObject<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let (id, body) = (id.into_inner(), body.into_inner());
    if body.role.is_none() && body.disabled.is_none() && body.password.is_none() {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "nothing to change: give role, disabled or password",
        ));
    }
    let role = body.role.as_deref().map(Role::parse).transpose()?;
    let password = body.password.map(Password::new_password).transpose()?;
    let actor = principal.actor(&req);
    // Hashed on the hashing threads before the transaction: argon2 holds no connection.
    let password_hash = match password {
        Some(p) => Some(state.hasher.hash(p).await?),
        None => None,
    };
    let changed = with_db(&state, move |s, conn| {
        let change = UserChange {
            role,
            disabled: body.disabled,
            password_hash,
        };
        users::update(conn, id, &change, s.settings.leeway, &actor)
    })
    .await?;
    accounts::apply_revoked(&changed.revoked, state.tokens.revocations());
    Ok(HttpResponse::Ok().json(UserChangeResponse {
        revoked_tokens: changed.revoked.len(),
        user: changed.user,
    }))
}

/// Deletes a user: every token revoked at once, the login free for reuse.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the user's identity id", minimum = 1)),
    responses(
        (status = 200, description = "the deleted user", body = UserChangeResponse),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such user", body = ErrorBody),
    ))]
pub async fn delete(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let actor = principal.actor(&req);
    let deleted = with_db(&state, move |s, conn| {
        users::delete(conn, id, s.settings.leeway, &actor)
    })
    .await?;
    accounts::apply_revoked(&deleted.revoked, state.tokens.revocations());
    Ok(HttpResponse::Ok().json(UserChangeResponse {
        revoked_tokens: deleted.revoked.len(),
        user: deleted.user,
    }))
}
