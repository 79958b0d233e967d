//! Coordination between replicas: advisory locks (PostgreSQL) and run leases.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};

use crate::db::schema::worker_lease;
use crate::db::DbConnection;

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Tries to take a session-level advisory lock on PostgreSQL; held until [`unlock`] or until
/// the connection closes (so a crashed holder never keeps it). SQLite is one machine's file
/// and its writes are already serialised: always `true`.
pub fn try_lock(conn: &mut DbConnection, key: i64) -> QueryResult<bool> {
    match conn {
        DbConnection::Pg(c) => diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<BigInt, _>(key)
            .get_result::<Locked>(c)
            .map(|r| r.locked),
        DbConnection::Sqlite(_) => Ok(true),
    }
}

pub fn unlock(conn: &mut DbConnection, key: i64) -> QueryResult<()> {
    match conn {
        DbConnection::Pg(c) => diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
            .bind::<BigInt, _>(key)
            .get_result::<Locked>(c)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// Records a run of the job `name` unless one was recorded after `not_after`. Returns
/// whether this caller should run. Call it inside a write transaction, under the job's lock.
/// A run recorded after `implausible` (in the future: written by a host whose clock ran
/// ahead) is not believed, so it cannot starve the job.
pub fn claim_run(
    conn: &mut DbConnection,
    name: &str,
    now: NaiveDateTime,
    not_after: NaiveDateTime,
    implausible: NaiveDateTime,
    holder: &str,
) -> QueryResult<bool> {
    let last: Option<NaiveDateTime> = worker_lease::table
        .find(name)
        .select(worker_lease::last_run_at)
        .first(conn)
        .optional()?;
    match last {
        Some(last) if last > not_after && last <= implausible => Ok(false),
        Some(_) => diesel::update(worker_lease::table.find(name))
            .set((
                worker_lease::last_run_at.eq(now),
                worker_lease::holder.eq(holder),
            ))
            .execute(conn)
            .map(|_| true),
        None => diesel::insert_into(worker_lease::table)
            .values((
                worker_lease::name.eq(name),
                worker_lease::last_run_at.eq(now),
                worker_lease::holder.eq(holder),
            ))
            .execute(conn)
            .map(|_| true),
    }
}
