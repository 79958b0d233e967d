//! The `signing_key` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::SigningKeyRow;
use crate::db::schema::signing_key;
use crate::db::DbConnection;

/// Serialises key creation across replicas that start at the same time, inside a
/// [`crate::db::write_transaction`]. PostgreSQL: a transaction-scoped advisory lock.
/// SQLite: nothing more to do, the immediate transaction already holds the write lock.
pub fn lock_key_creation(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => diesel::sql_query("SELECT pg_advisory_xact_lock(7428662)")
            .execute(c)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Keys of an algorithm with one of the given statuses, newest first.
pub fn with_status(
    conn: &mut DbConnection,
    algorithm: &str,
    statuses: &[&str],
) -> QueryResult<Vec<SigningKeyRow>> {
    signing_key::table
        .filter(signing_key::algorithm.eq(algorithm))
        .filter(signing_key::status.eq_any(statuses))
        .select(SigningKeyRow::as_select())
        .order((signing_key::created_at.desc(), signing_key::kid.asc()))
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<usize> {
    diesel::insert_into(signing_key::table)
        .values(row)
        .execute(conn)
}

/// The keys that may verify (next, active, retiring), newest first.
pub fn verifying(conn: &mut DbConnection, algorithm: &str) -> QueryResult<Vec<SigningKeyRow>> {
    with_status(conn, algorithm, &["next", "active", "retiring"])
}

/// Every key, newest first (for `GET /keys`).
pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_key::table
        .select(SigningKeyRow::as_select())
        .order((signing_key::created_at.desc(), signing_key::kid.asc()))
        .load(conn)
}

pub fn set_status(
    conn: &mut DbConnection,
    kid: &str,
    status: &str,
    retire_after: Option<NaiveDateTime>,
    retired_at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(signing_key::table.find(kid))
        .set((
            signing_key::status.eq(status),
            signing_key::retire_after.eq(retire_after),
            signing_key::retired_at.eq(retired_at),
        ))
        .execute(conn)
}

pub fn activate(conn: &mut DbConnection, kid: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(signing_key::table.find(kid))
        .set((
            signing_key::status.eq("active"),
            signing_key::activated_at.eq(Some(now)),
        ))
        .execute(conn)
}

/// Retiring keys whose time is up become retired.
pub fn retire_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        signing_key::table
            .filter(signing_key::status.eq("retiring"))
            .filter(signing_key::retire_after.le(now)),
    )
    .set((
        signing_key::status.eq("retired"),
        signing_key::retired_at.eq(Some(now)),
    ))
    .execute(conn)
}
