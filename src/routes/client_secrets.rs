//! `/service-accounts/{id}/client-secrets` and `/service-accounts/{id}/jwks`: the OAuth 2.0
//! client credentials of a service account, secrets or public keys. A secret is shown once,
//! at creation; listings show only ids and times.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{json_response, JsonObject, OptionalJson};
use super::service_accounts::{account_id, RevokeRequest};
use crate::accounts::Reason;
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Code, ErrorBody};
use crate::oauth::client_keys::{self, KeySource};
use crate::oauth::clients::{
    self, ClientSecretInfo, SecretRequest, DEFAULT_SECRET_DAYS, MAX_OVERLAP_SECS, MAX_SECRET_DAYS,
};
use crate::state::{with_db, AppState};
use crate::time::rfc3339;

/// A new client secret. Both fields are optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({}), json!({"expires_in_days": 30, "overlap_seconds": 86400})))]
pub struct CreateClientSecretRequest {
    /// Days until the secret stops working: 1 to 365, default 90.
    #[schema(value_type = u64, required = false, minimum = 1, maximum = 365)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub expires_in_days: Option<Value>,
    /// Rotation: every other live secret of the account stops working this many seconds from
    /// now (0: at once; at most 30 days). Absent: the others keep their own expiry.
    #[schema(value_type = u64, required = false, minimum = 0, maximum = 2592000)]
    #[serde(default, deserialize_with = "crate::scope::explicit")]
    pub overlap_seconds: Option<Value>,
}

/// A client secret just created: the only time `client_secret` is shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"client_id": "sa-42", "client_secret": "tokend_cs_Qm9vZ…", "secret_id": "9b1c3f0e-2b7a-4c55-8d0e-6a3f1b2c4d5e", "created_at": "2026-12-01T10:00:00Z", "expires_at": "2027-03-01T10:00:00Z", "others_shortened": 1}))]
pub struct ClientSecretCreated {
    pub client_id: String,
    /// Shown once: store it in the client's secret store now.
    pub client_secret: String,
    pub secret_id: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// How many other secrets now stop at the end of the overlap.
    pub others_shortened: usize,
}

/// The client secrets of an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientSecretList {
    #[schema(example = "sa-42")]
    pub client_id: String,
    pub data: Vec<ClientSecretInfo>,
}

/// A revoked client secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientSecretRevoked {
    pub client_id: String,
    pub secret_id: String,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
    pub already_revoked: bool,
}

fn whole(field: &str, value: &Value, min: u64, max: u64) -> Result<u64, ApiError> {
    crate::scope::rules::whole_number(value)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                Code::InvalidRequest,
                format!("{field} must be a whole number from {min} to {max}"),
            )
        })
}

impl CreateClientSecretRequest {
    fn parse(&self) -> Result<SecretRequest, ApiError> {
        let days = match &self.expires_in_days {
            None => DEFAULT_SECRET_DAYS,
            Some(v) => whole("expires_in_days", v, 1, MAX_SECRET_DAYS)?,
        };
        let overlap = match &self.overlap_seconds {
            None => None,
            Some(v) => Some(Duration::from_secs(whole(
                "overlap_seconds",
                v,
                0,
                MAX_OVERLAP_SECS,
            )?)),
        };
        Ok(SecretRequest {
            lifetime: Duration::from_secs(days * 86_400),
            overlap,
        })
    }
}

