//! `/users`: people who log in.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{json_response, JsonObject};
use crate::accounts::passwords::Password;
use crate::accounts::users::{self, Login, Role, User};
use crate::app::{with_db, AppState};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};

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
    let user = with_db(&state, move |state, conn| {
        let hash = state.passwords.hash(&password)?;
        users::add(conn, &login, role, &hash, &actor)
    })
    .await?;
    Ok(json_response(StatusCode::CREATED, &user))
}
