//! Every scope's TTL bounds: inside, at the edges, outside; aliases; metadata rules.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, seconds_between, Backend, TestApp};

const H: i64 = 3600;
const D: i64 = 86_400;

fn request(scope: &str, ttl_seconds: Option<i64>) -> Value {
    let metadata = match scope {
        "sensor" => json!({"trigger_types": ["core.timer"]}),
        "execution" => json!({"execution_id": 17}),
        "webhook" => json!({"allowed_paths": ["/webhooks/github"]}),
        _ => json!({}),
    };
    let mut body = json!({"name": format!("{scope}:ttl"), "scope": scope, "metadata": metadata});
    if let Some(ttl) = ttl_seconds {
        body["ttl_seconds"] = json!(ttl);
    }
    body
}

async fn scope_bounds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // (scope, min, max, default, the bounds as the message names them)
    let table = [
        ("sensor", 24 * H, 72 * H, 72 * H, "between 24h and 72h"),
        ("execution", 5 * 60, 60 * 60, 60 * 60, "between 5m and 60m"),
        ("cli", 7 * D, 30 * D, 7 * D, "between 7d and 30d"),
        ("webhook", 90 * D, 365 * D, 90 * D, "between 90d and 365d"),
        ("admin", 5 * 60, 90 * D, D, "between 5m and 90d"),
    ];
    for (scope, min, max, default, bounds) in table {
        for ttl in [min, max, (min + max) / 2] {
            let created = app.create_account(request(scope, Some(ttl))).await;
            assert_eq!(created["scope"], scope);
            assert_eq!(
                seconds_between(&created["issued_at"], &created["expires_at"]),
                ttl,
                "{scope} {ttl}"
            );
        }
        let created = app.create_account(request(scope, None)).await;
        assert_eq!(
            seconds_between(&created["issued_at"], &created["expires_at"]),
            default,
            "{scope} default"
        );
        for ttl in [min - 1, max + 1] {
            let (status, body) = app
                .admin(
                    Method::POST,
                    "/service-accounts",
                    Some(&request(scope, Some(ttl))),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{scope} {ttl}: {body}");
            assert_eq!(code(&body), "ttl_out_of_range");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(bounds), "{scope}: {message}");
        }
    }
}

async fn ttl_units_and_malformed_values(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (field, value, seconds) in [
        ("ttl_minutes", 30, 1800),
        ("ttl_hours", 1, 3600),
        ("ttl_seconds", 600, 600),
    ] {
        let mut body = request("execution", None);
        body[field] = json!(value);
        let created = app.create_account(body).await;
        assert_eq!(
            seconds_between(&created["issued_at"], &created["expires_at"]),
            seconds
        );
    }
    let mut days = request("cli", None);
    days["ttl_days"] = json!(30);
    let created = app.create_account(days).await;
    assert_eq!(
        seconds_between(&created["issued_at"], &created["expires_at"]),
        30 * D
    );

    for bad in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("60"),
        json!(true),
        json!(u64::MAX),
    ] {
        let mut body = request("execution", None);
        body["ttl_minutes"] = bad.clone();
        let (status, res) = app
            .admin(Method::POST, "/service-accounts", Some(&body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {res}");
        assert!(
            ["invalid_ttl", "ttl_out_of_range"].contains(&code(&res)),
            "{bad}: {res}"
        );
    }
    let mut two = request("execution", None);
    two["ttl_minutes"] = json!(10);
    two["ttl_seconds"] = json!(600);
    let (status, res) = app
        .admin(Method::POST, "/service-accounts", Some(&two))
        .await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::BAD_REQUEST, "invalid_ttl")
    );
}

async fn aliases_and_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut exec = request("execution", None);
    exec["scope"] = json!("action_execution");
    assert_eq!(app.create_account(exec).await["scope"], "execution");
    let mut user = request("cli", None);
    user["scope"] = json!("user");
    assert_eq!(app.create_account(user).await["scope"], "cli");

    let refused = [
        json!({"name": "s", "scope": "sensor"}),
        json!({"name": "s", "scope": "sensor", "metadata": {"trigger_types": []}}),
        json!({"name": "s", "scope": "sensor", "metadata": {"trigger_types": ["a"], "extra": 1}}),
        json!({"name": "e", "scope": "execution", "metadata": {"action_ref": "core.http"}}),
        json!({"name": "e", "scope": "execution", "metadata": {"execution_id": "12"}}),
        json!({"name": "w", "scope": "webhook", "metadata": {}}),
        json!({"name": "w", "scope": "webhook", "metadata": {"allowed_paths": ["relative/path"]}}),
        json!({"name": "w", "scope": "webhook", "metadata": {"allowed_paths": ["/a"], "ip_allowlist": ["not-a-cidr"]}}),
        json!({"name": "c", "scope": "cli", "metadata": ["not", "an", "object"]}),
    ];
    let (_, before) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    for body in refused {
        let (status, res) = app
            .admin(Method::POST, "/service-accounts", Some(&body))
            .await;
        assert_eq!(
            (status, code(&res)),
            (StatusCode::BAD_REQUEST, "invalid_metadata"),
            "{body}: {res}"
        );
    }
    let (_, after) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    assert_eq!(
        before["total"], after["total"],
        "refused requests change nothing"
    );

    let (status, res) = app
        .admin(
            Method::POST,
            "/service-accounts",
            Some(&json!({"name": "x", "scope": "root"})),
        )
        .await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );

    let cli = app
        .create_account(
            json!({"name": "cli:bob", "scope": "cli", "metadata": {"team": "ops", "n": [1, 2]}}),
        )
        .await;
    assert_eq!(cli["metadata"], json!({"team": "ops", "n": [1, 2]}));
}

async fn configured_bounds(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.scopes
            .set_bounds_from_spec(tokend::scope::Scope::Sensor, "1h:2h:90m")
            .unwrap();
    })
    .await;
    let created = app.create_account(request("sensor", None)).await;
    assert_eq!(
        seconds_between(&created["issued_at"], &created["expires_at"]),
        90 * 60
    );
    let (status, res) = app
        .admin(
            Method::POST,
            "/service-accounts",
            Some(&request("sensor", Some(72 * H))),
        )
        .await;
    assert_eq!(
        (status, code(&res)),
        (StatusCode::BAD_REQUEST, "ttl_out_of_range")
    );
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 60m and 2h (default 90m)"),
        "{res}"
    );
}

crate::both_backends!(
    scope_bounds,
    ttl_units_and_malformed_values,
    aliases_and_metadata,
    configured_bounds
);
