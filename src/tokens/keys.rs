//! Signing keys: created in the shared database, loaded by every replica, rotated without
//! downtime.
//!
//! EdDSA (default): Ed25519 key pairs live in `signing_key`, their private halves sealed with
//! the key-encryption key; a key's `kid` is the RFC 7638 JWK thumbprint of its public key.
//! A key goes through these states:
//!
//! - `next`: published in the JWKS, not signing yet, so verifiers learn it before any token
//!   carries it;
//! - `active`: signs new tokens (one at a time);
//! - `retiring`: no longer signs, still verifies until `retire_after` (the longest lifetime a
//!   token it signed could have, plus the leeway), then it is `retired`;
//! - `revoked`: retired at once (emergency); every token it signed stops verifying.
//!
//! Rotation promotes `next` to `active`, moves the old `active` to `retiring` and makes a new
//! `next`. Every replica re-reads the table several times a second ([`sync_forever`]), so a
//! rotation or an emergency revocation takes effect everywhere within a second.
//!
//! HS256: the shared secret from the settings, never stored; its `kid` is derived from a hash
//! of the secret; it cannot be rotated here (change the secret everywhere instead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::kek::Kek;
use crate::config::{JwtAlgorithm, Settings};
use crate::db::models::SigningKeyRow;
use crate::db::queries::keys as key_queries;
use crate::db::{write_transaction, DbConnection, DbError, DbManager};
use crate::error::{ApiError, Code};
use crate::time;

const EDDSA: &str = "EdDSA";
pub const NEXT: &str = "next";
pub const ACTIVE: &str = "active";
pub const RETIRING: &str = "retiring";
pub const RETIRED: &str = "retired";
pub const REVOKED: &str = "revoked";

static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One immutable set of keys: the one that signs, and all that verify.
pub struct KeySet {
    /// Unique per set built: caches of verified tokens key on it.
    generation: u64,
    algorithm: Algorithm,
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Value,
    /// What this set was built from (kid and status of each row), to notice changes.
    version: Vec<(String, String)>,
}

impl KeySet {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.decoding.get(kid)
    }

    /// `{"keys": [...]}`: the public keys that verify (none for HS256).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The HS256 key set of a shared secret (`TOKEND_JWT_SECRET`).
    pub fn hs256(secret: &[u8]) -> KeySet {
        hs256(secret)
    }

    /// A fresh Ed25519 key held only in memory: for fuzzing and tests that need no database.
    pub fn ephemeral_ed25519() -> Result<KeySet, KeyError> {
        let kek = Kek::from_bytes(&[0u8; 32]);
        let row = generate_ed25519(&kek, ACTIVE, time::now())?;
        build(&[row], &kek, time::now())
    }
}

/// The current [`KeySet`], swapped atomically when keys change; readers never lock.
pub struct KeyStore {
    current: ArcSwap<KeySet>,
    /// `None` for HS256: nothing to load, rotate or revoke.
    kek: Option<Kek>,
}

impl KeyStore {
    pub fn new(keys: KeySet) -> KeyStore {
        KeyStore {
            current: ArcSwap::from_pointee(keys),
            kek: None,
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The generation of the current key set (cheap: no reference counting).
    pub fn generation(&self) -> u64 {
        self.current.load().generation
    }

    /// Whether keys live in the database (EdDSA) and can be rotated.
    pub fn is_managed(&self) -> bool {
        self.kek.is_some()
    }

    /// Loads the keys for the configured algorithm, creating the first EdDSA keys (an active
    /// one and the next) if the database has none, once, even when replicas start together.
    pub fn load_or_create(
        conn: &mut DbConnection,
        settings: &Settings,
    ) -> Result<KeyStore, KeyError> {
        match &settings.jwt {
            JwtAlgorithm::Hs256 { secret } => {
                Ok(KeyStore::new(hs256(secret.expose_secret().as_bytes())))
            }
            JwtAlgorithm::EdDsa => {
                let kek = Kek::load(settings).map_err(KeyError::Config)?;
                let rows =
                    write_transaction(conn, |conn| -> Result<Vec<SigningKeyRow>, KeyError> {
                        key_queries::lock_key_creation(conn)?;
                        let now = time::now();
                        let mut rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT])?;
                        for status in [ACTIVE, NEXT] {
                            if !rows.iter().any(|r| r.status == status) {
                                let row = generate_ed25519(&kek, status, now)?;
                                key_queries::insert(conn, &row)?;
                                log::info!(
                                    "generated an Ed25519 signing key ({status}), kid {}",
                                    row.kid
                                );
                                rows.push(row);
                            }
                        }
                        Ok(key_queries::verifying(conn, EDDSA)?)
                    })?;
                let keys = build(&rows, &kek, chrono::Utc::now())?;
                Ok(KeyStore {
                    current: ArcSwap::from_pointee(keys),
                    kek: Some(kek),
                })
            }
        }
    }

