//! The JWT attack suite: every forged, damaged or misdirected token is refused with 401 and
//! the right code, and none counts as a use of any account.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// Signs `header.claims` with the deployment's real signing key.
fn sign(app: &TestApp, header: &Value, claims: &Value) -> String {
    let keys = app.state.tokens.keys().current();
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), keys.encoding_key(), keys.algorithm())
            .unwrap();
    format!("{message}.{signature}")
}

fn parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    let d = |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (d(p[0]), d(p[1]))
}

async fn attack_suite(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let victim = app
        .create_account(crate::helpers::sensor("sensor:victim"))
        .await;
    let token = victim["token"].as_str().unwrap().to_owned();
    let (header, claims) = parts(&token);
    let now = chrono::Utc::now().timestamp();
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let header_with = |key: &str, value: Value| {
        let mut h = header.clone();
        h[key] = value;
        h
    };
    let sig = token.rsplit('.').next().unwrap().to_owned();
    let mut flipped = URL_SAFE_NO_PAD.decode(&sig).unwrap();
    flipped[10] ^= 0x40;
    let (_, _, jwks) = app
        .send(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    // The signing key's public half (the JWKS also publishes the next key).
    let signing_jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the signing key is published");
    let public = URL_SAFE_NO_PAD
        .decode(signing_jwk["x"].as_str().unwrap())
        .unwrap();
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let hs_forged = {
        let msg = format!("{}.{}", b64(&hs_header), b64(&claims));
        let key = jsonwebtoken::EncodingKey::from_secret(&public);
        format!(
            "{msg}.{}",
            jsonwebtoken::crypto::sign(msg.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                .unwrap()
        )
    };
    let other = TestApp::spawn(backend).await;
    let mut long_lived = claims.clone();
    long_lived["iat"] = json!(now);
    long_lived["nbf"] = json!(now);
    long_lived["exp"] = json!(now + 96 * 3600);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
            "invalid_token",
        ),
        (
            "alg None with signature",
            format!(
                "{}.{}.{sig}",
                b64(&json!({"alg": "None", "typ": "JWT", "kid": header["kid"]})),
                b64(&claims)
            ),
            "invalid_token",
        ),
        (
            "HS256 with the Ed25519 public key",
            hs_forged,
            "invalid_token",
        ),
        (
            "unknown kid",
            sign(&app, &header_with("kid", json!("no-such-key")), &claims),
            "invalid_token",
        ),
        (
            "missing kid",
            sign(&app, &json!({"alg": "EdDSA", "typ": "JWT"}), &claims),
            "invalid_token",
        ),
        (
            "kid with path characters",
            sign(
                &app,
                &header_with("kid", json!("../../../etc/passwd")),
                &claims,
            ),
            "invalid_token",
        ),
        (
            "tampered header",
            format!(
                "{}.{}.{sig}",
                b64(&header_with("typ", json!("JOSE"))),
                b64(&claims)
            ),
            "invalid_token",
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{sig}",
                b64(&header),
                b64(&with("scope", json!("admin")))
            ),
            "invalid_token",
        ),
        (
            "tampered signature",
            format!(
                "{}.{}.{}",
                b64(&header),
                b64(&claims),
                URL_SAFE_NO_PAD.encode(&flipped)
            ),
            "invalid_token",
        ),
        (
            "truncated",
            token[..token.len() / 2].to_owned(),
            "invalid_token",
        ),
        (
            "truncated signature",
            token[..token.len() - 5].to_owned(),
            "invalid_token",
        ),
        ("extra segment", format!("{token}.e30"), "invalid_token"),
        (
            "two segments",
            token.rsplit_once('.').unwrap().0.to_owned(),
            "invalid_token",
        ),
        (
            "huge token",
            format!("{token}{}", "A".repeat(9 * 1024)),
            "invalid_token",
        ),
        (
            "wrong iss",
            sign(&app, &header, &with("iss", json!("evil"))),
            "invalid_token",
        ),
        (
            "wrong aud",
            sign(&app, &header, &with("aud", json!("someone-else"))),
            "invalid_token",
        ),
        (
            "aud as an array",
            sign(&app, &header, &with("aud", json!(["tokend", "x"]))),
            "invalid_token",
        ),
        (
            "nbf in the future",
            sign(&app, &header, &with("nbf", json!(now + 3600))),
            "invalid_token",
        ),
        (
            "exp missing",
            sign(&app, &header, &without("exp")),
            "invalid_token",
        ),
        (
            "exp as a string",
            sign(&app, &header, &with("exp", json!((now + 3600).to_string()))),
            "invalid_token",
        ),
        (
            "exp in the past",
            sign(&app, &header, &with("exp", json!(now - 3600))),
            "token_expired",
        ),
        (
            "exp in the year 9999",
            sign(&app, &header, &with("exp", json!(253_402_300_799_i64))),
            "invalid_token",
        ),
        (
            "a lifetime a day over the sensor maximum (72 h)",
            sign(&app, &header, &long_lived),
            "invalid_token",
        ),
        (
            "nbf a year before exp",
            sign(&app, &header, &with("nbf", json!(now - 365 * 86_400))),
            "invalid_token",
        ),
        (
            "crit header",
            sign(&app, &header_with("crit", json!(["exp"])), &claims),
            "invalid_token",
        ),
        (
            "crit header with its extension present",
            sign(
                &app,
                &{
                    let mut h = header_with("crit", json!(["tokend-ext"]));
                    h["tokend-ext"] = json!(true);
                    h
                },
                &claims,
            ),
            "invalid_token",
        ),
        (
            "jti not a UUID",
            sign(&app, &header, &with("jti", json!("1"))),
            "invalid_token",
        ),
        (
            "unknown scope",
            sign(&app, &header, &with("scope", json!("root"))),
            "invalid_token",
        ),
        (
            "payload not JSON",
            format!(
                "{}.{}.{sig}",
                b64(&header),
                URL_SAFE_NO_PAD.encode(b"not json")
            ),
            "invalid_token",
        ),
        ("base64 garbage", "!!!.???.***".to_owned(), "invalid_token"),
        (
            "another deployment's token",
            other.admin_token.clone(),
            "invalid_token",
        ),
    ];
    for (what, forged, want) in &cases {
        let (status, headers, body) = app
            .send(Method::GET, "/auth/whoami", Some(forged), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, *want),
            "{what}: {body}"
        );
        assert!(headers.contains_key("www-authenticate"), "{what}");
        let (status, _, _) = app
            .send(Method::GET, "/auth/verify", Some(forged), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on /auth/verify");
        let (status, _, _) = app
            .send(Method::GET, "/service-accounts", Some(forged), None)
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{what} on a management call"
        );
    }

    // Non-UTF-8 bytes in the header.
    let raw = app
        .client
        .get(app.url("/auth/whoami"))
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe.\xc3\x28.\xa0").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(code(&body), "invalid_token");

    // Nothing above counted as a use of the victim (or anyone else).
    app.flush_usage().await;
    let (_, list) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    for account in list["data"].as_array().unwrap() {
        if account["identity_id"] != victim["identity_id"] {
            continue;
        }
        assert_eq!(
            account["last_used_at"],
            Value::Null,
            "a forged token counted as a use: {account}"
        );
    }
    // The real token works, and its use is recorded.
    assert_eq!(app.whoami(&token).await.0, StatusCode::OK);
    app.flush_usage().await;
    let (_, detail) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{}", victim["identity_id"]),
            None,
        )
        .await;
    assert!(detail["last_used_at"].is_string());
}

crate::both_backends!(attack_suite);
