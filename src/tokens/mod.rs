//! Tokens: claims, signing, verification, signing keys and the revocation set.
//!
//! [`TokenService`] is the one place that mints and checks tokens. Checking never touches
//! the database: signature and times are verified in memory against the loaded keys, and
//! revocation against the in-memory [`RevocationSet`].
//!
//! This file mints (`TokenService::mint`) and holds the types both directions share;
//! `verify.rs` is the hot path (with `jws.rs`, the single-pass decode, and `admission.rs`,
//! which tokens the cache takes in); [`keys`] the signing keys; [`revocation`] the set and its
//! sync; [`push`] the PostgreSQL wake-ups of that sync.

pub mod admission;
pub mod claims;
pub mod crypto;
pub mod encoding;
pub mod freshness;
mod jws;
pub mod kek;
pub mod keys;
pub mod polls;
pub mod push;
pub mod revocation;
mod revoked_ids;
pub mod rules;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::Header;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use claims::{Claims, IdentityType};
pub use keys::{KeyError, KeySet, KeyStore};
pub use revocation::RevocationSet;
pub use verify::VERIFIED_CACHE_ENTRIES;

use verify::Verified;

use crate::error::{ApiError, Code};
use crate::scope::{Scope, ScopePolicy};

/// Tokens longer than this are refused before any parsing work.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct TokenSubject<'a> {
    pub identity_id: i64,
    pub identity_type: IdentityType,
    pub name: &'a str,
    pub scope: Scope,
    pub metadata: &'a Map<String, Value>,
    /// The `act` claim (token exchange only).
    pub act: Option<&'a Map<String, Value>>,
}

/// A freshly signed token. The token itself is shown once and never stored.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    pub jti: Uuid,
    pub kid: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub fingerprint: String,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token at all, or one we cannot have issued.
    Invalid(String),
    Expired {
        at: Option<i64>,
    },
    Revoked {
        jti: Uuid,
        identity_id: i64,
    },
    /// This replica cannot judge tokens now (stale revocation state, clock skew).
    Unavailable(freshness::Refusal),
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        match e {
            TokenError::Invalid(why) => ApiError::new(Code::InvalidToken, why),
            TokenError::Expired { at } => {
                let when = at
                    .map(|t| format!(" at {}", crate::time::format(&crate::time::from_unix(t))))
                    .unwrap_or_default();
                ApiError::new(
                    Code::TokenExpired,
                    format!("the token expired{when}; refresh it or ask for a new one"),
                )
            }
            TokenError::Revoked { .. } => ApiError::new(
                Code::TokenRevoked,
                "the token was revoked; ask an administrator for a new one",
            ),
            TokenError::Unavailable(why) => {
                let code = match why {
                    freshness::Refusal::Stale { .. } => Code::RevocationStateStale,
                    freshness::Refusal::ClockSkew { .. } => Code::ClockSkew,
                };
                ApiError::new(code, why.to_string()).retry_after(why.retry_after_secs())
            }
        }
    }
}

/// Mints and verifies tokens.
pub struct TokenService {
    keys: Arc<KeyStore>,
    revocations: Arc<RevocationSet>,
    issuer: String,
    audience: String,
    /// Allowed clock difference for `exp` and `nbf`, in seconds.
    leeway_secs: i64,
    /// Verified tokens by their whole text. A hit still checks expiry, `nbf` and revocation.
    verified: crate::fastmap::FastMap<Box<str>, Verified>,
    /// Which verified tokens `verified` takes in: those verified twice.
    admission: admission::Doorkeeper,
    /// The longest lifetime a token of each scope may claim (without the leeway): a longer
    /// one is not a token tokend issued.
    lifetime_ceilings: [(Scope, Duration); 5],
}

impl TokenService {
    pub fn new(
        keys: Arc<KeyStore>,
        revocations: Arc<RevocationSet>,
        issuer: String,
        audience: String,
        leeway: Duration,
        scopes: ScopePolicy,
    ) -> TokenService {
        crypto::install();
        TokenService {
            keys,
            revocations,
            issuer,
            audience,
            leeway_secs: i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX),
            verified: crate::fastmap::FastMap::default(),
            admission: admission::Doorkeeper::default(),
            lifetime_ceilings: Scope::ALL.map(|scope| (scope, scopes.lifetime_ceiling(scope))),
        }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    pub fn revocations(&self) -> &RevocationSet {
        &self.revocations
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.leeway_secs.unsigned_abs())
    }

    /// Signs a token for `subject`, valid from `now` for `ttl`.
    pub fn mint(
        &self,
        subject: &TokenSubject<'_>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<MintedToken, jsonwebtoken::errors::Error> {
        let keys = self.keys.current();
        let jti = Uuid::new_v4();
        let iat = now.timestamp();
        let exp = iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.name.to_owned(),
            jti,
            iat,
            nbf: iat,
            exp,
            identity_id: subject.identity_id,
            identity_type: subject.identity_type,
            scope: subject.scope,
            metadata: subject.metadata.clone(),
            act: subject.act.cloned(),
            kid: keys.signing_kid().to_owned(),
        };
        let mut header = Header::new(keys.algorithm());
        header.typ = Some("JWT".into());
        header.kid = Some(keys.signing_kid().to_owned());
        let token = encoding::encode(&header, &claims, keys.encoding_key(), keys.algorithm())?;
        Ok(MintedToken {
            fingerprint: fingerprint(&token),
            token,
            jti,
            kid: keys.signing_kid().to_owned(),
            issued_at: crate::time::from_unix(iat),
            expires_at: crate::time::from_unix(exp),
        })
    }
}

