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

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio_postgres::config::{Host, SslMode, TargetSessionAttrs};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{Database, ListenUrl, Settings};

mod tls;

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

/// Reconnection waits: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// An idle session is checked with a query this often (a dead peer that TCP has not noticed,
/// a server's `idle_session_timeout`), and the query, like LISTEN, may take this long.
const PING_EVERY: Duration = Duration::from_secs(10);
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Deadlines of the listener's connection unless its URL sets them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVES_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVES_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// URL parameters tokio-postgres reads as libpq does, passed on as they are.
const PASSED_ON: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "channel_binding",
    "load_balance_hosts",
];

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

/// Where and how the listener connects.
pub struct Target {
    config: Config,
    /// `None` when `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
    /// URL parameters only libpq knows, left out (`sslcert`, `gssencmode`, …).
    ignored: Vec<String>,
}

/// The listener's connection settings from a libpq-style URL
/// (`postgres://u:p@h1:5432,h2:5433/db?…`).
///
/// What differs from libpq is made to mean what libpq means: `tcp_user_timeout` is in
/// milliseconds; `keepalives_count` is libpq's name for `keepalives_retries`; `sslmode` is libpq's (default `prefer`; `allow` as `prefer`; see [`tls`]),
/// with `sslrootcert`. A standby cannot LISTEN, so the session is always read-write
/// (`target_session_attrs` is ignored): on a multi-host URL the listener finds the primary,
/// and after a failover the new one. Unless the URL sets them, the connect timeout is 5 s and
/// keepalives and `tcp_user_timeout` notice a dead peer within about 10 s.
pub fn listener_config(url: &str) -> Result<Target, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut passed = Vec::new();
    let mut ignored = Vec::new();
    let mut tcp_user_timeout = None;
    let mut sslmode = "prefer".to_owned();
    let mut rootcert = None;
    let mut set = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match key {
            "tcp_user_timeout" => {
                let ms: u64 = decoded
                    .trim()
                    .parse()
                    .map_err(|_| "tcp_user_timeout must be a number of milliseconds".to_owned())?;
                tcp_user_timeout = Some(Duration::from_millis(ms));
            }
            "sslmode" => sslmode = decoded.into_owned(),
            "sslrootcert" => rootcert = Some(decoded.into_owned()),
            // libpq's name for what tokio-postgres calls keepalives_retries.
            "keepalives_count" => passed.push(format!("keepalives_retries={value}")),
            "target_session_attrs" => {}
            key if PASSED_ON.contains(&key) => passed.push(pair.to_owned()),
            key => ignored.push(key.to_owned()),
        }
        set.push(match key {
            "keepalives_count" => "keepalives_retries".to_owned(),
            key => key.to_owned(),
        });
    }
    let rebuilt = if passed.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", passed.join("&"))
    };
    let mut config = Config::from_str(&rebuilt).map_err(|e| e.to_string())?;
    let (mode, check) = match sslmode.as_str() {
        "disable" => (SslMode::Disable, None),
        "allow" | "prefer" => (SslMode::Prefer, Some(tls::Check::Nothing)),
        "require" => (SslMode::Require, Some(tls::Check::Require)),
        "verify-ca" => (SslMode::Require, Some(tls::Check::Chain)),
        "verify-full" => (SslMode::Require, Some(tls::Check::Full)),
        other => return Err(format!("unknown sslmode '{other}'")),
    };
    config.ssl_mode(mode);
    let tls = check
        .map(|check| tls::connector(check, rootcert.as_deref()))
        .transpose()?;
    let given = |key: &str| set.iter().any(|k| k == key);
    config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    if !given("application_name") {
        config.application_name("tokend revocation listener");
    }
    if !given("connect_timeout") {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if !given("keepalives") {
        config.keepalives(true);
    }
    if !given("keepalives_idle") {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if !given("keepalives_interval") {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if !given("keepalives_retries") {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
    match tcp_user_timeout {
        // libpq: 0 is the system's default.
        Some(t) if t.is_zero() => {}
        Some(t) => {
            config.tcp_user_timeout(t);
        }
        None => {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
    }
    Ok(Target {
        config,
        tls,
        ignored,
    })
}

/// `h1:5432,h2:5433/db`: where the listener connects, without credentials, for the log.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(h) => format!("{h}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// Listens until the process ends, reconnecting with capped backoff. Logs each change once: a
/// warning when it stops hearing (or cannot start), info when it hears again.
async fn listen_forever(target: Target, push: Arc<Push>, poll_interval: Duration) {
    let (config, tls) = (target.config, target.tls);
    let target = describe(&config);
    let mut backoff = BACKOFF_FIRST;
    // None until the first attempt ends one way or the other.
    let mut hearing: Option<bool> = None;
    loop {
        let mut listening = false;
        let on_listening = || {
            listening = true;
            if hearing != Some(true) {
                log::info!(
                    "revocation push: listening on {target} for revocations of other replicas"
                );
                hearing = Some(true);
            }
        };
        let ended = match &tls {
            None => session(&config, NoTls, &push, on_listening).await,
            Some(tls) => session(&config, tls.clone(), &push, on_listening).await,
        };
        push.set_listening(false);
        if listening {
            backoff = BACKOFF_FIRST;
        }
        if hearing != Some(false) {
            log::warn!(
                "revocation push: not listening on {target} ({ended}); other replicas' \
                 revocations arrive by the poll, every {poll_interval:?}, until it reconnects"
            );
            hearing = Some(false);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One session: connect, LISTEN, then hear notifications until the connection fails. Returns
/// why it ended.
async fn session<T>(
    config: &Config,
    tls: T,
    push: &Arc<Push>,
    on_listening: impl FnOnce(),
) -> String
where
    T: MakeTlsConnect<Socket>,
    T::Stream: 'static,
{
    let (client, connection) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(e) => return format!("cannot connect: {e}"),
    };
    let mut driver = actix_web::rt::spawn(drive(connection, push.clone()));
    let ended = async {
        match tokio::time::timeout(QUERY_TIMEOUT, client.batch_execute(&format!("LISTEN {CHANNEL}")))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("LISTEN failed: {e}"),
            Err(_) => return format!("LISTEN took longer than {QUERY_TIMEOUT:?}"),
        }
        push.set_listening(true);
        on_listening();
        // Whatever committed while nobody listened is read now.
        push.wake.notify_one();
        loop {
            tokio::select! {
                ended = &mut driver => {
                    return match ended {
                        Ok(Ok(())) => "the server closed the connection".to_owned(),
                        Ok(Err(e)) => format!("connection lost: {e}"),
                        Err(e) => format!("listener task failed: {e}"),
                    };
                }
                _ = tokio::time::sleep(PING_EVERY) => {
                    match tokio::time::timeout(QUERY_TIMEOUT, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return format!("connection check failed: {e}"),
                        Err(_) => return format!("connection check took longer than {QUERY_TIMEOUT:?}"),
                    }
                }
            }
        }
    }
    .await;
    driver.abort();
    ended
}

/// Drives the connection, counting notifications on [`CHANNEL`] and waking the sync for each.
async fn drive<S>(
    mut connection: tokio_postgres::Connection<Socket, S>,
    push: Arc<Push>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => push.heard_one(),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_host_url_with_libpq_parameters() {
        let target = listener_config(
            "postgres://u:s%40cret@h1:5432,h2:5433/db?target_session_attrs=read-write\
             &connect_timeout=3&keepalives=1&keepalives_idle=4&tcp_user_timeout=9000\
             &options=-c%20statement_timeout%3D5000&sslmode=prefer&sslcert=%2Fetc%2Fclient.pem\
             &application_name=tokend",
        )
        .unwrap();
        let config = &target.config;
        assert_eq!(describe(config), "h1:5432,h2:5433/db");
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_password(), Some(&b"s@cret"[..]));
        assert_eq!(config.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(4));
        // libpq's tcp_user_timeout is in milliseconds.
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_millis(9000))
        );
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_application_name(), Some("tokend"));
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
        assert!(target.tls.is_some());
        assert_eq!(target.ignored, vec!["sslcert".to_owned()]);
    }

    #[test]
    fn the_database_deadlines_are_read_as_libpq_reads_them() {
        let url = crate::db::deadlines::with_deadlines("postgres://u@h1:5432,h2:5432/db");
        let target = listener_config(&url).unwrap();
        assert!(target.ignored.is_empty(), "{:?}", target.ignored);
        let config = &target.config;
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(
            config.get_keepalives_interval(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(config.get_keepalives_retries(), Some(3));
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_millis(5000))
        );
    }

    #[test]
    fn defaults_notice_a_dead_peer() {
        let target = listener_config("postgresql://postgres@127.0.0.1/tokend").unwrap();
        assert!(target.ignored.is_empty());
        let config = &target.config;
        // libpq's default: TLS when the server offers it.
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
        assert!(target.tls.is_some());
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(config.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        // A standby cannot LISTEN.
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        let config =
            listener_config("postgres://u@h/db?target_session_attrs=any&tcp_user_timeout=0")
                .unwrap()
                .config;
        assert_eq!(
            config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(config.get_tcp_user_timeout(), None);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        for url in [
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Froot.crt",
            "postgres://u@h/db?sslmode=require&sslrootcert=%2Fnonexistent%2Froot.crt",
            "postgres://u@h/db?sslmode=bogus",
            "postgres://u@h/db?tcp_user_timeout=soon",
            "postgres://u@h:notaport/db",
        ] {
            assert!(listener_config(url).is_err(), "{url}");
        }
    }

    #[test]
    fn sslmode_as_libpq_means_it() {
        let target = listener_config("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(target.config.get_ssl_mode(), SslMode::Disable);
        assert!(target.tls.is_none());
        for mode in ["require", "verify-ca", "verify-full"] {
            let target = listener_config(&format!(
                "postgres://u@h/db?sslmode={mode}&sslrootcert=system"
            ))
            .unwrap();
            assert_eq!(target.config.get_ssl_mode(), SslMode::Require, "{mode}");
            assert!(target.tls.is_some(), "{mode}");
            assert!(target.ignored.is_empty(), "{mode}");
        }
    }

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
