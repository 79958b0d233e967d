//! A trusted issuer's settings, parsed once at the edge: its URL, where its keys are, the
//! audiences its tokens must name, the age and replay limits, and the claim rules that decide
//! what a workload gets.
//!
//! The same parser reads what the database holds (without the TTL bounds check: bounds may
//! have changed since; the grant judges the TTL against the bounds in force).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Uri;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::claims::{ClaimPath, Template, ValueTemplate};
use super::jwks::Jwks;
use crate::accounts::AccountName;
use crate::error::{ApiError, Code};
use crate::scope::{printable, RequestedTtl, Scope, ScopePolicy, TtlFields, ValidMetadata};

/// Defaults and bounds of the limits.
pub const DEFAULT_MAX_TOKEN_AGE_SECS: u64 = 3_600;
pub const MAX_TOKEN_AGE_LIMIT_SECS: u64 = 7 * 86_400;
pub const DEFAULT_MAX_USES: u64 = 10;
pub const MAX_USES_LIMIT: u64 = 10_000;
pub const MAX_RULES: usize = 100;
pub const MAX_AUDIENCES: usize = 20;
pub const MAX_MATCH_VALUES: usize = 100;
const MAX_URL: usize = 500;
const MAX_AUDIENCE: usize = 500;

/// The top-level fields of an issuer document.
const FIELDS: &[&str] = &[
    "issuer",
    "jwks_uri",
    "jwks",
    "audiences",
    "max_token_age_seconds",
    "max_uses_per_token",
    "rules",
];
const RULE_FIELDS: &[&str] = &["match", "scope", "name", "metadata", "ttl_seconds"];

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Fetched (and cached) from this URL.
    Uri(String),
    /// Given inline: no fetching at all.
    Inline { jwks: Arc<Jwks>, raw: Value },
}

/// One claim rule: when every `match` claim holds one of its values, the workload gets a token
/// of `scope` for an account named `name`, with `metadata`, living at most `ttl`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub matchers: Vec<(ClaimPath, Vec<Value>)>,
    pub scope: Scope,
    pub name: Template,
    pub metadata: Option<ValueTemplate>,
    pub ttl: Option<Duration>,
    document: RuleDocument,
}

/// A rule as the API shows it (and takes it).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"match": {"kubernetes.io.namespace": "sensors"}, "scope": "sensor", "name": "sensor:{kubernetes.io.serviceaccount.name}", "metadata": {"trigger_types": ["core.timer"]}, "ttl_seconds": 86400}))]
pub struct RuleDocument {
    /// Claim path → the value (or any of the values) it must hold. Claim keys may contain dots
    /// (`kubernetes.io.namespace`).
    #[serde(rename = "match")]
    #[schema(value_type = Object)]
    pub matches: Map<String, Value>,
    /// The tokend scope of the tokens this rule gives.
    #[schema(example = "sensor")]
    pub scope: String,
    /// The account's name; `{claim.path}` interpolates a claim.
    #[schema(example = "sensor:{kubernetes.io.serviceaccount.name}")]
    pub name: String,
    /// The tokens' metadata, checked like any of that scope; strings may interpolate claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The longest life of these tokens (within the scope's bounds; default: the scope's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// A trusted issuer's settings.
#[derive(Debug, Clone)]
pub struct IssuerSpec {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    pub keys: KeySource,
    /// A token's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// A token whose `iat` is older than this is refused, whatever its `exp`.
    pub max_token_age: Duration,
    /// How often one token may be used (replay limit).
    pub max_uses: u64,
    pub rules: Vec<Rule>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidRequest, message.into())
}

/// Prefixes an error's message with where in the document it is, keeping its code.
fn at(place: &str, err: ApiError) -> ApiError {
    ApiError::new(err.code(), format!("{place}: {}", err.message()))
}

