//! The README's curl + jq walk-through (`scripts/walkthrough.sh`) against a live server.

use std::process::Command;

use crate::helpers::{Backend, TestApp};

async fn readme_walkthrough(backend: Backend) {
    if !crate::helpers::require_tools(&["curl", "jq", "bash"]) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (url, token) = (app.address.clone(), app.admin_token.clone());
    let out = actix_web::web::block(move || {
        Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/walkthrough.sh"
            ))
            .env("TOKEND_URL", url)
            .env("ADMIN_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("old token: token_revoked"), "{stdout}");
    assert!(stdout.contains("walkthrough: ok"), "{stdout}");
}

/// `tokend user add alice`, the people walk-through, then the management walk-through with
/// alice's token; a viewer gets 403 on DELETE; the audit trail reads like a story.
async fn readme_people_walkthrough(backend: Backend) {
    if !crate::helpers::require_tools(&["curl", "jq", "bash"]) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let password = "correct horse battery";
    for (login, role) in [("alice", "admin"), ("victor", "viewer")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokend"));
        cmd.env_clear()
            .env("TOKEND_DATA_DIR", app.storage.data_dir())
            .args(["user", "add", login, "--role", role, "--password-stdin"]);
        if let Some(pg) = &app.storage.pg {
            cmd.env("TOKEND_DATABASE_URL", &pg.url);
        }
        let out = crate::helpers::run_with_stdin(cmd, format!("{password}\n")).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let url = app.address.clone();
    let out = actix_web::web::block({
        let url = url.clone();
        move || {
            Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/people-walkthrough.sh"
                ))
                .env("TOKEND_URL", url)
                .env("LOGIN", "alice")
                .env("PASSWORD", password)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("login.succeeded") && stdout.contains("token.refreshed"),
        "{stdout}"
    );

    // The management walk-through with alice's token.
    let alice = app.login_token("alice", password).await;
    let out = actix_web::web::block(move || {
        Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/walkthrough.sh"
            ))
            .env("TOKEND_URL", url)
            .env("ADMIN_TOKEN", alice)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A viewer reads but gets 403 on DELETE.
    let victor = app.login_token("victor", password).await;
    let (_, _, list) = app
        .send(
            reqwest::Method::GET,
            "/service-accounts?name=sensor:core.timer",
            Some(&victor),
            None,
        )
        .await;
    let id = list["data"][0]["identity_id"].as_i64().unwrap();
    let (status, _, body) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/service-accounts/{id}"),
            Some(&victor),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN, "{body}");

    let actions = app.audit_actions("").await;
    for expected in [
        "user.added",
        "login.succeeded",
        "token.refreshed",
        "logout",
        "account.created",
        "account.revoked",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
}

crate::both_backends!(readme_walkthrough, readme_people_walkthrough);
