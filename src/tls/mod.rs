//! tokend's own TLS: HTTPS on `TOKEND_LISTEN` when `TOKEND_TLS_CERT` and `TOKEND_TLS_KEY` are
//! set, with the pair reloaded when its files change ([`reload`]), and optional client
//! certificates required on some path prefixes ([`client_certs`]).
//!
//! Settings ([`TlsSettings`]) are plain data read by `config` (`config/tls.rs`); this module turns them into a
//! rustls [`ServerConfig`] at start-up. PEM is parsed by `rustls-pki-types`' [`PemObject`]
//! (the maintained successor of `rustls-pemfile`), with the `ring` provider the rest of tokend
//! uses. Nothing here ever logs or returns the private key's contents.

pub mod client_certs;
pub mod reload;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use crate::config::tls::{
    ClientCertSettings, TlsSettings, CERT_VAR, CLIENT_CA_VAR, CLIENT_CERT_PATHS_VAR, KEY_VAR,
};
pub use client_certs::{ClientCertificate, RequiredPaths};
pub use reload::ReloadingCert;

/// Why a certificate, key or CA file cannot be used. The message names the variable and the
/// file, never the key's contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var}: cannot read {}: {source}", path.display())]
    Read {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{var}: {} {reason}", path.display())]
    Invalid {
        var: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{KEY_VAR} ({}) is not the private key of the certificate in {CERT_VAR} ({}): give the \
         key that belongs to the first certificate of the chain",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS: {0}")]
    Rustls(String),
}

/// What the log and the metrics say about the certificate being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, RFC 4514 (`CN=tokend.example`), or empty when it cannot be read.
    pub subject: String,
    /// The serial number in hex.
    pub serial: String,
    /// notAfter as Unix seconds (`None` when it cannot be read).
    pub not_after: Option<i64>,
    /// SHA-256 of the certificate (DER), hex: what `openssl x509 -fingerprint -sha256` shows.
    pub sha256: String,
}

impl CertInfo {
    /// Reads the fields of a DER certificate; what cannot be parsed stays empty.
    pub fn of(der: &[u8]) -> CertInfo {
        use x509_cert::der::Decode;
        let sha256 = hex::encode(Sha256::digest(der));
        match x509_cert::Certificate::from_der(der) {
            Ok(cert) => {
                let tbs = &cert.tbs_certificate;
                CertInfo {
                    subject: tbs.subject.to_string(),
                    serial: hex::encode(tbs.serial_number.as_bytes()),
                    not_after: i64::try_from(tbs.validity.not_after.to_unix_duration().as_secs())
                        .ok(),
                    sha256,
                }
            }
            Err(_) => CertInfo {
                subject: String::new(),
                serial: String::new(),
                not_after: None,
                sha256,
            },
        }
    }

    /// notAfter in RFC 3339, or `unknown`.
    pub fn not_after_rfc3339(&self) -> String {
        self.not_after
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or_else(
                || "unknown".to_owned(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject \"{}\", serial {}, notAfter {}, SHA-256 {}",
            self.subject,
            self.serial,
            self.not_after_rfc3339(),
            self.sha256
        )
    }
}

/// The crypto provider of tokend's TLS: `ring`, as everywhere else in tokend.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a file named by `var`.
fn read(var: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        var,
        path: path.to_owned(),
        source,
    })
}

/// Reads the certificate chain and the key files, the key into memory that is wiped after.
pub(crate) fn read_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), TlsError> {
    Ok((read(CERT_VAR, cert)?, Zeroizing::new(read(KEY_VAR, key)?)))
}

/// A PEM error in words, without any of the file's contents.
fn pem_reason(err: &pem::Error, what: &str) -> String {
    match err {
        pem::Error::NoItemsFound => format!("holds no {what} PEM block"),
        pem::Error::MissingSectionEnd { .. } => {
            "has a PEM block without its END line (is it still being written?)".to_owned()
        }
        pem::Error::Base64Decode(_) => "has a PEM block that is not valid base64".to_owned(),
        _ => "is not a valid PEM file".to_owned(),
    }
}

