//! Account input, parsed once at the edge into types the rest of the code can trust.

use crate::error::{ApiError, Code};
use crate::scope::printable;

pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
pub const MAX_REASON_CHARS: usize = 500;

/// An account's name: a label, not a key (rotation creates a new account with the same
/// name). Printable ASCII so it is safe in response headers (`X-Tokend-Name`) and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub fn parse(raw: &str) -> Result<AccountName, ApiError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                "name must not be empty, e.g. \"sensor:core.timer\"",
            ));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                format!("name may be at most {MAX_NAME_CHARS} characters long"),
            ));
        }
        if !name.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(ApiError::bad_request(
                Code::InvalidRequest,
                format!(
                    "name '{}' may only contain printable ASCII characters (letters, digits, punctuation, spaces)",
                    printable(name, 60)
                ),
            ));
        }
        Ok(AccountName(name.to_owned()))
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
            MAX_DESCRIPTION_CHARS,
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
        Ok(Reason(free_text("reason", raw, MAX_REASON_CHARS)?))
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
            AccountName::parse("  sensor:core.timer ").unwrap().as_str(),
            "sensor:core.timer"
        );
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
