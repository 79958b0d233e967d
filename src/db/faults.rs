//! Which database failures are storage faults (the database cannot serve now: unreachable,
//! frozen past its deadline, full, read-only, in recovery, locked) rather than bugs. Storage
//! faults answer 503 `storage_unavailable`; everything else stays a logged 500.
//!
//! diesel does not expose SQLSTATEs or SQLite result codes for every case, so besides its
//! error kinds the messages of libpq and SQLite are matched; these texts are stable parts of
//! both (they are what operators search for).

use diesel::result::{DatabaseErrorKind, Error};

use super::DbError;

/// Fragments of PostgreSQL (libpq) and SQLite messages that mean "storage cannot serve now".
const FAULT_MESSAGES: &[&str] = &[
    // tokend's own request deadline (see `db::with_deadline`).
    super::DEADLINE_PASSED,
    // PostgreSQL: deadlines, restarts, failover, network.
    "canceling statement due to statement timeout",
    "canceling statement due to lock timeout",
    "terminating connection",
    "the database system is",
    "server closed the connection",
    "could not receive data from server",
    "could not send data to server",
    "connection to server",
    "no connection to the server",
    "connection timed out",
    "ssl connection has been closed",
    "in a read-only transaction",
    "during recovery",
    "recovery is in progress",
    "could not extend file",
    "no space left on device",
    // SQLite: full disk, read-only file system or file, locks held past busy_timeout, I/O.
    "database or disk is full",
    "attempt to write a readonly database",
    "readonly database",
    "disk i/o error",
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "file is not a database",
];

/// Whether a diesel error is a storage fault.
pub fn is_fault(err: &Error) -> bool {
    match err {
        Error::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::ReadOnlyTransaction => true,
            _ => message_is_fault(info.message()),
        },
        Error::BrokenTransactionManager => true,
        // A commit that failed and whose rollback failed too: a connection lost at COMMIT.
        Error::RollbackErrorOnCommit {
            commit_error,
            rollback_error,
        } => is_fault(commit_error) || is_fault(rollback_error),
        Error::QueryBuilderError(e) => message_is_fault(&e.to_string()),
        _ => false,
    }
}

fn message_is_fault(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    FAULT_MESSAGES.iter().any(|m| lower.contains(m))
}

impl DbError {
    /// Whether this failure means storage cannot serve now (503), not a bug (500).
    pub fn is_storage_fault(&self) -> bool {
        match self {
            DbError::Pool(_) | DbError::Connection(_) | DbError::Unavailable(_) => true,
            DbError::Query(e) => is_fault(e),
            DbError::Migration(_) | DbError::Corrupt(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_faults_are_told_from_bugs() {
        for m in [
            "database or disk is full",
            "attempt to write a readonly database",
            "ERROR: canceling statement due to statement timeout",
            "cannot execute INSERT in a read-only transaction",
            "terminating connection due to administrator command",
        ] {
            assert!(message_is_fault(m), "{m}");
        }
        for m in ["UNIQUE constraint failed: identity.id", "syntax error"] {
            assert!(!message_is_fault(m), "{m}");
        }
        assert!(!is_fault(&Error::NotFound));
    }
}
