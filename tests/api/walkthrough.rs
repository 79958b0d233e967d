//! The README's curl + jq walk-through (`scripts/walkthrough.sh`) against a live server.

use std::process::Command;

use crate::helpers::{Backend, TestApp};

fn tools_present() -> bool {
    ["curl", "jq", "bash"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

async fn readme_walkthrough(backend: Backend) {
    if !tools_present() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have curl, jq and bash for the walk-through"
        );
        eprintln!("skipped: the walk-through needs curl, jq and bash");
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

crate::both_backends!(readme_walkthrough);
