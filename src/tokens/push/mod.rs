//! Push propagation of revocations (PostgreSQL): a session of its own LISTENs on
//! `tokend_revocations`, which triggers on `token_revocation` and `revocation_rule` notify at
//! every commit that writes them (migration `revocation_notify`), and wakes the revocation sync
//! ([`super::revocation::sync_forever`]) so it polls at once instead of at its next tick.
//!
//! A notification is only a wake-up: the woken poll reads from its cursor like any other, and
//! the timed poll goes on. A notification that is lost (the listener reconnecting, a pooler that
//! never delivers) delays a revocation by at most one sync interval and never loses it.
//!
//! A listener can be connected and still hear nothing: PgBouncer in transaction mode accepts
//! LISTEN and never delivers. The sync reports every poll to [`Push::polled`]; when timed polls
//! keep finding revocations that no notification announced, push is declared not working (one
//! warning, `tokend_revocation_push_active` 0) until a notification is heard again.
//!
//! On SQLite (one process) and with `TOKEND_DATABASE_LISTEN_URL=off` there is no listener:
//! [`Push::off`] never wakes the sync.

mod listener;
mod tls;

pub use listener::{listener_config, Target};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::Notify;

use listener::listen_forever;

use crate::config::{Database, ListenUrl, Settings};

/// The channel the triggers notify.
pub const CHANNEL: &str = "tokend_revocations";

/// Consecutive timed polls that found revocations no notification announced before push is
/// declared not working. One can happen to a working listener (a poll that runs between a
/// commit and the delivery of its notification); then the notification arrives and the count
/// starts again.
const DEAF_AFTER: u32 = 3;

/// Woken polls are at least this far apart: a burst of commits costs each replica at most 200
/// polls a second, and a revocation at most this much more time.
const WOKEN_GAP: Duration = Duration::from_millis(5);

/// Whether push works, shared by the listener and the revocation sync.
pub struct Push {
    wake: Notify,
    /// False on SQLite and when the listener is off: nothing to judge, no gauge.
    enabled: bool,
    /// The listener has a session that executed LISTEN.
    listening: AtomicBool,
    /// Notifications heard since start.
    heard: AtomicU64,
    judge: Mutex<Judge>,
    /// When the last wake-up was handed to the sync.
    last_woken: Mutex<Option<Instant>>,
}

/// What the sync's polls tell about the listener.
#[derive(Default)]
struct Judge {
    /// `heard` when the previous poll ended.
    heard_before: u64,
    /// Timed polls in a row that found revocations while nothing was heard.
    unannounced: u32,
    /// Declared not working (warned once).
    deaf: bool,
}

impl Push {
    /// No listener: the sync polls on its timer alone.
    pub fn off() -> Arc<Push> {
        Arc::new(Push::new(false))
    }

    fn new(enabled: bool) -> Push {
        Push {
            wake: Notify::new(),
            enabled,
            listening: AtomicBool::new(false),
            heard: AtomicU64::new(0),
            judge: Mutex::new(Judge::default()),
            last_woken: Mutex::new(None),
        }
    }

    /// Completes when a notification (or a reconnection, after which notifications may have
    /// been missed) asks for a poll now. One wake-up stored while the sync is busy polling
    /// makes it poll once more right after (at least 5 ms after the previous one).
    pub async fn woken(&self) {
        self.wake.notified().await;
        let since = self
            .last_woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|at| at.elapsed());
        if let Some(wait) = since.and_then(|s| WOKEN_GAP.checked_sub(s)) {
            tokio::time::sleep(wait).await;
        }
        *self
            .last_woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Whether push works: listening, and not judged deaf.
    pub fn is_active(&self) -> bool {
        let judge = self.judge.lock().unwrap_or_else(PoisonError::into_inner);
        self.active(&judge)
    }

    fn active(&self, judge: &Judge) -> bool {
        self.enabled && self.listening.load(Ordering::Relaxed) && !judge.deaf
    }

    fn publish(&self, judge: &Judge) {
        crate::telemetry::push_active(self.active(judge));
    }

    fn heard_one(&self) {
        self.heard.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::push_notification();
        self.wake.notify_one();
    }

