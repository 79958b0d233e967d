//! Network faults between a replica and PostgreSQL, through the fault proxy: a replica cut
//! off from the database (connections closed, or frozen) refuses every token once its
//! revocation state is older than the bound, says so on `/ready`, answers writes with 503 in
//! bounded time, and recovers by itself; SIGTERM stops it even while a call hangs.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::fault_proxy::{pg_url_via, FaultProxy, Mode};
use crate::helpers::{code, pg_url, sensor, test_settings, Backend, Storage, TestApp};
use tokend::config::Database;

/// The staleness bound of these tests (the default is 10 s).
const BOUND: Duration = Duration::from_secs(3);

/// A replica on `storage` whose every database connection goes through a fault proxy.
async fn replica_behind_proxy(storage: &std::sync::Arc<Storage>) -> (TestApp, FaultProxy) {
    let direct = storage.pg.as_ref().unwrap().url.clone();
    let proxy = FaultProxy::start(crate::fault_proxy::pg_server_addr(&direct));
    let mut settings = test_settings(storage);
    settings.database = Database::Postgres {
        url: pg_url_via(&direct, proxy.addr()).into(),
    };
    settings.revocation_max_staleness = BOUND;
    (TestApp::start(storage.clone(), settings).await, proxy)
}

async fn ready(app: &TestApp) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, _, body) = app.send(Method::GET, "/ready", None, None).await;
    (status, body, started.elapsed())
}

/// Waits until `/ready` on `app` answers 200 again; panics after `limit`.
async fn ready_again(app: &TestApp, limit: Duration) {
    let started = Instant::now();
    while ready(app).await.0 != StatusCode::OK {
        assert!(started.elapsed() < limit, "not ready again after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Revokes a token through the healthy replica while the other is cut off (`fault`), and
/// measures how long the cut-off one still accepted it. Returns that time.
async fn cut_off_replica_refuses_within_the_bound(fault: Mode) -> Duration {
    let healthy = TestApp::spawn(Backend::Postgres).await;
    let (cut, proxy) = replica_behind_proxy(&healthy.storage).await;
    let account = healthy.create_account(sensor("sensor:leaked")).await;
    let token = account["token"].as_str().unwrap().to_owned();
    assert_eq!(cut.whoami(&token).await.0, StatusCode::OK);

    proxy.set(fault);
    let (status, _) = healthy
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{}", account["identity_id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let revoked_at = Instant::now();
    // Until it refuses: 200 (it cannot know yet), then 503 revocation_state_stale for good.
    let mut last_accepted = Duration::ZERO;
    loop {
        let (status, body) = cut.whoami(&token).await;
        match status {
            StatusCode::OK => last_accepted = revoked_at.elapsed(),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(code(&body), "revocation_state_stale", "{body}");
                break;
            }
            other => panic!("{fault:?}: a cut-off replica answered {other}: {body}"),
        }
        assert!(
            revoked_at.elapsed() < BOUND + Duration::from_secs(3),
            "{fault:?}: still accepting the revoked token after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last_accepted <= BOUND + Duration::from_secs(1),
        "{fault:?}: {last_accepted:?}"
    );
    // It stays refusing, every token, with a Retry-After, and says why on /ready, fast.
    let (status, headers, body) = cut
        .send(Method::GET, "/auth/whoami", Some(&cut.admin_token), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"));
    let (status, body, took) = ready(&cut).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["revocation_sync"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert!(took < Duration::from_secs(4), "/ready took {took:?}");

    // The database comes back: the replica recovers by itself and refuses the token as
    // revoked.
    proxy.set(Mode::Pass);
    let back = Instant::now();
    loop {
        let (status, body) = cut.whoami(&token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&body), "token_revoked");
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "{fault:?}: no recovery after {:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready_again(&cut, Duration::from_secs(10)).await;
    eprintln!(
        "{fault:?}: the cut-off replica accepted the revoked token for {last_accepted:?} (bound {BOUND:?}), recovered in {:?}",
        back.elapsed()
    );
    last_accepted
}

#[actix_web::test]
async fn closed_connections_make_a_replica_refuse_within_the_bound() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    cut_off_replica_refuses_within_the_bound(Mode::Close).await;
}

#[actix_web::test]
async fn frozen_connections_make_a_replica_refuse_within_the_bound() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    cut_off_replica_refuses_within_the_bound(Mode::Freeze).await;
}

/// A write that needs a frozen database answers 503 storage_unavailable within seconds, and
/// one that needs a refused database at once.
#[actix_web::test]
async fn writes_to_an_unreachable_database_answer_503_in_bounded_time() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let healthy = TestApp::spawn(Backend::Postgres).await;
    let (cut, proxy) = replica_behind_proxy(&healthy.storage).await;
    for fault in [Mode::Freeze, Mode::Close] {
        proxy.set(fault);
        let started = Instant::now();
        let (status, body) = cut
            .admin(Method::POST, "/service-accounts", Some(&sensor("sensor:x")))
            .await;
        let took = started.elapsed();
        // Within the bound the token is still accepted, so the write reaches the database.
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}: {body}");
        assert_eq!(code(&body), "storage_unavailable", "{fault:?}: {body}");
        assert!(took < Duration::from_secs(9), "{fault:?}: took {took:?}");
        eprintln!("{fault:?}: a write answered 503 after {took:?}");
        proxy.set(Mode::Pass);
        ready_again(&cut, Duration::from_secs(15)).await;
    }
    // Nothing was half-written: the refused creates left no account behind.
    let (status, list) = healthy
        .admin(Method::GET, "/service-accounts?name=sensor:x", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 0, "{list}");
}

/// SIGTERM stops the real binary within its shutdown timeout even while a database call
/// hangs in a frozen connection; an idle one stops at once.
#[actix_web::test]
async fn sigterm_stops_the_server_even_with_a_frozen_database() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let storage = actix_web::web::block(|| Storage::new(Backend::Postgres))
        .await
        .unwrap();
    let direct = storage.pg.as_ref().unwrap().url.clone();
    let proxy = FaultProxy::start(crate::fault_proxy::pg_server_addr(&direct));
    let env = [
        ("TOKEND_DATABASE_URL", pg_url_via(&direct, proxy.addr())),
        ("TOKEND_SHUTDOWN_TIMEOUT", "2s".to_owned()),
    ];
    let admin = crate::cli::admin_token(&storage).await;

    // Idle: at once.
    let mut idle = crate::cli::serve_with(&storage, &env).await;
    let started = Instant::now();
    sigterm(&idle);
    wait_exit(&mut idle, Duration::from_secs(3)).await;
    eprintln!("idle: stopped {:?} after SIGTERM", started.elapsed());

    // Busy with a call into a frozen database.
    let mut busy = crate::cli::serve_with(&storage, &env).await;
    proxy.set(Mode::Freeze);
    let url = format!("{}/service-accounts", busy.url);
    let hanging = actix_web::rt::spawn(async move {
        // The server goes away under it: any outcome will do.
        let _ = reqwest::Client::new()
            .post(url)
            .bearer_auth(admin)
            .json(&sensor("sensor:hangs"))
            .send()
            .await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    sigterm(&busy);
    wait_exit(&mut busy, Duration::from_secs(6)).await;
    eprintln!(
        "frozen database: stopped {:?} after SIGTERM",
        started.elapsed()
    );
    hanging.abort();
}

fn sigterm(server: &crate::cli::Server) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait_exit(server: &mut crate::cli::Server, limit: Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(
            started.elapsed() < limit,
            "still running {limit:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
