//! The token parser and verifier: any bytes as a bearer token, and any payload signed with
//! the real key (so the claim checks are reached, not only the signature check). Must never
//! panic, and must never accept a token whose claims break the rules.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokend::tokens::{KeySet, KeyStore, RevocationSet, TokenService};

static SERVICE: LazyLock<TokenService> = LazyLock::new(|| {
    let keys = KeySet::ephemeral_ed25519().expect("a key");
    TokenService::new(
        Arc::new(KeyStore::new(keys)),
        Arc::new(RevocationSet::new()),
        "tokend".into(),
        "tokend".into(),
        Duration::from_secs(30),
    )
});

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            let _ = SERVICE.verify(token);
            let _ = SERVICE.verify_signature(token);
        }
        return;
    }
    // A payload of the fuzzer's choosing, correctly signed.
    let keys = SERVICE.keys().current();
    let header = format!(r#"{{"typ":"JWT","alg":"EdDSA","kid":"{}"}}"#, keys.signing_kid());
    let message = format!("{}.{}", b64(header.as_bytes()), b64(rest));
    let Ok(signature) = jsonwebtoken::crypto::sign(message.as_bytes(), keys.encoding_key(), keys.algorithm()) else {
        return;
    };
    let token = format!("{message}.{signature}");
    if let Ok(claims) = SERVICE.verify(&token) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        assert_eq!(claims.iss, "tokend");
        assert_eq!(claims.aud, "tokend");
        assert!(claims.exp + 30 >= now, "an expired token was accepted");
        assert!(claims.nbf - 30 <= now, "a token not valid yet was accepted");
    }
});
