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

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(storage: &Storage) -> Server {
    serve_with(storage, &[]).await
}

/// `tokend serve` as a child process with extra environment; killed (SIGKILL) when dropped.
pub async fn serve_with(storage: &Storage, env: &[(&str, String)]) -> Server {
    serve_logging(storage, env, Stdio::inherit()).await
}

/// [`serve_with`], the server's log (stderr) going to `log`.
pub async fn serve_logging(storage: &Storage, env: &[(&str, String)], log: Stdio) -> Server {
    // TOKEND_LISTEN in `env` pins the address (a restart on the same port); else a free one.
    let listen = env
        .iter()
        .find(|(k, _)| *k == "TOKEND_LISTEN")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(free_listen);
    let server = spawn_serve_logging(storage, env, &listen, log);
    server.wait_ready(Duration::from_secs(20)).await;
    server
}

impl Server {
    /// Waits until `/ready` answers 200; panics after `limit`.
    pub async fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        while reqwest::get(format!("{}/ready", self.url))
            .await
            .map(|r| r.status())
            .ok()
            != Some(StatusCode::OK)
        {
            assert!(
                start.elapsed() < limit,
                "tokend serve at {} did not become ready within {limit:?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `tokend serve` on `listen` as a child process, not waiting for anything.
pub fn spawn_serve(storage: &Storage, env: &[(&str, String)], listen: &str) -> Server {
    spawn_serve_logging(storage, env, listen, Stdio::inherit())
}

/// [`spawn_serve`], the server's log (stderr) going to `log`.
fn spawn_serve_logging(
    storage: &Storage,
    env: &[(&str, String)],
    listen: &str,
    log: Stdio,
) -> Server {
    let mut cmd = tokend(storage);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .args(["serve", "--listen", listen])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("tokend serve starts");
    Server {
        child,
        url: format!("http://{listen}"),
    }
}

/// A free port on 127.0.0.1, as `127.0.0.1:PORT`.
pub fn free_listen() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// Waits until `GET path` on `server` answers at all (any status); returns that status.
pub async fn wait_answering(server: &Server, path: &str) -> StatusCode {
    let start = Instant::now();
    loop {
        if let Ok(res) = reqwest::get(format!("{}{path}", server.url)).await {
            return res.status();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "tokend serve did not start answering"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn call(
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

/// `tokend admin-token` on this storage.
pub async fn admin_token(storage: &Storage) -> String {
    let mut cmd = tokend(storage);
    let out = actix_web::web::block(move || cmd.arg("admin-token").output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
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
        tokend::routes::openapi::spec_json()
    );
    let out = tokend(&storage)
        .env("TOKEND_JWT_ALG", "HS256")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKEND_JWT_SECRET"));
}

/// `tokend sa ...` and `tokend check` against a live server: output and exit codes.
async fn client_verbs(backend: Backend) {
    let app = crate::helpers::TestApp::spawn(backend).await;
    let run = |args: Vec<String>, env: Vec<(&'static str, String)>| async move {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        crate::helpers::run_command(cmd).await
    };
    let env = || {
        vec![
            ("TOKEND_URL", app.address.clone()),
            ("TOKEND_TOKEN", app.admin_token.clone()),
        ]
    };
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();

    let (status, stdout, stderr) = run(
        args("sa create --name sensor:cli --scope sensor --trigger-type core.timer --trigger-type core.interval --ttl-hours 48 --json"),
        env(),
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        created["metadata"]["trigger_types"],
        json!(["core.timer", "core.interval"])
    );
    let id = created["identity_id"].as_i64().unwrap();
    assert_eq!(
        app.whoami(created["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    let (status, stdout, _) = run(
        args("sa create --name hook --scope webhook --allowed-path /hooks/* --ip-allow 10.0.0.0/8"),
        env(),
    )
    .await;
    assert_eq!(status, 0);
    assert!(
        stdout.contains("scope        webhook") && stdout.contains("token        ey"),
        "{stdout}"
    );
    let (status, _, stderr) = run(args("sa create --name bad --scope sensor"), env()).await;
    assert_eq!(status, 1, "a refusal is exit 1");
    assert!(stderr.contains("trigger_types"), "{stderr}");

    let (status, stdout, _) = run(args("sa list --scope sensor --json"), env()).await;
    assert_eq!(status, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["total"], 1);
    let (status, stdout, _) = run(args("sa list"), env()).await;
    assert_eq!(status, 0);
    assert!(
        stdout.contains("sensor:cli") && stdout.contains("3 account(s)"),
        "{stdout}"
    );
    let (status, stdout, _) = run(args(&format!("sa show {id}")), env()).await;
    assert_eq!(status, 0);
    assert!(stdout.contains("fingerprint"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    let (status, stdout, stderr) = run(
        args(&format!(
            "sa rotate {id} --json --token-out {}",
            file.display()
        )),
        env(),
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    let rotated: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        rotated["new"]["token"].as_str().unwrap()
    );
    assert_eq!(
        crate::helpers::code(&app.whoami(created["token"].as_str().unwrap()).await.1),
        "token_revoked"
    );
    assert_eq!(rotated["new"]["metadata"], created["metadata"]);

    let new_id = rotated["new"]["identity_id"].as_i64().unwrap();
    let (status, stdout, _) = run(args(&format!("sa revoke {new_id} --reason done")), env()).await;
    assert_eq!(status, 0);
    assert!(stdout.contains("revoked account"), "{stdout}");
    let (status, _, _) = run(args("sa revoke 999999"), env()).await;
    assert_eq!(status, 1, "not found is a refusal");
    let (status, _, _) = run(
        args("sa list"),
        vec![
            ("TOKEND_URL", "http://127.0.0.1:9".into()),
            ("TOKEND_TOKEN", "x".into()),
        ],
    )
    .await;
    assert_eq!(status, 2, "unreachable is exit 2");
    let (status, _, _) = run(args("sa list"), vec![("TOKEND_URL", app.address.clone())]).await;
    assert_eq!(status, 2, "no token is exit 2");

    // check: nothing within 6 h (the admin account lives 24 h, the webhook 90 d).
    let (status, stdout, _) = run(args("check --warn-hours 6"), env()).await;
    assert_eq!(status, 0, "{stdout}");
    assert!(stdout.lines().all(|l| !l.starts_with('⚠')), "{stdout}");
    app.create_account(
        json!({"name": "exec:soon", "scope": "execution", "metadata": {"execution_id": 3}}),
    )
    .await;
    let (status, stdout, _) = run(args("check --warn-hours 6"), env()).await;
    assert_eq!(status, 1, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('⚠') && l.contains("exec:soon")),
        "{stdout}"
    );
    let (status, stdout, _) = run(args("check --warn-hours 6 --scope webhook --json"), env()).await;
    assert_eq!(status, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["warnings"], 0);
    assert_eq!(report["checked"], 1);
    let (status, _, stderr) = run(
        args("check"),
        vec![
            ("TOKEND_URL", app.address.clone()),
            ("TOKEND_TOKEN", "bad".into()),
        ],
    )
    .await;
    assert_eq!(status, 2, "{stderr}");

    // The cron line.
    let mut cron = Command::new("sh");
    cron.arg("-c")
        .arg(format!(
            "{} check --warn-hours 6 > /dev/null || echo MAIL",
            env!("CARGO_BIN_EXE_tokend")
        ))
        .env("TOKEND_URL", &app.address)
        .env("TOKEND_TOKEN", &app.admin_token);
    let out = actix_web::web::block(move || cron.output().unwrap())
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "MAIL");
}

crate::both_backends!(admin_token_then_crash_and_restart, client_verbs);
