//! The `tokend` flags and their `TOKEND_*` variables, and how they become [`Settings`]: every
//! value is checked here once, and errors name the variable at fault.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use super::{
    Argon2Cost, Database, ExchangePolicy, ExpiryWebhook, JwtAlgorithm, ListenUrl, Settings,
    TlsSettings, TrustedProxies,
};
use crate::scope::Scope;

/// Flags shared by every command that opens the database (`serve`, `migrate`, `admin-token`,
/// `cleanup`). Each has a `TOKEND_*` environment variable.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Database URL: postgres://… for PostgreSQL, or a SQLite file path.
    /// Falls back to DATABASE_URL, then to DATA_DIR/tokend.db.
    #[arg(long, env = "TOKEND_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded SQLite database and the key-encryption key file.
    #[arg(long, env = "TOKEND_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Signing algorithm: EdDSA (Ed25519, default) or HS256 (shared secret).
    #[arg(long, env = "TOKEND_JWT_ALG", default_value = "EdDSA")]
    pub jwt_alg: String,

    /// HS256 shared secret (at least 32 bytes). Only with --jwt-alg HS256.
    #[arg(long, env = "TOKEND_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `iss` claim of issued tokens, checked on verification.
    #[arg(long, env = "TOKEND_ISSUER", default_value = "tokend")]
    pub issuer: String,

    /// `aud` claim of issued tokens, checked on verification.
    #[arg(long, env = "TOKEND_AUDIENCE", default_value = "tokend")]
    pub audience: String,

    /// Clock-skew leeway for exp and nbf (e.g. 30s).
    #[arg(long, env = "TOKEND_LEEWAY", default_value = "30s")]
    pub leeway: String,

    /// How often expired revocation rows are pruned (e.g. 1h).
    #[arg(long, env = "TOKEND_CLEANUP_INTERVAL", default_value = "1h")]
    pub cleanup_interval: String,

    /// How long issued-token records are kept after their token expired (e.g. 30d).
    #[arg(long, env = "TOKEND_TOKEN_RETENTION", default_value = "30d")]
    pub token_retention: String,

    /// How often revocations made by other replicas are picked up (e.g. 250ms).
    #[arg(long, env = "TOKEND_REVOCATION_SYNC_INTERVAL", default_value = "250ms")]
    pub revocation_sync_interval: String,

    /// Refuse every token (503 revocation_state_stale) when the last completed revocation
    /// sync is older than this (e.g. 10s).
    #[arg(long, env = "TOKEND_REVOCATION_MAX_STALENESS", default_value = "10s")]
    pub revocation_max_staleness: String,

    /// Refuse every token (503 clock_skew) and delete nothing when this host's clock differs
    /// from the database's by more than this (e.g. 5s).
    #[arg(long, env = "TOKEND_MAX_CLOCK_SKEW", default_value = "5s")]
    pub max_clock_skew: String,

    /// Database connection pool size.
    #[arg(long, env = "TOKEND_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// How long a request waits for a database connection before 503 storage_unavailable.
    #[arg(long, env = "TOKEND_DB_POOL_TIMEOUT", default_value = "2s")]
    pub db_pool_timeout: String,

    /// After SIGTERM, how long open requests may finish before tokend exits (e.g. 10s).
    #[arg(long, env = "TOKEND_SHUTDOWN_TIMEOUT", default_value = "10s")]
    pub shutdown_timeout: String,

    /// How long start-up waits for the database (e.g. 30s).
    #[arg(long, env = "TOKEND_DB_WAIT", default_value = "30s")]
    pub db_wait: String,

    /// 32-byte key (base64 or hex) that encrypts signing keys at rest; every replica sharing a
    /// database needs the same one. Default: DATA_DIR/signing-keys.kek, created on first start.
    #[arg(long, env = "TOKEND_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<String>,

    /// argon2id memory cost in KiB for new password hashes.
    #[arg(long, env = "TOKEND_ARGON2_MEMORY_KIB", default_value_t = argon2::Params::DEFAULT_M_COST)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations for new password hashes.
    #[arg(long, env = "TOKEND_ARGON2_ITERATIONS", default_value_t = argon2::Params::DEFAULT_T_COST)]
    pub argon2_iterations: u32,
    /// argon2id parallelism for new password hashes.
    #[arg(long, env = "TOKEND_ARGON2_PARALLELISM", default_value_t = argon2::Params::DEFAULT_P_COST)]
    pub argon2_parallelism: u32,

    /// Password hashing threads (default: one per core).
    #[arg(long, env = "TOKEND_PASSWORD_WORKERS")]
    pub password_workers: Option<usize>,
    /// Password checks that may wait for a hashing thread; past that, logins get 429 at once
    /// (default: 16 per thread).
    #[arg(long, env = "TOKEND_PASSWORD_QUEUE")]
    pub password_queue: Option<usize>,
    /// Failed logins for one login from one client address before each further attempt waits.
    #[arg(long, env = "TOKEND_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// The first wait after those failures; it doubles with each further failure (e.g. 1s).
    #[arg(long, env = "TOKEND_LOGIN_DELAY", default_value = "1s")]
    pub login_delay: String,
    /// The longest wait, and how long failures are remembered (e.g. 15m).
    #[arg(long, env = "TOKEND_LOGIN_WINDOW", default_value = "15m")]
    pub login_window: String,
    /// Failed logins one client address may make per window, for all logins together.
    #[arg(long, env = "TOKEND_LOGIN_ADDRESS_MAX_FAILURES", default_value_t = 100)]
    pub login_address_max_failures: u32,
    /// Failed logins per window for one login from all the addresses it has not logged in
    /// from (in the last 30 days) together.
    #[arg(long, env = "TOKEND_LOGIN_ACCOUNT_MAX_FAILURES", default_value_t = 100)]
    pub login_account_max_failures: u32,
    /// A successful login revokes that user's earlier cli tokens.
    #[arg(long, env = "TOKEND_LOGIN_REVOKES_PREVIOUS", default_value_t = false, action = clap::ArgAction::Set)]
    pub login_revokes_previous: bool,

    /// Rotate the signing key when the active one is this old (e.g. 7d; "off": only on request).
    #[arg(long, env = "TOKEND_KEY_ROTATION_PERIOD", default_value = "7d")]
    pub key_rotation_period: String,

    /// How long verifiers may cache the JWKS; a next key signs only after this long published.
    #[arg(long, env = "TOKEND_JWKS_MAX_AGE", default_value = "5m")]
    pub jwks_max_age: String,

    /// URL that receives a signed POST when a token crosses an expiry threshold (off if unset).
    #[arg(long, env = "TOKEND_EXPIRY_WEBHOOK_URL")]
    pub expiry_webhook_url: Option<String>,
    /// HMAC-SHA256 key for X-Tokend-Signature (required with the URL; at least 16 bytes).
    #[arg(long, env = "TOKEND_EXPIRY_WEBHOOK_SECRET", hide_env_values = true)]
    pub expiry_webhook_secret: Option<String>,
    /// How long before expiry to warn, comma-separated (e.g. 24h,6h).
    #[arg(
        long,
        env = "TOKEND_EXPIRY_WEBHOOK_THRESHOLDS",
        default_value = "24h,6h"
    )]
    pub expiry_webhook_thresholds: String,
    /// How often to look for tokens crossing a threshold (e.g. 30s).
    #[arg(long, env = "TOKEND_EXPIRY_WEBHOOK_POLL", default_value = "30s")]
    pub expiry_webhook_poll: String,
    /// The first retry of a failed delivery waits this long, each further one twice as long.
    #[arg(long, env = "TOKEND_EXPIRY_WEBHOOK_RETRY", default_value = "10s")]
    pub expiry_webhook_retry: String,

    /// TTL bounds of sensor tokens, MIN:MAX[:DEFAULT] (default 24h:72h:72h).
    #[arg(long, env = "TOKEND_TTL_SENSOR")]
    pub ttl_sensor: Option<String>,
    /// TTL bounds of execution tokens (default 5m:60m:60m).
    #[arg(long, env = "TOKEND_TTL_EXECUTION")]
    pub ttl_execution: Option<String>,
    /// TTL bounds of cli tokens (default 7d:30d:7d).
    #[arg(long, env = "TOKEND_TTL_CLI")]
    pub ttl_cli: Option<String>,
    /// TTL bounds of webhook tokens (default 90d:365d:90d).
    #[arg(long, env = "TOKEND_TTL_WEBHOOK")]
    pub ttl_webhook: Option<String>,
    /// TTL bounds of admin tokens (default 5m:90d:1d).
    #[arg(long, env = "TOKEND_TTL_ADMIN")]
    pub ttl_admin: Option<String>,
}

