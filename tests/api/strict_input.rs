//! Strict parsing at the edge: control characters in any input, path tricks against a
//! webhook token's `allowed_paths`, and the modes of the files that hold secrets.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

async fn webhook_path_tricks_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(json!({"name": "webhook:deploy", "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy/*", "/webhooks/exact"]}}))
        .await;
    let token = hook["token"].as_str().unwrap();
    let verify = |path: &'static str| {
        let req = app
            .client
            .get(app.url("/auth/verify"))
            .bearer_auth(token)
            .header("X-Original-URI", path);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or_default();
            (status, code(&body).to_owned())
        }
    };
    for ok in [
        "/webhooks/deploy/run",
        "/webhooks/deploy/run?ref=main;x",
        "/webhooks/deploy/v1.2/run",
        "/webhooks/deploy/%72un",
        "/webhooks/exact",
    ] {
        assert_eq!(verify(ok).await.0, StatusCode::OK, "{ok}");
    }
    for trick in [
        "/webhooks/deploy/..;/admin",
        "/webhooks/deploy/.;/x",
        "/webhooks/deploy/x;jsessionid=1",
        "/webhooks/deploy/%3b/../admin",
        "/webhooks/deploy/x%3B",
        "/webhooks/deploy/%252e%252e/admin",
        "/webhooks/deploy/%2e%2e%2fadmin",
        "/webhooks/deploy/a%2fb",
        "/webhooks/deploy/a%5cb",
        "/webhooks/deploy/..\\admin",
        "/webhooks/deploy/./x",
        "/webhooks/deploy/.../x",
        "/webhooks/deploy/a%zz",
        "/webhooks/deploy/a%00",
        "/webhooks/exact%3b",
    ] {
        assert_eq!(
            verify(trick).await,
            (StatusCode::FORBIDDEN, "path_not_allowed".to_owned()),
            "{trick}"
        );
    }

    // Patterns are held to the same rules when the token is asked for.
    for pattern in [
        "/webhooks/a;b",
        "/webhooks/..;/*",
        "/webhooks/%2e%2e/*",
        "/webhooks/a%2fb",
        "/webhooks/a\\b",
    ] {
        let (status, body) = app
            .admin(
                Method::POST,
                "/service-accounts",
                Some(&json!({"name": "webhook:x", "scope": "webhook",
                    "metadata": {"allowed_paths": [pattern]}})),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_metadata"),
            "{pattern}: {body}"
        );
    }
}

crate::both_backends!(webhook_path_tricks_are_refused);

#[cfg(unix)]
mod file_modes {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use tokend::config::Database;

    use crate::helpers::{sensor, test_settings, Backend, Storage, TestApp};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    }

    /// A server whose data directory (`<tmp>/data`) does not exist yet, or holds what
    /// `prepare` put there.
    async fn start(prepare: impl FnOnce(&Path)) -> (TestApp, std::path::PathBuf) {
        let storage = Storage::new(Backend::Sqlite);
        let data = storage.dir.path().join("data");
        prepare(&data);
        let mut settings = test_settings(&storage);
        settings.data_dir = data.clone();
        settings.database = Database::Sqlite {
            path: data.join("tokend.db"),
        };
        let app = TestApp::start(storage, settings).await;
        // A write, so that the write-ahead log exists.
        app.create_account(sensor("sensor:modes")).await;
        (app, data)
    }

    fn assert_private(data: &Path) {
        assert_eq!(mode(data), 0o700, "the data directory");
        for file in [
            "tokend.db",
            "tokend.db-wal",
            "tokend.db-shm",
            "signing-keys.kek",
        ] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }

    #[actix_web::test]
    async fn new_database_files_are_private() {
        let (_app, data) = start(|_| {}).await;
        assert_private(&data);
    }

    #[actix_web::test]
    async fn world_readable_database_files_are_tightened_at_start() {
        let (first, data) = start(|_| {}).await;
        for file in ["tokend.db", "tokend.db-wal", "signing-keys.kek"] {
            std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        // A second process on the same files (as after a restart) tightens them at start.
        let replica = first.replica().await;
        assert_private(&data);
        assert_eq!(replica.whoami(&replica.admin_token).await.0, 200);
    }
}
