//! The OAuth 2.0 endpoints: `POST /oauth2/token`, `/oauth2/revoke` (RFC 7009),
//! `/oauth2/introspect` (RFC 7662) and the server metadata (RFC 8414). Their errors are
//! RFC 6749's `{error, error_description}`, which stock clients parse.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::introspect::IntrospectResponse;
use crate::accounts::{self, TokenOwner};
use crate::db::queries::identities;
use crate::db::DbConnection;
use crate::error::Code;
use crate::federation::{Jwks, JwksError};
use crate::forwarded::client_ip;
use crate::oauth::assertion;
use crate::oauth::client_keys::{self, KeySource};
use crate::oauth::clients::{self, AuthenticatedClient};
use crate::oauth::error::OAuthErrorBody;
use crate::oauth::grants::{self, Authenticate, TokenResponse};
use crate::oauth::metadata::ServerMetadata;
use crate::oauth::{ClientCredentials, Form, OAuthCode, OAuthError};
use crate::scope::Scope;
use crate::state::{with_db, AppState};
use crate::telemetry;
use crate::tokens::TokenError;

/// The form of `POST /oauth2/token`, for the documentation: which fields apply depends on
/// `grant_type`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `client_credentials`, `urn:ietf:params:oauth:grant-type:token-exchange` or
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`.
    #[schema(example = "client_credentials", min_length = 1)]
    grant_type: String,
    /// `client_secret_post` (or alongside HTTP Basic, the same client).
    #[schema(min_length = 1)]
    client_id: Option<String>,
    /// `client_secret_post`.
    #[schema(min_length = 1)]
    client_secret: Option<String>,
    /// One tokend scope; for client credentials it must be the account's.
    #[schema(min_length = 1)]
    scope: Option<String>,
    /// A lifetime inside the scope's bounds (default: the scope's default).
    #[schema(minimum = 1)]
    ttl_seconds: Option<u64>,
    /// jwt-bearer (RFC 7523): a workload's identity token from a trusted issuer.
    #[schema(min_length = 1)]
    assertion: Option<String>,
    /// Token exchange: the tokend token to exchange (or, with `…:jwt`, a workload's identity
    /// token from a trusted issuer).
    #[schema(min_length = 1)]
    subject_token: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` (or `…:jwt`).
    #[schema(min_length = 1)]
    subject_token_type: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` (default) or `…:jwt`.
    #[schema(min_length = 1)]
    requested_token_type: Option<String>,
    /// Token exchange: must be `TOKEND_AUDIENCE` when given.
    #[schema(min_length = 1)]
    audience: Option<String>,
    /// Token exchange for an execution token: the execution's id.
    execution_id: Option<i64>,
    /// Token exchange for an execution token: the action, e.g. `core.http`.
    #[schema(min_length = 1)]
    action_ref: Option<String>,
    workflow_id: Option<i64>,
    /// Token exchange for another scope: that scope's metadata as a JSON object.
    #[schema(min_length = 1)]
    metadata: Option<String>,
}

/// The form of `POST /oauth2/revoke` and `POST /oauth2/introspect`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenQuestion {
    #[schema(min_length = 1)]
    token: String,
    /// `access_token` or `refresh_token`; a hint only (tokend has access tokens).
    #[schema(min_length = 1)]
    token_type_hint: Option<String>,
    #[schema(min_length = 1)]
    client_id: Option<String>,
    #[schema(min_length = 1)]
    client_secret: Option<String>,
}

/// The `grant_type` label of the metrics.
fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some(grants::CLIENT_CREDENTIALS) => "client_credentials",
        Some(grants::TOKEN_EXCHANGE) => "token_exchange",
        Some(grants::JWT_BEARER) => "jwt_bearer",
        _ => "unsupported",
    }
}

/// The check of the request's client credentials, to run inside the grant's transaction;
/// `None` when the request carries none. A client assertion is verified here first (its key
/// may have to be fetched); only counting its one use waits for the transaction.
async fn authenticator(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    credentials: ClientCredentials,
) -> Result<Option<Authenticate>, OAuthError> {
    let basic = credentials.is_basic();
    match credentials {
        ClientCredentials::None => Ok(None),
        ClientCredentials::Secret {
            client_id,
            secret,
            method,
        } => Ok(Some(Box::new(move |conn: &mut DbConnection| {
            clients::authenticate_secret(conn, &client_id, &secret, method)
                .map_err(|e| e.with_basic_challenge(basic))
        }))),
        ClientCredentials::Assertion {
            client_id,
            assertion: jwt,
        } => {
            let verified = verify_assertion(state, req, client_id.as_deref(), &jwt).await?;
            Ok(Some(Box::new(move |conn: &mut DbConnection| {
                assertion::authenticate(conn, &verified)
            })))
        }
    }
}

/// `private_key_jwt`: finds the client's registered key and checks the assertion with it.
async fn verify_assertion(
    state: &web::Data<AppState>,
    _req: &HttpRequest,
    client_id: Option<&str>,
    jwt: &str,
) -> Result<assertion::VerifiedAssertion, OAuthError> {
    let peeked = assertion::peek(jwt, client_id)?;
    let id = peeked.identity_id;
    let keys = with_db_oauth(state, move |_, conn| {
        client_keys::get(conn, id).map_err(|e| match e.code() {
            Code::NotFound => {
                OAuthError::invalid_client("client authentication failed: unknown client_id")
            }
            _ => OAuthError::from(e),
        })
    })
    .await?;
    let source = keys.and_then(|k| k.source()).ok_or_else(|| {
        OAuthError::invalid_client(format!(
            "client {} has no registered public keys for private_key_jwt (PUT /service-accounts/{id}/jwks)",
            peeked.client_id
        ))
    })?;
    let found = match source {
        KeySource::Inline(set) => Jwks::parse(&set)
            .map_err(|e| OAuthError::invalid_client(format!("the client's registered jwks: {e}")))?
            .find(peeked.kid.as_deref(), peeked.alg),
        KeySource::Uri(url) => {
            state
                .jwks
                .key_for(&url, peeked.kid.as_deref(), peeked.alg)
                .await
        }
    };
    let key = found.map_err(|e| match e {
        JwksError::Unavailable(why) => OAuthError::new(
            OAuthCode::TemporarilyUnavailable,
            format!("the client's keys cannot be fetched now: {why}"),
        )
        .retry_after(5),
        other => OAuthError::invalid_client(format!(
            "no registered key of client {} verifies this assertion: {other}",
            peeked.client_id
        )),
    })?;
    // The audiences tokend answers to: its issuer, and its endpoints under TOKEND_PUBLIC_URL.
    // Never a URL built from the request's Host: a client chooses that, and an assertion made
    // for another server (a staging tokend) would then pass here.
    let mut audiences = vec![state.settings.issuer.clone()];
    if let Some(base) = &state.settings.oauth.public_url {
        audiences.extend(
            ["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect", ""]
                .iter()
                .map(|p| format!("{base}{p}")),
        );
    }
    assertion::verify(
        jwt,
        &key,
        &peeked,
        &audiences,
        state.settings.leeway,
        chrono::Utc::now().timestamp(),
    )
}

fn required(auth: Option<Authenticate>) -> Result<Authenticate, OAuthError> {
    auth.ok_or_else(|| {
        OAuthError::invalid_client(
            "client authentication is required: send the client_id and client_secret with HTTP \
             Basic (or as client_id and client_secret form parameters), or a client assertion \
             (private_key_jwt)",
        )
    })
}

/// Runs a database step that answers in OAuth errors, within the request deadline.
pub(super) async fn with_db_oauth<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, OAuthError>
where
    T: Send + 'static,
    F: FnOnce(&AppState, &mut DbConnection) -> Result<T, OAuthError> + Send + 'static,
{
    with_db(state, move |s, conn| Ok(f(s, conn)))
        .await
        .map_err(OAuthError::from)?
}

/// Issues an access token (RFC 6749 §4.4 client credentials, RFC 8693 token exchange, RFC 7523
/// jwt-bearer for workloads with an identity token from a trusted issuer).
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth2",
    security((), ("client_secret_basic" = [])),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "a new access token", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "invalid_request, invalid_grant, invalid_scope, invalid_target, unauthorized_client or unsupported_grant_type", body = OAuthErrorBody),
        (status = 401, description = "invalid_client: client authentication failed", body = OAuthErrorBody),
        (status = 503, description = "temporarily_unavailable: storage or revocation state unavailable; retry", body = OAuthErrorBody),
    ))]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<Form, OAuthError>,
) -> Result<HttpResponse, OAuthError> {
    let grant_type = form
        .as_ref()
        .ok()
        .and_then(|f| f.get("grant_type").map(str::to_owned));
    let label = grant_label(grant_type.as_deref());
    let result = grant(&state, &req, form).await;
    match &result {
        Ok(granted) => {
            telemetry::oauth_token(label, "ok");
            telemetry::token_issued(granted.scope);
            log::info!(
                "{label}: issued token {} for identity {}",
                granted.token_id,
                granted.identity_id
            );
        }
        Err(e) => telemetry::oauth_token(label, e.code().as_str()),
    }
    let granted = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(granted.response))
}

async fn grant(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    form: Result<Form, OAuthError>,
) -> Result<grants::Granted, OAuthError> {
    let form = form?;
    let credentials = ClientCredentials::from_request(req, &form)?;
    let basic = credentials.is_basic();
    let auth = authenticator(state, req, credentials)
        .await
        .map_err(|e| e.with_basic_challenge(basic))?;
    let remote = client_ip(req).map(|ip| ip.to_string());
    match form.get("grant_type") {
        Some(grants::CLIENT_CREDENTIALS) => {
            let auth = required(auth)?;
            let grant = grants::ClientCredentialsGrant::parse(&form, remote)?;
            // Authentication reads only: it runs on the pool, side by side with others.
            let client = with_db_oauth(state, move |_, conn| auth(conn))
                .await
                .map_err(|e| e.with_basic_challenge(basic))?;
            // Grants arriving together share one transaction (db::group_commit): each is
            // answered once its token's row is durable.
            let s = state.clone();
            let granted = state
                .group
                .run(move |conn| grant.issue(conn, &s.tokens, &s.settings, &client))
                .await?;
            if let Some(exp) = granted.extend_after_commit {
                // At most one short update a minute per client; the token stands either way.
                let id = granted.identity_id;
                let slack = chrono::Duration::seconds(60);
                let extended = with_db_oauth(state, move |_, conn| {
                    Ok(identities::extend_expiry_coarse(conn, id, exp, slack)?)
                })
                .await;
                if let Err(e) = extended {
                    log::warn!("account {id}: expires_at not brought forward: {e}");
                }
            }
            Ok(granted)
        }
        Some(grants::JWT_BEARER) => {
            super::federation::workload_grant(state, form, auth, remote, false).await
        }
        // A workload's identity token in token-exchange form (see grants::is_federated_exchange).
        Some(grants::TOKEN_EXCHANGE) if grants::is_federated_exchange(&form, &state.settings) => {
            super::federation::workload_grant(state, form, auth, remote, true).await
        }
        Some(grants::TOKEN_EXCHANGE) => {
            with_db_oauth(state, move |s, conn| {
                grants::token_exchange(conn, &s.tokens, &s.settings, auth, &form, remote)
            })
            .await
        }
        Some(other) => Err(OAuthError::new(
            OAuthCode::UnsupportedGrantType,
            format!(
                "grant_type {:?} is not supported; this server supports: {}",
                other.chars().take(80).collect::<String>(),
                grants::SUPPORTED.join(", ")
            ),
        )),
        None => Err(OAuthError::invalid_request(
            "the form parameter grant_type is required",
        )),
    }
}

/// Authenticates the client of a revocation or introspection request (required there).
async fn authenticated_client(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    form: &Form,
) -> Result<AuthenticatedClient, OAuthError> {
    let credentials = ClientCredentials::from_request(req, form)?;
    let basic = credentials.is_basic();
    let auth = required(authenticator(state, req, credentials).await?)
        .map_err(|e| e.with_basic_challenge(basic))?;
    with_db_oauth(state, move |_, conn| auth(conn)).await
}

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

/// The base URL of the endpoints: `TOKEND_PUBLIC_URL`, else this request's scheme and Host.
fn base_url(state: &AppState, req: &HttpRequest) -> String {
    if let Some(url) = &state.settings.oauth.public_url {
        return url.clone();
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| req.app_config().host().to_owned());
    format!("{scheme}://{host}")
}

/// OAuth 2.0 authorization server metadata (RFC 8414); the same document at
/// `/.well-known/openid-configuration`. Endpoint URLs use `TOKEND_PUBLIC_URL` when set.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    responses((status = 200, description = "server metadata", body = ServerMetadata)))]
pub async fn metadata(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let body = ServerMetadata::new(&state.settings, &base_url(&state, &req));
    let cache = if state.settings.oauth.public_url.is_some() {
        "public, max-age=300"
    } else {
        // Built from this request's Host: a shared cache must not hand it to others.
        "no-store"
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, cache))
        .json(body)
}

/// The RFC 8414 document under its OpenID Connect discovery name, for clients that look there.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth2",
    responses((status = 200, description = "server metadata (the same as /.well-known/oauth-authorization-server)", body = ServerMetadata)))]
pub async fn openid_configuration(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    metadata(state, req).await
}
