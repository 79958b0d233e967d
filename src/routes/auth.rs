//! `/auth/*`: what a token says about its holder, and forward-auth for gateways.
//! Both answer from memory: no database access.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::authenticate;
use crate::error::{ApiError, Code, ErrorBody};
use crate::forwarded::{self, ClientAddress, OriginalUri};
use crate::scope::{ip_allowed, normalize_request_path, path_allowed, printable, Scope};
use crate::telemetry::{self, Verification};
use crate::time::{self, rfc3339};
use crate::tokens::Claims;

/// The holder of a token, as the token says.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI<'a> {
    pub identity_id: i64,
    #[schema(example = "sensor:core.timer")]
    pub name: &'a str,
    pub scope: Scope,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// Seconds until the token expires (0 once it has).
    pub expires_in_seconds: i64,
    #[schema(value_type = Object)]
    pub metadata: &'a Map<String, Value>,
}

/// Describes the presented token. Any valid token may ask; a webhook token's `allowed_paths`
/// and `ip_allowlist` hold here as at `/auth/verify`, checked against the original path and
/// client address a trusted proxy reports, else this request's own path and peer.
#[utoipa::path(get, path = "/auth/whoami", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the token's holder", body = WhoAmI),
        (status = 401, description = "missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "a webhook token outside its allowed_paths or ip_allowlist, or an ambiguous original path (ambiguous_original_uri)", body = ErrorBody),
    ))]
pub async fn whoami(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&req)?.claims;
    let checked = match claims.scope {
        Scope::Webhook => check_webhook(&req, &claims, Checkpoint::Direct),
        _ => Ok(()),
    };
    count(&checked);
    checked?;
    let now = chrono::Utc::now().timestamp();
    Ok(HttpResponse::Ok().json(WhoAmI {
        identity_id: claims.identity_id,
        name: &claims.sub,
        scope: claims.scope,
        token_id: claims.jti,
        expires_at: time::from_unix(claims.exp),
        expires_in_seconds: (claims.exp - now).max(0),
        metadata: &claims.metadata,
    }))
}

fn count(checked: &Result<(), ApiError>) {
    telemetry::verification(match checked {
        Ok(()) => Verification::Ok,
        Err(_) => Verification::InsufficientScope,
    });
}

/// Conditions a gateway can put on a request, on top of a valid token.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// Comma-separated scopes, one of which the token must have (e.g. `sensor,admin`).
    #[param(
        example = "sensor,admin",
        pattern = r"^ *(?:sensor|execution|action_execution|cli|user|webhook|admin) *(?:, *(?:sensor|execution|action_execution|cli|user|webhook|admin) *)*$"
    )]
    pub scope: Option<String>,
    /// A trigger type the (sensor) token must list in `trigger_types`.
    #[param(example = "core.timer")]
    pub trigger_type: Option<String>,
    /// The execution the (execution) token must belong to.
    #[param(value_type = Option<i64>, example = 4711, minimum = 0)]
    pub execution_id: Option<String>,
}

/// The verified holder, also sent as `X-Tokend-*` headers.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub identity_id: i64,
    pub name: &'a str,
    pub scope: Scope,
    pub token_id: Uuid,
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
}

/// Forward-auth for nginx `auth_request`, Caddy `forward_auth`, Traefik ForwardAuth and
/// Envoy: answers for any method. Forwarding headers count only from a peer in
/// `TOKEND_TRUSTED_PROXIES`. The original path comes from `X-Forwarded-Uri` or
/// `X-Original-URI` (two sources that disagree: 403 `ambiguous_original_uri`) and must match
/// a webhook token's `allowed_paths`; a webhook token's `ip_allowlist` is checked against the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy (or `Forwarded: for=`, or
/// `X-Real-IP`; sources that disagree match no allowlist), else the peer address.
#[utoipa::path(get, path = "/auth/verify", tag = "auth",
    security(("bearer" = [])),
    params(VerifyQuery,
        ("X-Forwarded-Uri" = Option<String>, Header, description = "original request URI (Traefik, Caddy); only from a trusted proxy"),
        ("X-Original-URI" = Option<String>, Header, description = "original request URI (nginx); only from a trusted proxy"),
        ("X-Forwarded-For" = Option<String>, Header, description = "client address chain; only from a trusted proxy"),
        ("X-Real-IP" = Option<String>, Header, description = "client address (nginx); only from a trusted proxy")),
    responses(
        (status = 200, description = "the token is good for this request",
            headers(("X-Tokend-Identity-Id" = i64), ("X-Tokend-Name" = String), ("X-Tokend-Scope" = String), ("X-Tokend-Token-Id" = String)),
            body = VerifyResponse),
        (status = 400, description = "invalid query", body = ErrorBody),
        (status = 401, description = "missing, invalid, expired or revoked token", body = ErrorBody),
        (status = 403, description = "good token, wrong place; or an ambiguous original path (ambiguous_original_uri)", body = ErrorBody),
    ))]
