//! Revocation rows: written on revoke, enforced on every check, pruned exactly when expired.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};
use tokend::db::queries::revocations;

/// Rows in `token_revocation`, read on the blocking pool.
pub async fn revocation_rows(app: &TestApp) -> i64 {
    let state = app.state.clone();
    actix_web::web::block(move || {
        let mut conn = state.pool.get().unwrap();
        revocations::count(&mut conn).unwrap()
    })
    .await
    .unwrap()
}

/// More rows than one cleanup batch, live and expired interleaved (expiry is not insertion
/// order): the batched delete in id order takes every expired row and not one live one.
async fn cleanup_in_batches_takes_exactly_the_expired(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let state = app.state.clone();
    let live: Vec<String> = actix_web::web::block(move || {
        let mut conn = state.pool.get().unwrap();
        let now = chrono::Utc::now().naive_utc();
        let mut live = Vec::new();
        // 45,000 rows: two live of every five, the rest expired by an hour.
        let rows: Vec<(String, chrono::NaiveDateTime)> = (0..45_000)
            .map(|i| {
                let id = uuid::Uuid::new_v4().to_string();
                let exp = if i % 5 < 2 {
                    live.push(id.clone());
                    now + chrono::Duration::hours(1)
                } else {
                    now - chrono::Duration::hours(1)
                };
                (id, exp)
            })
            .collect();
        for chunk in rows.chunks(1_000) {
            revocations::bulk_insert_for_benchmarks(&mut conn, chunk, now).unwrap();
        }
        live
    })
    .await
    .unwrap();
    assert_eq!(revocation_rows(&app).await, 45_000);
    let (status, report) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deleted_revocations"], 27_000, "{report}");
    assert_eq!(revocation_rows(&app).await, 18_000);
    // What is left is exactly the live ones.
    let state = app.state.clone();
    let left: std::collections::HashSet<String> = actix_web::web::block(move || {
        let mut conn = state.pool.get().unwrap();
        let far_past = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let mut left = Vec::new();
        let mut after = 0;
        while let (rows, Some(last)) =
            revocations::live_page(&mut conn, far_past, after, 10_000).unwrap()
        {
            left.extend(rows.into_iter().map(|(jti, _)| jti));
            after = last;
        }
        left.into_iter().collect()
    })
    .await
    .unwrap();
    assert_eq!(left, live.into_iter().collect());
}

async fn cleanup_deletes_exactly_the_expired_rows(backend: Backend) {
    let app = TestApp::spawn_short_lived(backend).await;
    let mut short = Vec::new();
    for i in 0..3 {
        short.push(app.create_account(json!({"name": format!("exec-{i}"), "scope": "execution", "ttl_seconds": 3, "metadata": {"execution_id": i}})).await);
    }
    let long = app
        .create_account(
            json!({"name": "exec-long", "scope": "execution", "metadata": {"execution_id": 99}}),
        )
        .await;
    for account in short.iter().chain([&long]) {
        let path = format!("/service-accounts/{}", account["identity_id"]);
        let (status, body) = app
            .admin(Method::DELETE, &path, Some(&json!({"reason": "done"})))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["revoked_tokens"], 1);
    }
    let before = revocation_rows(&app).await;
    assert_eq!(before, 4);

    // Wait until the short tokens have expired.
    let last = short
        .iter()
        .map(|a| {
            chrono::DateTime::parse_from_rfc3339(a["expires_at"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .max()
        .unwrap();
    while chrono::Utc::now().timestamp() <= last {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, report) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deleted_revocations"], 3, "{report}");
    assert!(report["took_ms"].is_u64());
    assert_eq!(
        revocation_rows(&app).await,
        1,
        "only the unexpired revocation stays"
    );

    // The unexpired revoked token is still refused, after the cleanup and after a restart.
    let long_token = long["token"].as_str().unwrap();
    assert_eq!(code(&app.whoami(long_token).await.1), "token_revoked");
    let restarted = app.replica().await;
    assert_eq!(code(&restarted.whoami(long_token).await.1), "token_revoked");

    // A second run finds nothing more.
    let (_, again) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(again["deleted_revocations"], 0);
}

async fn cleanup_needs_admin(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sensor = app.create_account(crate::helpers::sensor("sensor:x")).await;
    let (status, _, body) = app
        .send(
            Method::POST,
            "/admin/cleanup",
            sensor["token"].as_str(),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
}

crate::both_backends!(
    cleanup_deletes_exactly_the_expired_rows,
    cleanup_in_batches_takes_exactly_the_expired,
    cleanup_needs_admin
);
