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

mod lifecycle;
mod material;
mod sync;

pub use sync::sync_forever;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::Value;

use material::{build, generate_ed25519, hs256};

use crate::db::DbError;
use crate::error::{ApiError, Code};
use crate::time;
use crate::tokens::kek::Kek;

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
