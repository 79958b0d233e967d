//! Revoking accounts and single tokens.
//!
//! A revocation is committed to `token_revocation` before it is acknowledged, then added to
//! this replica's in-memory set at once; other replicas pick it up from the table.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::input::Reason;
use super::service::{find_account_row, not_found};
use crate::audit::{record, Actor};
use crate::db::models::{IssuedTokenRow, NewRevocation};
use crate::db::queries::identities::{self, SERVICE_ACCOUNT};
use crate::db::queries::{revocations, tokens as token_rows};
use crate::db::{write_transaction, DbConnection};
use crate::error::ApiError;
use crate::time;
use crate::tokens::RevocationSet;

/// What a revocation did.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub identity_id: i64,
    /// Tokens that were live and are now refused.
    pub revoked: Vec<(Uuid, DateTime<Utc>)>,
    pub revoked_at: DateTime<Utc>,
    /// Nothing changed: it had been revoked before.
    pub already_revoked: bool,
}

impl Revoked {
    /// Makes this replica refuse the revoked tokens at once.
    pub fn apply(&self, set: &RevocationSet) {
        apply_revoked(&self.revoked, set);
    }
}

/// Makes this replica refuse these tokens at once (after their revocation committed).
pub fn apply_revoked(revoked: &[(Uuid, DateTime<Utc>)], set: &RevocationSet) {
    for (jti, exp) in revoked {
        set.insert(*jti, exp.timestamp());
    }
    crate::telemetry::tokens_revoked(revoked.len());
}

/// Revokes an account and every token of it that still verifies, inside the caller's write
/// transaction (a group-commit batch, `db::group_commit`). Repeating it changes nothing and
/// says `already_revoked`.
pub fn revoke_account_in(
    conn: &mut DbConnection,
    identity_id: i64,
    reason: Option<&Reason>,
    leeway: Duration,
    actor: &Actor,
) -> Result<Revoked, ApiError> {
    let reason = reason.map(Reason::as_str);
    {
        let now = time::now();
        let changed = identities::mark_revoked(
            conn,
            identity_id,
            SERVICE_ACCOUNT,
            time::to_db(now),
            reason,
            actor.identity_id,
        )?;
        if changed == 0 {
            let row = find_account_row(conn, identity_id)?.ok_or_else(|| not_found(identity_id))?;
            return Ok(Revoked {
                identity_id,
                revoked: Vec::new(),
                revoked_at: row.revoked_at.map(time::from_db).unwrap_or(now),
                already_revoked: true,
            });
        }
        let revoked = revoke_live_tokens(conn, identity_id, now, leeway, reason, actor)?;
        record(
            conn,
            actor,
            "account.revoked",
            Some(identity_id),
            None,
            reason,
            json!({
                "revoked_tokens": revoked.len(),
            }),
        )?;
        Ok(Revoked {
            identity_id,
            revoked,
            revoked_at: now,
            already_revoked: false,
        })
    }
}

