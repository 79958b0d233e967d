//! [`JwksCache`]: remote JSON Web Key Sets fetched on demand and kept.
//!
//! The cache, per URL:
//! - a fetched set is fresh for its `Cache-Control: max-age`, clamped to the policy's bounds
//!   (1 min to 1 h; 5 min without one);
//! - a `kid` the set does not have triggers a refetch, at most one per URL per
//!   `refetch_interval` (10 s), so a flood of random kids cannot turn tokend into a request
//!   amplifier against an issuer;
//! - when the endpoint is down, the keys it had keep working for `stale_grace` (24 h) past
//!   their freshness, with one warning in the log; with no usable keys at all the caller gets
//!   [`JwksError::Unavailable`] (503, retry), not a verdict on the token;
//! - fetches run on the blocking pool (`web::block`) with bounded timeouts (2 s to connect,
//!   5 s in all), no redirects, and a body limit (256 KiB). One fetch per URL at a time:
//!   concurrent callers wait for it and share its result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::web;
use jsonwebtoken::Algorithm;

use super::{Jwks, JwksError, PublicKey};
use crate::config::JwksCachePolicy;

/// What the cache holds for one URL.
#[derive(Default)]
struct Cached {
    jwks: Option<Arc<Jwks>>,
    /// Until when the set is fresh (then it is refetched).
    fresh_until: Option<Instant>,
    /// The last fetch tried, successful or not (the refetch rate limit).
    last_attempt: Option<Instant>,
    last_error: Option<String>,
    /// A warning about serving stale keys was logged since the last successful fetch.
    warned: bool,
}

/// Remote JWKS by URL, fetched on demand and kept (see the module's documentation). One per
/// process, shared by every request.
pub struct JwksCache {
    policy: JwksCachePolicy,
    agent: ureq::Agent,
    sets: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(policy: JwksCachePolicy) -> JwksCache {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(policy.connect_timeout))
            .timeout_global(Some(policy.total_timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("tokend/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        JwksCache {
            policy,
            agent,
            sets: Mutex::new(HashMap::new()),
        }
    }

    /// The key of the JWKS at `url` for a token's `kid` and `alg`, fetching or refetching the
    /// set as the policy allows. Must run on the actix runtime (it fetches with `web::block`).
    pub async fn key_for(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<PublicKey>, JwksError> {
        let entry = {
            let mut sets = self.sets.lock().unwrap_or_else(PoisonError::into_inner);
            sets.entry(url.to_owned()).or_default().clone()
        };
        // Held across a fetch: one fetch per URL at a time, whose result the waiters share.
        let mut cached = entry.lock().await;
        let now = Instant::now();
        let fresh = cached.fresh_until.is_some_and(|t| now < t) && cached.jwks.is_some();
        if fresh {
            let jwks = cached.jwks.clone().unwrap_or_default();
            match jwks.find(kid, alg) {
                Err(JwksError::NoKey(_)) if self.may_fetch(&cached, now) => {
                    // An unknown kid: the issuer may have rotated its keys.
                    log::info!("JWKS {url}: no key for kid {kid:?}, {alg:?}; refetching");
                }
                found => return found,
            }
        } else if !self.may_fetch(&cached, now) {
            return self.stale(url, &mut cached, now)?.find(kid, alg);
        }
        cached.last_attempt = Some(now);
        match self.fetch(url).await {
            Ok((jwks, max_age)) => {
                let ttl = max_age
                    .unwrap_or(self.policy.default_ttl)
                    .clamp(self.policy.min_ttl, self.policy.max_ttl);
                for why in jwks.skipped() {
                    log::debug!("JWKS {url}: skipped {why}");
                }
                let jwks = Arc::new(jwks);
                *cached = Cached {
                    jwks: Some(jwks.clone()),
                    fresh_until: Some(Instant::now() + ttl),
                    last_attempt: Some(now),
                    last_error: None,
                    warned: false,
                };
                jwks.find(kid, alg)
            }
            Err(why) => {
                cached.last_error = Some(why);
                self.stale(url, &mut cached, now)?.find(kid, alg)
            }
        }
    }

    /// Whether the rate limit lets another fetch of this URL happen now.
    fn may_fetch(&self, cached: &Cached, now: Instant) -> bool {
        cached
            .last_attempt
            .is_none_or(|at| now.duration_since(at) >= self.policy.refetch_interval)
    }

    /// The keys held past their freshness, within the grace period; else unavailable.
    fn stale(&self, url: &str, cached: &mut Cached, now: Instant) -> Result<Arc<Jwks>, JwksError> {
        let why = cached
            .last_error
            .clone()
            .unwrap_or_else(|| "the last fetch failed".into());
        let within_grace = cached
            .fresh_until
            .is_some_and(|t| now < t + self.policy.stale_grace);
        match (&cached.jwks, within_grace) {
            (Some(jwks), true) => {
                if !cached.warned {
                    log::warn!(
                        "JWKS {url} cannot be fetched ({why}); using the keys fetched before for up to {} past their expiry",
                        crate::time::human_duration(self.policy.stale_grace)
                    );
                    cached.warned = true;
                }
                Ok(jwks.clone())
            }
            _ => Err(JwksError::Unavailable(format!(
                "{url} cannot be fetched ({why}) and no earlier copy is held; retry shortly"
            ))),
        }
    }

    /// One GET of the set, on the blocking pool: the set and its `max-age`.
    async fn fetch(&self, url: &str) -> Result<(Jwks, Option<Duration>), String> {
        let (agent, owned, limit) = (self.agent.clone(), url.to_owned(), self.policy.max_bytes);
        web::block(move || fetch_blocking(&agent, &owned, limit))
            .await
            .map_err(|e| format!("the fetch task failed: {e}"))?
    }
}

fn fetch_blocking(
    agent: &ureq::Agent,
    url: &str,
    limit: u64,
) -> Result<(Jwks, Option<Duration>), String> {
    let mut res = agent
        .get(url)
        .header("Accept", "application/jwk-set+json, application/json")
        .call()
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let max_age = res
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = res
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => format!("the JWKS is larger than {limit} bytes"),
            other => other.to_string(),
        })?;
    let jwks = Jwks::parse_bytes(&body)?;
    if jwks.keys().is_empty() {
        return Err(format!(
            "the JWKS holds no usable signing key ({})",
            jwks.skipped().join("; ")
        ));
    }
    Ok((jwks, max_age))
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0: refetch as often as
/// the lower bound allows).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let secs = lower.strip_prefix("max-age=")?;
        secs.trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
    }
}
