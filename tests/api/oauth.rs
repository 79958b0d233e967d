//! OAuth 2.0: client credentials through the Rust `oauth2` crate unchanged (client_secret_basic
//! and client_secret_post), RFC 7009 revocation and RFC 7662 introspection with client
//! authentication, RFC 8414 discovery, secret rotation and revocation, and token exchange
//! (RFC 8693) from a sensor's token to an execution token.

use base64::Engine;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, RequestTokenError,
    TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, sensor, Backend, TestApp};

/// The account's new client credentials: (client_id, client_secret, body).
async fn new_secret(app: &TestApp, id: &Value, body: Value) -> (String, String, Value) {
    let (status, created) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/client-secrets"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
        created,
    )
}

fn http() -> reqwest::Client {
    // The oauth2 crate's advice: no redirects from a token endpoint.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A stock `oauth2` client for tokend's endpoints.
macro_rules! client {
    ($app:expr, $id:expr, $secret:expr, $auth:expr) => {
        BasicClient::new(ClientId::new($id.to_owned()))
            .set_client_secret(ClientSecret::new($secret.to_owned()))
            .set_auth_type($auth)
            .set_token_uri(TokenUrl::new($app.url("/oauth2/token")).unwrap())
            .set_introspection_url(IntrospectionUrl::new($app.url("/oauth2/introspect")).unwrap())
    };
}

pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = app
        .client
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn client_credentials_with_a_stock_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app
        .create_account(json!({"name": "sensor:oauth", "scope": "sensor", "metadata": {"trigger_types": ["core.timer"]}}))
        .await;
    let id = &account["identity_id"];
    let (client_id, secret, created) = new_secret(&app, id, json!({})).await;
    assert_eq!(client_id, format!("sa-{id}"));
    assert!(secret.starts_with("tokend_cs_"), "{secret}");
    let http = http();

    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = client!(app, client_id, secret, auth.clone());
        let token = client
            .exchange_client_credentials()
            .add_scope(oauth2::Scope::new("sensor".into()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        let access = token.access_token().secret();
        let lifetime = token.expires_in().unwrap().as_secs();
        assert!(
            (72 * 3600 - 5..=72 * 3600).contains(&lifetime),
            "{lifetime}"
        );
        let (status, me) = app.whoami(access).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["identity_id"], *id);
        assert_eq!(me["scope"], "sensor");
        assert_eq!(me["metadata"], account["metadata"]);

        // Introspection and revocation with the same client's credentials (RFC 7662, 7009).
        let seen = client
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(seen.active());
        assert_eq!(
            seen.client_id().map(|c| c.as_str()),
            Some(client_id.as_str())
        );
        // RFC 7009 revocation: the oauth2 crate sends it only over https
        // (tests/api/stock_clients.rs does that round with it).
        let (status, _, _) = post_form(
            &app,
            "/oauth2/revoke",
            &[
                ("token", access.as_str()),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(code(&app.whoami(access).await.1), "token_revoked");
        let seen = client
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(!seen.active());
    }

    // The scope parameter never widens.
    let client = client!(app, client_id, secret, AuthType::BasicAuth);
    match client
        .exchange_client_credentials()
        .add_scope(oauth2::Scope::new("admin".into()))
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope)
        }
        other => panic!("{other:?}"),
    }
    // A wrong secret: 401 invalid_client with a Basic challenge.
    let wrong = client!(app, client_id, "tokend_cs_wrong", AuthType::BasicAuth);
    match wrong
        .exchange_client_credentials()
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient)
        }
        other => panic!("{other:?}"),
    }
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:nope"));
    let res = app
        .client
        .post(app.url("/oauth2/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
    assert!(!body.to_string().contains(&secret));

    // The secret is nowhere but with its holder: not in listings, the audit trail or the file.
    let (_, listed) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{id}/client-secrets"),
            None,
        )
        .await;
    assert_eq!(listed["data"][0]["secret_id"], created["secret_id"]);
    assert_eq!(listed["data"][0]["status"], "active");
    let (_, audit) = app.admin(Method::GET, "/audit?limit=100", None).await;
    for text in [listed.to_string(), audit.to_string()] {
        assert!(!text.contains(&secret[10..]));
    }
    assert!(audit.to_string().contains("client_secret.created"));
    assert!(
        audit
            .to_string()
            .contains("\"grant_type\":\"client_credentials\""),
        "{audit}"
    );
    if backend == Backend::Sqlite {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            let path = app.storage.data_dir().join(format!("tokend.db{suffix}"));
            bytes.extend(std::fs::read(path).unwrap_or_default());
        }
        let needle = &secret.as_bytes()[10..];
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the secret is in the database file"
        );
    }
}

