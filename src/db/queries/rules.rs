//! The `revocation_rule` table, and the live tokens a selector matches.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};

use crate::db::models::{NewRevocationRule, RevocationRuleRow, RuleSelector};
use crate::db::schema::{identity, issued_token, revocation_rule};
use crate::db::DbConnection;

/// A live token a selector matches.
#[derive(Debug, Clone, Queryable)]
pub struct MatchedToken {
    pub jti: String,
    pub identity_id: i64,
    pub expires_at: NaiveDateTime,
    pub family_id: Option<String>,
}

/// Unrevoked tokens that still verify (expiry after `cutoff`) and match `s`.
pub fn matching_live(
    conn: &mut DbConnection,
    s: &RuleSelector,
    cutoff: NaiveDateTime,
) -> QueryResult<Vec<MatchedToken>> {
    let mut q = issued_token::table
        .inner_join(identity::table)
        .filter(issued_token::revoked_at.is_null())
        .filter(issued_token::expires_at.gt(cutoff))
        .filter(issued_token::issued_at.le(s.issued_before))
        .select((
            issued_token::jti,
            issued_token::identity_id,
            issued_token::expires_at,
            issued_token::family_id,
        ))
        .into_boxed();
    if let Some(scope) = &s.scope {
        q = q.filter(identity::scope.eq(scope.clone()));
    }
    if let Some(name) = &s.name {
        q = q.filter(identity::name.eq(name.clone()));
    }
    if let Some(prefix) = &s.name_prefix {
        // substr, not LIKE: SQLite's LIKE ignores case, and in memory a prefix does not.
        let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
        q = q.filter(
            diesel::dsl::sql::<Bool>("substr(identity.name, 1, ")
                .bind::<Integer, _>(chars)
                .sql(") = ")
                .bind::<Text, _>(prefix.clone()),
        );
    }
    if let Some(id) = s.identity_id {
        q = q.filter(issued_token::identity_id.eq(id));
    }
    if let Some(kid) = &s.key_id {
        q = q.filter(issued_token::kid.eq(kid.clone()));
    }
    q.load(conn)
}

pub fn insert(conn: &mut DbConnection, rule: &NewRevocationRule) -> QueryResult<i64> {
    diesel::insert_into(revocation_rule::table)
        .values(rule)
        .returning(revocation_rule::id)
        .get_result(conn)
}

/// Rules that may still cover a live token (`expires_at` after `now`), oldest first.
pub fn in_force(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<Vec<RevocationRuleRow>> {
    revocation_rule::table
        .filter(revocation_rule::expires_at.gt(now))
        .select(RevocationRuleRow::as_select())
        .order(revocation_rule::id.asc())
        .load(conn)
}

/// Deletes rules that no live token can fall under any more.
pub fn delete_expired(conn: &mut DbConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(revocation_rule::table.filter(revocation_rule::expires_at.lt(cutoff)))
        .execute(conn)
}

/// Recomputes `identity.expires_at` of these identities after a revocation: the latest expiry
/// among their unrevoked tokens that still verify (expiring after `live_after`), or none, so
/// that an account whose live tokens were all revoked reads as revoked, not as expired by an
/// older token that ran out unrevoked. 500 identities per statement.
pub fn refresh_expiries(
    conn: &mut DbConnection,
    ids: &[i64],
    live_after: NaiveDateTime,
) -> QueryResult<usize> {
    let mut changed = 0;
    for chunk in ids.chunks(500) {
        changed += diesel::update(identity::table.filter(identity::id.eq_any(chunk)))
            .set(identity::expires_at.eq(None::<NaiveDateTime>))
            .execute(conn)?;
        let latest: Vec<(i64, Option<NaiveDateTime>)> = issued_token::table
            .filter(issued_token::identity_id.eq_any(chunk))
            .filter(issued_token::revoked_at.is_null())
            .filter(issued_token::expires_at.gt(live_after))
            .group_by(issued_token::identity_id)
            .select((
                issued_token::identity_id,
                diesel::dsl::max(issued_token::expires_at),
            ))
            .load(conn)?;
        for (id, exp) in latest {
            diesel::update(identity::table.filter(identity::id.eq(id)))
                .set(identity::expires_at.eq(exp))
                .execute(conn)?;
        }
    }
    Ok(changed)
}
