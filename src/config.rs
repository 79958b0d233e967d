//! Settings: read from `tokend serve` flags and `TOKEND_*` environment variables, validated
//! once at start. Everything after start-up works with a [`Settings`] it can trust.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

use crate::scope::{Scope, ScopePolicy};

/// Where tokens and revocations are stored.
#[derive(Clone)]
pub enum Database {
    /// The embedded default: one SQLite file.
    Sqlite { path: PathBuf },
    /// PostgreSQL, shared by any number of replicas. The URL may hold a password.
    Postgres { url: SecretString },
}

impl Database {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://PATH`, `sqlite:PATH` or a
    /// plain path is SQLite.
    pub fn parse(raw: &str) -> Result<Database, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Database::Postgres {
                url: SecretString::from(raw.to_owned()),
            });
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            if scheme != "sqlite" {
                return Err(format!(
                    "unsupported database URL scheme '{scheme}://'; use postgres://… or a SQLite file path"
                ));
            }
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("the SQLite database path is empty".into());
        }
        Ok(Database::Sqlite {
            path: PathBuf::from(path),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres { .. })
    }
}

impl fmt::Display for Database {
    /// Never prints a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            Database::Postgres { url } => f.write_str(&redact_url(url.expose_secret())),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://***".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => {
            // Key/value parameters may carry a password too.
            let host = rest.split('?').next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
    }
}

/// Where the revocation listener (LISTEN on a session of its own, PostgreSQL only) connects:
/// `TOKEND_DATABASE_LISTEN_URL`.
#[derive(Debug, Clone)]
pub enum ListenUrl {
    /// The database URL (the default).
    Database,
    /// Another URL: a direct connection past a transaction-pooling PgBouncer.
    Url(SecretString),
    /// No listener: other replicas' revocations arrive by the poll alone.
    Off,
}

/// The peers whose forwarding headers (`X-Forwarded-For`, `X-Forwarded-Uri`, `Forwarded`, …)
/// are believed: `TOKEND_TRUSTED_PROXIES`, a comma list of CIDRs. Empty: nobody's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The default: loopback only (a proxy on the same host).
    pub const DEFAULT: &'static str = "127.0.0.0/8,::1/128";
    /// Trusts no one.
    pub const NONE: TrustedProxies = TrustedProxies(Vec::new());

    /// `10.0.0.0/8, 192.0.2.7, ::1/128`: CIDRs or single addresses, comma-separated. An empty
    /// list trusts no one.
    pub fn parse(raw: &str) -> Result<TrustedProxies, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .map(|net| net.trunc())
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "'{}' is not a CIDR such as 10.0.0.0/8, 192.0.2.7 or ::1/128",
                            s.escape_debug()
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        TrustedProxies::parse(Self::DEFAULT).unwrap_or(Self::NONE)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&nets.join(","))
    }
}

/// How tokens are signed.
#[derive(Clone)]
pub enum JwtAlgorithm {
    /// Ed25519 keys generated by tokend and kept (encrypted) in `signing_key`. The default.
    EdDsa,
    /// HMAC-SHA256 with a shared secret of at least 32 bytes, for verifiers that only have a
    /// shared key. The secret is never stored.
    Hs256 { secret: SecretString },
}