/// Flags only `serve` has.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TOKEND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "TOKEND_WORKERS")]
    pub workers: Option<usize>,

    /// The URL clients reach tokend at (e.g. https://tokend.example.com), for the endpoint
    /// URLs in the OAuth 2.0 server metadata. Default: taken from each request's Host.
    #[arg(long, env = "TOKEND_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Which token scopes may be exchanged for which others at /oauth2/token (RFC 8693):
    /// comma list of from>to pairs; "" allows only same-scope exchanges.
    #[arg(long, env = "TOKEND_TOKEN_EXCHANGE", default_value = ExchangePolicy::DEFAULT)]
    pub token_exchange: String,

    /// Proxies whose forwarding headers (X-Forwarded-For, X-Real-IP, X-Forwarded-Uri,
    /// X-Original-URI, X-Forwarded-Prefix, Forwarded) count: comma list of CIDRs; "" trusts none.
    #[arg(long, env = "TOKEND_TRUSTED_PROXIES", default_value = TrustedProxies::DEFAULT)]
    pub trusted_proxies: String,

    /// PostgreSQL URL of the session that listens for other replicas' revocations: a direct
    /// connection, not through a transaction-pooling PgBouncer. Default: the database URL;
    /// "off": poll only.
    #[arg(long, env = "TOKEND_DATABASE_LISTEN_URL", hide_env_values = true)]
    pub database_listen_url: Option<String>,

    // --- TLS (src/tls/): all four are checked together by `TlsSettings::from_flags` ---
    /// PEM certificate chain (server certificate first): serve HTTPS. Needs --tls-key.
    /// Reloaded within seconds when the file changes.
    #[arg(long, env = "TOKEND_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the TLS certificate (PKCS#8, RSA or EC). Needs --tls-cert.
    #[arg(long, env = "TOKEND_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of the CAs whose client certificates are accepted. Needs
    /// --tls-client-cert-paths and HTTPS.
    #[arg(long, env = "TOKEND_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Path prefixes that require a client certificate, comma-separated (e.g. /admin/,/oauth2/).
    /// Needs --tls-client-ca.
    #[arg(long, env = "TOKEND_TLS_CLIENT_CERT_PATHS")]
    pub tls_client_cert_paths: Option<String>,
}

