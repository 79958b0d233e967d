//! A TCP proxy to put between tokend and PostgreSQL, whose behaviour a test switches while
//! tokend runs: the faults of a bad network day, with real sockets.
//!
//! ```ignore
//! let (storage, proxy) = Storage::postgres_behind_proxy();   // tokend's URL points at the proxy
//! let app = TestApp::start(storage.clone(), test_settings(&storage)).await;
//! proxy.set(Mode::Freeze);                                   // a stuck network path
//! proxy.set(Mode::Pass);
//! ```
//!
//! The proxy runs on a thread and a runtime of its own, so it keeps moving bytes (or not)
//! whatever the test's own thread is doing, blocking calls included.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards every byte at once.
    Pass,
    /// New connections are reset as soon as they arrive (what a client sees when nothing
    /// listens); open ones keep passing.
    Refuse,
    /// Every open connection is closed now (FIN, as when the server process dies); new ones
    /// are refused as in [`Mode::Refuse`].
    Close,
    /// No byte moves either way, on open connections and on new ones, which are accepted
    /// (the TCP handshake succeeds) and frozen too: a stuck network path or pooler. Nothing
    /// is closed; bytes held back move once the mode changes.
    Freeze,
    /// Each chunk, either way, is forwarded after this delay.
    Delay(Duration),
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// How many times `Close` was set: a connection opened before the latest one is closed,
    /// even if the mode changed again before it noticed.
    closings: u64,
}

/// A running proxy on 127.0.0.1; stops, closing every connection, when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on 127.0.0.1:0 to `target`, in mode [`Mode::Pass`].
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, states) = watch::channel(State {
            mode: Mode::Pass,
            closings: 0,
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = accept_forever(listener, target, states) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection's task, closing its sockets.
            })
            .expect("start the fault proxy thread");
        FaultProxy {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the mode; it applies to open connections at once.
    pub fn set(&self, mode: Mode) {
        self.state.send_modify(|s| {
            s.mode = mode;
            if mode == Mode::Close {
                s.closings += 1;
            }
        });
    }

    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_forever(listener: TcpListener, target: SocketAddr, states: watch::Receiver<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: try again soon rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = *states.borrow();
        match state.mode {
            Mode::Refuse | Mode::Close => {
                // Reset, not a polite FIN: as close to "connection refused" as an accepted
                // socket gets.
                let _ = client.set_zero_linger();
                drop(client);
            }
            Mode::Pass | Mode::Freeze | Mode::Delay(_) => {
                tokio::spawn(relay(client, target, states.clone(), state.closings));
            }
        }
    }
}

/// Moves bytes both ways until either side closes or `Close` is set.
async fn relay(
    client: TcpStream,
    target: SocketAddr,
    mut states: watch::Receiver<State>,
    closings: u64,
) {
    let pumps = states.clone();
    let connect_and_pump = async move {
        let Ok(server) = TcpStream::connect(target).await else {
            return;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (from_client, to_client) = client.into_split();
        let (from_server, to_server) = server.into_split();
        tokio::select! {
            _ = pump(from_client, to_server, pumps.clone()) => {}
            _ = pump(from_server, to_client, pumps) => {}
        }
    };
    tokio::select! {
        _ = connect_and_pump => {}
        _ = states.wait_for(|s| s.closings != closings) => {}
    }
}

/// One direction: read a chunk, hold it while frozen or delayed, write it.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut states: watch::Receiver<State>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Not reading while frozen: the sender's kernel buffers fill, as on a stuck path.
        if thawed(&mut states).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            // The end of the stream is held back while frozen, like the bytes.
            _ => {
                let _ = thawed(&mut states).await;
                return;
            }
        };
        let Ok(mode) = thawed(&mut states).await else {
            return;
        };
        if let Mode::Delay(delay) = mode {
            tokio::time::sleep(delay).await;
            // Frozen during the delay: the chunk waits for the thaw too.
            if thawed(&mut states).await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits until the mode is not `Freeze`; returns it (Err: the proxy is stopping).
async fn thawed(states: &mut watch::Receiver<State>) -> Result<Mode, watch::error::RecvError> {
    Ok(states.wait_for(|s| s.mode != Mode::Freeze).await?.mode)
}

/// The `host:port` a `postgres://` URL names, resolved (5432 when it names no port).
pub fn pg_server_addr(url: &str) -> SocketAddr {
    let (_, host_port, _) = split_authority(url);
    let with_port = if host_port.ends_with(']') || !host_port.contains(':') {
        format!("{host_port}:5432")
    } else {
        host_port.to_owned()
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL server {with_port:?}"))
}

/// `url` with its `host:port` replaced by `addr`.
pub fn pg_url_via(url: &str, addr: SocketAddr) -> String {
    let (before, _, after) = split_authority(url);
    format!("{before}{addr}{after}")
}

/// `postgres://user@host:port/db?q` → ("postgres://user@", "host:port", "/db?q").
fn split_authority(url: &str) -> (&str, &str, &str) {
    let scheme_end = url
        .find("://")
        .map(|i| i + 3)
        .unwrap_or_else(|| panic!("not a postgres:// URL: {url:?}"));
    let rest = &url[scheme_end..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let host_start = scheme_end + authority.rfind('@').map(|i| i + 1).unwrap_or(0);
    let host_end = scheme_end + authority_len;
    assert!(
        host_end > host_start && !url[host_start..host_end].contains(','),
        "the fault proxy needs a URL with one TCP host: {url:?}"
    );
    (
        &url[..host_start],
        &url[host_start..host_end],
        &url[host_end..],
    )
}

// The proxy itself.

/// An echo server on 127.0.0.1:0, one thread per connection, for as long as the test runs.
fn echo_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = conn.try_clone().unwrap();
                let _ = io::copy(&mut reader, &mut &conn);
            });
        }
    });
    addr
}

