//! How a token is written: a JWS whose payload segment also decodes with plain `base64 -d`.
//!
//! Operators' runbooks read a token's expiry with
//! `echo "$TOKEN" | cut -d'.' -f2 | base64 -d | jq -r '.exp'`. A JWT segment is base64url
//! without padding, which `base64 -d` refuses when it holds `-` or `_` or its length is not a
//! multiple of 4. So the payload JSON is written such that neither happens, and it is still
//! ordinary JSON that every JWT library reads the same:
//!
//! - A base64 character is `-` or `_` (62 or 63) only when a 3-byte group's last byte is one
//!   of `>`, `?`, `~` or DEL, or when a byte is not ASCII. The JSON is therefore pure ASCII
//!   (everything else as `\uXXXX` escapes) and those four characters are escaped as well.
//! - The JSON is padded with spaces before its closing `}` to a multiple of 3 bytes, so the
//!   segment is a multiple of 4 characters and needs no `=`.

use std::io;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Serialize;

/// Writes JSON strings in pure ASCII, escaping also `>`, `?`, `~` and DEL.
struct Base64SafeFormatter;

impl serde_json::ser::Formatter for Base64SafeFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() && !matches!(c, '>' | '?' | '~' | '\x7f') {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// The claims as JSON that encodes to a `base64 -d`-friendly segment.
pub fn payload_json<T: Serialize>(claims: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Base64SafeFormatter);
    claims.serialize(&mut ser)?;
    // Claims are an object: pad before its closing brace.
    if out.last() == Some(&b'}') {
        out.pop();
        while (out.len() + 1) % 3 != 0 {
            out.push(b' ');
        }
        out.push(b'}');
    }
    Ok(out)
}

/// Signs `header.payload` and returns the compact JWS.
pub fn encode<H: Serialize, T: Serialize>(
    header: &H,
    claims: &T,
    key: &EncodingKey,
    algorithm: Algorithm,
) -> Result<String, jsonwebtoken::errors::Error> {
    let header =
        serde_json::to_vec(header).map_err(|e| jsonwebtoken::errors::ErrorKind::Json(e.into()))?;
    let payload =
        payload_json(claims).map_err(|e| jsonwebtoken::errors::ErrorKind::Json(e.into()))?;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm)?;
    Ok(format!("{message}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    #[test]
    fn payload_segment_is_standard_base64_too() {
        let names = [
            "plain",
            "a>b?c~d",
            "\u{7f}",
            "caf\u{e9} \u{1f600}",
            ">>>???~~~",
            "",
            "x",
        ];
        for (i, name) in names.iter().enumerate() {
            for pad in 0..5 {
                let claims = json!({"sub": name, "n": "y".repeat(pad + i), "metadata": {"k>": ["?~", "\u{2028}"]}});
                let json = payload_json(&claims).unwrap();
                assert!(json.is_ascii());
                assert_eq!(json.len() % 3, 0);
                let segment = URL_SAFE_NO_PAD.encode(&json);
                assert!(!segment.contains(['-', '_']), "{segment}");
                let decoded = STANDARD.decode(&segment).unwrap();
                let back: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
                assert_eq!(back, claims);
            }
        }
    }
}
