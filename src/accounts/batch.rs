//! Creations and account revocations that arrived together, written with a few statements for
//! the whole batch instead of a few per request.
//!
//! On PostgreSQL every statement is a round trip, and round trips (two context switches each,
//! on both sides) were most of what a creation cost: ten for one account, where the rows
//! themselves are cheap. A batch here takes one multi-row statement per table, whatever its
//! size. SQLite runs in-process, so there the gain is only the statements a batch no longer
//! needs (each request's savepoint, and a re-read of rows just written).
//!
//! Each function does exactly what [`super::create_in`] and [`super::revoke_account_in`] do
//! for one request, and callers run them inside one transaction: if a batch fails as a whole,
//! the caller retries its requests one by one (`routes::batched`), so one bad request never
//! fails the others.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::input::{Description, Reason};
use super::model::Account;
use super::revoke::{revocation_row, Revoked};
use super::service::{find_account_row, issued_detail, not_found, NewAccount};
use super::Issued;
use crate::audit::{record_many, Actor, Event};
use crate::db::coalesce::BatchResult;
use crate::db::models::{IssuedTokenRow, NewIdentity};
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::queries::{revocations, tokens as token_rows};
use crate::db::{DbConnection, DbError};
use crate::error::{ApiError, Code};
use crate::time;
use crate::tokens::{IdentityType, TokenService, TokenSubject};
use diesel::Connection;

/// One `POST /service-accounts`.
#[derive(Debug, Clone)]
pub struct Creation {
    pub new: NewAccount,
    pub actor: Actor,
}

/// One `DELETE /service-accounts/{id}`.
#[derive(Debug, Clone)]
pub struct AccountRevocation {
    pub identity_id: i64,
    pub reason: Option<Reason>,
    pub actor: Actor,
}

