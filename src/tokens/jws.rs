//! A compact JWS taken apart once: its header, the signature over its first two segments, and
//! its claims parsed straight into [`Claims`].
//!
//! jsonwebtoken's `decode` parses the header three times (tokend's `decode_header` for the key
//! id, then twice inside `decode`) and the claims twice (into the caller's type and into its
//! own validation struct). For a token seen for the first time that was a fifth of the
//! server's cycles (bench/README.md, "Where the time goes"). Here each segment is decoded
//! once. The signature is still checked by jsonwebtoken's crypto provider
//! ([`jsonwebtoken::crypto::verify`], tokend's [`super::crypto`] for Ed25519), and before the
//! claims are read; the registered claims are checked by
//! [`super::TokenService`] (`check_registered`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::Claims;

/// The three segments of `header.payload.signature`.
pub struct Compact<'a> {
    token: &'a str,
    /// `header.payload`: what the signature signs.
    message: &'a str,
    payload: &'a str,
    signature: &'a str,
}

/// Why a signature could not be checked or did not match.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Not base64url, or not a signature of the key's kind.
    Malformed,
    Mismatch,
}

impl<'a> Compact<'a> {
    /// `None` unless the token is exactly three segments separated by dots.
    pub fn split(token: &'a str) -> Option<Compact<'a>> {
        let (message, signature) = token.rsplit_once('.')?;
        let (_header, payload) = message.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        Some(Compact {
            token,
            message,
            payload,
            signature,
        })
    }

    /// The protected header, parsed once.
    pub fn header(&self) -> Option<Header> {
        jsonwebtoken::decode_header(self.token).ok()
    }

    /// Checks the signature with `key` for `algorithm` (the caller has matched the header's
    /// `alg` against the one algorithm it accepts).
    pub fn check_signature(
        &self,
        key: &DecodingKey,
        algorithm: Algorithm,
    ) -> Result<(), SignatureError> {
        match jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), key, algorithm)
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(SignatureError::Mismatch),
            Err(_) => Err(SignatureError::Malformed),
        }
    }

    /// The claims, straight from the payload's JSON. Only for a token whose signature matched.
    pub fn claims(&self) -> Option<Claims> {
        let json = URL_SAFE_NO_PAD.decode(self.payload).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_three_segments_split() {
        assert!(Compact::split("a.b.c").is_some());
        assert!(Compact::split("a.b.").is_some());
        assert!(Compact::split("..").is_some());
        for bad in ["", "a", "a.b", "a.b.c.d", "a..b.c", "..."] {
            assert!(Compact::split(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_is_header_and_payload() {
        let jws = Compact::split("hh.pp.ss").unwrap();
        assert_eq!(jws.message, "hh.pp");
        assert_eq!(jws.payload, "pp");
        assert_eq!(jws.signature, "ss");
    }
}
