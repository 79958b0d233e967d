//! Account input, parsed once at the edge into types the rest of the code can trust.

use crate::error::{ApiError, Code};
use crate::scope::printable;
use crate::scope::rules;

/// An account's name: a label, not a key (rotation creates a new account with the same
/// name). Printable ASCII so it is safe in response headers (`X-Tokend-Name`) and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<AccountName, ApiError> {
        if rules::is_name(raw) {
            return Ok(AccountName(raw.to_owned()));
        }
        Err(ApiError::bad_request(
            Code::InvalidRequest,
            format!(
                "name '{}' is not valid: 1 to {} printable ASCII characters (letters, digits, punctuation, \
                 inner spaces), e.g. \"sensor:core.timer\"",
                printable(raw, 60),
                rules::NAME_MAX
            ),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text describing an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Description, ApiError> {
        Ok(Description(free_text(
            "description",
            raw,
            rules::DESCRIPTION_MAX,
        )?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why something was revoked, kept in the revocation record and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> Result<Reason, ApiError> {
        Ok(Reason(free_text("reason", raw, rules::REASON_MAX)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn free_text(field: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    if raw.chars().count() > max {
        return Err(ApiError::bad_request(
            Code::InvalidRequest,
            format!("{field} may be at most {max} characters long"),
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::bad_request(
            Code::InvalidRequest,
            format!("{field} may not contain control characters"),
        ));
    }
    Ok(raw.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            AccountName::parse("sensor:core.timer").unwrap().as_str(),
            "sensor:core.timer"
        );
        assert!(AccountName::parse(" padded ").is_err());
        assert!(AccountName::parse("   ").is_err());
        assert!(AccountName::parse("caf\u{e9}").is_err());
        assert!(AccountName::parse(&"a".repeat(129)).is_err());
        assert!(AccountName::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn reasons() {
        assert!(Reason::parse(&"r".repeat(500)).is_ok());
        assert!(Reason::parse(&"r".repeat(501)).is_err());
        assert!(Reason::parse("bad\u{7}bell").is_err());
    }
}
