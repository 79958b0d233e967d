//! Storage: one diesel connection type for PostgreSQL and SQLite, an r2d2 pool, embedded
//! migrations and the queries. Only this module knows diesel.
//!
//! Queries are synchronous; callers run them on the blocking pool (`web::block`).
//! Where a query must differ per backend, it is one explicit `match` arm with a comment.

pub mod models;
pub mod queries;
pub mod schema;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use crate::config::{ensure_parent_dir, keep_private, Database};

/// A connection to either backend. SQLite is last: it accepts any string as a path.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<DbManager>;
pub type PooledConn = r2d2::PooledConnection<DbManager>;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Applied to every pooled SQLite connection. `synchronous = FULL`: a revocation that was
/// acknowledged survives a power loss, not only a crash of the process.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// Everything that can go wrong below the service layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection available")]
    Pool(#[from] r2d2::Error),
    #[error("query failed")]
    Query(#[from] diesel::result::Error),
    #[error("cannot connect to the database")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

/// Opens connections of the configured backend, with SQLite pragmas applied to each.
#[derive(Debug, Clone)]
pub struct DbManager {
    database: Database,
}

impl DbManager {
    pub fn new(database: Database) -> DbManager {
        DbManager { database }
    }

    /// Opens one connection outside the pool (migrations, advisory-lock holders).
    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.database {
            Database::Postgres { url } => diesel::PgConnection::establish(url.expose_secret())
                .map(DbConnection::Pg)
                .map_err(diesel::r2d2::Error::ConnectionError),
            Database::Sqlite { path } => {
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        DbManager::connect(self)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Builds the pool and waits (up to `wait`) for the database to accept connections, so that
/// tokend can start before its database does (docker-compose, Kubernetes).
pub fn connect_pool(database: &Database, size: u32, wait: Duration) -> Result<Pool, DbError> {
    if let Database::Sqlite { path } = database {
        ensure_parent_dir(path).map_err(|e| {
            DbError::Migration(format!(
                "cannot create the directory for {}: {e}",
                path.display()
            ))
        })?;
        keep_sqlite_private(path)?;
    }
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .build_unchecked(DbManager::new(database.clone()));
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        match DbManager::new(database.clone()).connect() {
            Ok(_) => return Ok(pool),
            Err(e) if Instant::now() < deadline => {
                if !announced {
                    log::warn!("waiting for the database at {database}: {e}");
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(DbError::Migration(format!(
                    "the database at {database} did not answer within {}s: {e}",
                    wait.as_secs()
                )))
            }
        }
    }
}

/// The database holds password hashes, sealed keys and the audit trail: its file is created
/// 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` files the same mode), and
/// existing files open to others are tightened.
fn keep_sqlite_private(path: &std::path::Path) -> Result<(), DbError> {
    let shown = path.to_string_lossy();
    // In-memory and URI databases have no file of that name.
    if shown == ":memory:" || shown.starts_with("file:") {
        return Ok(());
    }
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    for (file, create) in [
        (path.to_path_buf(), true),
        (with_suffix("-wal"), false),
        (with_suffix("-shm"), false),
    ] {
        keep_private(&file, create).map_err(|e| {
            DbError::Migration(format!("cannot restrict access to {}: {e}", file.display()))
        })?;
    }
    Ok(())
}

/// Applies pending migrations. Safe when several processes start at once: PostgreSQL
/// serialises them with an advisory lock, SQLite with an immediate (write-locked) transaction.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, DbError> {
    let to_err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Pg(c) => c.transaction(|c| {
            diesel::sql_query("SELECT pg_advisory_xact_lock(7428661)").execute(c)?;
            c.run_pending_migrations(PG_MIGRATIONS)
                .map(|v| v.len())
                .map_err(to_err)
        }),
        DbConnection::Sqlite(c) => c.immediate_transaction(|c| {
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.len())
                .map_err(to_err)
        }),
    }
}

impl From<DbError> for diesel::result::Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query(q) => q,
            other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
        }
    }
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
        Ok(value) => match DbConnection::commit_transaction(conn) {
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

/// A round trip to the database.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}
