//! Every failure is `{"error": {"code", "message"}}` with the fitting status.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{code, Backend, TestApp};

async fn contract_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.admin_token.clone();

    let (status, _, body) = app.send(Method::GET, "/no/such/route", None, None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, headers, body) = app
        .send(Method::PUT, "/service-accounts", Some(&admin), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    assert_eq!(headers["allow"], "GET, POST");

    let (status, headers, body) = app.send(Method::GET, "/service-accounts", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token")
    );
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let res = app
        .client
        .get(app.url("/service-accounts"))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/service-accounts"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
    };
    let cases = [
        (
            post("{\"name\": ", "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            post("[1, 2]", "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // The fields in order, as an array: serde alone would read it as the object.
        (
            post("[\"arr:x\", \"cli\"]", "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post(
                "{\"name\": \"x\", \"scope\": \"cli\", \"ttl\": 5}",
                "application/json",
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("{\"scope\": \"cli\"}", "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("{\"name\": \"\", \"scope\": \"cli\"}", "application/json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post("name=x&scope=cli", "application/x-www-form-urlencoded"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let res = req.send().await.unwrap();
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // Over 64 KiB: 413, and nothing is created.
    let huge = json!({"name": "big", "scope": "cli", "description": "x".repeat(70 * 1024)});
    let (status, body) = app
        .admin(Method::POST, "/service-accounts", Some(&huge))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let res = app
        .client
        .delete(app.url("/service-accounts/1"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(format!("{{\"reason\": \"{}\"}}", "r".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (_, list) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    assert_eq!(list["total"], 1, "only the admin account exists: {list}");

    // Bad reasons and bodies on DELETE change nothing.
    let sensor = app
        .create_account(crate::helpers::sensor("sensor:keep"))
        .await;
    let path = format!("/service-accounts/{}", sensor["identity_id"]);
    let (status, body) = app
        .admin(
            Method::DELETE,
            &path,
            Some(&json!({"reason": "r".repeat(501)})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("why")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.whoami(sensor["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    // A non-admin token on management calls: 403 insufficient_scope.
    let token = sensor["token"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, "/service-accounts".to_owned()),
        (Method::POST, "/service-accounts".to_owned()),
        (Method::DELETE, path.clone()),
        (Method::GET, path.clone()),
    ] {
        let (status, _, body) = app
            .send(
                method,
                &path,
                Some(token),
                Some(&crate::helpers::sensor("x")),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "insufficient_scope"),
            "{path}"
        );
    }

    // Paths: bad ids are 404, bad queries 400.
    assert_eq!(
        app.admin(Method::GET, "/service-accounts/abc", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::GET, "/service-accounts/-1", None).await.0,
        StatusCode::NOT_FOUND
    );
    for query in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "status=gone",
        "expiring_within_hours=x",
        "scope=root",
        "bogus=1",
    ] {
        let (status, body) = app
            .admin(Method::GET, &format!("/service-accounts?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }

    // Health and readiness.
    assert_eq!(
        app.send(Method::GET, "/health", None, None).await.2,
        json!({"status": "ok"})
    );
    let (status, _, body) = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The limits that protect the service, each refused with a clear 4xx and changing nothing.
async fn limits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (
            json!({"name": "n".repeat(129), "scope": "cli"}),
            "invalid_request",
        ),
        (
            json!({"name": "ok", "scope": "cli", "description": "d".repeat(1001)}),
            "invalid_request",
        ),
        (
            json!({"name": "ok", "scope": "cli", "metadata": {"blob": "m".repeat(8 * 1024)}}),
            "invalid_metadata",
        ),
        (
            json!({"name": "ok", "scope": "sensor", "metadata": {"trigger_types": vec!["t"; 33]}}),
            "invalid_metadata",
        ),
    ];
    for (body, want) in cases {
        let (status, res) = app
            .admin(Method::POST, "/service-accounts", Some(&body))
            .await;
        assert_eq!(
            (status, code(&res)),
            (StatusCode::BAD_REQUEST, want),
            "{res}"
        );
    }
    // Metadata within 8 KiB whose token would exceed the 8 KiB every verifier accepts.
    let (status, res) = app
        .admin(
            Method::POST,
            "/service-accounts",
            Some(&json!({"name": "ok", "scope": "cli", "metadata": {"blob": "m".repeat(8 * 1024 - 20)}})),
        )
        .await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::BAD_REQUEST, "invalid_metadata")
    );
    assert!(
        res["error"]["message"].as_str().unwrap().contains("8192"),
        "{res}"
    );
    // At the limits: accepted, and the token works.
    let big = app
        .create_account(
            json!({"name": "n".repeat(128), "scope": "cli", "description": "d".repeat(1000),
            "metadata": {"blob": "m".repeat(5 * 1024)}}),
        )
        .await;
    assert_eq!(
        app.whoami(big["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    let most = app
        .create_account(json!({"name": "s", "scope": "sensor",
            "metadata": {"trigger_types": (0..32).map(|i| format!("{i:0>100}")).collect::<Vec<_>>()}}))
        .await;
    assert_eq!(
        app.whoami(most["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    let (status, res) = app
        .admin(Method::GET, "/service-accounts?limit=1001", None)
        .await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );

    let long_uri = format!("/service-accounts?name={}", "x".repeat(9 * 1024));
    let (status, res) = app.admin(Method::GET, &long_uri, None).await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::URI_TOO_LONG, "uri_too_long")
    );

    let res = app
        .client
        .get(app.url("/health"))
        .header("x-padding", "p".repeat(17 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(code(&body), "headers_too_large");

    let (_, list) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    assert_eq!(
        list["total"], 3,
        "only the admin and the two at-the-limit accounts exist"
    );
}

crate::both_backends!(contract_errors, limits);
