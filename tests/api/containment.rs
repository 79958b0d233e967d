//! No token outlives its holder's rights: the user lifecycle revokes tokens, refresh re-reads
//! the account and keeps lineage, and bulk revocation by selector holds on every replica.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, sensor, Backend, TestApp};

const PW: &str = "correct horse battery";

fn token(v: &Value) -> &str {
    v["token"].as_str().expect("a token")
}

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let (status, body) = app.whoami(token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(code(&body), "token_revoked", "{what}: {body}");
}

async fn assert_accepted(app: &TestApp, token: &str, what: &str) {
    let (status, body) = app.whoami(token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
}

async fn patch_user(app: &TestApp, id: &Value, body: Value) -> (StatusCode, Value) {
    app.admin(Method::PATCH, &format!("/users/{id}"), Some(&body))
        .await
}

async fn users_are_listed_changed_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = app.add_user("alice", PW, "admin").await;
    let id = &alice["identity_id"];
    let (status, list) = app.admin(Method::GET, "/users", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["login"], "alice");
    assert_eq!(list["data"][0]["disabled"], false);
    let (status, one) = app.admin(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(
        (status, one["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );

    // Demoting: every token of hers is refused at once; a new login carries the new role.
    let session = app.login_token("alice", PW).await;
    let (status, _, _) = app
        .send(Method::GET, "/service-accounts", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK, "an admin may list");
    let (status, changed) = patch_user(&app, id, json!({"role": "viewer"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["role"], "viewer");
    assert_eq!(changed["revoked_tokens"], 1);
    assert_refused(&app, &session, "a demoted admin's token").await;
    let viewer = app.login_token("alice", PW).await;
    let (status, _, body) = app
        .send(
            Method::POST,
            "/service-accounts",
            Some(&viewer),
            Some(&sensor("sensor:x")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Disabling: the token dies, logging in is refused; enabling lets her back in.
    let (status, changed) = patch_user(&app, id, json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["disabled"], true);
    assert_refused(&app, &viewer, "a disabled user's token").await;
    assert_eq!(app.login("alice", PW).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = patch_user(&app, id, json!({"disabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    let again = app.login_token("alice", PW).await;

    // A new password: old sessions die, the old password no longer works.
    let (status, changed) =
        patch_user(&app, id, json!({"password": "a brand new passphrase"})).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_refused(&app, &again, "a token from before the password change").await;
    assert_eq!(app.login("alice", PW).await.0, StatusCode::UNAUTHORIZED);
    let last = app.login_token("alice", "a brand new passphrase").await;

    // Bad input changes nothing.
    let (status, body) = patch_user(&app, id, json!({"role": "root"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = patch_user(&app, id, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_accepted(&app, &last, "after refused changes").await;
    let (status, body) = patch_user(&app, &json!(999_999), json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Deleting: tokens refused, the user gone, the login free again.
    let (status, deleted) = app
        .admin(Method::DELETE, &format!("/users/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["revoked_tokens"], 1);
    assert_refused(&app, &last, "a deleted user's token").await;
    let (status, _) = app.admin(Method::GET, &format!("/users/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.login("alice", "a brand new passphrase").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, list) = app.admin(Method::GET, "/users", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    let reborn = app.add_user("alice", PW, "viewer").await;
    assert_ne!(reborn["identity_id"], alice["identity_id"]);

    // Viewers may read users but not change them.
    let viewer = app.login_token("alice", PW).await;
    let (status, _, _) = app.send(Method::GET, "/users", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = app
        .send(
            Method::PATCH,
            &format!("/users/{}", reborn["identity_id"]),
            Some(&viewer),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let actions = app.audit_actions(&format!("&identity_id={id}")).await;
    for action in [
        "user.role_changed",
        "user.disabled",
        "user.enabled",
        "user.password_changed",
        "user.deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

/// The change reaches a replica: a token disabled on one server is refused on the other.
async fn a_disabled_user_is_refused_on_every_replica(backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = a.replica().await;
    let alice = a.add_user("alice", PW, "admin").await;
    let session = b.login_token("alice", PW).await;
    assert_accepted(&a, &session, "before").await;
    let (status, _) = patch_user(&a, &alice["identity_id"], json!({"disabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    let start = Instant::now();
    loop {
        let (status, body) = b.whoami(&session).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&body), "token_revoked");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still accepted on the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A refresh on the replica is refused too (the account is re-read).
    let (status, _, body) = b
        .send(
            Method::POST,
            "/auth/refresh",
            Some(&session),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

async fn refresh(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, body) = app
        .send(Method::POST, "/auth/refresh", Some(token), Some(&body))
        .await;
    (status, body)
}

/// Revoking a token revokes every token refreshed from it, even one it was superseded by.
async fn revoking_a_token_revokes_its_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app.create_account(sensor("sensor:family")).await;
    let first = token(&created).to_owned();
    let (status, second) = refresh(&app, &first, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, third) = refresh(&app, token(&second), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let unrelated = app.create_account(sensor("sensor:family")).await;
    // The lineage shows in the account's token list.
    let (_, detail) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{}", created["identity_id"]),
            None,
        )
        .await;
    let tokens = detail["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3, "{detail}");
    assert!(
        tokens.iter().all(|t| t["family_id"] == created["token_id"]),
        "{detail}"
    );
    let newest = tokens
        .iter()
        .find(|t| t["token_id"] == third["token_id"])
        .expect("the third token");
    assert_eq!(newest["parent_token_id"], second["token_id"]);

    // Revoking the first token of the chain takes the refreshed ones with it.
    let (status, body) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token_id": created["token_id"], "reason": "leaked"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for t in [&first, token(&second), token(&third)] {
        assert_refused(&app, t, "a member of the revoked family").await;
    }
    assert_accepted(&app, token(&unrelated), "another account of the same name").await;

    // Superseded by a refresh, then revoked: the token it was refreshed into goes too.
    let (status, next) = refresh(&app, token(&unrelated), json!({"revoke_current": true})).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_refused(&app, token(&unrelated), "superseded").await;
    assert_accepted(&app, token(&next), "the refreshed token").await;
    let (status, body) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token_id": unrelated["token_id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_refused(&app, token(&next), "refreshed from a token revoked later").await;

    // Logging out ends the whole session.
    app.add_user("alice", PW, "admin").await;
    let session = app.login_token("alice", PW).await;
    let (status, renewed) = refresh(&app, &session, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let (status, _, _) = app
        .send(Method::POST, "/auth/logout", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_refused(&app, token(&renewed), "refreshed from a logged-out session").await;
}

/// A refreshed cli token carries the user's role as it is now.
async fn refresh_derives_the_role_from_the_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let victor = app.add_user("victor", PW, "viewer").await;
    let session = app.login_token("victor", PW).await;
    let (status, renewed) = refresh(&app, &session, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let (_, who) = app.whoami(token(&renewed)).await;
    assert_eq!(who["metadata"]["role"], "viewer");
    // Promoted: the old tokens (carrying "viewer") are revoked, so none can be refreshed
    // into a stale role; a new login carries the new one.
    let (status, _) = patch_user(&app, &victor["identity_id"], json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = refresh(&app, token(&renewed), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let promoted = app.login_token("victor", PW).await;
    let (status, renewed) = refresh(&app, &promoted, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, who) = app.whoami(token(&renewed)).await;
    assert_eq!(who["metadata"]["role"], "admin");
}

async fn bulk(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.admin(Method::POST, "/revocations", Some(&body)).await
}

/// `POST /revocations`: one call revokes every live token a selector matches, by rule.
async fn bulk_revocation_by_selector(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let timer = app.create_account(sensor("sensor:core.timer")).await;
    let cron = app.create_account(sensor("sensor:core.cron")).await;
    let other = app.create_account(sensor("sensor:ext.github")).await;
    let exec = app
        .create_account(
            json!({"name": "exec:1", "scope": "execution", "metadata": {"execution_id": 1}}),
        )
        .await;
    app.add_user("alice", PW, "admin").await;
    let alice = app.login_token("alice", PW).await;
    let alice_too = app.login_token("alice", PW).await;

    // No selector, or a bad one: 400, nothing changes.
    for body in [
        json!({}),
        json!({"reason": "no selector"}),
        json!({"scope": "root"}),
        json!({"issued_before": "yesterday"}),
        json!({"name_prefix": ""}),
        json!({"scope": "sensor", "surprise": true}),
    ] {
        let (status, res) = bulk(&app, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {res}");
    }
    let (status, res) = bulk(&app, json!({"user": "nobody"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{res}");
    let (status, res) = bulk(
        &app,
        json!({"user": "alice", "identity_id": timer["identity_id"]}),
    )
    .await;
    assert_eq!(
        (status, res["matched"].as_u64(), &res["rule_id"]),
        (StatusCode::OK, Some(0), &Value::Null),
        "selectors naming different accounts match nothing: {res}"
    );

    // A dry run counts and changes nothing.
    let (status, dry) = bulk(&app, json!({"scope": "sensor", "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(
        (dry["matched"].as_u64(), dry["dry_run"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(dry["rule_id"], Value::Null);
    assert_accepted(&app, token(&timer), "after a dry run").await;

    // By name prefix.
    let (status, res) = bulk(
        &app,
        json!({"name_prefix": "sensor:core.", "reason": "incident"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["matched"], 2);
    assert_refused(&app, token(&timer), "prefix match").await;
    assert_refused(&app, token(&cron), "prefix match").await;
    assert_accepted(&app, token(&other), "no prefix match").await;
    assert_accepted(&app, token(&exec), "another scope").await;

    // By user: both of alice's sessions.
    let (status, res) = bulk(&app, json!({"user": "alice"})).await;
    assert_eq!(
        (status, res["matched"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{res}"
    );
    assert_refused(&app, &alice, "alice's first session").await;
    assert_refused(&app, &alice_too, "alice's second session").await;

    // A rule never covers tokens issued after it: rotate the revoked account, it works.
    // (Token times are whole seconds: wait for the next one.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, fresh) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{}/tokens", timer["identity_id"]),
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    assert_accepted(&app, token(&fresh), "a token issued after the rule").await;
    let new_session = app.login_token("alice", PW).await;
    assert_accepted(&app, &new_session, "a login after the rule").await;

    // issued_before in the past covers only older tokens.
    let (status, res) = bulk(
        &app,
        json!({"scope": "sensor", "issued_before": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, res["matched"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{res}"
    );
    assert_eq!(
        res["rule_id"],
        Value::Null,
        "no live token can be that old: no rule"
    );
    assert_accepted(&app, token(&other), "issued after 2020").await;

    // By signing key: every token it signed.
    let (_, keys) = app.admin(Method::GET, "/keys", None).await;
    let active = keys["data"]
        .as_array()
        .expect("a key list")
        .iter()
        .find(|k| k["status"] == "active")
        .expect("an active key")["kid"]
        .clone();
    let (status, res) = bulk(&app, json!({"key_id": active, "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert!(res["matched"].as_u64().unwrap() >= 4, "{res}");

    // The listings agree: the revoked accounts show no live token.
    let (_, account) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{}", cron["identity_id"]),
            None,
        )
        .await;
    assert!(account["tokens"][0]["revoked_at"].is_string(), "{account}");

    // The rules in force, and the audit trail.
    let (status, rules) = app.admin(Method::GET, "/revocations", None).await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    let rules = rules["data"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0]["name_prefix"], "sensor:core.");
    assert_eq!(rules[0]["reason"], "incident");
    assert_eq!(rules[0]["matched"], 2);
    assert_eq!(
        rules[1]["identity_id"],
        app.login("alice", PW).await.2["identity_id"]
    );
    let actions = app.audit_actions("&action=revocation.bulk").await;
    assert_eq!(actions.len(), 3, "every bulk revocation is audited");
}

/// A token refreshed after the cutoff is not covered by the rule, but by its family: a bulk
/// revocation takes it too.
async fn bulk_revocation_takes_refreshed_tokens_with_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let stolen = app.create_account(sensor("sensor:stolen")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, child) = refresh(&app, token(&stolen), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let (status, grandchild) = refresh(&app, token(&child), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{grandchild}");
    let bystander = app.create_account(sensor("sensor:bystander")).await;
    let (status, res) = bulk(
        &app,
        json!({"scope": "sensor", "issued_before": stolen["issued_at"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["matched"], 1, "{res}");
    assert_refused(&app, token(&stolen), "covered by the rule").await;
    assert_refused(&app, token(&child), "refreshed after the cutoff").await;
    assert_refused(&app, token(&grandchild), "refreshed from the refreshed one").await;
    assert_accepted(
        &app,
        token(&bystander),
        "issued after the cutoff, another family",
    )
    .await;
}

/// A rule made on one replica is enforced by the others within the propagation bound, and is
/// pruned once nothing it covers can still verify.
async fn bulk_revocation_reaches_replicas_and_is_pruned(backend: Backend) {
    let a = TestApp::spawn_short_lived(backend).await;
    let b = a.replica().await;
    let exec = a
        .create_account(json!({"name": "exec:2", "scope": "execution", "ttl_seconds": 2, "metadata": {"execution_id": 2}}))
        .await;
    let kept = a.create_account(sensor("sensor:kept")).await;
    let (status, res) = bulk(&a, json!({"scope": "execution"})).await;
    assert_eq!(
        (status, res["matched"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{res}"
    );
    let start = Instant::now();
    loop {
        let (status, _) = b.whoami(token(&exec)).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted on the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_accepted(&b, token(&kept), "another scope, on the replica").await;

    // An execution rule lives as long as the longest execution token could: 60 min here.
    let (_, rules) = b.admin(Method::GET, "/revocations", None).await;
    assert_eq!(rules["data"].as_array().unwrap().len(), 1);
    let (status, report) = a.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["deleted_rules"], 0,
        "not yet: a covered token could still live"
    );
}

/// A rule whose tokens can no longer verify is pruned by the cleanup worker, and not before.
async fn expired_rules_are_pruned(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.leeway = Duration::ZERO).await;
    // Execution tokens live at most 60 minutes: a rule for those issued before 59 min 59 s
    // ago can cover a live token for about two more seconds (one more than the lifetime).
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(3600 - 1);
    let (status, res) = bulk(
        &app,
        json!({"scope": "execution", "issued_before": cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert!(res["rule_id"].is_i64(), "{res}");
    let (status, report) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["deleted_rules"], 0,
        "a covered token could still verify"
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, report) = app.admin(Method::POST, "/admin/cleanup", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["deleted_rules"], 1, "{report}");
    let (_, rules) = app.admin(Method::GET, "/revocations", None).await;
    assert_eq!(rules["data"], json!([]));
}

/// `tokend user …` and `tokend revoke …` against a running server.
async fn containment_from_the_command_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let run = |args: &str, stdin: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOKEND_URL", &app.address)
            .env("TOKEND_TOKEN", &app.admin_token)
            .args(args.split_whitespace());
        let input = stdin.map(str::to_owned);
        async move {
            match input {
                Some(input) => {
                    let out = crate::helpers::run_with_stdin(cmd, input).await;
                    (
                        out.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                }
                None => crate::helpers::run_command(cmd).await,
            }
        }
    };
    let alice = app.add_user("alice", PW, "admin").await;
    let id = alice["identity_id"].as_i64().unwrap();
    let session = app.login_token("alice", PW).await;

    let (status, stdout, stderr) = run("user list", None).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains("alice") && stdout.contains("enabled"),
        "{stdout}"
    );
    let (status, stdout, stderr) = run(&format!("user disable {id}"), None).await;
    assert_eq!(status, 0, "{stderr}");
    let changed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            changed["disabled"].as_bool(),
            changed["revoked_tokens"].as_u64()
        ),
        (Some(true), Some(1))
    );
    assert_refused(&app, &session, "disabled from the CLI").await;
    let (status, _, stderr) = run(&format!("user enable {id}"), None).await;
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = run(
        &format!("user set {id} --password-stdin"),
        Some("another good password\n"),
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    app.login_token("alice", "another good password").await;
    let (status, _, stderr) = run("user show 999999", None).await;
    assert_eq!(status, 1, "a refusal is exit 1: {stderr}");

    app.create_account(sensor("sensor:cli.a")).await;
    let kept = app.create_account(sensor("sensor:cli.b")).await;
    let (status, stdout, stderr) = run(
        "revoke --scope sensor --name sensor:cli.a --issued-before 2099-01-01T00:00:00Z --dry-run",
        None,
    )
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.starts_with("1 live token(s) would be revoked"),
        "{stdout}"
    );
    let (status, stdout, stderr) =
        run("revoke --scope sensor --name sensor:cli.a --json", None).await;
    assert_eq!(status, 0, "{stderr}");
    let outcome: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(outcome["matched"], 1);
    assert_accepted(&app, token(&kept), "another name").await;
    let (status, _, stderr) = run("revoke", None).await;
    assert_eq!(status, 1, "no selector is refused: {stderr}");
    assert!(stderr.contains("at least one selector"), "{stderr}");
}

crate::both_backends!(
    containment_from_the_command_line,
    users_are_listed_changed_and_deleted,
    a_disabled_user_is_refused_on_every_replica,
    revoking_a_token_revokes_its_family,
    refresh_derives_the_role_from_the_account,
    bulk_revocation_by_selector,
    bulk_revocation_takes_refreshed_tokens_with_it,
    bulk_revocation_reaches_replicas_and_is_pruned,
    expired_rules_are_pruned,
);
