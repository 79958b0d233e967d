//! The database's clock and write state: deletions and leases decide by the database's
//! `now()`, so one replica with a wrong clock cannot delete what is still live for the others.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Timestamp};

use crate::db::DbConnection;

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = Timestamp)]
    now: NaiveDateTime,
}

#[derive(QueryableByName)]
struct ReadOnly {
    #[diesel(sql_type = Bool)]
    read_only: bool,
}

/// The database's current time (UTC). SQLite has no server: its clock is this host's, the
/// one every process sharing the file reads.
pub fn now(conn: &mut DbConnection) -> QueryResult<NaiveDateTime> {
    match conn {
        DbConnection::Pg(c) => {
            diesel::sql_query("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::timestamp AS now")
                .get_result::<Now>(c)
                .map(|r| r.now)
        }
        DbConnection::Sqlite(_) => Ok(crate::time::to_db(crate::time::now())),
    }
}

/// Whether this PostgreSQL session cannot write (a standby in recovery, or read-only by
/// default).
pub fn read_only(c: &mut diesel::PgConnection) -> QueryResult<bool> {
    diesel::sql_query(
        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only",
    )
    .get_result::<ReadOnly>(c)
    .map(|r| r.read_only)
}