pub async fn verify(
    req: HttpRequest,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&req)?.claims;
    let checked = check_conditions(&req, &claims, &query);
    count(&checked);
    checked?;
    Ok(super::verified_answer::respond(&claims))
}

fn check_conditions(
    req: &HttpRequest,
    claims: &Claims,
    query: &VerifyQuery,
) -> Result<(), ApiError> {
    if let Some(list) = query.scope.as_deref() {
        let wanted = list
            .split(',')
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if !wanted.contains(&claims.scope) {
            let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::insufficient_scope(format!(
                "this token has scope {}; this route needs {}",
                claims.scope,
                names.join(" or ")
            )));
        }
    }
    if let Some(wanted) = query.trigger_type.as_deref() {
        let listed = claims.scope == Scope::Sensor
            && claims
                .metadata
                .get("trigger_types")
                .and_then(Value::as_array)
                .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(wanted)));
        if !listed {
            return Err(ApiError::new(
                Code::TriggerTypeNotAllowed,
                format!(
                    "this token may not fire trigger type '{}'",
                    printable(wanted, 80)
                ),
            ));
        }
    }
    if let Some(raw) = query.execution_id.as_deref() {
        let wanted: i64 = raw
            .trim()
            .parse()
            .map_err(|_| ApiError::new(Code::InvalidQuery, "execution_id must be an integer"))?;
        let matches = claims.scope == Scope::Execution
            && claims.metadata.get("execution_id").and_then(Value::as_i64) == Some(wanted);
        if !matches {
            return Err(ApiError::new(
                Code::ExecutionMismatch,
                format!("this token does not belong to execution {wanted}"),
            ));
        }
    }
    if claims.scope == Scope::Webhook {
        check_webhook(req, claims, Checkpoint::ForwardAuth)?;
    }
    Ok(())
}

/// Where a webhook token is checked: forward-auth is about another request, whose path only
/// a proxy can report; any other call is itself the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkpoint {
    ForwardAuth,
    Direct,
}

/// A webhook token's `allowed_paths` and `ip_allowlist`, against what
/// [`forwarded`] says the original path and client are.
fn check_webhook(req: &HttpRequest, claims: &Claims, at: Checkpoint) -> Result<(), ApiError> {
    let original = forwarded::original_uri(req)?;
    if at == Checkpoint::ForwardAuth && matches!(original, OriginalUri::Own(_)) {
        let ignored = forwarded::ignored_forwarding(req).map_or_else(String::new, |peer| {
            format!(" (the forwarding headers from {peer} were ignored: it is not in TOKEND_TRUSTED_PROXIES)")
        });
        return Err(ApiError::new(
            Code::PathNotAllowed,
            format!("a webhook token is only accepted with the original path in X-Forwarded-Uri or X-Original-URI from a trusted proxy{ignored}"),
        ));
    }
    let original = original.as_str();
    let allowed = claims
        .metadata
        .get("allowed_paths")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let path_ok = normalize_request_path(original).is_some_and(|path| path_allowed(allowed, &path));
    if !path_ok {
        return Err(ApiError::new(
            Code::PathNotAllowed,
            format!(
                "this webhook token may not call {}",
                printable(original, 120)
            ),
        ));
    }
    if let Some(allowlist) = claims
        .metadata
        .get("ip_allowlist")
        .and_then(Value::as_array)
    {
        let from = match forwarded::client_address(req) {
            ClientAddress::Known(ip) if ip_allowed(allowlist, ip) => return Ok(()),
            ClientAddress::Known(ip) => ip.to_string(),
            ClientAddress::Ambiguous => "an ambiguous address (the proxy passed on X-Forwarded-For, Forwarded or X-Real-IP naming different clients)".into(),
            ClientAddress::Unknown => "an unknown address".into(),
        };
        return Err(ApiError::new(
            Code::IpNotAllowed,
            format!("this webhook token may not be used from {from}"),
        ));
    }
    Ok(())
}
