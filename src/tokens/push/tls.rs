//! TLS for the revocation listener, with libpq's `sslmode` meanings: `prefer` encrypts when
//! the server offers it without checking its certificate, `require` likewise but insists
//! (and checks the chain when a root certificate is there, as libpq does), `verify-ca` checks
//! that a trusted root signed it, `verify-full` also that it names the host. Roots: `sslrootcert=FILE` (PEM), `sslrootcert=system` (the
//! Mozilla roots built in), else `~/.postgresql/root.crt` when it exists, as libpq does.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Encrypt, trust any certificate (`prefer`).
    Nothing,
    /// Encrypt; check the chain when a root certificate is given or in libpq's default place
    /// (`require`, as libpq does).
    Require,
    /// A trusted root signed it (`verify-ca`).
    Chain,
    /// That, and it names the host (`verify-full`).
    Full,
}

/// The connector for `check`, with roots from `sslrootcert` (`None`: libpq's default file).
pub fn connector(check: Check, rootcert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match check {
        Check::Nothing => None,
        _ => roots(rootcert)?,
    };
    let chain = match (check, roots) {
        (Check::Chain | Check::Full, None) => {
            return Err(
                "sslmode=verify-ca and verify-full need sslrootcert (a PEM file, or system)".into(),
            )
        }
        (_, None) => None,
        (_, Some(roots)) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?,
        ),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (check, chain) {
        (Check::Full, Some(full)) => full,
        (_, chain) => Arc::new(Lenient {
            provider: provider.clone(),
            chain,
        }),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The trusted roots, if any are given or in libpq's default place.
fn roots(rootcert: Option<&str>) -> Result<Option<RootCertStore>, String> {
    let path = match rootcert {
        Some("system") => {
            return Ok(Some(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }))
        }
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("HOME") {
            Some(home) if PathBuf::from(&home).join(".postgresql/root.crt").is_file() => {
                PathBuf::from(home).join(".postgresql/root.crt")
            }
            _ => return Ok(None),
        },
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        store
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if store.is_empty() {
        return Err(format!(
            "sslrootcert {}: no certificate in it",
            path.display()
        ));
    }
    Ok(Some(store))
}

/// Encryption with less checking than `verify-full`: any certificate (`chain` None), or one
/// a trusted root signed whatever host it names. The handshake's signatures are checked
/// against the certificate either way.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
