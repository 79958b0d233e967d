//! `GET /auth/verify`: forward-auth conditions.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};

async fn check(
    app: &TestApp,
    token: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let mut req = app
        .client
        .get(app.url(&format!("/auth/verify{query}")))
        .bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code, headers)
}

async fn forward_auth(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sensor = app.create_account(json!({"name": "sensor:timer", "scope": "sensor", "metadata": {"trigger_types": ["core.timer"]}})).await;
    let s = sensor["token"].as_str().unwrap();
    let exec = app
        .create_account(
            json!({"name": "exec", "scope": "execution", "metadata": {"execution_id": 4711}}),
        )
        .await;
    let e = exec["token"].as_str().unwrap();
    let hook = app
        .create_account(json!({"name": "webhook:github", "scope": "webhook", "metadata": {"allowed_paths": ["/webhooks/github", "/ci/*"], "ip_allowlist": ["192.0.2.0/24"]}}))
        .await;
    let w = hook["token"].as_str().unwrap();

    let (status, _, headers) = check(&app, s, "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-tokend-identity-id"],
        sensor["identity_id"].to_string().as_str()
    );
    assert_eq!(headers["x-tokend-name"], "sensor:timer");
    assert_eq!(headers["x-tokend-scope"], "sensor");
    assert_eq!(
        headers["x-tokend-token-id"],
        sensor["token_id"].as_str().unwrap()
    );

    assert_eq!(
        check(&app, s, "?scope=sensor,admin", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        check(&app, s, "?scope=admin", &[]).await.1,
        "insufficient_scope"
    );
    assert_eq!(
        check(&app, s, "?scope=nonsense", &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        check(&app, s, "?trigger_type=core.timer", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        check(&app, s, "?trigger_type=core.webhook", &[]).await.1,
        "trigger_type_not_allowed"
    );
    assert_eq!(
        check(&app, e, "?trigger_type=core.timer", &[]).await.1,
        "trigger_type_not_allowed"
    );
    assert_eq!(
        check(&app, e, "?execution_id=4711", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        check(&app, e, "?execution_id=4712", &[]).await.1,
        "execution_mismatch"
    );
    assert_eq!(
        check(&app, s, "?execution_id=4711", &[]).await.1,
        "execution_mismatch"
    );
    assert_eq!(
        check(&app, e, "?execution_id=x", &[]).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        check(&app, s, "?unknown=1", &[]).await.0,
        StatusCode::BAD_REQUEST
    );

    let from = ("X-Real-IP", "192.0.2.10");
    assert_eq!(
        check(
            &app,
            w,
            "",
            &[("X-Forwarded-Uri", "/webhooks/github?delivery=1"), from]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        check(&app, w, "", &[("X-Original-URI", "/ci/build/7"), from])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        check(&app, w, "", &[("X-Original-URI", "/webhooks/gitlab"), from])
            .await
            .1,
        "path_not_allowed"
    );
    assert_eq!(
        check(&app, w, "", &[("X-Original-URI", "/ci/../admin"), from])
            .await
            .1,
        "path_not_allowed"
    );
    assert_eq!(
        check(&app, w, "", &[("X-Original-URI", "/ci/%2e%2e/admin"), from])
            .await
            .1,
        "path_not_allowed"
    );
    assert_eq!(
        check(&app, w, "", &[from]).await.1,
        "path_not_allowed",
        "no original path: refused"
    );
    assert_eq!(
        check(
            &app,
            w,
            "",
            &[("X-Original-URI", "/ci/x"), ("X-Real-IP", "198.51.100.1")]
        )
        .await
        .1,
        "ip_not_allowed"
    );
    assert_eq!(
        check(
            &app,
            w,
            "",
            &[
                ("X-Original-URI", "/ci/x"),
                ("X-Forwarded-For", "198.51.100.1, 192.0.2.5")
            ]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        check(
            &app,
            w,
            "",
            &[
                ("X-Original-URI", "/ci/x"),
                ("X-Forwarded-For", "192.0.2.5, 198.51.100.1")
            ]
        )
        .await
        .1,
        "ip_not_allowed"
    );

    // Any method (gateways may forward the original one), and bad tokens are 401.
    let res = app
        .client
        .post(app.url("/auth/verify"))
        .bearer_auth(s)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(check(&app, "nope", "", &[]).await.1, "invalid_token");
    let (status, _, body) = app.send(Method::GET, "/auth/verify", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
}

crate::both_backends!(forward_auth);
