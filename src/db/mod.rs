//! Storage: one diesel connection type for PostgreSQL and SQLite, an r2d2 pool, embedded
//! migrations and the queries. Only this module knows diesel.
//!
//! Queries are synchronous; callers run them on the blocking pool (`web::block`).
//! Where a query must differ per backend, it is one explicit `match` arm with a comment.

pub mod coalesce;
pub mod deadlines;
pub mod faults;
pub mod group_commit;
pub mod models;
pub mod queries;
pub mod schema;
mod transaction;

use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::ExposeSecret;

use crate::config::{ensure_parent_dir, keep_private, Database};
use crate::error::ApiError;

pub use transaction::{with_deadline, write_transaction, DEADLINE_PASSED};

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
    /// Storage cannot serve now, for a reason tokend found itself (a vanished SQLite file, a
    /// deadline passed).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// How a storage failure reaches a client: `storage_unavailable` when storage cannot serve,
/// `internal_error` otherwise (the cause goes to the log, never to the client).
impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        if err.is_storage_fault() {
            ApiError::unavailable("database", &err)
        } else {
            ApiError::internal("database", &err)
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        ApiError::from(DbError::Query(err))
    }
}

/// Opens connections of the configured backend: PostgreSQL with deadlines (see
/// [`deadlines`]), SQLite with its pragmas, and only ever the file that was opened first.
#[derive(Debug, Clone)]
pub struct DbManager {
    database: Database,
    /// The SQLite file's identity (device, inode) once it was opened: a file deleted or
    /// replaced under a running tokend is refused instead of silently recreated empty, where
    /// acknowledged writes would vanish at the next restart.
    sqlite_file: std::sync::Arc<std::sync::OnceLock<(u64, u64)>>,
}

impl DbManager {
    pub fn new(database: Database) -> DbManager {
        DbManager {
            database,
            sqlite_file: Default::default(),
        }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Opens one connection outside the pool (migrations, advisory-lock holders).
    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.database {
            Database::Postgres { url } => {
                let url = url.expose_secret();
                let mut conn = diesel::PgConnection::establish(&deadlines::with_deadlines(url))
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                if !deadlines::sets_statement_timeout(url) {
                    conn.batch_execute(deadlines::STATEMENT_TIMEOUT_SQL)
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Pg(conn))
            }
            Database::Sqlite { path } => {
                if self.sqlite_file.get().is_some() {
                    self.check_sqlite_file(path)?;
                }
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                if let Some(identity) = file_identity(path) {
                    let _ = self.sqlite_file.set(identity);
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    /// SQLite: the file tokend opened first is still there under its name.
    fn check_sqlite_file(&self, path: &std::path::Path) -> Result<(), diesel::r2d2::Error> {
        let (Some(expected), now) = (self.sqlite_file.get(), file_identity(path)) else {
            return Ok(());
        };
        if now.as_ref() == Some(expected) {
            return Ok(());
        }
        let what = if now.is_none() {
            "vanished"
        } else {
            "was replaced"
        };
        Err(diesel::r2d2::Error::QueryError(
            diesel::result::Error::QueryBuilderError(
                format!(
                    "unable to open database file: the SQLite file {} {what} while tokend was running; \
                     restore it and restart tokend",
                    path.display()
                )
                .into(),
            ),
        ))
    }

    /// Whether storage can take writes now, and why not: PostgreSQL in recovery or read-only,
    /// a SQLite file that vanished, a read-only or full file system. Blocking.
    pub fn writable(&self, conn: &mut DbConnection) -> Result<(), String> {
        match (&self.database, conn) {
            (Database::Postgres { .. }, DbConnection::Pg(c)) => {
                if queries::clock::read_only(c).map_err(|e| e.to_string())? {
                    Err("PostgreSQL is read-only here (a standby in recovery, or default_transaction_read_only)".into())
                } else {
                    Ok(())
                }
            }
            (Database::Sqlite { path }, _) => {
                self.check_sqlite_file(path).map_err(|e| e.to_string())?;
                sqlite_space(path)
            }
            _ => Ok(()),
        }
    }
}

/// (device, inode) of a file, `None` when it does not exist.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Free space below this, and SQLite's next page allocation is likely to fail.
const MIN_FREE_BYTES: u64 = 1 << 20;

/// In-memory and URI databases: no file of that name to watch.
fn is_special_sqlite(path: &std::path::Path) -> bool {
    let shown = path.to_string_lossy();
    shown == ":memory:" || shown.starts_with("file:")
}

/// The SQLite file's file system is writable and has room.
fn sqlite_space(path: &std::path::Path) -> Result<(), String> {
    if is_special_sqlite(path) {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let stat =
        rustix::fs::statvfs(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        return Err(format!("{} is on a read-only file system", path.display()));
    }
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(format!(
            "the file system of {} is full ({free} bytes free)",
            path.display()
        ));
    }
    if rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_err() {
        return Err(format!("{} is not writable", path.display()));
    }
    Ok(())
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        DbManager::connect(self)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        if let (Database::Sqlite { path }, DbConnection::Sqlite(_)) = (&self.database, &*conn) {
            self.check_sqlite_file(path)?;
        }
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// Builds the pool and waits (up to `wait`) for the database to accept connections, so that
/// tokend can start before its database does (docker-compose, Kubernetes). A checkout waits
/// at most `checkout` for a connection, then fails (503 `storage_unavailable`).
pub fn connect_pool(
    manager: &DbManager,
    size: u32,
    checkout: Duration,
    wait: Duration,
) -> Result<Pool, DbError> {
    let database = manager.database();
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
        .connection_timeout(checkout)
        .build_unchecked(manager.clone());
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        match manager.connect() {
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
    // In-memory and URI databases have no file of that name.
    if is_special_sqlite(path) {
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
    run_migrations_with(conn, &mut |_, _, _| {})
}

/// [`run_migrations`], telling `step(done, pending, name)` before each migration (and once
/// with `done == pending` at the end), for `tokend migrate`'s progress bar.
pub fn run_migrations_with(
    conn: &mut DbConnection,
    step: &mut dyn FnMut(usize, usize, &str),
) -> Result<usize, DbError> {
    fn each<DB: diesel::backend::Backend>(
        c: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
        step: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let pending = c.pending_migrations(source)?;
        for (done, migration) in pending.iter().enumerate() {
            step(done, pending.len(), &migration.name().to_string());
            c.run_migration(migration)?;
        }
        step(pending.len(), pending.len(), "");
        Ok(pending.len())
    }
    let to_err = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Pg(c) => c.transaction(|c| {
            // A migration may rebuild an index on a large table: no statement timeout here.
            diesel::sql_query("SET LOCAL statement_timeout = 0").execute(c)?;
            diesel::sql_query("SELECT pg_advisory_xact_lock(7428661)").execute(c)?;
            each(c, PG_MIGRATIONS, step).map_err(to_err)
        }),
        DbConnection::Sqlite(c) => {
            c.immediate_transaction(|c| each(c, SQLITE_MIGRATIONS, step).map_err(to_err))
        }
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

/// A round trip to the database.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    conn.batch_execute("SELECT 1")
}
