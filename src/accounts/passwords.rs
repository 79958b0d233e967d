//! Password hashing with argon2id (PHC strings). Always run on the blocking pool.
//!
//! Checking a login that does not exist costs the same as a wrong password: it is verified
//! against a dummy hash made with the same parameters, so timing does not reveal which
//! logins exist.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Argon2Cost;
use crate::error::{ApiError, Code};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A password as the user typed it; never printed.
pub struct Password(SecretString);

impl Password {
    /// A new password must be 8 to 1024 characters long.
    pub fn new_password(raw: String) -> Result<Password, ApiError> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("the password must be at least {MIN_PASSWORD_CHARS} characters long"),
            ));
        }
        Self::presented(raw)
    }

    /// A password presented at login (only its size is bounded, to bound hashing work).
    pub fn presented(raw: String) -> Result<Password, ApiError> {
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("the password may be at most {MAX_PASSWORD_CHARS} characters long"),
            ));
        }
        Ok(Password(SecretString::from(raw)))
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Hashes new passwords and checks presented ones.
pub struct Passwords {
    argon2: Argon2<'static>,
    dummy: String,
}

impl Passwords {
    pub fn new(cost: Argon2Cost) -> Result<Passwords, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon2
            .hash_password(b"tokend dummy password for unknown logins")
            .map_err(|e| format!("argon2: {e}"))?
            .to_string();
        Ok(Passwords { argon2, dummy })
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub fn hash(&self, password: &Password) -> Result<String, ApiError> {
        self.argon2
            .hash_password(password.bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal("hashing a password", &e))
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown login) the same
    /// work is done and the answer is `false`.
    pub fn verify(&self, stored: Option<&str>, password: &Password) -> bool {
        let matches = self
            .argon2
            .verify_password(password.bytes(), stored.unwrap_or(&self.dummy))
            .is_ok();
        matches && stored.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let p = Passwords::new(Argon2Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let pw = Password::new_password("correct horse".into()).unwrap();
        let hash = p.hash(&pw).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct"));
        assert!(p.verify(Some(&hash), &pw));
        assert!(!p.verify(
            Some(&hash),
            &Password::presented("wrong horse".into()).unwrap()
        ));
        assert!(!p.verify(None, &pw));
        assert!(Password::new_password("short".into()).is_err());
        assert!(format!("{pw:?}").contains("redacted"));
    }
}
