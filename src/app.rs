//! Building the server: used by `tokend serve` and by the tests alike.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};

use crate::accounts::hasher::Hasher;
use crate::accounts::passwords::Passwords;
use crate::accounts::throttle::{LoginThrottle, ThrottlePolicy};
use crate::config::Settings;
use crate::db::coalesce::Coalescer;
use crate::db::{self, DbError, DbManager, Pool};
use crate::error::cause_chain;
use crate::state::AppState;
use crate::tokens::revocation::{self, RevocationSet};
use crate::tokens::{KeyError, KeyStore, TokenService};
use crate::usage::UsageRecorder;

/// Why tokend could not start. The message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("database: {}", cause_chain(.0))]
    Database(#[from] DbError),
    #[error("signing keys: {}", cause_chain(.0))]
    Keys(#[from] KeyError),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// The database opened and migrated, keys loaded, revocations loaded.
pub struct Opened {
    pub pool: Pool,
    pub manager: DbManager,
    pub tokens: Arc<TokenService>,
    pub revocations: Arc<RevocationSet>,
    pub keys: Arc<KeyStore>,
    pub cursor: db::queries::revocations::Cursor,
}

/// Opens the database (waiting for it if needed), runs migrations, loads or creates the
/// signing keys and loads the revocation set. Blocking.
pub fn open(settings: &Settings) -> Result<Opened, StartError> {
    let manager = DbManager::new(settings.database.clone());
    let pool = db::connect_pool(
        &manager,
        settings.pool_size,
        settings.db_pool_timeout,
        settings.db_wait,
    )?;
    let mut conn = pool.get().map_err(DbError::from)?;
    let applied = db::run_migrations(&mut conn)?;
    if applied > 0 {
        log::info!("applied {applied} database migrations");
    }
    let keys = Arc::new(KeyStore::load_or_create(&mut conn, settings)?);
    let revocations = Arc::new(RevocationSet::with_bounds(
        settings.revocation_max_staleness,
        settings.max_clock_skew,
    ));
    let cursor =
        revocation::load(&mut conn, &revocations, settings.leeway).map_err(DbError::from)?;
    let tokens = Arc::new(TokenService::new(
        keys.clone(),
        revocations.clone(),
        settings.issuer.clone(),
        settings.audience.clone(),
        settings.leeway,
        settings.scopes.clone(),
    ));
    Ok(Opened {
        pool,
        manager,
        tokens,
        revocations,
        keys,
        cursor,
    })
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Opens everything, binds the listener and starts the background jobs (revocation sync,
    /// cleanup) on the current runtime.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        crate::telemetry::install();
        // TLS files first: a wrong path fails start-up before the database is touched.
        let tls = settings
            .tls
            .as_ref()
            .map(crate::tls::Tls::load)
            .transpose()?;
        let settings = Arc::new(settings);
        let opening = settings.clone();
        let opened = web::block(move || open(&opening))
            .await
            .map_err(|e| StartError::Config(format!("start-up task failed: {e}")))??;
        let listener =
            TcpListener::bind(&settings.listen).map_err(|source| StartError::Listen {
                addr: settings.listen.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Listen {
                addr: settings.listen.clone(),
                source,
            })?
            .port();
        let passwords = Passwords::new(settings.argon2).map_err(StartError::Config)?;
        let hasher = Hasher::start(
            passwords,
            settings.password_workers,
            settings.password_queue,
        )
        .map_err(|e| {
            StartError::Config(format!("cannot start the password hashing threads: {e}"))
        })?;
        let logins = Arc::new(LoginThrottle::new(ThrottlePolicy::from_settings(&settings)));
        let usage = Arc::new(UsageRecorder::new());
        let push = crate::tokens::push::start(&settings).map_err(StartError::Config)?;
        // SQLite: one writer that batches. PostgreSQL: each grant in its own transaction.
        let group = crate::db::group_commit::GroupCommit::start(
            opened.pool.clone(),
            settings.database.is_postgres(),
            crate::db::deadlines::request_deadline(&settings),
        )
        .map_err(|e| StartError::Config(format!("cannot start the group-commit writer: {e}")))?;
        // SQLite has one writer: one batch at a time, the next forming meanwhile. PostgreSQL
        // commits side by side, so a few batches go at once (each holds a connection).
        let batches_in_flight = if settings.database.is_postgres() {
            (settings.pool_size as usize / 3).clamp(1, 4)
        } else {
            1
        };
        let state = web::Data::new(AppState {
            pool: opened.pool.clone(),
            manager: opened.manager.clone(),
            settings: settings.clone(),
            tokens: opened.tokens.clone(),
            hasher: Arc::new(hasher),
            logins: logins.clone(),
            usage: usage.clone(),
            push: push.clone(),
            group: Arc::new(group),
            creations: Coalescer::new(batches_in_flight),
            account_revocations: Coalescer::new(batches_in_flight),
            jwks: Arc::new(crate::federation::JwksCache::new(
                settings.oauth.jwks_cache.clone(),
            )),
        });
        let app_state = state.clone();
        let (tls_config, tls_cert, required_paths) = match tls {
            Some(tls) => (Some(tls.config), Some(tls.cert), tls.required_paths),
            None => (None, None, crate::tls::RequiredPaths::default()),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(required_paths.clone())
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Cache-Control", "no-store")),
                )
                .wrap(actix_web::middleware::from_fn(
                    crate::routes::extract::limits,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::tls::client_certs::require_client_cert,
                ))
                .wrap(actix_web::middleware::from_fn(
                    crate::routes::access_log::access,
                ))
                .configure(crate::routes::configure)
                .default_service(web::to(crate::routes::extract::not_found))
        })
        // Before any listener: a TLS connection's client certificate, for `require_client_cert`.
        .on_connect(crate::tls::client_certs::on_connect);
        let mut server = match tls_config {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|source| StartError::Listen {
            addr: settings.listen.clone(),
            source,
        })?;
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        server = server.shutdown_timeout(settings.shutdown_timeout.as_secs());
        let server = server.run();
        actix_web::rt::spawn(revocation::sync_forever(
            opened.manager.clone(),
            opened.revocations.clone(),
            opened.cursor,
            settings.revocation_sync_interval,
            settings.leeway,
            push,
        ));
        actix_web::rt::spawn(crate::tokens::freshness::watch_forever(
            opened.revocations.freshness().clone(),
        ));
        actix_web::rt::spawn(crate::tokens::keys::sync_forever(
            opened.manager.clone(),
            opened.keys.clone(),
            settings.revocation_sync_interval,
            settings.key_rotation_period,
            settings.max_token_lifetime(),
            settings.jwks_max_age,
            opened.revocations.freshness().clone(),
        ));
        actix_web::rt::spawn(crate::usage::flush_forever(opened.pool.clone(), usage));
        actix_web::rt::spawn(crate::accounts::throttle::flush_forever(
            opened.pool.clone(),
            logins,
        ));
        let (tokens, leeway) = (opened.tokens.clone(), settings.leeway.as_secs() as i64);
        actix_web::rt::spawn(async move {
            // Keep the verified-token cache to live tokens of the current keys.
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                ticker.tick().await;
                tokens.prune_verified(chrono::Utc::now().timestamp() - leeway);
            }
        });
        actix_web::rt::spawn(crate::telemetry::upkeep_forever());
        if let Some(cert) = tls_cert {
            actix_web::rt::spawn(cert.watch_forever());
        }
        if let Some(hook) = settings.expiry_webhook.clone() {
            log::info!(
                "expiry warnings go to {} ({:?} before expiry)",
                hook.url,
                hook.thresholds
            );
            actix_web::rt::spawn(crate::notify::run_forever(opened.pool.clone(), hook));
        }
        actix_web::rt::spawn(crate::cleanup::run_forever(
            opened.manager.clone(),
            settings.clone(),
        ));
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        log::info!(
            "tokend listening on {scheme}://{} (database {}, {:?})",
            settings.listen.replace(":0", &format!(":{port}")),
            settings.database,
            settings.jwt
        );
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, or the handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
