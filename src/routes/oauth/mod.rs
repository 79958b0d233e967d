//! The OAuth 2.0 endpoints: `POST /oauth2/token`, `/oauth2/revoke` (RFC 7009),
//! `/oauth2/introspect` (RFC 7662) and the server metadata (RFC 8414). Their errors are
//! RFC 6749's `{error, error_description}`, which stock clients parse.
//!
//! This file is the token endpoint and client authentication; [`revoke_introspect`] and
//! [`metadata`] are the others.

pub mod metadata;
pub mod revoke_introspect;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use utoipa::ToSchema;

use crate::db::queries::identities;
use crate::db::DbConnection;
use crate::error::Code;
use crate::federation::{Jwks, JwksError};
use crate::forwarded::client_ip;
use crate::oauth::client_keys::{self, KeySource};
use crate::oauth::clients::{self, AuthenticatedClient};
use crate::oauth::error::OAuthErrorBody;
use crate::oauth::grants::{self, Authenticate, TokenResponse};
use crate::oauth::{assertion, ClientCredentials, Form, OAuthCode, OAuthError};
use crate::state::{with_db, AppState};
use crate::telemetry;

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
pub(super) async fn authenticated_client(
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
