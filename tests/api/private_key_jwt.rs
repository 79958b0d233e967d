//! `private_key_jwt` (RFC 7523 §2.2): a service account registers public keys, inline or by
//! URL, and its client authenticates with assertions signed by its private key, so no shared
//! secret exists at all. Each assertion is good for one request.

use base64::Engine;
use hmac::Mac;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::federation::{with_header, ExternalIssuer, Key};
use crate::helpers::{code, sensor, Backend, TestApp};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `TOKEND_PUBLIC_URL` of these servers: assertions name its token endpoint as `aud`.
const PUBLIC: &str = "https://tokend.test";

fn public(s: &mut tokend::config::Settings) {
    s.oauth.public_url = Some(PUBLIC.into());
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(_app: &TestApp, client_id: &str) -> Value {
    json!({"iss": client_id, "sub": client_id, "aud": format!("{PUBLIC}/oauth2/token"),
        "iat": now(), "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string()})
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let (status, _, body) = crate::oauth::post_form(app, path, form).await;
    (status, body)
}

async fn grant(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    post(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

async fn register(app: &TestApp, id: &Value, body: Value) -> (StatusCode, Value) {
    app.admin(
        Method::PUT,
        &format!("/service-accounts/{id}/jwks"),
        Some(&body),
    )
    .await
}

fn refused(answer: (StatusCode, Value), needle: &str) {
    let (status, body) = answer;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(needle),
        "{needle:?} not in {description:?}"
    );
}

async fn an_assertion_signed_by_a_registered_key_gets_a_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, public).await;
    let account = app.create_account(sensor("sensor:keyed")).await;
    let id = &account["identity_id"];
    let client_id = format!("sa-{id}");
    let key = Key::ed25519("client-1");
    let (status, keys) = register(&app, id, json!({"jwks": {"keys": [key.jwk]}})).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(keys["client_id"], json!(client_id));

    let assertion = key.sign(&claims(&app, &client_id));
    let (status, token) = grant(&app, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let (status, me) = app.whoami(token["access_token"].as_str().unwrap()).await;
    assert_eq!((status, &me["identity_id"]), (StatusCode::OK, id));
    // One request per assertion.
    refused(grant(&app, &assertion).await, "used already");

    // Introspection and revocation with assertions too (each a fresh one).
    let access = token["access_token"].as_str().unwrap();
    let fresh = key.sign(&claims(&app, &client_id));
    let (status, seen) = post(
        &app,
        "/oauth2/introspect",
        &[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &fresh),
            ("token", access),
        ],
    )
    .await;
    assert_eq!(
        (status, &seen["active"]),
        (StatusCode::OK, &json!(true)),
        "{seen}"
    );
    let fresh = key.sign(&claims(&app, &client_id));
    let (status, _) = post(
        &app,
        "/oauth2/revoke",
        &[
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &fresh),
            ("token", access),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&app.whoami(access).await.1), "token_revoked");

    // What does not pass.
    let mut c = claims(&app, &client_id);
    c["aud"] = json!("https://elsewhere.example/token");
    refused(grant(&app, &key.sign(&c)).await, "aud");
    // The URL the request reached (its Host) is not an audience: a client chooses it.
    let mut c = claims(&app, &client_id);
    c["aud"] = json!(app.url("/oauth2/token"));
    refused(grant(&app, &key.sign(&c)).await, "aud");
    // tokend's issuer is.
    let mut c = claims(&app, &client_id);
    c["aud"] = json!(app.settings.issuer);
    assert_eq!(grant(&app, &key.sign(&c)).await.0, StatusCode::OK);
    let mut c = claims(&app, &client_id);
    c["exp"] = json!(now() + 3600);
    refused(grant(&app, &key.sign(&c)).await, "at most 600 s");
    let mut c = claims(&app, &client_id);
    c["exp"] = json!(now() - 120);
    refused(grant(&app, &key.sign(&c)).await, "expired");
    let mut c = claims(&app, &client_id);
    c.as_object_mut().unwrap().remove("jti");
    refused(grant(&app, &key.sign(&c)).await, "jti");
    let mut c = claims(&app, &client_id);
    c["sub"] = json!("sa-999999");
    refused(grant(&app, &key.sign(&c)).await, "iss and sub");
    let other = Key::ed25519("client-1");
    refused(
        grant(&app, &other.sign(&claims(&app, &client_id))).await,
        "signature",
    );
    // alg confusion: HS256 with the public key's bytes as the secret; and alg none.
    let payload = claims(&app, &client_id);
    let signing_input = format!(
        "{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"alg": "HS256", "kid": "client-1"}).to_string()),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key.public_bytes).unwrap();
    mac.update(signing_input.as_bytes());
    let forged = with_header(
        json!({"alg": "HS256", "kid": "client-1"}),
        &payload,
        &mac.finalize().into_bytes(),
    );
    refused(grant(&app, &forged).await, "");
    let none = with_header(json!({"alg": "none"}), &claims(&app, &client_id), b"");
    refused(grant(&app, &none).await, "");
    // A client_id parameter that names another client.
    let (status, body) = post(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "sa-999999"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &key.sign(&claims(&app, &client_id))),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // Keys removed: assertions stop at once.
    let (status, removed) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{id}/jwks"),
            None,
        )
        .await;
    assert_eq!(
        (status, &removed["removed"]),
        (StatusCode::OK, &json!(true))
    );
    refused(
        grant(&app, &key.sign(&claims(&app, &client_id))).await,
        "no registered public keys",
    );
    let (status, _) = app
        .admin(Method::GET, &format!("/service-accounts/{id}/jwks"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn keys_by_url_are_fetched_and_follow_rotation(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        crate::federation::quick_cache(s);
        public(s);
    })
    .await;
    let account = app.create_account(sensor("sensor:published")).await;
    let id = &account["identity_id"];
    let client_id = format!("sa-{id}");
    let first = Key::es256("k1");
    let published = ExternalIssuer::start(&[&first]).await;
    let (status, keys) = register(&app, id, json!({"jwks_uri": published.jwks_uri()})).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let (status, body) = grant(&app, &first.sign(&claims(&app, &client_id))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The client rotates its key: an unknown kid makes tokend fetch the set again (once the
    // refetch rate limit, shortened here, allows).
    let second = Key::es256("k2");
    published.publish(&[&second]);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (status, body) = grant(&app, &second.sign(&claims(&app, &client_id))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(published.fetches() >= 2);
}

async fn the_key_registration_refuses_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:bad-keys")).await;
    let id = &account["identity_id"];
    let key = Key::ed25519("k");
    let mut private = key.jwk.clone();
    private["d"] = json!("bm90IGEgcmVhbCBrZXk");
    for bad in [
        json!({}),
        json!({"jwks": {"keys": [key.jwk]}, "jwks_uri": "https://example.com/jwks"}),
        json!({"jwks": {"keys": [private]}}),
        json!({"jwks": {"keys": []}}),
        json!({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        json!({"jwks_uri": "http://example.com/jwks"}),
        json!({"jwks_uri": "not a url"}),
        json!({"other": 1}),
    ] {
        let (status, body) = register(&app, id, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = app
        .admin(Method::GET, &format!("/service-accounts/{id}/jwks"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was registered");
    let (status, _) = register(&app, &json!(999999), json!({"jwks": {"keys": [key.jwk]}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The metadata says the method and its algorithms.
    let (_, _, meta) = app
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert!(meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("private_key_jwt")));
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
}

async fn keys_from_the_command_line(backend: Backend) {
    let app = TestApp::spawn_with(backend, public).await;
    let account = app.create_account(sensor("sensor:cli-keys")).await;
    let id = account["identity_id"].to_string();
    let client_id = format!("sa-{id}");
    let key = Key::ed25519("cli-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, json!({"keys": [key.jwk]}).to_string()).unwrap();
    let run = |args: Vec<String>| crate::helpers::run_command(app.cli(args));
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut set = args(&format!("sa keys set {id} --jwks-file"));
    set.push(file.display().to_string());
    let (status, stdout, stderr) = run(set).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("registered (inline)"), "{stdout}");
    let (status, _) = grant(&app, &key.sign(&claims(&app, &client_id))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, stdout, _) = run(args(&format!("sa keys show {id}"))).await;
    assert_eq!(status, 0);
    assert!(stdout.contains("cli-1"), "{stdout}");
    let (status, stdout, _) = run(args(&format!("sa keys remove {id}"))).await;
    assert_eq!(status, 0);
    assert!(stdout.contains("keys removed"), "{stdout}");
    refused(
        grant(&app, &key.sign(&claims(&app, &client_id))).await,
        "no registered public keys",
    );
    let (status, _, stderr) = run(args(&format!(
        "sa keys set {id} --jwks-uri http://example.com/jwks"
    )))
    .await;
    assert_eq!(status, 1, "the server refuses a plain-http URL: {stderr}");
}

crate::both_backends!(
    keys_from_the_command_line,
    an_assertion_signed_by_a_registered_key_gets_a_token,
    keys_by_url_are_fetched_and_follow_rotation,
    the_key_registration_refuses_bad_input,
);
