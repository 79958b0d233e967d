//! Workload federation against a real external issuer run by the test: it generates its own
//! keys (RSA, P-256, Ed25519), serves its JWKS over HTTP on 127.0.0.1 (switchable keys, a
//! fetch counter, an off switch), and mints tokens shaped like Kubernetes projected
//! service-account tokens and GitHub Actions OIDC tokens. Workloads exchange them at
//! `/oauth2/token` (RFC 7523 jwt-bearer and RFC 8693 token exchange); bad tokens get the right
//! RFC 6749 error and change nothing.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::rngs::OsRng;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, run_command, run_with_stdin, until_refused, Backend, TestApp};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A signing key of the test's issuer and its public JWK.
pub(crate) struct Key {
    pub(crate) kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    pub(crate) jwk: Value,
    /// What an attacker would use as an HMAC secret: the public key's bytes.
    pub(crate) public_bytes: Vec<u8>,
}

impl Key {
    pub(crate) fn rsa(kid: &str) -> Key {
        use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        let public = key.to_public_key();
        Key {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}),
            public_bytes: public
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .into_bytes(),
        }
    }

    pub(crate) fn es256(kid: &str) -> Key {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::random(&mut OsRng);
        let point = key.public_key().to_encoded_point(false);
        Key {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}),
            public_bytes: point.as_bytes().to_vec(),
        }
    }

    pub(crate) fn ed25519(kid: &str) -> Key {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
        let public = key.verifying_key().to_bytes();
        Key {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(public)}),
            public_bytes: public.to_vec(),
        }
    }

    pub(crate) fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// What the issuer's JWKS endpoint serves, and what it saw.
struct Published {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
    down: AtomicBool,
    cache_control: Mutex<String>,
}

/// An OIDC issuer run by the test: its URL (the `iss`), its JWKS on `/jwks`.
pub(crate) struct ExternalIssuer {
    url: String,
    published: Arc<Published>,
}

async fn serve_jwks(published: web::Data<Published>) -> HttpResponse {
    published.fetches.fetch_add(1, Ordering::SeqCst);
    if published.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("down for maintenance");
    }
    let cache_control = published.cache_control.lock().unwrap().clone();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", cache_control))
        .json(&*published.jwks.lock().unwrap())
}