/// An issuer or JWKS URL: `https://`, or `http://` on the loopback only (tests, a local
/// issuer); no user info, query or fragment.
pub fn parse_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let hint = "an https:// URL (http:// only for 127.0.0.1, [::1] or localhost), without user info, query or fragment";
    if raw.len() > MAX_URL || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(format!(
            "{field} must be {hint}, at most {MAX_URL} characters"
        )));
    }
    let uri: Uri = raw.parse().map_err(|_| {
        bad(format!(
            "{field} {:?} is not a URL; give {hint}",
            printable(raw, 80)
        ))
    })?;
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    let scheme_ok = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => loopback,
        _ => false,
    };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if !scheme_ok
        || host.is_empty()
        || authority.contains('@')
        || uri.query().is_some()
        || raw.contains('#')
    {
        return Err(bad(format!(
            "{field} {:?} is not {hint}",
            printable(raw, 80)
        )));
    }
    Ok(raw.to_owned())
}

fn whole(
    field: &str,
    value: Option<&Value>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => crate::scope::rules::whole_number(v)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "{field} must be a whole number from {min} to {max}"
                ))
            }),
    }
}

fn refuse_unknown(
    place: &str,
    object: &Map<String, Value>,
    known: &[&str],
) -> Result<(), ApiError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(bad(format!(
            "{place}unknown field {:?}; the fields are {}",
            printable(unknown, 40),
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

impl IssuerSpec {
    /// Parses an issuer document (`POST /federation/issuers`). With `policy`, every rule's
    /// TTL is checked against the scope's bounds too.
    pub fn parse(document: &Value, policy: Option<&ScopePolicy>) -> Result<IssuerSpec, ApiError> {
        let doc = document
            .as_object()
            .ok_or_else(|| bad("the issuer must be a JSON object"))?;
        refuse_unknown("", doc, FIELDS)?;
        let text = |f: &str| -> Result<Option<&str>, ApiError> {
            match doc.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(bad(format!("{f} must be a string"))),
            }
        };
        let issuer = parse_url(
            "issuer",
            text("issuer")?
                .ok_or_else(|| bad("issuer is required: the exact iss of the tokens"))?,
        )?;
        let keys = match (text("jwks_uri")?, doc.get("jwks").filter(|v| !v.is_null())) {
            (Some(uri), None) => KeySource::Uri(parse_url("jwks_uri", uri)?),
            (None, Some(raw)) => {
                let jwks = Jwks::parse(raw).map_err(|e| bad(format!("jwks: {e}")))?;
                if jwks.has_private_parts() {
                    return Err(bad(
                        "jwks holds private key material (d, p, q or k): give the issuer's public keys only, and treat that key as leaked",
                    ));
                }
                if jwks.keys().is_empty() {
                    return Err(bad(format!(
                        "jwks has no usable signing key (RSA ≥ 2048 bits, EC P-256/P-384, Ed25519): {}",
                        jwks.skipped().join("; ")
                    )));
                }
                KeySource::Inline {
                    jwks: Arc::new(jwks),
                    raw: raw.clone(),
                }
            }
            (Some(_), Some(_)) => return Err(bad("give jwks_uri or jwks, not both")),
            (None, None) => {
                return Err(bad(
                    "give jwks_uri (where the issuer publishes its keys, e.g. https://…/openid/v1/jwks) or jwks (the key set inline)",
                ))
            }
        };
        let audiences = match doc.get("audiences") {
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_AUDIENCES => items
                .iter()
                .map(|a| match a.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= MAX_AUDIENCE && !s.chars().any(char::is_control) => {
                        Ok(s.to_owned())
                    }
                    _ => Err(bad(format!(
                        "audiences must hold non-empty strings of at most {MAX_AUDIENCE} characters"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(bad(format!(
                    "audiences must be a non-empty array (at most {MAX_AUDIENCES}) of the aud values the tokens carry, e.g. [\"tokend\"]"
                )))
            }
        };
        let max_age = whole(
            "max_token_age_seconds",
            doc.get("max_token_age_seconds"),
            DEFAULT_MAX_TOKEN_AGE_SECS,
            1,
            MAX_TOKEN_AGE_LIMIT_SECS,
        )?;
        let max_uses = whole(
            "max_uses_per_token",
            doc.get("max_uses_per_token"),
            DEFAULT_MAX_USES,
            1,
            MAX_USES_LIMIT,
        )?;
        let rules = match doc.get("rules") {
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_RULES => items
                .iter()
                .enumerate()
                .map(|(i, r)| Rule::parse(r, policy).map_err(|e| at(&format!("rules[{i}]"), e)))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(bad(format!(
                    "rules must be a non-empty array (at most {MAX_RULES}) of {{match, scope, name, metadata?, ttl_seconds?}}; without a rule no token is ever issued"
                )))
            }
        };
        Ok(IssuerSpec {
            issuer,
            keys,
            audiences,
            max_token_age: Duration::from_secs(max_age),
            max_uses,
            rules,
        })
    }

    /// The settings as a document (what `parse` takes, with the defaults filled in).
    pub fn to_document(&self) -> Value {
        let mut doc = json!({
            "issuer": self.issuer,
            "audiences": self.audiences,
            "max_token_age_seconds": self.max_token_age.as_secs(),
            "max_uses_per_token": self.max_uses,
            "rules": self.rule_documents(),
        });
        match &self.keys {
            KeySource::Uri(uri) => doc["jwks_uri"] = json!(uri),
            KeySource::Inline { raw, .. } => doc["jwks"] = raw.clone(),
        }
        doc
    }

    pub fn rule_documents(&self) -> Vec<RuleDocument> {
        self.rules.iter().map(|r| r.document.clone()).collect()
    }

    /// The first rule whose every `match` claim holds.
    pub fn first_match(&self, claims: &Map<String, Value>) -> Option<&Rule> {
        self.rules.iter().find(|rule| {
            rule.matchers
                .iter()
                .all(|(path, allowed)| super::claims::claim_matches(path.resolve(claims), allowed))
        })
    }
}

impl Rule {
    fn parse(raw: &Value, policy: Option<&ScopePolicy>) -> Result<Rule, ApiError> {
        let o = raw.as_object().ok_or_else(|| {
            bad("a rule is an object {match, scope, name, metadata?, ttl_seconds?}")
        })?;
        refuse_unknown("", o, RULE_FIELDS)?;
        let matches = match o.get("match") {
            Some(Value::Object(m)) if !m.is_empty() => m.clone(),
            _ => {
                return Err(bad(
                    "match must name at least one claim and its value(s), e.g. {\"kubernetes.io.namespace\": \"sensors\"}; a rule matching every token of the issuer is not allowed (match on iss or sub to mean it)",
                ))
            }
        };
        let mut matchers = Vec::new();
        for (claim, want) in &matches {
            let path = ClaimPath::parse(claim).map_err(|e| bad(format!("match: {e}")))?;
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            let values = match want {
                Value::Array(items)
                    if !items.is_empty() && items.len() <= MAX_MATCH_VALUES && items.iter().all(scalar) =>
                {
                    items.clone()
                }
                v if scalar(v) => vec![v.clone()],
                _ => {
                    return Err(bad(format!(
                        "match.{}: give a string, number or boolean, or a non-empty array (at most {MAX_MATCH_VALUES}) of them",
                        path.as_str()
                    )))
                }
            };
            matchers.push((path, values));
        }
        let scope_text = o
            .get("scope")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("scope is required: sensor, execution, cli, webhook or admin"))?;
        let scope = Scope::parse(scope_text).map_err(|e| at("scope", e))?;
        let name_text = o.get("name").and_then(Value::as_str).ok_or_else(|| {
            bad("name is required, e.g. \"sensor:{kubernetes.io.serviceaccount.name}\"")
        })?;
        let name = Template::parse(name_text).map_err(|e| bad(format!("name: {e}")))?;
        AccountName::parse(&name.sample()).map_err(|e| at("name", e))?;
        let metadata = match o.get("metadata") {
            None | Some(Value::Null) => None,
            Some(v) => Some(ValueTemplate::parse(v).map_err(|e| bad(format!("metadata: {e}")))?),
        };
        // The metadata as a token would carry it, with a sample in place of every claim.
        ValidMetadata::parse(scope, metadata.as_ref().map(ValueTemplate::sample))
            .map_err(|e| at("metadata", e))?;
        let ttl = match o.get("ttl_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let requested = RequestedTtl::from_fields(&TtlFields {
                    ttl_seconds: Some(v.clone()),
                    ..TtlFields::default()
                })?;
                match policy {
                    Some(policy) => Some(policy.resolve(scope, requested)?),
                    None => crate::scope::rules::whole_number(v)
                        .and_then(|n| u64::try_from(n).ok())
                        .map(Duration::from_secs),
                }
            }
        };
        let document = RuleDocument {
            matches,
            scope: scope.as_str().to_owned(),
            name: name_text.to_owned(),
            metadata: o.get("metadata").filter(|v| !v.is_null()).cloned(),
            ttl_seconds: ttl.map(|t| t.as_secs()),
        };
        Ok(Rule {
            matchers,
            scope,
            name,
            metadata,
            ttl,
            document,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        json!({
            "issuer": "https://kubernetes.default.svc",
            "jwks_uri": "https://kubernetes.default.svc/openid/v1/jwks",
            "audiences": ["tokend"],
            "rules": [{"match": {"kubernetes.io.namespace": ["sensors", "edge"]}, "scope": "sensor",
                "name": "sensor:{kubernetes.io.serviceaccount.name}",
                "metadata": {"trigger_types": ["k8s.{kubernetes.io.namespace}"]}}]
        })
    }

    #[test]
    fn a_kubernetes_issuer_parses_with_defaults() {
        let spec = IssuerSpec::parse(&doc(), Some(&ScopePolicy::default())).unwrap();
        assert_eq!(spec.max_uses, DEFAULT_MAX_USES);
        assert_eq!(spec.max_token_age, Duration::from_secs(3600));
        let again = IssuerSpec::parse(&spec.to_document(), None).unwrap();
        assert_eq!(again.to_document(), spec.to_document());
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let policy = ScopePolicy::default();
        for (change, needle) in [
            (json!({"issuer": "http://example.com"}), "https"),
            (json!({"issuer": "https://user@example.com"}), "user info"),
            (json!({"jwks": {"keys": []}}), "not both"),
            (json!({"audiences": []}), "audiences"),
            (json!({"max_uses_per_token": 0}), "max_uses_per_token"),
            (
                json!({"rules": [{"match": {}, "scope": "sensor", "name": "x"}]}),
                "at least one claim",
            ),
            (
                json!({"rules": [{"match": {"a": 1}, "scope": "root", "name": "x"}]}),
                "rules[0]: scope",
            ),
            (
                json!({"rules": [{"match": {"a": 1}, "scope": "sensor", "name": "x"}]}),
                "rules[0]: metadata",
            ),
            (
                json!({"rules": [{"match": {"a": 1}, "scope": "cli", "name": "x", "ttl_seconds": 60}]}),
                "rules[0]",
            ),
            (
                json!({"rules": [{"match": {"a": {"b": 1}}, "scope": "cli", "name": "x"}]}),
                "match.a",
            ),
            (
                json!({"rules": [{"match": {"a": 1}, "scope": "cli", "name": "{open"}]}),
                "name",
            ),
            (json!({"extra": 1}), "unknown field"),
        ] {
            let mut d = doc();
            for (k, v) in change.as_object().unwrap() {
                d[k] = v.clone();
            }
            let err = IssuerSpec::parse(&d, Some(&policy)).unwrap_err();
            assert!(
                err.message().contains(needle),
                "{change}: {}",
                err.message()
            );
        }
        assert!(parse_url("issuer", "http://127.0.0.1:8080").is_ok());
        assert!(parse_url("issuer", "https://a.example/x?y").is_err());
    }
}
