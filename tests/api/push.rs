//! Revocation push on PostgreSQL: a notification wakes the other replicas' sync at once; with
//! the listener unreachable, or hearing nothing (as behind PgBouncer in transaction mode), the
//! poll still delivers every revocation and the metrics say push is not working.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cli::{serve_logging, serve_with, Server};
use crate::helpers::{pg_url, sensor, until_refused, Backend, TestApp};

/// A new account on `app`: (identity id, token).
async fn account(app: &TestApp, name: &str) -> (i64, String) {
    let created = app.create_account(sensor(name)).await;
    (
        created["identity_id"].as_i64().unwrap(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

async fn revoke(app: &TestApp, identity_id: i64) {
    let (status, body) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{identity_id}"),
            Some(&json!({"reason": "push test"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A sample of `/metrics` (no labels), if present.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits up to `limit` for `/metrics` to show `name` at `value`.
async fn until_metric(server: &Server, name: &str, value: f64, limit: Duration) {
    let start = Instant::now();
    loop {
        let now = metric(server, name).await;
        if now == Some(value) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{name} is {now:?} after {limit:?}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server on PostgreSQL with the poll at its longest (1 s): only push is faster.
async fn slow_poll() -> TestApp {
    TestApp::spawn_with(Backend::Postgres, |s| {
        s.revocation_sync_interval = Duration::from_secs(1)
    })
    .await
}

/// Waits (up to 10 s) until the in-process server's listener hears.
async fn until_listening(app: &TestApp) {
    let start = Instant::now();
    while !app.state.push.is_active() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the listener did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// With the poll at its longest (1 s), a revocation through A is refused by B within 200 ms,
/// every time: only a notification can do that.
#[actix_web::test]
async fn postgres_revocation_is_pushed_to_the_other_replica() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let a = slow_poll().await;
    let b = a.replica().await;
    until_listening(&b).await;
    let mut took = Vec::new();
    for i in 0..20 {
        let (id, token) = account(&a, &format!("sensor:push{i}")).await;
        assert_eq!(b.whoami(&token).await.0, StatusCode::OK);
        revoke(&a, id).await;
        took.push(until_refused(&b.address, &token, Duration::from_millis(200)).await);
    }
    took.sort();
    eprintln!(
        "pushed revocations reached the other replica in {:?} (median), {:?} (max)",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(b.state.push.is_active());
}

/// The listener cannot connect: revocations still arrive by the poll, and `/metrics` says push
/// is not active.
#[actix_web::test]
async fn postgres_unreachable_listener_falls_back_to_the_poll() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let a = TestApp::spawn(Backend::Postgres).await;
    let listen_url = format!(
        "postgres://postgres@127.0.0.1:{}/tokend?connect_timeout=2",
        closed_port()
    );
    let b = serve_with(&a.storage, &[("TOKEND_DATABASE_LISTEN_URL", listen_url)]).await;
    for i in 0..3 {
        let (id, token) = account(&a, &format!("sensor:poll{i}")).await;
        revoke(&a, id).await;
        until_refused(&b.url, &token, Duration::from_secs(3)).await;
    }
    assert_eq!(metric(&b, "tokend_revocation_push_active").await, Some(0.0));
    assert_eq!(
        metric(&b, "tokend_revocation_push_notifications_total").await,
        Some(0.0)
    );
}

/// A listener that is connected but hears nothing (PgBouncer in transaction mode accepts LISTEN
/// and never delivers; here: LISTEN on another database, which no trigger notifies): the
/// replica notices that its timed polls find revocations no notification announced, warns
/// once, and `/metrics` turns push off; the poll still delivers every revocation.
#[actix_web::test]
async fn postgres_deaf_listener_is_detected() {
    let Some(elsewhere) = pg_url() else {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    };
    let a = TestApp::spawn(Backend::Postgres).await;
    let log = a.storage.data_dir().join("b.log");
    let b = serve_logging(
        &a.storage,
        &[
            ("TOKEND_DATABASE_LISTEN_URL", elsewhere),
            ("RUST_LOG", "info".to_owned()),
        ],
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    let name = "tokend_revocation_push_active";
    until_metric(&b, name, 1.0, Duration::from_secs(10)).await;
    for i in 0..8 {
        let (id, token) = account(&a, &format!("sensor:deaf{i}")).await;
        revoke(&a, id).await;
        until_refused(&b.url, &token, Duration::from_secs(3)).await;
    }
    assert_eq!(metric(&b, name).await, Some(0.0), "push judged not working");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.matches("revocation push is not working").count(),
        1,
        "warned once:\n{logged}"
    );
    assert!(logged.contains("TOKEND_DATABASE_LISTEN_URL"), "{logged}");
}

/// The listener speaks TLS as libpq does: with `sslmode=require` its session is encrypted
/// (pg_stat_ssl says so) and revocations are still pushed.
#[actix_web::test]
async fn postgres_listener_over_tls() {
    if pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let a = slow_poll().await;
    let url = a.storage.pg.as_ref().unwrap().url.clone();
    let query = move |sql: &'static str| {
        let url = url.clone();
        actix_web::web::block(move || {
            use diesel::{Connection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                value: String,
            }
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            diesel::sql_query(sql)
                .load::<Row>(&mut conn)
                .unwrap()
                .into_iter()
                .map(|r| r.value)
                .collect::<Vec<_>>()
        })
    };
    if query("SELECT setting AS value FROM pg_settings WHERE name = 'ssl'")
        .await
        .unwrap()
        != ["on"]
    {
        // Debian's PostgreSQL has it on (the snakeoil certificate); CI must have it.
        assert!(
            std::env::var("CI").is_err(),
            "CI's PostgreSQL must have ssl = on"
        );
        eprintln!("skipped: the test PostgreSQL has ssl = off");
        return;
    }
    let mut settings = a.settings.clone();
    settings.database_listen_url = tokend::config::ListenUrl::Url(
        format!(
            "{}?sslmode=require&application_name=tokend-listener-b",
            a.storage.pg.as_ref().unwrap().url
        )
        .into(),
    );
    let b = TestApp::start(a.storage.clone(), settings).await;
    until_listening(&b).await;
    let encrypted = query(
        "SELECT s.ssl::text AS value FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'tokend-listener-b' AND a.datname = current_database()",
    )
    .await
    .unwrap();
    assert_eq!(encrypted, ["true"], "B's listener session is encrypted");
    for i in 0..3 {
        let (id, token) = account(&a, &format!("sensor:tls{i}")).await;
        assert_eq!(b.whoami(&token).await.0, StatusCode::OK);
        revoke(&a, id).await;
        until_refused(&b.address, &token, Duration::from_millis(200)).await;
    }
}
