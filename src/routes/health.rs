//! Liveness and readiness.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "tokend is running", body = HealthResponse)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

/// Whether this replica should get traffic, and each reason why not.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "not_ready", "checks": {
    "database": {"ok": true},
    "storage": {"ok": true},
    "revocation_sync": {"ok": false, "age_seconds": 12.4, "max_staleness_seconds": 10.0,
        "message": "this replica last synchronised revocations 12.4s ago …"},
    "clock": {"ok": true, "skew_seconds": 0.002, "max_skew_seconds": 5.0}}}))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub checks: ReadyChecks,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The database answers a query within 2 s.
    pub database: ReadyCheck,
    /// Storage takes writes: not a PostgreSQL standby or read-only; the SQLite file is the
    /// one opened at start, on a writable file system with room.
    pub storage: ReadyCheck,
    /// The last completed revocation sync is within `TOKEND_REVOCATION_MAX_STALENESS`.
    pub revocation_sync: ReadyCheck,
    /// This host's clock is within `TOKEND_MAX_CLOCK_SKEW` of the database's.
    pub clock: ReadyCheck,
}

#[derive(Serialize, ToSchema, Default)]
pub struct ReadyCheck {
    pub ok: bool,
    /// Why the check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_staleness_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_skew_seconds: Option<f64>,
}

impl ReadyCheck {
    fn from_result(result: Result<(), String>) -> ReadyCheck {
        ReadyCheck {
            ok: result.is_ok(),
            message: result.err(),
            ..ReadyCheck::default()
        }
    }
}

/// How long the database probe may take: a load balancer is waiting.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// Ready to serve: the database answers, storage takes writes, the revocation state is
/// current and the clock agrees with the database's. 503 with the same body, saying which
/// check failed, otherwise.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "ready to serve", body = Readiness),
        (status = 503, description = "not ready: see the failing checks", body = Readiness),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let (pool, manager) = (state.pool.clone(), state.manager.clone());
    let probe = actix_web::rt::task::spawn_blocking(move || {
        // Less than the whole deadline: when no connection can be had, the answer says why
        // (the pool's last connection error, e.g. a vanished SQLite file) instead of only
        // that the deadline passed.
        let mut conn = pool
            .get_timeout(PROBE_DEADLINE * 3 / 4)
            .map_err(|e| format!("no database connection: {e}"))?;
        crate::db::ping(&mut conn).map_err(|e| format!("the database does not answer: {e}"))?;
        Ok::<_, String>(manager.writable(&mut conn))
    });
    let (database, storage) = match tokio::time::timeout(PROBE_DEADLINE, probe).await {
        Ok(Ok(Ok(writable))) => (Ok(()), writable),
        Ok(Ok(Err(e))) => (Err(e.clone()), Err(e)),
        Ok(Err(e)) => (Err(format!("probe failed: {e}")), Err("unknown".into())),
        Err(_) => {
            let e = format!(
                "the database did not answer within {}s",
                PROBE_DEADLINE.as_secs()
            );
            (Err(e.clone()), Err(e))
        }
    };
    let freshness = state.tokens.revocations().freshness();
    let checks = ReadyChecks {
        database: ReadyCheck::from_result(database),
        storage: ReadyCheck::from_result(storage),
        revocation_sync: ReadyCheck {
            age_seconds: Some(round3(freshness.sync_age().as_secs_f64())),
            max_staleness_seconds: Some(freshness.max_staleness().as_secs_f64()),
            ..ReadyCheck::from_result(freshness.check_sync().map_err(|e| e.to_string()))
        },
        clock: ReadyCheck {
            skew_seconds: Some(round3(freshness.skew_secs())),
            max_skew_seconds: Some(freshness.max_skew().as_secs_f64()),
            ..ReadyCheck::from_result(freshness.check_clock().map_err(|e| e.to_string()))
        },
    };
    let ok = [
        &checks.database,
        &checks.storage,
        &checks.revocation_sync,
        &checks.clock,
    ]
    .iter()
    .all(|c| c.ok);
    let body = Readiness {
        status: if ok { "ready" } else { "not_ready" },
        checks,
    };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
