//! Login throttling, kept in memory, and the aggregated `login.failed` audit events.
//!
//! Keys, so that somebody elsewhere cannot lock the real user out:
//! - **(login, client address)**: the first `login_max_failures` failures are free; after
//!   that each attempt waits `login_delay`, doubling with every further failure, up to
//!   `login_window`. Only that pair waits: the same login from another address is unaffected.
//!   A success clears the pair. Failures are forgotten once the pair has been quiet for a
//!   window after its last wait.
//! - **client address**: `login_address_max_failures` failed logins per window for all logins
//!   together (a token bucket that refills steadily), against one address spraying many
//!   logins.
//! - **login, from new addresses**: `login_account_max_failures` failed logins per window for one
//!   login from all addresses together, against many addresses (a botnet) guessing one
//!   login.
//!
//! The two budgets do not apply to a (login, address) that logged in successfully in the last
//! 30 days: the real user from their usual address is never held to them, so neither a
//! sprayer behind the same NAT nor a botnet guessing their login keeps them out. A success
//! gives its attempt back to both budgets.
//!
//! IPv6 clients are keyed by their /64, which one host usually holds whole.
//!
//! An attempt is counted *before* its password is checked and given back only when it
//! succeeds (or was never checked), under one mutex: however many attempts arrive in
//! parallel, no more get a password checked than the limits allow.
//!
//! Nothing here touches the database per attempt. Failures are summed per (login, address)
//! and written by [`flush_forever`] every few seconds as one `login.failed` event each, with
//! the count and the first and last time; a success writes its pair's pending failures in
//! its own transaction, so the trail reads "3 failed, then succeeded". State is per process:
//! with several replicas each enforces the limits on what it sees.

mod failed_logins;

pub use failed_logins::{flush_forever, record_failures, FailedLogins};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Settings;
use crate::error::{ApiError, Code};

/// How long a successful (login, address) pair is exempt from the address budget.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 86_400);

/// The limits, from [`Settings`].
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub first_delay: Duration,
    pub window: Duration,
    pub address_max_failures: u32,
    pub login_max_failures: u32,
}

impl ThrottlePolicy {
    pub fn from_settings(s: &Settings) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: s.login_max_failures,
            first_delay: s.login_delay,
            window: s.login_window,
            address_max_failures: s.login_address_max_failures.max(1),
            login_max_failures: s.login_account_max_failures.max(1),
        }
    }
}

/// The client address as a throttling key: IPv4 as is (also when IPv4-mapped), IPv6 by /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PairKey {
    login: String,
    addr: IpAddr,
}

/// Attempts of one login from one address.
#[derive(Debug)]
struct Pair {
    /// Failed attempts plus those being checked now.
    attempts: u32,
    pending: u32,
    /// When the last attempt was let through.
    last: Instant,
}

impl Pair {
    fn wait(&self, p: &ThrottlePolicy) -> Duration {
        match self.attempts.checked_sub(p.max_failures) {
            None => Duration::ZERO,
            Some(over) => p
                .first_delay
                .saturating_mul(1u32 << over.min(30))
                .min(p.window),
        }
    }

    fn ready_at(&self, p: &ThrottlePolicy) -> Instant {
        self.last + self.wait(p)
    }

    fn forgotten_at(&self, p: &ThrottlePolicy) -> Instant {
        self.ready_at(p) + p.window
    }
}

/// A token bucket of failed logins: `cap` per window, refilled steadily.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(cap: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(cap),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, cap: u32, window: Duration) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / window.as_secs_f64();
        self.tokens = (self.tokens + gained * f64::from(cap)).min(f64::from(cap));
        self.at = now;
    }

    /// How long until one token is there.
    fn wait(&self, cap: u32, window: Duration) -> Duration {
        let per_token = window.as_secs_f64() / f64::from(cap);
        Duration::from_secs_f64(((1.0 - self.tokens) * per_token).max(0.0))
    }

    /// Returns whether the bucket is full again.
    fn give_back(&mut self, cap: u32) -> bool {
        self.tokens = (self.tokens + 1.0).min(f64::from(cap));
        self.tokens >= f64::from(cap)
    }
}