impl fmt::Debug for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtAlgorithm::EdDsa => f.write_str("EdDSA"),
            JwtAlgorithm::Hs256 { .. } => f.write_str("HS256 (secret redacted)"),
        }
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub database: Database,
    /// Holds the SQLite file by default and the key-encryption key file.
    pub data_dir: PathBuf,
    pub jwt: JwtAlgorithm,
    pub issuer: String,
    pub audience: String,
    /// Clock-skew allowance for `exp` and `nbf`.
    pub leeway: Duration,
    pub cleanup_interval: Duration,
    /// How long `issued_token` rows are kept after their token expired.
    pub token_retention: Duration,
    /// How often revocations made by other replicas are read from the database.
    pub revocation_sync_interval: Duration,
    /// When the last completed revocation sync is older than this, every token is refused
    /// (503 `revocation_state_stale`) and `/ready` is 503.
    pub revocation_max_staleness: Duration,
    /// When this host's clock differs from the database's by more than this, every token is
    /// refused (503 `clock_skew`), nothing is deleted and `/ready` is 503.
    pub max_clock_skew: Duration,
    /// How long a request waits for a pooled database connection before 503.
    pub db_pool_timeout: Duration,
    /// After SIGTERM/SIGINT, how long open requests may finish before the process exits.
    pub shutdown_timeout: Duration,
    /// Where the revocation listener connects (PostgreSQL only).
    pub database_listen_url: ListenUrl,
    pub scopes: ScopePolicy,
    pub pool_size: u32,
    /// How long start-up waits for the database to accept connections.
    pub db_wait: Duration,
    /// 32-byte key that encrypts the signing keys at rest. Read from the key file in
    /// `data_dir` (created on first start) when not given.
    pub key_encryption_key: Option<SecretString>,
    /// HTTP worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// Whose forwarding headers count (`TOKEND_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// Password hashing cost (argon2id): memory in KiB, iterations, parallelism.
    pub argon2: Argon2Cost,
    /// Threads that hash and check passwords (default: one per core), and how many hashes
    /// may wait for one before a login is answered 429 at once.
    pub password_workers: usize,
    pub password_queue: usize,
    /// Login throttling (see [`crate::accounts::throttle`]): failed logins for one login from
    /// one client address before each further attempt waits, the first wait (doubling with
    /// each failure), the longest wait (also how long failures are remembered), failed
    /// logins one address may make for all logins together per window, and failed logins
    /// per window for one login from addresses it has not logged in from.
    pub login_max_failures: u32,
    pub login_delay: Duration,
    pub login_window: Duration,
    pub login_address_max_failures: u32,
    pub login_account_max_failures: u32,
    /// A successful login revokes that user's earlier cli tokens.
    pub login_revokes_previous: bool,
    /// Where expiry warnings go (off when `None`).
    pub expiry_webhook: Option<crate::notify::ExpiryWebhook>,
    /// Signing keys rotate when the active one is this old (`None`: only on request).
    pub key_rotation_period: Option<Duration>,
    /// How long verifiers may cache the JWKS (`Cache-Control: max-age`). A published next
    /// key only starts signing once it has been published at least this long.
    pub jwks_max_age: Duration,
    /// The OAuth 2.0 endpoints' settings.
    pub oauth: OAuthSettings,
    // --- TLS (src/tls/) ---
    /// HTTPS with tokend's own certificate (`TOKEND_TLS_*`); `None`: plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
}

/// The OAuth 2.0 endpoints' settings (`/oauth2/*`, the server metadata).
#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    /// The URL clients reach tokend at (`TOKEND_PUBLIC_URL`, e.g. `https://tokend.example`),
    /// for the endpoint URLs of the server metadata. `None`: taken from each request.
    pub public_url: Option<String>,
    /// Which scope may exchange for which other (`TOKEND_TOKEN_EXCHANGE`).
    pub exchange: ExchangePolicy,
    /// How remote JWKS (trusted issuers, client keys) are fetched and cached.
    pub jwks_cache: JwksCachePolicy,
}

/// How remote JSON Web Key Sets are fetched and cached (`federation::jwks::JwksCache`).
/// Built in; tests shorten the times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksCachePolicy {
    /// A fetched set is fresh for its `Cache-Control: max-age`, clamped to these bounds …
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// … or this long without one.
    pub default_ttl: Duration,
    /// At most one fetch per URL this often beyond the schedule (an unknown `kid`, a failed
    /// fetch): random kids cannot make tokend hammer an issuer.
    pub refetch_interval: Duration,
    /// When the endpoint is down, expired keys keep working this long past their freshness.
    pub stale_grace: Duration,
    pub connect_timeout: Duration,
    /// The whole fetch, connection to last byte.
    pub total_timeout: Duration,
    /// The largest JWKS read.
    pub max_bytes: u64,
}

impl Default for JwksCachePolicy {
    fn default() -> Self {
        JwksCachePolicy {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3_600),
            default_ttl: Duration::from_secs(300),
            refetch_interval: Duration::from_secs(10),
            stale_grace: Duration::from_secs(24 * 3_600),
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
        }
    }
}