    /// Re-reads the keys; swaps in a new set when anything changed. Returns whether it did.
    pub fn reload(&self, conn: &mut DbConnection) -> Result<bool, KeyError> {
        let Some(kek) = &self.kek else {
            return Ok(false);
        };
        // Full precision: retirement times come from the database's clock, to the microsecond.
        let now = chrono::Utc::now();
        let rows: Vec<SigningKeyRow> = key_queries::verifying(conn, EDDSA)?
            .into_iter()
            .filter(|r| usable(r, now))
            .collect();
        let version = version_of(&rows);
        if version == self.current.load().version {
            return Ok(false);
        }
        self.current.store(Arc::new(build(&rows, kek, now)?));
        Ok(true)
    }

    /// Rotates: `next` becomes `active`, `active` becomes `retiring` until `retire_after`, and
    /// a new `next` is made. With `only_if_older_than`, does nothing unless the active key was
    /// activated longer ago than that (the scheduled rotation; replicas racing do it once).
    ///
    /// The next key must have been published for at least `publish_lead` (the JWKS cache
    /// lifetime), so that every verifier knows it before a token carries it; otherwise
    /// [`KeyError::TooSoon`].
    pub fn rotate(
        &self,
        conn: &mut DbConnection,
        max_token_lifetime: Duration,
        only_if_older_than: Option<Duration>,
        publish_lead: Duration,
    ) -> Result<Option<Rotation>, KeyError> {
        let Some(kek) = &self.kek else {
            return Err(KeyError::NotManaged);
        };
        let rotation = write_transaction(conn, |conn| -> Result<Option<Rotation>, KeyError> {
            key_queries::lock_key_creation(conn)?;
            // The database's clock: retirement times are compared by every replica.
            let now = time::from_db(crate::db::queries::clock::now(conn)?);
            let rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT])?;
            let active = rows.iter().find(|r| r.status == ACTIVE);
            if let (Some(min_age), Some(active)) = (only_if_older_than, active) {
                let since = active.activated_at.unwrap_or(active.created_at);
                if time::from_db(since) + chrono::Duration::from_std(min_age).unwrap_or_default()
                    > now
                {
                    return Ok(None);
                }
            }
            if let Some(next) = rows.iter().find(|r| r.status == NEXT) {
                // Times are stored in whole seconds: one more covers the truncation.
                let ready = time::from_db(next.created_at)
                    + chrono::Duration::from_std(publish_lead).unwrap_or_default()
                    + chrono::Duration::seconds(1);
                if ready > now {
                    return Err(KeyError::TooSoon {
                        retry_after_secs: (ready - now).num_seconds().max(1) as u64,
                    });
                }
            }
            let retire_after =
                now + chrono::Duration::from_std(max_token_lifetime).unwrap_or_default();
            if let Some(active) = active {
                key_queries::set_status(
                    conn,
                    &active.kid,
                    RETIRING,
                    Some(time::to_db(retire_after)),
                    None,
                )?;
            }
            let new_active = match rows.iter().find(|r| r.status == NEXT) {
                Some(next) => {
                    key_queries::activate(conn, &next.kid, time::to_db(now))?;
                    next.kid.clone()
                }
                None => {
                    let row = generate_ed25519(kek, ACTIVE, now)?;
                    key_queries::insert(conn, &row)?;
                    row.kid
                }
            };
            let next = generate_ed25519(kek, NEXT, now)?;
            key_queries::insert(conn, &next)?;
            Ok(Some(Rotation {
                active_kid: new_active,
                retiring_kid: active.map(|a| a.kid.clone()),
                next_kid: next.kid,
                retire_after,
            }))
        })?;
        if rotation.is_some() {
            self.reload(conn)?;
        }
        Ok(rotation)
    }

    /// Retires a key at once: every token it signed stops verifying. If it was the active key,
    /// the next one takes over signing and a new next key is made.
    pub fn revoke(
        &self,
        conn: &mut DbConnection,
        kid: &str,
    ) -> Result<Option<Revocation>, KeyError> {
        let Some(kek) = &self.kek else {
            return Err(KeyError::NotManaged);
        };
        let revocation = write_transaction(conn, |conn| -> Result<Option<Revocation>, KeyError> {
            key_queries::lock_key_creation(conn)?;
            // The database's clock: retirement times are compared by every replica.
            let now = time::from_db(crate::db::queries::clock::now(conn)?);
            let rows = key_queries::with_status(conn, EDDSA, &[ACTIVE, NEXT, RETIRING])?;
            let Some(key) = rows.iter().find(|r| r.kid == kid) else {
                return Ok(None);
            };
            key_queries::set_status(conn, kid, REVOKED, None, Some(time::to_db(now)))?;
            let mut active_kid = rows
                .iter()
                .find(|r| r.status == ACTIVE)
                .map(|r| r.kid.clone());
            if key.status == ACTIVE || key.status == NEXT {
                if key.status == ACTIVE {
                    active_kid = match rows.iter().find(|r| r.status == NEXT) {
                        Some(next) => {
                            key_queries::activate(conn, &next.kid, time::to_db(now))?;
                            Some(next.kid.clone())
                        }
                        None => {
                            let row = generate_ed25519(kek, ACTIVE, now)?;
                            key_queries::insert(conn, &row)?;
                            Some(row.kid)
                        }
                    };
                }
                key_queries::insert(conn, &generate_ed25519(kek, NEXT, now)?)?;
            }
            Ok(Some(Revocation {
                kid: kid.to_owned(),
                revoked_at: now,
                active_kid: active_kid.unwrap_or_default(),
            }))
        })?;
        self.reload(conn)?;
        Ok(revocation)
    }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub active_kid: String,
    pub retiring_kid: Option<String>,
    pub next_kid: String,
    pub retire_after: DateTime<Utc>,
}

