//! Claims of external tokens: dotted claim paths (`kubernetes.io.serviceaccount.name`),
//! templates that interpolate them (`"sensor:{kubernetes.io.serviceaccount.name}"`), and the
//! `match` of a rule.
//!
//! Claim keys may contain dots themselves (`kubernetes.io`), so a path is resolved by trying,
//! at each level, the longest run of its segments that is a key there, then shorter ones.

use serde_json::{Map, Value};

/// The longest claim path accepted (in bytes).
pub const MAX_PATH: usize = 200;

/// A claim path: dot-separated segments, each non-empty, of letters, digits and `_-:/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(String);

impl ClaimPath {
    pub fn parse(raw: &str) -> Result<ClaimPath, String> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_PATH
            && raw.split('.').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-:/".contains(&b))
            });
        if ok {
            Ok(ClaimPath(raw.to_owned()))
        } else {
            Err(format!(
                "{:?} is not a claim path: dot-separated names of letters, digits and _-:/ \
                 (e.g. kubernetes.io.namespace), at most {MAX_PATH} characters",
                raw.chars().take(60).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The claim this path names, if the token has it.
    pub fn resolve<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let segments: Vec<&str> = self.0.split('.').collect();
        resolve_in(claims, &segments)
    }
}

fn resolve_in<'a>(object: &'a Map<String, Value>, segments: &[&str]) -> Option<&'a Value> {
    // Longest key first: `kubernetes.io` before `kubernetes`.
    for take in (1..=segments.len()).rev() {
        let key = segments[..take].join(".");
        let Some(value) = object.get(&key) else {
            continue;
        };
        let rest = &segments[take..];
        if rest.is_empty() {
            return Some(value);
        }
        if let Some(found) = value.as_object().and_then(|inner| resolve_in(inner, rest)) {
            return Some(found);
        }
    }
    None
}

/// A claim's value as text for a template: strings as they are, numbers and booleans
/// written out; anything else has no text.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Claim(ClaimPath),
}

/// A string with `{claim.path}` placeholders (`{{` and `}}` for literal braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(raw: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut path = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => path.push(c),
                            None => {
                                return Err(format!(
                                    "{:?} has a {{ without its }} (write {{{{ for a literal brace)",
                                    short(raw)
                                ))
                            }
                        }
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Claim(ClaimPath::parse(&path)?));
                }
                '}' => {
                    return Err(format!(
                        "{:?} has a }} without its {{ (write }}}} for a literal brace)",
                        short(raw)
                    ))
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            raw: raw.to_owned(),
            pieces,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The template with each placeholder replaced by `fill(path)`.
    fn render_with(
        &self,
        mut fill: impl FnMut(&ClaimPath) -> Result<String, String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Claim(path) => out.push_str(&fill(path)?),
            }
        }
        Ok(out)
    }

    /// The template filled from a token's claims; a missing claim, or one that is an object
    /// or array, is an error naming the path.
    pub fn render(&self, claims: &Map<String, Value>) -> Result<String, String> {
        self.render_with(|path| {
            path.resolve(claims).and_then(as_text).ok_or_else(|| {
                format!(
                    "the token has no claim {} (a string, number or boolean) for {:?}",
                    path.as_str(),
                    short(&self.raw)
                )
            })
        })
    }

    /// The template filled with a sample for every claim: how a rule is checked when it is
    /// registered, before any token exists.
    pub fn sample(&self) -> String {
        self.render_with(|_| Ok("sample".into()))
            .unwrap_or_default()
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// A JSON value whose strings are templates (a rule's `metadata`).
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    Str(Template),
    Array(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
    Plain(Value),
}

impl ValueTemplate {
    pub fn parse(value: &Value) -> Result<ValueTemplate, String> {
        Ok(match value {
            Value::String(s) => ValueTemplate::Str(Template::parse(s)?),
            Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .map(ValueTemplate::parse)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), ValueTemplate::parse(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => ValueTemplate::Plain(other.clone()),
        })
    }

    fn build(
        &self,
        fill: &mut impl FnMut(&Template) -> Result<String, String>,
    ) -> Result<Value, String> {
        Ok(match self {
            ValueTemplate::Str(t) => Value::String(fill(t)?),
            ValueTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.build(fill))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.build(fill)?)))
                    .collect::<Result<_, String>>()?,
            ),
            ValueTemplate::Plain(v) => v.clone(),
        })
    }

    /// The value filled from a token's claims.
    pub fn render(&self, claims: &Map<String, Value>) -> Result<Value, String> {
        self.build(&mut |t| t.render(claims))
    }

    /// The value filled with samples (see [`Template::sample`]).
    pub fn sample(&self) -> Value {
        self.build(&mut |t| Ok(t.sample())).unwrap_or(Value::Null)
    }
}