/// Who may exchange a token for one of another scope (RFC 8693). Exchanging for the same scope
/// (a shorter life) is always allowed; across scopes only the listed pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangePolicy(Vec<(Scope, Scope)>);

impl ExchangePolicy {
    /// The default: a sensor may mint execution tokens (the executor's job).
    pub const DEFAULT: &'static str = "sensor>execution";

    /// `sensor>execution, admin>execution`: comma list of `from>to` scope pairs; "" allows
    /// no exchange across scopes.
    pub fn parse(raw: &str) -> Result<ExchangePolicy, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (from, to) = pair.split_once('>').ok_or_else(|| {
                    format!("'{pair}' is not a from>to pair such as sensor>execution")
                })?;
                let scope = |s: &str| Scope::parse(s).map_err(|e| e.message().to_owned());
                let (from, to) = (scope(from)?, scope(to)?);
                // Exchange only goes down: a token may become one of a narrower scope, never
                // one that may do more (admin > cli > sensor, webhook > execution).
                if Self::breadth(to) >= Self::breadth(from) && from != to {
                    return Err(format!(
                        "'{pair}' would exchange a {from} token for a {to} token, which is not narrower; \
                         exchange only goes down (admin > cli > sensor, webhook > execution)"
                    ));
                }
                Ok((from, to))
            })
            .collect::<Result<Vec<_>, String>>()
            .map(ExchangePolicy)
    }

    /// How much a token of the scope may do, for "only down".
    fn breadth(scope: Scope) -> u8 {
        match scope {
            Scope::Admin => 3,
            Scope::Cli => 2,
            Scope::Sensor | Scope::Webhook => 1,
            Scope::Execution => 0,
        }
    }

    /// Whether a token of scope `from` may be exchanged for one of scope `to`.
    pub fn allows(&self, from: Scope, to: Scope) -> bool {
        from == to || self.0.contains(&(from, to))
    }

    /// The scopes a `from` token may be exchanged for, itself first.
    pub fn targets(&self, from: Scope) -> Vec<Scope> {
        let mut out = vec![from];
        out.extend(
            self.0
                .iter()
                .filter(|(f, t)| *f == from && *t != from)
                .map(|(_, t)| *t),
        );
        out
    }
}

impl Default for ExchangePolicy {
    fn default() -> Self {
        ExchangePolicy(vec![(Scope::Sensor, Scope::Execution)])
    }
}

/// argon2id parameters. The defaults are the argon2 crate's recommendation
/// (19 MiB, 2 iterations, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Argon2Cost {
            memory_kib: argon2::Params::DEFAULT_M_COST,
            iterations: argon2::Params::DEFAULT_T_COST,
            parallelism: argon2::Params::DEFAULT_P_COST,
        }
    }
}

impl Settings {
    /// Defaults for a given database, as `tokend serve` would use them without flags.
    pub fn new(database: Database) -> Settings {
        Settings {
            listen: "127.0.0.1:8080".into(),
            database,
            data_dir: PathBuf::from("data"),
            jwt: JwtAlgorithm::EdDsa,
            issuer: "tokend".into(),
            audience: "tokend".into(),
            leeway: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(3_600),
            token_retention: Duration::from_secs(30 * 86_400),
            revocation_sync_interval: Duration::from_millis(250),
            revocation_max_staleness: Duration::from_secs(10),
            max_clock_skew: Duration::from_secs(5),
            db_pool_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(10),
            database_listen_url: ListenUrl::Database,
            scopes: ScopePolicy::default(),
            pool_size: 10,
            db_wait: Duration::from_secs(30),
            key_encryption_key: None,
            workers: None,
            trusted_proxies: TrustedProxies::default(),
            argon2: Argon2Cost::default(),
            password_workers: default_password_workers(),
            password_queue: 16 * default_password_workers(),
            login_max_failures: 5,
            login_delay: Duration::from_secs(1),
            login_window: Duration::from_secs(15 * 60),
            login_address_max_failures: 100,
            login_account_max_failures: 100,
            login_revokes_previous: false,
            expiry_webhook: None,
            key_rotation_period: Some(Duration::from_secs(7 * 86_400)),
            jwks_max_age: Duration::from_secs(300),
            oauth: OAuthSettings::default(),
            tls: None,
        }
    }

