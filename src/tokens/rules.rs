//! Revocation rules: "every sensor token", "everything issued before the incident", "every
//! token signed by key K", enforced without one row per token.
//!
//! A rule covers every token that was issued before its cutoff (`iat <= issued_before`,
//! never later than when the rule was made) and matches all of its selectors. Since every
//! token it covers was issued before the cutoff and no token lives longer than its scope's
//! maximum, a rule can be forgotten once `cutoff + longest lifetime + leeway` has passed
//! (`expires_at`). The set is replaced whole on every sync, so reads take no lock and pruned
//! rules disappear everywhere.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::claims::{Claims, IdentityType};
use crate::scope::Scope;

/// What a rule selects. Every selector that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub scope: Option<Scope>,
    /// The account's name (`sub`), exactly.
    pub name: Option<String>,
    /// The start of the account's name.
    pub name_prefix: Option<String>,
    /// The account (service account or user).
    pub identity_id: Option<i64>,
    /// The signing key (`kid`).
    pub key_id: Option<String>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self == &Selector::default()
    }

    fn matches(&self, claims: &Claims) -> bool {
        self.scope.is_none_or(|s| s == claims.scope)
            && self.name.as_deref().is_none_or(|n| n == claims.sub)
            && self
                .name_prefix
                .as_deref()
                .is_none_or(|p| claims.sub.starts_with(p))
            && self.identity_id.is_none_or(|id| {
                // Service accounts and users share one id space: the id alone names one.
                id == claims.identity_id
                    && matches!(
                        claims.identity_type,
                        IdentityType::ServiceAccount | IdentityType::User
                    )
            })
            && self.key_id.as_deref().is_none_or(|k| k == claims.kid)
    }
}

/// One rule in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: i64,
    pub selector: Selector,
    /// Tokens with `iat` at or before this (UNIX seconds) are covered.
    pub issued_before: i64,
    /// After this (UNIX seconds) no covered token can still verify.
    pub expires_at: i64,
}

impl Rule {
    pub fn covers(&self, claims: &Claims) -> bool {
        claims.iat <= self.issued_before && self.selector.matches(claims)
    }
}

/// The rules in force on this replica. Reads take no lock; an empty set costs one load.
#[derive(Default)]
pub struct RuleSet {
    rules: ArcSwap<Vec<Rule>>,
    /// Rules this replica added itself, kept through syncs for a while: a sync that read the
    /// table before the rule committed must not drop it until a later one reads it back.
    added: Mutex<Vec<(Rule, Instant)>>,
}

/// How long a rule this replica added survives syncs that do not (yet) return it.
const ADDED_GRACE: Duration = Duration::from_secs(10);

impl RuleSet {
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// The rule that covers this token, if any.
    pub fn covering(&self, claims: &Claims) -> Option<i64> {
        let rules = self.rules.load();
        if rules.is_empty() {
            return None;
        }
        rules.iter().find(|r| r.covers(claims)).map(|r| r.id)
    }

    /// Replaces every rule (a sync read them all), keeping those this replica added in the
    /// last few seconds that the sync did not return yet. Returns how many rules it did not
    /// hold before.
    pub fn replace(&self, mut rules: Vec<Rule>) -> usize {
        let mut added = self.added.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = {
            let current = self.rules.load();
            rules
                .iter()
                .filter(|r| !current.iter().any(|c| c.id == r.id))
                .count()
        };
        added.retain(|(_, at)| at.elapsed() < ADDED_GRACE);
        for (rule, _) in added.iter() {
            if !rules.iter().any(|r| r.id == rule.id) {
                rules.push(rule.clone());
            }
        }
        self.rules.store(Arc::new(rules));
        fresh
    }

    /// Adds a rule this replica just committed, before the next sync reads it back.
    pub fn add(&self, rule: Rule) {
        let mut added = self.added.lock().unwrap_or_else(PoisonError::into_inner);
        added.push((rule.clone(), Instant::now()));
        self.rules.rcu(|current| {
            let mut next = Vec::clone(current);
            if !next.iter().any(|r| r.id == rule.id) {
                next.push(rule.clone());
            }
            next
        });
    }

    pub fn len(&self) -> usize {
        self.rules.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.load().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use uuid::Uuid;

    fn claims(scope: Scope, sub: &str, iat: i64) -> Claims {
        Claims {
            iss: "tokend".into(),
            aud: "tokend".into(),
            sub: sub.into(),
            jti: Uuid::new_v4(),
            iat,
            nbf: iat,
            exp: iat + 3600,
            identity_id: 7,
            identity_type: IdentityType::ServiceAccount,
            scope,
            metadata: Map::new(),
            act: None,
            kid: "k1".into(),
        }
    }

    fn rule(selector: Selector, issued_before: i64) -> Rule {
        Rule {
            id: 1,
            selector,
            issued_before,
            expires_at: issued_before + 7200,
        }
    }

    #[test]
    fn a_rule_covers_matching_tokens_issued_before_its_cutoff() {
        let r = rule(
            Selector {
                scope: Some(Scope::Sensor),
                ..Selector::default()
            },
            1000,
        );
        assert!(r.covers(&claims(Scope::Sensor, "sensor:a", 999)));
        assert!(r.covers(&claims(Scope::Sensor, "sensor:a", 1000)));
        assert!(
            !r.covers(&claims(Scope::Sensor, "sensor:a", 1001)),
            "issued after"
        );
        assert!(
            !r.covers(&claims(Scope::Cli, "alice", 999)),
            "another scope"
        );
    }

    #[test]
    fn every_selector_must_match() {
        let r = rule(
            Selector {
                scope: Some(Scope::Sensor),
                name_prefix: Some("sensor:core.".into()),
                key_id: Some("k1".into()),
                ..Selector::default()
            },
            1000,
        );
        assert!(r.covers(&claims(Scope::Sensor, "sensor:core.timer", 10)));
        assert!(!r.covers(&claims(Scope::Sensor, "sensor:other", 10)));
        let mut other_key = claims(Scope::Sensor, "sensor:core.timer", 10);
        other_key.kid = "k2".into();
        assert!(!r.covers(&other_key));
        let by_id = rule(
            Selector {
                identity_id: Some(7),
                name: Some("sensor:a".into()),
                ..Selector::default()
            },
            1000,
        );
        assert!(by_id.covers(&claims(Scope::Sensor, "sensor:a", 10)));
        assert!(!by_id.covers(&claims(Scope::Sensor, "sensor:b", 10)));
    }

    #[test]
    fn the_set_finds_the_covering_rule() {
        let set = RuleSet::new();
        assert_eq!(set.covering(&claims(Scope::Sensor, "s", 1)), None);
        set.add(rule(
            Selector {
                scope: Some(Scope::Sensor),
                ..Selector::default()
            },
            1000,
        ));
        set.add(rule(Selector::default(), 0)); // same id: not added twice
        assert_eq!(set.len(), 1);
        assert_eq!(set.covering(&claims(Scope::Sensor, "s", 1)), Some(1));
        set.replace(Vec::new());
        assert_eq!(
            set.covering(&claims(Scope::Sensor, "s", 1)),
            Some(1),
            "a sync that read the table before this replica's rule committed keeps it"
        );
        set.added.lock().unwrap().clear();
        set.replace(Vec::new());
        assert_eq!(set.covering(&claims(Scope::Sensor, "s", 1)), None);
    }
}
