//! `GET /metrics`: Prometheus text exposition (see [`crate::telemetry`] for the metrics).

use actix_web::{web, HttpResponse};

use crate::db::queries::{identities, revocations};
use crate::scope::Scope;
use crate::state::{with_db, AppState};
use crate::telemetry;
use crate::time;

/// Prometheus metrics: tokens issued, verifications by outcome, revocations, refreshes,
/// logins, cleanup runs, HTTP latency by route, revocation set and table size, and the
/// earliest expiry per scope.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let freshness = state.tokens.revocations().freshness();
    telemetry::set_freshness(freshness.sync_age().as_secs_f64(), freshness.skew_secs());
    let gauges = with_db(&state, |_, conn| {
        let now = time::to_db(time::now());
        let rows = revocations::count(conn)?;
        let mut earliest = Vec::new();
        for scope in Scope::ALL {
            let at = identities::earliest_expiry(conn, scope.as_str(), now)?;
            earliest.push((scope, at.map(|t| t.and_utc().timestamp())));
        }
        Ok((rows, earliest))
    })
    .await;
    match gauges {
        Ok((rows, earliest)) => {
            telemetry::set_gauges(state.tokens.revocations().len(), rows, &earliest)
        }
        // The counters are still worth scraping when the database is down.
        Err(e) => log::warn!("metrics: database gauges unavailable: {e}"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(telemetry::render())
}