/// Parses a certificate chain and its private key (PEM) and checks that the key belongs to the
/// first certificate. `paths` only name the files in errors.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    (cert_path, key_path): (&Path, &Path),
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let invalid = |var, path: &Path, reason: String| TlsError::Invalid {
        var,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(CERT_VAR, cert_path, pem_reason(&e, "CERTIFICATE")))?;
    if chain.is_empty() {
        return Err(invalid(
            CERT_VAR,
            cert_path,
            "holds no CERTIFICATE PEM block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        invalid(
            KEY_VAR,
            key_path,
            pem_reason(&e, "PRIVATE KEY (PKCS#8, RSA or EC)"),
        )
    })?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|_| {
        invalid(
            KEY_VAR,
            key_path,
            "holds a private key of a kind TLS cannot use (RSA, ECDSA P-256/P-384 and Ed25519 are supported)"
                .into(),
        )
    })?;
    let info = CertInfo::of(&chain[0]);
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok((certified, info)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            log::warn!(
                "TLS: cannot check that {KEY_VAR} ({}) belongs to the certificate; serving it unchecked",
                key_path.display()
            );
            Ok((certified, info))
        }
        Err(e) => Err(invalid(
            CERT_VAR,
            cert_path,
            format!("holds a certificate that cannot be parsed ({e})"),
        )),
    }
}

/// The client CAs of `TOKEND_TLS_CLIENT_CA`.
fn client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = read(CLIENT_CA_VAR, path)?;
    let invalid = |reason: String| TlsError::Invalid {
        var: CLIENT_CA_VAR,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(pem_reason(&e, "CERTIFICATE")))?;
    if certs.is_empty() {
        return Err(invalid("holds no CERTIFICATE PEM block".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("holds a certificate that is not a usable CA ({e})")))?;
    }
    Ok(roots)
}

/// What start-up builds from [`TlsSettings`].
pub struct Tls {
    /// For `HttpServer::listen_rustls_0_23`.
    pub config: ServerConfig,
    /// The served pair; [`ReloadingCert::watch_forever`] keeps it fresh.
    pub cert: Arc<ReloadingCert>,
    /// The prefixes that need a client certificate, for the middleware (none without
    /// `TOKEND_TLS_CLIENT_CA`).
    pub required_paths: RequiredPaths,
}

impl Tls {
    /// Reads and checks the files: any problem is a start-up error naming its variable.
    pub fn load(settings: &TlsSettings) -> Result<Tls, TlsError> {
        let provider = provider();
        let cert = Arc::new(ReloadingCert::load(
            settings.cert.clone(),
            settings.key.clone(),
            provider.clone(),
        )?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let (builder, required_paths) = match &settings.client_certs {
            None => (builder.with_no_client_auth(), RequiredPaths::default()),
            Some(client) => {
                // Offered, not demanded: clients without a certificate still connect, and the
                // middleware refuses them on the required paths only. A certificate that is
                // presented must verify, or the handshake fails.
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(client_roots(&client.ca)?),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Invalid {
                    var: CLIENT_CA_VAR,
                    path: client.ca.clone(),
                    reason: format!("cannot be used to verify client certificates ({e})"),
                })?;
                log::info!(
                    "TLS: client certificates from the CAs in {} are required on {}",
                    client.ca.display(),
                    client.path_prefixes.join(",")
                );
                (
                    builder.with_client_cert_verifier(verifier),
                    RequiredPaths::new(client.path_prefixes.clone()),
                )
            }
        };
        let config = builder.with_cert_resolver(cert.clone());
        Ok(Tls {
            config,
            cert,
            required_paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        let provider = provider();
        let paths = (Path::new("c.pem"), Path::new("k.pem"));
        let err = certified_key(b"not pem", b"", paths, &provider).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TOKEND_TLS_CERT: c.pem holds no CERTIFICATE PEM block"
        );
        let half = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let err = certified_key(half, b"", paths, &provider).unwrap_err();
        assert!(err.to_string().contains("without its END line"), "{err}");
    }
}
