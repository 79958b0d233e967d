//! The `token_revocation` table: revoked tokens that have not expired yet.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::db::models::NewRevocation;
use crate::db::schema::token_revocation;
use crate::db::DbConnection;

/// Inserts revocation rows. Callers lock the account/token rows first, so a token is
/// never revoked twice concurrently; the unique `token_jti` index backs that up.
pub fn insert_many(conn: &mut DbConnection, rows: &[NewRevocation]) -> QueryResult<usize> {
    // A batch of revocations may hold hundreds of rows: see `insert_rows!`.
    insert_rows!(conn, token_revocation::table, rows)
}

/// A revoked token as the in-memory revocation set needs it.
pub type RevokedToken = (String, NaiveDateTime);

/// Every revocation of a token that expires after `cutoff`.
/// One page of the revocations of tokens expiring after `cutoff`: up to `limit` rows with an
/// id above `after`, in id order (the start-up load reads a million rows a page at a time,
/// so it never holds them all as strings at once). Returns the last id read.
pub fn live_page(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    after: i64,
    limit: i64,
) -> QueryResult<(Vec<RevokedToken>, Option<i64>)> {
    let rows: Vec<(i64, String, NaiveDateTime)> = token_revocation::table
        .filter(token_revocation::id.gt(after))
        .filter(token_revocation::token_exp.gt(cutoff))
        .select((
            token_revocation::id,
            token_revocation::token_jti,
            token_revocation::token_exp,
        ))
        .order(token_revocation::id.asc())
        .limit(limit)
        .load(conn)?;
    let last = rows.last().map(|r| r.0);
    Ok((
        rows.into_iter().map(|(_, jti, exp)| (jti, exp)).collect(),
        last,
    ))
}

/// How many revocations are of tokens expiring after `cutoff` (sizes the start-up load).
pub fn count_live(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<i64> {
    token_revocation::table
        .filter(token_revocation::token_exp.gt(cutoff))
        .count()
        .get_result(conn)
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    token_revocation::table.count().get_result(conn)
}

/// Where the last poll for new revocations stopped (see [`poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

#[derive(QueryableByName)]
struct XminRow {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

/// A cursor such that [`poll`] from it returns every revocation committed from now on.
/// Take it *before* loading the current set.
pub fn cursor_now(conn: &mut DbConnection) -> QueryResult<Cursor> {
    match conn {
        // The oldest transaction still running: anything that commits later has a txid >= it.
        DbConnection::Pg(c) => diesel::sql_query(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin",
        )
        .get_result::<XminRow>(c)
        .map(|r| Cursor(r.xmin)),
        // One writer at a time: ids are assigned and committed in order.
        DbConnection::Sqlite(_) => token_revocation::table
            .select(diesel::dsl::max(token_revocation::id))
            .first::<Option<i64>>(conn)
            .map(|max| Cursor(max.unwrap_or(0))),
    }
}

/// Revocations committed since `cursor` (possibly a few seen before: inserting into the set
/// is idempotent), and the cursor for the next poll.
///
/// PostgreSQL assigns `id`s when rows are inserted but transactions commit in any order, so
/// "id > last seen" would miss a row whose transaction commits after a later one. Instead
/// each row records its transaction id, and a poll reads `txid >= xmin` of a snapshot taken
/// before the previous read: a transaction invisible to that read was still running then,
/// so its txid is at least that xmin, and this poll sees it.
pub fn poll(conn: &mut DbConnection, cursor: Cursor) -> QueryResult<(Vec<RevokedToken>, Cursor)> {
    match conn {
        DbConnection::Pg(_) => {
            let next = cursor_now(conn)?;
            let rows = token_revocation::table
                .filter(token_revocation::txid.ge(cursor.0))
                .select((token_revocation::token_jti, token_revocation::token_exp))
                .load(conn)?;
            Ok((rows, next))
        }
        DbConnection::Sqlite(_) => {
            let rows: Vec<(i64, String, NaiveDateTime)> = token_revocation::table
                .filter(token_revocation::id.gt(cursor.0))
                .select((
                    token_revocation::id,
                    token_revocation::token_jti,
                    token_revocation::token_exp,
                ))
                .order(token_revocation::id.asc())
                .load(conn)?;
            let next = rows.last().map(|r| Cursor(r.0)).unwrap_or(cursor);
            Ok((
                rows.into_iter().map(|(_, jti, exp)| (jti, exp)).collect(),
                next,
            ))
        }
    }
}

/// Deletes up to `batch` revocations of tokens that expired before `cutoff`, a few hundred
/// rows per statement so no lock is held for long. Returns how many rows went.
pub fn delete_expired_batch(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    after: i64,
    batch: i64,
) -> QueryResult<(usize, Option<i64>)> {
    // In primary-key order from a cursor: one pass over the table in all, and each batch's
    // rows sit on neighbouring pages, so a batch rewrites a few hundred pages instead of one
    // page per row (token_exp order scatters them: expiry is not insertion order). The plan
    // is a rowid range search on SQLite and a primary-key index scan on PostgreSQL.
    let ids: Vec<i64> = token_revocation::table
        .filter(token_revocation::id.gt(after))
        .filter(token_revocation::token_exp.lt(cutoff))
        .order(token_revocation::id.asc())
        .select(token_revocation::id)
        .limit(batch)
        .load(conn)?;
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok((0, None));
    };
    // Every expired row between the first and the last is one of `ids` (they came in id
    // order): a range delete, re-checking the expiry, takes exactly those.
    let deleted = diesel::delete(
        token_revocation::table
            .filter(token_revocation::id.between(first, last))
            .filter(token_revocation::token_exp.lt(cutoff)),
    )
    .execute(conn)?;
    Ok((deleted, Some(last)))
}

/// Bulk-loads revocation rows (the benchmark harness seeds a million of them).
pub fn bulk_insert_for_benchmarks(
    conn: &mut DbConnection,
    rows: &[(String, NaiveDateTime)],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let values: Vec<NewRevocation> = rows
        .iter()
        .map(|(jti, exp)| NewRevocation {
            token_jti: jti.clone(),
            identity_id: 0,
            token_exp: *exp,
            revoked_at: now,
            revoked_by: None,
            reason: Some("benchmark".into()),
        })
        .collect();
    // One multi-row statement per batch: each backend's own connection can do that.
    match conn {
        DbConnection::Pg(c) => diesel::insert_into(token_revocation::table)
            .values(&values)
            .execute(c),
        DbConnection::Sqlite(c) => c.transaction(|c| {
            diesel::insert_into(token_revocation::table)
                .values(&values)
                .execute(c)
        }),
    }
}