/// Whether a claim holds one of the allowed values (JSON equality; a number claim equals the
/// same number written as a string too, since issuers differ in how they type ids).
pub fn claim_matches(claim: Option<&Value>, allowed: &[Value]) -> bool {
    let Some(claim) = claim else {
        return false;
    };
    allowed.iter().any(|want| {
        want == claim
            || match (want, claim) {
                (Value::String(w), Value::Number(n)) | (Value::Number(n), Value::String(w)) => {
                    *w == n.to_string()
                }
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn k8s() -> Map<String, Value> {
        json!({
            "sub": "system:serviceaccount:sensors:timer",
            "kubernetes.io": {
                "namespace": "sensors",
                "serviceaccount": {"name": "timer", "uid": "u-1"},
                "pod": {"name": "timer-5d8f", "uid": "u-2"}
            },
            "kubernetes": {"io": {"namespace": "decoy"}},
            "run_id": 42
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn dotted_keys_resolve_longest_first() {
        let claims = k8s();
        let path = ClaimPath::parse("kubernetes.io.serviceaccount.name").unwrap();
        assert_eq!(path.resolve(&claims), Some(&json!("timer")));
        let ns = ClaimPath::parse("kubernetes.io.namespace").unwrap();
        assert_eq!(ns.resolve(&claims), Some(&json!("sensors")));
        assert_eq!(
            ClaimPath::parse("kubernetes.io.nope")
                .unwrap()
                .resolve(&claims),
            None
        );
        assert!(ClaimPath::parse("a..b").is_err());
        assert!(ClaimPath::parse("").is_err());
        assert!(ClaimPath::parse("a b").is_err());
    }

    #[test]
    fn templates_interpolate_and_escape() {
        let claims = k8s();
        let t = Template::parse("sensor:{kubernetes.io.serviceaccount.name}").unwrap();
        assert_eq!(t.render(&claims).unwrap(), "sensor:timer");
        let t = Template::parse("run-{run_id} {{literal}}").unwrap();
        assert_eq!(t.render(&claims).unwrap(), "run-42 {literal}");
        assert!(Template::parse("{open").is_err());
        assert!(Template::parse("close}").is_err());
        let missing = Template::parse("{kubernetes.io}").unwrap();
        assert!(missing.render(&claims).is_err(), "an object has no text");
        let meta = ValueTemplate::parse(
            &json!({"trigger_types": ["k8s.{kubernetes.io.namespace}"], "n": 1}),
        )
        .unwrap();
        assert_eq!(
            meta.render(&claims).unwrap(),
            json!({"trigger_types": ["k8s.sensors"], "n": 1})
        );
        assert_eq!(
            meta.sample(),
            json!({"trigger_types": ["k8s.sample"], "n": 1})
        );
    }

    #[test]
    fn matching_is_equality_with_lenient_numbers() {
        assert!(claim_matches(Some(&json!("a")), &[json!("b"), json!("a")]));
        assert!(!claim_matches(Some(&json!("a")), &[json!("b")]));
        assert!(claim_matches(Some(&json!(42)), &[json!("42")]));
        assert!(!claim_matches(None, &[json!("a")]));
        assert!(!claim_matches(Some(&json!(["a"])), &[json!("a")]));
    }
}