/// Refuses tokens longer than [`MAX_TOKEN_BYTES`] before any other work (hashing included).
fn ensure_size(token: &str) -> Result<(), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes; tokend never issues such tokens"
        )));
    }
    Ok(())
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

/// A short, non-secret fingerprint of a token: the first 16 hex digits of its SHA-256.
/// `printf %s "$TOKEN" | sha256sum | cut -c1-16` gives the same value.
pub fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        service_with(ScopePolicy::default())
    }

    fn service_with(scopes: ScopePolicy) -> TokenService {
        let keys = Arc::new(KeyStore::new(KeySet::ephemeral_ed25519().unwrap()));
        TokenService::new(
            keys,
            Arc::new(RevocationSet::new()),
            "tokend".into(),
            "tokend-tests".into(),
            Duration::ZERO,
            scopes,
        )
    }

    fn mint(tokens: &TokenService, ttl: Duration, now: DateTime<Utc>) -> MintedToken {
        let metadata = Map::new();
        let subject = TokenSubject {
            identity_id: 1,
            identity_type: IdentityType::ServiceAccount,
            name: "sensor:cache",
            scope: Scope::Cli,
            metadata: &metadata,
            act: None,
        };
        tokens.mint(&subject, ttl, now).unwrap()
    }

    #[test]
    fn a_cached_token_is_still_checked_for_revocation() {
        let tokens = service();
        let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
        tokens.verify(&minted.token).unwrap();
        let first = tokens.verify(&minted.token).unwrap();
        let second = tokens.verify(&minted.token).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "the third check is a cache hit"
        );
        tokens.revocations().insert(minted.jti, first.exp);
        assert!(matches!(
            tokens.verify(&minted.token),
            Err(TokenError::Revoked { .. })
        ));
    }

    #[test]
    fn a_cached_token_still_expires() {
        let tokens = service();
        // Valid for one more second.
        let minted = mint(
            &tokens,
            Duration::from_secs(11),
            Utc::now() - chrono::Duration::seconds(10),
        );
        tokens.verify(&minted.token).unwrap();
        tokens.verify(&minted.token).unwrap();
        assert_eq!(tokens.verified.len(), 1);
        std::thread::sleep(Duration::from_millis(2100));
        assert!(matches!(
            tokens.verify(&minted.token),
            Err(TokenError::Expired { .. })
        ));
        tokens.prune_verified(Utc::now().timestamp());
        assert!(tokens.verified.is_empty(), "pruning forgets expired tokens");
    }

    #[test]
    fn a_use_is_noted_once_per_period() {
        let tokens = service();
        let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
        let noted = |period| tokens.verify_noting_use(&minted.token, period).unwrap().1;
        assert!(noted(60), "the first use is noted");
        assert!(
            noted(60),
            "and the second, which puts the token in the cache"
        );
        assert!(!noted(60), "a third use in the same minute is not");
        assert!(noted(0), "a use after the period is");
    }

    #[test]
    fn a_token_seen_once_is_not_remembered() {
        let tokens = service();
        for _ in 0..100 {
            let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
            tokens.verify(&minted.token).unwrap();
        }
        assert!(
            tokens.verified.is_empty(),
            "no cache entry for one-time tokens"
        );
        let twice = mint(&tokens, Duration::from_secs(600), Utc::now());
        tokens.verify(&twice.token).unwrap();
        tokens.verify(&twice.token).unwrap();
        assert_eq!(tokens.verified.len(), 1, "a token seen twice is remembered");
    }

    #[test]
    fn a_full_cache_keeps_remembering_new_tokens() {
        let tokens = service();
        let filler = tokens
            .verify(&mint(&tokens, Duration::from_secs(600), Utc::now()).token)
            .unwrap();
        let generation = tokens.keys.generation();
        {
            let verified = tokens.verified.pin();
            for i in 0..VERIFIED_CACHE_ENTRIES {
                let entry = Verified::new(filler.clone(), generation, 0);
                verified.insert(format!("filler-{i}").into(), entry);
            }
        }
        let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
        tokens.verify(&minted.token).unwrap();
        let first = tokens.verify(&minted.token).unwrap();
        let second = tokens.verify(&minted.token).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "remembered although the cache was full"
        );
        assert!(
            tokens.verified.len() <= VERIFIED_CACHE_ENTRIES,
            "and it did not grow"
        );
    }

    #[test]
    fn a_lifetime_over_the_scope_maximum_is_refused() {
        let tokens = service();
        let max = ScopePolicy::default().bounds(Scope::Cli).max;
        // What tokend mints at most verifies; one second more does not.
        let at_max = mint(&tokens, max, Utc::now());
        tokens.verify(&at_max.token).unwrap();
        let over = mint(&tokens, max + Duration::from_secs(1), Utc::now());
        let Err(TokenError::Invalid(why)) = tokens.verify(&over.token) else {
            panic!("a token living longer than its scope allows was accepted");
        };
        assert!(why.contains("at most 30d"), "{why}");
        // Also with `nbf` long before `iat`.
        let keys = tokens.keys.current();
        let mut claims = tokens.verify(&at_max.token).unwrap().as_ref().clone();
        claims.nbf -= 86_400;
        claims.exp -= 3_600;
        let mut header = Header::new(keys.algorithm());
        header.kid = Some(keys.signing_kid().to_owned());
        let early =
            encoding::encode(&header, &claims, keys.encoding_key(), keys.algorithm()).unwrap();
        assert!(matches!(tokens.verify(&early), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn configured_bounds_raise_the_lifetime_ceiling_but_never_lower_it() {
        const DAY: u64 = 86_400;
        let mut raised = ScopePolicy::default();
        raised.set_bounds_from_spec(Scope::Cli, "7d:60d").unwrap();
        let tokens = service_with(raised);
        let long = mint(&tokens, Duration::from_secs(60 * DAY), Utc::now());
        tokens.verify(&long.token).unwrap();
        let mut lowered = ScopePolicy::default();
        lowered.set_bounds_from_spec(Scope::Cli, "1d:2d").unwrap();
        let tokens = service_with(lowered);
        // Issued before the bounds were lowered: still good until it expires.
        let before = mint(&tokens, Duration::from_secs(30 * DAY), Utc::now());
        tokens.verify(&before.token).unwrap();
        let over = mint(&tokens, Duration::from_secs(30 * DAY + 1), Utc::now());
        assert!(matches!(
            tokens.verify(&over.token),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_crit_header_is_refused() {
        let tokens = service();
        let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
        let claims = tokens.verify(&minted.token).unwrap();
        let keys = tokens.keys.current();
        let mut header = Header::new(keys.algorithm());
        header.kid = Some(keys.signing_kid().to_owned());
        header.crit = Some(vec!["exp".into()]);
        let token = encoding::encode(
            &header,
            claims.as_ref(),
            keys.encoding_key(),
            keys.algorithm(),
        )
        .unwrap();
        assert!(matches!(tokens.verify(&token), Err(TokenError::Invalid(_))));
        assert!(matches!(
            tokens.verify_signature(&token),
            Err(TokenError::Invalid(_))
        ));
    }

    /// A flood of wrongly signed or malformed tokens never enters the cache, so it cannot
    /// push out the tokens that are in use (only a verified token is remembered).
    #[test]
    fn bad_tokens_never_displace_warm_ones() {
        let tokens = service();
        let warm = mint(&tokens, Duration::from_secs(600), Utc::now());
        tokens.verify(&warm.token).unwrap();
        let first = tokens.verify(&warm.token).unwrap();
        for i in 0..200 {
            let mut bad = mint(&tokens, Duration::from_secs(600), Utc::now())
                .token
                .into_bytes();
            let at = bad.len() - 10;
            bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(tokens.verify(&bad).is_err());
            assert!(tokens.verify(&format!("garbage.{i}.x")).is_err());
        }
        assert_eq!(
            tokens.verified.len(),
            1,
            "only the verified token is remembered"
        );
        let again = tokens.verify(&warm.token).unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the warm token is still a cache hit"
        );
    }

    #[test]
    fn a_tampered_copy_of_a_cached_token_is_not_a_hit() {
        let tokens = service();
        let minted = mint(&tokens, Duration::from_secs(600), Utc::now());
        tokens.verify(&minted.token).unwrap();
        // Change one character in the middle of the signature.
        let mut tampered = minted.token.clone().into_bytes();
        let at = tampered.len() - 10;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(
            tokens.verify(&tampered),
            Err(TokenError::Invalid(_))
        ));
    }
}
