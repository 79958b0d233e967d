//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::ApiError;

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

/// The database answers: tokend can issue and revoke.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses(
        (status = 200, description = "ready to serve", body = HealthResponse),
        (status = 503, description = "the database does not answer", body = crate::error::ErrorBody),
    ))]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let pool = state.pool.clone();
    web::block(move || -> Result<(), ApiError> {
        // Answer quickly: a load balancer is waiting.
        let mut conn = pool
            .get_timeout(std::time::Duration::from_secs(2))
            .map_err(crate::db::DbError::from)?;
        crate::db::ping(&mut conn).map_err(|e| ApiError::unavailable("readiness check", &e))
    })
    .await??;
    Ok(HttpResponse::Ok().json(HealthResponse { status: "ready" }))
}
