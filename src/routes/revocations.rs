//! `/revocations`: revoke every token matching a selector in one call, and list the rules in
//! force.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonObject;
use crate::accounts::bulk::{self, BulkRevocation};
use crate::accounts::users::Login;
use crate::accounts::{AccountName, Reason};
use crate::auth::{Admin, Reader};
use crate::error::{ApiError, Code, ErrorBody};
use crate::scope::Scope;
use crate::state::{with_db, AppState};
use crate::time::{self, rfc3339};
use crate::tokens::rules::Selector;

/// Which tokens to revoke: every live token matching all the given selectors (at least one).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scope": "sensor", "issued_before": "2026-12-01T10:00:00Z", "reason": "incident 42"}))]
pub struct RevocationRequest {
    /// Tokens of this scope.
    #[schema(value_type = Option<Scope>)]
    pub scope: Option<String>,
    /// Tokens of accounts with exactly this name.
    pub name: Option<String>,
    /// Tokens of accounts whose name starts with this (e.g. `sensor:core.`).
    pub name_prefix: Option<String>,
    /// Tokens of this account (service account or user).
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub identity_id: Option<serde_json::Value>,
    /// Tokens of the user with this login.
    pub user: Option<String>,
    /// Tokens issued at or before this time (RFC 3339). A time in the future means now:
    /// a rule never covers tokens issued after it was made.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub issued_before: Option<String>,
    /// Tokens signed by this key (`kid`).
    pub key_id: Option<String>,
    /// Kept in the rule and the audit trail (at most 500 characters).
    pub reason: Option<String>,
    /// Only count the tokens that would be revoked; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a bulk revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationOutcome {
    /// Live tokens covered (for a dry run: that would be).
    pub matched: usize,
    #[serde(with = "rfc3339")]
    pub revoked_at: DateTime<Utc>,
    pub dry_run: bool,
    /// The rule now in force (`null` for a dry run, or when nothing it would cover can
    /// still verify).
    pub rule_id: Option<i64>,
}

/// A revocation rule in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationRule {
    pub id: i64,
    pub scope: Option<String>,
    pub name: Option<String>,
    pub name_prefix: Option<String>,
    pub identity_id: Option<i64>,
    pub key_id: Option<String>,
    /// Tokens issued at or before this are covered.
    #[serde(with = "rfc3339")]
    pub issued_before: DateTime<Utc>,
    /// When no covered token can verify any more; the rule is pruned after it.
    #[serde(with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    pub created_by: Option<i64>,
    pub reason: Option<String>,
    /// Live tokens it covered when it was made.
    pub matched: i64,
}

/// The rules in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationRules {
    pub data: Vec<RevocationRule>,
}

fn parse(body: RevocationRequest) -> Result<BulkRevocation, ApiError> {
    let name = |field: &str, raw: Option<String>| -> Result<Option<String>, ApiError> {
        raw.map(|raw| {
            AccountName::parse(&raw)
                .map(|n| n.as_str().to_owned())
                .map_err(|e| {
                    ApiError::new(Code::InvalidRequest, format!("{field}: {}", e.message()))
                })
        })
        .transpose()
    };
    let issued_before = body
        .issued_before
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::new(
                        Code::InvalidRequest,
                        "issued_before must be an RFC 3339 time, e.g. 2026-12-01T10:00:00Z",
                    )
                })
        })
        .transpose()?;
    let identity_id = body
        .identity_id
        .filter(|v| !v.is_null())
        .map(|v| {
            crate::scope::rules::whole_number(&v)
                .and_then(|n| i64::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::new(
                        Code::InvalidRequest,
                        "identity_id must be a positive integer",
                    )
                })
        })
        .transpose()?;
    Ok(BulkRevocation {
        selector: Selector {
            scope: body.scope.as_deref().map(Scope::parse).transpose()?,
            name: name("name", body.name)?,
            name_prefix: name("name_prefix", body.name_prefix)?,
            identity_id,
            key_id: name("key_id", body.key_id)?,
        },
        user: body.user.as_deref().map(Login::parse).transpose()?,
        issued_before,
        reason: body.reason.as_deref().map(Reason::parse).transpose()?,
        dry_run: body.dry_run,
    })
}

/// Revokes every live token matching all the given selectors, on every replica within the
/// propagation bound, by one rule rather than one row per token. `dry_run` only counts.
#[utoipa::path(post, path = "/revocations", tag = "revocation",
    security(("bearer" = [])),
    request_body = RevocationRequest,
    responses(
        (status = 200, description = "revoked (or counted)", body = RevocationOutcome),
        (status = 400, description = "no selector, or an invalid one", body = ErrorBody),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin", body = ErrorBody),
        (status = 404, description = "unknown user", body = ErrorBody),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
    body: JsonObject<RevocationRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = parse(body.into_inner())?;
    let actor = principal.actor(&req);
    let outcome = with_db(&state, move |s, conn| {
        bulk::revoke_matching(conn, &s.settings, &request, &actor)
    })
    .await?;
    crate::accounts::apply_revoked(&outcome.revoked_individually, state.tokens.revocations());
    if let Some(rule) = outcome.rule.clone() {
        state.tokens.revocations().rules().add(rule);
        crate::telemetry::tokens_revoked(outcome.matched);
        log::info!(
            "revocation rule added: {} live tokens covered",
            outcome.matched
        );
    }
    Ok(HttpResponse::Ok().json(RevocationOutcome {
        matched: outcome.matched,
        revoked_at: outcome.revoked_at,
        dry_run: outcome.dry_run,
        rule_id: outcome.rule.map(|r| r.id),
    }))
}

/// The revocation rules in force (pruned once nothing they cover can still verify).
#[utoipa::path(get, path = "/revocations", tag = "revocation",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the rules in force, oldest first", body = RevocationRules),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin or viewer", body = ErrorBody),
    ))]
pub async fn list(state: web::Data<AppState>, _reader: Reader) -> Result<HttpResponse, ApiError> {
    let rows = with_db(&state, |_, conn| bulk::rules_in_force(conn)).await?;
    let data = rows
        .into_iter()
        .map(|r| RevocationRule {
            id: r.id,
            scope: r.selector.scope,
            name: r.selector.name,
            name_prefix: r.selector.name_prefix,
            identity_id: r.selector.identity_id,
            key_id: r.selector.key_id,
            issued_before: time::from_db(r.selector.issued_before),
            expires_at: time::from_db(r.expires_at),
            created_at: time::from_db(r.created_at),
            created_by: r.created_by,
            reason: r.reason,
            matched: r.matched,
        })
        .collect();
    Ok(HttpResponse::Ok().json(RevocationRules { data }))
}
