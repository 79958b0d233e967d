//! Signing-key rotation without downtime, and emergency revocation across replicas.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let (_, headers, jwks) = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// `POST /keys/rotate`, waiting out `rotation_too_soon` (the next key must be published for
/// the JWKS cache lifetime before it signs).
async fn rotate(app: &TestApp, token: &str) -> Value {
    loop {
        let (status, headers, body) = app
            .send(Method::POST, "/keys/rotate", Some(token), None)
            .await;
        if status == StatusCode::CONFLICT && code(&body) == "rotation_too_soon" {
            let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        return body;
    }
}

async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = app.whoami(token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&body), "invalid_token");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rotation_and_emergency_revocation(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.replica().await;
    let (_, keys) = a.admin(Method::GET, "/keys", None).await;
    let statuses: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == "active").count(), 1);
    assert_eq!(
        statuses.iter().filter(|s| **s == "next").count(),
        1,
        "a next key is published before it signs"
    );
    assert!(
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["alg"] == "EdDSA"),
        "{keys}"
    );
    let published = jwks_kids(&a).await;
    assert_eq!(published.len(), 2);

    let before = a
        .create_account(crate::helpers::sensor("sensor:before"))
        .await;
    let old_kid = kid_of(before["token"].as_str().unwrap());

    // Too early: the next key was published less than the JWKS cache lifetime ago.
    let (status, headers, body) = a
        .send(Method::POST, "/keys/rotate", Some(&a.admin_token), None)
        .await;
    if status == StatusCode::CONFLICT {
        assert_eq!(code(&body), "rotation_too_soon");
        assert!(headers.contains_key("retry-after"));
    }
    // Rotate on A: the next key (already published) signs; the old one keeps verifying.
    let r = if status == StatusCode::OK {
        body
    } else {
        rotate(&a, &a.admin_token).await
    };
    assert_eq!(r["retiring_kid"], json!(old_kid));
    assert!(
        published.contains(&r["active_kid"].as_str().unwrap().to_owned()),
        "the new signing key was published before"
    );
    let after = a
        .create_account(crate::helpers::sensor("sensor:after"))
        .await;
    assert_eq!(
        kid_of(after["token"].as_str().unwrap()),
        r["active_kid"].as_str().unwrap()
    );
    // B follows within a second: it accepts both, and signs with the new key.
    let start = Instant::now();
    loop {
        let from_b = b.create_account(crate::helpers::sensor("sensor:b")).await;
        if kid_of(from_b["token"].as_str().unwrap()) == r["active_kid"].as_str().unwrap() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still signs with the old key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for app in [&a, &b] {
        for t in [&before, &after] {
            assert_eq!(
                app.whoami(t["token"].as_str().unwrap()).await.0,
                StatusCode::OK
            );
        }
        assert_eq!(jwks_kids(app).await.len(), 3, "retiring, active, next");
    }

    // Emergency: revoke the retiring key on B; A refuses its tokens within a second.
    let (status, res) = b
        .admin(Method::POST, &format!("/keys/{old_kid}/revoke"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let took = refused_within(
        &a,
        before["token"].as_str().unwrap(),
        Duration::from_secs(1),
    )
    .await;
    eprintln!("{backend:?}: key revocation reached the other replica in {took:?}");
    refused_within(
        &b,
        before["token"].as_str().unwrap(),
        Duration::from_millis(50),
    )
    .await;
    assert_eq!(
        a.whoami(after["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    assert!(!jwks_kids(&a).await.contains(&old_kid));

    // The test's admin token was signed by the key just revoked: mint another one.
    let mint = |name: &'static str| {
        let settings = a.settings.clone();
        async move {
            actix_web::web::block(move || tokend::cli::mint_admin_token(&settings, name, None))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let admin = mint("after-first-incident").await;
    assert_eq!(code(&a.whoami(&a.admin_token).await.1), "invalid_token");

    // Emergency on the signing key itself: the next key takes over, nothing stops.
    let active = r["active_kid"].as_str().unwrap().to_owned();
    let (status, _, res) = a
        .send(
            Method::POST,
            &format!("/keys/{active}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_ne!(res["active_kid"], json!(active));
    refused_within(&b, after["token"].as_str().unwrap(), Duration::from_secs(1)).await;
    let admin = mint("after-second-incident").await;
    let (status, _, fresh) = a
        .send(
            Method::POST,
            "/service-accounts",
            Some(&admin),
            Some(&crate::helpers::sensor("sensor:fresh")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    assert_eq!(
        kid_of(fresh["token"].as_str().unwrap()),
        res["active_kid"].as_str().unwrap()
    );
    let start = Instant::now();
    while b.whoami(fresh["token"].as_str().unwrap()).await.0 != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _, _) = a
        .send(Method::POST, "/keys/nope/revoke", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, trail) = a
        .admin(Method::GET, "/audit?action=key.revoked", None)
        .await;
    assert!(
        trail.to_string().contains("key.revoked")
            || a.send(Method::GET, "/audit?action=key.revoked", Some(&admin), None)
                .await
                .0
                == StatusCode::OK
    );
}

async fn retiring_keys_retire(backend: Backend) {
    // Every scope's tokens live at most 2 s here, so a retiring key retires 2 s after rotation.
    let app = TestApp::spawn_with(backend, |s| {
        s.leeway = Duration::ZERO;
        for scope in tokend::scope::Scope::ALL {
            s.scopes.set_bounds_from_spec(scope, "1s:2s:2s").unwrap();
        }
    })
    .await;
    let admin = app.admin_token.clone();
    let r = rotate(&app, &admin).await;
    let retiring = r["retiring_kid"].as_str().unwrap().to_owned();
    assert!(jwks_kids(&app).await.contains(&retiring));
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        !jwks_kids(&app).await.contains(&retiring),
        "the old key retired by itself"
    );
}

async fn hs256_keys_are_not_rotated_here(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt = tokend::config::JwtAlgorithm::Hs256 {
            secret: "a shared secret that is long enough for HS256 use"
                .to_owned()
                .into(),
        };
    })
    .await;
    let (status, body) = app.admin(Method::POST, "/keys/rotate", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "keys_not_managed")
    );
}

/// A running PyJWT verifier process (`scripts/jwks_verifier.py`).
struct PyVerifier {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl PyVerifier {
    fn start(python: &str, url: &str) -> PyVerifier {
        let mut child = std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/jwks_verifier.py"
            ))
            .arg(url)
            .arg("tokend")
            // Cache the key set as long as tokend's Cache-Control allows (1 s in the tests).
            .arg("1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        PyVerifier {
            child,
            stdin,
            stdout,
        }
    }

    fn verify(&mut self, token: &str) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{token}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for PyVerifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A third-party verifier (PyJWT and its JWKS client, one long-lived cache) verifies tokens
/// issued before, across and after rotations without a single failure. Needs
/// `TOKEND_TEST_PYTHON`: a python with `pyjwt[crypto]` (.ci/run provides one).
async fn pyjwt_verifies_across_rotations(backend: Backend) {
    let Ok(python) = std::env::var("TOKEND_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set TOKEND_TEST_PYTHON"
        );
        eprintln!("skipped: TOKEND_TEST_PYTHON (a python with pyjwt[crypto]) is not set");
        return;
    };
    let app = TestApp::spawn(backend).await;
    let url = app.address.clone();
    let mut verifier = actix_web::web::block(move || PyVerifier::start(&python, &url))
        .await
        .unwrap();
    let mut tokens: Vec<String> = Vec::new();
    for round in 0..3 {
        let t = app
            .create_account(crate::helpers::sensor(&format!("sensor:round{round}")))
            .await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
        // Every token so far, old keys and new, verifies against the verifier's cached keys.
        let batch = tokens.clone();
        let (answers, v) = actix_web::web::block(move || {
            let answers: Vec<String> = batch.iter().map(|t| verifier.verify(t)).collect();
            (answers, verifier)
        })
        .await
        .unwrap();
        verifier = v;
        for answer in answers {
            assert!(
                answer.starts_with("ok "),
                "round {round}: {answer}; jwks now {:?}",
                jwks_kids(&app).await
            );
        }
        rotate(&app, &app.admin_token).await;
    }
}

crate::both_backends!(
    rotation_and_emergency_revocation,
    retiring_keys_retire,
    hs256_keys_are_not_rotated_here,
    pyjwt_verifies_across_rotations,
);
