//! Storage faults: a full disk, a SQLite file deleted under the running server or locked by
//! another process, a PostgreSQL that turned read-only. Writes answer 503
//! `storage_unavailable` (never 500) and change nothing, `/ready` says the replica cannot
//! write, verification keeps working, and what was acknowledged is still there afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{code, sensor, Backend, TestApp};
use tokend::config::Database;

/// A small tmpfs of its own (needs root, as in CI); unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A server whose SQLite file and key file live in `dir`.
async fn app_in(dir: &Path) -> TestApp {
    let dir = dir.to_path_buf();
    TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.database = Database::Sqlite {
            path: dir.join("tokend.db"),
        };
        s.data_dir = dir;
    })
    .await
}

async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let (status, _, body) = app.send(Method::GET, "/ready", None, None).await;
    (status, body)
}

/// `/ready` answers 503 because storage cannot take writes, for a reason that says `why`.
async fn assert_cannot_write(app: &TestApp, why: &str) {
    let (status, body) = ready(app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    let check = &body["checks"]["storage"];
    assert_eq!(check["ok"], false, "{body}");
    assert!(check["message"].as_str().unwrap().contains(why), "{body}");
}

async fn try_create(app: &TestApp, name: &str) -> (StatusCode, Value) {
    app.admin(Method::POST, "/service-accounts", Some(&sensor(name)))
        .await
}

/// Fills the file system holding `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    // Whatever is left, byte by byte-ish.
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[actix_web::test]
async fn a_full_disk_refuses_writes_with_503_and_loses_nothing_acknowledged() {
    let Some(fs) = Tmpfs::mount("16m") else {
        eprintln!("skipped: cannot mount a tmpfs (needs root)");
        return;
    };
    let app = app_in(fs.path()).await;
    let holder = app.create_account(sensor("sensor:before")).await;
    let token = holder["token"].as_str().unwrap().to_owned();
    let filler = fill(fs.path());

    // Writes fail with 503 and nothing else (SQLite may still fit a few into its WAL).
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let (status, body) = try_create(&app, &format!("sensor:full-{i}")).await;
        match status {
            StatusCode::CREATED => acknowledged.push(body["identity_id"].clone()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(code(&body), "storage_unavailable", "{body}");
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
    }
    assert!(refused >= 3, "the full disk never refused a write");
    assert_cannot_write(&app, "full").await;
    // Verification needs no disk.
    assert_eq!(app.whoami(&token).await.0, StatusCode::OK);
    // A revocation either happened (and holds) or was refused (and changed nothing).
    let (status, body) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{}", holder["identity_id"]),
            None,
        )
        .await;
    let revoked = match status {
        StatusCode::OK => true,
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(code(&body), "storage_unavailable");
            false
        }
        other => panic!("revoking on a full disk answered {other}: {body}"),
    };
    let expected = if revoked {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    assert_eq!(app.whoami(&token).await.0, expected);

    // Room again: writes work, ready again, and every acknowledged write is there, also for
    // a fresh process on the same file.
    std::fs::remove_file(filler).unwrap();
    app.create_account(sensor("sensor:after")).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reopened = app_in(fs.path()).await;
    for id in &acknowledged {
        let (status, body) = reopened
            .admin(Method::GET, &format!("/service-accounts/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "acknowledged account {id}: {body}");
    }
    assert_eq!(reopened.whoami(&token).await.0, expected);
}

/// Runs SQL on the test's PostgreSQL database as its owner, then drops every other session
/// of it, so the server's connections reconnect and see the change.
fn pg_admin(url: &str, sql: &str) {
    use diesel::RunQueryDsl;
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let mut conn = diesel::PgConnection::establish(url).unwrap();
    // One statement at a time: a multi-statement string is one implicit transaction.
    for statement in sql.split(';') {
        conn.batch_execute(&statement.replace("{db}", name))
            .unwrap();
    }
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut conn)
    .unwrap();
}

/// PostgreSQL turned read-only (as a standby in recovery is, or by
/// `default_transaction_read_only`): writes answer 503 and `/ready` says why; verification
/// goes on; writes resume by themselves once it is writable again.
#[actix_web::test]
async fn a_read_only_postgres_refuses_writes_and_keeps_verifying() {
    if crate::helpers::pg_url().is_none() {
        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
        return;
    }
    let app = TestApp::spawn(Backend::Postgres).await;
    let holder = app.create_account(sensor("sensor:ro")).await;
    let url = app.storage.pg.as_ref().unwrap().url.clone();
    let u = url.clone();
    actix_web::web::block(move || {
        pg_admin(
            &u,
            "ALTER DATABASE {db} SET default_transaction_read_only = on",
        )
    })
    .await
    .unwrap();
    for i in 0..3 {
        let (status, body) = try_create(&app, &format!("sensor:refused-{i}")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(code(&body), "storage_unavailable");
    }
    assert_cannot_write(&app, "read-only").await;
    assert_eq!(
        app.whoami(holder["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    let (status, list) = app.admin(Method::GET, "/service-accounts", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 2, "nothing half-written: {list}");
    actix_web::web::block(move || {
        pg_admin(
            &url,
            "SET default_transaction_read_only = off; ALTER DATABASE {db} RESET default_transaction_read_only",
        )
    })
    .await
    .unwrap();
    let started = Instant::now();
    loop {
        let (status, body) = try_create(&app, "sensor:writable-again").await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ready(&app).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn a_vanished_database_file_is_refused_not_silently_recreated() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_in(dir.path()).await;
    let holder = app.create_account(sensor("sensor:vanishing")).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("tokend.db{suffix}")));
    }
    let (status, body) = try_create(&app, "sensor:into-the-void").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "storage_unavailable");
    assert!(
        !dir.path().join("tokend.db").exists(),
        "no empty database was created in its place"
    );
    assert_cannot_write(&app, "vanished").await;
    assert_eq!(
        app.whoami(holder["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
}

/// The real binary (its own process, as in production): its writers queue behind a lock held
/// by another process for at most `busy_timeout`, then answer 503.
#[actix_web::test]
async fn a_database_locked_by_another_process_answers_503_in_bounded_time() {
    let storage = actix_web::web::block(|| crate::helpers::Storage::new(Backend::Sqlite))
        .await
        .unwrap();
    let server = crate::cli::serve_with(&storage, &[]).await;
    let admin = crate::cli::admin_token(&storage).await;
    let create = |name: &str| {
        crate::cli::call(
            Method::POST,
            format!("{}/service-accounts", server.url),
            &admin,
            Some(sensor(name)),
        )
    };
    let (status, holder) = create("sensor:locked").await;
    assert_eq!(status, StatusCode::CREATED);
    // Another process's connection takes the write lock and keeps it for 8 s.
    let path = storage.data_dir().join("tokend.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let locker = std::thread::spawn(move || {
        let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
        conn.batch_execute("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(8));
        conn.batch_execute("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    let started = Instant::now();
    let (status, body) = create("sensor:waits").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "storage_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    // Reads and verification go on meanwhile.
    let (status, _) = crate::cli::call(
        Method::GET,
        format!("{}/service-accounts", server.url),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = crate::cli::call(
        Method::GET,
        format!("{}/auth/whoami", server.url),
        holder["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    actix_web::web::block(move || locker.join().unwrap())
        .await
        .unwrap();
    let (status, body) = create("sensor:after-the-lock").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