/// What an emergency revocation did.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub kid: String,
    pub revoked_at: DateTime<Utc>,
    pub active_kid: String,
}

/// Why keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Config(String),
    #[error("signing keys: database error")]
    Db(#[from] DbError),
    #[error("{0}")]
    Corrupt(String),
    #[error("keys are not managed by tokend with HS256: change TOKEND_JWT_SECRET on every replica instead")]
    NotManaged,
    #[error("the next key was published less than the JWKS cache lifetime ago, so some verifiers may not know it yet; rotate in {retry_after_secs} s (or revoke the active key in an emergency)")]
    TooSoon { retry_after_secs: u64 },
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        KeyError::Db(DbError::Query(e))
    }
}

/// The contract's codes for key management refusals; other key failures are internal.
impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::NotManaged => ApiError::new(Code::KeysNotManaged, err.to_string()),
            KeyError::TooSoon { retry_after_secs } => {
                ApiError::new(Code::RotationTooSoon, err.to_string()).retry_after(retry_after_secs)
            }
            KeyError::Db(db) => ApiError::from(db),
            other => ApiError::internal("signing keys", &other),
        }
    }
}

/// A retiring key verifies until its `retire_after`.
fn usable(row: &SigningKeyRow, now: DateTime<Utc>) -> bool {
    row.status != RETIRING || row.retire_after.is_some_and(|t| time::from_db(t) > now)
}

fn version_of(rows: &[SigningKeyRow]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.kid.clone(), r.status.clone()))
        .collect();
    v.sort();
    v
}

fn hs256(secret: &[u8]) -> KeySet {
    let digest = Sha256::new()
        .chain_update(b"tokend-hs256-kid:")
        .chain_update(secret)
        .finalize();
    let kid = format!("hs256-{}", &hex::encode(digest)[..16]);
    let mut decoding = HashMap::new();
    decoding.insert(kid.clone(), DecodingKey::from_secret(secret));
    KeySet {
        generation: next_generation(),
        algorithm: Algorithm::HS256,
        signing_kid: kid,
        encoding: EncodingKey::from_secret(secret),
        decoding,
        jwks: json!({ "keys": [] }),
        version: Vec::new(),
    }
}

/// The key set from `next`, `active` and `retiring` rows (newest active signs).
fn build(rows: &[SigningKeyRow], kek: &Kek, now: DateTime<Utc>) -> Result<KeySet, KeyError> {
    let rows: Vec<&SigningKeyRow> = rows.iter().filter(|r| usable(r, now)).collect();
    let active = rows
        .iter()
        .filter(|r| r.status == ACTIVE)
        .max_by_key(|r| (r.activated_at, r.created_at))
        .ok_or_else(|| KeyError::Corrupt("no active signing key".into()))?;
    let der = kek
        .open(&active.kid, &active.sealed_private_key)
        .map_err(KeyError::Config)?;
    let mut decoding = HashMap::new();
    let mut jwks = Vec::new();
    for row in &rows {
        let key = DecodingKey::from_ed_components(&row.public_key).map_err(|e| {
            KeyError::Corrupt(format!("public key of {} is not valid: {e}", row.kid))
        })?;
        decoding.insert(row.kid.clone(), key);
        jwks.push(json!({
            "kty": "OKP", "crv": "Ed25519", "x": row.public_key,
            "kid": row.kid, "alg": EDDSA, "use": "sig",
        }));
    }
    Ok(KeySet {
        generation: next_generation(),
        algorithm: Algorithm::EdDSA,
        signing_kid: active.kid.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding,
        jwks: json!({ "keys": jwks }),
        version: version_of(&rows.iter().map(|r| (*r).clone()).collect::<Vec<_>>()),
    })
}