fn connect(proxy: &FaultProxy) -> std::net::TcpStream {
    let conn = std::net::TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn
}

/// Sends `msg` and reads as many bytes back.
fn echo(conn: &mut std::net::TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    conn.write_all(msg)?;
    let mut back = vec![0; msg.len()];
    conn.read_exact(&mut back)?;
    Ok(back)
}

/// Whether the peer closed or reset the connection (as opposed to: it is still open).
fn closed(conn: &mut std::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
    }
}

/// Whether nothing arrives within `wait`.
fn silent_for(conn: &mut std::net::TcpStream, wait: Duration) -> bool {
    conn.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    let silent = matches!(
        conn.read(&mut byte),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
    );
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    silent
}

#[test]
fn every_mode_does_what_it_says() {
    let proxy = FaultProxy::start(echo_server());

    // Pass.
    let mut open = connect(&proxy);
    assert_eq!(echo(&mut open, b"hello").unwrap(), b"hello");

    // Delay: each chunk waits, both ways.
    proxy.set(Mode::Delay(Duration::from_millis(200)));
    let start = Instant::now();
    assert_eq!(echo(&mut open, b"slow").unwrap(), b"slow");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );

    // Freeze: the open connection goes silent but stays open; a new one is accepted and
    // silent too; both get their bytes once it thaws.
    proxy.set(Mode::Freeze);
    open.write_all(b"held").unwrap();
    assert!(silent_for(&mut open, Duration::from_millis(300)));
    let mut frozen_new = connect(&proxy);
    frozen_new.write_all(b"new").unwrap();
    assert!(silent_for(&mut frozen_new, Duration::from_millis(300)));
    proxy.set(Mode::Pass);
    let mut back = [0u8; 4];
    open.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"held");
    let mut back = [0u8; 3];
    frozen_new.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"new");

    // Refuse: new connections are cut at once, open ones keep working.
    proxy.set(Mode::Refuse);
    let mut refused = connect(&proxy);
    assert!(closed(&mut refused));
    assert_eq!(echo(&mut open, b"still").unwrap(), b"still");

    // Close: open connections are closed now, new ones refused.
    proxy.set(Mode::Close);
    assert!(closed(&mut open));
    assert!(closed(&mut frozen_new));
    let mut refused = connect(&proxy);
    assert!(closed(&mut refused));

    // Back to Pass: new connections work again.
    proxy.set(Mode::Pass);
    let mut fresh = connect(&proxy);
    assert_eq!(echo(&mut fresh, b"again").unwrap(), b"again");
    let _ = fresh.shutdown(Shutdown::Both);
}

#[test]
fn a_close_is_not_missed_when_the_mode_changes_right_after() {
    let proxy = FaultProxy::start(echo_server());
    let mut open = connect(&proxy);
    assert_eq!(echo(&mut open, b"x").unwrap(), b"x");
    proxy.set(Mode::Close);
    proxy.set(Mode::Pass);
    assert!(closed(&mut open));
}

#[test]
fn urls_are_rewritten_to_go_through_the_proxy() {
    let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert_eq!(
        pg_url_via(
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            addr
        ),
        "postgres://postgres@127.0.0.1:4000/test?sslmode=disable"
    );
    assert_eq!(
        pg_url_via("postgresql://u:p@db.example/x", addr),
        "postgresql://u:p@127.0.0.1:4000/x"
    );
    assert_eq!(
        pg_server_addr("postgres://postgres@127.0.0.1/test"),
        "127.0.0.1:5432".parse().unwrap()
    );
    assert_eq!(
        pg_server_addr("postgres://postgres@127.0.0.1:6543/test"),
        "127.0.0.1:6543".parse().unwrap()
    );
}

// tokend through the proxy.

#[actix_web::test]
async fn tokend_reaches_postgres_through_the_proxy_and_reconnects_after_a_cut() {
    use crate::helpers::{pg_url, sensor, test_settings, Storage, TestApp};
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let (storage, proxy) = actix_web::web::block(Storage::postgres_behind_proxy)
        .await
        .unwrap();
    let url = &storage.pg.as_ref().unwrap().url;
    assert!(
        url.contains(&format!("127.0.0.1:{}/", proxy.port())),
        "{url}"
    );
    let app = TestApp::start(storage.clone(), test_settings(&storage)).await;
    app.create_account(sensor("sensor:proxied")).await;

    // Cut: with no way to the database, a write cannot succeed.
    proxy.set(Mode::Close);
    assert_eq!(proxy.mode(), Mode::Close);
    let (status, body) = app
        .admin(
            reqwest::Method::POST,
            "/service-accounts",
            Some(&sensor("sensor:cut")),
        )
        .await;
    assert!(!status.is_success(), "{status} {body}");

    // The path is back: the pool opens new connections, no restart needed.
    proxy.set(Mode::Pass);
    app.create_account(sensor("sensor:back")).await;
}
