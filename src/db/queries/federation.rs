//! Workload federation: the `federation_issuer`, `federated_subject` and `federation_replay`
//! tables, and the profile update of a workload's service account.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use crate::db::models::{FederatedSubjectRow, FederationIssuerFields, FederationIssuerRow};
use crate::db::schema::{federated_subject, federation_issuer, federation_replay, identity};
use crate::db::DbConnection;

/// Adds a trusted issuer; `None` when one with the same URL exists already.
pub fn insert_issuer(
    conn: &mut DbConnection,
    fields: &FederationIssuerFields,
    created_by: Option<i64>,
) -> QueryResult<Option<i64>> {
    let inserted = diesel::insert_into(federation_issuer::table)
        .values((
            fields,
            federation_issuer::created_at.eq(fields.updated_at),
            federation_issuer::created_by.eq(created_by),
        ))
        .returning(federation_issuer::id)
        .get_result(conn);
    unique(inserted)
}

/// A unique violation as `None`, so that callers above `db` need not know diesel's errors.
fn unique<T>(result: QueryResult<T>) -> QueryResult<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every trusted issuer, oldest first.
pub fn list_issuers(conn: &mut DbConnection) -> QueryResult<Vec<FederationIssuerRow>> {
    federation_issuer::table
        .select(FederationIssuerRow::as_select())
        .order(federation_issuer::id.asc())
        .load(conn)
}

pub fn find_issuer(conn: &mut DbConnection, id: i64) -> QueryResult<Option<FederationIssuerRow>> {
    federation_issuer::table
        .find(id)
        .select(FederationIssuerRow::as_select())
        .first(conn)
        .optional()
}

/// The trusted issuer with exactly this URL (`iss`).
pub fn find_issuer_by_url(
    conn: &mut DbConnection,
    issuer: &str,
) -> QueryResult<Option<FederationIssuerRow>> {
    federation_issuer::table
        .filter(federation_issuer::issuer.eq(issuer))
        .select(FederationIssuerRow::as_select())
        .first(conn)
        .optional()
}

/// Replaces an issuer's settings. `Ok(None)`: another issuer has that URL; `Ok(Some(0))`: no
/// such issuer.
pub fn update_issuer(
    conn: &mut DbConnection,
    id: i64,
    fields: &FederationIssuerFields,
) -> QueryResult<Option<usize>> {
    unique(
        diesel::update(federation_issuer::table.find(id))
            .set(fields)
            .execute(conn),
    )
}

pub fn delete_issuer(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(federation_issuer::table.find(id)).execute(conn)
}

/// The service account a workload was given, if any.
pub fn find_subject(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
) -> QueryResult<Option<FederatedSubjectRow>> {
    federated_subject::table
        .find((issuer, subject))
        .select(FederatedSubjectRow::as_select())
        .first(conn)
        .optional()
}

/// Maps a workload to its new service account; `None` when a concurrent first grant of the
/// same workload mapped it first.
pub fn insert_subject(
    conn: &mut DbConnection,
    row: &FederatedSubjectRow,
) -> QueryResult<Option<usize>> {
    unique(
        diesel::insert_into(federated_subject::table)
            .values(row)
            .execute(conn),
    )
}

/// The workloads mapped to service accounts, by issuer URL (for the issuer's listing).
pub fn count_subjects(conn: &mut DbConnection, issuer: &str) -> QueryResult<i64> {
    federated_subject::table
        .filter(federated_subject::issuer.eq(issuer))
        .count()
        .get_result(conn)
}

/// Sets the name, scope and metadata of a workload's service account to what its rule gives
/// now. Returns 0 when the account is gone.
pub fn set_profile(
    conn: &mut DbConnection,
    identity_id: i64,
    name: &str,
    scope: &str,
    metadata: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(identity::table.find(identity_id))
        .set((
            identity::name.eq(name),
            identity::scope.eq(scope),
            identity::metadata.eq(metadata),
            identity::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Counts one use of an external token against its limit: `true` when this use is within
/// `max_uses`, `false` when the token was used that often already. Counted in the database,
/// so the limit holds across replicas; the caller's transaction rolls the count back if the
/// grant fails after all.
pub fn count_use(
    conn: &mut DbConnection,
    replay_key: &str,
    expires_at: NaiveDateTime,
    max_uses: i64,
) -> QueryResult<bool> {
    let row = (
        federation_replay::replay_key.eq(replay_key),
        federation_replay::uses.eq(0i64),
        federation_replay::expires_at.eq(expires_at),
    );
    // Insert-if-absent is spelt per backend (diesel has no portable ON CONFLICT). Concurrent
    // first uses on PostgreSQL: the second insert waits on the unique index for the first
    // transaction, then does nothing; the UPDATE below re-reads the committed count.
    match conn {
        DbConnection::Pg(c) => diesel::insert_into(federation_replay::table)
            .values(row)
            .on_conflict(federation_replay::replay_key)
            .do_nothing()
            .execute(c)?,
        DbConnection::Sqlite(c) => diesel::insert_into(federation_replay::table)
            .values(row)
            .on_conflict(federation_replay::replay_key)
            .do_nothing()
            .execute(c)?,
    };
    let counted = diesel::update(
        federation_replay::table
            .filter(federation_replay::replay_key.eq(replay_key))
            .filter(federation_replay::uses.lt(max_uses)),
    )
    .set(federation_replay::uses.eq(federation_replay::uses + 1))
    .execute(conn)?;
    Ok(counted == 1)
}

/// Deletes up to `batch` use counts of external tokens that expired before `cutoff`.
pub fn delete_expired_replays_batch(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let keys: Vec<String> = federation_replay::table
        .filter(federation_replay::expires_at.lt(cutoff))
        .select(federation_replay::replay_key)
        .limit(batch)
        .load(conn)?;
    let mut deleted = 0;
    for chunk in keys.chunks(500) {
        deleted += diesel::delete(
            federation_replay::table.filter(federation_replay::replay_key.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(deleted)
}
