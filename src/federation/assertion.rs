//! An external JWT (a workload's identity token) checked in full: header first (so `alg:
//! none` and shared-secret algorithms never reach a key), then the signature with the key the
//! issuer's JWKS gives for the header's `kid` and `alg`, then `iss`, `aud`, `exp`, `nbf`,
//! `iat` (required, and no older than the issuer's `max_token_age_seconds`) and `sub`, each
//! with tokend's clock-skew leeway.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwks::PublicKey;
use super::spec::IssuerSpec;

/// The largest external token read (Kubernetes and GitHub tokens are 1–2 KiB).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// The longest `sub` kept as a workload's identity.
pub const MAX_SUBJECT: usize = 255;

/// What can be read from a token before its signature is checked: enough to find its
/// issuer and key, and nothing to trust.
#[derive(Debug, Clone)]
pub struct Unverified {
    pub iss: String,
    pub kid: Option<String>,
    pub alg: Algorithm,
}

/// Why an external token was refused, in words for its presenter. The token endpoint answers
/// it as `invalid_grant` (`oauth::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// The unverified `iss` of a compact JWS, if it is one (for routing a token exchange).
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.trim().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Reads the header and the unverified `iss`. Refuses what no key could ever verify.
pub fn peek(token: &str) -> Result<Unverified, Refused> {
    if token.len() > MAX_ASSERTION_BYTES {
        return Err(refused(format!(
            "the assertion is larger than {} KiB",
            MAX_ASSERTION_BYTES / 1024
        )));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refused(
            "the assertion is not a signed JWT (three base64url parts separated by dots)",
        ));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refused("the assertion's header is not base64url JSON"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let alg = match super::jwks::signature_algorithm(alg) {
        Some(alg) => alg,
        None => return Err(refuse_alg(alg)),
    };
    if header.get("crit").is_some() {
        return Err(refused(
            "the assertion's header has crit extensions, which tokend does not understand",
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(refused("the assertion's kid header must be a string")),
    };
    let iss = unverified_issuer(token).ok_or_else(|| {
        refused(
            "the assertion has no iss claim: tokend cannot tell which trusted issuer it is from",
        )
    })?;
    Ok(Unverified { iss, kid, alg })
}

/// A token whose signature and claims were checked.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// The workload's identity at its issuer.
    pub sub: String,
    /// When the token stops counting against its replay limit (Unix seconds): its `exp` or
    /// the end of its allowed age, whichever is sooner.
    pub counted_until: i64,
    /// SHA-256 of `iss` and `jti` (of the whole token without a `jti`), hex.
    pub replay_key: String,
}

/// A NumericDate claim (RFC 7519 §2): seconds, possibly with a fraction.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refused> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(|| refused(format!("the assertion's {name} is not a NumericDate"))),
    }
}

/// Checks a token against its issuer's key and settings at `now` (Unix seconds).
pub fn verify(
    token: &str,
    key: &PublicKey,
    spec: &IssuerSpec,
    leeway: Duration,
    now: i64,
) -> Result<Verified, Refused> {
    // Only the signature here: the claims are checked below, with messages that say which.
    let mut validation = Validation::new(key.algorithm());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<Value>(token, key.decoding_key(), &validation).map_err(|_| {
            refused(format!(
                "the assertion's signature does not verify with the issuer's key{}",
                key.kid()
                    .map(|k| format!(" {:?}", shown(k)))
                    .unwrap_or_default()
            ))
        })?;
    let Value::Object(claims) = data.claims else {
        return Err(refused("the assertion's payload is not a JSON object"));
    };
    if claims.get("iss").and_then(Value::as_str) != Some(spec.issuer.as_str()) {
        return Err(refused("the assertion's iss is not its issuer's exact URL"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err(refused("the assertion has no aud claim")),
    };
    if !audiences
        .iter()
        .any(|a| spec.audiences.iter().any(|want| want == a))
    {
        return Err(refused(format!(
            "the assertion's aud {:?} names none of the audiences this issuer's tokens must carry for tokend; request the token with one of them (a projected volume's audience, GitHub's audience parameter)",
            audiences.iter().map(|a| shown(a)).collect::<Vec<_>>()
        )));
    }
    let skew = i64::try_from(leeway.as_secs()).unwrap_or(0);
    let exp = numeric_date(&claims, "exp")?
        .ok_or_else(|| refused("the assertion has no exp claim; every token must expire"))?;
    if exp + skew <= now {
        return Err(refused(format!(
            "the assertion expired {} s ago; get a fresh token from its issuer",
            now - exp
        )));
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if nbf - skew > now {
            return Err(refused("the assertion is not valid yet (nbf)"));
        }
    }
    let iat = numeric_date(&claims, "iat")?.ok_or_else(|| {
        refused("the assertion has no iat claim; tokend needs it to bound the token's age")
    })?;
    if iat - skew > now {
        return Err(refused("the assertion was issued in the future (iat)"));
    }
    let max_age = i64::try_from(spec.max_token_age.as_secs()).unwrap_or(i64::MAX);
    if now - iat > max_age.saturating_add(skew) {
        return Err(refused(format!(
            "the assertion was issued {} s ago, longer than the {max_age} s this issuer's tokens may be used; get a fresh token",
            now - iat
        )));
    }
    let sub = match claims.get("sub").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.len() <= MAX_SUBJECT && !s.chars().any(char::is_control) => {
            s.to_owned()
        }
        _ => {
            return Err(refused(format!(
                "the assertion needs a sub claim (1 to {MAX_SUBJECT} characters): it names the workload"
            )))
        }
    };
    let mut digest = Sha256::new();
    match claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
    {
        Some(jti) => {
            digest.update(spec.issuer.as_bytes());
            digest.update([0]);
            digest.update(jti.as_bytes());
        }
        // Without a jti, the signed part: an ECDSA signature can be re-encoded (s -> n - s)
        // into another valid token, which must not count as another token.
        None => digest.update(
            token
                .rsplit_once('.')
                .map_or(token, |(signed, _)| signed)
                .as_bytes(),
        ),
    }
    Ok(Verified {
        counted_until: exp.min(iat.saturating_add(max_age)).saturating_add(skew),
        replay_key: hex::encode(digest.finalize()),
        sub,
        claims,
    })
}

/// Why a token's `alg` is refused before any key is looked at.
fn refuse_alg(alg: &str) -> Refused {
    match alg {
        "none" | "None" | "NONE" => refused(
            "the assertion is unsigned (alg none); only tokens signed with the issuer's published keys are accepted",
        ),
        hs if hs.starts_with("HS") => refused(format!(
            "the assertion uses {hs}, a shared-secret algorithm; external tokens must be signed with the issuer's public keys (RS256, ES256, EdDSA)"
        )),
        other => refused(format!(
            "the assertion's alg {:?} is not supported (RS256, ES256, EdDSA and their relatives)",
            shown(other)
        )),
    }
}
