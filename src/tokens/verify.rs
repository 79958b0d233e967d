//! Verification, the hot path: a presented token checked in memory (size, signature, registered
//! claims, lifetime, revocation), with the cache of tokens verified before. No database access.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Header;

use super::{ensure_size, invalid, jws, Claims, TokenError, TokenService};

/// How many verified tokens are remembered (a repeat skips signature and JSON work).
pub const VERIFIED_CACHE_ENTRIES: usize = 32 * 1024;

/// A token that passed the signature and claim checks, remembered by its whole text.
pub(super) struct Verified {
    claims: Arc<Claims>,
    /// The key set it was checked against: a key change (rotation, emergency revocation)
    /// makes every entry stale.
    generation: u64,
    /// When a use of it was last noted (UNIX seconds), for `last_used_at`.
    noted_use: AtomicI64,
}

impl Verified {
    pub(super) fn new(claims: Arc<Claims>, generation: u64, noted_use: i64) -> Verified {
        Verified {
            claims,
            generation,
            noted_use: AtomicI64::new(noted_use),
        }
    }
}

impl TokenService {
    /// Checks a presented token: size, shape, algorithm, key, signature, `iss`, `aud`,
    /// `nbf`, `exp` (with leeway), then revocation. No database access.
    ///
    /// A token verified before (and still in the cache, against the same keys) skips the
    /// signature and JSON work; its times and its revocation are checked on every call.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        self.check(token, None).map(|(claims, _)| claims)
    }

    /// [`TokenService::verify`], and whether this is the token's first use in `period_secs`
    /// (the mark is kept with the cached token: no extra lookup).
    pub fn verify_noting_use(
        &self,
        token: &str,
        period_secs: i64,
    ) -> Result<(Arc<Claims>, bool), TokenError> {
        self.check(token, Some(period_secs))
    }

    fn check(
        &self,
        token: &str,
        use_period: Option<i64>,
    ) -> Result<(Arc<Claims>, bool), TokenError> {
        ensure_size(token)?;
        let now = chrono::Utc::now().timestamp();
        let generation = self.keys.generation();
        let cached = {
            let verified = self.verified.pin();
            verified
                .get(token)
                .filter(|v| v.generation == generation)
                .map(|v| {
                    let first_use = use_period.is_some_and(|period| {
                        let noted = v.noted_use.load(Ordering::Relaxed);
                        now - noted >= period
                            && v.noted_use
                                .compare_exchange(noted, now, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                    });
                    (v.claims.clone(), first_use)
                })
        };
        let (claims, first_use) = match cached {
            Some((claims, first_use)) => {
                let leeway = self.leeway_secs;
                if claims.exp < now - leeway {
                    return Err(TokenError::Expired {
                        at: Some(claims.exp),
                    });
                }
                if claims.nbf > now + leeway {
                    return Err(invalid("the token is not valid yet (nbf is in the future)"));
                }
                (claims, first_use)
            }
            None => {
                let claims = Arc::new(self.decode(token, Some(now))?);
                // A token seen once is not remembered (see `admission`). Its use is noted on
                // each check until it is: twice instead of once in its first period.
                if self.admission.admit(token) {
                    self.remember(token, &claims, generation, use_period.map(|_| now));
                }
                (claims, use_period.is_some())
            }
        };
        // Fail closed: a replica that cannot know whether the token was revoked (or what
        // time it is) refuses it rather than guess.
        self.revocations
            .freshness()
            .check()
            .map_err(TokenError::Unavailable)?;
        if self.revocations.refuses(&claims) {
            return Err(TokenError::Revoked {
                jti: claims.jti,
                identity_id: claims.identity_id,
            });
        }
        Ok((claims, first_use))
    }

    /// Keeps a verified token, so that its next checks skip the signature and the JSON.
    fn remember(&self, token: &str, claims: &Arc<Claims>, generation: u64, noted: Option<i64>) {
        let verified = self.verified.pin();
        if verified.len() >= VERIFIED_CACHE_ENTRIES {
            // Full: forget one entry in sixteen (in hash order, so arbitrary ones) and keep
            // remembering new tokens, rather than freezing the first ones seen.
            let mut seen = 0u32;
            verified.retain(|_, _| {
                seen += 1;
                !seen.is_multiple_of(16)
            });
        }
        let entry = Verified::new(claims.clone(), generation, noted.unwrap_or(0));
        verified.insert(token.into(), entry);
    }

    /// Forgets verified tokens that expired before `before` or were checked against keys no
    /// longer in use, making room for new ones.
    pub fn prune_verified(&self, before: i64) {
        let generation = self.keys.generation();
        self.verified
            .pin()
            .retain(|_, v| v.claims.exp >= before && v.generation == generation);
    }

    /// Whether tokend issued this token (signature, `iss`, `aud`), however old it is and
    /// whether or not it was revoked.
    pub fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        self.decode(token, None)
    }

    /// Checks a token in one pass over it (see [`jws`]): the header (`crit`, `alg`, `kid`), the
    /// signature, then the claims: `exp` and `nbf` against `now` with the leeway (unless
    /// `now` is `None`: only whether tokend issued it), `iss`, `aud` and the scope's lifetime.
    fn decode(&self, token: &str, now: Option<i64>) -> Result<Claims, TokenError> {
        ensure_size(token)?;
        let jws = jws::Compact::split(token).ok_or_else(|| {
            invalid("the token is not a JWS in compact form (header.payload.signature)")
        })?;
        let keys = self.keys.current();
        let header: Header = jws
            .header()
            .ok_or_else(|| invalid("the token header is not valid"))?;
        // RFC 7515 4.1.11: a verifier must refuse extensions it does not understand; tokend
        // understands none (and never writes `crit`).
        if header.crit.is_some() {
            return Err(invalid(
                "the token header lists critical extensions (crit); tokend supports none",
            ));
        }
        // Pinned to the one configured algorithm: a token naming any other is refused.
        if header.alg != keys.algorithm() {
            return Err(invalid(format!(
                "tokens signed with {:?} are not accepted here",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no signing key (kid)"))?;
        let key = keys
            .decoding_key(&kid)
            .ok_or_else(|| invalid("the token was signed by a key this service does not know"))?;
        jws.check_signature(key, header.alg).map_err(|e| match e {
            jws::SignatureError::Mismatch => invalid("the token signature does not match"),
            jws::SignatureError::Malformed => invalid("the token is malformed"),
        })?;
        // Every registered claim tokend relies on is a required field of `Claims`: a token
        // without one does not parse.
        let mut claims = jws
            .claims()
            .ok_or_else(|| invalid("the token is malformed"))?;
        self.check_registered(&claims, now)?;
        self.check_lifetime(&claims)?;
        claims.kid = kid;
        Ok(claims)
    }

    /// RFC 7519 4.1: `exp` and `nbf` with the leeway (when `now` is given), then `iss` and
    /// `aud`, which must be exactly tokend's.
    fn check_registered(&self, claims: &Claims, now: Option<i64>) -> Result<(), TokenError> {
        if let Some(now) = now {
            if claims.exp < now.saturating_sub(self.leeway_secs) {
                return Err(TokenError::Expired {
                    at: Some(claims.exp),
                });
            }
            if claims.nbf > now.saturating_add(self.leeway_secs) {
                return Err(invalid("the token is not valid yet (nbf is in the future)"));
            }
        }
        if claims.iss != self.issuer {
            return Err(invalid("the token was issued by another issuer"));
        }
        if claims.aud != self.audience {
            return Err(invalid("the token was issued for another audience"));
        }
        Ok(())
    }

    /// Refuses a token that claims to live (from `iat` or `nbf`, whichever is earlier, to
    /// `exp`) longer than its scope's maximum TTL plus the leeway: tokend never mints one.
    /// (The maximum is never below the built-in one: see [`ScopePolicy::lifetime_ceiling`].)
    fn check_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        let max = self
            .lifetime_ceilings
            .iter()
            .find_map(|(scope, max)| (*scope == claims.scope).then_some(*max))
            .unwrap_or_default();
        let allowed = i64::try_from((max + self.leeway()).as_secs()).unwrap_or(i64::MAX);
        let lifetime = claims.exp.saturating_sub(claims.iat.min(claims.nbf));
        if lifetime <= allowed {
            return Ok(());
        }
        Err(invalid(format!(
            "the token claims a lifetime of {}, but {} tokens live at most {}; tokend never issues such tokens",
            crate::time::human_duration(Duration::from_secs(lifetime.unsigned_abs())),
            claims.scope,
            crate::time::human_duration(max)
        )))
    }
}
