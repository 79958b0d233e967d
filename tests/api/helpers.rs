//! `TestApp`: the real server on 127.0.0.1:0, on its own SQLite file or its own PostgreSQL
//! database (created from `TOKEND_TEST_PG_URL`, dropped afterwards).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::Value;

use tokend::app::Application;
use tokend::config::{Database, Settings};
use tokend::state::AppState;

use crate::fault_proxy::FaultProxy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `TOKEND_TEST_PG_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub fn pg_url() -> Option<String> {
    std::env::var("TOKEND_TEST_PG_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Runs each listed `async fn name(Backend)` on SQLite, and on PostgreSQL when
/// `TOKEND_TEST_PG_URL` is set (otherwise the PostgreSQL variant says it is skipped).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if $crate::helpers::pg_url().is_none() {
                        eprintln!("skipped: TOKEND_TEST_PG_URL is not set");
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A PostgreSQL database of one test, dropped when the last holder goes.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    fn create() -> PgDatabase {
        Self::create_on(&pg_url().expect("TOKEND_TEST_PG_URL"))
    }

    /// A new database on the server of `admin_url`, created and dropped through that URL.
    /// tokend reaches it at `url`, which a test may point another way (a proxy, several hosts).
    pub fn create_on(admin_url: &str) -> PgDatabase {
        let admin_url = admin_url.to_owned();
        let name = format!("tokend_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            PgConnection::establish(&admin_url).expect("connect to the PostgreSQL server");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create the test database");
        let url = database_url(&admin_url, &name);
        PgDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `url` with its database replaced by `name` (its query kept).
pub fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    format!("{base}/{name}{query}")
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

/// Where a test's data lives; shared by replicas of the same deployment.
pub struct Storage {
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
}

impl Storage {
    pub fn new(backend: Backend) -> Arc<Storage> {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = (backend == Backend::Postgres).then(PgDatabase::create);
        Arc::new(Storage { dir, pg })
    }

    /// Storage on this PostgreSQL database (made with [`PgDatabase::create_on`]).
    pub fn postgres(pg: PgDatabase) -> Arc<Storage> {
        let dir = tempfile::tempdir().expect("temp dir");
        Arc::new(Storage { dir, pg: Some(pg) })
    }

    /// A PostgreSQL database of its own on `TOKEND_TEST_PG_URL`'s server, which tokend (in
    /// process or the binary) reaches through a new [`FaultProxy`]; the test itself creates
    /// and drops it directly, so a fault never leaves a database behind. Blocking.
    pub fn postgres_behind_proxy() -> (Arc<Storage>, FaultProxy) {
        let admin_url = pg_url().expect("TOKEND_TEST_PG_URL");
        let proxy = FaultProxy::start(crate::fault_proxy::pg_server_addr(&admin_url));
        let mut pg = PgDatabase::create_on(&admin_url);
        pg.url = crate::fault_proxy::pg_url_via(&pg.url, proxy.addr());
        (Storage::postgres(pg), proxy)
    }

    pub fn database(&self) -> Database {
        match &self.pg {
            Some(pg) => Database::Postgres {
                url: SecretString::from(pg.url.clone()),
            },
            None => Database::Sqlite {
                path: self.dir.path().join("tokend.db"),
            },
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Settings for tests: port 0, a temp data dir, one worker, no cleanup during the test.
pub fn test_settings(storage: &Storage) -> Settings {
    let mut s = Settings::new(storage.database());
    s.listen = "127.0.0.1:0".into();
    s.data_dir = storage.data_dir();
    s.cleanup_interval = Duration::from_secs(86_400);
    s.db_wait = Duration::from_secs(5);
    s.pool_size = 4;
    s.workers = Some(1);
    // Verifiers may cache the JWKS for 1 s, so a new next key may sign 1 s after it appears.
    s.jwks_max_age = Duration::from_secs(1);
    s
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub settings: Settings,
    pub storage: Arc<Storage>,
    pub state: web::Data<AppState>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A server on fresh storage, with settings adjusted by `configure`.
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let storage = web::block(move || Storage::new(backend)).await.unwrap();
        let mut settings = test_settings(&storage);
        configure(&mut settings);
        Self::start(storage, settings).await
    }

    /// A server without clock-skew leeway where execution tokens may live from 1 s, so
    /// tests can watch tokens expire.
    pub async fn spawn_short_lived(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |s| {
            s.leeway = Duration::ZERO;
            s.scopes
                .set_bounds_from_spec(tokend::scope::Scope::Execution, "1s:60m:60m")
                .unwrap();
        })
        .await
    }

    /// Another server on the same database and keys (a replica).
    pub async fn replica(&self) -> TestApp {
        Self::start(self.storage.clone(), self.settings.clone()).await
    }

    pub async fn start(storage: Arc<Storage>, settings: Settings) -> TestApp {
        // RUST_LOG=tokend::access=info cargo test ... shows the servers' logs.
        let _ = env_logger::builder().is_test(true).try_init();
        let app = Application::build(settings.clone())
            .await
            .expect("the server starts");
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let address = format!("{scheme}://127.0.0.1:{}", app.port());
        let state = app.state();
        actix_web::rt::spawn(app.run_until_stopped());
        let admin_settings = settings.clone();
        let admin_token =
            web::block(move || tokend::cli::mint_admin_token(&admin_settings, "test-admin", None))
                .await
                .unwrap()
                .expect("an admin token");
        TestApp {
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_token,
            settings,
            storage,
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, json)
    }

    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self.send(method, path, Some(&self.admin_token), body).await;
        (s, v)
    }

    /// Creates an account with the admin token; panics unless 201.
    pub async fn create_account(&self, body: Value) -> Value {
        let (status, json) = self
            .admin(Method::POST, "/service-accounts", Some(&body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "create {body}: {json}");
        json
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// `tokend ARGS` as a client of this server (`TOKEND_URL`, the admin token as
    /// `TOKEND_TOKEN`, nothing else from the environment but `PATH`).
    pub fn cli<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokend"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TOKEND_URL", &self.address)
            .env("TOKEND_TOKEN", &self.admin_token)
            .args(args);
        cmd
    }

    /// `GET /auth/whoami` with a token: status and body.
    pub async fn whoami(&self, token: &str) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(Method::GET, "/auth/whoami", Some(token), None)
            .await;
        (s, v)
    }
}

// --- TLS (tests/api/tls.rs, tests/api/tls_ca.rs) ---
impl TestApp {
    /// A server serving HTTPS with `tls` (e.g. [`TestCa::server_tls`]); its `client` trusts
    /// `ca` alone and presents no client certificate.
    ///
    /// [`TestCa::server_tls`]: crate::tls_ca::TestCa::server_tls
    pub async fn spawn_tls(
        backend: Backend,
        tls: tokend::tls::TlsSettings,
        ca: &crate::tls_ca::TestCa,
    ) -> TestApp {
        let mut app = Self::spawn_with(backend, |s| s.tls = Some(tls)).await;
        app.client = ca.client();
        app
    }
}

/// `GET /auth/whoami` on a server at `base` until the token is refused as revoked; panics if it
/// is still accepted after `limit`. Returns how long it took.
pub async fn until_refused(base: &str, token: &str, limit: Duration) -> Duration {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let res = client
            .get(format!("{base}/auth/whoami"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&body), "token_revoked");
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            start.elapsed() < limit,
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Seconds between two RFC 3339 times of a response.
pub fn seconds_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time string"))
            .expect("RFC 3339")
            .timestamp()
    };
    parse(to) - parse(from)
}

/// A sensor account request.
pub fn sensor(name: &str) -> Value {
    serde_json::json!({"name": name, "scope": "sensor", "metadata": {"trigger_types": ["core.timer"]}})
}

/// A webhook account request for these `allowed_paths`.
pub fn webhook(name: &str, allowed_paths: &[&str]) -> Value {
    serde_json::json!({"name": name, "scope": "webhook", "metadata": {"allowed_paths": allowed_paths}})
}

impl TestApp {
    /// Adds a user through `POST /users`; panics unless 201.
    pub async fn add_user(&self, login: &str, password: &str, role: &str) -> Value {
        let body = serde_json::json!({"login": login, "password": password, "role": role});
        let (status, json) = self.admin(Method::POST, "/users", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "add user {login}: {json}");
        json
    }

    /// `POST /auth/login`: status and body.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let body = serde_json::json!({"login": login, "password": password});
        self.send(Method::POST, "/auth/login", None, Some(&body))
            .await
    }

    /// Logs in and returns the token; panics unless 200.
    pub async fn login_token(&self, login: &str, password: &str) -> String {
        let (status, _, body) = self.login(login, password).await;
        assert_eq!(status, StatusCode::OK, "login {login}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Writes pending `last_used_at` updates and audit events now instead of within 5 s.
    pub async fn flush_usage(&self) {
        let state = self.state.clone();
        web::block(move || state.usage.flush(&state.pool))
            .await
            .unwrap()
            .unwrap();
    }

    /// The audit trail, oldest first, as `action` strings.
    pub async fn audit_actions(&self, query: &str) -> Vec<String> {
        let (status, body) = self
            .admin(Method::GET, &format!("/audit?limit=1000{query}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut actions: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        actions.reverse();
        actions
    }
}

impl TestApp {
    /// [`TestApp::spawn_short_lived`] with users `alice` (admin) and `victor` (viewer).
    pub async fn short_lived_with_users(backend: Backend) -> TestApp {
        let app = Self::spawn_short_lived(backend).await;
        app.add_user("alice", "correct horse battery", "admin")
            .await;
        app.add_user("victor", "correct horse battery", "viewer")
            .await;
        app
    }
}

/// Runs a command with `input` on its stdin, off the async thread.
pub async fn run_with_stdin(mut cmd: std::process::Command, input: String) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    actix_web::web::block(move || {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Runs a command off the async thread: (exit code, stdout, stderr).
pub async fn run_command(mut cmd: std::process::Command) -> (i32, String, String) {
    let out = web::block(move || cmd.output().unwrap()).await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether these command-line tools are installed. Outside CI a test may skip without them;
/// in CI (`CI` set) it must not.
pub fn require_tools(tools: &[&str]) -> bool {
    let present = tools.iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !present {
        assert!(std::env::var("CI").is_err(), "CI must have {tools:?}");
        eprintln!("skipped: needs {tools:?}");
    }
    present
}
