//! The audit trail: one `audit_event` row for every change to a credential.
//!
//! Rows name the actor, the action, the account and token id, the reason and the remote
//! address; never a token or a password.

use serde_json::Value;

use crate::db::models::NewAuditEvent;
use crate::db::queries::audit;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::time;

/// Who made a change.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The identity of the token that authorised the change (`None`: the local CLI or tokend).
    pub identity_id: Option<i64>,
    pub remote_addr: Option<String>,
}

/// Audit actions that take credentials away. Each one also goes out on the signed webhook
/// (`credentials.revoked`), written in the same transaction, so none is lost.
pub const REVOCATION_ACTIONS: &[&str] = &[
    "account.revoked",
    "token.revoked",
    "logout",
    "login.revoked_previous",
    "key.revoked",
    "revocation.bulk",
    "user.disabled",
    "user.deleted",
    "user.role_changed",
    "user.password_changed",
];

pub fn is_revocation(action: &str) -> bool {
    REVOCATION_ACTIONS.contains(&action)
}

/// Appends an audit event (and, for a revocation, its webhook delivery). Never given a token or a password.
pub fn record(
    conn: &mut DbConnection,
    actor: &Actor,
    action: &str,
    identity_id: Option<i64>,
    token_id: Option<&str>,
    reason: Option<&str>,
    detail: Value,
) -> Result<(), ApiError> {
    let now = time::now();
    if is_revocation(action) {
        crate::notify::revocation(conn, now, action, identity_id, token_id, reason, &detail)?;
    }
    let detail = match detail {
        Value::Object(map) if map.is_empty() => None,
        Value::Null => None,
        other => Some(other.to_string()),
    };
    audit::insert(
        conn,
        &NewAuditEvent {
            occurred_at: time::to_db(now),
            actor_id: actor.identity_id,
            action: action.to_owned(),
            identity_id,
            token_id: token_id.map(str::to_owned),
            reason: reason.map(str::to_owned),
            remote_addr: actor.remote_addr.clone(),
            detail,
        },
    )?;
    Ok(())
}
