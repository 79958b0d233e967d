//! Creations and revocations that arrive together are written as one batch
//! (`accounts::batch`): each request still gets exactly its own answer, as if alone.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

fn request(i: usize) -> Value {
    match i % 3 {
        0 => json!({"name": format!("batch:sensor-{i}"), "scope": "sensor",
                    "metadata": {"trigger_types": [format!("t{i}")]}}),
        1 => json!({"name": format!("batch:exec-{i}"), "scope": "execution",
                    "metadata": {"execution_id": i}, "ttl_minutes": 10 + i}),
        _ => {
            json!({"name": format!("batch:cli-{i}"), "scope": "cli", "description": format!("d{i}")})
        }
    }
}

async fn creations_that_arrive_together_each_get_their_own_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let n = 48;
    let bodies: Vec<Value> = (0..n).map(request).collect();
    let answers = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| app.admin(Method::POST, "/service-accounts", Some(b))),
    )
    .await;
    let mut ids = std::collections::HashSet::new();
    for (body, (status, answer)) in bodies.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::CREATED, "{body}: {answer}");
        assert_eq!(answer["name"], body["name"], "{answer}");
        assert_eq!(answer["scope"], body["scope"], "{answer}");
        let id = answer["identity_id"].as_i64().unwrap();
        assert!(ids.insert(id), "identity id {id} given twice");
        // The token is this account's, with this request's claims.
        let token = answer["token"].as_str().unwrap();
        let (status, who) = app.whoami(token).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert_eq!(who["identity_id"], id, "{who}");
        assert_eq!(who["name"], body["name"], "{who}");
        if let Some(execution_id) = body["metadata"].get("execution_id") {
            assert_eq!(who["metadata"]["execution_id"], *execution_id, "{who}");
        }
        // As recorded: the account, its description, its one token and its expiry.
        let (status, detail) = app
            .admin(Method::GET, &format!("/service-accounts/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(detail["name"], body["name"]);
        assert_eq!(
            detail["description"],
            body.get("description").cloned().unwrap_or(Value::Null)
        );
        assert_eq!(detail["tokens"].as_array().unwrap().len(), 1, "{detail}");
        assert_eq!(
            detail["tokens"][0]["token_id"], answer["token_id"],
            "{detail}"
        );
        assert_eq!(detail["expires_at"], answer["expires_at"], "{detail}");
    }
    // Two events per account, naming it.
    let (status, trail) = app.admin(Method::GET, "/audit?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut events: HashMap<i64, Vec<String>> = HashMap::new();
    for e in trail["data"].as_array().unwrap() {
        if let Some(id) = e["identity_id"].as_i64().filter(|id| ids.contains(id)) {
            events
                .entry(id)
                .or_default()
                .push(e["action"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(events.len(), n);
    for (id, mut actions) in events {
        actions.sort();
        assert_eq!(actions, ["account.created", "token.issued"], "account {id}");
    }
}

async fn revocations_that_arrive_together_each_get_their_own_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut accounts = Vec::new();
    for i in 0..30 {
        let a = app.create_account(request(i)).await;
        accounts.push((
            a["identity_id"].as_i64().unwrap(),
            a["token"].as_str().unwrap().to_owned(),
        ));
    }
    // A user is no service account: its id in the batch is a 404 and leaves it as it was.
    let user = app
        .add_user("batch-user", "a long enough password", "viewer")
        .await;
    let user_id = user["identity_id"].as_i64().expect("the user's id");
    // Every account once, five of them twice with the same reason, three twice with another
    // reason, three that do not exist and the user, all at once.
    let batch_test = json!({"reason": "batch test"});
    let other = json!({"reason": "another reason"});
    let mut targets: Vec<(i64, &Value)> =
        accounts.iter().map(|(id, _)| (*id, &batch_test)).collect();
    targets.extend(accounts.iter().take(5).map(|(id, _)| (*id, &batch_test)));
    targets.extend(accounts[5..8].iter().map(|(id, _)| (*id, &other)));
    targets.extend([990_001, 990_002, 990_003, user_id].map(|id| (id, &batch_test)));
    let paths: Vec<String> = targets
        .iter()
        .map(|(id, _)| format!("/service-accounts/{id}"))
        .collect();
    let answers = futures_util::future::join_all(
        paths
            .iter()
            .zip(&targets)
            .map(|(path, (_, reason))| app.admin(Method::DELETE, path, Some(reason))),
    )
    .await;
    let targets: Vec<i64> = targets.iter().map(|(id, _)| *id).collect();
    let mut first: HashMap<i64, usize> = HashMap::new();
    for (id, (status, answer)) in targets.iter().zip(&answers) {
        if *id >= 990_000 || *id == user_id {
            assert_eq!(*status, StatusCode::NOT_FOUND, "{answer}");
            assert_eq!(code(answer), "not_found", "{answer}");
            continue;
        }
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert_eq!(answer["identity_id"], *id);
        if answer["already_revoked"] == false {
            assert_eq!(answer["revoked_tokens"], 1, "{answer}");
            *first.entry(*id).or_default() += 1;
        } else {
            assert_eq!(answer["revoked_tokens"], 0, "{answer}");
        }
    }
    // Each account was revoked exactly once, whichever of its requests did it.
    assert_eq!(first.len(), accounts.len());
    assert!(first.values().all(|n| *n == 1), "{first:?}");
    for (id, token) in &accounts {
        let (status, body) = app.whoami(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "token_revoked", "{body}");
        let (_, detail) = app
            .admin(Method::GET, &format!("/service-accounts/{id}"), None)
            .await;
        assert_eq!(detail["status"], "revoked", "{detail}");
        // The row and the audit trail name the same cause, whichever request revoked it.
        let (_, trail) = app
            .admin(
                Method::GET,
                &format!("/audit?identity_id={id}&action=account.revoked"),
                None,
            )
            .await;
        let events = trail["data"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{trail}");
        assert_eq!(
            events[0]["reason"], detail["revocation_reason"],
            "{trail} vs {detail}"
        );
        if accounts[8..].iter().any(|(other, _)| other == id)
            || accounts[..5].iter().any(|(o, _)| o == id)
        {
            assert_eq!(detail["revocation_reason"], "batch test", "{detail}");
        }
    }
    let actions = app.audit_actions("").await;
    assert_eq!(
        actions.iter().filter(|a| *a == "account.revoked").count(),
        accounts.len()
    );
    let (status, users) = app.admin(Method::GET, "/users", None).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let listed = users["data"].as_array().expect("a list of users");
    let still = listed.iter().find(|u| u["identity_id"] == user_id);
    assert!(
        still.is_some_and(|u| u["disabled"] == false && u["disabled_at"].is_null()),
        "the user is untouched: {users}"
    );
    // A replica that never saw these requests refuses the tokens too (the rows are there).
    let replica = app.replica().await;
    let (status, body) = replica.whoami(&accounts[0].1).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

crate::both_backends!(
    creations_that_arrive_together_each_get_their_own_account,
    revocations_that_arrive_together_each_get_their_own_answer
);
