//! What tokend tells its operators: Prometheus metrics (`GET /metrics`) and the access log.
//!
//! Metric names (all prefixed `tokend_`):
//! - `tokens_issued_total{scope}`, `refreshes_total`, `revocations_total` (tokens refused from
//!   now on), `logins_total{outcome}`;
//! - `verifications_total{outcome}`: `ok`, `expired`, `revoked`, `invalid`, `insufficient_scope`,
//!   `unavailable` (refused for stale revocation state or clock skew);
//! - `cleanup_runs_total{trigger}`, `cleanup_deleted_rows_total{table}`,
//!   `cleanup_duration_seconds` (histogram);
//! - `http_request_duration_seconds{method,route,status}` (histogram);
//! - gauges, refreshed at each scrape: `revocation_set_size`, `revocation_rows`,
//!   `earliest_expiry_timestamp_seconds{scope}` (the soonest expiry among active service
//!   accounts of the scope; `+Inf` when there is none), `revocation_sync_age_seconds` (since
//!   the last completed revocation sync), `clock_skew_seconds` (database clock minus this
//!   host's);
//! - OAuth 2.0: `oauth_token_requests_total{grant_type,outcome}` (`grant_type`:
//!   `client_credentials`, `token_exchange`, `jwt_bearer`, `unsupported`; `outcome`: `ok` or
//!   the RFC 6749 error code); `group_commit_batch_size` (histogram: token grants that shared
//!   one transaction, see `db::group_commit`);
//! - revocation push (PostgreSQL): `revocation_push_notifications_total` (notifications heard),
//!   `revocation_push_active` (1 while the listener hears them, 0 while revocations of other
//!   replicas arrive by the poll alone; absent on SQLite).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::scope::Scope;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// `verifications_total` by outcome, registered once: counted on every request, so the hot
/// path skips building and looking up a metric key.
static VERIFICATIONS: OnceLock<[Counter; 6]> = OnceLock::new();