/// Revokes every token of an identity that still verifies (tokens inside the leeway after
/// their expiry do). Call inside a write transaction that has locked the identity row.
pub fn revoke_live_tokens(
    conn: &mut DbConnection,
    identity_id: i64,
    now: DateTime<Utc>,
    leeway: Duration,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, ApiError> {
    let cutoff = now - chrono::Duration::from_std(leeway).unwrap_or_default();
    let live = token_rows::live_of_identity(conn, identity_id, time::to_db(cutoff))?;
    let revoked = revoke_rows(conn, &live, now, reason, actor)?;
    identities::set_expiry(conn, identity_id, None)?;
    Ok(revoked)
}

/// Revokes every live token of these refresh families (a token's family id, or its own id
/// for a token from before families were recorded). Call inside a write transaction.
pub fn revoke_families(
    conn: &mut DbConnection,
    families: &[String],
    now: DateTime<Utc>,
    leeway: Duration,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, ApiError> {
    let cutoff = time::to_db(now - chrono::Duration::from_std(leeway).unwrap_or_default());
    let mut revoked = Vec::new();
    let mut pending: Vec<String> = families.to_vec();
    let mut seen = std::collections::HashSet::new();
    while let Some(family) = pending.pop() {
        if !seen.insert(family.clone()) {
            continue;
        }
        let relatives = token_rows::live_of_family(conn, &family, cutoff)?;
        revoked.extend(revoke_rows(conn, &relatives, now, reason, actor)?);
        // Tokens exchanged from any of them (RFC 8693) go too, with whatever they begot.
        for child in token_rows::live_exchanged_from_family(conn, &family, cutoff)? {
            pending.push(child.family_id.clone().unwrap_or(child.jti));
        }
    }
    Ok(revoked)
}

/// Marks these (live) tokens revoked and writes their revocation rows, which every replica
/// reads on its next sync. Returns what this replica must refuse at once.
pub(super) fn revoke_rows(
    conn: &mut DbConnection,
    live: &[IssuedTokenRow],
    now: DateTime<Utc>,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, ApiError> {
    let jtis: Vec<String> = live.iter().map(|t| t.jti.clone()).collect();
    token_rows::mark_revoked(conn, &jtis, time::to_db(now))?;
    let rows: Vec<NewRevocation> = live
        .iter()
        .map(|t| revocation_row(t, now, reason, actor))
        .collect();
    revocations::insert_many(conn, &rows)?;
    Ok(live
        .iter()
        .filter_map(|t| Some((Uuid::parse_str(&t.jti).ok()?, time::from_db(t.expires_at))))
        .collect())
}

pub(super) fn revocation_row(
    t: &IssuedTokenRow,
    now: DateTime<Utc>,
    reason: Option<&str>,
    actor: &Actor,
) -> NewRevocation {
    NewRevocation {
        token_jti: t.jti.clone(),
        identity_id: t.identity_id,
        token_exp: t.expires_at,
        revoked_at: time::to_db(now),
        revoked_by: actor.identity_id,
        reason: reason.map(str::to_owned),
    }
}

/// Which token [`revoke_token`] may touch.
#[derive(Debug, Clone, Copy)]
pub enum TokenOwner {
    /// Only a token of this service account (`/service-accounts/{id}/tokens/{token_id}`).
    ServiceAccount(i64),
    /// Any token tokend issued (`/tokens/revoke`, logout).
    Anyone,
}

/// Revokes one token and its family (every token refreshed from it, and the tokens it was
/// refreshed from). Unknown token (or not the owner's): 404. Repeating it is harmless.
pub fn revoke_token(
    conn: &mut DbConnection,
    token_id: Uuid,
    owner: TokenOwner,
    reason: Option<&str>,
    leeway: Duration,
    actor: &Actor,
    action: &str,
) -> Result<Revoked, ApiError> {
    let jti = token_id.to_string();
    write_transaction(conn, |conn| {
        let now = time::now();
        let missing = || {
            match owner {
            TokenOwner::ServiceAccount(id) => ApiError::not_found(format!(
                "service account {id} has no token {token_id}; GET /service-accounts/{id} lists its tokens"
            )),
            TokenOwner::Anyone => ApiError::not_found(format!("no token {token_id} was issued here")),
        }
        };
        if let TokenOwner::ServiceAccount(id) = owner {
            find_account_row(conn, id)?.ok_or_else(|| not_found(id))?;
        }
        let token = token_rows::find(conn, &jti)?.ok_or_else(missing)?;
        if let TokenOwner::ServiceAccount(id) = owner {
            if token.identity_id != id {
                return Err(missing());
            }
        }
        let identity_id = token.identity_id;
        // Lock the identity row: its expires_at is recomputed below, and a concurrent issue
        // must not interleave with that.
        identities::lock(conn, identity_id, time::to_db(now))?;
        // The conditional update decides: of two concurrent revocations, one changes the row.
        let changed = token.revoked_at.is_none()
            && token_rows::mark_revoked(conn, std::slice::from_ref(&jti), time::to_db(now))? > 0;
        let cutoff = now - chrono::Duration::from_std(leeway).unwrap_or_default();
        let mut revoked = Vec::new();
        if changed && time::from_db(token.expires_at) > cutoff {
            revocations::insert_many(conn, &[revocation_row(&token, now, reason, actor)])?;
            revoked.push((token_id, time::from_db(token.expires_at)));
        }
        // Its family goes with it: every token refreshed from it (or from its ancestors),
        // even when this one had been revoked already (e.g. superseded by a refresh).
        let family = token.family_id.clone().unwrap_or_else(|| jti.clone());
        let relatives = revoke_families(
            conn,
            std::slice::from_ref(&family),
            now,
            leeway,
            reason,
            actor,
        )?;
        let none_left = relatives.is_empty();
        revoked.extend(relatives);
        if !changed && none_left {
            let again = token_rows::find(conn, &jti)?.ok_or_else(missing)?;
            return Ok(Revoked {
                identity_id,
                revoked: Vec::new(),
                revoked_at: again.revoked_at.map(time::from_db).unwrap_or(now),
                already_revoked: true,
            });
        }
        let latest = token_rows::latest_unrevoked_expiry(conn, identity_id, time::to_db(cutoff))?;
        identities::set_expiry(conn, identity_id, latest)?;
        record(
            conn,
            actor,
            action,
            Some(identity_id),
            Some(&jti),
            reason,
            json!({
                "family_id": family,
                "revoked_tokens": revoked.len(),
            }),
        )?;
        Ok(Revoked {
            identity_id,
            revoked,
            revoked_at: now,
            already_revoked: false,
        })
    })
}
