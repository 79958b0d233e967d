//! PostgreSQL failover under load (docs/high-availability.md): a primary with a synchronous
//! standby, two `tokend serve` replicas on a URL naming both servers with
//! `target_session_attrs=read-write`. The primary crashes, the standby is promoted, and:
//! nothing acknowledged is lost, revocations stay in force on every replica, writes resume
//! without a restart, and while it happens clients see 503, never a 500 or a hang.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cli::{admin_token, serve_with, Server};
use crate::helpers::{code, sensor, PgDatabase, Storage};
use crate::pg_cluster::PgCluster;

/// The client's patience with one request: longer than any bound tokend promises, so a
/// request that reaches it is a hang, not a slow answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound this test asserts: writes are acknowledged again within this time of the
/// standby's promotion, without restarting tokend.
const RESUME_BOUND: Duration = Duration::from_secs(30);
/// Load before the crash, between the crash and the promotion (a failover manager's
/// detection time: longer than the pool's 5 s checkout timeout, so that requests waiting for
/// a writable server give up while there is none), and after writes resumed.
const LOAD_BEFORE: Duration = Duration::from_secs(2);
const DETECTION: Duration = Duration::from_secs(6);
const LOAD_AFTER: Duration = Duration::from_secs(2);
const WORKERS: usize = 4;
/// How long a revocation may take to reach the other replica (its sync polls every 250 ms).
const PROPAGATION: Duration = Duration::from_secs(5);

/// Two tokend replicas on a primary and its synchronous standby.
struct Deployment {
    // Dropped in this order: the servers, the database, the cluster.
    replicas: Arc<Replicas>,
    db: String,
    _storage: Arc<Storage>,
    cluster: Arc<PgCluster>,
}

impl Deployment {
    /// `None` when the test is skipped (no PostgreSQL).
    async fn start() -> Option<Deployment> {
        let cluster = Arc::new(web::block(PgCluster::start).await.unwrap()?);
        // The database is created (and dropped) through the multi-host URL too.
        let url = cluster.url("postgres");
        let pg = web::block(move || PgDatabase::create_on(&url))
            .await
            .unwrap();
        let db = pg.name().to_owned();
        let storage = Storage::postgres(pg);
        let admin = admin_token(&storage).await;
        let env = [("RUST_LOG", "warn".to_owned())];
        let servers = vec![
            serve_with(&storage, &env).await,
            serve_with(&storage, &env).await,
        ];
        let client = reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .unwrap();
        Some(Deployment {
            replicas: Arc::new(Replicas {
                servers,
                admin,
                client,
            }),
            db,
            _storage: storage,
            cluster,
        })
    }

    /// Runs `f` on the cluster off the async thread.
    async fn on_cluster(&self, f: impl FnOnce(&PgCluster) + Send + 'static) {
        let cluster = self.cluster.clone();
        web::block(move || f(&cluster)).await.unwrap();
    }
}

struct Replicas {
    servers: Vec<Server>,
    admin: String,
    client: reqwest::Client,
}

