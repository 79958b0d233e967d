//! The request body of the OAuth 2.0 endpoints: `application/x-www-form-urlencoded`, each
//! parameter at most once (RFC 6749 §3.2), an empty value the same as no value, no control
//! characters.

use std::collections::BTreeMap;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::error::OAuthError;

/// The largest form body the OAuth endpoints read (a client assertion or an external JWT fits
/// many times over).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Every parameter an OAuth endpoint of tokend reads. Each may appear once (RFC 6749 §3.2);
/// repeats of any other (extensions tokend ignores) are ignored with it.
const KNOWN: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "ttl_seconds",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "actor_token_type",
    "audience",
    "resource",
    "execution_id",
    "action_ref",
    "workflow_id",
    "metadata",
    "assertion",
    "token",
    "token_type_hint",
];

/// Form parameters by name.
#[derive(Debug, Default, Clone)]
pub struct Form {
    params: BTreeMap<String, String>,
}

impl Form {
    /// Parses a form body. Repeated parameters and control characters are refused.
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| OAuthError::invalid_request("the form body is not UTF-8"))?;
        let mut params = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            if let Some(bad) = name.chars().chain(value.chars()).find(|c| c.is_control()) {
                return Err(OAuthError::invalid_request(format!(
                    "form parameter {:?} holds the control character U+{:04X}; remove it",
                    printable(&name),
                    bad as u32
                )));
            }
            // RFC 6749 §3.1: a parameter without a value is as if it were omitted.
            if value.is_empty() {
                continue;
            }
            if params.insert(name.to_string(), value.to_string()).is_some()
                && KNOWN.contains(&name.as_ref())
            {
                return Err(OAuthError::invalid_request(format!(
                    "form parameter {:?} is given more than once (RFC 6749 §3.2)",
                    printable(&name)
                )));
            }
        }
        Ok(Form { params })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("the form parameter {name} is required"))
        })
    }

    /// Refuses a parameter this request does not take.
    pub fn refuse(&self, name: &str, why: &str) -> Result<(), OAuthError> {
        match self.get(name) {
            Some(_) => Err(OAuthError::invalid_request(format!(
                "the form parameter {name} is not supported here: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// An optional positive integer parameter.
    pub fn positive_int(&self, name: &str) -> Result<Option<u64>, OAuthError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(OAuthError::invalid_request(format!(
                    "{name} must be a positive integer, not {:?}",
                    printable(v)
                ))),
            },
        }
    }
}

/// A value for an error message: short, without anything that could be a secret's tail.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(40)
        .collect::<String>()
}

impl FromRequest for Form {
    type Error = OAuthError;
    type Future = LocalBoxFuture<'static, Result<Self, OAuthError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.to_ascii_lowercase());
        let is_form = content_type
            .as_deref()
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|_| {
                OAuthError::invalid_request(format!(
                    "the request body is larger than {} KiB",
                    MAX_FORM_BYTES / 1024
                ))
            })?;
            if !is_form {
                return Err(OAuthError::invalid_request(
                    "send the parameters as application/x-www-form-urlencoded (RFC 6749 §4.4.2)",
                ));
            }
            if bytes.len() > MAX_FORM_BYTES {
                return Err(OAuthError::invalid_request(format!(
                    "the request body is larger than {} KiB",
                    MAX_FORM_BYTES / 1024
                )));
            }
            Form::parse(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Form::parse(b"grant_type=a&grant_type=b").unwrap_err();
        assert!(err.description().contains("more than once"));
    }

    #[test]
    fn repeated_unknown_parameters_are_ignored() {
        assert!(Form::parse(b"x=1&x=2&token=t").is_ok());
    }

    #[test]
    fn empty_values_are_omitted_and_plus_is_space() {
        let form = Form::parse(b"scope=&a=b+c%21").unwrap();
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("a"), Some("b c!"));
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(Form::parse(b"a=b%00").is_err());
        assert!(Form::parse(b"a=b%0A").is_err());
    }
}
