//! Renewal without restarts: the `tokend::client::CredentialCache` library and the real
//! `tokend agent` binary, with short TTLs, across several lifetimes and a tokend outage
//! during a renewal window.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::cli::{call, serve_with};
use crate::helpers::{Backend, Storage, TestApp};
use tokend::client::{Credential, CredentialCache, RenewalPolicy};

/// Sensor tokens live 6 s here; renewal is due at 4.8 s.
fn short_sensor_env() -> Vec<(&'static str, String)> {
    vec![
        ("TOKEND_TTL_SENSOR", "3s:6s:6s".into()),
        ("TOKEND_LEEWAY", "0s".into()),
    ]
}

async fn credential_cache_keeps_a_token_fresh(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.leeway = Duration::ZERO;
        s.scopes
            .set_bounds_from_spec(tokend::scope::Scope::Sensor, "2s:3s:3s")
            .unwrap();
    })
    .await;
    let created = app
        .create_account(crate::helpers::sensor("sensor:lib"))
        .await;
    let policy = RenewalPolicy {
        refresh_at: 0.6,
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(500),
    };
    let cache = CredentialCache::start(
        &app.address,
        created["token"].as_str().unwrap().to_owned(),
        policy,
    )
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let token = cache.token().expect("always a current token");
        assert_eq!(
            app.whoami(&token).await.0,
            StatusCode::OK,
            "after {:?}",
            start.elapsed()
        );
        seen.insert(token);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.len() >= 3,
        "renewed across several lifetimes: {} tokens",
        seen.len()
    );
    cache.stop();
}

fn agent(storage_url: &str, file: &std::path::Path, exec: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tokend"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .args([
            "agent",
            "--url",
            storage_url,
            "--token-file",
            file.to_str().unwrap(),
        ])
        .args([
            "--exec",
            exec,
            "--retry-min",
            "100ms",
            "--retry-max",
            "300ms",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn agent_renews_through_an_outage(backend: Backend) {
    let storage = actix_web::web::block(move || Storage::new(backend))
        .await
        .unwrap();
    let env = short_sensor_env();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env_port = env.clone();
    env_port.push(("TOKEND_LISTEN", format!("127.0.0.1:{port}")));
    let server = serve_on(&storage, &env_port).await;
    let url = server.url.clone();
    let admin = crate::cli::admin_token(&storage).await;
    let (status, created) = call(
        reqwest::Method::POST,
        format!("{url}/service-accounts"),
        &admin,
        Some(crate::helpers::sensor("sensor:agent")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sensor.token");
    std::fs::write(&file, format!("{}\n", created["token"].as_str().unwrap())).unwrap();
    let count = dir.path().join("reloads");
    let mut agent = agent(&url, &file, &format!("echo reload >> {}", count.display()));

    // The sensor: reads the file and calls tokend with it, every 100 ms, for over 3 lifetimes.
    let client = reqwest::Client::new();
    let mut server = Some(server);
    let mut outage_done = false;
    let start = Instant::now();
    let mut checked = 0;
    while start.elapsed() < Duration::from_secs(20) {
        let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        let credential = Credential::parse(&token).expect("the file always holds a token");
        assert!(
            !credential.is_expired(),
            "the file held an expired token after {:?}",
            start.elapsed()
        );
        // Take tokend down across the second renewal window: from 0.2 s before it is due.
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let due = credential.renew_at(&RenewalPolicy::default());
        if !outage_done && start.elapsed() > Duration::from_secs(6) && now > due - 0.2 {
            drop(server.take()); // SIGKILL
            tokio::time::sleep(Duration::from_millis(700)).await;
            server = Some(serve_on(&storage, &env_port).await);
            outage_done = true;
            continue;
        }
        let res = client
            .get(format!("{url}/auth/whoami"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "the sensor's request failed after {:?}",
            start.elapsed()
        );
        checked += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(outage_done, "the outage happened");
    let reloads = std::fs::read_to_string(&count)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        reloads >= 3,
        "renewed and reloaded at least 3 times, got {reloads}"
    );
    assert!(checked > 100);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent is still running"
    );
    let _ = agent.kill();
    let _ = agent.wait();
    drop(server);
}

async fn agent_fails_closed_when_tokend_stays_down(backend: Backend) {
    let storage = actix_web::web::block(move || Storage::new(backend))
        .await
        .unwrap();
    let server = serve_on(&storage, &short_sensor_env()).await;
    let admin = crate::cli::admin_token(&storage).await;
    let (_, created) = call(reqwest::Method::POST, format!("{}/service-accounts", server.url), &admin, Some(json!({
        "name": "sensor:doomed", "scope": "sensor", "ttl_seconds": 3, "metadata": {"trigger_types": ["t"]}
    }))).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let url = server.url.clone();
    drop(server); // tokend is gone for good
    let mut agent = agent(&url, &file, "true");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the agent did not exit after its token expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        token,
        "nothing else was written"
    );

    // A file without a token, or with an expired one: refused at start.
    std::fs::write(&file, "not a token\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["agent", "--url", &url, "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["agent", "--url", &url, "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn serve_on(storage: &Storage, env: &[(&'static str, String)]) -> crate::cli::Server {
    serve_with(storage, env).await
}

crate::both_backends!(
    credential_cache_keeps_a_token_fresh,
    agent_renews_through_an_outage,
    agent_fails_closed_when_tokend_stays_down
);
