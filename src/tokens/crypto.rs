//! jsonwebtoken's crypto provider, with the Ed25519 public keys kept decoded.
//!
//! The stock RustCrypto provider rebuilds the `VerifyingKey` from its 32 bytes for every token
//! it checks: a point decompression of about 6 µs, a sixth of a whole verification. This
//! provider is the stock one except that it remembers each decoded key (tokend verifies with a
//! handful: the active, next and retiring keys). The signature check itself is unchanged:
//! `ed25519_dalek`'s `Verifier::verify`, as in jsonwebtoken.

use std::sync::OnceLock;

use ed25519_dalek::ed25519::signature::{Error as SignatureError, Verifier};
use ed25519_dalek::{Signature, VerifyingKey};
use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{Algorithm, DecodingKey};

/// More distinct keys than this are decoded every time instead of remembered.
const MAX_KEPT_KEYS: usize = 64;

static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();

/// Decoded keys by their encoded bytes; read without a lock.
static KEYS: OnceLock<crate::fastmap::FastMap<[u8; 32], VerifyingKey>> = OnceLock::new();

/// Makes this provider jsonwebtoken's process-wide default. Call it before the first token is
/// signed or checked; later calls (and a default already chosen) leave things as they are.
pub fn install() {
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        verifier_factory,
        ..rust_crypto::DEFAULT_PROVIDER.clone()
    });
    let _ = provider.install_default();
}

fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match algorithm {
        Algorithm::EdDSA => Ok(Box::new(Ed25519Verifier(verifying_key(key)?))),
        _ => (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key),
    }
}

fn verifying_key(key: &DecodingKey) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = key
        .try_get_as_bytes()?
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or(ErrorKind::InvalidEddsaKey)?;
    let kept = KEYS.get_or_init(crate::fastmap::FastMap::default).pin();
    if let Some(decoded) = kept.get(&bytes) {
        return Ok(*decoded);
    }
    let decoded = VerifyingKey::from_bytes(&bytes).map_err(|_| ErrorKind::InvalidEddsaKey)?;
    if kept.len() < MAX_KEPT_KEYS {
        kept.insert(bytes, decoded);
    }
    Ok(decoded)
}

struct Ed25519Verifier(VerifyingKey);

impl Verifier<Vec<u8>> for Ed25519Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        self.0.verify(msg, &Signature::from_slice(signature)?)
    }
}

impl JwtVerifier for Ed25519Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}
