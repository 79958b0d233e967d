//! Maintenance on demand.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::auth::Admin;
use crate::cleanup::{self, CleanupReport, Trigger};
use crate::error::{ApiError, ErrorBody};

/// Prunes revocations of expired tokens (and long-expired token records) now.
#[utoipa::path(post, path = "/admin/cleanup", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what was deleted", body = CleanupReport),
        (status = 401, description = "missing or bad token", body = ErrorBody),
        (status = 403, description = "not an admin token", body = ErrorBody),
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
    .await??
    .unwrap_or_default();
    Ok(HttpResponse::Ok().json(report))
}
