//! The listener: a PostgreSQL session of its own that LISTENs on [`CHANNEL`], reconnecting
//! with capped backoff, and wakes the revocation sync for every notification. Its connection
//! settings come from a libpq-style URL ([`listener_config`]).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode, TargetSessionAttrs};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Config, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{tls, Push, CHANNEL};

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

/// Where and how the listener connects.
pub struct Target {
    pub(super) config: Config,
    /// `None` when `sslmode=disable`.
    pub(super) tls: Option<MakeRustlsConnect>,
    /// URL parameters only libpq knows, left out (`sslcert`, `gssencmode`, …).
    pub(super) ignored: Vec<String>,
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
pub(super) async fn listen_forever(target: Target, push: Arc<Push>, poll_interval: Duration) {
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
}
