//! `/service-accounts`: create, list, read, revoke; [`tokens`]: issue or revoke single tokens;
//! [`wire`]: the request and response bodies.

pub mod tokens;
pub mod wire;

pub use wire::{
    AccountList, AccountRevokedResponse, CreateServiceAccountRequest, IssueTokenRequest,
    IssuedTokenResponse, ListQuery, RevokeRequest, TokenRevokedResponse,
};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use uuid::Uuid;

use super::extract::{json_response, JsonObject, OptionalJson};
use crate::accounts::batch::{self, AccountRevocation, Creation};
use crate::accounts::{self, AccountDetail, Revoked};
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ErrorBody};
use crate::state::{with_db, AppState};
use crate::telemetry;
use crate::time;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

pub(crate) fn account_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found(format!(
            "no service account with id '{}'; ids are positive integers",
            crate::scope::printable(raw, 40)
        ))
    })
}

pub(crate) fn token_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::not_found(format!(
            "no token with id '{}'; token ids are UUIDs",
            crate::scope::printable(raw, 40)
        ))
    })
}

/// Creates a service account and issues its first token.
#[utoipa::path(post, path = "/service-accounts", tag = "service-accounts",
    security(("bearer" = [])),
    request_body = CreateServiceAccountRequest,
    responses(
        (status = 201, description = "created; the token is shown only now", body = IssuedTokenResponse),
        (status = 400, description = "invalid request, TTL out of range, bad metadata", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 413, description = "body over 64 KiB", body = ErrorBody),
        (status = 415, description = "body is not JSON", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    body: JsonObject<CreateServiceAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = body.into_inner().parse(&state.settings.scopes)?;
    let actor = principal.actor(&req);
    // Creations arriving together are written as one batch, in one transaction
    // (accounts::batch, db::coalesce): each is answered once its own rows are durable.
    let s = state.clone();
    let issued = state
        .creations
        .submit(Creation { new, actor }, move |batch| {
            let s = s.clone();
            async move {
                let group = s.group.clone();
                group
                    .run(move |conn| batch::create_each(conn, &s.tokens, &batch))
                    .await
            }
        })
        .await?;
    telemetry::token_issued(issued.account.scope);
    log::info!(
        "issued token {} for new {} account {} ({})",
        issued.token.jti,
        issued.account.scope,
        issued.account.identity_id,
        issued.account.name
    );
    Ok(json_response(
        StatusCode::CREATED,
        &IssuedTokenResponse::from(issued),
    ))
}

/// Lists service accounts, oldest first.
#[utoipa::path(get, path = "/service-accounts", tag = "service-accounts",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "a page of accounts", body = AccountList),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    Reader(_principal): Reader,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().parse(time::now())?;
    let (limit, offset) = (filter.limit, filter.offset);
    let (data, total) = with_db(&state, move |_, conn| accounts::list(conn, &filter)).await?;
    Ok(HttpResponse::Ok().json(AccountList {
        data,
        total,
        limit,
        offset,
    }))
}

/// One account with all its recorded tokens.
#[utoipa::path(get, path = "/service-accounts/{id}", tag = "service-accounts",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    responses(
        (status = 200, description = "the account", body = AccountDetail),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    Reader(_principal): Reader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let detail = with_db(&state, move |_, conn| accounts::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Revokes an account and every unexpired token it holds. Repeating it is harmless.
#[utoipa::path(delete, path = "/service-accounts/{id}", tag = "service-accounts",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    request_body(content = Option<RevokeRequest>, description = "optional reason"),
    responses(
        (status = 200, description = "revoked (or already revoked)", body = AccountRevokedResponse),
        (status = 400, description = "invalid reason", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 404, description = "no such account", body = ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJson<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let reason = body.0.unwrap_or_default().reason()?;
    let actor = principal.actor(&req);
    let leeway = state.tokens.leeway();
    // Batched like creation; the revocation set learns of it only after the commit.
    let s = state.clone();
    let revoked: Revoked = state
        .account_revocations
        .submit(
            AccountRevocation {
                identity_id: id,
                reason,
                actor,
            },
            move |batch| {
                let group = s.group.clone();
                async move {
                    group
                        .run(move |conn| batch::revoke_each(conn, &batch, leeway))
                        .await
                }
            },
        )
        .await?;
    revoked.apply(state.tokens.revocations());
    if !revoked.already_revoked {
        log::info!(
            "revoked service account {id} and {} live tokens",
            revoked.revoked.len()
        );
    }
    Ok(HttpResponse::Ok().json(AccountRevokedResponse {
        message: "Service account revoked",
        identity_id: id,
        revoked_tokens: revoked.revoked.len(),
        revoked_at: revoked.revoked_at,
        already_revoked: revoked.already_revoked,
    }))
}