impl Replicas {
    /// Sends a request to replica `i`: its status (None: no answer) and body.
    async fn send(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (Option<StatusCode>, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.servers[i].url))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.send().await {
            Ok(res) => {
                let status = res.status();
                (Some(status), res.json().await.unwrap_or_default())
            }
            Err(e) => (None, Value::String(e.to_string())),
        }
    }

    /// `POST /service-accounts` of a sensor account on replica `i`.
    async fn create(&self, i: usize, name: &str) -> (Option<StatusCode>, Value) {
        let body = Some(sensor(name));
        self.send(i, Method::POST, "/service-accounts", &self.admin, body)
            .await
    }

    /// [`Replicas::create`], which must answer 201: the new account.
    async fn create_ok(&self, i: usize, name: &str) -> Value {
        let (status, body) = self.create(i, name).await;
        assert_eq!(status, Some(StatusCode::CREATED), "{body}");
        body
    }

    /// `DELETE /service-accounts/{id}` on replica `i`.
    async fn revoke(&self, i: usize, id: i64) -> (Option<StatusCode>, Value) {
        let path = format!("/service-accounts/{id}");
        let body = Some(json!({"reason": "failover test"}));
        self.send(i, Method::DELETE, &path, &self.admin, body).await
    }

    async fn whoami(&self, i: usize, token: &str) -> (Option<StatusCode>, Value) {
        self.send(i, Method::GET, "/auth/whoami", token, None).await
    }

    /// The tokens some replica still accepts, after waiting up to [`PROPAGATION`] for every
    /// replica to refuse every one as revoked.
    async fn accepting(&self, tokens: &[&str]) -> Vec<String> {
        let start = Instant::now();
        loop {
            let mut accepted = Vec::new();
            for i in 0..self.servers.len() {
                for token in tokens {
                    let (status, body) = self.whoami(i, token).await;
                    if (status, code(&body)) != (Some(StatusCode::UNAUTHORIZED), "token_revoked") {
                        accepted.push(format!("replica {i}: {status:?} {body}"));
                    }
                }
            }
            if accepted.is_empty() || start.elapsed() > PROPAGATION {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every account through `GET /service-accounts?status=all`: id → status.
    async fn all_accounts(&self) -> BTreeMap<i64, String> {
        let mut listed = BTreeMap::new();
        loop {
            let path = format!(
                "/service-accounts?status=all&limit=1000&offset={}",
                listed.len()
            );
            let (status, page) = self.send(0, Method::GET, &path, &self.admin, None).await;
            assert_eq!(status, Some(StatusCode::OK), "{page}");
            let data = page["data"].as_array().unwrap();
            for account in data {
                listed.insert(
                    account["identity_id"].as_i64().unwrap(),
                    account["status"].as_str().unwrap().to_owned(),
                );
            }
            if data.is_empty() || listed.len() as u64 >= page["total"].as_u64().unwrap() {
                return listed;
            }
        }
    }
}

/// One write a load worker sent.
struct Write {
    kind: &'static str,
    started: Instant,
    finished: Instant,
    /// `None`: no answer within [`CLIENT_TIMEOUT`] (or the connection failed).
    status: Option<StatusCode>,
    code: String,
}

impl Write {
    fn acknowledged(&self) -> bool {
        self.status.is_some_and(|s| s.is_success())
    }
}

/// An account whose creation was acknowledged (201).
struct Created {
    identity_id: i64,
    token: String,
}

#[derive(Default)]
struct Load {
    writes: Vec<Write>,
    created: Vec<Created>,
    /// Accounts whose revocation was acknowledged (200).
    revoked: HashSet<i64>,
    /// Accounts a revocation was sent for, acknowledged or not: one that failed may still
    /// have committed, so their state is not asserted either way.
    revoke_sent: HashSet<i64>,
}

impl Load {
    fn record(
        &mut self,
        kind: &'static str,
        started: Instant,
        status: Option<StatusCode>,
        body: &Value,
    ) {
        let code = match status {
            Some(s) if s.is_success() => String::new(),
            Some(_) => code(body).to_owned(),
            None => body.as_str().unwrap_or_default().to_owned(),
        };
        self.writes.push(Write {
            kind,
            started,
            finished: Instant::now(),
            status,
            code,
        });
    }

    /// When the first write sent after `since` was acknowledged.
    fn first_ack_after(&self, since: Instant) -> Option<Instant> {
        self.writes
            .iter()
            .filter(|w| w.started >= since && w.acknowledged())
            .map(|w| w.finished)
            .min()
    }

    /// "create 201", "revoke 503 storage_unavailable", …: how many of each.
    fn responses(&self) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for w in &self.writes {
            let status = w
                .status
                .map_or("no answer".to_owned(), |s| s.as_u16().to_string());
            let key = format!("{} {status} {}", w.kind, w.code);
            *seen.entry(key.trim_end().to_owned()).or_default() += 1;
        }
        seen
    }

    /// The longest time between two acknowledgements.
    fn longest_without_ack(&self) -> Duration {
        let mut acked: Vec<Instant> = self
            .writes
            .iter()
            .filter(|w| w.acknowledged())
            .map(|w| w.finished)
            .collect();
        acked.sort();
        acked
            .windows(2)
            .map(|pair| pair[1] - pair[0])
            .max()
            .unwrap_or_default()
    }

    fn slowest_failure(&self) -> Duration {
        self.writes
            .iter()
            .filter(|w| !w.acknowledged())
            .map(|w| w.finished - w.started)
            .max()
            .unwrap_or_default()
    }
}

/// Creates accounts and revokes every third one, the revocation on the other replica, until
/// `stop`.
async fn work(
    worker: usize,
    replicas: Arc<Replicas>,
    load: Arc<Mutex<Load>>,
    stop: Arc<AtomicBool>,
) {
    let n = replicas.servers.len();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let on = (worker + i) % n;
        let started = Instant::now();
        let (status, body) = replicas
            .create(on, &format!("sensor:failover-{worker}-{i}"))
            .await;
        load.lock()
            .unwrap()
            .record("create", started, status, &body);
        if status == Some(StatusCode::CREATED) {
            let id = body["identity_id"].as_i64().unwrap();
            let token = body["token"].as_str().unwrap().to_owned();
            load.lock().unwrap().created.push(Created {
                identity_id: id,
                token,
            });
            if i % 3 == 0 {
                load.lock().unwrap().revoke_sent.insert(id);
                let started = Instant::now();
                // The other replica knows the account only through the database.
                let (status, body) = replicas.revoke((on + 1) % n, id).await;
                let mut load = load.lock().unwrap();
                load.record("revoke", started, status, &body);
                if status == Some(StatusCode::OK) {
                    load.revoked.insert(id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[actix_web::test]
async fn nothing_acknowledged_is_lost_when_the_standby_takes_over() {
    let test_start = Instant::now();
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let replicas = deployment.replicas.clone();

    // Before: accounts revoked on replica 0 are refused by both.
    let mut before = Vec::new();
    for n in 0..4 {
        let body = replicas.create_ok(0, &format!("sensor:before-{n}")).await;
        before.push(body["token"].as_str().unwrap().to_owned());
        if n % 2 == 0 {
            let (status, body) = replicas
                .revoke(0, body["identity_id"].as_i64().unwrap())
                .await;
            assert_eq!(status, Some(StatusCode::OK), "{body}");
        }
    }
    let revoked_before: Vec<&str> = before.iter().step_by(2).map(String::as_str).collect();
    let accepted = replicas.accepting(&revoked_before).await;
    assert!(accepted.is_empty(), "before the failover: {accepted:?}");

    // Load; the primary crashes; the standby is promoted.
    let load = Arc::new(Mutex::new(Load::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| actix_web::rt::spawn(work(w, replicas.clone(), load.clone(), stop.clone())))
        .collect();
    tokio::time::sleep(LOAD_BEFORE).await;
    let crashed = Instant::now();
    deployment.on_cluster(PgCluster::stop_primary).await;
    tokio::time::sleep(DETECTION).await;
    deployment.on_cluster(PgCluster::promote_standby).await;
    let promoted = Instant::now();

    // Writes resume: the first acknowledgement of a write sent after the promotion.
    let resumed = loop {
        if let Some(at) = load.lock().unwrap().first_ack_after(promoted) {
            break Some(at);
        }
        if promoted.elapsed() > RESUME_BOUND {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if resumed.is_some() {
        tokio::time::sleep(LOAD_AFTER).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let load = std::mem::take(&mut *load.lock().unwrap());

    let responses = load.responses();
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    eprintln!(
        "failover: standby promoted {:.1} s after the primary crashed; {} writes, {} creates \
         and {} revocations acknowledged; first acknowledged write {:.1} s after the crash, \
         {:.1} s after the promotion; longest time without an acknowledged write {:.1} s; \
         slowest failed request {:.1} s; responses: {responses:?}",
        (promoted - crashed).as_secs_f64(),
        load.writes.len(),
        load.created.len(),
        load.revoked.len(),
        secs(resumed.map(|at| at - crashed)),
        secs(resumed.map(|at| at - promoted)),
        load.longest_without_ack().as_secs_f64(),
        load.slowest_failure().as_secs_f64(),
    );

    // (c) Writes resume without restarting tokend.
    assert!(
        resumed.is_some(),
        "no write was acknowledged within {RESUME_BOUND:?} of the promotion"
    );

    // (a) Every acknowledged create is there, in the state it was acknowledged in.
    for server in &replicas.servers {
        server.wait_ready(Duration::from_secs(15)).await;
    }
    let listed = replicas.all_accounts().await;
    let mut lost = Vec::new();
    for created in &load.created {
        let id = created.identity_id;
        let want = if load.revoked.contains(&id) {
            Some("revoked")
        } else if load.revoke_sent.contains(&id) {
            None
        } else {
            Some("active")
        };
        match (listed.get(&id), want) {
            (None, _) => lost.push(format!("account {id} is gone")),
            (Some(have), Some(want)) if have != want => {
                lost.push(format!("account {id} is {have}, acknowledged {want}"))
            }
            _ => {}
        }
    }
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // (a) Acknowledged revocations are refused by both replicas; (b) so are those made
    // before the failover.
    let mut revoked: Vec<&str> = load
        .created
        .iter()
        .filter(|c| load.revoked.contains(&c.identity_id))
        .map(|c| c.token.as_str())
        .collect();
    revoked.extend(&revoked_before);
    let accepted = replicas.accepting(&revoked).await;
    assert!(accepted.is_empty(), "revoked, yet accepted: {accepted:?}");

    // Tokens issued and never revoked work on both replicas, whichever primary signed them in.
    let unrevoked = load
        .created
        .iter()
        .filter(|c| !load.revoke_sent.contains(&c.identity_id))
        .map(|c| c.token.as_str())
        .chain(before.iter().skip(1).step_by(2).map(String::as_str));
    for token in unrevoked {
        for i in 0..replicas.servers.len() {
            let (status, body) = replicas.whoami(i, token).await;
            assert_eq!(status, Some(StatusCode::OK), "replica {i}: {body}");
        }
    }
    // (d) While it happened: 503 with a storage code (or, past the staleness bound, a stale
    // revocation state), never a 500, never a hang.
    let unexpected: Vec<&String> = responses
        .keys()
        .filter(|k| {
            !(k.ends_with(" 201")
                || k.ends_with(" 200")
                || k.ends_with(" 503 storage_unavailable")
                || k.ends_with(" 503 revocation_state_stale"))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "clients must see 2xx or 503 storage_unavailable during a failover, saw {unexpected:?}"
    );
    eprintln!(
        "failover: the test took {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
}

/// The promoted standby may hand out transaction ids lower than the old primary's: ids the
/// old primary gave to transactions whose WAL never reached the standby (aborts are not
/// waited for) are given again. A replica that kept polling `txid >= cursor` with a cursor
/// taken on the old primary would never see a revocation written with such an id.
#[actix_web::test]
async fn a_revocation_after_the_failover_reaches_every_replica_though_transaction_ids_go_back() {
    let Some(deployment) = Deployment::start().await else {
        return;
    };
    let replicas = deployment.replicas.clone();
    let mut accounts = Vec::new();
    for n in 0..3 {
        accounts.push(replicas.create_ok(0, &format!("sensor:reused-{n}")).await);
    }

    // Nothing commits from here to the crash: wait until the admin token's use is recorded
    // (every 5 s), and the WAL writer waits 10 s. Then transaction ids the standby never
    // hears of: assigned, rolled back, their abort records in the primary's WAL buffers.
    let db = deployment.db.clone();
    deployment
        .on_cluster(move |c| {
            let start = Instant::now();
            let used = "SELECT count(*) FROM identity WHERE last_used_at IS NOT NULL";
            while c.query_in(&c.primary, &db, used) == "0" {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "use not recorded"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            c.query(&c.primary, "ALTER SYSTEM SET wal_writer_delay = '10s'");
            c.query(&c.primary, "SELECT pg_reload_conf()");
            c.query(
                &c.primary,
                &"BEGIN; SELECT pg_current_xact_id(); ROLLBACK; ".repeat(200),
            );
        })
        .await;
    // Both replicas poll (every 250 ms) past those ids; then the failover.
    tokio::time::sleep(Duration::from_secs(1)).await;
    deployment
        .on_cluster(|c| {
            c.stop_primary();
            c.promote_standby();
        })
        .await;

    // Revoked through replica 0 once writes work again: replica 1 refuses them too.
    for account in &accounts {
        let id = account["identity_id"].as_i64().unwrap();
        let start = Instant::now();
        loop {
            let (status, body) = replicas.revoke(0, id).await;
            if status == Some(StatusCode::OK) {
                break;
            }
            assert!(
                start.elapsed() < RESUME_BOUND,
                "revocations do not resume: {status:?} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let tokens: Vec<&str> = accounts
        .iter()
        .map(|a| a["token"].as_str().unwrap())
        .collect();
    let accepted = replicas.accepting(&tokens).await;
    assert!(
        accepted.is_empty(),
        "revoked after the failover, yet accepted: {accepted:?}"
    );
}
