//! The `oauth_client_secret` and `oauth_client_key` tables: the client credentials of service
//! accounts (secret hashes, and public keys for client assertions).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::{ClientKeyRow, ClientSecretRow};
use crate::db::schema::{oauth_client_key, oauth_client_secret};
use crate::db::DbConnection;

pub fn insert(conn: &mut DbConnection, row: &ClientSecretRow) -> QueryResult<usize> {
    diesel::insert_into(oauth_client_secret::table)
        .values(row)
        .execute(conn)
}

/// Every secret of an account, newest first.
pub fn of_identity(conn: &mut DbConnection, identity_id: i64) -> QueryResult<Vec<ClientSecretRow>> {
    oauth_client_secret::table
        .filter(oauth_client_secret::identity_id.eq(identity_id))
        .select(ClientSecretRow::as_select())
        .order((
            oauth_client_secret::created_at.desc(),
            oauth_client_secret::secret_id.asc(),
        ))
        .load(conn)
}

/// The secrets of an account that still work at `now` (unrevoked, unexpired).
pub fn live_of_identity(
    conn: &mut DbConnection,
    identity_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Vec<ClientSecretRow>> {
    oauth_client_secret::table
        .filter(oauth_client_secret::identity_id.eq(identity_id))
        .filter(oauth_client_secret::revoked_at.is_null())
        .filter(oauth_client_secret::expires_at.gt(now))
        .select(ClientSecretRow::as_select())
        .load(conn)
}

/// Shortens the life of every other live secret of an account to `until` (rotation's overlap).
/// Returns how many were shortened.
pub fn shorten_others(
    conn: &mut DbConnection,
    identity_id: i64,
    keep: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        oauth_client_secret::table
            .filter(oauth_client_secret::identity_id.eq(identity_id))
            .filter(oauth_client_secret::secret_id.ne(keep))
            .filter(oauth_client_secret::revoked_at.is_null())
            .filter(oauth_client_secret::expires_at.gt(now))
            .filter(oauth_client_secret::expires_at.gt(until)),
    )
    .set(oauth_client_secret::expires_at.eq(until))
    .execute(conn)
}

/// Marks a secret revoked. Returns 0 when it is not the account's, or already revoked.
pub fn revoke(
    conn: &mut DbConnection,
    identity_id: i64,
    secret_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        oauth_client_secret::table
            .filter(oauth_client_secret::identity_id.eq(identity_id))
            .filter(oauth_client_secret::secret_id.eq(secret_id))
            .filter(oauth_client_secret::revoked_at.is_null()),
    )
    .set(oauth_client_secret::revoked_at.eq(Some(now)))
    .execute(conn)
}

pub fn find(
    conn: &mut DbConnection,
    identity_id: i64,
    secret_id: &str,
) -> QueryResult<Option<ClientSecretRow>> {
    oauth_client_secret::table
        .filter(oauth_client_secret::identity_id.eq(identity_id))
        .filter(oauth_client_secret::secret_id.eq(secret_id))
        .select(ClientSecretRow::as_select())
        .first(conn)
        .optional()
}

/// The account's registered public keys, if any.
pub fn key_of_identity(
    conn: &mut DbConnection,
    identity_id: i64,
) -> QueryResult<Option<ClientKeyRow>> {
    oauth_client_key::table
        .find(identity_id)
        .select(ClientKeyRow::as_select())
        .first(conn)
        .optional()
}

/// Registers (or replaces) the account's public keys.
pub fn upsert_key(conn: &mut DbConnection, row: &ClientKeyRow) -> QueryResult<usize> {
    diesel::delete(oauth_client_key::table.find(row.identity_id)).execute(conn)?;
    diesel::insert_into(oauth_client_key::table)
        .values(row)
        .execute(conn)
}

/// Forgets the account's public keys. Returns 0 when there were none.
pub fn delete_key(conn: &mut DbConnection, identity_id: i64) -> QueryResult<usize> {
    diesel::delete(oauth_client_key::table.find(identity_id)).execute(conn)
}

/// Whether a secret of the account is unrevoked and unexpired at `now`, holding a shared lock
/// on its row (PostgreSQL; SQLite's write transaction excludes other writers anyway).
pub fn share_lock_live(
    conn: &mut DbConnection,
    identity_id: i64,
    secret_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let query = oauth_client_secret::table
        .filter(oauth_client_secret::identity_id.eq(identity_id))
        .filter(oauth_client_secret::secret_id.eq(secret_id))
        .filter(oauth_client_secret::revoked_at.is_null())
        .filter(oauth_client_secret::expires_at.gt(now))
        .select(oauth_client_secret::secret_id);
    // One arm per backend: only PostgreSQL has FOR SHARE.
    let found = match conn {
        DbConnection::Pg(c) => query.for_share().first::<String>(c).optional()?,
        DbConnection::Sqlite(c) => query.first::<String>(c).optional()?,
    };
    Ok(found.is_some())
}
