//! Token lifetimes: per-scope bounds and the `ttl_*` request fields.

use std::time::Duration;

use serde_json::Value;

use super::Scope;
use crate::error::{ApiError, Code};
use crate::time::human_duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// The lifetime a scope allows: every token's TTL lies in `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    pub min: Duration,
    pub max: Duration,
    pub default: Duration,
}

impl TtlBounds {
    const fn secs(min: u64, max: u64, default: u64) -> TtlBounds {
        TtlBounds {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
            default: Duration::from_secs(default),
        }
    }

    /// `between 24h and 72h (default 72h)`.
    pub fn describe(&self) -> String {
        format!(
            "between {} and {} (default {})",
            human_duration(self.min),
            human_duration(self.max),
            human_duration(self.default)
        )
    }

    pub fn contains(&self, ttl: Duration) -> bool {
        ttl >= self.min && ttl <= self.max
    }

    /// Clamps a lifetime into the bounds (refresh keeps a token's TTL, within today's bounds).
    pub fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min, self.max)
    }
}

/// The TTL bounds of every scope. Built-in values follow the contract; each can be overridden
/// (`TOKEND_TTL_<SCOPE>=min:max[:default]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePolicy {
    bounds: [TtlBounds; 5],
}

impl Default for ScopePolicy {
    fn default() -> Self {
        ScopePolicy {
            bounds: [
                TtlBounds::secs(24 * HOUR, 72 * HOUR, 72 * HOUR), // sensor
                TtlBounds::secs(5 * MINUTE, 60 * MINUTE, 60 * MINUTE), // execution
                TtlBounds::secs(7 * DAY, 30 * DAY, 7 * DAY),      // cli
                TtlBounds::secs(90 * DAY, 365 * DAY, 90 * DAY),   // webhook
                TtlBounds::secs(5 * MINUTE, 90 * DAY, DAY),       // admin
            ],
        }
    }
}

impl ScopePolicy {
    pub fn bounds(&self, scope: Scope) -> &TtlBounds {
        &self.bounds[scope.index()]
    }

    /// The longest lifetime a token of `scope` may claim and still verify (without the
    /// leeway): the configured maximum or the built-in one, whichever is larger, so that
    /// lowering a maximum does not end, on some replicas and not others, tokens issued
    /// before. A revocation rule is kept this long: pruned earlier, it would let such a token
    /// verify again. (A retiring key is not: retiring it early only ends tokens sooner.)
    pub fn lifetime_ceiling(&self, scope: Scope) -> Duration {
        self.bounds(scope)
            .max
            .max(ScopePolicy::default().bounds(scope).max)
    }

    /// Replaces one scope's bounds. `min` must be positive and `min <= default <= max`.
    pub fn set_bounds(&mut self, scope: Scope, bounds: TtlBounds) -> Result<(), String> {
        if bounds.min.is_zero() {
            return Err(format!("{scope}: the minimum TTL must be positive"));
        }
        if bounds.min > bounds.max {
            return Err(format!(
                "{scope}: the minimum TTL ({}) is above the maximum ({})",
                human_duration(bounds.min),
                human_duration(bounds.max)
            ));
        }
        if !bounds.contains(bounds.default) {
            return Err(format!(
                "{scope}: the default TTL ({}) must lie between the minimum ({}) and the maximum ({})",
                human_duration(bounds.default),
                human_duration(bounds.min),
                human_duration(bounds.max)
            ));
        }
        self.bounds[scope.index()] = bounds;
        Ok(())
    }

    /// Parses an override `min:max[:default]` (e.g. `24h:72h:48h`) for one scope. Without a
    /// default, the built-in default is kept when it fits, else the maximum is used.
    pub fn set_bounds_from_spec(&mut self, scope: Scope, spec: &str) -> Result<(), String> {
        let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
        let parse = |raw: &str| {
            crate::time::parse_duration(raw).map_err(|e| format!("TTL bounds for {scope}: {e}"))
        };
        let (min, max, default) = match parts.as_slice() {
            [min, max] => {
                let (min, max) = (parse(min)?, parse(max)?);
                let builtin = self.bounds(scope).default;
                let default = if builtin >= min && builtin <= max {
                    builtin
                } else {
                    max
                };
                (min, max, default)
            }
            [min, max, default] => (parse(min)?, parse(max)?, parse(default)?),
            _ => {
                return Err(format!(
                    "TTL bounds for {scope} must look like MIN:MAX or MIN:MAX:DEFAULT (e.g. 24h:72h:72h), got '{spec}'"
                ))
            }
        };
        self.set_bounds(scope, TtlBounds { min, max, default })
    }

    /// The lifetime of a new token: the requested one if it is inside the scope's bounds,
    /// the scope's default if none was requested.
    pub fn resolve(
        &self,
        scope: Scope,
        requested: Option<RequestedTtl>,
    ) -> Result<Duration, ApiError> {
        let bounds = self.bounds(scope);
        let Some(requested) = requested else {
            return Ok(bounds.default);
        };
        match requested.duration {
            Some(ttl) if bounds.contains(ttl) => Ok(ttl),
            _ => Err(ApiError::bad_request(
                Code::TtlOutOfRange,
                format!(
                    "{}: {} is outside the {scope} scope's TTL bounds: {scope} tokens must live {}",
                    requested.field,
                    requested.value,
                    bounds.describe()
                ),
            )),
        }
    }
}

