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
use super::freshness::Freshness;
use super::polls::BoundedPolls;
use super::push::Push;
use super::rules::{Rule, RuleSet, Selector};
use crate::db::models::RevocationRuleRow;
use crate::db::queries::revocations::{self, Cursor, RevokedToken};
use crate::db::queries::rules as rule_rows;
use crate::db::{DbConnection, DbManager};
use crate::scope::Scope;

/// Revoked, unexpired token ids, and the revocation rules in force. Reads take no lock.
pub struct RevocationSet {
    ids: super::revoked_ids::RevokedIds,
    rules: RuleSet,
    /// Successful database polls, for readiness and tests.
    polls: AtomicU64,
    /// How current this set is, and whether the clock can be trusted.
    freshness: Arc<Freshness>,
}

impl Default for RevocationSet {
    fn default() -> Self {
        RevocationSet::new()
    }
}

/// `TOKEND_REVOCATION_MAX_STALENESS` and `TOKEND_MAX_CLOCK_SKEW` defaults.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

impl RevocationSet {
    pub fn new() -> RevocationSet {
        RevocationSet::with_bounds(DEFAULT_MAX_STALENESS, DEFAULT_MAX_CLOCK_SKEW)
    }

    /// An empty set, fresh as of now, refusing every token once its last sync is older than
    /// `max_staleness` or the clock is off by more than `max_skew`.
    pub fn with_bounds(max_staleness: Duration, max_skew: Duration) -> RevocationSet {
        RevocationSet {
            ids: Default::default(),
            rules: RuleSet::default(),
            polls: AtomicU64::new(0),
            freshness: Arc::new(Freshness::new(max_staleness, max_skew)),
        }
    }

    pub fn freshness(&self) -> &Arc<Freshness> {
        &self.freshness
    }

