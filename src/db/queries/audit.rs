//! The `audit_event` table: who did what to which credential, and when.

use diesel::prelude::*;

use crate::db::models::{AuditEventRow, NewAuditEvent};
use crate::db::schema::audit_event;
use crate::db::DbConnection;

/// Inserts events (see `insert_rows!`).
pub fn insert_many(conn: &mut DbConnection, events: &[NewAuditEvent]) -> QueryResult<usize> {
    insert_rows!(conn, audit_event::table, events)
}

/// Filters of an audit listing; events come newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub identity_id: Option<i64>,
    pub actor_id: Option<i64>,
    pub action: Option<String>,
    /// Only events with an id below this (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub fn list(conn: &mut DbConnection, f: &AuditFilter) -> QueryResult<Vec<AuditEventRow>> {
    let mut q = audit_event::table.into_boxed();
    if let Some(id) = f.identity_id {
        q = q.filter(audit_event::identity_id.eq(id));
    }
    if let Some(id) = f.actor_id {
        q = q.filter(audit_event::actor_id.eq(id));
    }
    if let Some(action) = &f.action {
        q = q.filter(audit_event::action.eq(action));
    }
    if let Some(before) = f.before_id {
        q = q.filter(audit_event::id.lt(before));
    }
    q.select(AuditEventRow::as_select())
        .order(audit_event::id.desc())
        .limit(f.limit)
        .load(conn)
}
