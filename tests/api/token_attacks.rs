//! Tokens that must be refused: expired, tampered, foreign, `alg: none`, HS256 forged
//! with the public key.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

fn segments(token: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode =
        |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn assert_refused(app: &TestApp, token: &str, expected_code: &str, what: &str) {
    let (status, headers, body) = app
        .send(Method::GET, "/auth/whoami", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(code(&body), expected_code, "{what}: {body}");
    assert!(headers.contains_key("www-authenticate"), "{what}");
    // The management API refuses it the same way.
    let (status, _, _) = app
        .send(Method::GET, "/service-accounts", Some(token), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{what} on a management call"
    );
}

async fn expired_token(backend: Backend) {
    let app = TestApp::spawn_short_lived(backend).await;
    let created = app
        .create_account(json!({"name": "short", "scope": "execution", "ttl_seconds": 2, "metadata": {"execution_id": 1}}))
        .await;
    let token = created["token"].as_str().unwrap();
    assert_eq!(app.whoami(token).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_refused(&app, token, "token_expired", "expired").await;
    let (_, body) = app.whoami(token).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(created["expires_at"].as_str().unwrap()),
        "{body}"
    );
    let (_, list) = app
        .admin(
            Method::GET,
            "/service-accounts?scope=execution&status=expired",
            None,
        )
        .await;
    assert_eq!(list["total"], 1, "{list}");
}

async fn tampered_and_forged_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create_account(crate::helpers::sensor("sensor:victim"))
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let (header, claims, signature) = segments(&token);

    // Tampered payload: promote to admin, keep the signature.
    let mut promoted = claims.clone();
    promoted["scope"] = json!("admin");
    let forged = format!("{}.{}.{}", encode(&header), encode(&promoted), signature);
    assert_refused(&app, &forged, "invalid_token", "tampered payload").await;

    // Tampered signature.
    let mut sig = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    sig[0] ^= 1;
    let bad_sig = format!(
        "{}.{}.{}",
        encode(&header),
        encode(&claims),
        URL_SAFE_NO_PAD.encode(sig)
    );
    assert_refused(&app, &bad_sig, "invalid_token", "tampered signature").await;

    // alg: none, with and without a signature.
    let none = json!({"alg": "none", "typ": "JWT"});
    assert_refused(
        &app,
        &format!("{}.{}.", encode(&none), encode(&promoted)),
        "invalid_token",
        "alg none",
    )
    .await;
    assert_refused(
        &app,
        &format!("{}.{}.{}", encode(&none), encode(&claims), signature),
        "invalid_token",
        "alg none + sig",
    )
    .await;

    // HS256 forged with the Ed25519 public key as the HMAC secret (raw bytes and JWK text).
    let (_, _, jwks) = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published");
    let x = jwk["x"].as_str().unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = header["kid"].as_str().map(str::to_owned);
    for secret in [
        URL_SAFE_NO_PAD.decode(x).unwrap(),
        x.as_bytes().to_vec(),
        jwk.to_string().into_bytes(),
    ] {
        let forged = jsonwebtoken::encode(
            &hs_header,
            &promoted,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_refused(&app, &forged, "invalid_token", "HS256 with the public key").await;
    }

    // Garbage.
    for junk in [
        "",
        "abc",
        "a.b.c",
        "a.b.c.d",
        &token[..token.len() - 10],
        &"x".repeat(9000),
    ] {
        let (status, _, body) = app
            .send(Method::GET, "/auth/whoami", Some(junk), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{junk:.40}: {body}");
        assert!(
            ["invalid_token", "missing_token"].contains(&code(&body)),
            "{body}"
        );
    }

    // The real token still works.
    assert_eq!(app.whoami(&token).await.0, StatusCode::OK);
}

async fn token_of_another_deployment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let other = TestApp::spawn(backend).await;
    let foreign = other
        .create_account(crate::helpers::sensor("sensor:elsewhere"))
        .await;
    assert_refused(
        &app,
        foreign["token"].as_str().unwrap(),
        "invalid_token",
        "other deployment",
    )
    .await;
    // Even its admin token.
    assert_refused(
        &app,
        &other.admin_token,
        "invalid_token",
        "other deployment's admin",
    )
    .await;
}

async fn hs256_deployment(backend: Backend) {
    let secret = "a shared secret that is long enough for HS256 use";
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt = tokend::config::JwtAlgorithm::Hs256 {
            secret: secret.to_owned().into(),
        };
    })
    .await;
    let created = app
        .create_account(crate::helpers::sensor("sensor:hs"))
        .await;
    let token = created["token"].as_str().unwrap();
    let (header, _, _) = segments(token);
    assert_eq!(header["alg"], "HS256");
    assert!(header["kid"].as_str().unwrap().starts_with("hs256-"));
    assert_eq!(app.whoami(token).await.0, StatusCode::OK);
    // A platform verifier with the shared secret accepts it.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["tokend"]);
    let decoded = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap();
    assert_eq!(decoded.claims["scope"], "sensor");
    // The JWKS never publishes the secret.
    let (_, _, jwks) = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks, json!({"keys": []}));
    // EdDSA tokens of another deployment are refused.
    let eddsa = TestApp::spawn(backend).await;
    assert_refused(
        &app,
        &eddsa.admin_token,
        "invalid_token",
        "EdDSA token on an HS256 deployment",
    )
    .await;
}

async fn claims_are_the_contracts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .create_account(crate::helpers::sensor("sensor:claims"))
        .await;
    let (header, claims, _) = segments(created["token"].as_str().unwrap());
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aud",
            "exp",
            "iat",
            "identity_id",
            "identity_type",
            "iss",
            "jti",
            "metadata",
            "nbf",
            "scope",
            "sub"
        ]
    );
    assert_eq!(claims["sub"], "sensor:claims");
    assert_eq!(claims["identity_type"], "service_account");
    assert_eq!(claims["jti"], created["token_id"]);
    assert_eq!(claims["iss"], "tokend");
    assert_eq!(claims["aud"], "tokend");
}

crate::both_backends!(
    expired_token,
    tampered_and_forged_tokens,
    token_of_another_deployment,
    hs256_deployment,
    claims_are_the_contracts,
);
