//! The `identity` table: service accounts (and, later, users).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{IdentityRow, NewIdentity};
use crate::db::schema::identity;
use crate::db::{DbConnection, MultiBackend};

pub const SERVICE_ACCOUNT: &str = "service_account";
pub const USER: &str = "user";

pub fn insert(conn: &mut DbConnection, new: &NewIdentity<'_>) -> QueryResult<i64> {
    diesel::insert_into(identity::table)
        .values(new)
        .returning(identity::id)
        .get_result(conn)
}

/// Inserts identities and returns their rows, in the order given. PostgreSQL: one statement
/// (ids come from the sequence in the order of the VALUES list, so sorting by id restores
/// it); SQLite runs in-process, where a statement per row costs no round trip.
pub fn insert_many(
    conn: &mut DbConnection,
    new: &[NewIdentity<'_>],
) -> QueryResult<Vec<IdentityRow>> {
    match conn {
        DbConnection::Pg(c) => {
            let mut rows: Vec<IdentityRow> = diesel::insert_into(identity::table)
                .values(new)
                .returning(IdentityRow::as_returning())
                .get_results(c)?;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        }
        DbConnection::Sqlite(c) => new
            .iter()
            .map(|n| {
                diesel::insert_into(identity::table)
                    .values(n)
                    .returning(IdentityRow::as_returning())
                    .get_result(c)
            })
            .collect(),
    }
}

pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<IdentityRow>> {
    identity::table
        .find(id)
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

/// A user by login (stored lower-case).
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> QueryResult<Option<IdentityRow>> {
    identity::table
        .filter(identity::login.eq(login))
        .filter(identity::identity_type.eq(USER))
        .select(IdentityRow::as_select())
        .first(conn)
        .optional()
}

/// Every user not deleted, oldest first.
pub fn users(conn: &mut DbConnection) -> QueryResult<Vec<IdentityRow>> {
    identity::table
        .filter(identity::identity_type.eq(USER))
        .filter(identity::revoked_at.is_null())
        .select(IdentityRow::as_select())
        .order(identity::id.asc())
        .load(conn)
}

/// A user's role (and the metadata that mirrors it).
pub fn set_role(
    conn: &mut DbConnection,
    id: i64,
    role: &str,
    metadata: &str,
) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set((identity::role.eq(role), identity::metadata.eq(metadata)))
        .execute(conn)
}

pub fn set_disabled(
    conn: &mut DbConnection,
    id: i64,
    at: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set(identity::disabled_at.eq(at))
        .execute(conn)
}

pub fn set_password_hash(
    conn: &mut DbConnection,
    id: i64,
    hash: Option<&str>,
) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set(identity::password_hash.eq(hash))
        .execute(conn)
}

/// A deleted user's login is free for a new user, and no password can log in as them.
pub fn forget_login(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set((
            identity::login.eq(None::<String>),
            identity::password_hash.eq(None::<String>),
        ))
        .execute(conn)
}

/// Records when identities were last seen using a token (one statement per time bucket).
pub fn touch_last_used(
    conn: &mut DbConnection,
    ids: &[i64],
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let mut changed = 0;
    for chunk in ids.chunks(500) {
        changed += diesel::update(
            identity::table.filter(identity::id.eq_any(chunk)).filter(
                identity::last_used_at
                    .is_null()
                    .or(identity::last_used_at.lt(at)),
            ),
        )
        .set(identity::last_used_at.eq(at))
        .execute(conn)?;
    }
    Ok(changed)
}

/// Touches an unrevoked identity of the given type. As the first statement of a write
/// transaction this locks the row (PostgreSQL) so that issuing a token and revoking the
/// account serialise: a token is never issued to an account revoked concurrently.
/// Returns 0 when the identity is missing, of another type, revoked or disabled.
pub fn lock_unrevoked(
    conn: &mut DbConnection,
    id: i64,
    identity_type: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        identity::table
            .filter(identity::id.eq(id))
            .filter(identity::identity_type.eq(identity_type))
            .filter(identity::revoked_at.is_null())
            .filter(identity::disabled_at.is_null()),
    )
    .set(identity::updated_at.eq(now))
    .execute(conn)
}

