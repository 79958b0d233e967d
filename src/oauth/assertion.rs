//! Client assertions (`private_key_jwt`, RFC 7523 §2.2 and §3): a client proves who it is with
//! a short-lived JWT signed by its own private key, checked against the public keys its
//! service account registered. Each assertion is good for one request (its `jti` is counted
//! in the database, so the rule holds across replicas).

use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::clients::{self, parse_client_id, AuthenticatedClient};
use super::error::OAuthError;
use crate::db::queries::federation as replays;
use crate::db::DbConnection;
use crate::federation::PublicKey;
use crate::time;

/// The longest an assertion may live: it is made for one request.
pub const MAX_ASSERTION_LIFE: Duration = Duration::from_secs(600);

/// What the header and the unverified claims say, enough to find the key.
#[derive(Debug, Clone)]
pub struct Peeked {
    pub identity_id: i64,
    pub client_id: String,
    pub kid: Option<String>,
    pub alg: Algorithm,
}

fn refused(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(why.into())
}

/// Reads an assertion's client (its `iss`) and key id without trusting either.
pub fn peek(assertion: &str, client_id_param: Option<&str>) -> Result<Peeked, OAuthError> {
    let unverified = crate::federation::assertion::peek(assertion).map_err(|e| {
        refused(format!(
            "client assertion: {}",
            e.0.replace("the assertion", "it")
        ))
    })?;
    let identity_id = parse_client_id(&unverified.iss).ok_or_else(|| {
        refused("the client assertion's iss must be the client_id (sa-<identity id>)")
    })?;
    if client_id_param.is_some_and(|c| c != unverified.iss) {
        return Err(refused(
            "the client_id parameter differs from the client assertion's iss",
        ));
    }
    Ok(Peeked {
        identity_id,
        client_id: unverified.iss,
        kid: unverified.kid,
        alg: unverified.alg,
    })
}

/// An assertion whose signature and claims were checked; its use is counted by
/// [`authenticate`].
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    pub identity_id: i64,
    replay_key: String,
    counted_until: i64,
}

/// Checks an assertion with the client's key: `iss` = `sub` = the client, `aud` one of
/// `audiences` (tokend's issuer; its endpoints' URLs under `TOKEND_PUBLIC_URL`), `exp` required and at most
/// [`MAX_ASSERTION_LIFE`] away, a `jti`.
pub fn verify(
    assertion: &str,
    key: &PublicKey,
    peeked: &Peeked,
    audiences: &[String],
    leeway: Duration,
    now: i64,
) -> Result<VerifiedAssertion, OAuthError> {
    let mut validation = Validation::new(key.algorithm());
    validation.set_issuer(&[peeked.client_id.as_str()]);
    validation.sub = Some(peeked.client_id.clone());
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = leeway.as_secs();
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(assertion, key.decoding_key(), &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                refused(match e.kind() {
            ErrorKind::InvalidSignature => {
                "the client assertion's signature does not verify with the client's registered keys"
                    .to_owned()
            }
            ErrorKind::ExpiredSignature => {
                "the client assertion has expired; sign a new one".to_owned()
            }
            ErrorKind::InvalidAudience => format!(
                "the client assertion's aud must be the token endpoint's URL ({})",
                audiences.first().map(String::as_str).unwrap_or_default()
            ),
            ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                "the client assertion's iss and sub must both be the client_id".to_owned()
            }
            ErrorKind::MissingRequiredClaim(c) => format!("the client assertion has no {c} claim"),
            ErrorKind::ImmatureSignature => {
                "the client assertion is not valid yet (nbf)".to_owned()
            }
            _ => format!("the client assertion is not valid: {e}"),
        })
            })?;
    let claims = data.claims;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let longest = i64::try_from(MAX_ASSERTION_LIFE.as_secs()).unwrap_or(600);
    if exp - now > longest + i64::try_from(leeway.as_secs()).unwrap_or(0) {
        return Err(refused(format!(
            "the client assertion lives {} s; at most {longest} s: it is made for one request",
            exp - now
        )));
    }
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() && j.len() <= 256 && !j.chars().any(char::is_control) => j,
        _ => {
            return Err(refused(
                "the client assertion has no jti: each needs a unique one",
            ))
        }
    };
    let mut digest = Sha256::new();
    digest.update(b"client_assertion\0");
    digest.update(peeked.client_id.as_bytes());
    digest.update(b"\0");
    digest.update(jti.as_bytes());
    Ok(VerifiedAssertion {
        identity_id: peeked.identity_id,
        replay_key: hex::encode(digest.finalize()),
        counted_until: exp + i64::try_from(leeway.as_secs()).unwrap_or(0),
    })
}

/// Counts the assertion's one use and reads the client's account. Run in the grant's
/// transaction where there is one.
pub fn authenticate(
    conn: &mut DbConnection,
    verified: &VerifiedAssertion,
) -> Result<AuthenticatedClient, OAuthError> {
    let until = time::to_db(time::from_unix(verified.counted_until));
    if !replays::count_use(conn, &verified.replay_key, until, 1)? {
        return Err(refused(
            "this client assertion was used already: sign a new one, with a new jti, for each request",
        ));
    }
    let account = clients::live_account(conn, verified.identity_id, time::now())?;
    Ok(AuthenticatedClient {
        client_id: clients::client_id(verified.identity_id),
        account,
        method: "private_key_jwt",
        secret_id: None,
    })
}
