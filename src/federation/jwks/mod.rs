//! JSON Web Key Sets: parsing a JWKS into verification keys, and [`JwksCache`], which fetches
//! remote sets and keeps them.
//!
//! Used for trusted issuers (workload federation) and meant for client assertions
//! (`private_key_jwt`) as well: anything that must check a signature with a key someone else
//! publishes. The defence against algorithm confusion lives here: a key's algorithm comes
//! from its own `kty`/`crv` (and `alg`, if it states one), never from the token, so an HS256
//! token "signed" with a public key, or `alg: none`, finds no key.
//!
//! The cache of remote sets, and how it fetches them, is [`cache`].

pub mod cache;

pub use cache::JwksCache;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The smallest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;
/// More keys than this in one set are not read (real sets hold a handful).
const MAX_KEYS: usize = 100;

/// One verification key of a JWKS, with the one algorithm it verifies.
pub struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// Why no key could be had for a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The keys cannot be had right now (endpoint down, no cache): retry later (503).
    #[error("the issuer's keys are unavailable: {0}")]
    Unavailable(String),
    /// The set has no key for this token (unknown kid, or none for its algorithm): the token
    /// is refused.
    #[error("{0}")]
    NoKey(String),
}

/// A parsed JWKS: the usable verification keys, and why the others were skipped.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: Vec<Arc<PublicKey>>,
    skipped: Vec<String>,
    private_parts: bool,
}

impl Jwks {
    /// Reads `{"keys": [...]}`. Keys tokend cannot use (encryption keys, symmetric keys, RSA
    /// under 2048 bits, unknown types) are skipped with a reason; a set that is not a JWKS at
    /// all is an error.
    pub fn parse(value: &Value) -> Result<Jwks, String> {
        let keys = value
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or("a JWKS is a JSON object with a \"keys\" array (RFC 7517 §5)")?;
        if keys.len() > MAX_KEYS {
            return Err(format!(
                "the JWKS has {} keys; at most {MAX_KEYS} are read",
                keys.len()
            ));
        }
        let mut set = Jwks::default();
        for (i, jwk) in keys.iter().enumerate() {
            if jwk
                .as_object()
                .is_some_and(|o| ["d", "p", "q", "k"].iter().any(|f| o.contains_key(*f)))
            {
                set.private_parts = true;
            }
            match parse_key(jwk) {
                Ok(key) => set.keys.push(Arc::new(key)),
                Err(why) => set.skipped.push(format!("key {i}: {why}")),
            }
        }
        Ok(set)
    }

    /// [`Jwks::parse`] of a body.
    pub fn parse_bytes(body: &[u8]) -> Result<Jwks, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        Self::parse(&value)
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Arc<PublicKey>] {
        &self.keys
    }

    /// Why keys were skipped.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Some key holds private or secret material (`d`, `p`, `q`, `k`): whoever published the
    /// set published what must stay secret.
    pub fn has_private_parts(&self) -> bool {
        self.private_parts
    }

    /// The key for a token's `kid` and `alg`. With a `kid`, the key of that id, which must be
    /// for `alg`; without one, the only key for `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<PublicKey>, JwksError> {
        match kid {
            Some(kid) => {
                let mut of_kid = self.keys.iter().filter(|k| k.kid() == Some(kid)).peekable();
                if of_kid.peek().is_none() {
                    return Err(JwksError::NoKey(format!(
                        "the issuer's JWKS has no key with kid {:?}",
                        shown(kid)
                    )));
                }
                let algs: Vec<String> = of_kid.clone().map(|k| format!("{:?}", k.alg)).collect();
                of_kid.find(|k| k.alg == alg).cloned().ok_or_else(|| {
                    JwksError::NoKey(format!(
                        "the key {:?} verifies {} only, but the token says {alg:?}",
                        shown(kid),
                        algs.join(", ")
                    ))
                })
            }
            None => {
                let mut of_alg = self.keys.iter().filter(|k| k.alg == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(key), None) => Ok(key.clone()),
                    (None, _) => Err(JwksError::NoKey(format!(
                        "the issuer's JWKS has no key for {alg:?}"
                    ))),
                    (Some(_), Some(_)) => Err(JwksError::NoKey(format!(
                        "the token has no kid and the issuer's JWKS holds several {alg:?} keys; \
                         the issuer must name its key in the token's kid header"
                    ))),
                }
            }
        }
    }
}

/// The public-key signature algorithm of a JOSE `alg` name; `None` for anything else (`none`,
/// the HMAC algorithms, encryption algorithms, unknown names).
pub fn signature_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// A kid for a message: short and printable.
fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn b64_len(field: &str, value: Option<&Value>) -> Result<Vec<u8>, String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| format!("\"{field}\" is missing"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("\"{field}\" is not base64url"))
}