impl ServeArgs {
    /// Puts the serve-only flags into `settings`. Errors name the variable at fault.
    pub fn apply(self, settings: &mut Settings) -> Result<(), String> {
        settings.listen = self.listen;
        settings.workers = self.workers;
        settings.oauth.public_url = match self.public_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(public_url(url)?),
        };
        settings.oauth.exchange = ExchangePolicy::parse(&self.token_exchange)
            .map_err(|e| format!("TOKEND_TOKEN_EXCHANGE: {e}"))?;
        settings.trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| format!("TOKEND_TRUSTED_PROXIES: {e}"))?;
        settings.database_listen_url = match self.database_listen_url.as_deref().map(str::trim) {
            None | Some("") => ListenUrl::Database,
            Some("off") => ListenUrl::Off,
            Some(_) if !settings.database.is_postgres() => {
                return Err(
                    "TOKEND_DATABASE_LISTEN_URL is only used with a PostgreSQL database; unset it"
                        .into(),
                )
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                ListenUrl::Url(SecretString::from(url.to_owned()))
            }
            Some(_) => {
                return Err("TOKEND_DATABASE_LISTEN_URL must be a postgres://… URL, or off".into())
            }
        };
        // --- TLS (src/tls/) ---
        settings.tls = TlsSettings::from_flags(
            self.tls_cert,
            self.tls_key,
            self.tls_client_ca,
            self.tls_client_cert_paths,
        )?;
        Ok(())
    }
}

