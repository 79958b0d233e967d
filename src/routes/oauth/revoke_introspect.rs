//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect` (RFC 7662): questions an
//! authenticated client asks about a token it holds.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{authenticated_client, TokenQuestion};
use crate::accounts::{self, TokenOwner};
use crate::forwarded::client_ip;
use crate::oauth::clients;
use crate::oauth::error::OAuthErrorBody;
use crate::oauth::{Form, OAuthCode, OAuthError};
use crate::routes::introspect::IntrospectResponse;
use crate::scope::Scope;
use crate::state::{with_db, AppState};
use crate::tokens::TokenError;

/// Revokes a token (RFC 7009). A client may revoke the tokens of its own service account (an
/// admin account's client, any token); an unknown, expired or already revoked token is
/// answered 200 as well. Revoking a token revokes its family.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2",
    security((), ("client_secret_basic" = [])),
    request_body(content = TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "revoked, or nothing to revoke"),
        (status = 400, description = "invalid_request, or unauthorized_client: the token belongs to another client", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: client authentication failed", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable", body = OAuthErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, OAuthError>,
) -> Result<HttpResponse, OAuthError> {
    let form = form?;
    let client = authenticated_client(&state, &req, &form).await?;
    let token = form.require("token")?.trim().to_owned();
    let claims = match state.tokens.verify_signature(&token) {
        Ok(claims) => claims,
        // Not one of ours, or unreadable: nothing to revoke (RFC 7009 §2.2).
        Err(_) => return Ok(HttpResponse::Ok().finish()),
    };
    let owner = if client.account.scope == Scope::Admin {
        TokenOwner::Anyone
    } else if claims.identity_id == client.account.identity_id {
        TokenOwner::ServiceAccount(client.account.identity_id)
    } else {
        return Err(OAuthError::new(
            OAuthCode::UnauthorizedClient,
            format!(
                "this token was not issued to client {}; a client may revoke only its own tokens",
                client.client_id
            ),
        ));
    };
    let actor = crate::audit::Actor {
        identity_id: Some(client.account.identity_id),
        remote_addr: client_ip(&req).map(|ip| ip.to_string()),
    };
    let jti = claims.jti;
    let outcome = with_db(&state, move |s, conn| {
        Ok(accounts::revoke_token(
            conn,
            jti,
            owner,
            Some("revoked by its client (RFC 7009)"),
            s.tokens.leeway(),
            &actor,
            "token.revoked",
        ))
    })
    .await
    .map_err(OAuthError::from)?;
    match outcome {
        Ok(revoked) => revoked.apply(state.tokens.revocations()),
        // Issued elsewhere or pruned long ago: nothing to revoke.
        Err(e) if e.code() == crate::error::Code::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// RFC 7662 answer of `/oauth2/introspect`: `/auth/introspect`'s, plus the `client_id` of the
/// token's service account.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthIntrospection {
    #[serde(flatten)]
    pub answer: IntrospectResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "sa-42")]
    pub client_id: Option<String>,
}

/// Token introspection (RFC 7662) for resource servers that authenticate as OAuth clients
/// (any client of tokend). `/auth/introspect` takes an admin or viewer bearer instead.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2",
    security((), ("client_secret_basic" = [])),
    request_body(content = TokenQuestion, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "whether the token is active, and its claims if it is", body = OAuthIntrospection),
        (status = 400, description = "invalid_request", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: client authentication failed", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable: this replica cannot judge tokens now", body = OAuthErrorBody),
    ))]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, OAuthError>,
) -> Result<HttpResponse, OAuthError> {
    let form = form?;
    authenticated_client(&state, &req, &form).await?;
    let token = form.require("token")?.trim().to_owned();
    let answer = match state.tokens.verify(&token) {
        Ok(c) => OAuthIntrospection {
            client_id: (c.identity_type == crate::tokens::IdentityType::ServiceAccount)
                .then(|| clients::client_id(c.identity_id)),
            answer: IntrospectResponse::active(&c),
        },
        Err(e @ TokenError::Unavailable(_)) => {
            return Err(OAuthError::from(crate::error::ApiError::from(e)))
        }
        Err(_) => OAuthIntrospection {
            answer: IntrospectResponse::default(),
            client_id: None,
        },
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
