//! Users, logins and roles (throttling: `logins.rs`).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};

const PW: &str = "correct horse battery";

async fn users_log_in_for_cli_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.add_user("Alice", PW, "admin").await;
    assert_eq!(
        alice["login"], "alice",
        "logins are case-insensitive, stored lower-case"
    );
    assert_eq!(alice["role"], "admin");
    assert!(
        !alice.to_string().contains("argon2"),
        "no hash in responses"
    );

    for (body, want) in [
        (
            json!({"login": "alice", "password": PW, "role": "admin"}),
            (StatusCode::CONFLICT, "login_taken"),
        ),
        (
            json!({"login": "bob", "password": PW, "role": "root"}),
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        (
            json!({"login": "bob", "password": "short", "role": "viewer"}),
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
        (
            json!({"login": "b o b", "password": PW, "role": "viewer"}),
            (StatusCode::BAD_REQUEST, "invalid_request"),
        ),
    ] {
        let (status, res) = app.admin(Method::POST, "/users", Some(&body)).await;
        assert_eq!((status, code(&res)), want, "{body}");
    }

    let (status, _, body) = app.login("ALICE", PW).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["login"], "alice");
    assert_eq!(body["role"], "admin");
    assert_eq!(body["identity_id"], alice["identity_id"]);
    let token = body["token"].as_str().unwrap();
    let (_, me) = app.whoami(token).await;
    assert_eq!(me["scope"], "cli");
    assert_eq!(me["name"], "alice");
    assert_eq!(me["metadata"], json!({"login": "alice", "role": "admin"}));
    let days = crate::helpers::seconds_between(
        &json!(chrono::Utc::now().to_rfc3339()),
        &body["expires_at"],
    ) as f64
        / 86_400.0;
    assert!(
        (6.9..=7.0).contains(&days),
        "default cli lifetime is 7 days: {days}"
    );

    // ttl_days within the cli bounds.
    let (status, _, body) = app
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({"login": "alice", "password": PW, "ttl_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = app
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({"login": "alice", "password": PW, "ttl_days": 31})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "ttl_out_of_range")
    );

    // One answer for every failure.
    let (s1, h1, wrong) = app.login("alice", "not the password").await;
    let (s2, _, unknown) = app.login("nobody", "not the password").await;
    let (s3, _, malformed) = app.login("no such login!", "x").await;
    assert_eq!(
        (s1, s2, s3),
        (
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED
        )
    );
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    assert_eq!(code(&wrong), "invalid_credentials");
    assert!(!h1.contains_key("www-authenticate"));
}

async fn roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW, "admin").await;
    app.add_user("victor", PW, "viewer").await;
    let alice = app.login_token("alice", PW).await;
    let victor = app.login_token("victor", PW).await;

    // alice manages everything.
    let (status, _, created) = app
        .send(
            Method::POST,
            "/service-accounts",
            Some(&alice),
            Some(&crate::helpers::sensor("sensor:a")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/service-accounts/{}", created["identity_id"]);

    // victor reads.
    for read in ["/service-accounts", path.as_str(), "/audit"] {
        let (status, _, body) = app.send(Method::GET, read, Some(&victor), None).await;
        assert_eq!(status, StatusCode::OK, "{read}: {body}");
    }
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&victor)
        .form(&[("token", created["token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // ...and changes nothing.
    for (method, target, body) in [
        (Method::DELETE, path.clone(), None),
        (
            Method::POST,
            "/service-accounts".to_owned(),
            Some(crate::helpers::sensor("sensor:v")),
        ),
        (Method::POST, format!("{path}/tokens"), None),
        (
            Method::POST,
            "/users".to_owned(),
            Some(json!({"login": "eve", "password": PW, "role": "admin"})),
        ),
        (Method::POST, "/admin/cleanup".to_owned(), None),
        (
            Method::POST,
            "/tokens/revoke".to_owned(),
            Some(json!({"token_id": created["token_id"]})),
        ),
    ] {
        let (status, _, res) = app
            .send(method, &target, Some(&victor), body.as_ref())
            .await;
        assert_eq!(
            (status, code(&res)),
            (StatusCode::FORBIDDEN, "insufficient_scope"),
            "{target}"
        );
    }
    assert_eq!(
        app.whoami(created["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // Sensor, execution, webhook tokens, and a cli token of a service account: no role.
    let others = [
        created.clone(),
        app.create_account(
            json!({"name": "e", "scope": "execution", "metadata": {"execution_id": 1}}),
        )
        .await,
        app.create_account(
            json!({"name": "w", "scope": "webhook", "metadata": {"allowed_paths": ["/h"]}}),
        )
        .await,
        app.create_account(
            json!({"name": "cli:svc", "scope": "cli", "metadata": {"role": "admin"}}),
        )
        .await,
    ];
    for other in others {
        let token = other["token"].as_str().unwrap();
        for (method, target) in [
            (Method::GET, "/service-accounts"),
            (Method::GET, "/audit"),
            (Method::DELETE, path.as_str()),
        ] {
            let (status, _, res) = app.send(method, target, Some(token), None).await;
            assert_eq!(
                (status, code(&res)),
                (StatusCode::FORBIDDEN, "insufficient_scope"),
                "{} on {target}",
                other["scope"]
            );
        }
    }
    let (status, _, _) = app.send(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn login_can_revoke_previous_tokens(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.login_revokes_previous = true).await;
    app.add_user("alice", PW, "admin").await;
    // The fields in order, as an array: serde alone would read it as the login object.
    let (status, _, body) = app
        .send(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!(["alice", PW])),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let first = app.login_token("alice", PW).await;
    let second = app.login_token("alice", PW).await;
    assert_eq!(code(&app.whoami(&first).await.1), "token_revoked");
    assert_eq!(app.whoami(&second).await.0, StatusCode::OK);
}

async fn cli_user_add(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"));
    cmd.env_clear()
        .env("TOKEND_DATA_DIR", app.storage.data_dir())
        .args([
            "user",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-stdin",
        ]);
    if let Some(pg) = &app.storage.pg {
        cmd.env("TOKEND_DATABASE_URL", &pg.url);
    }
    let out = crate::helpers::run_with_stdin(cmd, format!("{PW}\n")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["login"], "carol");
    let token = app.login_token("carol", PW).await;
    assert_eq!(app.whoami(&token).await.1["metadata"]["role"], "viewer");
}

crate::both_backends!(
    users_log_in_for_cli_tokens,
    roles,
    login_can_revoke_previous_tokens,
    cli_user_add
);
