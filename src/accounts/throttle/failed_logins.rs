//! Failed logins in the audit trail: summed per (login, address) in memory, then written by
//! [`flush_forever`] every few seconds as one `login.failed` event each, with the count and the
//! first and last time; put back when they could not be written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{LoginThrottle, PairKey};
use crate::audit::{record, Actor};
use crate::db::{write_transaction, DbConnection, Pool};
use crate::error::ApiError;

/// How often summed failures are written to the audit trail.
const AUDIT_EVERY: Duration = Duration::from_secs(10);

/// Failed logins of one (login, address) not yet in the audit trail.
#[derive(Debug, Clone)]
pub struct FailedLogins {
    pub(super) key: PairKey,
    /// The last address seen in full (the key of an IPv6 client is its /64).
    pub(super) remote_addr: String,
    pub(super) identity_id: Option<i64>,
    pub(super) count: u32,
    pub(super) first: DateTime<Utc>,
    pub(super) last: DateTime<Utc>,
}

impl LoginThrottle {
    /// Puts failures back that could not be written.
    pub fn restore(&self, failures: impl IntoIterator<Item = FailedLogins>) {
        let mut inner = self.lock();
        for f in failures {
            match inner.failed.get_mut(&f.key) {
                Some(newer) => {
                    newer.count += f.count;
                    newer.first = newer.first.min(f.first);
                    newer.identity_id = newer.identity_id.or(f.identity_id);
                }
                None => {
                    inner.failed.insert(f.key.clone(), f);
                }
            }
        }
    }

    /// Writes the summed failures as `login.failed` events, one transaction. Blocking.
    pub fn flush(&self, pool: &Pool) -> Result<(), String> {
        self.prune(Instant::now());
        let failures: Vec<FailedLogins> = self.lock().failed.drain().map(|(_, f)| f).collect();
        if failures.is_empty() {
            return Ok(());
        }
        let written = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
            write_transaction(&mut conn, |conn| {
                failures.iter().try_for_each(|f| record_failures(conn, f))
            })
            .map_err(|e| e.message().to_owned())
        });
        if written.is_err() {
            self.restore(failures);
        }
        written
    }
}

/// One `login.failed` event for a (login, address): how many, first and last. Who tried is
/// unknown: no actor, only the address and the account aimed at.
pub fn record_failures(conn: &mut DbConnection, f: &FailedLogins) -> Result<(), ApiError> {
    let anonymous = Actor {
        identity_id: None,
        remote_addr: Some(f.remote_addr.clone()),
    };
    record(
        conn,
        &anonymous,
        "login.failed",
        f.identity_id,
        None,
        None,
        json!({
            "login": f.key.login,
            "failures": f.count,
            "first_failed_at": crate::time::format(&f.first),
            "last_failed_at": crate::time::format(&f.last),
        }),
    )
}

/// Writes summed failures every few seconds until the process ends.
pub async fn flush_forever(pool: Pool, throttle: Arc<LoginThrottle>) {
    let mut ticker = tokio::time::interval(AUDIT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (pool, throttle) = (pool.clone(), throttle.clone());
        match actix_web::rt::task::spawn_blocking(move || throttle.flush(&pool)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("writing failed logins to the audit trail failed: {e}"),
            Err(e) => log::warn!("writing failed logins to the audit trail failed: {e}"),
        }
    }
}
