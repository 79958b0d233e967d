//! Token use, recorded off the hot path: `last_used_at` on accounts and audit events for
//! attempts to use a revoked token.
//!
//! A request only touches in-memory maps. A background task writes in batches every few
//! seconds: `last_used_at` at most once a minute per token (the token cache says which use is
//! the first of its minute: [`crate::tokens::TokenService::verify_noting_use`]), and
//! revoked-token events at most
//! once per token per ten minutes and at most [`MAX_REVOKED_EVENTS_PER_MINUTE`] in all, so a
//! client hammering with a revoked token cannot flood the audit table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{record, Actor};
use crate::db::queries::identities;
use crate::db::{write_transaction, Pool};
use crate::time;

/// `last_used_at` is written at most this often per token.
pub const USE_GRANULARITY_SECS: i64 = 60;
/// One "used after revocation" event per token per this long.
const REVOKED_EVENT_GAP_SECS: i64 = 600;
pub const MAX_REVOKED_EVENTS_PER_MINUTE: u64 = 60;
const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct RevokedUse {
    jti: Uuid,
    identity_id: i64,
    at: i64,
    remote_addr: Option<String>,
    path: String,
}

/// Collects token use between flushes.
#[derive(Default)]
pub struct UsageRecorder {
    /// identity id → latest use not yet written.
    pending: crate::fastmap::FastMap<i64, i64>,
    /// jti → when its last revoked-use event was queued.
    revoked_seen: crate::fastmap::FastMap<Uuid, i64>,
    revoked_events: Mutex<Vec<RevokedUse>>,
    /// (minute, events queued in it) for the global cap.
    revoked_budget: Mutex<(i64, u64)>,
    dropped: AtomicU64,
}

impl UsageRecorder {
    pub fn new() -> UsageRecorder {
        UsageRecorder::default()
    }

    /// An account's token was used successfully (the first use of its minute).
    pub fn used(&self, identity_id: i64) {
        let now = chrono::Utc::now().timestamp();
        let pending = self.pending.pin();
        // Many tokens of one account in the same second: the map already says so (a read
        // allocates nothing; an insert allocates a node).
        if pending.get(&identity_id) != Some(&now) {
            pending.insert(identity_id, now);
        }
    }

    /// Somebody presented a revoked token.
    pub fn revoked_use(
        &self,
        jti: Uuid,
        identity_id: i64,
        remote_addr: Option<String>,
        path: &str,
    ) {
        let now = chrono::Utc::now().timestamp();
        let seen = self.revoked_seen.pin();
        if seen
            .get(&jti)
            .is_some_and(|t| now - *t < REVOKED_EVENT_GAP_SECS)
        {
            return;
        }
        {
            let mut budget = self
                .revoked_budget
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let minute = now / 60;
            if budget.0 != minute {
                *budget = (minute, 0);
            }
            if budget.1 >= MAX_REVOKED_EVENTS_PER_MINUTE {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            budget.1 += 1;
        }
        seen.insert(jti, now);
        let event = RevokedUse {
            jti,
            identity_id,
            at: now,
            remote_addr,
            path: path.chars().take(200).collect(),
        };
        self.revoked_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    /// Writes what was collected. Blocking.
    pub fn flush(&self, pool: &Pool) -> Result<(), String> {
        let now = chrono::Utc::now().timestamp();
        let pending: Vec<(i64, i64)> = {
            let map = self.pending.pin();
            let items: Vec<(i64, i64)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            for (k, v) in &items {
                // Keep an entry a request updated meanwhile.
                let _ = map.remove_if(k, |_, current| current == v);
            }
            items
        };
        let events = std::mem::take(
            &mut *self
                .revoked_events
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            log::warn!("{dropped} uses of revoked tokens were not audited (more than {MAX_REVOKED_EVENTS_PER_MINUTE} a minute)");
        }
        // Forget old entries so the maps stay small.
        self.revoked_seen
            .pin()
            .retain(|_, t| now - *t < REVOKED_EVENT_GAP_SECS);
        if pending.is_empty() && events.is_empty() {
            return Ok(());
        }
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        // One transaction per flush (one commit, one fsync), one statement per distinct time:
        // uses within a flush mostly share a second.
        let mut by_time: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
        for (id, t) in pending {
            by_time.entry(t).or_default().push(id);
        }
        write_transaction(&mut conn, |conn| -> Result<(), crate::error::ApiError> {
            for (t, ids) in by_time {
                identities::touch_last_used(conn, &ids, time::to_db(time::from_unix(t)))?;
            }
            for e in events {
                let actor = Actor {
                    identity_id: Some(e.identity_id),
                    remote_addr: e.remote_addr,
                };
                record(
                    conn,
                    &actor,
                    "token.used_after_revocation",
                    Some(e.identity_id),
                    Some(&e.jti.to_string()),
                    None,
                    json!({"path": e.path, "at": time::format(&time::from_unix(e.at))}),
                )?;
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Flushes every few seconds until the process ends.
pub async fn flush_forever(pool: Pool, recorder: Arc<UsageRecorder>) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (pool, recorder) = (pool.clone(), recorder.clone());
        match actix_web::rt::task::spawn_blocking(move || recorder.flush(&pool)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("recording token use failed: {e}"),
            Err(e) => log::warn!("recording token use failed: {e}"),
        }
    }
}
