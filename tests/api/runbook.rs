//! The operators' one-liner `echo "$TOKEN" | cut -d'.' -f2 | base64 -d | jq -r '.exp'`
//! prints the expiry of every token tokend issues, with the real `base64` and `jq`.

use std::process::Command;

use serde_json::json;

use crate::helpers::{Backend, TestApp};

fn one_liner(token: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"echo "$TOKEN" | cut -d'.' -f2 | base64 -d | jq -r '.exp'"#)
        .env("TOKEN", token)
        .output()
        .unwrap()
}

async fn expiry_one_liner(backend: Backend) {
    if !crate::helpers::require_tools(&["jq", "base64"]) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let names = [
        "sensor:core.timer",
        "a>b",
        "why?",
        "~tilde~",
        "x",
        "   inner spaces   ok".trim(),
        "{}[]\"\\'`!@#$%^&*()",
        ">>>???~~~",
        "n",
        "nn",
        "nnn",
        "0123456789",
        "ends-with-?",
        "?",
        ">",
        "~",
    ];
    let free = [
        json!({}),
        json!({"team": "caf\u{e9}", "emoji": "\u{1f510}", "math": "a > b ? c : d ~ e"}),
        // DEL (which the encoding also escapes) is refused at the edge as a control character;
        // src/tokens/encoding.rs's unit test still covers it.
        json!({"nested": {"list": [1, 2.5, true, null, "\u{2028}\u{a0}~"]}, "k>?~": "v"}),
        json!({"long": "l".repeat(700)}),
    ];
    let mut tokens = vec![app.admin_token.clone()];
    for (i, name) in names.iter().enumerate() {
        let body = match i % 3 {
            0 => {
                json!({"name": name, "scope": "sensor", "metadata": {"trigger_types": ["core.timer", format!("t{i}")]}})
            }
            1 => json!({"name": name, "scope": "cli", "metadata": free[i % free.len()]}),
            _ => {
                json!({"name": name, "scope": "webhook", "metadata": {"allowed_paths": ["/hooks/a", "/x/*"]}})
            }
        };
        for pad in 0..3 {
            let mut body = body.clone();
            body["description"] = json!("d".repeat(pad));
            let created = app.create_account(body).await;
            let exp = chrono::DateTime::parse_from_rfc3339(created["expires_at"].as_str().unwrap())
                .unwrap()
                .timestamp();
            tokens.push(created["token"].as_str().unwrap().to_owned());
            let out = actix_web::web::block({
                let token = created["token"].as_str().unwrap().to_owned();
                move || one_liner(&token)
            })
            .await
            .unwrap();
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stderr.is_empty(),
                "{name}: base64 complained: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                exp.to_string(),
                "{name}"
            );
        }
    }
    // Every token still verifies (introspection: a webhook token may only call its own
    // paths, not whoami), and the payload is plain JSON to any JWT library.
    for token in &tokens {
        let (status, active) = app
            .admin(
                reqwest::Method::POST,
                "/auth/introspect",
                Some(&json!({"token": token})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(active["active"], true, "{active}");
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
        assert!(claims["exp"].is_i64());
    }
}

crate::both_backends!(expiry_one_liner);
