//! The `audit_event` table: who did what to which credential, and when.

use diesel::prelude::*;

use crate::db::models::NewAuditEvent;
use crate::db::schema::audit_event;
use crate::db::DbConnection;

pub fn insert(conn: &mut DbConnection, event: &NewAuditEvent) -> QueryResult<usize> {
    diesel::insert_into(audit_event::table)
        .values(event)
        .execute(conn)
}
