//! Key material: Ed25519 key pairs generated and sealed with the key-encryption key, the HS256
//! key, and the in-memory [`KeySet`] (with its JWKS) built from the table's rows.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{next_generation, KeyError, KeySet, ACTIVE, EDDSA, RETIRING};
use crate::db::models::SigningKeyRow;
use crate::time;
use crate::tokens::kek::Kek;

/// A retiring key verifies until its `retire_after`.
pub(super) fn usable(row: &SigningKeyRow, now: DateTime<Utc>) -> bool {
    row.status != RETIRING || row.retire_after.is_some_and(|t| time::from_db(t) > now)
}

pub(super) fn version_of(rows: &[SigningKeyRow]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.kid.clone(), r.status.clone()))
        .collect();
    v.sort();
    v
}

pub(super) fn hs256(secret: &[u8]) -> KeySet {
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
pub(super) fn build(
    rows: &[SigningKeyRow],
    kek: &Kek,
    now: DateTime<Utc>,
) -> Result<KeySet, KeyError> {
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

pub(super) fn generate_ed25519(
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