    fn set_listening(&self, listening: bool) {
        let mut judge = self.judge.lock().unwrap_or_else(PoisonError::into_inner);
        self.listening.store(listening, Ordering::Relaxed);
        // Whatever was unannounced happened on another session; `deaf` stays until something
        // is heard: a reconnection to the same pooler hears nothing either.
        judge.unannounced = 0;
        self.publish(&judge);
    }

    /// Called by the sync after each successful poll: `woken` if a wake-up started it, `fresh`
    /// how many revocations or rules it found that this replica did not hold yet.
    pub fn polled(&self, woken: bool, fresh: usize) {
        if !self.enabled {
            return;
        }
        let heard = self.heard.load(Ordering::Relaxed);
        let mut judge = self.judge.lock().unwrap_or_else(PoisonError::into_inner);
        if heard != judge.heard_before {
            judge.heard_before = heard;
            judge.unannounced = 0;
            if judge.deaf {
                judge.deaf = false;
                log::info!("revocation push works again: notifications arrive");
                self.publish(&judge);
            }
        } else if !woken && fresh > 0 && self.listening.load(Ordering::Relaxed) {
            judge.unannounced += 1;
            if judge.unannounced >= DEAF_AFTER && !judge.deaf {
                judge.deaf = true;
                log::warn!(
                    "revocation push is not working: polls keep finding revocations that no \
                     notification announced, so other replicas' revocations arrive by the poll \
                     only; a PgBouncer in transaction mode accepts LISTEN and never delivers: set \
                     TOKEND_DATABASE_LISTEN_URL to a direct connection to PostgreSQL"
                );
                self.publish(&judge);
            }
        }
    }
}

/// Starts the listener when the database is PostgreSQL and push is not off. Errors are start
/// errors: a listener URL tokio-postgres cannot read.
pub fn start(settings: &Settings) -> Result<Arc<Push>, String> {
    let url = match (&settings.database, &settings.database_listen_url) {
        (Database::Sqlite { .. }, _) => return Ok(Push::off()),
        (Database::Postgres { .. }, ListenUrl::Off) => {
            log::info!(
                "revocation push is off (TOKEND_DATABASE_LISTEN_URL=off): other replicas' \
                 revocations arrive by the poll, every {:?}",
                settings.revocation_sync_interval
            );
            crate::telemetry::push_active(false);
            return Ok(Push::off());
        }
        (Database::Postgres { url }, ListenUrl::Database) => url,
        (Database::Postgres { .. }, ListenUrl::Url(url)) => url,
    };
    let target = listener_config(url.expose_secret())
        .map_err(|e| format!("TOKEND_DATABASE_LISTEN_URL: {e}"))?;
    if !target.ignored.is_empty() {
        log::info!(
            "revocation listener: URL parameters only libpq knows are not used by the listener: {}",
            target.ignored.join(", ")
        );
    }
    let push = Arc::new(Push::new(true));
    crate::telemetry::push_active(false);
    actix_web::rt::spawn(listen_forever(
        target,
        push.clone(),
        settings.revocation_sync_interval,
    ));
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_polls_that_find_unannounced_revocations_mean_push_is_deaf() {
        let push = Push::new(true);
        push.set_listening(true);
        assert!(push.is_active());
        // A poll may run between a commit and its notification once; the notification then
        // arrives and the count starts again.
        push.polled(false, 1);
        push.polled(false, 2);
        push.heard_one();
        push.polled(true, 0);
        push.polled(false, 1);
        assert!(push.is_active());
        // Timed polls that find nothing say nothing.
        for _ in 0..10 {
            push.polled(false, 0);
        }
        push.polled(false, 1);
        push.polled(false, 1);
        assert!(
            !push.is_active(),
            "three timed polls found revocations, nothing heard"
        );
        push.heard_one();
        push.polled(true, 1);
        assert!(push.is_active(), "heard again");
    }

    #[test]
    fn off_never_judges() {
        let push = Push::new(false);
        for _ in 0..5 {
            push.polled(false, 1);
        }
        assert!(!push.is_active());
    }
}
