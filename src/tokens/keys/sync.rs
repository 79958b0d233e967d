//! Keeps a replica's keys in step with the table, and rotates on schedule.

use std::sync::Arc;
use std::time::Duration;

use super::{KeyError, KeyStore};
use crate::db::queries::keys as key_queries;
use crate::db::{DbConnection, DbManager};

/// How long one key-sync read (and a scheduled rotation) may take before it counts as failed.
const KEY_POLL_DEADLINE: Duration = Duration::from_secs(5);

/// Keeps this replica's keys in step with the table (rotations, emergency revocations, keys
/// retiring), and rotates on schedule. Runs until the process ends. Each read has a deadline
/// and a stuck one is set aside (see [`crate::tokens::polls`]); the reads count for the staleness
/// bound (a key revoked elsewhere reaches this replica by them).
pub async fn sync_forever(
    manager: DbManager,
    store: Arc<KeyStore>,
    interval: Duration,
    rotation_period: Option<Duration>,
    max_token_lifetime: Duration,
    publish_lead: Duration,
    freshness: Arc<crate::tokens::freshness::Freshness>,
) {
    if !store.is_managed() {
        freshness.keys_not_synced();
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<DbConnection> = None;
    let mut polls = crate::tokens::polls::BoundedPolls::default();
    let mut failing = false;
    let mut last_rotation_check = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let check_rotation =
            rotation_period.is_some() && last_rotation_check.elapsed() >= Duration::from_secs(60);
        if check_rotation {
            last_rotation_check = std::time::Instant::now();
        }
        let (m, c, s) = (manager.clone(), conn.take(), store.clone());
        let started = std::time::Instant::now();
        let result = polls
            .run(KEY_POLL_DEADLINE, move || {
                let mut c = match c {
                    Some(c) => c,
                    None => m.connect().map_err(|e| e.to_string())?,
                };
                let outcome = (|| -> Result<(), KeyError> {
                    if let (true, Some(period)) = (check_rotation, rotation_period) {
                        if let Some(r) =
                            s.rotate(&mut c, max_token_lifetime, Some(period), publish_lead)?
                        {
                            log::info!(
                                "scheduled key rotation: {} now signs, {:?} retiring",
                                r.active_kid,
                                r.retiring_kid
                            );
                        }
                        let now = crate::db::queries::clock::now(&mut c)?;
                        key_queries::retire_expired(&mut c, now)?;
                    }
                    if s.reload(&mut c)? {
                        log::info!(
                            "signing keys changed; now signing with {}",
                            s.current().signing_kid()
                        );
                    }
                    Ok(())
                })();
                match outcome {
                    Ok(()) => Ok(Some(c)),
                    Err(e) => Err(crate::error::cause_chain(&e)),
                }
            })
            .await;
        // Each change of state is logged once, not on every tick of an outage.
        match result.unwrap_or_else(|failure| Err(failure.to_string())) {
            Ok(c) => {
                conn = c;
                // A key revoked elsewhere is enforced here as of this read: it counts for
                // the staleness bound like a revocation sync.
                freshness.keys_synced(started);
                if failing {
                    log::info!("signing key sync recovered");
                    failing = false;
                }
            }
            // Once per outage, not on every tick (four times a second).
            Err(e) if !failing => {
                log::error!("signing key sync failed, key changes made elsewhere are not picked up until it recovers: {e}");
                failing = true;
            }
            Err(e) => log::debug!("signing key sync still failing: {e}"),
        }
    }
}