    /// The longest a token can live, with the leeway: how long a retired signing key must
    /// keep verifying.
    pub fn max_token_lifetime(&self) -> Duration {
        Scope::ALL
            .iter()
            .map(|s| self.scopes.bounds(*s).max)
            .max()
            .unwrap_or_default()
            + self.leeway
    }

    /// The longest a request waits for the database before 503 `storage_unavailable`: the
    /// pool checkout and one statement timeout (see [`crate::db::deadlines`]).
    pub fn db_deadline(&self) -> Duration {
        self.db_pool_timeout + crate::db::deadlines::STATEMENT_TIMEOUT
    }

    /// Where the key-encryption key lives when it is not given in the environment.
    pub fn kek_file(&self) -> PathBuf {
        self.data_dir.join("signing-keys.kek")
    }
}

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
        settings.tls = crate::tls::TlsSettings::from_flags(
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
                Some(crate::notify::ExpiryWebhook {
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

/// One password hashing thread per core.
fn default_password_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

/// Creates the directory that will hold a private file, if it does not exist: mode 0700 on
/// Unix. An existing directory that others may read is left as it is (it may be shared, like
/// `/tmp`), with a warning; the files tokend keeps in it are 0600 ([`keep_private`]).
pub fn ensure_parent_dir(file: &Path) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return Ok(()),
    };
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "the directory {} is open to other users (mode {mode:03o}); \
                     `chmod 700 {}` unless it is shared on purpose",
                    dir.display(),
                    dir.display()
                );
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Keeps a file that holds secrets (the SQLite database and its `-wal` and `-shm` files, the
/// key-encryption key) readable by its owner only, on Unix: with `create`, a missing file is
/// created empty with mode 0600; an existing one that others may read is set to 0600, with a
/// warning. A missing file without `create` is fine.
pub fn keep_private(path: &Path, create: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if create {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)?;
        }
        let mode = match std::fs::metadata(path) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            log::warn!(
                "{} was open to other users (mode {mode:03o}); set it to 0600",
                path.display()
            );
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
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

#[cfg(test)]
mod exchange_tests {
    use super::*;

    #[test]
    fn exchange_pairs_only_go_down() {
        assert!(ExchangePolicy::parse("sensor>execution, admin>sensor, cli>execution").is_ok());
        for widening in [
            "execution>admin",
            "sensor>admin",
            "execution>sensor",
            "sensor>webhook",
        ] {
            assert!(ExchangePolicy::parse(widening).is_err(), "{widening}");
        }
        assert!(ExchangePolicy::parse("")
            .unwrap()
            .allows(Scope::Sensor, Scope::Sensor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert!(Database::parse("postgres://u:p@h/db")
            .unwrap()
            .is_postgres());
        assert!(!Database::parse("data/x.db").unwrap().is_postgres());
        assert!(
            matches!(Database::parse("sqlite://x.db").unwrap(), Database::Sqlite { path } if path == Path::new("x.db"))
        );
        assert!(Database::parse("mysql://h/db").is_err());
        let shown = Database::parse("postgres://u:hunter2@h/db")
            .unwrap()
            .to_string();
        assert_eq!(shown, "postgres://u:***@h/db");
    }

    #[test]
    fn trusted_proxies() {
        let default = TrustedProxies::default();
        assert_eq!(default.to_string(), "127.0.0.0/8,::1/128");
        assert!(default.contains("127.0.0.1".parse().unwrap()));
        assert!(default.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(default.contains("::1".parse().unwrap()));
        assert!(!default.contains("10.0.0.1".parse().unwrap()));
        let list = TrustedProxies::parse(" 10.0.0.0/8 , 192.0.2.7,2001:db8::/32").unwrap();
        assert_eq!(list.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        assert!(list.contains("10.1.2.3".parse().unwrap()));
        assert!(!list.contains("192.0.2.8".parse().unwrap()));
        assert_eq!(TrustedProxies::parse("").unwrap().to_string(), "");
        for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/8;1.2.3.4", "::1/129"] {
            let err = TrustedProxies::parse(bad).unwrap_err();
            assert!(err.contains("is not a CIDR"), "{bad}: {err}");
        }
    }
}
