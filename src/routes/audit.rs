//! `/audit`: the trail of every change to a credential.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Reader;
use crate::db::queries::audit::{self, AuditFilter};
use crate::error::{ApiError, Code, ErrorBody};
use crate::state::{with_db, AppState};
use crate::time::{self, rfc3339};

/// One event. Never a token or a password.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    #[serde(with = "rfc3339")]
    pub occurred_at: DateTime<Utc>,
    /// The identity whose token authorised the action (`null`: the local CLI or tokend).
    pub actor_id: Option<i64>,
    /// e.g. `account.created`, `token.issued`, `token.refreshed`, `token.revoked`,
    /// `account.revoked`, `login.succeeded`, `login.failed`, `logout`, `user.added`,
    /// `cleanup.run`, `token.used_after_revocation`.
    #[schema(example = "account.revoked")]
    pub action: String,
    /// The account acted on.
    pub identity_id: Option<i64>,
    pub token_id: Option<String>,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

/// Audit filters. Events come newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events about this account.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub identity_id: Option<String>,
    /// Events by this actor.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub actor_id: Option<String>,
    /// One action, e.g. `login.failed`.
    pub action: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Only events older than this event id (the next page: the last id you got).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEvent>,
}

fn int(name: &str, raw: Option<&str>, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.trim().parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(ApiError::new(
            Code::InvalidQuery,
            format!("{name} must be a whole number from {min} to {max}"),
        )),
    }
}

/// The audit trail, newest first; needs an admin or viewer.
#[utoipa::path(get, path = "/audit", tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "events, newest first", body = AuditPage),
        (status = 400, description = "invalid filter", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    _reader: Reader,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = AuditFilter {
        identity_id: int("identity_id", q.identity_id.as_deref(), 1, i64::MAX)?,
        actor_id: int("actor_id", q.actor_id.as_deref(), 1, i64::MAX)?,
        action: q.action.filter(|a| !a.trim().is_empty()),
        before_id: int("before", q.before.as_deref(), 1, i64::MAX)?,
        limit: int("limit", q.limit.as_deref(), 1, 1000)?.unwrap_or(100),
    };
    let rows = with_db(&state, move |_, conn| Ok(audit::list(conn, &filter)?)).await?;
    let data = rows
        .into_iter()
        .map(|r| AuditEvent {
            id: r.id,
            occurred_at: time::from_db(r.occurred_at),
            actor_id: r.actor_id,
            action: r.action,
            identity_id: r.identity_id,
            token_id: r.token_id,
            reason: r.reason,
            remote_addr: r.remote_addr,
            detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditPage { data }))
}