/// Whether an identity of this type exists unrevoked and enabled, holding a *shared* lock on
/// its row (PostgreSQL) for the rest of the transaction: grants of one account run side by
/// side, while a revocation of it (an update) waits for them and then sees their tokens, and a
/// grant after it sees it revoked. The caller must not update the row in the same transaction
/// (two such upgrades deadlock). SQLite: the write transaction already excludes every other
/// writer.
pub fn share_lock_unrevoked(
    conn: &mut DbConnection,
    id: i64,
    identity_type: &str,
) -> QueryResult<bool> {
    let query = identity::table
        .filter(identity::id.eq(id))
        .filter(identity::identity_type.eq(identity_type))
        .filter(identity::revoked_at.is_null())
        .filter(identity::disabled_at.is_null())
        .select(identity::id);
    // One arm per backend: only PostgreSQL has FOR SHARE.
    let found = match conn {
        DbConnection::Pg(c) => query.for_share().first::<i64>(c).optional()?,
        DbConnection::Sqlite(c) => query.first::<i64>(c).optional()?,
    };
    Ok(found.is_some())
}

/// Brings an identity's `expires_at` forward to `exp` unless it is already within `slack` of
/// it: one short update a minute for a client that gets tokens all the time.
pub fn extend_expiry_coarse(
    conn: &mut DbConnection,
    id: i64,
    exp: NaiveDateTime,
    slack: chrono::Duration,
) -> QueryResult<usize> {
    diesel::update(
        identity::table
            .filter(identity::id.eq(id))
            // A revocation that raced the grant cleared it: leave it cleared.
            .filter(identity::revoked_at.is_null())
            .filter(
                identity::expires_at
                    .is_null()
                    .or(identity::expires_at.lt(exp - slack)),
            ),
    )
    .set(identity::expires_at.eq(exp))
    .execute(conn)
}

/// Touches an identity, revoked or not, locking its row (PostgreSQL) for the rest of the
/// transaction. Returns 0 when it is missing.
pub fn lock(conn: &mut DbConnection, id: i64, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set(identity::updated_at.eq(now))
        .execute(conn)
}

/// Marks an unrevoked identity revoked. Returns 0 if it was already revoked or is missing.
pub fn mark_revoked(
    conn: &mut DbConnection,
    id: i64,
    identity_type: &str,
    now: NaiveDateTime,
    reason: Option<&str>,
    revoked_by: Option<i64>,
) -> QueryResult<usize> {
    Ok(mark_revoked_many(conn, &[id], identity_type, now, reason, revoked_by)?.len())
}

/// [`mark_revoked`] for several identities at once; returns the ids it changed (the others
/// were revoked before, are of another type, or do not exist).
pub fn mark_revoked_many(
    conn: &mut DbConnection,
    ids: &[i64],
    identity_type: &str,
    now: NaiveDateTime,
    reason: Option<&str>,
    revoked_by: Option<i64>,
) -> QueryResult<Vec<i64>> {
    if matches!(conn, DbConnection::Sqlite(_)) {
        // SQLite keeps no statistics: against `id IN (…) AND identity_type = ?` it picks the
        // (identity_type, scope) index and walks every service account (measured: a batch of
        // revocations spent most of its time there). `+identity_type` keeps the type out of
        // index choice, so it takes the key (EXPLAIN QUERY PLAN: `USING INTEGER PRIMARY
        // KEY`). One statement for the batch: diesel prepares an UPDATE anew every time
        // (it never keeps one), and one per account was 7 % of a revocation's cycles.
        return diesel::update(
            identity::table
                .filter(identity::id.eq_any(ids))
                .filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("+identity_type = ")
                        .bind::<diesel::sql_types::Text, _>(identity_type),
                )
                .filter(identity::revoked_at.is_null()),
        )
        .set(revoked_columns(now, reason, revoked_by))
        .returning(identity::id)
        .get_results(conn);
    }
    diesel::update(
        identity::table
            .filter(identity::id.eq_any(ids))
            .filter(identity::identity_type.eq(identity_type))
            .filter(identity::revoked_at.is_null()),
    )
    .set(revoked_columns(now, reason, revoked_by))
    .returning(identity::id)
    .get_results(conn)
}

