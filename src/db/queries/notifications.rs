//! The `expiry_notification` table and the tokens that need one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{expiry_notification, identity, issued_token};
use crate::db::DbConnection;

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const ABANDONED: &str = "abandoned";

/// A live token expiring within a window, with what a warning says about it.
#[derive(Debug, Clone, Queryable)]
pub struct Expiring {
    pub jti: String,
    pub identity_id: i64,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub name: String,
    pub scope: String,
}

/// Unrevoked tokens of unrevoked identities expiring in `(now, until]`.
pub fn expiring(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Vec<Expiring>> {
    issued_token::table
        .inner_join(identity::table)
        .filter(issued_token::revoked_at.is_null())
        .filter(identity::revoked_at.is_null())
        .filter(issued_token::expires_at.gt(now))
        .filter(issued_token::expires_at.le(until))
        .select((
            issued_token::jti,
            issued_token::identity_id,
            issued_token::issued_at,
            issued_token::expires_at,
            identity::name,
            identity::scope,
        ))
        .load(conn)
}

/// Which of these tokens already have a warning for this threshold.
pub fn already_recorded(
    conn: &mut DbConnection,
    jtis: &[String],
    threshold_secs: i64,
) -> QueryResult<Vec<String>> {
    let mut out = Vec::new();
    for chunk in jtis.chunks(500) {
        out.extend(
            expiry_notification::table
                .filter(expiry_notification::threshold_secs.eq(threshold_secs))
                .filter(expiry_notification::token_jti.eq_any(chunk))
                .select(expiry_notification::token_jti)
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

/// A delivery to record that no one else can record (a revocation's: its key is new).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub key: String,
    pub identity_id: i64,
    pub payload: String,
}

/// Records deliveries (threshold 0: due at once); see `insert_rows!`.
pub fn insert_pending(
    conn: &mut DbConnection,
    deliveries: &[NewDelivery],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let rows: Vec<_> = deliveries
        .iter()
        .map(|d| {
            (
                expiry_notification::token_jti.eq(&d.key),
                expiry_notification::threshold_secs.eq(0i64),
                expiry_notification::identity_id.eq(d.identity_id),
                expiry_notification::payload.eq(&d.payload),
                expiry_notification::status.eq(PENDING),
                expiry_notification::attempts.eq(0),
                expiry_notification::next_attempt_at.eq(now),
                expiry_notification::created_at.eq(now),
            )
        })
        .collect();
    insert_rows!(conn, expiry_notification::table, rows)
}

/// Records a warning to deliver. A concurrent replica recording the same one is not an error.
pub fn record(
    conn: &mut DbConnection,
    jti: &str,
    threshold_secs: i64,
    identity_id: i64,
    payload: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(expiry_notification::table)
        .values((
            expiry_notification::token_jti.eq(jti),
            expiry_notification::threshold_secs.eq(threshold_secs),
            expiry_notification::identity_id.eq(identity_id),
            expiry_notification::payload.eq(payload),
            expiry_notification::status.eq(PENDING),
            expiry_notification::attempts.eq(0),
            expiry_notification::next_attempt_at.eq(now),
            expiry_notification::created_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A warning due for (another) delivery attempt.
#[derive(Debug, Clone, Queryable)]
pub struct Due {
    pub id: i64,
    pub token_jti: String,
    pub threshold_secs: i64,
    pub payload: String,
    pub attempts: i64,
}

pub fn due(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> QueryResult<Vec<Due>> {
    expiry_notification::table
        .filter(expiry_notification::status.eq(PENDING))
        .filter(expiry_notification::next_attempt_at.le(now))
        .select((
            expiry_notification::id,
            expiry_notification::token_jti,
            expiry_notification::threshold_secs,
            expiry_notification::payload,
            expiry_notification::attempts,
        ))
        .order(expiry_notification::id.asc())
        .limit(limit)
        .load(conn)
}

/// Takes the next attempt of a warning: moves its due time to `lease_until` if it is still
/// due. Only one replica (or process) succeeds, so a warning is never sent twice at once.
pub fn claim(
    conn: &mut DbConnection,
    id: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        expiry_notification::table
            .filter(expiry_notification::id.eq(id))
            .filter(expiry_notification::status.eq(PENDING))
            .filter(expiry_notification::next_attempt_at.le(now)),
    )
    .set(expiry_notification::next_attempt_at.eq(lease_until))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn mark_sent(
    conn: &mut DbConnection,
    id: i64,
    attempts: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(expiry_notification::table.filter(expiry_notification::id.eq(id)))
        .set((
            expiry_notification::status.eq(SENT),
            expiry_notification::attempts.eq(attempts),
            expiry_notification::sent_at.eq(Some(now)),
            expiry_notification::last_error.eq(None::<String>),
        ))
        .execute(conn)
}

pub fn mark_failed(
    conn: &mut DbConnection,
    id: i64,
    attempts: i64,
    status: &str,
    next_attempt_at: NaiveDateTime,
    error: &str,
) -> QueryResult<usize> {
    diesel::update(expiry_notification::table.filter(expiry_notification::id.eq(id)))
        .set((
            expiry_notification::status.eq(status),
            expiry_notification::attempts.eq(attempts),
            expiry_notification::next_attempt_at.eq(next_attempt_at),
            expiry_notification::last_error.eq(Some(error)),
        ))
        .execute(conn)
}

/// Deletes deliveries recorded before `cutoff`, whatever their state. Returns how many went.
pub fn delete_created_before(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(expiry_notification::table.filter(expiry_notification::created_at.lt(cutoff)))
        .execute(conn)
}
