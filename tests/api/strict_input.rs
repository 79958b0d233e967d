//! Strict parsing at the edge: control characters in any input, path tricks against a
//! webhook token's `allowed_paths`, and the modes of the files that hold secrets.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, webhook, Backend, TestApp};

/// Sends a raw body with a content type; status and JSON answer.
async fn post_raw(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or_default())
}

/// The accounts (without `last_used_at`, which the admin's own calls move) and the audit
/// trail, to show that a refused request changed nothing.
async fn snapshot(app: &TestApp) -> (Value, Vec<String>) {
    let (status, mut accounts) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    for account in accounts["data"].as_array_mut().unwrap() {
        account.as_object_mut().unwrap().remove("last_used_at");
    }
    (accounts, app.audit_actions("").await)
}

fn assert_refused(what: &str, (status, body): (StatusCode, Value), field: &str) {
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_characters"),
        "{what}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "{what}: the message names {field}: {message}"
    );
}

async fn control_characters_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(crate::helpers::sensor("sensor:a")).await;
    let id = account["identity_id"].as_i64().unwrap();
    app.add_user("alice", "correct horse battery", "admin")
        .await;
    let before = snapshot(&app).await;

    // Query strings and path parameters (the filters were a 500 on PostgreSQL).
    for (query, field) in [
        ("/service-accounts?name=%00", "`name`"),
        ("/service-accounts?name=sensor%3Aa%00", "`name`"),
        ("/service-accounts?name=a%09b", "`name`"),
        ("/service-accounts?scope=sensor%7F", "`scope`"),
        ("/service-accounts?name=%C2%85", "`name`"),
        ("/audit?action=%00", "`action`"),
        ("/audit?action=account.created%0A", "`action`"),
        ("/service-accounts/1%00", "path"),
        ("/auth/verify?trigger_type=core.timer%00", "`trigger_type`"),
    ] {
        let (status, _, body) = app
            .send(Method::GET, query, Some(&app.admin_token), None)
            .await;
        assert_refused(query, (status, body), field);
    }

    // JSON bodies, anywhere: names, descriptions, metadata keys and values, reasons, logins.
    let creates = [
        (
            json!({"name": "sensor:b\u{0}", "scope": "sensor", "metadata": {"trigger_types": ["t"]}}),
            "`name`",
        ),
        (
            json!({"name": "sensor:b", "scope": "sensor", "description": "x\u{0}y", "metadata": {"trigger_types": ["t"]}}),
            "`description`",
        ),
        (
            json!({"name": "sensor:b", "scope": "sensor", "description": "bell\u{7}", "metadata": {"trigger_types": ["t"]}}),
            "`description`",
        ),
        (
            json!({"name": "sensor:b", "scope": "sensor", "metadata": {"trigger_types": ["t", "u\u{1b}[31m"]}}),
            "`metadata.trigger_types[1]`",
        ),
        (
            json!({"name": "cli:b", "scope": "cli", "metadata": {"k\u{1}": "v"}}),
            "`metadata`",
        ),
        (
            json!({"name": "cli:b", "scope": "cli", "metadata": {"team": {"note": "a\u{7f}"}}}),
            "`metadata.team.note`",
        ),
        // Only top-level free text may hold a newline.
        (
            json!({"name": "cli:b", "scope": "cli", "metadata": {"description": "a\nb"}}),
            "`metadata.description`",
        ),
        (
            json!({"name": "cli:b", "scope": "cli", "metadata": {"x": "\u{85}"}}),
            "`metadata.x`",
        ),
        (json!({"name\u{0}": "cli:b", "scope": "cli"}), "field name"),
    ];
    let mut bodies: Vec<(Method, String, Value, &str)> = creates
        .into_iter()
        .map(|(body, field)| (Method::POST, "/service-accounts".to_owned(), body, field))
        .collect();
    bodies.extend([
        (
            Method::DELETE,
            format!("/service-accounts/{id}"),
            json!({"reason": "leaked\u{0}"}),
            "`reason`",
        ),
        (
            Method::POST,
            "/users".to_owned(),
            json!({"login": "bob\u{0}", "password": "correct horse battery", "role": "viewer"}),
            "`login`",
        ),
        (
            Method::POST,
            "/users".to_owned(),
            json!({"login": "bob", "password": "correct\u{0}horse", "role": "viewer"}),
            "`password`",
        ),
    ]);
    for (method, path, body, field) in &bodies {
        let (status, answer) = app.admin(method.clone(), path, Some(body)).await;
        assert_refused(&format!("{method} {path} {field}"), (status, answer), field);
    }
    let (status, _, body) = app.login("alice\u{0}", "correct horse battery").await;
    assert_refused("login", (status, body), "`login`");

    // Form bodies (and JSON) of /auth/introspect.
    let form = "application/x-www-form-urlencoded";
    for (what, content_type, body) in [
        (
            "form",
            form,
            format!("token={}%00", account["token"].as_str().unwrap()),
        ),
        ("form with a raw NUL", form, "token=a\u{0}b".to_owned()),
        (
            "JSON",
            "application/json",
            json!({"token": "a\u{0}"}).to_string(),
        ),
    ] {
        let answer = post_raw(
            &app,
            "/auth/introspect",
            Some(&app.admin_token),
            content_type,
            body,
        )
        .await;
        assert_refused(&format!("introspect {what}"), answer, "`token`");
    }

    // Nothing above changed anything.
    assert_eq!(
        snapshot(&app).await,
        before,
        "a refused request changed state"
    );

    // The deliberate exceptions: tabs and newlines in a description, a tab in a password.
    let described = app
        .create_account(json!({"name": "sensor:c", "scope": "sensor",
            "description": "line one\n\tline two", "metadata": {"trigger_types": ["t"]}}))
        .await;
    assert_eq!(described["description"], "line one\n\tline two");
    app.add_user("carol", "tab\tin the middle", "viewer").await;
    let (status, _, body) = app.login("carol", "tab\tin the middle").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn webhook_path_tricks_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(webhook(
            "webhook:deploy",
            &["/webhooks/deploy/*", "/webhooks/exact"],
        ))
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
                Some(&webhook("webhook:x", &[pattern])),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_metadata"),
            "{pattern}: {body}"
        );
    }
}

crate::both_backends!(
    control_characters_are_refused,
    webhook_path_tricks_are_refused
);

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
