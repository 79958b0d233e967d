//! The audit trail: one `audit_event` row for every change to a credential.
//!
//! Rows name the actor, the action, the account and token id, the reason and the remote
//! address; never a token or a password.

use serde_json::Value;

use crate::db::models::NewAuditEvent;
use crate::db::queries::{audit, notifications};
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
    record_many(
        conn,
        vec![Event {
            actor,
            action,
            identity_id,
            token_id: token_id.map(str::to_owned),
            reason,
            detail,
        }],
    )
}

/// One event for [`record_many`].
#[derive(Debug)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub identity_id: Option<i64>,
    pub token_id: Option<String>,
    pub reason: Option<&'a str>,
    pub detail: Value,
}

/// [`record`] for several events: on PostgreSQL one statement for the events and one for
/// the revocations' webhook deliveries, however many there are.
pub fn record_many(conn: &mut DbConnection, events: Vec<Event<'_>>) -> Result<(), ApiError> {
    let now = time::now();
    let deliveries: Vec<_> = events
        .iter()
        .filter(|e| is_revocation(e.action))
        .map(|e| {
            crate::notify::revocation_delivery(
                now,
                e.action,
                e.identity_id,
                e.token_id.as_deref(),
                e.reason,
                &e.detail,
            )
        })
        .collect();
    if !deliveries.is_empty() {
        notifications::insert_pending(conn, &deliveries, time::to_db(now))?;
    }
    let rows: Vec<NewAuditEvent> = events
        .into_iter()
        .map(|e| NewAuditEvent {
            occurred_at: time::to_db(now),
            actor_id: e.actor.identity_id,
            action: e.action.to_owned(),
            identity_id: e.identity_id,
            token_id: e.token_id,
            reason: e.reason.map(str::to_owned),
            remote_addr: e.actor.remote_addr.clone(),
            detail: match e.detail {
                Value::Object(map) if map.is_empty() => None,
                Value::Null => None,
                other => Some(other.to_string()),
            },
        })
        .collect();
    audit::insert_many(conn, &rows)?;
    Ok(())
}
