//! `/keys`: signing-key rotation and emergency revocation (EdDSA deployments).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::record;
use crate::auth::{Admin, Reader};
use crate::db::queries::keys as key_queries;
use crate::error::{ApiError, ErrorBody};
use crate::state::{with_db, AppState};
use crate::time::{self, rfc3339};

/// A signing key as listed (public material only).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    /// The JWS algorithm it signs with, e.g. `EdDSA`.
    #[schema(example = "EdDSA")]
    pub alg: String,
    /// `next`, `active`, `retiring`, `retired` or `revoked`.
    pub status: String,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    pub activated_at: Option<DateTime<Utc>>,
    /// A retiring key verifies until then.
    #[serde(with = "rfc3339::option")]
    pub retire_after: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    pub retired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyInfo>,
}

/// Every signing key and its state.
#[utoipa::path(get, path = "/keys", tag = "keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the keys, newest first", body = KeyList),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>, _reader: Reader) -> Result<HttpResponse, ApiError> {
    let rows = with_db(&state, |_, conn| Ok(key_queries::all(conn)?)).await?;
    let data = rows
        .into_iter()
        .map(|r| KeyInfo {
            kid: r.kid,
            alg: r.algorithm,
            status: r.status,
            created_at: time::from_db(r.created_at),
            activated_at: r.activated_at.map(time::from_db),
            retire_after: r.retire_after.map(time::from_db),
            retired_at: r.retired_at.map(time::from_db),
        })
        .collect();
    Ok(HttpResponse::Ok().json(KeyList { data }))
}

/// What a rotation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotationResponse {
    /// The key that signs from now on (it was published as `next` beforehand).
    pub active_kid: String,
    /// The key that signed until now; it keeps verifying until `retire_after`.
    pub retiring_kid: Option<String>,
    /// Published now, signs after the next rotation.
    pub next_kid: String,
    #[serde(with = "rfc3339")]
    pub retire_after: DateTime<Utc>,
}

/// Rotates the signing key: the published `next` key starts signing, the old one verifies
/// until the longest token it signed has expired, and a new `next` key is published.
#[utoipa::path(post, path = "/keys/rotate", tag = "keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "rotated", body = RotationResponse),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 409, description = "the next key was published too recently, or HS256", body = ErrorBody),
    ))]
pub async fn rotate(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = principal.actor(&req);
    let rotation = with_db(&state, move |s, conn| {
        let r = s
            .tokens
            .keys()
            .rotate(
                conn,
                s.settings.max_token_lifetime(),
                None,
                s.settings.jwks_max_age,
            )?
            .ok_or_else(|| {
                ApiError::new(crate::error::Code::InternalError, "rotation did nothing")
            })?;
        record(
            conn,
            &actor,
            "key.rotated",
            None,
            None,
            None,
            json!({
                "active_kid": r.active_kid, "retiring_kid": r.retiring_kid, "next_kid": r.next_kid,
            }),
        )?;
        Ok(r)
    })
    .await?;
    log::info!("signing key rotated: {} now signs", rotation.active_kid);
    Ok(HttpResponse::Ok().json(RotationResponse {
        active_kid: rotation.active_kid,
        retiring_kid: rotation.retiring_kid,
        next_kid: rotation.next_kid,
        retire_after: rotation.retire_after,
    }))
}

/// What an emergency key revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevokedResponse {
    pub kid: String,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
    /// The key that signs now.
    pub active_kid: String,
}

/// Emergency: retires a key at once. Every token it signed stops verifying, on every replica
/// within a second. If it was the signing key, the `next` key takes over.
#[utoipa::path(post, path = "/keys/{kid}/revoke", tag = "keys",
    security(("bearer" = [])),
    params(("kid" = String, Path, description = "the key id")),
    responses(
        (status = 200, description = "revoked", body = KeyRevokedResponse),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "no such key in use", body = ErrorBody),
        (status = 409, description = "HS256: keys are not managed by tokend", body = ErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let kid = path.into_inner();
    let actor = principal.actor(&req);
    let revoked = with_db(&state, move |s, conn| {
        let r = s.tokens.keys().revoke(conn, &kid)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "no signing key '{}' is in use; GET /keys lists them",
                crate::scope::printable(&kid, 80)
            ))
        })?;
        record(
            conn,
            &actor,
            "key.revoked",
            None,
            None,
            Some("emergency"),
            json!({
                "kid": r.kid, "active_kid": r.active_kid,
            }),
        )?;
        Ok(r)
    })
    .await?;
    log::warn!(
        "signing key {} revoked; every token it signed is refused",
        revoked.kid
    );
    Ok(HttpResponse::Ok().json(KeyRevokedResponse {
        kid: revoked.kid,
        revoked_at: revoked.revoked_at,
        active_kid: revoked.active_kid,
    }))
}