#[derive(Debug, Default)]
struct Inner {
    pairs: HashMap<PairKey, Pair>,
    addresses: HashMap<IpAddr, Bucket>,
    logins: HashMap<String, Bucket>,
    known: HashMap<PairKey, Instant>,
    failed: HashMap<PairKey, FailedLogins>,
}

/// Why an attempt was not let through, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This login from this address.
    Pair(Duration),
    /// This address, for every login it has not logged in to before.
    Address(Duration),
    /// This login, from every address it was not logged in from before.
    Login(Duration),
}

impl Refusal {
    fn into_error(self) -> ApiError {
        let (wait, what) = match self {
            Refusal::Pair(w) => (w, "for this login from your address"),
            Refusal::Address(w) => (w, "from your address"),
            Refusal::Login(w) => (w, "for this login"),
        };
        // Whole seconds, rounded up: a client that waits Retry-After is let through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        ApiError::new(
            Code::TooManyAttempts,
            format!("too many failed logins {what}; try again in {secs} seconds"),
        )
        .retry_after(secs)
    }
}

/// The throttle of one process.
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    inner: Mutex<Inner>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle {
            policy,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets an attempt through (counting it as failed until it succeeds) or answers 429
    /// `too_many_attempts` with `Retry-After`.
    pub fn admit(self: &Arc<Self>, login: &str, addr: IpAddr) -> Result<Attempt, ApiError> {
        let key = PairKey {
            login: login.to_owned(),
            addr: address_key(addr),
        };
        let charged = self
            .admit_at(&key, Instant::now())
            .map_err(Refusal::into_error)?;
        Ok(Attempt {
            throttle: self.clone(),
            key,
            charged,
            remote_addr: addr.to_string(),
            settled: false,
            hashing: false,
        })
    }

    /// Ok(whether the attempt was charged to the address and login budgets).
    fn admit_at(&self, key: &PairKey, now: Instant) -> Result<bool, Refusal> {
        let p = self.policy;
        let mut inner = self.lock();
        if let Some(pair) = inner.pairs.get(key) {
            let ready = pair.ready_at(&p);
            if now < ready {
                return Err(Refusal::Pair(ready - now));
            }
        }
        let known = inner
            .known
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < KNOWN_FOR);
        if !known {
            let (cap_a, cap_l) = (p.address_max_failures, p.login_max_failures);
            let inner = &mut *inner;
            let address = inner
                .addresses
                .entry(key.addr)
                .or_insert_with(|| Bucket::full(cap_a, now));
            address.refill(now, cap_a, p.window);
            if address.tokens < 1.0 {
                return Err(Refusal::Address(address.wait(cap_a, p.window)));
            }
            let login = inner
                .logins
                .entry(key.login.clone())
                .or_insert_with(|| Bucket::full(cap_l, now));
            login.refill(now, cap_l, p.window);
            if login.tokens < 1.0 {
                return Err(Refusal::Login(login.wait(cap_l, p.window)));
            }
            address.tokens -= 1.0;
            login.tokens -= 1.0;
        }
        let pair = inner.pairs.entry(key.clone()).or_insert(Pair {
            attempts: 0,
            pending: 0,
            last: now,
        });
        pair.attempts += 1;
        pair.pending += 1;
        pair.last = now;
        Ok(!known)
    }

    /// An attempt let through was not checked after all: as if it never came.
    fn release(&self, key: &PairKey, charged: bool) {
        let mut inner = self.lock();
        if let Some(pair) = inner.pairs.get_mut(key) {
            pair.attempts = pair.attempts.saturating_sub(1);
            pair.pending = pair.pending.saturating_sub(1);
            if pair.attempts == 0 && pair.pending == 0 {
                inner.pairs.remove(key);
            }
        }
        if charged {
            self.give_back(&mut inner, key);
        }
    }

    /// Gives an attempt back to the budgets; a full bucket is the same as none, so it goes
    /// (a flood refused for a full hashing queue leaves nothing behind).
    fn give_back(&self, inner: &mut Inner, key: &PairKey) {
        let p = self.policy;
        if let Some(b) = inner.addresses.get_mut(&key.addr) {
            if b.give_back(p.address_max_failures) {
                inner.addresses.remove(&key.addr);
            }
        }
        if let Some(b) = inner.logins.get_mut(&key.login) {
            if b.give_back(p.login_max_failures) {
                inner.logins.remove(&key.login);
            }
        }
    }

    fn failed(&self, key: &PairKey, remote_addr: String, identity_id: Option<i64>) {
        let now = crate::time::now();
        let mut inner = self.lock();
        if let Some(pair) = inner.pairs.get_mut(key) {
            pair.pending = pair.pending.saturating_sub(1);
        }
        let entry = inner
            .failed
            .entry(key.clone())
            .or_insert_with(|| FailedLogins {
                key: key.clone(),
                remote_addr: remote_addr.clone(),
                identity_id,
                count: 0,
                first: now,
                last: now,
            });
        entry.count += 1;
        entry.last = now;
        entry.remote_addr = remote_addr;
        entry.identity_id = entry.identity_id.or(identity_id);
    }

    fn succeeded(&self, key: &PairKey, charged: bool, now: Instant) {
        let mut inner = self.lock();
        inner.pairs.remove(key);
        if charged {
            self.give_back(&mut inner, key);
        }
        inner.known.insert(key.clone(), now);
    }

    fn take_pair_failures(&self, key: &PairKey) -> Option<FailedLogins> {
        self.lock().failed.remove(key)
    }

    /// Forgets what no longer counts, so the maps stay small: their size is bounded by the
    /// attempts that reached a password check within a window.
    fn prune(&self, now: Instant) {
        let p = self.policy;
        let mut inner = self.lock();
        inner
            .pairs
            .retain(|_, pair| pair.pending > 0 || now < pair.forgotten_at(&p));
        inner.addresses.retain(|_, bucket| {
            bucket.refill(now, p.address_max_failures, p.window);
            bucket.tokens < f64::from(p.address_max_failures)
        });
        inner.logins.retain(|_, bucket| {
            bucket.refill(now, p.login_max_failures, p.window);
            bucket.tokens < f64::from(p.login_max_failures)
        });
        inner
            .known
            .retain(|_, at| now.saturating_duration_since(*at) < KNOWN_FOR);
    }
}

