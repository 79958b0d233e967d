//! Refresh (and its race with revocation), introspection, single-token revocation, logout,
//! the audit trail and `last_used_at`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, seconds_between, Backend, TestApp};

const PW: &str = "correct horse battery";

async fn refresh(app: &TestApp, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let (s, _, v) = app
        .send(Method::POST, "/auth/refresh", Some(token), body.as_ref())
        .await;
    (s, v)
}

async fn refresh_keeps_account_scope_metadata_and_ttl(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sensor = app
        .create_account(json!({"name": "sensor:r", "scope": "sensor", "ttl_hours": 48, "metadata": {"trigger_types": ["a", "b"]}}))
        .await;
    let old = sensor["token"].as_str().unwrap();
    let (status, fresh) = refresh(&app, old, None).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(
        seconds_between(&fresh["issued_at"], &fresh["expires_at"]),
        48 * 3600
    );
    let new = fresh["token"].as_str().unwrap();
    let (_, me) = app.whoami(new).await;
    assert_eq!(me["identity_id"], sensor["identity_id"]);
    assert_eq!(me["scope"], "sensor");
    assert_eq!(me["metadata"], sensor["metadata"]);
    assert_ne!(me["token_id"], sensor["token_id"]);
    assert_eq!(
        app.whoami(old).await.0,
        StatusCode::OK,
        "the old token stays valid"
    );

    // revoke_current: the presented token goes in the same transaction.
    let (status, newer) = refresh(&app, new, Some(json!({"revoke_current": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&app.whoami(new).await.1), "token_revoked");
    assert_eq!(
        app.whoami(newer["token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    let (status, body) = refresh(&app, new, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_revoked")
    );
    let (status, body) = refresh(&app, old, Some(json!({"revoke_current": "yes"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // A body that is not an object is refused, not read as a list of fields (schemathesis).
    for not_an_object in [json!([]), json!([true]), json!(7), json!("x")] {
        let (status, body) = refresh(&app, old, Some(not_an_object)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }

    // A user's cli token refreshes too.
    app.add_user("alice", PW, "admin").await;
    let cli = app.login_token("alice", PW).await;
    let (status, body) = refresh(&app, &cli, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.whoami(body["token"].as_str().unwrap()).await.1["metadata"]["role"],
        "admin"
    );

    // Other scopes may not.
    for other in [
        json!({"name": "e", "scope": "execution", "metadata": {"execution_id": 1}}),
        json!({"name": "w", "scope": "webhook", "metadata": {"allowed_paths": ["/h"]}}),
        json!({"name": "a", "scope": "admin"}),
    ] {
        let created = app.create_account(other).await;
        let (status, body) = refresh(&app, created["token"].as_str().unwrap(), None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "insufficient_scope"),
            "{}",
            created["scope"]
        );
    }
}

async fn refresh_lifetime_is_clamped_to_todays_bounds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let sensor = app.create_account(json!({"name": "s", "scope": "sensor", "ttl_hours": 72, "metadata": {"trigger_types": ["a"]}})).await;
    // Same database and keys, tighter bounds.
    let mut tight = app.settings.clone();
    tight
        .scopes
        .set_bounds_from_spec(tokend::scope::Scope::Sensor, "24h:48h")
        .unwrap();
    let replica = TestApp::start(app.storage.clone(), tight).await;
    let (status, fresh) = refresh(&replica, sensor["token"].as_str().unwrap(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seconds_between(&fresh["issued_at"], &fresh["expires_at"]),
        48 * 3600
    );
}

/// Refresh and revocation racing, many times: no refresh may leave a live token behind.
async fn refresh_never_outlives_a_concurrent_revocation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut refreshed_first, mut revoked_first) = (0, 0);
    for i in 0..40 {
        let account = app
            .create_account(crate::helpers::sensor(&format!("sensor:race-{i}")))
            .await;
        let token = account["token"].as_str().unwrap().to_owned();
        // Stagger the two by 0 to 3.5 ms, each side first in turn, so both orders happen.
        let stagger = std::time::Duration::from_micros((i as u64 % 6) * 700);
        let (refresh_wait, revoke_wait) = if i % 2 == 0 {
            (stagger, std::time::Duration::ZERO)
        } else {
            (std::time::Duration::ZERO, stagger)
        };
        let refresh_req = async {
            tokio::time::sleep(refresh_wait).await;
            app.client
                .post(app.url("/auth/refresh"))
                .bearer_auth(&token)
                .send()
                .await
        };
        let revoke_req = async {
            tokio::time::sleep(revoke_wait).await;
            app.client
                .delete(app.url(&format!("/service-accounts/{}", account["identity_id"])))
                .bearer_auth(&app.admin_token)
                .send()
                .await
        };
        let (refreshed, revoked) = tokio::join!(refresh_req, revoke_req);
        assert_eq!(revoked.unwrap().status(), StatusCode::OK);
        let refreshed = refreshed.unwrap();
        match refreshed.status() {
            StatusCode::OK => {
                refreshed_first += 1;
                let body: Value = refreshed.json().await.unwrap();
                let (status, res) = app.whoami(body["token"].as_str().unwrap()).await;
                assert_eq!(
                    (status, code(&res)),
                    (StatusCode::UNAUTHORIZED, "token_revoked"),
                    "round {i}"
                );
            }
            StatusCode::UNAUTHORIZED => revoked_first += 1,
            other => panic!("round {i}: refresh answered {other}"),
        }
        // Nothing live remains in the database either.
        let (_, detail) = app
            .admin(
                Method::GET,
                &format!("/service-accounts/{}", account["identity_id"]),
                None,
            )
            .await;
        assert!(
            detail["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["revoked_at"].is_string()),
            "round {i}: {detail}"
        );
    }
    eprintln!("{backend:?}: refresh won {refreshed_first} times, revocation {revoked_first} times");
}

async fn introspection(backend: Backend) {
    let app = TestApp::short_lived_with_users(backend).await;
    let reader = app.login_token("victor", PW).await;
    let live = app.create_account(crate::helpers::sensor("sensor:i")).await;
    let live_token = live["token"].as_str().unwrap();
    let ask_form = |token: String| {
        app.client
            .post(app.url("/auth/introspect"))
            .bearer_auth(&reader)
            .form(&[("token", token)])
            .send()
    };
    let res = ask_form(live_token.to_owned()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "sensor");
    assert_eq!(body["sub"], "sensor:i");
    assert_eq!(body["jti"], live["token_id"]);
    assert_eq!(body["identity_id"], live["identity_id"]);
    assert_eq!(body["token_type"], "Bearer");
    for key in ["exp", "iat", "nbf", "iss", "aud"] {
        assert!(!body[key].is_null(), "{key}");
    }
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&reader)
        .json(&json!({"token": live_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);

    // Expired, revoked, malformed, foreign: {"active": false} and nothing else.
    let short = app.create_account(json!({"name": "x", "scope": "execution", "ttl_seconds": 1, "metadata": {"execution_id": 1}})).await;
    let revoked = app
        .create_account(crate::helpers::sensor("sensor:gone"))
        .await;
    app.admin(
        Method::DELETE,
        &format!("/service-accounts/{}", revoked["identity_id"]),
        None,
    )
    .await;
    let other = TestApp::spawn(backend).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for token in [
        short["token"].as_str().unwrap().to_owned(),
        revoked["token"].as_str().unwrap().to_owned(),
        "not.a.token".to_owned(),
        other.admin_token.clone(),
    ] {
        let res = ask_form(token).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));
    }

    // The caller must be an admin or viewer.
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(live_token)
        .form(&[("token", live_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .form(&[("token", live_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(&reader)
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn revoke_single_tokens_and_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_account(crate::helpers::sensor("sensor:a")).await;
    let b = app.create_account(crate::helpers::sensor("sensor:b")).await;

    let (status, res) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token": a["token"], "reason": "leaked"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["token_id"], a["token_id"]);
    assert_eq!(res["identity_id"], a["identity_id"]);
    assert_eq!(res["already_revoked"], false);
    assert_eq!(
        code(&app.whoami(a["token"].as_str().unwrap()).await.1),
        "token_revoked"
    );
    let (_, again) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token": a["token"]})),
        )
        .await;
    assert_eq!(again["already_revoked"], true);

    let (status, _) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token_id": b["token_id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        code(&app.whoami(b["token"].as_str().unwrap()).await.1),
        "token_revoked"
    );

    for (body, want) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (
            json!({"token": a["token"], "token_id": a["token_id"]}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"token": "forged.token.here"}), StatusCode::NOT_FOUND),
        (
            json!({"token_id": uuid::Uuid::new_v4()}),
            StatusCode::NOT_FOUND,
        ),
        (json!({"token_id": "not-a-uuid"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, res) = app.admin(Method::POST, "/tokens/revoke", Some(&body)).await;
        assert_eq!(status, want, "{body}: {res}");
    }

    // Logout revokes the presented token, whatever its scope.
    let c = app.create_account(crate::helpers::sensor("sensor:c")).await;
    let token = c["token"].as_str().unwrap();
    let (status, _, res) = app
        .send(Method::POST, "/auth/logout", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["token_id"], c["token_id"]);
    assert_eq!(code(&app.whoami(token).await.1), "token_revoked");
    let (status, _, _) = app
        .send(Method::POST, "/auth/logout", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn audit_trail_tells_the_story(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", PW, "admin").await;
    assert_eq!(
        app.login("alice", "wrong password").await.0,
        StatusCode::UNAUTHORIZED
    );
    let alice = app.login_token("alice", PW).await;
    let (_, _, created) = app
        .send(
            Method::POST,
            "/service-accounts",
            Some(&alice),
            Some(&crate::helpers::sensor("sensor:story")),
        )
        .await;
    let sensor = created["token"].as_str().unwrap().to_owned();
    let (status, _) = refresh(&app, &sensor, None).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/service-accounts/{}", created["identity_id"]);
    app.send(
        Method::DELETE,
        &path,
        Some(&alice),
        Some(&json!({"reason": "rotation"})),
    )
    .await;
    // The revoked token, presented again and again, is audited once.
    for _ in 0..20 {
        assert_eq!(app.whoami(&sensor).await.0, StatusCode::UNAUTHORIZED);
    }
    app.send(Method::POST, "/admin/cleanup", Some(&alice), None)
        .await;
    app.send(Method::POST, "/auth/logout", Some(&alice), None)
        .await;
    app.flush_usage().await;

    let actions = app.audit_actions("").await;
    let story: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "token.issued")
        .collect();
    assert_eq!(
        story,
        [
            "account.created", // the test's admin account
            "user.added",
            "login.failed",
            "login.succeeded",
            "account.created",
            "token.refreshed",
            "account.revoked",
            "cleanup.run",
            "logout",
            "token.used_after_revocation",
        ],
        "{actions:?}"
    );
    // Each event names who, what, and from where; never a token or a password.
    let (_, page) = app
        .admin(
            Method::GET,
            &format!("/audit?identity_id={}&limit=100", created["identity_id"]),
            None,
        )
        .await;
    let events = page["data"].as_array().unwrap();
    let revoked = events
        .iter()
        .find(|e| e["action"] == "account.revoked")
        .unwrap();
    assert_eq!(revoked["reason"], "rotation");
    assert_eq!(revoked["remote_addr"], "127.0.0.1");
    let (_, me) = app.whoami(&app.login_token("alice", PW).await).await;
    assert_eq!(revoked["actor_id"], me["identity_id"]);
    assert_eq!(revoked["detail"]["revoked_tokens"], 2);
    let (_, all) = app.admin(Method::GET, "/audit?limit=1000", None).await;
    let text = all.to_string();
    assert!(!text.contains(PW) && !text.contains("wrong password"));
    assert!(
        !text.contains(&sensor[sensor.len() - 16..]),
        "no token in the audit trail"
    );
    assert!(!text.contains(&alice[alice.len() - 16..]));
    // Paging and filters.
    let (_, first) = app.admin(Method::GET, "/audit?limit=2", None).await;
    let last_id = first["data"][1]["id"].as_i64().unwrap();
    let (_, next) = app
        .admin(
            Method::GET,
            &format!("/audit?limit=2&before={last_id}"),
            None,
        )
        .await;
    assert!(next["data"][0]["id"].as_i64().unwrap() < last_id);
    let (_, failed) = app
        .admin(Method::GET, "/audit?action=login.failed", None)
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        failed["data"][0]["actor_id"],
        Value::Null,
        "who failed is unknown"
    );
    assert_eq!(
        app.admin(Method::GET, "/audit?limit=0", None).await.0,
        StatusCode::BAD_REQUEST
    );
}

async fn last_used_at(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app
        .create_account(crate::helpers::sensor("sensor:used"))
        .await;
    let path = format!("/service-accounts/{}", account["identity_id"]);
    let (_, before) = app.admin(Method::GET, &path, None).await;
    assert_eq!(before["last_used_at"], Value::Null);
    for _ in 0..5 {
        app.whoami(account["token"].as_str().unwrap()).await;
    }
    app.flush_usage().await;
    let (_, after) = app.admin(Method::GET, &path, None).await;
    let used = after["last_used_at"].as_str().expect("last_used_at is set");
    assert!(seconds_between(&json!(used), &json!(chrono::Utc::now().to_rfc3339())) < 10);
}

crate::both_backends!(
    refresh_keeps_account_scope_metadata_and_ttl,
    refresh_lifetime_is_clamped_to_todays_bounds,
    refresh_never_outlives_a_concurrent_revocation,
    introspection,
    revoke_single_tokens_and_logout,
    audit_trail_tells_the_story,
    last_used_at,
);