/// What revoking an account writes on its row.
#[allow(clippy::type_complexity)]
fn revoked_columns(
    now: NaiveDateTime,
    reason: Option<&str>,
    revoked_by: Option<i64>,
) -> (
    diesel::dsl::Eq<identity::revoked_at, NaiveDateTime>,
    diesel::dsl::Eq<identity::revocation_reason, Option<&str>>,
    diesel::dsl::Eq<identity::revoked_by, Option<i64>>,
    diesel::dsl::Eq<identity::updated_at, NaiveDateTime>,
    diesel::dsl::Eq<identity::expires_at, Option<NaiveDateTime>>,
) {
    (
        identity::revoked_at.eq(now),
        identity::revocation_reason.eq(reason),
        identity::revoked_by.eq(revoked_by),
        identity::updated_at.eq(now),
        identity::expires_at.eq(None::<NaiveDateTime>),
    )
}

/// Raises `expires_at` to `exp` if that is later than what is recorded.
pub fn extend_expiry(conn: &mut DbConnection, id: i64, exp: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        identity::table.filter(identity::id.eq(id)).filter(
            identity::expires_at
                .is_null()
                .or(identity::expires_at.lt(exp)),
        ),
    )
    .set(identity::expires_at.eq(exp))
    .execute(conn)
}

pub fn set_expiry(
    conn: &mut DbConnection,
    id: i64,
    exp: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    diesel::update(identity::table.filter(identity::id.eq(id)))
        .set(identity::expires_at.eq(exp))
        .execute(conn)
}

/// Which accounts a listing shows. `expires_at` is the latest expiry among an account's
/// unrevoked tokens, so an account without one has had every token revoked: it counts as
/// revoked, not expired (as `Account::from_row` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Not revoked and holding a token that has not expired.
    Active,
    /// Not revoked, but its latest unrevoked token has expired.
    Expired,
    /// The account was revoked, or every token it held was.
    Revoked,
    /// Active or expired (the default).
    NotRevoked,
    All,
}

#[derive(Debug, Clone)]
pub struct ListFilter {
    pub identity_type: &'static str,
    pub scope: Option<&'static str>,
    pub name: Option<String>,
    pub status: StatusFilter,
    /// Only accounts whose latest token expires after `now` and no later than this.
    pub expiring_before: Option<NaiveDateTime>,
    pub now: NaiveDateTime,
    pub limit: i64,
    pub offset: i64,
}

fn filtered(f: &ListFilter) -> identity::BoxedQuery<'_, MultiBackend> {
    let mut q = identity::table
        .filter(identity::identity_type.eq(f.identity_type))
        .into_boxed();
    if let Some(scope) = f.scope {
        q = q.filter(identity::scope.eq(scope));
    }
    if let Some(name) = &f.name {
        q = q.filter(identity::name.eq(name));
    }
    q = match f.status {
        StatusFilter::Active => q
            .filter(identity::revoked_at.is_null())
            .filter(identity::expires_at.gt(f.now)),
        StatusFilter::Expired => q
            .filter(identity::revoked_at.is_null())
            .filter(identity::expires_at.le(f.now)),
        StatusFilter::Revoked => q.filter(
            identity::revoked_at
                .is_not_null()
                .or(identity::expires_at.is_null()),
        ),
        StatusFilter::NotRevoked => q
            .filter(identity::revoked_at.is_null())
            .filter(identity::expires_at.is_not_null()),
        StatusFilter::All => q,
    };
    if let Some(before) = f.expiring_before {
        q = q
            .filter(identity::expires_at.gt(f.now))
            .filter(identity::expires_at.le(before));
    }
    q
}

/// One page of identities (oldest first, so pages stay stable as accounts are added) and
/// the total number matching the filter.
pub fn list(conn: &mut DbConnection, f: &ListFilter) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let total: i64 = filtered(f).count().get_result(conn)?;
    let rows = filtered(f)
        .select(IdentityRow::as_select())
        .order(identity::id.asc())
        .limit(f.limit)
        .offset(f.offset)
        .load(conn)?;
    Ok((rows, total))
}

/// The soonest expiry among a scope's active service accounts.
pub fn earliest_expiry(
    conn: &mut DbConnection,
    scope: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    identity::table
        .filter(identity::identity_type.eq(SERVICE_ACCOUNT))
        .filter(identity::scope.eq(scope))
        .filter(identity::revoked_at.is_null())
        .filter(identity::expires_at.gt(now))
        .select(diesel::dsl::min(identity::expires_at))
        .first(conn)
}
