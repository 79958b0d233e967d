//! `/federation/issuers`: the external issuers an admin trusts (workload federation), and the
//! grant that turns a workload's identity token into a tokend token (reached through
//! `POST /oauth2/token`, see `routes/oauth/`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{json_response, JsonObject};
use super::oauth::with_db_oauth;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, ErrorBody};
use crate::federation::issuers::{self, Issuer, IssuerDeleted};
use crate::federation::spec::{KeySource, RuleDocument};
use crate::federation::{assertion, IssuerSpec, JwksError};
use crate::oauth::grants::federated::{self as grant, Request};
use crate::oauth::grants::{self, Authenticate, Granted};
use crate::oauth::{Form, OAuthCode, OAuthError};
use crate::state::{with_db, AppState};

/// A new trusted issuer (for the documentation; the body is checked field by field).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"issuer": "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c", "jwks_uri": "https://container.googleapis.com/v1/projects/p/locations/l/clusters/c/jwks", "audiences": ["tokend"], "rules": [{"match": {"kubernetes.io.namespace": "sensors"}, "scope": "sensor", "name": "sensor:{kubernetes.io.serviceaccount.name}", "metadata": {"trigger_types": ["core.timer"]}}]}))]
pub struct IssuerRequest {
    /// The exact `iss` of the tokens: an https URL (http only on the loopback).
    #[schema(example = "https://token.actions.githubusercontent.com")]
    issuer: String,
    /// Where the issuer publishes its keys (one of `jwks_uri` and `jwks`).
    jwks_uri: Option<String>,
    /// The issuer's keys inline, instead of `jwks_uri`.
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    /// A token's `aud` must contain one of these.
    audiences: Vec<String>,
    /// Tokens issued longer ago than this (`iat`) are refused; default 3600.
    #[schema(minimum = 1, maximum = 604800)]
    max_token_age_seconds: Option<u64>,
    /// How often one token (by `iss` and `jti`) may be used; default 10.
    #[schema(minimum = 1, maximum = 10000)]
    max_uses_per_token: Option<u64>,
    /// The first rule whose `match` holds decides scope, name, metadata and TTL.
    rules: Vec<RuleDocument>,
}

/// The trusted issuers.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerList {
    pub data: Vec<Issuer>,
}

fn issuer_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found(format!(
            "no trusted issuer with id '{}'; ids are positive integers",
            crate::scope::printable(raw, 40)
        ))
    })
}

/// Registers an external issuer whose tokens workloads may exchange for tokend tokens.
#[utoipa::path(post, path = "/federation/issuers", tag = "federation",
    security(("bearer" = [])),
    request_body = IssuerRequest,
    responses(
        (status = 201, description = "the issuer", body = Issuer),
        (status = 400, description = "a field is not valid (the message says which)", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 409, description = "this issuer is registered already", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    body: JsonObject<Value>,
) -> Result<HttpResponse, ApiError> {
    let spec = IssuerSpec::parse(&body.into_inner(), Some(&state.settings.scopes))?;
    let actor = principal.actor(&req);
    let created = with_db(&state, move |_, conn| issuers::create(conn, &spec, &actor)).await?;
    log::info!(
        "trusted issuer {} registered as {}",
        created.issuer,
        created.id
    );
    Ok(json_response(StatusCode::CREATED, &created))
}

/// Lists the trusted issuers; needs an admin or viewer.
#[utoipa::path(get, path = "/federation/issuers", tag = "federation",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the issuers, oldest first", body = IssuerList),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>, _reader: Reader) -> Result<HttpResponse, ApiError> {
    let data = with_db(&state, |_, conn| issuers::list(conn)).await?;
    Ok(HttpResponse::Ok().json(IssuerList { data }))
}

/// One trusted issuer; needs an admin or viewer.
#[utoipa::path(get, path = "/federation/issuers/{id}", tag = "federation",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the issuer's id", minimum = 1)),
    responses(
        (status = 200, description = "the issuer", body = Issuer),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
        (status = 404, description = "no such issuer", body = ErrorBody),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    _reader: Reader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = issuer_id(&path)?;
    let issuer = with_db(&state, move |_, conn| issuers::get(conn, id)).await?;
    Ok(HttpResponse::Ok().json(issuer))
}

/// Changes a trusted issuer: the given fields replace the stored ones (`null` resets an
/// optional one; `jwks_uri` replaces `jwks` and the other way round), and the result is
/// checked like a new issuer. Workloads get the new rules' result at their next grant.
#[utoipa::path(patch, path = "/federation/issuers/{id}", tag = "federation",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the issuer's id", minimum = 1)),
    request_body(content = Object, description = "any fields of a new issuer", example = json!({"max_uses_per_token": 5})),
    responses(
        (status = 200, description = "the issuer as it is now", body = Issuer),
        (status = 400, description = "a field is not valid, or nothing to change", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such issuer", body = ErrorBody),
        (status = 409, description = "another issuer has this URL", body = ErrorBody),
    ))]