/// An attempt let through the throttle. Dropped without an outcome before its password
/// went to the hashing threads (a storage error, a full hashing queue), it is given back;
/// dropped after (a client that hung up while its hash ran), it counts as a failure.
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    key: PairKey,
    /// Whether it counts against the address and login budgets.
    charged: bool,
    remote_addr: String,
    settled: bool,
    /// Its password went to the hashing threads: from then on, dropping it (a client that
    /// hung up while its hash ran) counts as a failure, not as an attempt never made.
    hashing: bool,
}

impl Attempt {
    /// The pair logged in from this address before: it gets the reserved hashing places.
    pub fn is_known_pair(&self) -> bool {
        !self.charged
    }

    /// The password is about to be checked (see the `hashing` field).
    pub fn hashing(&mut self) {
        self.hashing = true;
    }

    /// Not checked after all (a storage error after the check): as if it never came.
    pub fn give_back(mut self) {
        self.hashing = false;
    }

    /// The password was wrong (or the login unknown).
    pub fn failed(mut self, identity_id: Option<i64>) {
        self.settled = true;
        self.throttle.failed(
            &self.key,
            std::mem::take(&mut self.remote_addr),
            identity_id,
        );
    }

    /// This pair's failures not yet written, to be written with the success; give them
    /// back with [`LoginThrottle::restore`] if that fails.
    pub fn take_failures(&self) -> Option<FailedLogins> {
        self.throttle.take_pair_failures(&self.key)
    }