/// One JWK as a verification key, or why not. The algorithm follows from the key type: RSA
/// keys verify RS256 (or the RSA algorithm their `alg` names), P-256 keys ES256, P-384 keys
/// ES384, Ed25519 keys EdDSA; symmetric keys nothing.
fn parse_key(jwk: &Value) -> Result<PublicKey, String> {
    let o = jwk.as_object().ok_or("not a JSON object")?;
    let text = |f: &str| o.get(f).and_then(Value::as_str);
    if let Some(usage) = o.get("use") {
        if usage.as_str() != Some("sig") {
            return Err(format!("\"use\" is {usage}, not \"sig\""));
        }
    }
    if let Some(ops) = o.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|a| a.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
    }
    let kid = match o.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
        Some(_) => return Err("\"kid\" must be a non-empty string".into()),
    };
    let stated = text("alg");
    let kty = text("kty").ok_or("\"kty\" is missing")?;
    let (alg, key) = match kty {
        "RSA" => {
            let n = b64_len("n", o.get("n"))?;
            b64_len("e", o.get("e"))?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "an RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            let alg = match signature_algorithm(stated.unwrap_or("RS256")) {
                Some(
                    alg @ (Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512),
                ) => alg,
                _ => return Err(format!("alg {stated:?} is not an RSA signature algorithm")),
            };
            let key = DecodingKey::from_rsa_components(
                text("n").unwrap_or_default(),
                text("e").unwrap_or_default(),
            )
            .map_err(|e| format!("an unreadable RSA key: {e}"))?;
            (alg, key)
        }
        "EC" => {
            let (alg, size) = match text("crv") {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                other => {
                    return Err(format!(
                        "EC curve {other:?} is not supported (P-256, P-384)"
                    ))
                }
            };
            if stated.is_some_and(|s| s != format!("{alg:?}")) {
                return Err(format!("alg {stated:?} does not fit a {alg:?} key"));
            }
            for coordinate in ["x", "y"] {
                if b64_len(coordinate, o.get(coordinate))?.len() != size {
                    return Err(format!(
                        "\"{coordinate}\" is not a coordinate of that curve"
                    ));
                }
            }
            let key = DecodingKey::from_ec_components(
                text("x").unwrap_or_default(),
                text("y").unwrap_or_default(),
            )
            .map_err(|e| format!("an unreadable EC key: {e}"))?;
            (alg, key)
        }
        "OKP" => {
            if text("crv") != Some("Ed25519") {
                return Err(format!(
                    "OKP curve {:?} is not supported (Ed25519)",
                    text("crv")
                ));
            }
            if stated.is_some_and(|s| s != "EdDSA" && s != "Ed25519") {
                return Err(format!("alg {stated:?} does not fit an Ed25519 key"));
            }
            if b64_len("x", o.get("x"))?.len() != 32 {
                return Err("\"x\" is not an Ed25519 public key".into());
            }
            let key = DecodingKey::from_ed_components(text("x").unwrap_or_default())
                .map_err(|e| format!("an unreadable Ed25519 key: {e}"))?;
            (Algorithm::EdDSA, key)
        }
        "oct" => return Err("symmetric keys (kty \"oct\") are never accepted".into()),
        other => return Err(format!("key type {other:?} is not supported")),
    };
    Ok(PublicKey { kid, alg, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ed_jwk(kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode([7u8; 32])})
    }

    #[test]
    fn the_algorithm_comes_from_the_key_never_the_token() {
        let set = Jwks::parse(&json!({"keys": [ed_jwk("a")]})).unwrap();
        assert!(set.find(Some("a"), Algorithm::EdDSA).is_ok());
        for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
            let err = set.find(Some("a"), alg).unwrap_err();
            assert!(matches!(err, JwksError::NoKey(_)), "{alg:?}");
        }
        assert!(set.find(None, Algorithm::EdDSA).is_ok());
        assert!(set.find(Some("b"), Algorithm::EdDSA).is_err());
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let set = Jwks::parse(&json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([1u8; 128]), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": URL_SAFE_NO_PAD.encode([7u8; 32])},
            {"kty": "EC", "crv": "P-256", "alg": "ES384", "x": "AA", "y": "AA"},
            ed_jwk("ok"),
        ]}))
        .unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.skipped().len(), 4, "{:?}", set.skipped());
        assert!(set.has_private_parts());
        assert!(Jwks::parse(&json!([1])).is_err());
        assert!(Jwks::parse(&json!({"keys": {}})).is_err());
    }

    #[test]
    fn several_keys_for_one_algorithm_need_a_kid() {
        let set = Jwks::parse(&json!({"keys": [ed_jwk("a"), ed_jwk("b")]})).unwrap();
        assert!(set.find(None, Algorithm::EdDSA).is_err());
        assert_eq!(
            set.find(Some("b"), Algorithm::EdDSA).unwrap().kid(),
            Some("b")
        );
    }
}