fn generate_ed25519(
    kek: &Kek,
    status: &str,
    now: DateTime<Utc>,
) -> Result<SigningKeyRow, KeyError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    let kid = jwk_thumbprint(&x);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| KeyError::Corrupt(format!("cannot encode the new key: {e}")))?;
    let sealed = kek.seal(&kid, der.as_bytes()).map_err(KeyError::Config)?;
    let now = time::to_db(now);
    Ok(SigningKeyRow {
        kid,
        algorithm: EDDSA.into(),
        public_key: x,
        sealed_private_key: sealed,
        status: status.into(),
        created_at: now,
        activated_at: (status == ACTIVE).then_some(now),
        retired_at: None,
        retire_after: None,
    })
}

/// RFC 7638 thumbprint of an Ed25519 JWK (members in lexicographic order, no spaces).
fn jwk_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// How long one key-sync read (and a scheduled rotation) may take before it counts as failed.
const KEY_POLL_DEADLINE: Duration = Duration::from_secs(5);

/// Keeps this replica's keys in step with the table (rotations, emergency revocations, keys
/// retiring), and rotates on schedule. Runs until the process ends. Each read has a deadline
/// and a stuck one is set aside (see [`super::polls`]); the reads count for the staleness
/// bound (a key revoked elsewhere reaches this replica by them).
pub async fn sync_forever(
    manager: DbManager,
    store: Arc<KeyStore>,
    interval: Duration,
    rotation_period: Option<Duration>,
    max_token_lifetime: Duration,
    publish_lead: Duration,
    freshness: Arc<super::freshness::Freshness>,
) {
    if !store.is_managed() {
        freshness.keys_not_synced();
        return;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<DbConnection> = None;
    let mut polls = super::polls::BoundedPolls::default();
    let mut failing = false;
    let mut last_rotation_check = std::time::Instant::now();
    loop {
        ticker.tick().await;
        let check_rotation =
            rotation_period.is_some() && last_rotation_check.elapsed() >= Duration::from_secs(60);
        if check_rotation {
            last_rotation_check = std::time::Instant::now();
        }
        let (m, c, s) = (manager.clone(), conn.take(), store.clone());
        let started = std::time::Instant::now();
        let result = polls
            .run(KEY_POLL_DEADLINE, move || {
                let mut c = match c {
                    Some(c) => c,
                    None => m.connect().map_err(|e| e.to_string())?,
                };
                let outcome = (|| -> Result<(), KeyError> {
                    if let (true, Some(period)) = (check_rotation, rotation_period) {
                        if let Some(r) =
                            s.rotate(&mut c, max_token_lifetime, Some(period), publish_lead)?
                        {
                            log::info!(
                                "scheduled key rotation: {} now signs, {:?} retiring",
                                r.active_kid,
                                r.retiring_kid
                            );
                        }
                        let now = crate::db::queries::clock::now(&mut c)?;
                        key_queries::retire_expired(&mut c, now)?;
                    }
                    if s.reload(&mut c)? {
                        log::info!(
                            "signing keys changed; now signing with {}",
                            s.current().signing_kid()
                        );
                    }
                    Ok(())
                })();
                match outcome {
                    Ok(()) => Ok(Some(c)),
                    Err(e) => Err(crate::error::cause_chain(&e)),
                }
            })
            .await;
        // Each change of state is logged once, not on every tick of an outage.
        match result.unwrap_or_else(|failure| Err(failure.to_string())) {
            Ok(c) => {
                conn = c;
                // A key revoked elsewhere is enforced here as of this read: it counts for
                // the staleness bound like a revocation sync.
                freshness.keys_synced(started);
                if failing {
                    log::info!("signing key sync recovered");
                    failing = false;
                }
            }
            // Once per outage, not on every tick (four times a second).
            Err(e) if !failing => {
                log::error!("signing key sync failed, key changes made elsewhere are not picked up until it recovers: {e}");
                failing = true;
            }
            Err(e) => log::debug!("signing key sync still failing: {e}"),
        }
    }
}
