//! The `tokend` binary itself: `admin-token` for bootstrap, and a crash that loses nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, Storage};

fn tokend(storage: &Storage) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TOKEND_DATA_DIR", storage.data_dir())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(pg) = &storage.pg {
        cmd.env("TOKEND_DATABASE_URL", &pg.url);
    }
    cmd
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(storage: &Storage) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokend(storage)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .expect("tokend serve starts");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while reqwest::get(format!("{}/ready", server.url))
        .await
        .map(|r| r.status())
        .ok()
        != Some(StatusCode::OK)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "tokend serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

async fn call(
    method: Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap_or_default())
}

async fn admin_token_then_crash_and_restart(backend: Backend) {
    let storage = actix_web::web::block(move || Storage::new(backend))
        .await
        .unwrap();

    // `tokend admin-token` prints the token and nothing else, before any server ran.
    let out = tokend(&storage).arg("admin-token").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let admin = stdout.trim_end().to_owned();
    assert_eq!(admin.split('.').count(), 3);

    let server = serve(&storage).await;
    let (status, me) = call(
        Method::GET,
        format!("{}/auth/whoami", server.url),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["scope"], "admin");
    assert_eq!(me["name"], "tokend-admin");

    let (status, doomed) = call(
        Method::POST,
        format!("{}/service-accounts", server.url),
        &admin,
        Some(crate::helpers::sensor("sensor:doomed")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, kept) = call(
        Method::POST,
        format!("{}/service-accounts", server.url),
        &admin,
        Some(crate::helpers::sensor("sensor:kept")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        Method::DELETE,
        format!("{}/service-accounts/{}", server.url, doomed["identity_id"]),
        &admin,
        Some(json!({"reason": "crash test"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // SIGKILL right after the acknowledgement, then start again on the same storage.
    drop(server);
    let server = serve(&storage).await;
    let (status, body) = call(
        Method::GET,
        format!("{}/auth/whoami", server.url),
        doomed["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_revoked")
    );
    let (status, _) = call(
        Method::GET,
        format!("{}/auth/whoami", server.url),
        kept["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // `tokend cleanup` prints its report as JSON.
    let out = tokend(&storage).arg("cleanup").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["deleted_revocations"], 0);

    // Bad configuration fails with exit code 2 and a message.
    let out = tokend(&storage)
        .args(["admin-token", "--ttl-hours", "10000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ttl_out_of_range")
            || String::from_utf8_lossy(&out.stderr).contains("TTL bounds")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn migrate_and_openapi_commands() {
    let storage = Storage::new(Backend::Sqlite);
    let out = tokend(&storage).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(storage.data_dir().join("tokend.db").exists());
    let out = tokend(&storage).arg("openapi").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        tokend::openapi::spec_json()
    );
    let out = tokend(&storage)
        .env("TOKEND_JWT_ALG", "HS256")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEND_JWT_SECRET"));
}

crate::both_backends!(admin_token_then_crash_and_restart);