/// Creates a client secret for a service account (`client_secret_basic` / `_post` at
/// `/oauth2/token`). With `overlap_seconds` it is a rotation: the account's other secrets
/// stop working when the overlap ends.
#[utoipa::path(post, path = "/service-accounts/{id}/client-secrets", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    request_body(content = Option<CreateClientSecretRequest>, description = "optional lifetime and rotation overlap"),
    responses(
        (status = 201, description = "the secret; shown only now", body = ClientSecretCreated),
        (status = 400, description = "a field out of range", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such service account", body = ErrorBody),
        (status = 409, description = "the account is revoked (account_revoked), or holds 10 live secrets already (too_many_client_secrets)", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: OptionalJson<CreateClientSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let request = body.0.unwrap_or_default().parse()?;
    let actor = principal.actor(&req);
    let created = with_db(&state, move |_, conn| {
        clients::create_secret(conn, id, request, &actor)
    })
    .await?;
    log::info!(
        "created client secret {} for account {id} ({} others shortened)",
        created.info.secret_id,
        created.shortened
    );
    Ok(json_response(
        StatusCode::CREATED,
        &ClientSecretCreated {
            client_id: created.client_id,
            client_secret: created.secret.to_string(),
            secret_id: created.info.secret_id,
            created_at: created.info.created_at,
            expires_at: created.info.expires_at,
            others_shortened: created.shortened,
        },
    ))
}

/// Lists the client secrets of a service account (ids, times and status; never a secret).
#[utoipa::path(get, path = "/service-accounts/{id}/client-secrets", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    responses(
        (status = 200, description = "the account's client secrets, newest first", body = ClientSecretList),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
        (status = 404, description = "no such service account", body = ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    _reader: Reader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let data = with_db(&state, move |_, conn| clients::list_secrets(conn, id)).await?;
    Ok(HttpResponse::Ok().json(ClientSecretList {
        client_id: clients::client_id(id),
        data,
    }))
}

/// Revokes a client secret: it authenticates nothing from now on. Tokens it obtained stay
/// valid until they expire; `POST /revocations {"identity_id": …}` revokes those too.
#[utoipa::path(delete, path = "/service-accounts/{id}/client-secrets/{secret_id}", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id"), ("secret_id" = String, Path, description = "the secret's id")),
    request_body(content = Option<RevokeRequest>, description = "optional reason"),
    responses(
        (status = 200, description = "revoked (or already revoked)", body = ClientSecretRevoked),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such account or secret", body = ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: OptionalJson<RevokeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, secret_id) = path.into_inner();
    let id = account_id(&raw_id)?;
    let reason = match body.0 {
        Some(b) => b.reason()?,
        None => None,
    };
    let actor = principal.actor(&req);
    let sid = secret_id.clone();
    let revoked = with_db(&state, move |_, conn| {
        clients::revoke_secret(conn, id, &sid, reason.as_ref().map(Reason::as_str), &actor)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ClientSecretRevoked {
        client_id: clients::client_id(id),
        secret_id: revoked.info.secret_id,
        revoked_at: revoked.info.revoked_at.unwrap_or_else(Utc::now),
        already_revoked: revoked.already_revoked,
    }))
}

/// The public keys for `private_key_jwt`: inline, or where the client publishes them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(
    json!({"jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "client-key-1"}]}}),
    json!({"jwks_uri": "https://sensor.example.com/.well-known/jwks.json"}),
))]
pub struct RegisterKeysRequest {
    /// A JWKS of public keys (RS256 ≥ 2048 bits, ES256, EdDSA); never a private key.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// https (http only on the loopback); fetched and cached like a trusted issuer's.
    pub jwks_uri: Option<String>,
}

/// Registers (or replaces) the public keys the account's client signs its assertions with
/// (`private_key_jwt`): no shared secret at all.
#[utoipa::path(put, path = "/service-accounts/{id}/jwks", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    request_body = RegisterKeysRequest,
    responses(
        (status = 200, description = "the registered keys", body = crate::oauth::client_keys::ClientKeys),
        (status = 400, description = "not exactly one of jwks and jwks_uri, no usable public key, a private key, a bad URL", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such service account", body = ErrorBody),
        (status = 409, description = "the account is revoked", body = ErrorBody),
    ))]
pub async fn register_keys(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
    body: JsonObject<RegisterKeysRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let body = body.into_inner();
    let source = KeySource::parse(body.jwks, body.jwks_uri)?;
    let actor = principal.actor(&req);
    let keys = with_db(&state, move |_, conn| {
        client_keys::register(conn, id, source, &actor)
    })
    .await?;
    Ok(HttpResponse::Ok().json(keys))
}

/// The public keys registered for the account's client (404 when none).
#[utoipa::path(get, path = "/service-accounts/{id}/jwks", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    responses(
        (status = 200, description = "the registered keys", body = crate::oauth::client_keys::ClientKeys),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
        (status = 404, description = "no such service account, or no keys registered", body = ErrorBody),
    ))]
pub async fn get_keys(
    state: web::Data<AppState>,
    _reader: Reader,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let keys = with_db(&state, move |_, conn| client_keys::get(conn, id)).await?;
    let keys = keys.ok_or_else(|| {
        ApiError::not_found(format!(
            "service account {id} has no registered keys; PUT /service-accounts/{id}/jwks registers them"
        ))
    })?;
    Ok(HttpResponse::Ok().json(keys))
}

/// Forgets the account's public keys: its client assertions stop working at once.
#[utoipa::path(delete, path = "/service-accounts/{id}/jwks", tag = "oauth2",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "identity id")),
    responses(
        (status = 200, description = "removed (or there were none)", body = Object, example = json!({"client_id": "sa-42", "removed": true})),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such service account", body = ErrorBody),
    ))]
pub async fn remove_keys(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = account_id(&path)?;
    let actor = principal.actor(&req);
    let removed = with_db(&state, move |_, conn| client_keys::remove(conn, id, &actor)).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"client_id": clients::client_id(id), "removed": removed})))
}
