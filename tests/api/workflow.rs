//! The operator's rotation workflow, end to end.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{code, seconds_between, sensor, Backend, TestApp};

async fn rotation_workflow(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let create = json!({"name": "sensor:core.timer", "scope": "sensor", "ttl_hours": 72,
        "description": "timer sensor", "metadata": {"trigger_types": ["core.timer", "core.interval"]}});

    // Create, and the token works.
    let first = app.create_account(create.clone()).await;
    assert_eq!(first["scope"], "sensor");
    assert_eq!(first["name"], "sensor:core.timer");
    assert_eq!(
        seconds_between(&first["issued_at"], &first["expires_at"]),
        72 * 3600
    );
    let old_token = first["token"].as_str().unwrap().to_owned();
    let (status, me) = app.whoami(&old_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["identity_id"], first["identity_id"]);
    assert_eq!(me["name"], "sensor:core.timer");
    assert_eq!(me["token_id"], first["token_id"]);
    assert_eq!(
        me["metadata"]["trigger_types"],
        json!(["core.timer", "core.interval"])
    );
    assert!(me["expires_in_seconds"].as_i64().unwrap() > 71 * 3600);

    // Rotate: a second account with the same name.
    let second = app.create_account(create).await;
    assert_ne!(second["identity_id"], first["identity_id"]);
    let new_token = second["token"].as_str().unwrap().to_owned();

    // Revoke the first with a reason.
    let old_id = first["identity_id"].as_i64().unwrap();
    let (status, revoked) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{old_id}"),
            Some(&json!({"reason": "Token rotation"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["message"], "Service account revoked");
    assert_eq!(revoked["revoked_tokens"], 1);
    assert_eq!(revoked["already_revoked"], false);

    // The old token is refused, the new one still works.
    let (status, headers, body) = app
        .send(Method::GET, "/auth/whoami", Some(&old_token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "token_revoked");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(app.whoami(&new_token).await.0, StatusCode::OK);

    // Listing shows what an operator expects.
    let (_, list) = app
        .admin(
            Method::GET,
            "/service-accounts?name=sensor:core.timer",
            None,
        )
        .await;
    assert_eq!(
        list["total"], 1,
        "revoked accounts are hidden by default: {list}"
    );
    assert_eq!(list["data"][0]["identity_id"], second["identity_id"]);
    assert_eq!(list["data"][0]["status"], "active");
    assert_eq!(list["data"][0]["expires_at"], second["expires_at"]);
    assert_eq!(list["limit"], 100);
    assert_eq!(list["offset"], 0);
    let (_, all) = app
        .admin(
            Method::GET,
            "/service-accounts?name=sensor:core.timer&status=all",
            None,
        )
        .await;
    assert_eq!(all["total"], 2);
    let (_, gone) = app
        .admin(Method::GET, "/service-accounts?status=revoked", None)
        .await;
    assert_eq!(gone["total"], 1);
    assert_eq!(gone["data"][0]["revocation_reason"], "Token rotation");
    assert_eq!(gone["data"][0]["status"], "revoked");
    assert!(gone["data"][0]["revoked_at"].is_string());
    let (_, soon) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=sensor&expiring_within_hours=73",
            None,
        )
        .await;
    assert_eq!(soon["total"], 1);
    let (_, later) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=sensor&expiring_within_hours=71",
            None,
        )
        .await;
    assert_eq!(later["total"], 0);
    let (_, admins) = app
        .admin(Method::GET, "/service-accounts?scope=admin", None)
        .await;
    assert!(admins["total"].as_i64().unwrap() >= 1);

    // The revoked account's record: its token, revoked, with a fingerprint; never the token.
    let (status, detail) = app
        .admin(Method::GET, &format!("/service-accounts/{old_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "revoked");
    assert_eq!(detail["expires_at"], json!(null));
    assert_eq!(detail["tokens"].as_array().unwrap().len(), 1);
    let record = &detail["tokens"][0];
    assert_eq!(record["token_id"], first["token_id"]);
    assert!(record["revoked_at"].is_string());
    let digest = hex::encode(Sha256::digest(old_token.as_bytes()));
    assert_eq!(record["fingerprint"].as_str().unwrap(), &digest[..16]);
    assert!(!detail
        .to_string()
        .contains(&old_token[old_token.len() - 20..]));

    // Revoking again is harmless.
    let (status, again) = app
        .admin(Method::DELETE, &format!("/service-accounts/{old_id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_revoked"], true);
    assert_eq!(again["revoked_tokens"], 0);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let (status, body) = app
        .admin(Method::DELETE, "/service-accounts/999999", None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // A revoked account gets no new tokens.
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{old_id}/tokens"),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "account_revoked")
    );
}

async fn rotation_keeping_the_identity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app
        .create_account(crate::helpers::sensor("sensor:keep"))
        .await;
    let id = account["identity_id"].as_i64().unwrap();
    let first = account["token"].as_str().unwrap().to_owned();

    let (status, fresh) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/tokens"),
            Some(&json!({"ttl_hours": 24})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    assert_eq!(fresh["identity_id"], id);
    assert_eq!(fresh["metadata"], account["metadata"]);
    assert_eq!(
        seconds_between(&fresh["issued_at"], &fresh["expires_at"]),
        24 * 3600
    );
    let second = fresh["token"].as_str().unwrap().to_owned();
    assert_eq!(app.whoami(&first).await.0, StatusCode::OK);
    assert_eq!(app.whoami(&second).await.0, StatusCode::OK);

    // Out-of-range TTLs for the account's scope are refused.
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/tokens"),
            Some(&json!({"ttl_hours": 1})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "ttl_out_of_range")
    );

    // Revoke the first token only.
    let first_id = account["token_id"].as_str().unwrap();
    let path = format!("/service-accounts/{id}/tokens/{first_id}");
    let (status, body) = app
        .admin(Method::DELETE, &path, Some(&json!({"reason": "leaked"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["already_revoked"], false);
    assert_eq!(code(&app.whoami(&first).await.1), "token_revoked");
    assert_eq!(app.whoami(&second).await.0, StatusCode::OK);
    let (_, again) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(again["already_revoked"], true);

    // The account's expiry follows its remaining token.
    let (_, detail) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(detail["expires_at"], fresh["expires_at"]);
    assert_eq!(detail["status"], "active");
    assert_eq!(detail["tokens"].as_array().unwrap().len(), 2);

    // Unknown token ids are 404, also under another account.
    let unknown = format!("/service-accounts/{id}/tokens/{}", uuid::Uuid::new_v4());
    assert_eq!(
        app.admin(Method::DELETE, &unknown, None).await.0,
        StatusCode::NOT_FOUND
    );
    let other = app
        .create_account(crate::helpers::sensor("sensor:other"))
        .await;
    let cross = format!(
        "/service-accounts/{}/tokens/{}",
        other["identity_id"],
        fresh["token_id"].as_str().unwrap()
    );
    assert_eq!(
        app.admin(Method::DELETE, &cross, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.whoami(&second).await.0, StatusCode::OK);
}

async fn paging(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..5 {
        app.create_account(crate::helpers::sensor(&format!("page-{i}")))
            .await;
    }
    let (_, page) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=sensor&limit=2&offset=2",
            None,
        )
        .await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 2);
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["page-2", "page-3"]);
    let (_, expired) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=sensor&status=expired",
            None,
        )
        .await;
    assert_eq!(expired["total"], 0);
    let (_, active) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=sensor&status=active",
            None,
        )
        .await;
    assert_eq!(active["total"], 5);
}

/// An account whose only token was revoked (not the account itself) is `revoked`, not
/// `expired`: in the listing, in each status filter, and in the account's own view.
/// An account that held several tokens, the older one run out unrevoked (as a renewing
/// agent leaves them): once its live token is revoked it reads revoked, not expired by the
/// older token, and `status=revoked` lists it.
async fn revoked_after_an_older_token_expired(backend: Backend) {
    let app = TestApp::spawn_short_lived(backend).await;
    let created = app
        .create_account(
            json!({"name": "exec:renewed", "scope": "execution", "ttl_seconds": 1,
            "metadata": {"execution_id": 77}}),
        )
        .await;
    let id = created["identity_id"].as_i64().unwrap();
    let (status, newer) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/tokens"),
            Some(&json!({"ttl_minutes": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{newer}");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let token_id = newer["token_id"].as_str().unwrap();
    let (status, body) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{id}/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, account) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(account["status"], "revoked", "{account}");
    assert_eq!(account["expires_at"], Value::Null, "{account}");
    let (_, page) = app
        .admin(Method::GET, "/service-accounts?status=revoked", None)
        .await;
    assert!(
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["identity_id"] == id),
        "{page}"
    );
    // The cron check still flags it: the account stands, but nothing of it works.
    let (status, out, stderr) =
        crate::helpers::run_command(app.cli(["check", "--scope", "execution"])).await;
    assert_eq!(status, 1, "{out}{stderr}");
    assert!(
        out.lines().any(|l| l.starts_with('⚠')
            && l.contains("exec:renewed")
            && l.contains("every token was revoked")),
        "{out}"
    );
}

async fn all_tokens_revoked_is_revoked_not_expired(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dead = app.create_account(sensor("sensor:dead")).await;
    app.create_account(sensor("sensor:live")).await;
    let id = dead["identity_id"].as_i64().unwrap();
    let token_id = dead["token_id"].as_str().unwrap();
    let (status, body) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{id}/tokens/{token_id}"),
            Some(&json!({"reason": "leaked"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, account) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["status"], "revoked", "{account}");
    assert_eq!(account["expires_at"], Value::Null, "{account}");
    assert_eq!(
        account["revoked_at"],
        Value::Null,
        "the account itself was not revoked"
    );

    let names = |page: &Value| -> Vec<(String, String)> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().into(),
                    a["status"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let (status, page) = app
                .admin(
                    Method::GET,
                    &format!("/service-accounts?scope=sensor{query}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };
    let pair = |name: &str, status: &str| (name.to_owned(), status.to_owned());
    assert_eq!(
        names(&list("&status=all").await),
        [
            pair("sensor:dead", "revoked"),
            pair("sensor:live", "active")
        ]
    );
    assert_eq!(
        names(&list("&status=revoked").await),
        [pair("sensor:dead", "revoked")]
    );
    assert_eq!(names(&list("&status=expired").await), []);
    // The default listing leaves revoked accounts out, this one too.
    let default = list("").await;
    assert_eq!(names(&default), [pair("sensor:live", "active")]);
    assert_eq!(default["total"], 1);

    // A new token for the account brings it back.
    let (status, issued) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/tokens"),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let (_, account) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(account["status"], "active", "{account}");
}

crate::both_backends!(
    rotation_workflow,
    rotation_keeping_the_identity,
    paging,
    all_tokens_revoked_is_revoked_not_expired,
    revoked_after_an_older_token_expired
);
