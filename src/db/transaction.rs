//! Write transactions and request deadlines: [`write_transaction`] (SQLite `BEGIN IMMEDIATE`
//! behind one in-process queue, PostgreSQL a plain transaction, the commit without a statement
//! timeout), and [`with_deadline`], which rolls a write back instead of committing it after
//! its caller stopped waiting.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::DbConnection;

thread_local! {
    /// When the request this thread works for stops waiting (see [`with_deadline`]).
    static DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Restores the thread's previous deadline, also when the work panics (the blocking thread
/// lives on and serves other callers).
struct DeadlineGuard(Option<Instant>);

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}

/// The message of a write rolled back because its caller stopped waiting.
pub const DEADLINE_PASSED: &str = "deadline passed before the commit; rolled back";

/// Runs `f` (on a blocking thread) for a caller who waits until `deadline`: a write
/// transaction that reaches its commit after it rolls back instead, so a request answered
/// 503 for taking too long never takes effect later (a frozen connection that thaws).
pub fn with_deadline<T>(deadline: Instant, f: impl FnOnce() -> T) -> T {
    let _restore = DeadlineGuard(DEADLINE.with(|d| d.replace(Some(deadline))));
    f()
}

fn past_deadline() -> bool {
    DEADLINE
        .with(|d| d.get())
        .is_some_and(|d| Instant::now() >= d)
}

/// The queue of this process's SQLite writers (see [`write_transaction`]).
static SQLITE_WRITER: Mutex<()> = Mutex::new(());

/// Runs `f` in a write transaction.
///
/// SQLite: `BEGIN IMMEDIATE`, so the write lock is taken up front and waits on
/// `busy_timeout`, instead of failing with SQLITE_BUSY when a read-started transaction later
/// needs to write. PostgreSQL: a plain transaction; callers lock the rows they change.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    // SQLite has one writer at a time. Writers of this process queue here, woken the moment
    // the previous one commits, instead of polling the file lock through `busy_timeout`
    // (which sleeps up to 100 ms between tries and gave issuing a p99 of seconds under load).
    // `busy_timeout` still arbitrates with other processes (the CLI).
    let _writer = match conn {
        DbConnection::Sqlite(c) => {
            let guard = SQLITE_WRITER.lock().unwrap_or_else(PoisonError::into_inner);
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
            Some(guard)
        }
        DbConnection::Pg(_) => {
            DbConnection::begin_transaction(conn)?;
            None
        }
    };
    match f(conn) {
        Ok(_) if past_deadline() => {
            let _ = DbConnection::rollback_transaction(conn);
            Err(diesel::result::Error::QueryBuilderError(DEADLINE_PASSED.into()).into())
        }
        Ok(value) => match unbounded_commit(conn) {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = DbConnection::rollback_transaction(conn);
                Err(e.into())
            }
        },
        Err(e) => {
            if let Err(rollback) = DbConnection::rollback_transaction(conn) {
                log::error!("rollback failed: {rollback}");
            }
            Err(e)
        }
    }
}

/// Commits. On PostgreSQL the statement timeout is lifted for the commit first: a commit
/// that waits for a synchronous standby and is cancelled by the timeout has committed
/// locally anyway (PostgreSQL only warns), and acknowledging it would promise a durability the
/// standby does not have. The request deadline still answers the caller.
fn unbounded_commit(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    if let DbConnection::Pg(c) = conn {
        c.batch_execute("SET LOCAL statement_timeout = 0")?;
    }
    DbConnection::commit_transaction(conn)
}
