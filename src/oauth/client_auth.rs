//! How a client says who it is at the OAuth 2.0 endpoints (RFC 6749 §2.3): HTTP Basic
//! (`client_secret_basic`), `client_id` + `client_secret` in the form (`client_secret_post`),
//! or a signed client assertion (`private_key_jwt`, RFC 7523). Exactly one method per request.

use actix_web::http::header;
use actix_web::HttpRequest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use super::error::OAuthError;
use super::form::Form;

/// RFC 7523 §2.2's `client_assertion_type`.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client credentials a request carries, not yet checked. `Debug` never shows a secret.
pub enum ClientCredentials {
    /// No client authentication.
    None,
    Secret {
        client_id: String,
        secret: Zeroizing<String>,
        /// `client_secret_basic` or `client_secret_post`.
        method: &'static str,
    },
    Assertion {
        /// The `client_id` parameter, when sent (it must then match the assertion's `sub`).
        client_id: Option<String>,
        assertion: String,
    },
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientCredentials::None => f.write_str("None"),
            ClientCredentials::Secret {
                client_id, method, ..
            } => write!(
                f,
                "Secret {{ client_id: {client_id:?}, method: {method}, .. }}"
            ),
            ClientCredentials::Assertion { client_id, .. } => {
                write!(f, "Assertion {{ client_id: {client_id:?}, .. }}")
            }
        }
    }
}

impl ClientCredentials {
    /// Reads the client credentials of a request. More than one method is refused.
    pub fn from_request(req: &HttpRequest, form: &Form) -> Result<Self, OAuthError> {
        let basic = basic_credentials(req)?;
        let post_secret = form.get("client_secret");
        let assertion = form.get("client_assertion");
        let assertion_type = form.get("client_assertion_type");
        let methods =
            basic.is_some() as u8 + post_secret.is_some() as u8 + assertion.is_some() as u8;
        if methods > 1 {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic, client_secret in the form, or client_assertion",
            ));
        }
        if let Some((client_id, secret)) = basic {
            // A client_id in the body too must name the same client.
            if let Some(other) = form.get("client_id") {
                if other != client_id {
                    return Err(OAuthError::invalid_request(
                        "the client_id in the form differs from the one in the Authorization header",
                    ));
                }
            }
            return Ok(ClientCredentials::Secret {
                client_id,
                secret,
                method: "client_secret_basic",
            });
        }
        if let Some(secret) = post_secret {
            // A secret without a client names no client: authentication fails (§5.2).
            let client_id = form.get("client_id").ok_or_else(|| {
                OAuthError::invalid_client("client_secret needs client_id in the form as well")
            })?;
            return Ok(ClientCredentials::Secret {
                client_id: client_id.to_owned(),
                secret: Zeroizing::new(secret.to_owned()),
                method: "client_secret_post",
            });
        }
        if let Some(assertion) = assertion {
            if assertion_type != Some(JWT_BEARER_ASSERTION) {
                return Err(OAuthError::invalid_request(format!(
                    "client_assertion_type must be {JWT_BEARER_ASSERTION}"
                )));
            }
            return Ok(ClientCredentials::Assertion {
                client_id: form.get("client_id").map(str::to_owned),
                assertion: assertion.to_owned(),
            });
        }
        if assertion_type.is_some() {
            return Err(OAuthError::invalid_request(
                "client_assertion_type without client_assertion",
            ));
        }
        Ok(ClientCredentials::None)
    }

    /// Whether the credentials came in an HTTP Basic header (a 401 must then challenge Basic).
    pub fn is_basic(&self) -> bool {
        matches!(
            self,
            ClientCredentials::Secret {
                method: "client_secret_basic",
                ..
            }
        )
    }
}

/// `Authorization: Basic base64(urlencode(client_id) ":" urlencode(client_secret))`
/// (RFC 6749 §2.3.1). Another scheme (a Bearer token) is not client authentication: `None`.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, Zeroizing<String>)>, OAuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_request("the Authorization header is not ASCII"))?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || {
        OAuthError::invalid_client(
            "the Authorization header is not Basic base64(client_id:client_secret)",
        )
        .with_basic_challenge(true)
    };
    let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| bad())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let secret = Zeroizing::new(form_decode(secret).ok_or_else(bad)?);
    if id.is_empty() || secret.is_empty() || id.chars().chain(secret.chars()).any(char::is_control)
    {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("sa-1", "a%2Bb+c")))
            .to_http_request();
        let creds = ClientCredentials::from_request(&req, &Form::default()).unwrap();
        match creds {
            ClientCredentials::Secret {
                client_id, secret, ..
            } => {
                assert_eq!(client_id, "sa-1");
                assert_eq!(secret.as_str(), "a+b c");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_methods_are_refused() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("sa-1", "x")))
            .to_http_request();
        let form = Form::parse(b"client_id=sa-1&client_secret=x").unwrap();
        assert!(ClientCredentials::from_request(&req, &form).is_err());
    }

    #[test]
    fn a_bearer_header_is_not_client_authentication() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer abc"))
            .to_http_request();
        let creds = ClientCredentials::from_request(&req, &Form::default()).unwrap();
        assert!(matches!(creds, ClientCredentials::None));
    }
}
