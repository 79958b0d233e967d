//! `/service-accounts/{id}/tokens`: a new token for an existing account, and one token revoked.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{
    account_id, token_id, IssueTokenRequest, IssuedTokenResponse, RevokeRequest,
    TokenRevokedResponse,
};
use crate::accounts::{self, Reason, TokenOwner};
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};
use crate::routes::extract::{json_response, OptionalJson};
use crate::scope::{RequestedTtl, TtlFields};
use crate::state::{with_db, AppState};
use crate::telemetry;

/// Issues a new token for an existing account (rotation that keeps `identity_id`).
#[utoipa::path(post, path = "/service-accounts/{id}/tokens", tag = "service-accounts",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    request_body(content = Option<IssueTokenRequest>, description = "optional TTL"),
    responses(
        (status = 201, description = "a new token; shown only now", body = IssuedTokenResponse),
        (status = 400, description = "TTL out of range", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
        (status = 409, description = "the account is revoked", body = ErrorBody),
    ))]
pub async fn issue_token(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJson<IssueTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let body = body.0.unwrap_or_default();
    let ttl = RequestedTtl::from_fields(&TtlFields {
        ttl_seconds: body.ttl_seconds,
        ttl_minutes: body.ttl_minutes,
        ttl_hours: body.ttl_hours,
        ttl_days: body.ttl_days,
    })?;
    let actor = principal.actor(&req);
    let issued = with_db(&state, move |state, conn| {
        accounts::issue_token(conn, &state.tokens, &state.settings.scopes, id, ttl, &actor)
    })
    .await?;
    telemetry::token_issued(issued.account.scope);
    log::info!("issued token {} for account {id}", issued.token.jti);
    Ok(json_response(
        StatusCode::CREATED,
        &IssuedTokenResponse::from(issued),
    ))
}

/// Revokes one token of an account.
#[utoipa::path(delete, path = "/service-accounts/{id}/tokens/{token_id}", tag = "service-accounts",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id"), ("token_id" = Uuid, Path, description = "token id (jti)")),
    request_body(content = Option<RevokeRequest>, description = "optional reason"),
    responses(
        (status = 200, description = "revoked (or already revoked)", body = TokenRevokedResponse),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 404, description = "no such account or token", body = ErrorBody),
    ))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: OptionalJson<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_token) = path.into_inner();
    let id = account_id(&raw_id)?;
    let jti = token_id(&raw_token)?;
    let reason = body.0.unwrap_or_default().reason()?;
    let actor = principal.actor(&req);
    let leeway = state.tokens.leeway();
    let revoked = with_db(&state, move |_, conn| {
        accounts::revoke_token(
            conn,
            jti,
            TokenOwner::ServiceAccount(id),
            reason.as_ref().map(Reason::as_str),
            leeway,
            &actor,
            "token.revoked",
        )
    })
    .await?;
    revoked.apply(state.tokens.revocations());
    Ok(HttpResponse::Ok().json(TokenRevokedResponse {
        message: "Token revoked",
        identity_id: id,
        token_id: jti,
        revoked_at: revoked.revoked_at,
        already_revoked: revoked.already_revoked,
    }))
}
