//! Stock Python OAuth 2.0 clients, unchanged, over HTTPS with a CA made by the test:
//! authlib and requests-oauth2client discover the endpoints, obtain tokens by
//! client_credentials (client_secret_basic, client_secret_post, and private_key_jwt with
//! requests-oauth2client), introspect and revoke them
//! (`scripts/oauth_clients.py`). Needs `TOKEND_TEST_PYTHON`, a python with both libraries
//! (.ci/run provides one).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, sensor, Backend, TestApp};
use crate::tls_ca::TestCa;

async fn authlib_and_requests_oauth2client(backend: Backend) {
    let Some(python) = std::env::var_os("TOKEND_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set TOKEND_TEST_PYTHON"
        );
        eprintln!("skipped: TOKEND_TEST_PYTHON (a python with authlib and requests-oauth2client) is not set");
        return;
    };
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    // TOKEND_PUBLIC_URL and TOKEND_ISSUER as a deployment sets them: the URL clients reach,
    // which private_key_jwt assertions name as their audience.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("https://127.0.0.1:{port}");
    let tls = ca.server_tls(dir.path());
    let mut app = TestApp::spawn_with(backend, |s| {
        s.tls = Some(tls);
        s.listen = format!("127.0.0.1:{port}");
        s.oauth.public_url = Some(base.clone());
        s.issuer = base.clone();
    })
    .await;
    app.client = ca.client();
    assert_eq!(app.address, base);
    let mut clients = Vec::new();
    for name in ["sensor:basic", "sensor:post"] {
        let account = app.create_account(sensor(name)).await;
        let (status, created) = app
            .admin(
                Method::POST,
                &format!(
                    "/service-accounts/{}/client-secrets",
                    account["identity_id"]
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        clients.push(json!([created["client_id"], created["client_secret"]]));
    }
    // A third client with no secret at all: private_key_jwt with an Ed25519 key.
    let keyed = app.create_account(sensor("sensor:keyed")).await;
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let b64 =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let public = json!({"kty": "OKP", "crv": "Ed25519", "kid": "py-1", "alg": "EdDSA",
        "x": b64(&signing.verifying_key().to_bytes())});
    let mut private = public.clone();
    private["d"] = json!(b64(&signing.to_bytes()));
    let (status, body) = app
        .admin(
            Method::PUT,
            &format!("/service-accounts/{}/jwks", keyed["identity_id"]),
            Some(&json!({"jwks": {"keys": [public]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keyed_client = json!([format!("sa-{}", keyed["identity_id"]), private]);
    let ca_path = ca.ca_pem_path();
    let mut cmd = std::process::Command::new(python);
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/oauth_clients.py"
    ))
    .env(
        "TOKEND_OAUTH_METADATA",
        app.url("/.well-known/oauth-authorization-server"),
    )
    .env("TOKEND_OAUTH_CLIENTS", Value::Array(clients).to_string())
    .env("TOKEND_OAUTH_KEYED_CLIENT", keyed_client.to_string())
    // requests' own way to trust a CA: no switch in either library.
    .env("REQUESTS_CA_BUNDLE", &ca_path)
    .env_remove("AUTHLIB_INSECURE_TRANSPORT");
    let (status, stdout, stderr) = crate::helpers::run_command(cmd).await;
    assert_eq!(status, 0, "oauth_clients.py failed:\n{stderr}\n{stdout}");
    let tokens: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(tokens.len(), 5, "{stdout}");
    for t in &tokens {
        let (status, body) = app.whoami(t["token"].as_str().unwrap()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token_revoked"),
            "{} {}: the token it revoked still works",
            t["library"],
            t["method"]
        );
    }
}

/// The Rust `oauth2` crate sends RFC 7009 revocations only over https: the whole round there.
async fn rust_oauth2_crate_over_https(backend: Backend) {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthType, ClientId, ClientSecret, IntrospectionUrl, RevocationUrl, StandardRevocableToken,
        TokenIntrospectionResponse, TokenResponse, TokenUrl,
    };
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_tls(backend, ca.server_tls(dir.path()), &ca).await;
    let account = app.create_account(sensor("sensor:rust")).await;
    let (status, created) = app
        .admin(
            Method::POST,
            &format!(
                "/service-accounts/{}/client-secrets",
                account["identity_id"]
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let http = ca
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(created["client_id"].as_str().unwrap().into()))
            .set_client_secret(ClientSecret::new(
                created["client_secret"].as_str().unwrap().into(),
            ))
            .set_auth_type(auth)
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap())
            .set_revocation_url(RevocationUrl::new(app.url("/oauth2/revoke")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(app.url("/oauth2/introspect")).unwrap());
        let token = client
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .unwrap();
        assert_eq!(
            app.whoami(token.access_token().secret()).await.0,
            StatusCode::OK
        );
        client
            .revoke_token(StandardRevocableToken::AccessToken(
                token.access_token().clone(),
            ))
            .unwrap()
            .request_async(&http)
            .await
            .unwrap();
        assert_eq!(
            code(&app.whoami(token.access_token().secret()).await.1),
            "token_revoked"
        );
        let seen = client
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(!seen.active());
    }
}

crate::both_backends!(
    authlib_and_requests_oauth2client,
    rust_oauth2_crate_over_https
);
