//! Maintenance on demand.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Admin;
use crate::cleanup::{self, CleanupReport, Skipped, Trigger};
use crate::error::{ApiError, Code, ErrorBody};
use crate::state::AppState;

/// Prunes revocations of expired tokens (and long-expired token records) now.
#[utoipa::path(post, path = "/admin/cleanup", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what was deleted", body = CleanupReport),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
        (status = 409, description = "the cleanup did not run: another replica is running it (cleanup_not_run)", body = ErrorBody),
        (status = 503, description = "the cleanup did not run: this host's clock is off (clock_skew), or the database is unavailable", body = ErrorBody),
    ))]
pub async fn run_cleanup(
    state: web::Data<AppState>,
    Admin(principal): Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let actor = principal.actor(&req);
    let state = state.into_inner();
    let report = web::block(move || {
        cleanup::run(&state.manager, &state.settings, Trigger::OnDemand, &actor)
    })
    .await??;
    match report {
        Ok(report) => Ok(HttpResponse::Ok().json(report)),
        Err(skipped @ Skipped::ClockSkew { .. }) => {
            Err(ApiError::new(Code::ClockSkew, skipped.to_string()).retry_after(60))
        }
        Err(skipped) => Err(ApiError::new(Code::CleanupNotRun, skipped.to_string()).retry_after(5)),
    }
}
