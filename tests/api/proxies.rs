//! Forwarding headers count only from trusted proxies, and a client cannot add its own next
//! to the proxy's: an untrusted peer, ambiguous sources, `/auth/whoami`.
//!
//! The client talks from 127.0.0.2 and tokend trusts only 127.0.0.1, so the client is never a
//! trusted proxy itself.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

const CLIENT: &str = "127.0.0.2";
const PROXY: &str = "127.0.0.1/32";
const SPOOFED_IP: &str = "192.0.2.10";

/// A client that connects from [`CLIENT`], not a trusted address.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(CLIENT.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// tokend trusting only the proxies' address, with two webhook tokens for `/webhooks/deploy`:
/// one usable from [`CLIENT`], one only from 192.0.2.0/24 (an address a client may claim).
async fn app(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(backend, |s| {
        s.trusted_proxies = tokend::config::TrustedProxies::parse(PROXY).unwrap();
    })
    .await;
    let webhook = |name: &str, allow: &str| {
        json!({"name": name, "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy"], "ip_allowlist": [allow]}})
    };
    let here = app
        .create_account(webhook("webhook:deploy", "127.0.0.2/32"))
        .await;
    let elsewhere = app
        .create_account(webhook("webhook:partner", "192.0.2.0/24"))
        .await;
    let here = here["token"].as_str().unwrap().to_owned();
    let elsewhere = elsewhere["token"].as_str().unwrap().to_owned();
    (app, here, elsewhere)
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = client.get(url).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// GETs `url` and asserts 403 with the error code `expected`.
async fn refused(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    expected: &str,
) -> Value {
    let (status, body) = get(client, url, token, headers).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, expected),
        "{url} with {headers:?}: {body}"
    );
    body
}

// ---- Without a proxy ----------------------------------------------------------------------

/// A peer outside `TOKEND_TRUSTED_PROXIES` is the client, and its path is its own, whatever
/// forwarding headers it sends.
async fn untrusted_peer_headers_are_ignored(backend: Backend) {
    let (app, here, elsewhere) = app(backend).await;
    let client = client();
    let verify = app.url("/auth/verify");
    for spoof in [
        ("X-Forwarded-Uri", "/webhooks/deploy"),
        ("X-Original-URI", "/webhooks/deploy"),
        ("X-Forwarded-Prefix", "/webhooks/deploy"),
    ] {
        let body = refused(&client, &verify, &here, &[spoof], "path_not_allowed").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.2 were ignored"),
            "{body}"
        );
    }
    // The address: the peer, not what it claims.
    for spoof in [
        ("X-Forwarded-For", SPOOFED_IP),
        ("X-Real-IP", SPOOFED_IP),
        ("Forwarded", "for=192.0.2.10"),
    ] {
        refused(
            &client,
            &verify,
            &elsewhere,
            &[spoof, ("X-Original-URI", "/webhooks/deploy")],
            "path_not_allowed",
        )
        .await;
    }
    // The audit trail records the peer, not a claimed address.
    let (status, _) = {
        let mut req = client
            .post(app.url("/service-accounts"))
            .bearer_auth(&app.admin_token)
            .header("X-Forwarded-For", SPOOFED_IP)
            .header("X-Real-IP", SPOOFED_IP);
        req = req.json(&crate::helpers::sensor("sensor:audited"));
        let res = req.send().await.unwrap();
        (res.status(), ())
    };
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(last_audit_addr(&app).await, CLIENT);
}

