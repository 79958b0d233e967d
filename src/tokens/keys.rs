//! Signing keys: created once in the shared database, loaded by every replica.
//!
//! EdDSA (default): an Ed25519 key pair is generated on first start and stored in
//! `signing_key`, its private half sealed with the key-encryption key. Its `kid` is the RFC 7638
//! JWK thumbprint of the public key. HS256: the shared secret from the settings, never stored;
//! its `kid` is derived from a hash of the secret.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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
use crate::db::{write_transaction, DbConnection, DbError};

const EDDSA: &str = "EdDSA";
const ACTIVE: &str = "active";

/// One immutable set of keys: the one that signs, and all that verify.
pub struct KeySet {
    algorithm: Algorithm,
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Value,
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

    /// `{"keys": [...]}`: the public keys (none for HS256).
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }
}

impl KeySet {
    /// A fresh Ed25519 key held only in memory: for fuzzing and tests that need no database.
    pub fn ephemeral_ed25519() -> Result<KeySet, KeyError> {
        let kek = Kek::from_bytes(&[0u8; 32]);
        let row = generate_ed25519(&kek)?;
        let der = kek
            .open(&row.kid, &row.sealed_private_key)
            .map_err(KeyError::Config)?;
        let decoding = DecodingKey::from_ed_components(&row.public_key)
            .map_err(|e| KeyError::Corrupt(e.to_string()))?;
        Ok(KeySet {
            algorithm: Algorithm::EdDSA,
            signing_kid: row.kid.clone(),
            encoding: EncodingKey::from_ed_der(&der),
            decoding: HashMap::from([(row.kid.clone(), decoding)]),
            jwks: json!({"keys": []}),
        })
    }
}

/// The current [`KeySet`], swapped atomically when keys change; readers never lock.
pub struct KeyStore {
    current: ArcSwap<KeySet>,
}

impl KeyStore {
    pub fn new(keys: KeySet) -> KeyStore {
        KeyStore {
            current: ArcSwap::from_pointee(keys),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Loads the keys for the configured algorithm, creating the first EdDSA key if the
    /// database has none (once, even when several replicas start together).
    pub fn load_or_create(
        conn: &mut DbConnection,
        settings: &Settings,
    ) -> Result<KeyStore, KeyError> {
        let keys = match &settings.jwt {
            JwtAlgorithm::Hs256 { secret } => hs256(secret.expose_secret().as_bytes()),
            JwtAlgorithm::EdDsa => {
                let kek = Kek::load(settings).map_err(KeyError::Config)?;
                eddsa(conn, &kek)?
            }
        };
        Ok(KeyStore::new(keys))
    }
}

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Config(String),
    #[error("signing keys: database error")]
    Db(#[from] DbError),
    #[error("{0}")]
    Corrupt(String),
}

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        KeyError::Db(DbError::Query(e))
    }
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
        algorithm: Algorithm::HS256,
        signing_kid: kid,
        encoding: EncodingKey::from_secret(secret),
        decoding,
        jwks: json!({ "keys": [] }),
    }
}

fn eddsa(conn: &mut DbConnection, kek: &Kek) -> Result<KeySet, KeyError> {
    let rows = write_transaction(conn, |conn| -> Result<Vec<SigningKeyRow>, KeyError> {
        key_queries::lock_key_creation(conn)?;
        let rows = key_queries::with_status(conn, EDDSA, &[ACTIVE])?;
        if !rows.is_empty() {
            return Ok(rows);
        }
        let row = generate_ed25519(kek)?;
        key_queries::insert(conn, &row)?;
        log::info!("generated the first Ed25519 signing key, kid {}", row.kid);
        Ok(vec![row])
    })?;
    let newest = rows
        .first()
        .ok_or_else(|| KeyError::Corrupt("no signing key after creation".into()))?;
    let der = kek
        .open(&newest.kid, &newest.sealed_private_key)
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
        algorithm: Algorithm::EdDSA,
        signing_kid: newest.kid.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding,
        jwks: json!({ "keys": jwks }),
    })
}

fn generate_ed25519(kek: &Kek) -> Result<SigningKeyRow, KeyError> {
    let signing = SigningKey::generate(&mut rand::rngs::OsRng);
    let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
    let kid = jwk_thumbprint(&x);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| KeyError::Corrupt(format!("cannot encode the new key: {e}")))?;
    let sealed = kek.seal(&kid, der.as_bytes()).map_err(KeyError::Config)?;
    let now = crate::time::to_db(crate::time::now());
    Ok(SigningKeyRow {
        kid,
        algorithm: EDDSA.into(),
        public_key: x,
        sealed_private_key: sealed,
        status: ACTIVE.into(),
        created_at: now,
        activated_at: Some(now),
        retired_at: None,
    })
}

/// RFC 7638 thumbprint of an Ed25519 JWK (members in lexicographic order, no spaces).
fn jwk_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}
