//! Login throttling and the password hashing workers: a flood of wrong passwords cannot lock
//! the real user out, nor starve anything else.
//!
//! Different client addresses are different loopback addresses (all of 127.0.0.0/8 is
//! loopback on Linux): each `Client` binds its own.

use std::time::Duration;

use actix_web::web;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

const PW: &str = "correct horse battery";

/// A client on its own address.
struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn at(app: &TestApp, addr: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .local_address(Some(addr.parse().unwrap()))
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url: app.url("/auth/login"),
        }
    }

    /// Status, `Retry-After` (seconds) and body of a login.
    async fn login(&self, login: &str, password: &str) -> (StatusCode, Option<u64>, Value) {
        let res = self
            .http
            .post(&self.url)
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .expect("request sent");
        let status = res.status();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (status, retry, res.json().await.unwrap_or(Value::Null))
    }
}

/// Writes the summed failed logins to the audit trail now instead of within 10 s.
async fn flush_failures(app: &TestApp) {
    let state = app.state.clone();
    web::block(move || state.logins.flush(&state.pool))
        .await
        .unwrap()
        .unwrap();
}

async fn failed_events(app: &TestApp) -> Vec<Value> {
    flush_failures(app).await;
    let (status, body) = app
        .admin(Method::GET, "/audit?action=login.failed&limit=1000", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Today's default limits; another address floods wrong passwords for the real user's login.
async fn flood_elsewhere_does_not_lock_the_user_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.add_user("alice", PW, "admin").await;
    let (home, attacker) = (Client::at(&app, "127.0.0.1"), Client::at(&app, "127.0.0.2"));
    let mut refused = 0;
    for _ in 0..30 {
        let (status, retry, body) = attacker.login("alice", "guess").await;
        match status {
            StatusCode::UNAUTHORIZED => assert_eq!(code(&body), "invalid_credentials"),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(code(&body), "too_many_attempts");
                assert!(retry.is_some_and(|r| r >= 1), "{retry:?}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(refused, 25, "5 free failures, then the attacker waits");
    assert_eq!(
        attacker.login("alice", PW).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's address waits, even with the right password"
    );
    let (status, _, body) = home.login("alice", PW).await;
    assert_eq!(status, StatusCode::OK, "the real user gets in: {body}");
    assert_eq!(body["identity_id"], alice["identity_id"]);
    // A typo from home counts for home only.
    assert_eq!(
        home.login("alice", "typo").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(home.login("alice", PW).await.0, StatusCode::OK);

    // The trail: one event per (login, address), with the count, not one row per guess.
    let events = failed_events(&app).await;
    let from_attacker: Vec<&Value> = events
        .iter()
        .filter(|e| e["remote_addr"] == "127.0.0.2")
        .collect();
    assert_eq!(from_attacker.len(), 1, "{events:?}");
    assert_eq!(from_attacker[0]["detail"]["failures"], 5);
    assert_eq!(from_attacker[0]["detail"]["login"], "alice");
    assert_eq!(from_attacker[0]["identity_id"], alice["identity_id"]);
    assert!(from_attacker[0]["detail"]["first_failed_at"].is_string());
}

/// Per (login, address): free failures, then a wait that doubles; a success clears it.
async fn waits_grow_per_login_and_address_and_expire(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.login_max_failures = 2;
        s.login_delay = Duration::from_secs(1);
        s.login_window = Duration::from_secs(4);
    })
    .await;
    app.add_user("alice", PW, "admin").await;
    let client = Client::at(&app, "127.0.0.3");
    for _ in 0..2 {
        assert_eq!(client.login("alice", "x").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, retry, body) = client.login("alice", PW).await;
    assert_eq!(
        (status, code(&body), retry),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", Some(1)),
        "even the right password waits: {body}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client.login("alice", "x").await.0, StatusCode::UNAUTHORIZED);
    let (status, retry, _) = client.login("alice", PW).await;
    assert_eq!((status, retry), (StatusCode::TOO_MANY_REQUESTS, Some(2)));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        client.login("alice", PW).await.0,
        StatusCode::OK,
        "the right password once the wait is over"
    );
    // The success cleared the pair: two free failures again.
    for _ in 0..2 {
        assert_eq!(client.login("alice", "x").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        client.login("alice", "x").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Unknown logins wait the same way: nothing tells them apart.
    for _ in 0..2 {
        assert_eq!(
            client.login("mallory", "x").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, retry, body) = client.login("mallory", "x").await;
    assert_eq!(
        (status, code(&body), retry),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", Some(1))
    );
}

/// Per address: a budget of failures for all logins together.
async fn one_address_spraying_many_logins_is_throttled(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.login_address_max_failures = 5;
        s.login_window = Duration::from_secs(100);
    })
    .await;
    app.add_user("alice", PW, "admin").await;
    let (office, elsewhere) = (Client::at(&app, "127.0.0.4"), Client::at(&app, "127.0.0.5"));
    // Alice logged in from the office before; then somebody at the office sprays.
    assert_eq!(office.login("alice", PW).await.0, StatusCode::OK);
    for n in 0..5 {
        assert_eq!(
            office.login(&format!("user{n}"), "guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, retry, body) = office.login("user5", "guess").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        "{body}"
    );
    let retry = retry.expect("Retry-After");
    assert!(
        (15..=20).contains(&retry),
        "100 s / 5 failures: one more every 20 s, less what refilled meanwhile: {retry}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from your address"),
        "{body}"
    );
    // Alice, known at that address, still gets in; other addresses have their own budget.
    assert_eq!(office.login("alice", PW).await.0, StatusCode::OK);
    assert_eq!(
        elsewhere.login("user5", "guess").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Per login: many addresses guessing one login are throttled together, but not at the
/// address the user logged in from before.
async fn many_addresses_guessing_one_login_spare_the_usual_one(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.login_account_max_failures = 3;
        s.login_window = Duration::from_secs(100);
    })
    .await;
    app.add_user("alice", PW, "admin").await;
    let home = Client::at(&app, "127.0.0.7");
    assert_eq!(home.login("alice", PW).await.0, StatusCode::OK);
    for n in 1..=3 {
        let bot = Client::at(&app, &format!("127.0.2.{n}"));
        assert_eq!(
            bot.login("alice", "guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let bot = Client::at(&app, "127.0.2.4");
    let (status, retry, body) = bot.login("alice", PW).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
        "a new address, even with the right password: {body}"
    );
    assert!(retry.is_some_and(|r| (25..=34).contains(&r)), "{retry:?}");
    assert_eq!(
        home.login("alice", PW).await.0,
        StatusCode::OK,
        "home gets in"
    );
    assert_eq!(
        bot.login("carol", "guess").await.0,
        StatusCode::UNAUTHORIZED,
        "other logins are not affected"
    );
}

/// Parallel guesses are counted before their password is checked.
async fn parallel_guesses_cannot_exceed_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("bob", PW, "viewer").await;
    let client = std::sync::Arc::new(Client::at(&app, "127.0.0.6"));
    let mut handles = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        handles.push(actix_web::rt::spawn(async move {
            client.login("bob", "guess").await.0
        }));
    }
    let mut checked = 0;
    for h in handles {
        let status = h.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        checked += usize::from(status == StatusCode::UNAUTHORIZED);
    }
    assert!(checked <= 5, "{checked} passwords were checked in parallel");
    let events = failed_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["failures"], checked);
}

/// One hashing thread, no queue, slow hashes: a flood of logins is answered 429 at once
/// while management calls go on.
async fn full_hashing_queue_answers_429_at_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.password_workers = 1;
        s.password_queue = 1;
        s.argon2 = tokend::config::Argon2Cost {
            memory_kib: 32 * 1024,
            iterations: 4,
            parallelism: 1,
        };
    })
    .await;
    let mut handles = Vec::new();
    for n in 0..16 {
        let client = Client::at(&app, &format!("127.0.1.{}", n + 1));
        handles.push(actix_web::rt::spawn(async move {
            client.login(&format!("nobody{n}"), "guess").await
        }));
    }
    let (status, body) = app
        .admin(Method::GET, "/service-accounts?limit=10", None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "management during the flood: {body}"
    );
    let mut busy = 0;
    for h in handles {
        let (status, retry, body) = h.await.unwrap();
        match status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(code(&body), "too_many_attempts");
                assert_eq!(retry, Some(1));
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("password checks in progress"),
                    "{body}"
                );
                busy += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(
        busy >= 1,
        "16 parallel checks, room for 2: some were refused"
    );
    // Refused checks did not count as failures: those addresses may try again.
    let events = failed_events(&app).await;
    let failures: u64 = events
        .iter()
        .map(|e| e["detail"]["failures"].as_u64().unwrap())
        .sum();
    assert_eq!(failures, 16 - busy);
}

crate::both_backends!(
    flood_elsewhere_does_not_lock_the_user_out,
    waits_grow_per_login_and_address_and_expire,
    one_address_spraying_many_logins_is_throttled,
    many_addresses_guessing_one_login_spare_the_usual_one,
    parallel_guesses_cannot_exceed_the_limit,
    full_hashing_queue_answers_429_at_once,
);
