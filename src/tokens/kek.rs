//! The key-encryption key: signing keys are stored sealed with it, never in plain form.
//!
//! It comes from `TOKEND_KEY_ENCRYPTION_KEY` (32 bytes, base64 or hex) or, by default, from
//! a file in the data directory that is created (mode 0600) on first start. Every replica that
//! shares a database needs the same key.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::Settings;

const SEALED_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

/// Seals and opens private keys (ChaCha20-Poly1305, the key id as associated data).
pub struct Kek {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    pub fn from_bytes(bytes: &[u8; 32]) -> Kek {
        Kek {
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }

    /// From the setting, or the key file (created if missing).
    pub fn load(settings: &Settings) -> Result<Kek, String> {
        if let Some(raw) = &settings.key_encryption_key {
            let bytes = parse_key(raw.expose_secret())
                .map_err(|e| format!("TOKEND_KEY_ENCRYPTION_KEY: {e}"))?;
            return Ok(Kek::from_bytes(&bytes));
        }
        let path = settings.kek_file();
        let bytes = read_or_create(&path)?;
        Ok(Kek::from_bytes(&bytes))
    }

    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, String> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| "sealing a signing key failed".to_owned())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    pub fn open(&self, kid: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, String> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|raw| raw.len() > NONCE_LEN)
            .ok_or_else(|| format!("signing key {kid} is not in the sealed format"))?;
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                format!(
                    "cannot decrypt signing key {kid}: it was sealed with a different key-encryption key. \
                     Give this process the key the other replicas use (TOKEND_KEY_ENCRYPTION_KEY or the \
                     signing-keys.kek file in the data directory)"
                )
            })
    }
}

/// 32 bytes as base64 (standard or URL-safe) or 64 hex digits.
fn parse_key(raw: &str) -> Result<[u8; 32], String> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(raw).map_err(|e| e.to_string())?
    } else {
        STANDARD
            .decode(raw)
            .or_else(|_| URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')))
            .map_err(|_| {
                "expected 32 bytes as base64 or 64 hex digits (e.g. `openssl rand -base64 32`)"
                    .to_owned()
            })?
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("expected 32 bytes, got {}", bytes.len()))
}

fn read_or_create(path: &Path) -> Result<[u8; 32], String> {
    crate::config::keep_private(path, false)
        .map_err(|e| format!("cannot restrict access to {}: {e}", path.display()))?;
    match std::fs::read_to_string(path) {
        Ok(content) => parse_key(&content).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes a fresh key without ever exposing a half-written file, and without replacing a
/// file another process created in the meantime (hard link fails if the target exists).
fn create(path: &Path) -> Result<[u8; 32], String> {
    crate::config::ensure_parent_dir(path)
        .map_err(|e| format!("cannot create the directory for {}: {e}", path.display()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut OsRng, key.as_mut());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(format!("{}\n", STANDARD.encode(key.as_ref())).as_bytes())?;
        file.sync_all()
    };
    write().map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            log::info!(
                "created the key-encryption key {} (back it up; every replica needs it)",
                path.display()
            );
            Ok(*key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_or_create(path),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_kid() {
        let kek = Kek::from_bytes(&[7u8; 32]);
        let sealed = kek.seal("kid-1", b"secret key").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(
            kek.open("kid-1", &sealed).unwrap().as_slice(),
            b"secret key"
        );
        assert!(kek.open("kid-2", &sealed).is_err());
        assert!(Kek::from_bytes(&[8u8; 32]).open("kid-1", &sealed).is_err());
    }

    #[test]
    fn key_formats() {
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(parse_key("short").is_err());
    }

    #[test]
    fn file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("k.kek");
        let a = read_or_create(&path).unwrap();
        let b = read_or_create(&path).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("data")), 0o700, "the data directory");
            // A key file others can read is tightened when it is next read.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(read_or_create(&path).unwrap(), a);
            assert_eq!(mode(&path), 0o600);
        }
    }
}