    /// The login succeeded: the pair starts afresh and is exempt from the address budget.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.throttle
            .succeeded(&self.key, self.charged, Instant::now());
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if self.hashing {
            // The hash runs anyway: hanging up must not make guessing free.
            self.throttle
                .failed(&self.key, std::mem::take(&mut self.remote_addr), None);
        } else {
            self.throttle.release(&self.key, self.charged);
        }
    }
}

/// The address used when the peer's is unknown (not a TCP connection).
pub const UNKNOWN_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn throttle(max: u32, address_max: u32) -> LoginThrottle {
        throttle_with(max, address_max, 1000)
    }

    fn throttle_with(max: u32, address_max: u32, login_max: u32) -> LoginThrottle {
        LoginThrottle::new(ThrottlePolicy {
            max_failures: max,
            first_delay: S,
            window: 60 * S,
            address_max_failures: address_max,
            login_max_failures: login_max,
        })
    }

    fn key(login: &str, addr: &str) -> PairKey {
        PairKey {
            login: login.into(),
            addr: address_key(addr.parse().unwrap()),
        }
    }

    /// An attempt that fails.
    fn fail(t: &LoginThrottle, k: &PairKey, now: Instant) -> Result<(), Refusal> {
        t.admit_at(k, now)?;
        t.failed(k, k.addr.to_string(), None);
        Ok(())
    }

    #[test]
    fn hanging_up_while_the_hash_runs_still_counts() {
        let t = Arc::new(throttle(2, 1000));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..2 {
            let mut attempt = t.admit("alice", ip).unwrap();
            attempt.hashing();
            drop(attempt); // the client went away; its hash ran anyway
        }
        assert!(
            t.admit("alice", ip).is_err(),
            "two dropped attempts are two failures"
        );
        // Dropped before hashing (a full queue): as if never made.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..5 {
            drop(t.admit("alice", other).unwrap());
        }
        assert!(t.admit("alice", other).is_ok());
    }

    #[test]
    fn delays_double_per_pair_and_only_for_that_pair() {
        let t = throttle(3, 1000);
        let (alice_there, t0) = (key("alice", "10.0.0.9"), Instant::now());
        for _ in 0..3 {
            fail(&t, &alice_there, t0).unwrap();
        }
        assert_eq!(fail(&t, &alice_there, t0), Err(Refusal::Pair(S)));
        // The real user's own address, and other logins from the attacker's, are unaffected.
        t.admit_at(&key("alice", "10.0.0.1"), t0).unwrap();
        t.admit_at(&key("bob", "10.0.0.9"), t0).unwrap();
        // 1 s, then 2 s, then 4 s …
        fail(&t, &alice_there, t0 + S).unwrap();
        assert_eq!(
            fail(&t, &alice_there, t0 + 2 * S),
            Err(Refusal::Pair(S)),
            "2 s after the last"
        );
        fail(&t, &alice_there, t0 + 3 * S).unwrap();
        assert_eq!(
            fail(&t, &alice_there, t0 + 3 * S),
            Err(Refusal::Pair(4 * S))
        );
        // … up to the window, and remembered for a window after the last wait.
        let mut now = t0 + 3 * S;
        for _ in 0..10 {
            now += 60 * S;
            fail(&t, &alice_there, now).unwrap();
        }
        assert_eq!(fail(&t, &alice_there, now), Err(Refusal::Pair(60 * S)));
        // 60 s wait passed and 59 s of the quiet window: still remembered.
        now += 119 * S;
        t.prune(now);
        fail(&t, &alice_there, now).unwrap();
        assert_eq!(fail(&t, &alice_there, now), Err(Refusal::Pair(60 * S)));
        t.prune(now + 120 * S);
        assert!(
            !t.lock().pairs.contains_key(&alice_there),
            "forgotten after the quiet window"
        );
    }

    #[test]
    fn quiet_pairs_are_forgotten_and_success_clears() {
        let t = throttle(2, 1000);
        let (k, t0) = (key("alice", "10.0.0.9"), Instant::now());
        fail(&t, &k, t0).unwrap();
        fail(&t, &k, t0).unwrap();
        assert!(fail(&t, &k, t0).is_err());
        // Ready after 1 s, forgotten a window later.
        t.prune(t0 + 61 * S);
        assert!(t.lock().pairs.is_empty());
        fail(&t, &k, t0 + 61 * S).unwrap();
        let charged = t.admit_at(&k, t0 + 61 * S).unwrap();
        t.succeeded(&k, charged, t0 + 61 * S);
        fail(&t, &k, t0 + 61 * S).unwrap();
        fail(&t, &k, t0 + 61 * S).unwrap();
        assert!(fail(&t, &k, t0 + 61 * S).is_err());
    }

    #[test]
    fn parallel_attempts_count_before_they_are_checked() {
        let t = throttle(5, 1000);
        let (k, t0) = (key("alice", "10.0.0.9"), Instant::now());
        let admitted = (0..20).filter(|_| t.admit_at(&k, t0).is_ok()).count();
        assert_eq!(admitted, 5);
        // Given back when not checked (queue full, storage error).
        t.release(&k, true);
        assert!(t.admit_at(&k, t0).is_ok());
        assert!(t.admit_at(&k, t0).is_err());
        // A refused flood leaves nothing behind.
        let other = key("nobody", "10.0.0.10");
        t.admit_at(&other, t0).unwrap();
        t.release(&other, true);
        let inner = t.lock();
        assert!(!inner.pairs.contains_key(&other));
        assert!(!inner.logins.contains_key("nobody"));
        assert!(!inner.addresses.contains_key(&other.addr));
    }

    #[test]
    fn address_budget_spares_known_pairs() {
        let t = throttle(5, 10);
        let t0 = Instant::now();
        // The real user logged in from the shared address once.
        let alice = key("alice", "192.0.2.7");
        let charged = t.admit_at(&alice, t0).unwrap();
        t.succeeded(&alice, charged, t0);
        for n in 0..10 {
            fail(&t, &key(&format!("user{n}"), "192.0.2.7"), t0).unwrap();
        }
        match fail(&t, &key("user10", "192.0.2.7"), t0) {
            Err(Refusal::Address(w)) => assert_eq!(w, 6 * S, "60 s / 10 per token"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.admit_at(&alice, t0), Ok(false), "not charged");
        t.succeeded(&alice, false, t0);
        assert!(
            fail(&t, &key("user10", "192.0.2.7"), t0).is_err(),
            "a known pair's success gives back nothing it did not take"
        );
        // Refilled steadily.
        fail(&t, &key("user10", "192.0.2.7"), t0 + 6 * S).unwrap();
        assert!(fail(&t, &key("user11", "192.0.2.7"), t0 + 6 * S).is_err());
        // Another address has its own budget.
        fail(&t, &key("user11", "192.0.2.8"), t0).unwrap();
    }

    #[test]
    fn many_addresses_guessing_one_login_spare_its_known_address() {
        let t = throttle_with(5, 1000, 10);
        let t0 = Instant::now();
        let home = key("alice", "198.51.100.1");
        let charged = t.admit_at(&home, t0).unwrap();
        t.succeeded(&home, charged, t0);
        for n in 0..10 {
            fail(&t, &key("alice", &format!("203.0.113.{n}")), t0).unwrap();
        }
        assert_eq!(
            fail(&t, &key("alice", "203.0.113.99"), t0),
            Err(Refusal::Login(6 * S))
        );
        assert!(
            fail(&t, &key("bob", "203.0.113.99"), t0).is_ok(),
            "other logins"
        );
        assert_eq!(
            t.admit_at(&home, t0),
            Ok(false),
            "the usual address gets in"
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = address_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = address_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = address_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            address_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn failures_are_summed_per_pair() {
        let t = throttle(100, 1000);
        let t0 = Instant::now();
        for _ in 0..7 {
            fail(&t, &key("alice", "10.0.0.9"), t0).unwrap();
        }
        fail(&t, &key("alice", "10.0.0.8"), t0).unwrap();
        let inner = t.lock();
        assert_eq!(inner.failed.len(), 2);
        assert_eq!(inner.failed[&key("alice", "10.0.0.9")].count, 7);
    }
}