thread_local! {
    /// This worker's latency histograms by (method, route, status), registered on first use.
    static LATENCY: RefCell<HashMap<(&'static str, &'static str, u16), Histogram, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// Installs the Prometheus recorder once per process (tests start several servers).
pub fn install() {
    HANDLE.get_or_init(|| {
        let latency = [
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("tokend_http_request_duration_seconds".into()),
                &latency,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("tokend_cleanup_duration_seconds".into()),
                    &[0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0],
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("tokend_group_commit_batch_size".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
            });
        match builder.map(|b| b.install_recorder()) {
            Ok(Ok(handle)) => {
                VERIFICATIONS.get_or_init(|| {
                    VERIFICATION_OUTCOMES
                        .map(|outcome| counter!("tokend_verifications_total", "outcome" => outcome))
                });
                describe_core();
                describe_push();
                describe_oauth();
                Some(handle)
            }
            Ok(Err(e)) => {
                log::warn!("metrics disabled: {e}");
                None
            }
            Err(e) => {
                log::warn!("metrics disabled: {e}");
                None
            }
        }
    });
}

/// Folds the latency samples recorded since the last call into the histograms. Without it
/// they pile up in memory until the next scrape, however long that takes.
pub fn upkeep() {
    if let Some(Some(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// [`upkeep`] every five seconds, off the request workers.
pub async fn upkeep_forever() {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let _ = actix_web::rt::task::spawn_blocking(upkeep).await;
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// How a presented token fared.
#[derive(Debug, Clone, Copy)]
pub enum Verification {
    Ok,
    Expired,
    Revoked,
    Invalid,
    InsufficientScope,
    /// Refused because this replica cannot judge tokens now (stale state, clock skew).
    Unavailable,
}

/// The `outcome` label of each [`Verification`], in the order of its variants.
const VERIFICATION_OUTCOMES: [&str; 6] = [
    "ok",
    "expired",
    "revoked",
    "invalid",
    "insufficient_scope",
    "unavailable",
];

pub fn verification(outcome: Verification) {
    // Without an installed recorder there is nothing to count.
    if let Some(counters) = VERIFICATIONS.get() {
        counters[outcome as usize].increment(1);
    }
}

pub fn token_issued(scope: Scope) {
    counter!("tokend_tokens_issued_total", "scope" => scope.as_str()).increment(1);
}

pub fn tokens_revoked(n: usize) {
    counter!("tokend_revocations_total").increment(n as u64);
}

pub fn refreshed() {
    counter!("tokend_refreshes_total").increment(1);
}

pub fn login(outcome: &'static str) {
    counter!("tokend_logins_total", "outcome" => outcome).increment(1);
}

pub fn cleanup(trigger: &'static str, revocations: u64, tokens: u64, seconds: f64) {
    counter!("tokend_cleanup_runs_total", "trigger" => trigger).increment(1);
    counter!("tokend_cleanup_deleted_rows_total", "table" => "token_revocation")
        .increment(revocations);
    counter!("tokend_cleanup_deleted_rows_total", "table" => "issued_token").increment(tokens);
    histogram!("tokend_cleanup_duration_seconds").record(seconds);
}

/// Gauges read at scrape time.
pub fn set_gauges(set_size: usize, revocation_rows: i64, earliest: &[(Scope, Option<i64>)]) {
    gauge!("tokend_revocation_set_size").set(set_size as f64);
    gauge!("tokend_revocation_rows").set(revocation_rows as f64);
    for (scope, at) in earliest {
        let value = at.map_or(f64::INFINITY, |t| t as f64);
        gauge!("tokend_earliest_expiry_timestamp_seconds", "scope" => scope.as_str()).set(value);
    }
}

/// Freshness gauges, read at scrape time.
pub fn set_freshness(sync_age_secs: f64, clock_skew_secs: f64) {
    gauge!("tokend_revocation_sync_age_seconds").set(sync_age_secs);
    gauge!("tokend_clock_skew_seconds").set(clock_skew_secs);
}

/// The pattern of the route that served a request, set as resource data by
/// [`crate::routes::configure`]: the access log's `route` label.
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// One latency sample of `tokend_http_request_duration_seconds` (see `routes/access_log.rs`).
pub fn record_latency(method: &'static str, route: &'static str, status: u16, seconds: f64) {
    if !matches!(HANDLE.get(), Some(Some(_))) {
        return;
    }
    LATENCY.with(|cache| {
        cache
            .borrow_mut()
            .entry((method, route, status))
            .or_insert_with(|| {
                histogram!(
                    "tokend_http_request_duration_seconds",
                    "method" => method,
                    "route" => route,
                    "status" => status.to_string()
                )
            })
            .record(seconds);
    });
}

/// Whether access-log lines are written (`RUST_LOG` enables `tokend::access` at info).
pub fn access_log_enabled() -> bool {
    log::log_enabled!(target: "tokend::access", log::Level::Info)
}

/// The identity a request authenticated as, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct RequestIdentity(pub i64);

/// Help texts of the push metrics, and the counter at zero from the start.
fn describe_push() {
    describe_counter!(
        "tokend_revocation_push_notifications_total",
        "Revocation notifications heard by this replica's listener (PostgreSQL LISTEN)"
    );
    describe_gauge!(
        "tokend_revocation_push_active",
        "1 while the revocation listener hears notifications; 0 while revocations of other \
         replicas arrive by the poll alone (see TOKEND_DATABASE_LISTEN_URL)"
    );
    counter!("tokend_revocation_push_notifications_total").absolute(0);
}

/// A revocation notification was heard.
pub fn push_notification() {
    counter!("tokend_revocation_push_notifications_total").increment(1);
}

/// Whether revocation push works on this replica.
pub fn push_active(active: bool) {
    gauge!("tokend_revocation_push_active").set(if active { 1.0 } else { 0.0 });
}

/// The `grant_type` labels of `tokend_oauth_token_requests_total`.
pub const OAUTH_GRANTS: [&str; 4] = [
    "client_credentials",
    "token_exchange",
    "jwt_bearer",
    "unsupported",
];

/// The `outcome` labels of `tokend_oauth_token_requests_total`: `ok` or an RFC 6749 error.
pub const OAUTH_OUTCOMES: [&str; 12] = [
    "ok",
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "slow_down",
    "temporarily_unavailable",
    "server_error",
];

/// Help texts of the OAuth metrics, every series at zero from the start (alerts on a rate
/// must not wait for the first event after a restart).
fn describe_oauth() {
    describe_histogram!(
        "tokend_group_commit_batch_size",
        "Token grants written in one transaction by the group-commit writer"
    );
    describe_counter!(
        "tokend_oauth_token_requests_total",
        "Requests to POST /oauth2/token by grant type and outcome (ok or the RFC 6749 error)"
    );
    for grant in OAUTH_GRANTS {
        for outcome in OAUTH_OUTCOMES {
            counter!("tokend_oauth_token_requests_total", "grant_type" => grant, "outcome" => outcome)
                .absolute(0);
        }
    }
}

/// A token endpoint request ended (`outcome`: `ok` or the error code).
pub fn oauth_token(grant_type: &'static str, outcome: &'static str) {
    counter!("tokend_oauth_token_requests_total", "grant_type" => grant_type, "outcome" => outcome)
        .increment(1);
}

/// One group-commit transaction took `jobs` writes.
pub fn group_commit_batch(jobs: usize) {
    histogram!("tokend_group_commit_batch_size").record(jobs as f64);
}

/// The `outcome` labels of `tokend_logins_total`.
pub const LOGIN_OUTCOMES: [&str; 4] = ["success", "invalid_credentials", "throttled", "error"];

/// Help texts of the core metrics, and every counter series at zero from the start, so that
/// `promtool check metrics` is clean and a rate alert works right after a restart.
fn describe_core() {
    describe_counter!(
        "tokend_verifications_total",
        "Token checks by outcome: ok, expired, revoked, invalid, insufficient_scope, unavailable"
    );
    describe_counter!("tokend_tokens_issued_total", "Tokens issued, by scope");
    describe_counter!(
        "tokend_refreshes_total",
        "Tokens refreshed at /auth/refresh"
    );
    describe_counter!(
        "tokend_revocations_total",
        "Tokens this replica started refusing because they were revoked here"
    );
    describe_counter!(
        "tokend_logins_total",
        "Logins at /auth/login by outcome: success, invalid_credentials, throttled, error"
    );
    describe_counter!(
        "tokend_cleanup_runs_total",
        "Cleanup runs by trigger: scheduled, on_demand"
    );
    describe_counter!(
        "tokend_cleanup_deleted_rows_total",
        "Rows the cleanup deleted, by table"
    );
    describe_histogram!(
        "tokend_cleanup_duration_seconds",
        "How long a cleanup run took"
    );
    describe_histogram!(
        "tokend_http_request_duration_seconds",
        "HTTP request latency by method, route pattern and status"
    );
    describe_gauge!(
        "tokend_revocation_set_size",
        "Revoked, unexpired tokens held in this replica's in-memory set"
    );
    describe_gauge!(
        "tokend_revocation_rows",
        "Rows of the token_revocation table (read at scrape time)"
    );
    describe_gauge!(
        "tokend_earliest_expiry_timestamp_seconds",
        "The soonest expiry among active service accounts of the scope (Unix seconds; +Inf: none)"
    );
    describe_gauge!(
        "tokend_revocation_sync_age_seconds",
        "Seconds since this replica's last completed revocation sync"
    );
    describe_gauge!(
        "tokend_clock_skew_seconds",
        "The database's clock minus this host's, in seconds"
    );
    for scope in Scope::ALL {
        counter!("tokend_tokens_issued_total", "scope" => scope.as_str()).absolute(0);
    }
    counter!("tokend_refreshes_total").absolute(0);
    counter!("tokend_revocations_total").absolute(0);
    for outcome in LOGIN_OUTCOMES {
        counter!("tokend_logins_total", "outcome" => outcome).absolute(0);
    }
    for trigger in ["scheduled", "on_demand"] {
        counter!("tokend_cleanup_runs_total", "trigger" => trigger).absolute(0);
    }
    for table in ["token_revocation", "issued_token"] {
        counter!("tokend_cleanup_deleted_rows_total", "table" => table).absolute(0);
    }
}
