//! The operator scripts in `scripts/`, run for real (bash, curl, jq, date) against a live server.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};

async fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR")))
        .args(args);
    cmd.env_remove("TOKEND_TOKEN")
        .env_remove("ADMIN_TOKEN")
        .env_remove("ATTUNE_API_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::helpers::run_command(cmd).await
}

async fn operator_scripts(backend: Backend) {
    if !crate::helpers::require_tools(&["curl", "jq", "bash", "base64"]) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let url = app.address.clone();
    let admin = app.admin_token.clone();
    let env = [
        ("TOKEND_URL", url.as_str()),
        ("TOKEND_TOKEN", admin.as_str()),
    ];

    // rotate-sensor-token.sh: the whole rotation.
    let old = app
        .create_account(json!({"name": "sensor:core.timer", "scope": "sensor", "ttl_hours": 48,
            "description": "timer", "metadata": {"trigger_types": ["core.timer", "core.interval"]}}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sensor.token");
    std::fs::write(&file, format!("{}\n", old["token"].as_str().unwrap())).unwrap();
    let out_arg = file.to_str().unwrap().to_owned();
    let (status, stdout, stderr) = script(
        "rotate-sensor-token.sh",
        &["sensor:core.timer", "--out", &out_arg],
        &env,
    )
    .await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    let new_token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_ne!(new_token, old["token"].as_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (status, me) = app.whoami(&new_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "sensor:core.timer");
    assert_eq!(
        me["metadata"]["trigger_types"],
        json!(["core.timer", "core.interval"])
    );
    assert_eq!(
        code(&app.whoami(old["token"].as_str().unwrap()).await.1),
        "token_revoked"
    );
    let (_, detail) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{}", old["identity_id"]),
            None,
        )
        .await;
    assert_eq!(detail["revocation_reason"], "Token rotation");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );

    // A failed rotation leaves the old token in place and valid.
    app.add_user("victor", "correct horse battery", "viewer")
        .await;
    let viewer = app.login_token("victor", "correct horse battery").await;
    let (status, _, stderr) = script(
        "rotate-sensor-token.sh",
        &["sensor:core.timer", "--out", &out_arg],
        &[
            ("TOKEND_URL", url.as_str()),
            ("TOKEND_TOKEN", viewer.as_str()),
        ],
    )
    .await;
    assert_ne!(status, 0);
    assert!(stderr.contains("403"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new_token);
    assert_eq!(app.whoami(&new_token).await.0, StatusCode::OK);
    let missing = dir.path().join("no/such/dir/token");
    let (status, _, _) = script(
        "rotate-sensor-token.sh",
        &["sensor:core.timer", "--out", missing.to_str().unwrap()],
        &env,
    )
    .await;
    assert_ne!(status, 0);
    assert_eq!(
        app.whoami(&new_token).await.0,
        StatusCode::OK,
        "a failed rotation revokes nothing"
    );
    let (status, _, stderr) = script(
        "rotate-sensor-token.sh",
        &["sensor:nobody", "--out", &out_arg],
        &env,
    )
    .await;
    assert_eq!(status, 1, "{stderr}");

    // check-all-tokens.sh: the expiry report.
    let (status, stdout, stderr) = script("check-all-tokens.sh", &[], &env).await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("✓") && stdout.contains("sensor:core.timer"),
        "{stdout}"
    );
    app.create_account(
        json!({"name": "exec:soon", "scope": "execution", "metadata": {"execution_id": 1}}),
    )
    .await;
    let (status, stdout, _) = script("check-all-tokens.sh", &[], &env).await;
    assert_eq!(status, 1, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with('⚠') && l.contains("exec:soon")),
        "{stdout}"
    );
    let (status, _, _) = script(
        "check-all-tokens.sh",
        &[],
        &[("TOKEND_URL", "http://127.0.0.1:9"), ("TOKEND_TOKEN", "x")],
    )
    .await;
    assert_eq!(status, 2);

    // check-token-expiration.sh: from the token alone.
    let (status, stdout, _) = script(
        "check-token-expiration.sh",
        &[],
        &[("TOKEND_TOKEN", new_token.as_str())],
    )
    .await;
    assert_eq!(status, 0, "{stdout}");
    assert!(
        stdout.contains("in 72.0 h") || stdout.contains("in 71.9 h"),
        "{stdout}"
    );
    let soon = app
        .create_account(
            json!({"name": "exec:x", "scope": "execution", "metadata": {"execution_id": 2}}),
        )
        .await;
    let (status, stdout, _) = script(
        "check-token-expiration.sh",
        &[],
        &[("ATTUNE_API_TOKEN", soon["token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(status, 1, "{stdout}");
    assert!(stdout.starts_with('⚠'), "{stdout}");
    let (status, _, _) = script(
        "check-token-expiration.sh",
        &[],
        &[("TOKEND_TOKEN", "not.a.token")],
    )
    .await;
    assert_eq!(status, 2);
}

crate::both_backends!(operator_scripts);
