//! tokend's own TLS over real TLS (a CA the test makes, [`TestCa`]; verification is never
//! turned off): HTTPS, certificates renewed under a running server, broken renewals,
//! client certificates on path prefixes, and start-up errors.
//!
//! SQLite only: TLS does not touch storage, so PostgreSQL would test nothing more here.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::web;
use reqwest::{Method, StatusCode};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use tokend::app::Application;
use tokend::tls::{ClientCertSettings, TlsSettings};

use crate::cli::{free_listen, Server};
use crate::helpers::{code, sensor, test_settings, Backend, Storage, TestApp};
use crate::tls_ca::{CertPair, TestCa};

/// How long a renewed certificate may take to reach new connections (the files are polled
/// every second). Generous: this bounds a wait loop, it is not a timing assertion.
const RELOAD_LIMIT: Duration = Duration::from_secs(10);

/// How long a broken renewal is watched to make sure it is never served (several polls).
const BROKEN_WATCH: Duration = Duration::from_secs(3);

fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the address")
}

fn tls(cert: &Path, key: &Path) -> TlsSettings {
    TlsSettings {
        cert: cert.to_owned(),
        key: key.to_owned(),
        client_certs: None,
    }
}

/// A new TLS connection (HTTP/1.1) to 127.0.0.1:`port` for `localhost`, trusting `ca` only.
async fn connect(port: u16, ca: &TestCa) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    TlsConnector::from(ca.rustls_client(None))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// The certificate the server presented on `conn` (DER).
fn served(conn: &TlsStream<TcpStream>) -> Vec<u8> {
    conn.get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .to_vec()
}

/// The serial of a served certificate, for failure messages.
fn serial_of(der: &[u8]) -> String {
    tokend::tls::CertInfo::of(der).serial
}