impl ExternalIssuer {
    pub(crate) async fn start(keys: &[&Key]) -> ExternalIssuer {
        let published = Arc::new(Published {
            jwks: Mutex::new(Value::Null),
            fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            cache_control: Mutex::new("public, max-age=3600".into()),
        });
        let data = web::Data::from(published.clone());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/jwks", web::get().to(serve_jwks))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        let issuer = ExternalIssuer {
            url: format!("http://127.0.0.1:{port}"),
            published,
        };
        issuer.publish(keys);
        issuer
    }

    pub(crate) fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// Replaces the published keys (a rotation at the issuer).
    pub(crate) fn publish(&self, keys: &[&Key]) {
        *self.published.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    /// A projected token of the pod of service account `sa` in namespace `sensors`, for
    /// audience `tokend`, signed with `key`.
    fn pod(&self, key: &Key, sa: &str) -> String {
        key.sign(&k8s_claims(&self.url, "sensors", sa, "tokend"))
    }

    pub(crate) fn fetches(&self) -> usize {
        self.published.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn go_down(&self) {
        self.published.down.store(true, Ordering::SeqCst);
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A Kubernetes projected service-account token's claims (`serviceAccountToken` volume with
/// an `audience`).
fn k8s_claims(iss: &str, namespace: &str, sa: &str, aud: &str) -> Value {
    let t = now();
    json!({
        "aud": [aud],
        "exp": t + 3600,
        "iat": t,
        "iss": iss,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": uuid::Uuid::new_v4().to_string()},
            "pod": {"name": format!("{sa}-7d9f8b6c5d-x2x4z"), "uid": uuid::Uuid::new_v4().to_string()},
            "serviceaccount": {"name": sa, "uid": uuid::Uuid::new_v4().to_string()},
            "warnafter": t + 3000
        },
        "nbf": t,
        "sub": format!("system:serviceaccount:{namespace}:{sa}")
    })
}

/// A GitHub Actions OIDC token's claims (`id-token: write`, `getIDToken(audience)`).
fn github_claims(iss: &str, repository: &str, aud: &str) -> Value {
    let t = now();
    let owner = repository.split('/').next().unwrap();
    json!({
        "actor": "octocat",
        "actor_id": "583231",
        "aud": aud,
        "base_ref": "",
        "event_name": "push",
        "exp": t + 300,
        "head_ref": "",
        "iat": t,
        "iss": iss,
        "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": t - 5,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "repository": repository,
        "repository_id": "74",
        "repository_owner": owner,
        "repository_owner_id": "9919",
        "repository_visibility": "private",
        "run_attempt": "1",
        "run_id": "5209148212",
        "run_number": "42",
        "runner_environment": "github-hosted",
        "sha": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "workflow": "deploy",
        "workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
    })
}

/// The Kubernetes issuer document tokend is given: sensors from the `sensors` namespace.
fn k8s_issuer_doc(issuer: &ExternalIssuer) -> Value {
    json!({
        "issuer": issuer.url,
        "jwks_uri": issuer.jwks_uri(),
        "audiences": ["tokend"],
        "rules": [{
            "match": {"kubernetes.io.namespace": "sensors"},
            "scope": "sensor",
            "name": "sensor:{kubernetes.io.serviceaccount.name}",
            "metadata": {"trigger_types": ["k8s.{kubernetes.io.serviceaccount.name}", "core.timer"]},
            "ttl_seconds": 86400
        }]
    })
}

async fn register(app: &TestApp, doc: &Value) -> Value {
    let (status, body) = app
        .admin(Method::POST, "/federation/issuers", Some(doc))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn post_token(
    app: &TestApp,
    form: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    crate::oauth::post_form(app, "/oauth2/token", form).await
}

/// `grant_type=jwt-bearer` with this assertion: status and body.
async fn jwt_bearer(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    let (s, _, v) = post_token(app, &[("grant_type", JWT_BEARER), ("assertion", assertion)]).await;
    (s, v)
}

/// The access token of a successful grant.
async fn granted(app: &TestApp, assertion: &str) -> String {
    let (status, body) = jwt_bearer(app, assertion).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Service accounts of every status, and tokens issued: what a refused grant must not change.
async fn footprint(app: &TestApp) -> (Value, usize) {
    let (status, accounts) = app
        .admin(Method::GET, "/service-accounts?status=all", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let issued = app.audit_actions("&action=token.issued").await.len();
    (accounts["total"].clone(), issued)
}

fn refused(status: StatusCode, body: &Value, error: &str, needle: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(needle),
        "{needle:?} not in {description:?}"
    );
}

/// Short cache times, so tests can watch refetches and expiry.
pub(crate) fn quick_cache(s: &mut tokend::config::Settings) {
    let cache = &mut s.oauth.jwks_cache;
    cache.min_ttl = Duration::from_secs(1);
    cache.refetch_interval = Duration::from_millis(500);
}

async fn a_kubernetes_pod_gets_a_sensor_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::rsa("k8s-1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    let issuer = register(&app, &k8s_issuer_doc(&cluster)).await;
    assert_eq!(issuer["max_uses_per_token"], 10);
    assert_eq!(issuer["max_token_age_seconds"], 3600);

    // Discovery lists the grant.
    let (_, _, meta) = app
        .send(
            Method::GET,
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(JWT_BEARER)));

    let pod_token = cluster.pod(&key, "timer");
    let (status, body) = jwt_bearer(&app, &pod_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "sensor");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((86_390..=86_400).contains(&expires_in), "{expires_in}");
    let access = body["access_token"].as_str().unwrap();
    let (status, me) = app.whoami(access).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "sensor:timer");
    assert_eq!(me["scope"], "sensor");
    assert_eq!(
        me["metadata"],
        json!({"trigger_types": ["k8s.timer", "core.timer"]})
    );
    let id = me["identity_id"].clone();

    // The account is an ordinary service account, described as the workload it is.
    let (_, account) = app
        .admin(Method::GET, &format!("/service-accounts/{id}"), None)
        .await;
    assert_eq!(account["name"], "sensor:timer");
    let description = account["description"].as_str().unwrap();
    assert!(
        description.contains("system:serviceaccount:sensors:timer"),
        "{description}"
    );
    let trail = app.audit_actions(&format!("&identity_id={id}")).await;
    assert!(
        trail.starts_with(&["account.created".into(), "token.issued".into()]),
        "{trail:?}"
    );

    // The same pod later, through token exchange (RFC 8693), with a fresh projected token:
    // the same account; the rule's current result (changed by an admin) renames it.
    let (status, _) = app
        .admin(
            Method::PATCH,
            &format!("/federation/issuers/{}", issuer["id"]),
            Some(&json!({"rules": [{
                "match": {"kubernetes.io.namespace": "sensors", "kubernetes.io.serviceaccount.name": ["timer", "cron"]},
                "scope": "sensor",
                "name": "k8s:{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}",
                "metadata": {"trigger_types": ["core.timer"]}
            }]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let fresh = cluster.pod(&key, "timer");
    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &fresh),
            ("subject_token_type", JWT_TYPE),
            ("scope", "sensor"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let (_, me) = app.whoami(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me["identity_id"], id);
    assert_eq!(me["name"], "k8s:sensors/timer");
    assert_eq!(me["metadata"], json!({"trigger_types": ["core.timer"]}));
    // The default sensor lifetime now that the rule has no ttl_seconds.
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((71 * 3600..=72 * 3600).contains(&expires_in), "{body}");

    // The request's scope must be the rule's: nothing but the rules decides.
    let other = cluster.pod(&key, "timer");
    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &other),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_scope", "{body}");
    // The issuer's JWKS was fetched once for all of this.
    assert_eq!(cluster.fetches(), 1);
    let (_, listed) = app.admin(Method::GET, "/federation/issuers", None).await;
    assert_eq!(listed["data"][0]["workloads"], 1);
}

async fn a_github_workflow_gets_a_token_by_repository(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::es256("gh-1");
    let github = ExternalIssuer::start(&[]).await;
    // Keys inline: no fetching at all.
    register(
        &app,
        &json!({
            "issuer": github.url,
            "jwks": {"keys": [key.jwk]},
            "audiences": ["https://tokend.example"],
            "max_token_age_seconds": 600,
            "rules": [{
                "match": {"repository": "org/repo", "ref": "refs/heads/main"},
                "scope": "cli",
                "name": "deploy:{repository}",
                "metadata": {"repository": "{repository}", "workflow": "{workflow}", "run": "{run_id}"},
                "ttl_seconds": 604800
            }]
        }),
    )
    .await;
    let token = key.sign(&github_claims(
        &github.url,
        "org/repo",
        "https://tokend.example",
    ));
    let access = granted(&app, &token).await;
    let (_, me) = app.whoami(&access).await;
    assert_eq!(me["name"], "deploy:org/repo");
    assert_eq!(me["scope"], "cli");
    assert_eq!(
        me["metadata"],
        json!({"repository": "org/repo", "workflow": "deploy", "run": "5209148212"})
    );
    // Another repository of the same organisation matches no rule.
    let before = footprint(&app).await;
    let other = key.sign(&github_claims(
        &github.url,
        "org/other",
        "https://tokend.example",
    ));
    let (status, body) = jwt_bearer(&app, &other).await;
    refused(status, &body, "invalid_grant", "no rule");
    assert_eq!(footprint(&app).await, before);
    assert_eq!(github.fetches(), 0);
}

async fn key_rotation_at_the_issuer_refetches_its_keys(backend: Backend) {
    // Refetches at most every 2 s: the flood below takes well under that.
    let app = TestApp::spawn_with(backend, |s| {
        s.oauth.jwks_cache.refetch_interval = Duration::from_secs(2);
    })
    .await;
    let old = Key::rsa("2026-11");
    let cluster = ExternalIssuer::start(&[&old]).await;
    register(&app, &k8s_issuer_doc(&cluster)).await;
    granted(&app, &cluster.pod(&old, "timer")).await;
    assert_eq!(cluster.fetches(), 1);

    // The cluster rotates to a new key (another type, too) with a new kid.
    let new = Key::es256("2026-12");
    cluster.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let access = granted(&app, &cluster.pod(&new, "timer")).await;
    assert_eq!(
        cluster.fetches(),
        2,
        "the unknown kid refetched the JWKS once"
    );
    assert_eq!(app.whoami(&access).await.0, StatusCode::OK);

    // A flood of unknown kids fetches at most once per refetch interval.
    let before = footprint(&app).await;
    let stranger = Key::ed25519("unknown");
    for i in 0..6 {
        let mut forged = Key::ed25519(&format!("random-{i}"));
        forged.kid = format!("random-{i}-{}", uuid::Uuid::new_v4());
        let (status, body) = jwt_bearer(&app, &cluster.pod(&forged, "timer")).await;
        refused(status, &body, "invalid_grant", "no key with kid");
    }
    let (status, body) = jwt_bearer(&app, &cluster.pod(&stranger, "timer")).await;
    refused(status, &body, "invalid_grant", "no key");
    assert!(cluster.fetches() <= 3, "{} fetches", cluster.fetches());
    assert_eq!(footprint(&app).await, before);
}

/// Signs `claims` with `key` but says `alg` in the header (and keeps the kid).
pub(crate) fn with_header(header: Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn bad_tokens_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::rsa("k8s-1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    register(&app, &k8s_issuer_doc(&cluster)).await;
    // One good grant first: its account exists, so "nothing changed" is judged on a live state.
    granted(&app, &cluster.pod(&key, "timer")).await;
    let before = footprint(&app).await;
    let iss = cluster.url.clone();
    let good = || k8s_claims(&iss, "sensors", "timer", "tokend");

    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    cases.push((
        "wrong audience",
        key.sign(&k8s_claims(&iss, "sensors", "timer", "vault")),
        "aud",
    ));
    let mut expired = good();
    expired["exp"] = json!(now() - 120);
    expired["iat"] = json!(now() - 720);
    expired["nbf"] = json!(now() - 720);
    cases.push(("expired", key.sign(&expired), "expired"));
    let mut old = good();
    old["iat"] = json!(now() - 2 * 3600);
    old["nbf"] = json!(now() - 2 * 3600);
    old["exp"] = json!(now() + 3600);
    cases.push(("older than max age", key.sign(&old), "issued 7"));
    let mut no_iat = good();
    no_iat.as_object_mut().unwrap().remove("iat");
    cases.push(("no iat", key.sign(&no_iat), "no iat"));
    let mut future = good();
    future["nbf"] = json!(now() + 600);
    cases.push(("not yet valid", key.sign(&future), "nbf"));
    let untrusted = "http://127.0.0.1:1/elsewhere";
    cases.push((
        "untrusted issuer",
        key.sign(&k8s_claims(untrusted, "sensors", "timer", "tokend")),
        "not trusted",
    ));
    // alg confusion: HS256 keyed with the issuer's public key, and no signature at all.
    let hs = jsonwebtoken::encode(
        &Header {
            kid: Some(key.kid.clone()),
            ..Header::new(Algorithm::HS256)
        },
        &good(),
        &EncodingKey::from_secret(&key.public_bytes),
    )
    .unwrap();
    cases.push(("HS256 with the public key", hs, "shared-secret"));
    cases.push((
        "alg none",
        with_header(json!({"alg": "none", "kid": key.kid}), &good(), b""),
        "unsigned",
    ));
    // A tampered payload: another namespace under the original signature.
    let signed = key.sign(&k8s_claims(&iss, "default", "timer", "tokend"));
    let parts: Vec<&str> = signed.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["kubernetes.io"]["namespace"] = json!("sensors");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    cases.push(("tampered payload", tampered, "signature does not verify"));
    cases.push((
        "no matching rule",
        key.sign(&k8s_claims(&iss, "default", "timer", "tokend")),
        "no rule",
    ));
    cases.push(("not a JWT", "not-a-jwt".into(), "not a signed JWT"));

    for (what, token, needle) in &cases {
        let (status, body) = jwt_bearer(&app, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(needle), "{what}: {description}");
        assert!(
            !description.contains(token.as_str()),
            "{what}: the token is echoed"
        );
    }
    // Token exchange refuses the same way.
    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &cases[0].1),
            ("subject_token_type", JWT_TYPE),
        ],
    )
    .await;
    refused(status, &body, "invalid_grant", "aud");
    // Client authentication is not needed, but a bad one is refused.
    let fresh = key.sign(&good());
    let (status, _, body) = post_token(
        &app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &fresh),
            ("client_id", "sa-1"),
            ("client_secret", "tokend_cs_wrong"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(footprint(&app).await, before);
    assert_eq!(cluster.fetches(), 1);
}

async fn each_token_has_a_replay_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::ed25519("k1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    let mut doc = k8s_issuer_doc(&cluster);
    doc["max_uses_per_token"] = json!(3);
    register(&app, &doc).await;
    let token = cluster.pod(&key, "timer");
    for _ in 0..3 {
        granted(&app, &token).await;
    }
    let before = footprint(&app).await;
    let (status, body) = jwt_bearer(&app, &token).await;
    refused(status, &body, "invalid_grant", "used 3 times");
    assert_eq!(footprint(&app).await, before);
    // A refused use does not count: a fresh token of the same pod works 3 times again.
    let fresh = cluster.pod(&key, "timer");
    granted(&app, &fresh).await;
    // Without a jti the token itself is counted.
    let mut claims = k8s_claims(&cluster.url, "sensors", "timer", "tokend");
    claims.as_object_mut().unwrap().remove("jti");
    let no_jti = key.sign(&claims);
    for _ in 0..3 {
        granted(&app, &no_jti).await;
    }
    let (status, body) = jwt_bearer(&app, &no_jti).await;
    refused(status, &body, "invalid_grant", "used 3 times");
}

async fn a_jwks_endpoint_that_is_down(backend: Backend) {
    let app = TestApp::spawn_with(backend, quick_cache).await;
    let key = Key::rsa("k1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    *cluster.published.cache_control.lock().unwrap() = "max-age=1".into();
    register(&app, &k8s_issuer_doc(&cluster)).await;
    granted(&app, &cluster.pod(&key, "timer")).await;
    // The endpoint goes down and the cached keys expire: they keep working.
    cluster.go_down();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    granted(&app, &cluster.pod(&key, "timer")).await;
    assert_eq!(
        cluster.fetches(),
        2,
        "the expired set was refetched once, and failed"
    );

    // An issuer whose endpoint was never reachable: 503, not a verdict on the token.
    let other_key = Key::ed25519("k2");
    let down = ExternalIssuer::start(&[&other_key]).await;
    down.go_down();
    register(&app, &k8s_issuer_doc(&down)).await;
    let before = footprint(&app).await;
    let (status, headers, body) = post_token(
        &app,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &down.pod(&other_key, "timer")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(footprint(&app).await, before);
}

async fn revoking_a_workloads_account_sticks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::rsa("k1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    register(&app, &k8s_issuer_doc(&cluster)).await;
    let access = granted(&app, &cluster.pod(&key, "timer")).await;
    let (_, me) = app.whoami(&access).await;
    let id = &me["identity_id"];
    let (status, body) = app
        .admin(
            Method::DELETE,
            &format!("/service-accounts/{id}"),
            Some(&json!({"reason": "compromised node"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    until_refused(&app.address, &access, Duration::from_secs(5)).await;
    let before = footprint(&app).await;
    let (status, body) = jwt_bearer(&app, &cluster.pod(&key, "timer")).await;
    refused(status, &body, "invalid_grant", "was revoked");
    assert_eq!(footprint(&app).await, before);
    // Another workload of the same cluster is not affected.
    let access = granted(&app, &cluster.pod(&key, "cron")).await;
    assert_ne!(app.whoami(&access).await.1["identity_id"], *id);
}

async fn the_management_api_refuses_bad_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::rsa("k1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    let good = k8s_issuer_doc(&cluster);
    let mut private = key.jwk.clone();
    private["d"] = json!("AQAB");
    for (change, needle) in [
        (json!({"issuer": "http://tokend.example"}), "https"),
        (json!({"issuer": "ftp://127.0.0.1"}), "https"),
        (json!({"issuer": 7}), "string"),
        (json!({"jwks_uri": null}), "give jwks_uri"),
        (json!({"jwks": {"keys": [key.jwk]}}), "not both"),
        (json!({"jwks_uri": null, "jwks": {"keys": []}}), "no usable"),
        (
            json!({"jwks_uri": null, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            "private key",
        ),
        (
            json!({"jwks_uri": null, "jwks": {"keys": [private]}}),
            "private key",
        ),
        (json!({"jwks_uri": null, "jwks": [1, 2]}), "JWKS"),
        (json!({"audiences": []}), "audiences"),
        (json!({"audiences": "tokend"}), "audiences"),
        (json!({"max_token_age_seconds": 0}), "max_token_age_seconds"),
        (json!({"max_uses_per_token": -1}), "max_uses_per_token"),
        (json!({"rules": []}), "rules"),
        (
            json!({"rules": [{"match": {}, "scope": "sensor", "name": "x", "metadata": {"trigger_types": ["a"]}}]}),
            "at least one claim",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "superuser", "name": "x"}]}),
            "scope",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "sensor", "name": "x"}]}),
            "trigger_types",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "webhook", "name": "x", "metadata": {"allowed_paths": ["relative/{sub}"]}}]}),
            "rules[0]: metadata",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "sensor", "name": "x", "metadata": {"trigger_types": ["a"]}, "ttl_seconds": 60}]}),
            "TTL bounds",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "cli", "name": "sensor:{unclosed"}]}),
            "name",
        ),
        (
            json!({"rules": [{"match": {"a..b": "x"}, "scope": "cli", "name": "x"}]}),
            "claim path",
        ),
        (
            json!({"rules": [{"match": {"sub": "x"}, "scope": "cli", "name": "x", "when": 1}]}),
            "unknown field",
        ),
        (json!({"surprise": true}), "unknown field"),
    ] {
        let mut doc = good.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                doc.as_object_mut().unwrap().remove(k);
            } else {
                doc[k] = v.clone();
            }
        }
        let (status, body) = app
            .admin(Method::POST, "/federation/issuers", Some(&doc))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{change}: {message}");
    }
    let (_, listed) = app.admin(Method::GET, "/federation/issuers", None).await;
    assert_eq!(listed["data"], json!([]));
    assert!(app
        .audit_actions("&action=federation.issuer_created")
        .await
        .is_empty());

    let created = register(&app, &good).await;
    let path = format!("/federation/issuers/{}", created["id"]);
    let (status, body) = app
        .admin(Method::POST, "/federation/issuers", Some(&good))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "issuer_exists");
    // A bad change changes nothing; a good one is checked as a whole.
    for patch in [
        json!({}),
        json!({"rules": [{"match": {"sub": "x"}, "scope": "execution", "name": "x"}]}),
        json!({"jwks": {"keys": []}}),
        json!({"jwks_uri": "https://a.example/jwks", "jwks": {"keys": [key.jwk]}}),
    ] {
        let (status, body) = app.admin(Method::PATCH, &path, Some(&patch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
    }
    let (_, unchanged) = app.admin(Method::GET, &path, None).await;
    assert_eq!(unchanged, created);
    let (status, inline) = app
        .admin(
            Method::PATCH,
            &path,
            Some(&json!({"jwks": {"keys": [key.jwk]}, "max_uses_per_token": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{inline}");
    assert!(
        inline.get("jwks_uri").is_none(),
        "jwks replaced jwks_uri: {inline}"
    );
    assert_eq!(inline["max_uses_per_token"], 2);
    let (status, reset) = app
        .admin(
            Method::PATCH,
            &path,
            Some(&json!({"max_uses_per_token": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reset["max_uses_per_token"], 10);

    // Viewers read; only admins write.
    app.add_user("victor", "correct horse battery", "viewer")
        .await;
    let viewer = app.login_token("victor", "correct horse battery").await;
    let (status, _, _) = app.send(Method::GET, &path, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.send(Method::DELETE, &path, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .send(Method::GET, "/federation/issuers", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, deleted) = app.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["issuer"], cluster.url);
    assert_eq!(
        app.admin(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::DELETE, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin(Method::GET, "/federation/issuers/x", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.audit_actions("&action=federation.issuer_created")
            .await
            .len()
            + app
                .audit_actions("&action=federation.issuer_updated")
                .await
                .len()
            + app
                .audit_actions("&action=federation.issuer_deleted")
                .await
                .len(),
        4
    );
    // Its tokens are refused now.
    let (status, body) = jwt_bearer(&app, &cluster.pod(&key, "timer")).await;
    refused(status, &body, "invalid_grant", "not trusted");
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Command {
    app.cli(std::iter::once("federation").chain(args.iter().copied()))
}

async fn federation_from_the_command_line(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = Key::ed25519("k1");
    let cluster = ExternalIssuer::start(&[&key]).await;
    let out = run_with_stdin(
        cli(&app, &["add", "--json"]),
        k8s_issuer_doc(&cluster).to_string(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["id"].to_string();

    let (status, stdout, stderr) = run_command(cli(&app, &["list"])).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains(&cluster.url), "{stdout}");
    let (status, stdout, _) = run_command(cli(&app, &["show", &id])).await;
    assert_eq!(status, 0);
    assert!(
        stdout.contains("sensor:{kubernetes.io.serviceaccount.name}"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("change.json");
    std::fs::write(&file, r#"{"max_token_age_seconds": 900}"#).unwrap();
    let (status, stdout, stderr) = run_command(cli(
        &app,
        &["update", &id, file.to_str().unwrap(), "--json"],
    ))
    .await;
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["max_token_age_seconds"],
        900
    );
    // Refused by the server: exit 1 with its message; not JSON: exit 2.
    std::fs::write(&file, r#"{"max_token_age_seconds": 0}"#).unwrap();
    let (status, _, stderr) =
        run_command(cli(&app, &["update", &id, file.to_str().unwrap()])).await;
    assert_eq!(status, 1);
    assert!(stderr.contains("max_token_age_seconds"), "{stderr}");
    let out = run_with_stdin(cli(&app, &["add", "-"]), "{not json".into()).await;
    assert_eq!(out.status.code(), Some(2));

    let (status, stdout, stderr) = run_command(cli(&app, &["remove", &id])).await;
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("removed"), "{stdout}");
    let (status, _, _) = run_command(cli(&app, &["show", &id])).await;
    assert_eq!(status, 1);
}

crate::both_backends!(
    a_kubernetes_pod_gets_a_sensor_token,
    a_github_workflow_gets_a_token_by_repository,
    key_rotation_at_the_issuer_refetches_its_keys,
    bad_tokens_are_refused_and_change_nothing,
    each_token_has_a_replay_limit,
    a_jwks_endpoint_that_is_down,
    revoking_a_workloads_account_sticks,
    the_management_api_refuses_bad_input,
    federation_from_the_command_line,
);
