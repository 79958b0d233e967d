//! A credential cache for Rust sensors: it always answers at once with the current token (or
//! nothing, failing closed once the token has expired), while a background thread renews it
//! through `/auth/refresh` before it expires.
//!
//! ```no_run
//! use tokend::client::{CredentialCache, RenewalPolicy};
//!
//! # let initial_token = String::new();
//! let cache = CredentialCache::start("https://tokend.internal", initial_token, RenewalPolicy::default())?;
//! // On every request, never blocking:
//! if let Some(token) = cache.token() {
//!     // Authorization: Bearer {token}
//! }
//! # Ok::<(), tokend::client::ClientError>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiClient, ClientError};

/// When and how persistently to renew.
#[derive(Debug, Clone, Copy)]
pub struct RenewalPolicy {
    /// Renew when this fraction of the token's lifetime has passed (0.8: with 20 % left).
    pub refresh_at: f64,
    /// The first retry after a failed renewal waits this long, doubling (with jitter) up to
    /// `retry_max`, never past the token's expiry.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            refresh_at: 0.8,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// A token and its times, read from its payload (the server is the one that verifies it).
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub subject: String,
}

#[derive(Deserialize)]
struct Times {
    iat: i64,
    exp: i64,
    sub: String,
}

impl Credential {
    /// Reads a token's `iat`, `exp` and `sub`. `None` for anything that is not a JWT with them.
    pub fn parse(token: &str) -> Option<Credential> {
        let token = token.trim();
        let times: Times = jsonwebtoken::dangerous::insecure_decode_claims(token).ok()?;
        (times.exp > times.iat).then(|| Credential {
            token: token.to_owned(),
            issued_at: times.iat,
            expires_at: times.exp,
            subject: times.sub,
        })
    }

    pub fn is_expired(&self) -> bool {
        now() >= self.expires_at
    }

    /// When a renewal is due under `policy` (UNIX seconds, fractional).
    pub fn renew_at(&self, policy: &RenewalPolicy) -> f64 {
        let life = (self.expires_at - self.issued_at) as f64;
        self.issued_at as f64 + life * policy.refresh_at.clamp(0.0, 1.0)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What a renewal produced, for whoever needs to know (the agent writes files).
pub type OnRenew = Box<dyn Fn(&Credential) + Send + Sync>;

struct Shared {
    current: ArcSwapOption<Credential>,
    stop: AtomicBool,
    wake: (Mutex<()>, Condvar),
}

/// The current token, renewed in the background. Cheap to clone; the renewal thread stops
/// when [`CredentialCache::stop`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct CredentialCache {
    shared: Arc<Shared>,
    _guard: Arc<StopOnDrop>,
}

struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake.1.notify_all();
    }
}

impl CredentialCache {
    /// Starts renewing `token` against the tokend at `base_url`.
    pub fn start(
        base_url: &str,
        token: String,
        policy: RenewalPolicy,
    ) -> Result<CredentialCache, ClientError> {
        Self::start_with(base_url, token, policy, None)
    }

    /// Like [`CredentialCache::start`], calling `on_renew` after each successful renewal.
    pub fn start_with(
        base_url: &str,
        token: String,
        policy: RenewalPolicy,
        on_renew: Option<OnRenew>,
    ) -> Result<CredentialCache, ClientError> {
        let credential = Credential::parse(&token).ok_or_else(|| ClientError::Refused {
            status: 0,
            code: "invalid_token".into(),
            message: "the token is not a JWT with iat and exp".into(),
        })?;
        let shared = Arc::new(Shared {
            current: ArcSwapOption::from_pointee(credential),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(()), Condvar::new()),
        });
        let api = ApiClient::new(base_url, None);
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("tokend-renewal".into())
            .spawn(move || renew_forever(&worker, &api, policy, on_renew))
            .map_err(|e| ClientError::Transport {
                url: base_url.to_owned(),
                reason: format!("cannot start the renewal thread: {e}"),
            })?;
        Ok(CredentialCache {
            _guard: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    /// The current token, or `None` once it has expired (fail closed). Never blocks.
    pub fn token(&self) -> Option<String> {
        self.credential().map(|c| c.token.clone())
    }

    /// The current credential, or `None` once it has expired.
    pub fn credential(&self) -> Option<Arc<Credential>> {
        self.shared.current.load_full().filter(|c| !c.is_expired())
    }

    /// Stops the renewal thread.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.1.notify_all();
    }
}

/// Sleeps up to `d`, waking early when stopped. Returns whether to go on.
fn nap(shared: &Shared, d: Duration) -> bool {
    let guard = shared.wake.0.lock().unwrap_or_else(|p| p.into_inner());
    let _ = shared
        .wake
        .1
        .wait_timeout_while(guard, d, |_| !shared.stop.load(Ordering::SeqCst));
    !shared.stop.load(Ordering::SeqCst)
}

fn renew_forever(
    shared: &Shared,
    api: &ApiClient,
    policy: RenewalPolicy,
    on_renew: Option<OnRenew>,
) {
    let mut failures: u32 = 0;
    loop {
        let Some(current) = shared.current.load_full() else {
            return;
        };
        let wait = if failures == 0 {
            (current.renew_at(&policy) - now_f64()).max(0.0)
        } else {
            let exp = policy.retry_min.as_secs_f64() * 2f64.powi(failures.min(20) as i32 - 1);
            let jitter = rand::thread_rng().gen_range(0.8..1.2);
            let until_expiry = (current.expires_at as f64 - now_f64()).max(0.0);
            (exp.min(policy.retry_max.as_secs_f64()) * jitter).min(until_expiry.max(0.05))
        };
        if !nap(shared, Duration::from_secs_f64(wait)) {
            return;
        }
        if current.is_expired() {
            log::error!(
                "the token for {} expired at {} and could not be renewed; failing closed",
                current.subject,
                current.expires_at
            );
        }
        match api
            .with_token(current.token.clone())
            .post("/auth/refresh", &json!({}))
        {
            Ok(body) => {
                let fresh = body["token"].as_str().and_then(Credential::parse);
                match fresh {
                    // Never take a token that is already expired or not a token at all.
                    Some(fresh)
                        if !fresh.is_expired() && fresh.expires_at > current.expires_at - 1 =>
                    {
                        log::info!(
                            "renewed the token for {}; it now expires at {}",
                            fresh.subject,
                            fresh.expires_at
                        );
                        let fresh = Arc::new(fresh);
                        shared.current.store(Some(fresh.clone()));
                        if let Some(callback) = &on_renew {
                            callback(&fresh);
                        }
                        failures = 0;
                    }
                    _ => {
                        log::error!("tokend answered the refresh with an unusable token; keeping the current one");
                        failures += 1;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if e.status() == Some(401) || e.status() == Some(403) {
                    log::error!(
                        "tokend refuses to renew the token for {}: {e}",
                        current.subject
                    );
                } else {
                    log::warn!(
                        "renewing the token for {} failed (attempt {failures}): {e}",
                        current.subject
                    );
                }
            }
        }
    }
}
