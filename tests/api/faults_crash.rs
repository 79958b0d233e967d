//! kill -9 in a loop: the real binary is killed while creates and revocations are in flight;
//! after each restart every acknowledged create is there and every acknowledged revocation
//! still refuses its token.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::{admin_token, call, serve_with};
use crate::helpers::{code, sensor, Backend, Storage};

const ROUNDS: usize = 4;
const IN_FLIGHT: usize = 24;

async fn acknowledged_writes_survive_kill_9_in_a_loop(backend: Backend) {
    let storage = actix_web::web::block(move || Storage::new(backend))
        .await
        .unwrap();
    let admin = admin_token(&storage).await;
    let mut created: Vec<Value> = Vec::new();
    let mut revoked: Vec<Value> = Vec::new();
    for round in 0..=ROUNDS {
        let server = serve_with(&storage, &[]).await;
        // Everything acknowledged so far holds.
        for account in &created {
            let (status, body) = call(
                Method::GET,
                format!("{}/service-accounts/{}", server.url, account["identity_id"]),
                &admin,
                None,
            )
            .await;
            assert_eq!(
                status,
                StatusCode::OK,
                "round {round}: lost {account}: {body}"
            );
        }
        for account in &revoked {
            let (status, body) = call(
                Method::GET,
                format!("{}/auth/whoami", server.url),
                account["token"].as_str().unwrap(),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "round {round}: {body}");
            assert_eq!(code(&body), "token_revoked", "round {round}");
        }
        if round == ROUNDS {
            break;
        }
        // Accounts to revoke in this round.
        let mut targets = Vec::new();
        for i in 0..IN_FLIGHT {
            let (status, body) = call(
                Method::POST,
                format!("{}/service-accounts", server.url),
                &admin,
                Some(sensor(&format!("sensor:round{round}-{i}"))),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            created.push(body.clone());
            targets.push(body);
        }
        // Revocations and creates in flight together, then SIGKILL in the middle of them.
        let mut tasks = Vec::new();
        for (i, target) in targets.into_iter().enumerate() {
            let (url, admin) = (server.url.clone(), admin.clone());
            tasks.push(actix_web::rt::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
                let revoke = try_call(
                    Method::DELETE,
                    format!("{url}/service-accounts/{}", target["identity_id"]),
                    &admin,
                    None,
                );
                let create = try_call(
                    Method::POST,
                    format!("{url}/service-accounts"),
                    &admin,
                    Some(sensor(&format!("sensor:in-flight-{i}"))),
                );
                let (revoke, create) = futures_util::future::join(revoke, create).await;
                (target, revoke, create)
            }));
        }
        tokio::time::sleep(Duration::from_millis(30 + 40 * round as u64)).await;
        drop(server); // SIGKILL
        for task in tasks {
            let (target, revoke, create) = task.await.unwrap();
            if revoke.is_some_and(|(status, _)| status == StatusCode::OK) {
                revoked.push(target);
            }
            if let Some((StatusCode::CREATED, body)) = create {
                created.push(body);
            }
        }
    }
    eprintln!(
        "{backend:?}: {ROUNDS} kills, {} acknowledged creates and {} acknowledged revocations, none lost",
        created.len(),
        revoked.len()
    );
}

/// A request that may meet a killed server: `None` when no answer came.
async fn try_call(
    method: Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Option<(StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.ok()?;
    let status = res.status();
    Some((status, res.json().await.ok()?))
}

crate::both_backends!(acknowledged_writes_survive_kill_9_in_a_loop);