/// For optional request fields where an explicit `null` must not pass as "absent": with
/// `#[serde(default, deserialize_with = "crate::scope::explicit")]`, a missing key is `None`
/// and `null` is `Some(Value::Null)` (refused like any other non-number).
pub fn explicit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// The four mutually exclusive TTL fields of a request, exactly as the client sent them.
#[derive(Debug, Default, Clone)]
pub struct TtlFields {
    pub ttl_seconds: Option<Value>,
    pub ttl_minutes: Option<Value>,
    pub ttl_hours: Option<Value>,
    pub ttl_days: Option<Value>,
}

/// A TTL a client asked for, not yet checked against a scope's bounds.
#[derive(Debug, Clone)]
pub struct RequestedTtl {
    field: &'static str,
    value: u64,
    /// `None` when the value overflows any sensible lifetime.
    duration: Option<Duration>,
}

impl RequestedTtl {
    /// At most one `ttl_*` field, a positive whole number. `Ok(None)`: none given.
    pub fn from_fields(fields: &TtlFields) -> Result<Option<RequestedTtl>, ApiError> {
        let given: Vec<(&'static str, u64, &Value)> = [
            ("ttl_seconds", 1, &fields.ttl_seconds),
            ("ttl_minutes", MINUTE, &fields.ttl_minutes),
            ("ttl_hours", HOUR, &fields.ttl_hours),
            ("ttl_days", DAY, &fields.ttl_days),
        ]
        .into_iter()
        .filter_map(|(name, unit, value)| value.as_ref().map(|v| (name, unit, v)))
        .collect();
        let (field, unit, value) = match given.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            many => {
                let names: Vec<&str> = many.iter().map(|(n, _, _)| *n).collect();
                return Err(ApiError::bad_request(
                    Code::InvalidTtl,
                    format!(
                        "give at most one of ttl_seconds, ttl_minutes, ttl_hours, ttl_days (got {})",
                        names.join(", ")
                    ),
                ));
            }
        };
        let value = match super::rules::whole_number(value) {
            Some(v) if v > 0 => u64::try_from(v).unwrap_or(u64::MAX),
            _ => {
                return Err(ApiError::bad_request(
                    Code::InvalidTtl,
                    format!(
                        "{field} must be a positive whole number, got {}",
                        super::printable(&value.to_string(), 40)
                    ),
                ))
            }
        };
        Ok(Some(RequestedTtl {
            field,
            value,
            duration: value.checked_mul(unit).map(Duration::from_secs),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(name: &str, v: Value) -> TtlFields {
        let mut f = TtlFields::default();
        match name {
            "s" => f.ttl_seconds = Some(v),
            "m" => f.ttl_minutes = Some(v),
            "h" => f.ttl_hours = Some(v),
            _ => f.ttl_days = Some(v),
        }
        f
    }

    #[test]
    fn default_when_absent_and_bounds_inclusive() {
        let p = ScopePolicy::default();
        assert_eq!(
            p.resolve(Scope::Sensor, None).unwrap(),
            Duration::from_secs(72 * HOUR)
        );
        let at_min = RequestedTtl::from_fields(&fields("h", json!(24))).unwrap();
        assert_eq!(
            p.resolve(Scope::Sensor, at_min).unwrap(),
            Duration::from_secs(24 * HOUR)
        );
        let below = RequestedTtl::from_fields(&fields("s", json!(24 * HOUR - 1))).unwrap();
        let err = p.resolve(Scope::Sensor, below).unwrap_err();
        assert_eq!(err.code(), Code::TtlOutOfRange);
        assert!(
            err.message().contains("between 24h and 72h"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn refuses_bad_values_and_overflow() {
        for bad in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("72"),
            json!(null),
            json!(0.0),
        ] {
            let err = RequestedTtl::from_fields(&fields("h", bad)).unwrap_err();
            assert_eq!(err.code(), Code::InvalidTtl);
        }
        let huge = RequestedTtl::from_fields(&fields("d", json!(u64::MAX))).unwrap();
        let err = ScopePolicy::default()
            .resolve(Scope::Webhook, huge)
            .unwrap_err();
        assert_eq!(err.code(), Code::TtlOutOfRange);
    }

    #[test]
    fn at_most_one_field() {
        let mut f = fields("h", json!(1));
        f.ttl_days = Some(json!(1));
        let err = RequestedTtl::from_fields(&f).unwrap_err();
        assert_eq!(err.code(), Code::InvalidTtl);
    }

    #[test]
    fn override_spec() {
        let mut p = ScopePolicy::default();
        p.set_bounds_from_spec(Scope::Execution, "1s:10m").unwrap();
        assert_eq!(p.bounds(Scope::Execution).default, Duration::from_secs(600));
        assert!(p.set_bounds_from_spec(Scope::Execution, "10m:1m").is_err());
        assert!(p
            .set_bounds_from_spec(Scope::Execution, "1m:10m:1h")
            .is_err());
        assert!(p
            .set_bounds_from_spec(Scope::Execution, "nonsense")
            .is_err());
    }
}
