//! The in-memory revocation set: every check consults it, none queries the database.
//!
//! It holds the ids of revoked tokens that have not expired yet, with their expiry. It is
//! loaded at start, updated at once by this replica's own revocations, and refreshed from
//! `token_revocation` every `TOKEND_REVOCATION_SYNC_INTERVAL` (250 ms by default) so that a
//! revocation made by another replica is enforced here within a second. How a poll avoids
//! missing rows whose transactions commit out of order is explained on
//! [`crate::db::queries::revocations::poll`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::claims::Claims;
use super::rules::{Rule, RuleSet, Selector};
use crate::db::models::RevocationRuleRow;
use crate::db::queries::revocations::{self, Cursor, RevokedToken};
use crate::db::queries::rules as rule_rows;
use crate::db::{DbConnection, DbManager};
use crate::scope::Scope;

/// Revoked, unexpired token ids, and the revocation rules in force. Reads take no lock.
#[derive(Default)]
pub struct RevocationSet {
    map: crate::FastMap<Uuid, i64>,
    rules: RuleSet,
    /// Successful database polls, for readiness and tests.
    polls: AtomicU64,
}

impl RevocationSet {
    pub fn new() -> RevocationSet {
        RevocationSet::default()
    }

    pub fn is_revoked(&self, jti: &Uuid) -> bool {
        self.map.pin().contains_key(jti)
    }

    /// Whether this token is refused: revoked by id, or covered by a rule.
    pub fn refuses(&self, claims: &Claims) -> bool {
        self.is_revoked(&claims.jti) || self.rules.covering(claims).is_some()
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Adds a revoked token (`exp` in UNIX seconds).
    pub fn insert(&self, jti: Uuid, exp: i64) {
        self.map.pin().insert(jti, exp);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Forgets tokens that expired before `before` (UNIX seconds): verification refuses them
    /// as expired anyway.
    pub fn prune(&self, before: i64) {
        self.map.pin().retain(|_, exp| *exp >= before);
    }

    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    fn absorb(&self, rows: Vec<RevokedToken>) {
        let map = self.map.pin();
        for (jti, exp) in rows {
            match Uuid::parse_str(&jti) {
                Ok(id) => {
                    map.insert(id, exp.and_utc().timestamp());
                }
                Err(_) => {
                    log::warn!("token_revocation holds a token id that is not a UUID; ignored")
                }
            }
        }
    }
}

/// Loads every live revocation and every rule in force; returns the cursor to poll from.
pub fn load(
    conn: &mut DbConnection,
    set: &RevocationSet,
    cutoff: NaiveDateTime,
) -> Result<Cursor, diesel::result::Error> {
    let (rows, cursor) = all_live(conn, cutoff)?;
    set.absorb(rows);
    set.rules.replace(rules_in_force(conn)?);
    Ok(cursor)
}

/// Every revocation of a token that expires after `cutoff`, and the cursor to poll from.
fn all_live(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
) -> Result<(Vec<RevokedToken>, Cursor), diesel::result::Error> {
    // The cursor first: whatever commits while we read is picked up by the next poll.
    let cursor = revocations::cursor_now(conn)?;
    Ok((revocations::live(conn, cutoff)?, cursor))
}

/// Every rule that may still cover a live token. Rules are few (one per bulk revocation,
/// pruned when nothing they cover can verify), so each sync reads them all: a pruned rule
/// disappears and a new one appears in the same step.
fn rules_in_force(conn: &mut DbConnection) -> Result<Vec<Rule>, diesel::result::Error> {
    let rows = rule_rows::in_force(conn, crate::time::to_db(crate::time::now()))?;
    Ok(rows.into_iter().filter_map(rule_from_row).collect())
}

/// A stored rule as the verifier checks it.
pub fn rule_from_row(row: RevocationRuleRow) -> Option<Rule> {
    let selector = row.selector;
    let scope = match selector.scope.as_deref().map(Scope::parse) {
        None => None,
        Some(Ok(scope)) => Some(scope),
        Some(Err(_)) => {
            // Refusing more is the safe side: a rule with an unreadable scope covers all scopes.
            log::error!(
                "revocation rule {} names an unknown scope; it is applied to every scope",
                row.id
            );
            None
        }
    };
    Some(Rule {
        id: row.id,
        selector: Selector {
            scope,
            name: selector.name,
            name_prefix: selector.name_prefix,
            identity_id: selector.identity_id,
            key_id: selector.key_id,
        },
        issued_before: selector.issued_before.and_utc().timestamp(),
        expires_at: row.expires_at.and_utc().timestamp(),
    })
}

/// Polls the database for other replicas' revocations until the process ends.
///
/// The poll has a connection of its own, so a pool exhausted by request traffic never
/// delays it; after an error it reconnects on the next tick, and the first read on the new
/// connection reloads every live revocation instead of polling from the cursor: the server
/// may not be the one the cursor came from. After a failover the promoted standby hands out
/// transaction ids again that the old primary had used for transactions which never reached
/// it, so ids can go back, and "txid >= cursor" would skip revocations written with them.
pub async fn sync_forever(
    manager: DbManager,
    set: Arc<RevocationSet>,
    mut cursor: Cursor,
    interval: Duration,
    leeway: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<DbConnection> = None;
    // The cursor of the initial load holds until a read fails.
    let mut reload = false;
    let mut failing = false;
    let mut last_prune = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let (m, c) = (manager.clone(), conn.take());
        let since = (!reload).then_some(cursor);
        let polled = actix_web::rt::task::spawn_blocking(move || {
            let mut c = match c {
                Some(c) => c,
                None => m.connect().map_err(|e| e.to_string())?,
            };
            let read = match since {
                Some(cursor) => revocations::poll(&mut c, cursor),
                None => {
                    let leeway = chrono::Duration::from_std(leeway).unwrap_or_default();
                    all_live(&mut c, crate::time::to_db(crate::time::now() - leeway))
                }
            };
            let result = read
                .and_then(|(rows, next)| Ok((rows, next, rules_in_force(&mut c)?)))
                .map_err(|e| e.to_string());
            // A connection that failed a query is not reused.
            Ok::<_, String>((result.is_ok().then_some(c), result))
        })
        .await;
        match polled {
            Ok(Ok((c, Ok((rows, next, rules))))) => {
                conn = c;
                if failing {
                    log::info!("revocation sync recovered");
                    failing = false;
                }
                set.absorb(rows);
                set.rules.replace(rules);
                cursor = next;
                reload = false;
                set.polls.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok((_, Err(e)))) | Ok(Err(e)) => {
                reload = true;
                if !failing {
                    log::error!("revocation sync failed, revocations made by other replicas are not picked up until it recovers: {e}");
                    failing = true;
                }
            }
            Err(e) => {
                reload = true;
                log::error!("revocation sync task failed: {e}")
            }
        }
        if last_prune.elapsed() >= Duration::from_secs(60) {
            let before = chrono::Utc::now().timestamp() - leeway.as_secs() as i64;
            set.prune(before);
            last_prune = std::time::Instant::now();
        }
    }
}
