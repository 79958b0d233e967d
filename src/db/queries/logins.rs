//! The `login_failure` table: recent login attempts not known to have succeeded.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use crate::db::schema::login_failure;
use crate::db::DbConnection;

/// Serialises attempts for one login inside a [`crate::db::write_transaction`], so parallel
/// attempts cannot all pass the lockout check. PostgreSQL: a transaction-scoped advisory lock
/// on the login; SQLite: the immediate transaction already holds the write lock.
pub fn lock_login(conn: &mut DbConnection, login: &str) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind::<Integer, _>(7_428_664)
            .bind::<Text, _>(login)
            .execute(c)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Times of the attempts for `login` since `since`, oldest first.
pub fn recent(
    conn: &mut DbConnection,
    login: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<NaiveDateTime>> {
    login_failure::table
        .filter(login_failure::login.eq(login))
        .filter(login_failure::failed_at.gt(since))
        .select(login_failure::failed_at)
        .order(login_failure::failed_at.asc())
        .load(conn)
}

/// Records an attempt (as failed until it is known to have succeeded); returns its id.
pub fn insert(
    conn: &mut DbConnection,
    login: &str,
    at: NaiveDateTime,
    remote_addr: Option<&str>,
) -> QueryResult<i64> {
    diesel::insert_into(login_failure::table)
        .values((
            login_failure::login.eq(login),
            login_failure::failed_at.eq(at),
            login_failure::remote_addr.eq(remote_addr),
        ))
        .returning(login_failure::id)
        .get_result(conn)
}

/// A successful login clears the login's failures.
pub fn clear(conn: &mut DbConnection, login: &str) -> QueryResult<usize> {
    diesel::delete(login_failure::table.filter(login_failure::login.eq(login))).execute(conn)
}

/// Forgets attempts older than `before`.
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_failure::table.filter(login_failure::failed_at.lt(before))).execute(conn)
}
