//! Queries, grouped by table. Every function takes a connection and runs synchronously.

/// Rows a multi-row INSERT takes on PostgreSQL: it binds at most 65,535 parameters a
/// statement, and no table written this way has more than 13 columns.
pub const PG_ROWS_PER_STATEMENT: usize = 5_000;

/// Inserts a slice of rows into a table, for `usize` rows inserted: one multi-row statement
/// per [`PG_ROWS_PER_STATEMENT`] rows on PostgreSQL (each statement is a round trip), one
/// statement per row on SQLite (in-process, so a statement costs no round trip). The
/// multi-backend connection has no batch insert of its own.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::db::DbConnection::Pg(c) => $rows
                .chunks($crate::db::queries::PG_ROWS_PER_STATEMENT)
                .try_fold(0, |n, chunk| {
                    Ok(n + diesel::insert_into($table).values(chunk).execute(c)?)
                }),
            $crate::db::DbConnection::Sqlite(c) => $rows.iter().try_fold(0, |n, row| {
                Ok(n + diesel::insert_into($table).values(row).execute(c)?)
            }),
        }
    };
}

pub mod audit;
pub mod client_secrets;
pub mod clock;
pub mod federation;
pub mod identities;
pub mod keys;
pub mod locks;
pub mod notifications;
pub mod revocations;
pub mod rules;
pub mod tokens;
