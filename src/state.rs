//! What every handler gets: [`AppState`], built once by `app.rs`, and [`with_db`], the one
//! way a handler reaches the database. Below the routes, above the domain: it imports the
//! domain's services and never a route.

use std::sync::Arc;

use actix_web::web;

use crate::accounts::batch::{AccountRevocation, Creation};
use crate::accounts::hasher::Hasher;
use crate::accounts::throttle::LoginThrottle;
use crate::accounts::{Issued, Revoked};
use crate::config::Settings;
use crate::db::coalesce::Coalescer;
use crate::db::{self, DbError, DbManager, Pool};
use crate::error::ApiError;
use crate::tokens::push::Push;
use crate::tokens::TokenService;
use crate::usage::UsageRecorder;

/// What every handler can reach.
pub struct AppState {
    pub pool: Pool,
    /// Opens connections outside the pool (jobs that hold advisory locks).
    pub manager: DbManager,
    pub settings: Arc<Settings>,
    pub tokens: Arc<TokenService>,
    /// Password hashing on its own bounded set of threads.
    pub hasher: Arc<Hasher>,
    pub logins: Arc<LoginThrottle>,
    pub usage: Arc<UsageRecorder>,
    /// Whether revocation push works (PostgreSQL's LISTEN).
    pub push: Arc<Push>,
    /// Token grants that arrive together share one transaction.
    pub group: Arc<crate::db::group_commit::GroupCommit>,
    /// Remote JWKS (trusted issuers' keys), fetched and cached.
    pub jwks: Arc<crate::federation::JwksCache>,
    /// `POST /service-accounts` requests that arrive together, written as one batch.
    pub creations: Arc<Coalescer<Creation, Issued, ApiError>>,
    /// `DELETE /service-accounts/{id}` requests that arrive together, written as one batch.
    pub account_revocations: Arc<Coalescer<AccountRevocation, Revoked, ApiError>>,
}

/// Runs `f` with a pooled connection on the blocking pool: the one way handlers reach the
/// database. The caller gets an answer within [`db::deadlines::request_deadline`] whatever the
/// database does: 503 `storage_unavailable` when it did not answer in time (a frozen
/// connection can hold a checkout for as long as its `tcp_user_timeout`, once per pooled
/// connection it tries).
pub async fn with_db<T, F>(state: &web::Data<AppState>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&AppState, &mut db::DbConnection) -> Result<T, ApiError> + Send + 'static,
{
    let deadline = db::deadlines::request_deadline(&state.settings);
    let state = state.clone();
    // Writes must reach their commit a second before the caller stops waiting, so a commit
    // under way has time to be answered: a 503 then means "not applied" but for that second.
    let until =
        std::time::Instant::now() + deadline.saturating_sub(std::time::Duration::from_secs(1));
    let work = web::block(move || {
        db::with_deadline(until, || {
            let mut conn = state.pool.get().map_err(DbError::from)?;
            f(&state, &mut conn)
        })
    });
    match tokio::time::timeout(deadline, work).await {
        Ok(done) => done?,
        Err(_) => Err(ApiError::unavailable(
            "database",
            &DbError::Unavailable(format!(
                "no answer within {}s; a write still under way rolls back unless it was already committing",
                deadline.as_secs()
            )),
        )),
    }
}
