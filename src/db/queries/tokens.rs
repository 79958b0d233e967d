//! The `issued_token` table: one row per token issued (id, times, fingerprint; never the token).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::IssuedTokenRow;
use crate::db::schema::issued_token;
use crate::db::DbConnection;

pub fn insert(conn: &mut DbConnection, row: &IssuedTokenRow) -> QueryResult<usize> {
    diesel::insert_into(issued_token::table)
        .values(row)
        .execute(conn)
}

/// Inserts token rows (see `insert_rows!`).
pub fn insert_many(conn: &mut DbConnection, rows: &[IssuedTokenRow]) -> QueryResult<usize> {
    insert_rows!(conn, issued_token::table, rows)
}

pub fn find(conn: &mut DbConnection, jti: &str) -> QueryResult<Option<IssuedTokenRow>> {
    issued_token::table
        .find(jti)
        .select(IssuedTokenRow::as_select())
        .first(conn)
        .optional()
}

/// The recorded tokens with these ids (500 per statement).
pub fn find_many(conn: &mut DbConnection, jtis: &[String]) -> QueryResult<Vec<IssuedTokenRow>> {
    let mut out = Vec::new();
    for chunk in jtis.chunks(500) {
        out.extend(
            issued_token::table
                .filter(issued_token::jti.eq_any(chunk))
                .select(IssuedTokenRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Locks a token's row for the rest of the transaction (a no-op update), so a concurrent
/// revocation of it is waited for, not read past. Returns 0 when it is missing.
pub fn lock(conn: &mut DbConnection, jti: &str) -> QueryResult<usize> {
    diesel::update(issued_token::table.find(jti))
        .set(issued_token::revoked_at.eq(issued_token::revoked_at))
        .execute(conn)
}

/// Every recorded token of an identity, newest first.
pub fn of_identity(conn: &mut DbConnection, identity_id: i64) -> QueryResult<Vec<IssuedTokenRow>> {
    issued_token::table
        .filter(issued_token::identity_id.eq(identity_id))
        .select(IssuedTokenRow::as_select())
        .order((issued_token::issued_at.desc(), issued_token::jti.asc()))
        .load(conn)
}

/// Unrevoked tokens of an identity that still verify (expiry after `cutoff`).
pub fn live_of_identity(
    conn: &mut DbConnection,
    identity_id: i64,
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<IssuedTokenRow>> {
    live_of_identities(conn, &[identity_id], cutoff)
}

/// [`live_of_identity`] for several identities (at most a few hundred: one batch).
pub fn live_of_identities(
    conn: &mut DbConnection,
    identity_ids: &[i64],
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<IssuedTokenRow>> {
    issued_token::table
        .filter(issued_token::identity_id.eq_any(identity_ids))
        .filter(issued_token::revoked_at.is_null())
        .filter(issued_token::expires_at.gt(cutoff))
        .select(IssuedTokenRow::as_select())
        .load(conn)
}

/// Unrevoked tokens of a refresh family that still verify (expiry after `cutoff`).
pub fn live_of_family(
    conn: &mut DbConnection,
    family_id: &str,
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<IssuedTokenRow>> {
    issued_token::table
        // A token issued before families were recorded has none, and founds one under its
        // own id for the tokens refreshed from it.
        .filter(
            issued_token::family_id
                .eq(family_id)
                .or(issued_token::jti.eq(family_id)),
        )
        .filter(issued_token::revoked_at.is_null())
        .filter(issued_token::expires_at.gt(cutoff))
        .select(IssuedTokenRow::as_select())
        .load(conn)
}

/// Live tokens obtained by token exchange from any token of a family (they found families of
/// their own, so a refresh's `revoke_current` does not take them, but revoking the family does).
pub fn live_exchanged_from_family(
    conn: &mut DbConnection,
    family_id: &str,
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<IssuedTokenRow>> {
    // Every member of the family, revoked or not: an exchanged token outlives its parent's
    // routine rotation.
    let members: Vec<String> = issued_token::table
        .filter(
            issued_token::family_id
                .eq(family_id)
                .or(issued_token::jti.eq(family_id)),
        )
        .select(issued_token::jti)
        .load(conn)?;
    let mut out = Vec::new();
    for chunk in members.chunks(500) {
        out.extend(
            issued_token::table
                .filter(issued_token::parent_jti.eq_any(chunk))
                .filter(issued_token::family_id.ne(family_id))
                .filter(issued_token::revoked_at.is_null())
                .filter(issued_token::expires_at.gt(cutoff))
                .select(IssuedTokenRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Marks the given tokens revoked (those not revoked already). Returns how many changed.
pub fn mark_revoked(
    conn: &mut DbConnection,
    jtis: &[String],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let mut changed = 0;
    // Chunked: SQLite limits the number of bound parameters per statement.
    for chunk in jtis.chunks(500) {
        changed += diesel::update(
            issued_token::table
                .filter(issued_token::jti.eq_any(chunk))
                .filter(issued_token::revoked_at.is_null()),
        )
        .set(issued_token::revoked_at.eq(now))
        .execute(conn)?;
    }
    Ok(changed)
}

/// The latest expiry among an identity's unrevoked tokens.
pub fn latest_unrevoked_expiry(
    conn: &mut DbConnection,
    identity_id: i64,
    live_after: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    issued_token::table
        .filter(issued_token::identity_id.eq(identity_id))
        .filter(issued_token::revoked_at.is_null())
        .filter(issued_token::expires_at.gt(live_after))
        .select(issued_token::expires_at)
        .order(issued_token::expires_at.desc())
        .first(conn)
        .optional()
}

/// Deletes up to `batch` rows of tokens that expired before `cutoff`.
pub fn delete_expired_batch(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    batch: i64,
) -> QueryResult<usize> {
    let ids: Vec<String> = issued_token::table
        .filter(issued_token::expires_at.lt(cutoff))
        .select(issued_token::jti)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    for chunk in ids.chunks(500) {
        deleted += diesel::delete(issued_token::table.filter(issued_token::jti.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(deleted)
}