/// Creates every account of the batch with its first token: one statement per table on
/// PostgreSQL. Any failure fails the whole batch (the caller then goes one by one).
pub fn create_many(
    conn: &mut DbConnection,
    tokens: &TokenService,
    batch: &[Creation],
) -> Result<Vec<Issued>, ApiError> {
    let now = time::now();
    let metadata: Vec<String> = batch.iter().map(|c| c.new.metadata.to_json()).collect();
    let new_rows: Vec<NewIdentity<'_>> = batch
        .iter()
        .zip(&metadata)
        .map(|(c, metadata)| NewIdentity {
            identity_type: SERVICE_ACCOUNT,
            name: c.new.name.as_str(),
            scope: c.new.scope.as_str(),
            description: c.new.description.as_ref().map(Description::as_str),
            metadata,
            login: None,
            password_hash: None,
            role: None,
            created_at: time::to_db(now),
            updated_at: time::to_db(now),
            expires_at: Some(time::to_db(expiry(now, c.new.ttl))),
        })
        .collect();
    let rows = identities::insert_many(conn, &new_rows)?;
    if rows.len() != batch.len() {
        return Err(DbError::Corrupt(format!(
            "{} accounts inserted, {} returned",
            batch.len(),
            rows.len()
        ))
        .into());
    }
    let mut minted = Vec::with_capacity(batch.len());
    for (c, row) in batch.iter().zip(&rows) {
        let subject = TokenSubject {
            identity_id: row.id,
            identity_type: IdentityType::ServiceAccount,
            name: c.new.name.as_str(),
            scope: c.new.scope,
            metadata: c.new.metadata.as_map(),
            act: None,
        };
        let token = tokens
            .mint(&subject, c.new.ttl, now)
            .map_err(|e| ApiError::internal("signing a token", &e))?;
        if token.token.len() > crate::tokens::MAX_TOKEN_BYTES {
            // create_in explains it, request by request.
            return Err(ApiError::new(
                Code::InvalidMetadata,
                "a token over the size limit",
            ));
        }
        minted.push(token);
    }
    let token_rows: Vec<IssuedTokenRow> = rows
        .iter()
        .zip(&minted)
        .map(|(row, m)| IssuedTokenRow {
            jti: m.jti.to_string(),
            identity_id: row.id,
            kid: m.kid.clone(),
            fingerprint: m.fingerprint.clone(),
            issued_at: time::to_db(m.issued_at),
            expires_at: time::to_db(m.expires_at),
            revoked_at: None,
            // A first token founds its family.
            family_id: Some(m.jti.to_string()),
            parent_jti: None,
        })
        .collect();
    token_rows::insert_many(conn, &token_rows)?;
    // The account's expiry was written with it: the token's (whole seconds from the same
    // instant) is never later, so create_in's extend_expiry would change nothing.
    let mut events = Vec::with_capacity(2 * batch.len());
    for ((c, row), m) in batch.iter().zip(&rows).zip(&minted) {
        events.push(Event {
            actor: &c.actor,
            action: "account.created",
            identity_id: Some(row.id),
            token_id: None,
            reason: None,
            detail: json!({"name": c.new.name.as_str(), "scope": c.new.scope.as_str()}),
        });
        events.push(Event {
            actor: &c.actor,
            action: "token.issued",
            identity_id: Some(row.id),
            token_id: Some(m.jti.to_string()),
            reason: None,
            detail: issued_detail(None, c.new.scope, m, None),
        });
    }
    record_many(conn, events)?;
    rows.into_iter()
        .zip(minted)
        .map(|(row, token)| {
            Ok(Issued {
                account: Account::from_row(row, now)?,
                token,
            })
        })
        .collect()
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Revokes every account of the batch and its live tokens: a handful of statements for the
/// whole batch on PostgreSQL. Each request gets what [`super::revoke_account_in`] would have
/// answered it; a request for an unknown account gets its 404 and changes nothing. The same
/// account twice in one batch: the first revokes it, the second finds it revoked.
pub fn revoke_many(
    conn: &mut DbConnection,
    batch: &[AccountRevocation],
    leeway: Duration,
) -> Result<Vec<Result<Revoked, ApiError>>, ApiError> {
    let now = time::now();
    let cutoff = time::to_db(now - chrono::Duration::from_std(leeway).unwrap_or_default());
    // Who revoked it, and why, are columns of the account row: one UPDATE per distinct pair
    // (in practice one for the whole batch).
    let mut by_cause: HashMap<(Option<&str>, Option<i64>), Vec<i64>> = HashMap::new();
    for r in batch {
        by_cause
            .entry((r.reason.as_ref().map(Reason::as_str), r.actor.identity_id))
            .or_default()
            .push(r.identity_id);
    }
    // Each account this batch changed, with the cause its row now records.
    let mut changed: HashMap<i64, (Option<&str>, Option<i64>)> = HashMap::new();
    for ((reason, by), mut ids) in by_cause {
        ids.sort_unstable();
        ids.dedup();
        let ids = identities::mark_revoked_many(
            conn,
            &ids,
            SERVICE_ACCOUNT,
            time::to_db(now),
            reason,
            by,
        )?;
        changed.extend(ids.into_iter().map(|id| (id, (reason, by))));
    }
    let revoked_ids: Vec<i64> = changed.keys().copied().collect();
    let live = if revoked_ids.is_empty() {
        Vec::new()
    } else {
        token_rows::live_of_identities(conn, &revoked_ids, cutoff)?
    };
    let mut live_of: HashMap<i64, Vec<&IssuedTokenRow>> = HashMap::new();
    for t in &live {
        live_of.entry(t.identity_id).or_default().push(t);
    }
    let mut answers = Vec::with_capacity(batch.len());
    let mut revocation_rows = Vec::with_capacity(live.len());
    let mut events = Vec::new();
    for r in batch {
        // The first request whose cause the row records takes the revocation (the same
        // account twice with different reasons: the other one finds it revoked), so the
        // audit event and the row agree.
        let cause = (r.reason.as_ref().map(Reason::as_str), r.actor.identity_id);
        if changed.get(&r.identity_id) != Some(&cause) {
            answers.push(match find_account_row(conn, r.identity_id)? {
                None => Err(not_found(r.identity_id)),
                Some(row) => Ok(Revoked {
                    identity_id: r.identity_id,
                    revoked: Vec::new(),
                    revoked_at: row.revoked_at.map(time::from_db).unwrap_or(now),
                    already_revoked: true,
                }),
            });
            continue;
        }
        changed.remove(&r.identity_id);
        let reason = cause.0;
        let tokens = live_of.remove(&r.identity_id).unwrap_or_default();
        revocation_rows.extend(
            tokens
                .iter()
                .map(|t| revocation_row(t, now, reason, &r.actor)),
        );
        events.push(Event {
            actor: &r.actor,
            action: "account.revoked",
            identity_id: Some(r.identity_id),
            token_id: None,
            reason,
            detail: json!({ "revoked_tokens": tokens.len() }),
        });
        answers.push(Ok(Revoked {
            identity_id: r.identity_id,
            revoked: tokens
                .iter()
                .filter_map(|t| Some((Uuid::parse_str(&t.jti).ok()?, time::from_db(t.expires_at))))
                .collect(),
            revoked_at: now,
            already_revoked: false,
        }));
    }
    let jtis: Vec<String> = live.iter().map(|t| t.jti.clone()).collect();
    if !jtis.is_empty() {
        token_rows::mark_revoked(conn, &jtis, time::to_db(now))?;
        revocations::insert_many(conn, &revocation_rows)?;
    }
    if !events.is_empty() {
        record_many(conn, events)?;
    }
    Ok(answers)
}

/// A batch of creations as one group-commit job (see [`each`]).
pub fn create_each(
    conn: &mut DbConnection,
    tokens: &TokenService,
    batch: &[Creation],
) -> BatchResult<Issued, ApiError> {
    each(
        conn,
        batch,
        "creations",
        |conn, batch| {
            Ok(create_many(conn, tokens, batch)?
                .into_iter()
                .map(Ok)
                .collect())
        },
        |conn, c| super::create_in(conn, tokens, &c.new, &c.actor),
    )
}

/// A batch of account revocations as one group-commit job (see [`each`]).
pub fn revoke_each(
    conn: &mut DbConnection,
    batch: &[AccountRevocation],
    leeway: Duration,
) -> BatchResult<Revoked, ApiError> {
    each(
        conn,
        batch,
        "revocations",
        |conn, batch| revoke_many(conn, batch, leeway),
        |conn, r| {
            let reason = r.reason.as_ref();
            super::revoke_account_in(conn, r.identity_id, reason, leeway, &r.actor)
        },
    )
}

/// Runs a batch: `many` in a savepoint; if that fails for any reason but storage, `one` for
/// each request again (in a savepoint each), so each gets its own answer. A batch of one is
/// simply `one`, in the job's own transaction.
fn each<R, T>(
    conn: &mut DbConnection,
    batch: &[R],
    what: &str,
    many: impl FnOnce(&mut DbConnection, &[R]) -> BatchResult<T, ApiError>,
    one: impl Fn(&mut DbConnection, &R) -> Result<T, ApiError>,
) -> BatchResult<T, ApiError> {
    if let [single] = batch {
        return one(conn, single).map(|t| vec![Ok(t)]);
    }
    match conn.transaction(|conn| many(conn, batch)) {
        Ok(answers) => Ok(answers),
        Err(e) if e.code() == Code::StorageUnavailable => Err(e),
        Err(e) => {
            // Said once: the retry costs every request of the batch a second try.
            log::warn!(
                "a batch of {} {what} failed ({}: {}); retrying them one by one",
                batch.len(),
                e.code().as_str(),
                e.message()
            );
            Ok(batch
                .iter()
                .map(|r| conn.transaction(|conn| one(conn, r)))
                .collect())
        }
    }
}