pub async fn update(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonObject<serde_json::Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = issuer_id(&path)?;
    let patch = body.into_inner();
    let actor = principal.actor(&req);
    let issuer = with_db(&state, move |s, conn| {
        issuers::patch(conn, id, &patch, &s.settings.scopes, &actor)
    })
    .await?;
    Ok(HttpResponse::Ok().json(issuer))
}

/// Removes a trusted issuer: its tokens are refused from now on. The service accounts its
/// workloads were given keep their tokens until those expire or are revoked
/// (`POST /revocations` with their `identity_id`).
#[utoipa::path(delete, path = "/federation/issuers/{id}", tag = "federation",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "the issuer's id", minimum = 1)),
    responses(
        (status = 200, description = "removed", body = IssuerDeleted),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such issuer", body = ErrorBody),
    ))]
pub async fn delete(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = issuer_id(&path)?;
    let actor = principal.actor(&req);
    let deleted = with_db(&state, move |_, conn| issuers::delete(conn, id, &actor)).await?;
    Ok(HttpResponse::Ok().json(deleted))
}

fn key_error(err: JwksError) -> OAuthError {
    match err {
        JwksError::Unavailable(why) => {
            log::warn!("workload grant: {why}");
            OAuthError::new(
                OAuthCode::TemporarilyUnavailable,
                "the trusted issuer's keys cannot be fetched right now and none are cached; retry shortly",
            )
            .retry_after(5)
        }
        JwksError::NoKey(why) => OAuthError::invalid_grant(why),
    }
}

/// The workload federation grant: `grant_type=…:jwt-bearer` with `assertion`, or token
/// exchange with a `…:jwt` subject token from a trusted issuer (`exchange`). The token is
/// checked in full (its issuer's keys fetched if need be), the issuer's rules decide, and one
/// transaction counts the use and issues.
pub(super) async fn workload_grant(
    state: &web::Data<AppState>,
    form: Form,
    auth: Option<Authenticate>,
    remote_addr: Option<String>,
    exchange: bool,
) -> Result<Granted, OAuthError> {
    let (token, grant_type, issued_token_type) = if exchange {
        form.refuse("actor_token_type", "there is no actor_token")?;
        let issued = match form.get("requested_token_type") {
            None | Some(grants::ACCESS_TOKEN_TYPE) => grants::ACCESS_TOKEN_TYPE,
            Some(grants::JWT_TOKEN_TYPE) => grants::JWT_TOKEN_TYPE,
            Some(_) => {
                return Err(OAuthError::invalid_request(format!(
                    "requested_token_type is not supported; tokend issues {}",
                    grants::ACCESS_TOKEN_TYPE
                )))
            }
        };
        (
            form.require("subject_token")?,
            grants::TOKEN_EXCHANGE,
            Some(issued),
        )
    } else {
        form.refuse(
            "subject_token",
            "jwt-bearer takes the workload's token as assertion",
        )?;
        (form.require("assertion")?, grants::JWT_BEARER, None)
    };
    grant::refuse_rule_fields(&form)?;
    for target in ["audience", "resource"] {
        if form
            .get(target)
            .is_some_and(|v| v != state.settings.audience)
        {
            return Err(OAuthError::new(
                OAuthCode::InvalidTarget,
                format!(
                    "tokend issues tokens for the audience {:?} only",
                    state.settings.audience
                ),
            ));
        }
    }
    let asked = grants::requested_scope(&form)?;
    let ttl = grants::requested_ttl(&form)?;
    let token = token.trim().to_owned();
    let peeked = assertion::peek(&token)?;
    let iss = peeked.iss.clone();
    let issuer = with_db_oauth(state, move |_, conn| Ok(issuers::find_by_url(conn, &iss)?))
        .await?
        .ok_or_else(|| {
            OAuthError::invalid_grant(format!(
                "the token's issuer {:?} is not trusted here; an admin registers it with POST /federation/issuers",
                peeked.iss.chars().take(120).collect::<String>()
            ))
        })?;
    let key = match &issuer.spec.keys {
        KeySource::Inline { jwks, .. } => jwks.find(peeked.kid.as_deref(), peeked.alg),
        KeySource::Uri(url) => {
            state
                .jwks
                .key_for(url, peeked.kid.as_deref(), peeked.alg)
                .await
        }
    }
    .map_err(key_error)?;
    let verified = assertion::verify(
        &token,
        &key,
        &issuer.spec,
        state.settings.leeway,
        chrono::Utc::now().timestamp(),
    )?;
    let outcome = grant::decide(&issuer, &verified, asked, ttl, &state.settings)?;
    // Grants arriving together share one transaction (db::group_commit).
    let s = state.clone();
    state
        .group
        .run(move |conn| {
            grant::issue_in_transaction(
                conn,
                &s.tokens,
                &issuer,
                &verified,
                &outcome,
                auth,
                Request {
                    grant_type,
                    issued_token_type,
                    remote_addr,
                },
            )
        })
        .await
}
