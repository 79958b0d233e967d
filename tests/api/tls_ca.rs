//! A certificate authority of the test's own (rcgen, `ring`): server certificates for
//! `127.0.0.1`/`localhost`, client certificates, and clients that trust this CA alone (no
//! verification is ever turned off). For any test that talks to tokend over HTTPS:
//!
//! ```ignore
//! let ca = TestCa::new();
//! let app = TestApp::spawn_tls(Backend::Sqlite, ca.server_tls(dir.path()), &ca).await;
//! app.client.get(app.url("/health"))…            // trusts `ca` only
//! ca.client_with(&ca.client_cert("sensor-7"))…     // also presents a client certificate
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use tokend::tls::{ClientCertSettings, TlsSettings};

/// Serial numbers unique within the test binary, so every certificate is told apart.
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A CA: its certificate (PEM, also as a file) and the key that signs with it.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    dir: tempfile::TempDir,
}

/// A certificate and its private key, in memory; [`CertPair::write`] puts them in files.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate (PEM), followed by nothing: the CA is the root clients trust.
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER): what a TLS peer presents.
    pub der: Vec<u8>,
    /// Its serial number.
    pub serial: u64,
}

impl CertPair {
    /// SHA-256 of the certificate (DER), hex, as tokend logs it.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }

    /// Writes `dir/NAME.crt` and `dir/NAME.key` (replacing them in place if they exist);
    /// returns (cert path, key path).
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the key");
        (cert, key)
    }

    /// The pair as a reqwest identity (key and certificate in one PEM).
    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.key_pem, self.cert_pem).as_bytes())
            .expect("a PEM identity")
    }

    /// The pair as rustls wants it for a client certificate.
    pub fn rustls(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![CertificateDer::from(self.der.clone())],
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("a PEM key"),
        )
    }
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tokend test CA {serial}"));
        params.serial_number = Some(SerialNumber::from(serial));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a self-signed CA");
        let dir = tempfile::tempdir().expect("a temp dir");
        let cert_pem = cert.pem();
        std::fs::write(dir.path().join("ca.pem"), &cert_pem).expect("write the CA");
        TestCa {
            issuer: Issuer::new(params, key),
            cert_pem,
            dir,
        }
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A file holding the CA certificate (PEM), e.g. for `TOKEND_TLS_CLIENT_CA`.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn issue(&self, common_name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> CertPair {
        let key = KeyPair::generate().expect("a key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate params");
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("a signed cert");
        CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            serial,
        }
    }

    /// A new server certificate for `127.0.0.1` and `localhost` (a new key and serial each
    /// time), in memory.
    pub fn server_cert(&self) -> CertPair {
        self.issue(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// [`TestCa::server_cert`] written to `dir/server.crt` and `dir/server.key`.
    pub fn server_pair(&self, dir: &Path) -> (CertPair, PathBuf, PathBuf) {
        let pair = self.server_cert();
        let (cert, key) = pair.write(dir, "server");
        (pair, cert, key)
    }

    /// Settings that serve a new server certificate of this CA from files in `dir`.
    pub fn server_tls(&self, dir: &Path) -> TlsSettings {
        let (_, cert, key) = self.server_pair(dir);
        TlsSettings {
            cert,
            key,
            client_certs: None,
        }
    }

    /// [`TestCa::server_tls`] that also accepts this CA's client certificates and requires
    /// one on `prefixes`.
    pub fn server_tls_with_client_certs(&self, dir: &Path, prefixes: &[&str]) -> TlsSettings {
        TlsSettings {
            client_certs: Some(ClientCertSettings {
                ca: self.ca_pem_path(),
                path_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            }),
            ..self.server_tls(dir)
        }
    }

    /// A new client certificate with this common name, in memory.
    pub fn client_cert(&self, common_name: &str) -> CertPair {
        self.issue(common_name, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// [`TestCa::client_cert`] written to `dir/client.crt` and `dir/client.key`.
    pub fn client_pair(&self, dir: &Path, common_name: &str) -> (CertPair, PathBuf, PathBuf) {
        let pair = self.client_cert(common_name);
        let (cert, key) = pair.write(dir, "client");
        (pair, cert, key)
    }

    /// A reqwest client builder that trusts this CA only (and no built-in roots).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem().as_bytes()).expect("the CA as PEM"),
            )
            .timeout(std::time::Duration::from_secs(30))
    }

    /// A reqwest client that trusts this CA only.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("an HTTPS client")
    }

    /// A reqwest client that trusts this CA only and presents `identity`.
    pub fn client_with(&self, identity: &CertPair) -> reqwest::Client {
        self.client_builder()
            .identity(identity.identity())
            .build()
            .expect("an HTTPS client with a client certificate")
    }

    /// A rustls client configuration (HTTP/1.1) that trusts this CA only, presenting
    /// `identity` when given.
    pub fn rustls_client(&self, identity: Option<&CertPair>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("the CA"))
            .expect("a CA root");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
        let mut config = match identity {
            Some(pair) => {
                let (chain, key) = pair.rustls();
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("a client certificate")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
