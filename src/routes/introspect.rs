//! `/auth/introspect` (RFC 7662) and `/tokens/revoke`: questions and actions about a token
//! someone else holds.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{self, JsonObject};
use super::service_accounts::TokenRevokedResponse;
use crate::accounts::{self, Reason, TokenOwner};
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Code, ErrorBody};
use crate::scope::Scope;
use crate::state::{with_db, AppState};

/// The token to look at, as `application/x-www-form-urlencoded` (`token=…`) or JSON.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntrospectRequest {
    pub token: String,
    /// Accepted and ignored (tokend only has access tokens).
    pub token_type_hint: Option<String>,
}

impl FromRequest for IntrospectRequest {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|_| {
                ApiError::new(
                    Code::PayloadTooLarge,
                    "the request body is larger than 64 KiB",
                )
            })?;
            let parsed: Result<IntrospectRequest, String> = if form {
                extract::check_form(&bytes)?;
                serde_urlencoded::from_bytes(&bytes).map_err(|e| e.to_string())
            } else {
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(value) => {
                        extract::check_json(&value)?;
                        serde_json::from_value(value).map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                }
            };
            parsed.map_err(|e| {
                ApiError::new(
                    Code::InvalidRequest,
                    format!(
                        "send the token as form data (token=…) or JSON ({{\"token\": \"…\"}}): {e}"
                    ),
                )
            })
        })
    }
}

/// RFC 7662 answer. For any token that is not good here and now, only `{"active": false}`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Bearer")]
    pub token_type: Option<&'static str>,
}

impl IntrospectResponse {
    /// The answer for a token that is good here and now.
    pub fn active(c: &crate::tokens::Claims) -> IntrospectResponse {
        IntrospectResponse {
            active: true,
            scope: Some(c.scope),
            sub: Some(c.sub.clone()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            nbf: Some(c.nbf),
            jti: Some(c.jti),
            iss: Some(c.iss.clone()),
            aud: Some(c.aud.clone()),
            identity_id: Some(c.identity_id),
            token_type: Some("Bearer"),
        }
    }
}

/// Token introspection (RFC 7662) for gateways and tools; needs an admin or viewer bearer.
#[utoipa::path(post, path = "/auth/introspect", tag = "auth",
    security(("bearer" = [])),
    request_body(content(
        (IntrospectRequest = "application/x-www-form-urlencoded"),
        (IntrospectRequest = "application/json"),
    ), description = "`token=…` (form) or `{\"token\": \"…\"}` (JSON)"),
    responses(
        (status = 200, description = "whether the token is active, and its claims if it is", body = IntrospectResponse),
        (status = 400, description = "no token given", body = ErrorBody),
        (status = 401, description = "missing or bad bearer token", body = ErrorBody),
        (status = 403, description = "the bearer is not an admin or viewer", body = ErrorBody),
        (status = 503, description = "this replica cannot judge tokens now (revocation_state_stale, clock_skew)", body = ErrorBody),
    ))]
pub async fn introspect(
    state: web::Data<AppState>,
    _reader: Reader,
    body: IntrospectRequest,
) -> Result<HttpResponse, ApiError> {
    let answer = match state.tokens.verify(body.token.trim()) {
        Ok(c) => IntrospectResponse::active(&c),
        // Not knowing is not "inactive": the caller must not cache a wrong answer.
        Err(crate::tokens::TokenError::Unavailable(why)) => {
            return Err(crate::tokens::TokenError::Unavailable(why).into())
        }
        Err(_) => IntrospectResponse::default(),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// Revoke a token by the token itself or by its id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9…"}), json!({"token_id": "44676bf7-04e2-46c6-b9ab-c78293e0dc10", "reason": "leaked in a log"})))]
pub struct RevokeTokenRequest {
    pub token: Option<String>,
    pub token_id: Option<Uuid>,
    /// At most 500 characters.
    pub reason: Option<String>,
}

/// Revokes one token, whichever account holds it. Repeating it is harmless.
#[utoipa::path(post, path = "/tokens/revoke", tag = "auth",
    security(("bearer" = [])),
    request_body = RevokeTokenRequest,
    responses(
        (status = 200, description = "revoked (or already revoked)", body = TokenRevokedResponse),
        (status = 400, description = "neither or both of token and token_id", body = ErrorBody),
        (status = 401, description = "missing or bad bearer token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such token was issued here", body = ErrorBody),
    ))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    body: JsonObject<RevokeTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let reason = body.reason.as_deref().map(Reason::parse).transpose()?;
    let jti = match (body.token, body.token_id) {
        (Some(token), None) => {
            state
                .tokens
                .verify_signature(token.trim())
                .map_err(|_| ApiError::not_found("no such token was issued by this tokend"))?
                .jti
        }
        (None, Some(id)) => id,
        _ => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                "give exactly one of token and token_id",
            ))
        }
    };
    let actor = principal.actor(&req);
    let revoked = with_db(&state, move |s, conn| {
        accounts::revoke_token(
            conn,
            jti,
            TokenOwner::Anyone,
            reason.as_ref().map(Reason::as_str),
            s.tokens.leeway(),
            &actor,
            "token.revoked",
        )
    })
    .await?;
    revoked.apply(state.tokens.revocations());
    Ok(HttpResponse::Ok().json(TokenRevokedResponse {
        message: "Token revoked",
        identity_id: revoked.identity_id,
        token_id: jti,
        revoked_at: revoked.revoked_at,
        already_revoked: revoked.already_revoked,
    }))
}
