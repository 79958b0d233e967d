//! One clock for deletions: a replica whose clock runs two hours ahead (the real binary under
//! libfaketime) says it is not ready, refuses every token, deletes nothing, and cannot starve
//! the healthy replicas' cleanup.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::{admin_token, call, free_listen, serve_with, spawn_serve, wait_answering};
use crate::helpers::{code, pg_url, Backend, Storage};

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

async fn ready(url: &str) -> (StatusCode, Value) {
    let res = reqwest::get(format!("{url}/ready")).await.unwrap();
    (res.status(), res.json().await.unwrap_or_default())
}

#[actix_web::test]
async fn a_replica_with_a_wrong_clock_deletes_nothing_and_refuses_every_token() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    if !Path::new(FAKETIME).exists() {
        eprintln!("skipped: needs libfaketime (Debian package faketime)");
        return;
    }
    let storage = actix_web::web::block(|| Storage::new(Backend::Postgres))
        .await
        .unwrap();
    let healthy = serve_with(&storage, &[]).await;
    let admin = admin_token(&storage).await;
    let create = |name: &str| json!({"name": name, "scope": "execution", "ttl_seconds": 3600, "metadata": {"execution_id": 1}});
    let (_, revoked) = call(
        Method::POST,
        format!("{}/service-accounts", healthy.url),
        &admin,
        Some(create("exec:revoked")),
    )
    .await;
    let (status, _) = call(
        Method::DELETE,
        format!(
            "{}/service-accounts/{}",
            healthy.url, revoked["identity_id"]
        ),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, live) = call(
        Method::POST,
        format!("{}/service-accounts", healthy.url),
        &admin,
        Some(create("exec:live")),
    )
    .await;

    // Two hours ahead, and a scheduled cleanup every second.
    let skewed = spawn_serve(
        &storage,
        &[
            ("LD_PRELOAD", FAKETIME.to_owned()),
            ("FAKETIME", "+2h".to_owned()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
            ("TOKEND_CLEANUP_INTERVAL", "1s".to_owned()),
        ],
        &free_listen(),
    );
    wait_answering(&skewed, "/health").await;
    let (status, body) = ready(&skewed.url).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["clock"]["ok"], false, "{body}");
    let skew = body["checks"]["clock"]["skew_seconds"].as_f64().unwrap();
    assert!((-7300.0..-7100.0).contains(&skew), "{body}");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");

    // Every token is refused, with a reason and a Retry-After; so are the writes that used
    // to go wrong there (a revocation that covered nothing, a cleanup that deleted live rows).
    let res = reqwest::Client::new()
        .get(format!("{}/auth/whoami", skewed.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(code(&res.json().await.unwrap()), "clock_skew");
    for (method, path) in [
        (
            Method::DELETE,
            format!("/service-accounts/{}", live["identity_id"]),
        ),
        (Method::POST, "/admin/cleanup".to_owned()),
    ] {
        let (status, body) = call(method, format!("{}{path}", skewed.url), &admin, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(code(&body), "clock_skew", "{path}");
    }
    let metrics = reqwest::get(format!("{}/metrics", skewed.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tokend_clock_skew_seconds -7"),
        "{metrics}"
    );

    // Its scheduled cleanups ran (or tried to) for a few seconds and deleted nothing: after
    // a restart, the healthy replica still refuses the revoked token, and its own cleanups
    // are not starved by a lease from the future.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(skewed);
    drop(healthy);
    let healthy = serve_with(&storage, &[]).await;
    let (status, body) = call(
        Method::GET,
        format!("{}/auth/whoami", healthy.url),
        revoked["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_revoked");
    let started = Instant::now();
    let (status, report) = call(
        Method::POST,
        format!("{}/admin/cleanup", healthy.url),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deleted_revocations"], 0, "the token is still live");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (status, body) = call(
        Method::GET,
        format!("{}/auth/whoami", healthy.url),
        live["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refused DELETE revoked nothing: {body}"
    );
}