    pub fn is_revoked(&self, jti: &Uuid) -> bool {
        self.ids.contains(jti)
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
        self.ids.insert(jti, exp);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Forgets tokens that expired before `before` (UNIX seconds): verification refuses them
    /// as expired anyway.
    pub fn prune(&self, before: i64) {
        self.ids.prune(before);
    }

    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// Adds polled rows; returns how many were not in the set yet.
    fn absorb(&self, rows: Vec<RevokedToken>) -> usize {
        let fresh = self.ids.extend(parsed(rows));
        // The sync task's moment to fold recent revocations into the compact array.
        self.ids.merge_if_due();
        fresh
    }
}

/// Polled rows as ids; a row whose token id is not a UUID is logged and skipped.
fn parsed(rows: Vec<RevokedToken>) -> impl Iterator<Item = (Uuid, i64)> {
    rows.into_iter()
        .filter_map(|(jti, exp)| match Uuid::parse_str(&jti) {
            Ok(id) => Some((id, exp.and_utc().timestamp())),
            Err(_) => {
                log::warn!("token_revocation holds a token id that is not a UUID; ignored");
                None
            }
        })
}

/// Rows per query of the start-up load: small pages leave less garbage resident behind the
/// load (a million live revocations: 103 MB RSS with pages of 20,000, 95 MB with 2,000).
const LOAD_PAGE: i64 = 2_000;

/// Loads every live revocation (of tokens that have not expired by the earlier of this host's
/// and the database's clock, less `leeway`) and every rule in force; returns the cursor to
/// poll from.
pub fn load(
    conn: &mut DbConnection,
    set: &RevocationSet,
    leeway: Duration,
) -> Result<Cursor, diesel::result::Error> {
    let started = std::time::Instant::now();
    let cutoff = live_cutoff(conn, leeway)?;
    // The cursor first: whatever commits while we read is picked up by the next poll.
    let cursor = revocations::cursor_now(conn)?;
    let live = revocations::count_live(conn, cutoff)?;
    let mut loader = set.ids.loader(usize::try_from(live).unwrap_or(0));
    each_live_page(conn, cutoff, |rows| {
        for (id, exp) in parsed(rows) {
            loader.push(id, exp);
        }
    })?;
    loader.finish();
    set.rules.replace(rules_in_force(conn)?);
    if let Some(skew) = measure_skew(conn)? {
        set.freshness.measured_skew(skew);
    }
    set.freshness.synced(started);
    Ok(cursor)
}

/// Every rule that may still cover a live token. Rules are few (one per bulk revocation,
/// pruned when nothing they cover can verify), so each sync reads them all: a pruned rule
/// disappears and a new one appears in the same step.
fn rules_in_force(conn: &mut DbConnection) -> Result<Vec<Rule>, diesel::result::Error> {
    let rows = rule_rows::in_force(conn, crate::time::to_db(crate::time::now()))?;
    Ok(rows.into_iter().filter_map(rule_from_row).collect())
}

/// Revocations of tokens that expired before this are not loaded: the earlier of this host's
/// and the database's clock, so a host whose clock runs ahead (and is refused until it is
/// corrected) does not skip revocations that are live once it is.
fn live_cutoff(
    conn: &mut DbConnection,
    leeway: Duration,
) -> Result<NaiveDateTime, diesel::result::Error> {
    let db_now = crate::db::queries::clock::now(conn)?;
    let local = chrono::Utc::now().naive_utc();
    let leeway = chrono::Duration::from_std(leeway).unwrap_or_default();
    Ok(db_now.min(local) - leeway)
}

/// Every revocation of a token that expires after `cutoff`, a page at a time.
fn each_live_page(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    mut page: impl FnMut(Vec<RevokedToken>),
) -> Result<(), diesel::result::Error> {
    let mut after = 0;
    while let (rows, Some(last)) = revocations::live_page(conn, cutoff, after, LOAD_PAGE)? {
        page(rows);
        after = last;
    }
    Ok(())
}

/// Every revocation of a token that expires after `cutoff`, and the cursor to poll from
/// (the re-read after a failed poll).
fn all_live(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
) -> Result<(Vec<RevokedToken>, Cursor), diesel::result::Error> {
    // The cursor first: whatever commits while we read is picked up by the next poll.
    let cursor = revocations::cursor_now(conn)?;
    let mut all = Vec::new();
    each_live_page(conn, cutoff, |rows| all.extend(rows))?;
    Ok((all, cursor))
}

/// The database's clock minus this host's, unless the round trip took too long to tell.
fn measure_skew(
    conn: &mut DbConnection,
) -> Result<Option<chrono::Duration>, diesel::result::Error> {
    let (before, timer) = (chrono::Utc::now(), std::time::Instant::now());
    let db_now = crate::db::queries::clock::now(conn)?.and_utc();
    let round_trip = chrono::Duration::from_std(timer.elapsed()).unwrap_or_default();
    if round_trip > chrono::Duration::seconds(1) {
        return Ok(None);
    }
    Ok(Some(db_now - (before + round_trip / 2)))
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

/// Polls the database for other replicas' revocations until the process ends: every
/// `interval`, and at once when `push` wakes it (a notification: see [`super::push`]).
///
/// The poll has a connection of its own, so a pool exhausted by request traffic never
/// delays it; after an error it reconnects on the next tick, and the first read on the new
/// connection reloads every live revocation instead of polling from the cursor: the server
/// may not be the one the cursor came from. After a failover the promoted standby hands out
/// transaction ids again that the old primary had used for transactions which never reached
/// it, so ids can go back, and "txid >= cursor" would skip revocations written with them.
///
/// Each poll has a deadline: one
/// that hangs (a frozen connection) counts as failed and is set aside (see
/// [`super::polls`]); the connection's own deadlines (see [`crate::db::deadlines`]) usually end
/// it within seconds.
/// A poll also measures the clock offset from the database.
pub async fn sync_forever(
    manager: DbManager,
    set: Arc<RevocationSet>,
    mut cursor: Cursor,
    interval: Duration,
    leeway: Duration,
    push: Arc<Push>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = (set.freshness.max_staleness() / 2).clamp(interval, Duration::from_secs(5));
    let mut conn: Option<DbConnection> = None;
    let mut polls = BoundedPolls::default();
    // The cursor of the initial load holds until a read fails.
    let mut reload = false;
    let mut failing = false;
    let mut last_prune = std::time::Instant::now();
    loop {
        let woken = tokio::select! {
            biased;
            _ = push.woken() => true,
            _ = ticker.tick() => false,
        };
        let (m, c) = (manager.clone(), conn.take());
        let started = std::time::Instant::now();
        let (read, limit) = if reload {
            // A full read of a large table takes longer than a poll.
            (Read::Everything { leeway }, deadline * 6)
        } else {
            (Read::Since(cursor), deadline)
        };
        let outcome = match polls.run(limit, move || poll_once(&m, c, read)).await {
            Ok((c, Ok(polled))) => {
                conn = c;
                Ok((started, polled))
            }
            Ok((_, Err(e))) => Err(e),
            Err(failure) => Err(failure.to_string()),
        };
        match outcome {
            Ok((started, (rows, next, rules, skew))) => {
                if failing {
                    log::info!("revocation sync recovered");
                    failing = false;
                }
                let fresh = set.absorb(rows) + set.rules.replace(rules);
                push.polled(woken, fresh);
                if let Some(skew) = skew {
                    set.freshness.measured_skew(skew);
                }
                cursor = next;
                reload = false;
                set.freshness.synced(started);
                set.polls.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                reload = true;
                if !failing {
                    log::error!("revocation sync failed, revocations made by other replicas are not picked up until it recovers (tokens are refused once the last sync is older than {}s): {e}", set.freshness.max_staleness().as_secs_f64());
                    failing = true;
                }
            }
        }
        if woken {
            ticker.reset();
        }
        // Pruning decides by the earlier of the two clocks, and not at all while they disagree.
        if last_prune.elapsed() >= Duration::from_secs(60) && !set.freshness.clock_skewed() {
            let skew = (set.freshness.skew_secs() as i64).min(0);
            let before = chrono::Utc::now().timestamp() + skew - leeway.as_secs() as i64;
            set.prune(before);
            last_prune = std::time::Instant::now();
        }
    }
}

/// New revocations, the cursor after them, the rules in force and the clock offset.
type Polled = (
    Vec<RevokedToken>,
    Cursor,
    Vec<Rule>,
    Option<chrono::Duration>,
);
/// The connection to keep (only if the poll worked) and what the poll found.
type PollOutcome = (Option<DbConnection>, Result<Polled, String>);

/// What a poll reads.
#[derive(Clone, Copy)]
enum Read {
    /// What committed after the cursor (same server, same connection history).
    Since(Cursor),
    /// Every live revocation, after a failure: the server may have changed under the cursor.
    Everything { leeway: Duration },
}

fn poll_once(manager: &DbManager, conn: Option<DbConnection>, read: Read) -> PollOutcome {
    let mut c = match conn {
        Some(c) => c,
        None => match manager.connect() {
            Ok(c) => c,
            Err(e) => return (None, Err(e.to_string())),
        },
    };
    let rows = match read {
        Read::Since(cursor) => revocations::poll(&mut c, cursor),
        Read::Everything { leeway } => {
            live_cutoff(&mut c, leeway).and_then(|cutoff| all_live(&mut c, cutoff))
        }
    };
    let result = rows
        .and_then(|(rows, next)| {
            let rules = rules_in_force(&mut c)?;
            let skew = measure_skew(&mut c)?;
            Ok((rows, next, rules, skew))
        })
        .map_err(|e| e.to_string());
    // A connection that failed a query is not reused.
    (result.is_ok().then_some(c), result)
}