/// `GET path` on an open connection, which stays open (keep-alive): status and body.
async fn get_on(conn: &mut TlsStream<TcpStream>, path: &str) -> (u16, String) {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .expect("request written");
    let mut buf = Vec::new();
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(conn, &mut buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .expect("a Content-Length");
    while buf.len() < header_end + length {
        read_more(conn, &mut buf).await;
    }
    let body = String::from_utf8_lossy(&buf[header_end..header_end + length]).into_owned();
    (status, body)
}

/// Reads what is there on `conn` into `buf`; panics if the connection closed.
async fn read_more(conn: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = conn.read(&mut chunk).await.expect("response read");
    assert!(
        n > 0,
        "the connection closed before a whole response: {}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Opens new connections until one is served `want`, asking on `old` (opened before the
/// change) each time to show it keeps working; panics after [`RELOAD_LIMIT`].
async fn until_served(
    port: u16,
    ca: &TestCa,
    want: &CertPair,
    old: &mut TlsStream<TcpStream>,
) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = get_on(old, "/health").await;
        assert_eq!(
            status, 200,
            "the connection opened before the change: {body}"
        );
        let got = served(&connect(port, ca).await);
        // The fingerprint as tokend logs it is the one of the certificate the client got.
        let info = tokend::tls::CertInfo::of(&got);
        if info.sha256 == want.sha256() {
            assert_eq!(got, want.der);
            assert_eq!(u64::from_str_radix(&info.serial, 16), Ok(want.serial));
            return start.elapsed();
        }
        assert!(
            start.elapsed() < RELOAD_LIMIT,
            "new connections still get serial {} after {:?}, not the renewed {}",
            serial_of(&got),
            start.elapsed(),
            serial_of(&want.der)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For [`BROKEN_WATCH`], every new connection is served `want` (nothing else slips in).
async fn stays_served(port: u16, ca: &TestCa, want: &CertPair, old: &mut TlsStream<TcpStream>) {
    let start = Instant::now();
    while start.elapsed() < BROKEN_WATCH {
        let (status, _) = get_on(old, "/health").await;
        assert_eq!(status, 200);
        let got = served(&connect(port, ca).await);
        assert!(
            got == want.der,
            "serial {} is served instead of {}",
            serial_of(&got),
            serial_of(&want.der)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[actix_web::test]
async fn https_serves_health_and_tokens() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_tls(Backend::Sqlite, ca.server_tls(dir.path()), &ca).await;
    assert!(
        app.address.starts_with("https://127.0.0.1:"),
        "{}",
        app.address
    );

    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    // Issued and verified over HTTPS.
    let created = app.create_account(sensor("sensor:over-tls")).await;
    let token = created["token"].as_str().unwrap();
    let (status, me) = app.whoami(token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "sensor:over-tls");
    let (status, headers, body) = app
        .send(Method::GET, "/auth/verify?scope=sensor", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-tokend-name"], "sensor:over-tls");

    // Which certificate is served shows in the metrics.
    let metrics = app.metrics_text().await;
    for metric in [
        "tokend_tls_certificate_expiry_timestamp_seconds",
        "tokend_tls_certificate_reloads_total{outcome=\"failed\"}",
    ] {
        assert!(metrics.contains(metric), "{metric}: {metrics}");
    }

    // A client that does not trust the test CA refuses the server.
    let stranger = TestCa::new().client();
    assert!(stranger.get(app.url("/health")).send().await.is_err());
}

#[actix_web::test]
async fn plain_http_to_the_tls_port_fails() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_tls(Backend::Sqlite, ca.server_tls(dir.path()), &ca).await;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = port_of(&app);
    let res = plain
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(
        res.is_err(),
        "plain HTTP was answered: {:?}",
        res.map(|r| r.status())
    );
    // The port still serves HTTPS.
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[actix_web::test]
async fn renewed_certificates_reach_new_connections_and_open_ones_keep_working() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_cert();
    let (cert, key) = first.write(dir.path(), "tls");
    let app = TestApp::spawn_tls(Backend::Sqlite, tls(&cert, &key), &ca).await;
    let port = port_of(&app);

    let mut old = connect(port, &ca).await;
    assert_eq!(served(&old), first.der);
    assert_eq!(get_on(&mut old, "/health").await.0, 200);

    // Rewritten in place (same files, truncated and written again).
    let second = ca.server_cert();
    second.write(dir.path(), "tls");
    until_served(port, &ca, &second, &mut old).await;

    // New files renamed over the old ones (an atomic replace).
    let third = ca.server_cert();
    let (new_cert, new_key) = third.write(dir.path(), "tls.new");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    until_served(port, &ca, &third, &mut old).await;

    // The connection opened before both renewals still has the first certificate and works.
    assert_eq!(served(&old), first.der);
    assert_eq!(get_on(&mut old, "/health").await.0, 200);
    // And tokens are issued over the renewed certificate.
    let created = ca
        .client()
        .post(app.url("/service-accounts"))
        .bearer_auth(&app.admin_token)
        .json(&sensor("sensor:renewed"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}

#[cfg(unix)]
#[actix_web::test]
async fn a_swapped_symlinked_directory_is_followed() {
    // A Kubernetes secret volume: tls.crt -> ..data/tls.crt, ..data -> a dated directory that
    // the kubelet replaces by renaming a new symlink over ..data.
    use std::os::unix::fs::symlink;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = ca.server_cert();
    std::fs::create_dir(root.join("v1")).unwrap();
    first.write(&root.join("v1"), "tls");
    symlink("v1", root.join("..data")).unwrap();
    symlink("..data/tls.crt", root.join("tls.crt")).unwrap();
    symlink("..data/tls.key", root.join("tls.key")).unwrap();
    let app = TestApp::spawn_tls(
        Backend::Sqlite,
        tls(&root.join("tls.crt"), &root.join("tls.key")),
        &ca,
    )
    .await;
    let port = port_of(&app);
    let mut old = connect(port, &ca).await;
    assert_eq!(served(&old), first.der);

    let second = ca.server_cert();
    std::fs::create_dir(root.join("v2")).unwrap();
    second.write(&root.join("v2"), "tls");
    symlink("v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("v1")).unwrap();
    until_served(port, &ca, &second, &mut old).await;
}

#[actix_web::test]
async fn a_broken_renewal_keeps_the_old_certificate() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.server_cert();
    let (cert, key) = first.write(dir.path(), "tls");
    let app = TestApp::spawn_tls(Backend::Sqlite, tls(&cert, &key), &ca).await;
    let port = port_of(&app);
    let mut old = connect(port, &ca).await;
    let second = ca.server_cert();

    // A half-written certificate.
    std::fs::write(&cert, &second.cert_pem[..second.cert_pem.len() / 2]).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    stays_served(port, &ca, &first, &mut old).await;

    // A whole certificate with the key of another one.
    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, &ca.server_cert().key_pem).unwrap();
    stays_served(port, &ca, &first, &mut old).await;

    // The key file gone (a renewal that removed it).
    std::fs::remove_file(&key).unwrap();
    stays_served(port, &ca, &first, &mut old).await;

    // Fixed: the watcher is still there and takes the good pair.
    std::fs::write(&key, &second.key_pem).unwrap();
    until_served(port, &ca, &second, &mut old).await;
}

#[actix_web::test]
async fn client_certificates_are_required_on_the_configured_prefixes_only() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_tls(
        Backend::Sqlite,
        ca.server_tls_with_client_certs(dir.path(), &["/admin/"]),
        &ca,
    )
    .await;

    // Without a certificate: the handshake works and so does any other path...
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, me) = app.whoami(&app.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    // ...but a required prefix is refused, whatever the token, and however it is spelled.
    for path in ["/admin/cleanup", "/%61dmin/cleanup"] {
        let (status, headers, body) = app
            .send(Method::POST, path, Some(&app.admin_token), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(code(&body), "client_certificate_required", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client certificate"));
        assert_eq!(headers["cache-control"], "no-store");
    }

    // A certificate from the trusted CA passes that check; the token checks follow as usual.
    let trusted = ca.client_with(&ca.client_cert("ops-host-1"));
    let res = trusted
        .post(app.url("/admin/cleanup"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code(&res.json().await.unwrap()), "missing_token");
    let res = trusted
        .post(app.url("/admin/cleanup"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = trusted.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A certificate from another CA: the handshake fails (or at least the request is refused).
    let untrusted = ca.client_with(&other_ca.client_cert("intruder"));
    match untrusted
        .post(app.url("/admin/cleanup"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
    {
        Err(_) => {}
        Ok(res) => assert_eq!(res.status(), StatusCode::FORBIDDEN),
    }
}

/// `Application::build` with these TLS settings must fail; its error message.
async fn start_error(storage: &Storage, tls: TlsSettings) -> String {
    let mut settings = test_settings(storage);
    settings.tls = Some(tls);
    match Application::build(settings).await {
        Ok(_) => panic!("the server started with unusable TLS files"),
        Err(e) => e.to_string(),
    }
}

#[actix_web::test]
async fn start_up_refuses_unusable_tls_files() {
    let storage = web::block(|| Storage::new(Backend::Sqlite)).await.unwrap();
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = ca.server_pair(dir.path());
    let (_, other_key) = ca.server_cert().write(dir.path(), "other");

    let missing = dir.path().join("missing.crt");
    let err = start_error(&storage, tls(&missing, &key)).await;
    assert!(err.starts_with("TOKEND_TLS_CERT: cannot read"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    // Unreadable: a directory where the key should be.
    let err = start_error(&storage, tls(&cert, dir.path())).await;
    assert!(err.starts_with("TOKEND_TLS_KEY: cannot read"), "{err}");

    let err = start_error(&storage, tls(&cert, &other_key)).await;
    assert!(
        err.contains("is not the private key of the certificate in TOKEND_TLS_CERT"),
        "{err}"
    );

    // Not PEM: said without repeating the file's contents.
    let junk = dir.path().join("junk.key");
    std::fs::write(&junk, "sekrit-key-material\n").unwrap();
    let err = start_error(&storage, tls(&cert, &junk)).await;
    assert!(err.starts_with("TOKEND_TLS_KEY:"), "{err}");
    assert!(err.contains("no PRIVATE KEY"), "{err}");
    assert!(!err.contains("sekrit"), "{err}");
    let err = start_error(&storage, tls(&junk, &key)).await;
    assert!(err.contains("holds no CERTIFICATE"), "{err}");

    let err = start_error(
        &storage,
        TlsSettings {
            client_certs: Some(ClientCertSettings {
                ca: junk.clone(),
                path_prefixes: vec!["/admin/".into()],
            }),
            ..tls(&cert, &key)
        },
    )
    .await;
    assert!(err.starts_with("TOKEND_TLS_CLIENT_CA:"), "{err}");
}

/// `tokend serve` with TLS environment, as a child process.
fn serve_command(storage: &Storage, listen: &str, env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOKEND_DATA_DIR", storage.data_dir())
        .env("RUST_LOG", "warn")
        .args(["serve", "--listen", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[actix_web::test]
async fn serve_refuses_incomplete_tls_settings() {
    let storage = web::block(|| Storage::new(Backend::Sqlite)).await.unwrap();
    let (cert, key, ca, paths) = (
        Path::new("/nonexistent/tls.crt"),
        Path::new("/nonexistent/tls.key"),
        Path::new("/nonexistent/ca.pem"),
        Path::new("/admin/"),
    );
    let cases: [(&[(&str, &Path)], &str); 5] = [
        (
            &[("TOKEND_TLS_CERT", cert)],
            "TOKEND_TLS_CERT is set but TOKEND_TLS_KEY is not",
        ),
        (
            &[("TOKEND_TLS_KEY", key)],
            "TOKEND_TLS_KEY is set but TOKEND_TLS_CERT is not",
        ),
        (
            &[
                ("TOKEND_TLS_CERT", cert),
                ("TOKEND_TLS_KEY", key),
                ("TOKEND_TLS_CLIENT_CA", ca),
            ],
            "TOKEND_TLS_CLIENT_CA needs TOKEND_TLS_CLIENT_CERT_PATHS",
        ),
        (
            &[
                ("TOKEND_TLS_CERT", cert),
                ("TOKEND_TLS_KEY", key),
                ("TOKEND_TLS_CLIENT_CERT_PATHS", paths),
            ],
            "TOKEND_TLS_CLIENT_CERT_PATHS needs TOKEND_TLS_CLIENT_CA",
        ),
        (
            &[
                ("TOKEND_TLS_CLIENT_CA", ca),
                ("TOKEND_TLS_CLIENT_CERT_PATHS", paths),
            ],
            "need HTTPS",
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = serve_command(&storage, "127.0.0.1:0", env);
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("tokend serve starts");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("tokend serve kept running with {env:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
}

#[actix_web::test]
async fn serve_binary_speaks_https_with_client_certificates_from_the_environment() {
    let storage = web::block(|| Storage::new(Backend::Sqlite)).await.unwrap();
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = ca.server_pair(dir.path());
    let listen = free_listen();
    let ca_path = ca.ca_pem_path();
    let child = serve_command(
        &storage,
        &listen,
        &[
            ("TOKEND_TLS_CERT", &cert),
            ("TOKEND_TLS_KEY", &key),
            ("TOKEND_TLS_CLIENT_CA", &ca_path),
            (
                "TOKEND_TLS_CLIENT_CERT_PATHS",
                Path::new("/oauth2/,/admin/"),
            ),
        ],
    )
    .stderr(Stdio::inherit())
    .spawn()
    .expect("tokend serve starts");
    let server = Server {
        child,
        url: format!("https://{listen}"),
    };
    let client = ca.client();
    let start = Instant::now();
    loop {
        match client.get(format!("{}/health", server.url)).send().await {
            Ok(res) if res.status() == StatusCode::OK => break,
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no HTTPS /health from tokend serve"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = client
        .post(format!("{}/admin/cleanup", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        code(&res.json().await.unwrap()),
        "client_certificate_required"
    );
    // A client certificate from files, as an operator would have it.
    let (_, client_cert, client_key) = ca.client_pair(dir.path(), "ops");
    let identity = [
        std::fs::read(client_key).unwrap(),
        std::fs::read(client_cert).unwrap(),
    ]
    .concat();
    let res = ca
        .client_builder()
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap()
        .post(format!("{}/admin/cleanup", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