/// Behind a trusted proxy, the audit trail records the client the proxy reports.
async fn audit_records_the_client_a_trusted_proxy_reports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(app.url("/service-accounts"))
        .bearer_auth(&app.admin_token)
        .header("X-Forwarded-For", "203.0.113.9, 198.51.100.7")
        .json(&crate::helpers::sensor("sensor:audited"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(last_audit_addr(&app).await, "198.51.100.7");
}

async fn last_audit_addr(app: &TestApp) -> String {
    app.flush_usage().await;
    let (status, body) = app.admin(Method::GET, "/audit?limit=1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0]["remote_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no remote_addr: {body}"))
        .to_owned()
}

/// Two sources of the original path that disagree: 403, whichever pair.
async fn ambiguous_original_uri_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(json!({"name": "webhook:deploy", "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy", "/auth/whoami"]}}))
        .await;
    let token = hook["token"].as_str().unwrap();
    let verify = app.url("/auth/verify");
    for spoof in [
        [
            ("X-Forwarded-Uri", "/webhooks/deploy"),
            ("X-Original-URI", "/admin/secret"),
        ],
        [
            ("X-Original-URI", "/webhooks/deploy"),
            ("X-Forwarded-Uri", "/admin/secret"),
        ],
        [
            ("X-Original-URI", "/webhooks/deploy"),
            ("X-Forwarded-Prefix", "/admin"),
        ],
        [
            ("X-Forwarded-Uri", "/webhooks/deploy"),
            ("X-Forwarded-Uri", "/admin/secret"),
        ],
    ] {
        refused(
            &app.client,
            &verify,
            token,
            &spoof,
            "ambiguous_original_uri",
        )
        .await;
    }
    // Agreeing sources are fine (a chain of proxies may set both).
    let (status, body) = get(
        &app.client,
        &verify,
        token,
        &[
            ("X-Forwarded-Uri", "/webhooks/deploy?delivery=1"),
            ("X-Original-URI", "/webhooks/deploy"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // whoami: its own path, unless a prefix-stripping proxy says otherwise.
    let whoami = app.url("/auth/whoami");
    let (status, body) = get(&app.client, &whoami, token, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // /gateway/auth/whoami is not allowed
    refused(
        &app.client,
        &whoami,
        token,
        &[("X-Forwarded-Prefix", "/gateway")],
        "path_not_allowed",
    )
    .await;
    refused(
        &app.client,
        &whoami,
        token,
        &[
            ("X-Forwarded-Uri", "/auth/whoami"),
            ("X-Original-URI", "/webhooks/deploy"),
        ],
        "ambiguous_original_uri",
    )
    .await;
}

/// `/auth/whoami` holds a webhook token to its `allowed_paths` and `ip_allowlist`.
async fn whoami_honours_webhook_limits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(json!({"name": "webhook:deploy", "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy"], "ip_allowlist": ["192.0.2.0/24"]}}))
        .await;
    let token = hook["token"].as_str().unwrap();
    let whoami = app.url("/auth/whoami");
    let inside = ("X-Real-IP", "192.0.2.10");
    // /auth/whoami is not in allowed_paths
    refused(&app.client, &whoami, token, &[inside], "path_not_allowed").await;
    let there = ("X-Original-URI", "/webhooks/deploy/whoami");
    refused(
        &app.client,
        &whoami,
        token,
        &[there, inside],
        "path_not_allowed",
    )
    .await;
    let there = ("X-Original-URI", "/webhooks/deploy");
    let (status, body) = get(&app.client, &whoami, token, &[there, inside]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "webhook:deploy");
    let outside = ("X-Real-IP", "198.51.100.1");
    refused(
        &app.client,
        &whoami,
        token,
        &[there, outside],
        "ip_not_allowed",
    )
    .await;
    // the peer 127.0.0.1 is outside the allowlist
    refused(&app.client, &whoami, token, &[there], "ip_not_allowed").await;
    // Sources naming different clients match no allowlist.
    refused(
        &app.client,
        &whoami,
        token,
        &[there, inside, ("X-Forwarded-For", "198.51.100.1")],
        "ip_not_allowed",
    )
    .await;
    // Other scopes are not affected.
    let sensor = app
        .create_account(crate::helpers::sensor("sensor:timer"))
        .await;
    let (status, body) = app.whoami(sensor["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

crate::both_backends!(
    untrusted_peer_headers_are_ignored,
    audit_records_the_client_a_trusted_proxy_reports,
    ambiguous_original_uri_is_refused,
    whoami_honours_webhook_limits,
);

#[test]
fn a_bad_trusted_proxy_cidr_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TOKEND_DATA_DIR", dir.path())
        .env("TOKEND_DATABASE_URL", dir.path().join("tokend.db"))
        .env("TOKEND_TRUSTED_PROXIES", "127.0.0.0/8,10.0.0.0/33")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TOKEND_TRUSTED_PROXIES: '10.0.0.0/33' is not a CIDR"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("tokend.db").exists(),
        "refused before opening the database"
    );
}
