//! The `signing_key` table.

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