async fn errors_are_rfc6749(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    type Case<'a> = (&'a [(&'a str, &'a str)], StatusCode, &'a str);
    let cases: &[Case] = &[
        (&[], StatusCode::BAD_REQUEST, "invalid_request"),
        (
            &[("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            &[("grant_type", "client_credentials")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sa-999999"),
                ("client_secret", "x"),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "sa-1"),
                ("client_secret", "a\u{0}b"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (form, status, error) in cases {
        let (got, headers, body) = post_form(&app, "/oauth2/token", form).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (*status, Some(*error)),
            "{form:?}: {body}"
        );
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        assert_eq!(headers["cache-control"], "no-store");
    }
    // JSON is not what RFC 6749 speaks.
    let (status, _, body) = app
        .send(
            Method::POST,
            "/oauth2/token",
            None,
            Some(&json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

async fn secrets_rotate_expire_and_revoke(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:rotating")).await;
    let id = &account["identity_id"];
    let (client_id, old, _) = new_secret(&app, id, json!({"expires_in_days": 30})).await;
    let grant = |secret: String| {
        let app = &app;
        let client_id = client_id.clone();
        async move {
            post_form(
                app,
                "/oauth2/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    };
    assert_eq!(grant(old.clone()).await.0, StatusCode::OK);
    // Rotation with an overlap: both work until it ends.
    let (_, new, created) = new_secret(&app, id, json!({"overlap_seconds": 3600})).await;
    let middle_id = created["secret_id"].clone();
    assert_eq!(created["others_shortened"], 1);
    assert_eq!(grant(old.clone()).await.0, StatusCode::OK);
    assert_eq!(grant(new.clone()).await.0, StatusCode::OK);
    // Rotation with no overlap: the others stop at once, and say why to their holder.
    let (_, newest, newest_created) = new_secret(&app, id, json!({"overlap_seconds": 0})).await;
    let (status, _, body) = grant(new.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    assert_eq!(grant(newest.clone()).await.0, StatusCode::OK);

    let (_, listed) = app
        .admin(
            Method::GET,
            &format!("/service-accounts/{id}/client-secrets"),
            None,
        )
        .await;
    let status_of = |secret_id: &Value| {
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["secret_id"] == *secret_id)
            .map(|s| s["status"].clone())
    };
    assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(
        status_of(&newest_created["secret_id"]),
        Some(json!("active"))
    );
    assert_eq!(status_of(&middle_id), Some(json!("expired")));
    let newest_id = newest_created["secret_id"].as_str().unwrap().to_owned();
    let path = format!("/service-accounts/{id}/client-secrets/{newest_id}");
    let (status, revoked) = app
        .admin(Method::DELETE, &path, Some(&json!({"reason": "leaked"})))
        .await;
    assert_eq!(
        (status, &revoked["already_revoked"]),
        (StatusCode::OK, &json!(false)),
        "{revoked}"
    );
    let (status, again) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, &again["already_revoked"]),
        (StatusCode::OK, &json!(true))
    );
    let (status, _, body) = grant(newest.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );

    // Bad requests change nothing.
    for bad in [
        json!({"expires_in_days": 0}),
        json!({"expires_in_days": 366}),
        json!({"overlap_seconds": -1}),
        json!({"other": 1}),
    ] {
        let (status, body) = app
            .admin(
                Method::POST,
                &format!("/service-accounts/{id}/client-secrets"),
                Some(&bad),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = app
        .admin(Method::GET, "/service-accounts/999999/client-secrets", None)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // A revoked account's credentials stop working, and it gets no new ones.
    let (_, fresh, _) = new_secret(&app, id, json!({})).await;
    assert_eq!(grant(fresh.clone()).await.0, StatusCode::OK);
    let (status, _) = app
        .admin(Method::DELETE, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = grant(fresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = app
        .admin(
            Method::POST,
            &format!("/service-accounts/{id}/client-secrets"),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "account_revoked")
    );
}

async fn at_most_ten_live_secrets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:many")).await;
    let id = &account["identity_id"];
    for _ in 0..10 {
        new_secret(&app, id, json!({})).await;
    }
    let path = format!("/service-accounts/{id}/client-secrets");
    let (status, body) = app.admin(Method::POST, &path, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "too_many_client_secrets"),
        "{body}"
    );
    // A rotation may always add one: the others then expire.
    let (_, _, rotated) = new_secret(&app, id, json!({"overlap_seconds": 60})).await;
    assert_eq!(rotated["others_shortened"], 10);
}

async fn revocation_and_introspection_need_the_client(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.create_account(sensor("sensor:a")).await;
    let b = app.create_account(sensor("sensor:b")).await;
    let (a_id, a_secret, _) = new_secret(&app, &a["identity_id"], json!({})).await;
    let b_token = b["token"].as_str().unwrap();
    let auth = [
        ("client_id", a_id.as_str()),
        ("client_secret", a_secret.as_str()),
    ];

    // Without client authentication: invalid_client.
    for path in ["/oauth2/revoke", "/oauth2/introspect"] {
        let (status, _, body) = post_form(&app, path, &[("token", b_token)]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{path}"
        );
    }
    // Any client may introspect.
    let (status, _, seen) = post_form(
        &app,
        "/oauth2/introspect",
        &[auth[0], auth[1], ("token", b_token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&seen["active"], &seen["scope"]),
        (&json!(true), &json!("sensor")),
        "{seen}"
    );
    // But revoke only its own tokens.
    let (status, _, body) = post_form(
        &app,
        "/oauth2/revoke",
        &[auth[0], auth[1], ("token", b_token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    assert_eq!(app.whoami(b_token).await.0, StatusCode::OK);
    // Garbage and unknown tokens: 200, nothing to do (RFC 7009 §2.2).
    for token in ["garbage", "a.b.c"] {
        let (status, _, _) = post_form(
            &app,
            "/oauth2/revoke",
            &[auth[0], auth[1], ("token", token)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, seen) = post_form(
            &app,
            "/oauth2/introspect",
            &[auth[0], auth[1], ("token", token)],
        )
        .await;
        assert_eq!(seen, json!({"active": false}));
    }
    // Its own first token, by RFC 7009.
    let a_token = a["token"].as_str().unwrap();
    let (status, _, _) = post_form(
        &app,
        "/oauth2/revoke",
        &[
            auth[0],
            auth[1],
            ("token", a_token),
            ("token_type_hint", "access_token"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&app.whoami(a_token).await.1), "token_revoked");
}

async fn discovery_lists_what_is_supported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, _, meta) = app.send(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        // TOKEND_ISSUER is `tokend`, not a URL: the document names the base URL (RFC 8414 §2).
        assert_eq!(meta["issuer"], app.address);
        assert_eq!(meta["token_endpoint"], app.url("/oauth2/token"), "{meta}");
        assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(meta["revocation_endpoint"], app.url("/oauth2/revoke"));
        assert_eq!(
            meta["introspection_endpoint"],
            app.url("/oauth2/introspect")
        );
        assert_eq!(
            meta["grant_types_supported"],
            json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ])
        );
        assert_eq!(
            meta["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
    }
    // Every endpoint it names answers.
    let (_, _, meta) = app
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    let jwks: Value = app
        .client
        .get(meta["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()));
    for key in [
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let res = app
            .client
            .post(meta[key].as_str().unwrap())
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{key}");
    }
    // With TOKEND_PUBLIC_URL the endpoints are under it.
    let public = TestApp::spawn_with(backend, |s| {
        s.oauth.public_url = Some("https://tokend.example.com".into())
    })
    .await;
    let (_, _, meta) = public
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(
        meta["token_endpoint"],
        "https://tokend.example.com/oauth2/token"
    );
}

async fn exchange(app: &TestApp, subject: &str, extra: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    form.extend_from_slice(extra);
    let (status, _, body) = post_form(app, "/oauth2/token", &form).await;
    (status, body)
}

async fn a_sensor_exchanges_its_token_for_an_execution_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:core.timer")).await;
    let sensor_token = account["token"].as_str().unwrap().to_owned();
    let (status, got) = exchange(
        &app,
        &sensor_token,
        &[
            ("scope", "execution"),
            ("execution_id", "4711"),
            ("action_ref", "core.http"),
            ("ttl_seconds", "900"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(got["scope"], "execution");
    assert!(
        (895..=900).contains(&got["expires_in"].as_i64().unwrap()),
        "{got}"
    );
    let exec = got["access_token"].as_str().unwrap().to_owned();
    let (status, me) = app.whoami(&exec).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["scope"], "execution");
    assert_eq!(me["identity_id"], account["identity_id"]);
    assert_eq!(
        me["metadata"],
        json!({"execution_id": 4711, "action_ref": "core.http"})
    );
    let act = &claims(&exec)["act"];
    assert_eq!(act["sub"], "sensor:core.timer", "{act}");
    assert_eq!(act["token_id"], account["token_id"]);
    // Forward-auth checks it like any execution token.
    let (status, _, _) = app
        .send(
            Method::GET,
            "/auth/verify?scope=execution&execution_id=4711",
            Some(&exec),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Only down: not to admin, not back up from execution, not past the subject's life.
    let (status, body) = exchange(&app, &sensor_token, &[("scope", "admin")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "{body}"
    );
    let (status, body) = exchange(&app, &exec, &[("scope", "sensor")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let (status, body) = exchange(&app, &sensor_token, &[("scope", "execution")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "needs execution_id: {body}"
    );
    let (status, body) = exchange(
        &app,
        &sensor_token,
        &[
            ("scope", "execution"),
            ("execution_id", "1"),
            ("ttl_seconds", "7200"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "over the execution maximum: {body}"
    );
    let (status, body) = exchange(&app, "not-a-token", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = exchange(
        &app,
        &sensor_token,
        &[("actor_token", "x"), ("actor_token_type", "y")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = exchange(&app, &sensor_token, &[("audience", "somewhere-else")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    // The same scope, a shorter life: allowed, never longer than the subject.
    let (status, same) = exchange(&app, &exec, &[("ttl_seconds", "3000")]).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert!(same["expires_in"].as_i64().unwrap() <= 900);
    assert_eq!(
        claims(same["access_token"].as_str().unwrap())["act"]["act"]["sub"],
        "sensor:core.timer"
    );

    // A same-scope exchange of a sensor token cannot be refreshed into a longer life.
    let (status, narrowed) = exchange(&app, &sensor_token, &[("ttl_seconds", "86400")]).await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    let (status, body) = app
        .send(
            Method::POST,
            "/auth/refresh",
            narrowed["access_token"].as_str(),
            Some(&json!({})),
        )
        .await
        .into_pair();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "insufficient_scope"),
        "{body}"
    );

    // The sensor's routine rotation leaves running executions alone...
    let (status, rotated) = app
        .send(
            Method::POST,
            "/auth/refresh",
            Some(&sensor_token),
            Some(&json!({"revoke_current": true})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(app.whoami(&exec).await.0, StatusCode::OK);
    // ...a revoked subject exchanges nothing more...
    let (status, body) = exchange(
        &app,
        &sensor_token,
        &[("scope", "execution"), ("execution_id", "1")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // ...and revoking the sensor's account revokes what it minted.
    let (status, _) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{}", account["identity_id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&app.whoami(&exec).await.1), "token_revoked");
    assert_eq!(
        code(&app.whoami(same["access_token"].as_str().unwrap()).await.1),
        "token_revoked"
    );
}

async fn revoking_the_subject_token_revokes_what_it_minted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:leaky")).await;
    let sensor_token = account["token"].as_str().unwrap().to_owned();
    let (status, got) = exchange(
        &app,
        &sensor_token,
        &[("scope", "execution"), ("execution_id", "7")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let exec = got["access_token"].as_str().unwrap().to_owned();
    // Revoking the execution token leaves the sensor alone.
    let (status, again) = exchange(
        &app,
        &sensor_token,
        &[("scope", "execution"), ("execution_id", "8")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let other = again["access_token"].as_str().unwrap().to_owned();
    let (status, _) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token": other})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.whoami(&sensor_token).await.0, StatusCode::OK);
    assert_eq!(app.whoami(&exec).await.0, StatusCode::OK);
    // Revoking the sensor's token (a leak) takes the execution tokens it minted with it.
    let (status, _) = app
        .admin(
            Method::POST,
            "/tokens/revoke",
            Some(&json!({"token": sensor_token})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&app.whoami(&exec).await.1), "token_revoked");
}

/// Grants that arrive together share one transaction (group commit): each still stands or
/// falls alone, and every token acknowledged is recorded.
async fn concurrent_grants_stand_or_fall_alone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:burst")).await;
    let id = &account["identity_id"];
    let (client_id, secret, _) = new_secret(&app, id, json!({})).await;
    let attempts = (0..60).map(|i| {
        let (app, client_id) = (&app, client_id.clone());
        let secret = if i % 5 == 0 {
            "tokend_cs_wrong".to_owned()
        } else {
            secret.clone()
        };
        async move {
            post_form(
                app,
                "/oauth2/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut issued = Vec::new();
    for (i, (status, _, body)) in answers.iter().enumerate() {
        if i % 5 == 0 {
            assert_eq!(
                (*status, body["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{body}"
            );
        } else {
            assert_eq!(*status, StatusCode::OK, "{body}");
            issued.push(body["access_token"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(issued.len(), 48);
    for token in &issued {
        assert_eq!(app.whoami(token).await.0, StatusCode::OK);
    }
    let (_, detail) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(
        detail["tokens"].as_array().unwrap().len(),
        49,
        "the first token and every grant"
    );
    // Revoking the account takes every granted token with it.
    let (status, revoked) = app
        .admin(Method::DELETE, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(
        (status, &revoked["revoked_tokens"]),
        (StatusCode::OK, &json!(49))
    );
}

async fn client_secrets_from_the_command_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.create_account(sensor("sensor:cli")).await;
    let id = account["identity_id"].to_string();
    let run = |args: Vec<String>| crate::helpers::run_command(app.cli(args));
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    let mut create = args(&format!(
        "sa secret create {id} --expires-in-days 7 --json --secret-out"
    ));
    create.push(file.display().to_string());
    let (status, stdout, stderr) = run(create).await;
    assert_eq!(status, 0, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let secret = std::fs::read_to_string(&file).unwrap();
    assert_eq!(created["client_secret"], json!(secret.trim()));
    let (status, _, body) = post_form(
        &app,
        "/oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", created["client_id"].as_str().unwrap()),
            ("client_secret", secret.trim()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, stdout, stderr) = run(args(&format!("sa secret list {id}"))).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stdout.contains(created["secret_id"].as_str().unwrap()) && stdout.contains("active"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret.trim()));
    let secret_id = created["secret_id"].as_str().unwrap();
    let (status, stdout, stderr) = run(args(&format!(
        "sa secret revoke {id} {secret_id} --reason rotated"
    )))
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("revoked"), "{stdout}");
    let (status, _, stderr) = run(args("sa secret list 999999")).await;
    assert_eq!(status, 1, "a refusal exits 1: {stderr}");
}

trait IntoPair {
    fn into_pair(self) -> (StatusCode, Value);
}

impl IntoPair for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn into_pair(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

crate::both_backends!(
    client_credentials_with_a_stock_client,
    errors_are_rfc6749,
    secrets_rotate_expire_and_revoke,
    at_most_ten_live_secrets,
    revocation_and_introspection_need_the_client,
    discovery_lists_what_is_supported,
    a_sensor_exchanges_its_token_for_an_execution_token,
    revoking_the_subject_token_revokes_what_it_minted,
    client_secrets_from_the_command_line,
    concurrent_grants_stand_or_fall_alone,
);