impl SettingsArgs {
    /// Validates every flag and builds [`Settings`]. Errors name the flag/variable at fault.
    pub fn into_settings(self) -> Result<Settings, String> {
        let raw_db = self.database_url.clone().or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|s| !s.trim().is_empty())
        });
        let database = match raw_db {
            Some(raw) => Database::parse(&raw).map_err(|e| format!("TOKEND_DATABASE_URL: {e}"))?,
            None => Database::Sqlite {
                path: self.data_dir.join("tokend.db"),
            },
        };
        let mut s = Settings::new(database);
        s.data_dir = self.data_dir.clone();
        s.jwt = match (self.jwt_alg.trim().to_ascii_uppercase().as_str(), self.jwt_secret) {
            ("EDDSA", None) => JwtAlgorithm::EdDsa,
            ("EDDSA", Some(_)) => {
                return Err("TOKEND_JWT_SECRET is only used with TOKEND_JWT_ALG=HS256; unset it or switch the algorithm".into())
            }
            ("HS256", Some(secret)) if secret.len() >= 32 => JwtAlgorithm::Hs256 {
                secret: SecretString::from(secret),
            },
            ("HS256", Some(_)) => {
                return Err("TOKEND_JWT_SECRET must be at least 32 bytes long".into())
            }
            ("HS256", None) => {
                return Err("TOKEND_JWT_ALG=HS256 needs TOKEND_JWT_SECRET (at least 32 bytes)".into())
            }
            (other, _) => {
                return Err(format!(
                    "TOKEND_JWT_ALG: unsupported algorithm '{other}'; use EdDSA or HS256"
                ))
            }
        };
        s.issuer = non_empty("TOKEND_ISSUER", self.issuer)?;
        s.audience = non_empty("TOKEND_AUDIENCE", self.audience)?;
        s.leeway = duration("TOKEND_LEEWAY", &self.leeway)?;
        if s.leeway > Duration::from_secs(300) {
            return Err("TOKEND_LEEWAY may be at most 5m".into());
        }
        s.cleanup_interval = positive("TOKEND_CLEANUP_INTERVAL", &self.cleanup_interval)?;
        s.token_retention = duration("TOKEND_TOKEN_RETENTION", &self.token_retention)?;
        s.revocation_sync_interval = positive(
            "TOKEND_REVOCATION_SYNC_INTERVAL",
            &self.revocation_sync_interval,
        )?;
        if s.revocation_sync_interval > Duration::from_secs(1) {
            return Err("TOKEND_REVOCATION_SYNC_INTERVAL may be at most 1s: revocations made by other replicas must be enforced within a second".into());
        }
        s.revocation_max_staleness = positive(
            "TOKEND_REVOCATION_MAX_STALENESS",
            &self.revocation_max_staleness,
        )?;
        if s.revocation_max_staleness < 2 * s.revocation_sync_interval {
            return Err("TOKEND_REVOCATION_MAX_STALENESS must be at least twice TOKEND_REVOCATION_SYNC_INTERVAL: one slow poll must not make the replica refuse everything".into());
        }
        s.max_clock_skew = positive("TOKEND_MAX_CLOCK_SKEW", &self.max_clock_skew)?;
        s.db_pool_timeout = positive("TOKEND_DB_POOL_TIMEOUT", &self.db_pool_timeout)?;
        s.shutdown_timeout = duration("TOKEND_SHUTDOWN_TIMEOUT", &self.shutdown_timeout)?;
        if self.db_pool_size == 0 {
            return Err("TOKEND_DB_POOL_SIZE must be at least 1".into());
        }
        s.pool_size = self.db_pool_size;
        s.db_wait = duration("TOKEND_DB_WAIT", &self.db_wait)?;
        s.key_encryption_key = self.key_encryption_key.map(SecretString::from);
        s.argon2 = Argon2Cost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        };
        argon2::Params::new(
            s.argon2.memory_kib,
            s.argon2.iterations,
            s.argon2.parallelism,
            None,
        )
        .map_err(|e| format!("TOKEND_ARGON2_*: {e}"))?;
        if self.login_max_failures == 0 {
            return Err("TOKEND_LOGIN_MAX_FAILURES must be at least 1".into());
        }
        s.login_max_failures = self.login_max_failures;
        s.login_delay = positive("TOKEND_LOGIN_DELAY", &self.login_delay)?;
        s.login_window = positive("TOKEND_LOGIN_WINDOW", &self.login_window)?;
        if s.login_delay > s.login_window {
            return Err("TOKEND_LOGIN_DELAY must not be longer than TOKEND_LOGIN_WINDOW".into());
        }
        if self.login_address_max_failures == 0 {
            return Err("TOKEND_LOGIN_ADDRESS_MAX_FAILURES must be at least 1".into());
        }
        s.login_address_max_failures = self.login_address_max_failures;
        if self.login_account_max_failures == 0 {
            return Err("TOKEND_LOGIN_ACCOUNT_MAX_FAILURES must be at least 1".into());
        }
        s.login_account_max_failures = self.login_account_max_failures;
        if self.password_workers == Some(0) {
            return Err("TOKEND_PASSWORD_WORKERS must be at least 1".into());
        }
        s.password_workers = self.password_workers.unwrap_or(s.password_workers);
        s.password_queue = self.password_queue.unwrap_or(16 * s.password_workers);
        s.login_revokes_previous = self.login_revokes_previous;
        s.key_rotation_period = match self.key_rotation_period.trim() {
            "off" | "never" | "0" => None,
            other => Some(positive("TOKEND_KEY_ROTATION_PERIOD", other)?),
        };
        s.jwks_max_age = duration("TOKEND_JWKS_MAX_AGE", &self.jwks_max_age)?;
        if s.key_rotation_period.is_some_and(|p| p <= s.jwks_max_age) {
            return Err(
                "TOKEND_KEY_ROTATION_PERIOD must be longer than TOKEND_JWKS_MAX_AGE".into(),
            );
        }
        s.expiry_webhook = match (self.expiry_webhook_url, self.expiry_webhook_secret) {
            (None, _) => None,
            (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err("TOKEND_EXPIRY_WEBHOOK_URL must be an http:// or https:// URL".into())
            }
            (Some(_), None) => return Err(
                "TOKEND_EXPIRY_WEBHOOK_URL needs TOKEND_EXPIRY_WEBHOOK_SECRET to sign the warnings"
                    .into(),
            ),
            (Some(_), Some(secret)) if secret.len() < 16 => {
                return Err("TOKEND_EXPIRY_WEBHOOK_SECRET must be at least 16 bytes long".into())
            }
            (Some(url), Some(secret)) => {
                let mut thresholds = self
                    .expiry_webhook_thresholds
                    .split(',')
                    .map(|t| positive("TOKEND_EXPIRY_WEBHOOK_THRESHOLDS", t))
                    .collect::<Result<Vec<_>, _>>()?;
                thresholds.sort_unstable_by(|a, b| b.cmp(a));
                thresholds.dedup();
                Some(ExpiryWebhook {
                    url,
                    secret: SecretString::from(secret),
                    thresholds,
                    poll: positive("TOKEND_EXPIRY_WEBHOOK_POLL", &self.expiry_webhook_poll)?,
                    retry_base: positive(
                        "TOKEND_EXPIRY_WEBHOOK_RETRY",
                        &self.expiry_webhook_retry,
                    )?,
                })
            }
        };
        for (scope, spec) in [
            (Scope::Sensor, self.ttl_sensor),
            (Scope::Execution, self.ttl_execution),
            (Scope::Cli, self.ttl_cli),
            (Scope::Webhook, self.ttl_webhook),
            (Scope::Admin, self.ttl_admin),
        ] {
            if let Some(spec) = spec {
                s.scopes.set_bounds_from_spec(scope, &spec).map_err(|e| {
                    format!("TOKEND_TTL_{}: {e}", scope.as_str().to_ascii_uppercase())
                })?;
            }
        }
        Ok(s)
    }
}

fn non_empty(name: &str, v: String) -> Result<String, String> {
    let v = v.trim().to_owned();
    if v.is_empty() {
        Err(format!("{name} must not be empty"))
    } else {
        Ok(v)
    }
}

fn duration(name: &str, raw: &str) -> Result<Duration, String> {
    crate::time::parse_duration(raw).map_err(|e| format!("{name}: {e}"))
}

fn positive(name: &str, raw: &str) -> Result<Duration, String> {
    let d = duration(name, raw)?;
    if d.is_zero() {
        return Err(format!("{name} must be longer than zero"));
    }
    Ok(d)
}

/// `TOKEND_PUBLIC_URL`: an absolute http(s) URL without query or fragment; a trailing slash
/// is dropped.
fn public_url(raw: &str) -> Result<String, String> {
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("TOKEND_PUBLIC_URL must start with https:// or http://, got '{raw}'")
        })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || raw.contains(['?', '#', ' ']) || raw.chars().any(|c| c.is_control()) {
        return Err(format!(
            "TOKEND_PUBLIC_URL must be a URL such as https://tokend.example.com, got '{raw}'"
        ));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}
