//! Whether this replica may judge tokens: its revocation state is recent enough and its clock
//! agrees with the database's. When either fails, every token check answers 503
//! (`revocation_state_stale`, `clock_skew`) instead of trusting what it cannot know: a revoked
//! token is refused everywhere within the staleness bound, or the replica refuses everything.
//!
//! The revocation sync records each completed poll ([`Freshness::synced`]) and the clock offset
//! it measured against the database ([`Freshness::measured_skew`]); the hot path reads two
//! atomics and the monotonic clock ([`Freshness::check`]). [`watch_forever`] logs each
//! transition once.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why this replica refuses to judge tokens now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The last completed revocation sync is older than the bound.
    Stale { age: Duration, bound: Duration },
    /// This host's clock differs from the database's by more than the bound.
    ClockSkew { skew_ms: i64, bound: Duration },
}

impl Refusal {
    /// When a client may try again: soon, another replica may serve it meanwhile.
    pub fn retry_after_secs(&self) -> u64 {
        1
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Stale { age, bound } => write!(
                f,
                "this replica last synchronised revocations and signing keys {:.1}s ago (the bound is {}s): it cannot tell whether a token was revoked, so it refuses every token until the database answers again; retry, another replica may serve you",
                age.as_secs_f64(),
                bound.as_secs_f64()
            ),
            Refusal::ClockSkew { skew_ms, bound } => write!(
                f,
                "this replica's clock differs from the database's by {:.1}s (at most {}s is allowed): it cannot judge expiry, so it refuses every token until its clock is fixed; retry, another replica may serve you",
                *skew_ms as f64 / 1000.0,
                bound.as_secs_f64()
            ),
        }
    }
}

/// How current this replica's view is.
pub struct Freshness {
    epoch: Instant,
    /// Nanoseconds after `epoch` when the last revocation sync completed.
    last_sync_ns: AtomicU64,
    /// The same for the signing-key sync (a key revoked elsewhere reaches this replica by
    /// it); `u64::MAX` when keys are not synchronised (HS256, a shared secret).
    last_key_sync_ns: AtomicU64,
    max_staleness: Duration,
    /// Database clock minus this host's, in milliseconds, as last measured.
    skew_ms: AtomicI64,
    max_skew: Duration,
    skewed: AtomicBool,
}

impl Freshness {
    /// Fresh as of now (the state was just loaded).
    pub fn new(max_staleness: Duration, max_skew: Duration) -> Freshness {
        Freshness {
            epoch: Instant::now(),
            last_sync_ns: AtomicU64::new(0),
            last_key_sync_ns: AtomicU64::new(0),
            max_staleness,
            skew_ms: AtomicI64::new(0),
            max_skew,
            skewed: AtomicBool::new(false),
        }
    }

    /// A revocation sync that started reading at `started` completed: the state is as
    /// current as that moment.
    pub fn synced(&self, started: Instant) {
        let ns = started.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.last_sync_ns.fetch_max(ns, Ordering::Release);
    }

    /// A signing-key sync that started at `started` completed.
    pub fn keys_synced(&self, started: Instant) {
        let ns = started.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.last_key_sync_ns.fetch_max(ns, Ordering::Release);
    }

    /// Keys are not synchronised from the database here: only revocations count.
    pub fn keys_not_synced(&self) {
        self.last_key_sync_ns.store(u64::MAX, Ordering::Release);
    }

    /// How long ago the older of the last revocation sync and the last key sync completed:
    /// both carry revocations (of tokens, of signing keys).
    pub fn sync_age(&self) -> Duration {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let last = self
            .last_sync_ns
            .load(Ordering::Acquire)
            .min(self.last_key_sync_ns.load(Ordering::Acquire));
        Duration::from_nanos(now.saturating_sub(last))
    }

    pub fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    pub fn max_skew(&self) -> Duration {
        self.max_skew
    }

    /// Records the database clock minus this host's.
    pub fn measured_skew(&self, skew: chrono::Duration) {
        let ms = skew.num_milliseconds();
        self.skew_ms.store(ms, Ordering::Relaxed);
        let bound = self.max_skew.as_millis() as i64;
        self.skewed.store(ms.abs() > bound, Ordering::Release);
    }

    /// Database clock minus this host's, in seconds, as last measured.
    pub fn skew_secs(&self) -> f64 {
        self.skew_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Whether this host's clock is too far from the database's.
    pub fn clock_skewed(&self) -> bool {
        self.skewed.load(Ordering::Acquire)
    }

    /// The staleness check alone.
    pub fn check_sync(&self) -> Result<(), Refusal> {
        let age = self.sync_age();
        if age > self.max_staleness {
            return Err(Refusal::Stale {
                age,
                bound: self.max_staleness,
            });
        }
        Ok(())
    }

    /// The clock check alone.
    pub fn check_clock(&self) -> Result<(), Refusal> {
        if self.clock_skewed() {
            return Err(Refusal::ClockSkew {
                skew_ms: self.skew_ms.load(Ordering::Relaxed),
                bound: self.max_skew,
            });
        }
        Ok(())
    }

    /// May this replica judge tokens now? On every token check.
    #[inline]
    pub fn check(&self) -> Result<(), Refusal> {
        self.check_sync()?;
        self.check_clock()
    }
}

/// Logs each change of state once: warn when refusing, info when recovered.
pub async fn watch_forever(freshness: Arc<Freshness>) {
    let period =
        (freshness.max_staleness / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut stale, mut skewed) = (false, false);
    loop {
        ticker.tick().await;
        match (freshness.check_sync(), stale) {
            (Err(why), false) => {
                log::warn!("refusing every token: {why}");
                stale = true;
            }
            (Ok(()), true) => {
                log::info!("revocation state is current again; accepting tokens");
                stale = false;
            }
            _ => {}
        }
        match (freshness.check_clock(), skewed) {
            (Err(why), false) => {
                log::warn!("refusing every token and deleting nothing: {why}");
                skewed = true;
            }
            (Ok(()), true) => {
                log::info!(
                    "clock agrees with the database again ({:+.3}s); accepting tokens",
                    freshness.skew_secs()
                );
                skewed = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_skewed_are_refused_and_recover() {
        let f = Freshness::new(Duration::from_millis(30), Duration::from_secs(5));
        f.synced(Instant::now());
        assert!(f.check().is_ok());
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(f.check(), Err(Refusal::Stale { .. })));
        f.synced(Instant::now());
        f.keys_synced(Instant::now());
        assert!(f.check().is_ok());
        // A key sync that stopped counts as much as a revocation sync that stopped.
        f.keys_synced(Instant::now());
        std::thread::sleep(Duration::from_millis(40));
        f.synced(Instant::now());
        assert!(matches!(f.check(), Err(Refusal::Stale { .. })));
        f.keys_not_synced();
        assert!(f.check().is_ok());
        f.measured_skew(chrono::Duration::seconds(-7));
        assert!(matches!(f.check(), Err(Refusal::ClockSkew { .. })));
        f.measured_skew(chrono::Duration::milliseconds(300));
        assert!(f.check().is_ok());
    }
}
