//! Expiry warnings: delivered to a real HTTP receiver, signed, retried, never lost and never
//! repeated, across replicas and across a SIGKILL of the real binary.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

const SECRET: &str = "a webhook secret of some length";

#[derive(Clone, Debug)]
struct Delivery {
    ok: bool,
    event: String,
    delivery: String,
    signature: String,
    body: Vec<u8>,
}

/// A webhook receiver that answers 500 to the first `failures` requests, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let left = Arc::new(AtomicUsize::new(failures));
        let (s, l) = (seen.clone(), left.clone());
        let server = HttpServer::new(move || {
            let (s, l) = (s.clone(), l.clone());
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let (s, l) = (s.clone(), l.clone());
                    async move {
                        let ok = l
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_err();
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        s.lock().unwrap().push(Delivery {
                            ok,
                            event: header("x-tokend-event"),
                            delivery: header("x-tokend-delivery"),
                            signature: header("x-tokend-signature"),
                            body: body.to_vec(),
                        });
                        if ok {
                            HttpResponse::Ok().finish()
                        } else {
                            HttpResponse::InternalServerError().finish()
                        }
                    }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            seen,
            failures: left,
        }
    }

    /// Expiry warnings delivered.
    fn delivered(&self) -> Vec<Delivery> {
        self.delivered_of("token.expiring")
    }

    fn delivered_of(&self, event: &str) -> Vec<Delivery> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.ok && d.event == event)
            .cloned()
            .collect()
    }

    /// Delivery attempts of any event.
    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn hook(url: &str) -> tokend::notify::ExpiryWebhook {
    tokend::notify::ExpiryWebhook {
        url: url.to_owned(),
        secret: SECRET.to_owned().into(),
        thresholds: vec![Duration::from_secs(6), Duration::from_secs(3)],
        poll: Duration::from_millis(200),
        retry_base: Duration::from_millis(300),
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn warnings_are_signed_retried_and_never_repeated(backend: Backend) {
    let receiver = Receiver::start(2).await;
    let url = receiver.url.clone();
    let app = TestApp::spawn_with(backend, move |s| {
        s.leeway = Duration::ZERO;
        s.scopes
            .set_bounds_from_spec(tokend::scope::Scope::Execution, "1s:60m:60m")
            .unwrap();
        s.expiry_webhook = Some(hook(&url));
    })
    .await;
    let exec = |name: &str, ttl: u64| json!({"name": name, "scope": "execution", "ttl_seconds": ttl, "metadata": {"execution_id": 7}});
    let watched = app.create_account(exec("exec:watched", 9)).await;
    let short = app.create_account(exec("exec:short", 2)).await; // never lives 3 s: never crosses
    let revoked = app.create_account(exec("exec:revoked", 9)).await;
    app.admin(
        Method::DELETE,
        &format!("/service-accounts/{}", revoked["identity_id"]),
        None,
    )
    .await;
    // A replica on the same database runs its own notifier.
    let replica = app.replica().await;

    wait_for("two delivered warnings", Duration::from_secs(15), || {
        receiver.delivered().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await; // time for any repeat to show up

    let delivered = receiver.delivered();
    assert_eq!(
        delivered.len(),
        2,
        "one per threshold, no repeats: {delivered:?}"
    );
    assert!(
        receiver.attempts() >= 4,
        "the first two attempts failed and were retried"
    );
    let token_id = watched["token_id"].as_str().unwrap();
    let mut thresholds = Vec::new();
    for d in &delivered {
        assert_eq!(
            d.signature,
            tokend::notify::signature(SECRET, &d.body),
            "signature"
        );
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(body["event"], "token.expiring");
        assert_eq!(body["token_id"], token_id);
        assert_eq!(body["identity_id"], watched["identity_id"]);
        assert_eq!(body["name"], "exec:watched");
        assert_eq!(body["scope"], "execution");
        assert_eq!(body["expires_at"], watched["expires_at"]);
        let hours = body["hours_remaining"].as_f64().unwrap();
        assert!((0.0..=0.01).contains(&hours), "{hours}");
        thresholds.push(d.delivery.clone());
    }
    thresholds.sort();
    assert_eq!(
        thresholds,
        [format!("{token_id}:3"), format!("{token_id}:6")]
    );
    for other in [&short, &revoked] {
        let id = other["token_id"].as_str().unwrap();
        assert!(
            receiver
                .seen
                .lock()
                .unwrap()
                .iter()
                .all(|d| !d.delivery.starts_with(id)),
            "{id}"
        );
    }
    drop(replica);
}

/// SIGKILL the real binary while a warning is failing to deliver; the restarted one delivers
/// it exactly once, and a further restart does not repeat it.
async fn restart_neither_loses_nor_repeats(backend: Backend) {
    let receiver = Receiver::start(usize::MAX).await; // refuses everything for now
    let storage = actix_web::web::block(move || crate::helpers::Storage::new(backend))
        .await
        .unwrap();
    let env = [
        ("TOKEND_EXPIRY_WEBHOOK_URL", receiver.url.clone()),
        ("TOKEND_EXPIRY_WEBHOOK_SECRET", SECRET.to_owned()),
        ("TOKEND_EXPIRY_WEBHOOK_THRESHOLDS", "20s".to_owned()),
        ("TOKEND_EXPIRY_WEBHOOK_POLL", "200ms".to_owned()),
        ("TOKEND_EXPIRY_WEBHOOK_RETRY", "300ms".to_owned()),
        ("TOKEND_TTL_EXECUTION", "1s:60m:60m".to_owned()),
        ("TOKEND_LEEWAY", "0s".to_owned()),
    ];
    let server = crate::cli::serve_with(&storage, &env).await;
    let admin = crate::cli::admin_token(&storage).await;
    let (status, created) = crate::cli::call(
        Method::POST,
        format!("{}/service-accounts", server.url),
        &admin,
        Some(json!({"name": "exec:crash", "scope": "execution", "ttl_seconds": 30, "metadata": {"execution_id": 1}})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    wait_for("a failed attempt", Duration::from_secs(20), || {
        receiver.attempts() >= 1
    })
    .await;
    drop(server); // SIGKILL
    receiver.failures.store(0, Ordering::SeqCst);
    let server = crate::cli::serve_with(&storage, &env).await;
    // Killed between the receiver's 500 and recording it, the attempt still holds its lease.
    wait_for(
        "the delivery after the restart",
        tokend::notify::ATTEMPT_LEASE + Duration::from_secs(10),
        || !receiver.delivered().is_empty(),
    )
    .await;
    drop(server);
    let server = crate::cli::serve_with(&storage, &env).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(server);
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let token_id = created["token_id"].as_str().unwrap();
    assert_eq!(delivered[0].delivery, format!("{token_id}:20"));
}

/// Every revocation, single or bulk, goes out signed on the same webhook.
async fn revocations_go_out_on_the_webhook(backend: Backend) {
    let receiver = Receiver::start(1).await;
    let url = receiver.url.clone();
    let app = TestApp::spawn_with(backend, move |s| {
        s.expiry_webhook = Some(hook(&url));
    })
    .await;
    let account = app
        .create_account(crate::helpers::sensor("sensor:leaked"))
        .await;
    let (status, _) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{}", account["identity_id"]),
            Some(&json!({"reason": "leaked in a log"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    app.create_account(crate::helpers::sensor("sensor:other"))
        .await;
    let (status, bulk) = app
        .admin(
            Method::POST,
            "/revocations",
            Some(&json!({"scope": "sensor", "reason": "incident 7"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{bulk}");
    wait_for("two revocation notices", Duration::from_secs(15), || {
        receiver.delivered_of("credentials.revoked").len() >= 2
    })
    .await;
    let notices = receiver.delivered_of("credentials.revoked");
    assert_eq!(
        notices.len(),
        2,
        "one each, the failed first attempt retried"
    );
    let bodies: Vec<Value> = notices
        .iter()
        .map(|d| {
            assert_eq!(d.signature, tokend::notify::signature(SECRET, &d.body));
            serde_json::from_slice(&d.body).unwrap()
        })
        .collect();
    let account_notice = bodies
        .iter()
        .find(|b| b["action"] == "account.revoked")
        .expect("the account revocation");
    assert_eq!(account_notice["identity_id"], account["identity_id"]);
    assert_eq!(account_notice["reason"], "leaked in a log");
    assert_eq!(account_notice["detail"]["revoked_tokens"], 1);
    let rule_notice = bodies
        .iter()
        .find(|b| b["action"] == "revocation.bulk")
        .expect("the bulk revocation");
    assert_eq!(rule_notice["reason"], "incident 7");
    assert_eq!(rule_notice["detail"]["matched"], 1);
    assert_eq!(rule_notice["detail"]["scope"], "sensor");
}

/// The outbox does not grow for ever: deliveries older than the retention go at cleanup,
/// also the revocation notices of a server with no webhook configured.
async fn old_deliveries_are_pruned(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for name in ["sensor:old", "sensor:new"] {
        let account = app.create_account(crate::helpers::sensor(name)).await;
        let (status, _) = app
            .admin(
                Method::DELETE,
                &format!("/service-accounts/{}", account["identity_id"]),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    let count = |sql: &'static str| {
        let state = app.state.clone();
        actix_web::web::block(move || {
            use diesel::RunQueryDsl;
            let mut conn = state.pool.get().unwrap();
            diesel::sql_query(sql).execute(&mut *conn).unwrap()
        })
    };
    // Age the first notice past the retention (30 days by default).
    let aged = count(
        "UPDATE expiry_notification SET created_at = '2020-01-01 00:00:00' \
         WHERE id = (SELECT MIN(id) FROM expiry_notification)",
    )
    .await
    .unwrap();
    assert_eq!(aged, 1, "each revocation recorded a notice");
    let (status, _) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, audit) = app
        .admin(Method::GET, "/audit?action=cleanup.run&limit=1", None)
        .await;
    assert_eq!(
        audit["data"][0]["detail"]["deleted_notifications"], 1,
        "{audit}"
    );
    let left = count("UPDATE expiry_notification SET attempts = attempts")
        .await
        .unwrap();
    assert_eq!(left, 1, "the recent notice stays");
}

crate::both_backends!(
    old_deliveries_are_pruned,
    revocations_go_out_on_the_webhook,
    warnings_are_signed_retried_and_never_repeated,
    restart_neither_loses_nor_repeats
);
