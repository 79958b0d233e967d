//! HTTPS settings (`TOKEND_TLS_*`) as plain, validated data. `src/tls/` turns them into a
//! rustls server configuration at start-up.

use std::path::PathBuf;

/// The variables, as errors and logs name them.
pub const CERT_VAR: &str = "TOKEND_TLS_CERT";
pub const KEY_VAR: &str = "TOKEND_TLS_KEY";
pub const CLIENT_CA_VAR: &str = "TOKEND_TLS_CLIENT_CA";
pub const CLIENT_CERT_PATHS_VAR: &str = "TOKEND_TLS_CLIENT_CERT_PATHS";

/// HTTPS settings (`TOKEND_TLS_*`), validated: both files named, client certificates
/// configured completely or not at all. The files themselves are read at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of the first certificate.
    pub key: PathBuf,
    /// Client certificates, when asked for.
    pub client_certs: Option<ClientCertSettings>,
}

/// `TOKEND_TLS_CLIENT_CA` with `TOKEND_TLS_CLIENT_CERT_PATHS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertSettings {
    /// PEM bundle of the CAs whose client certificates are accepted.
    pub ca: PathBuf,
    /// Request paths starting with one of these need a verified client certificate.
    pub path_prefixes: Vec<String>,
}

impl TlsSettings {
    /// Validates the four `tokend serve` flags / variables together. `None`: plain HTTP.
    /// Errors name the variable at fault and say what to set.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
        client_cert_paths: Option<String>,
    ) -> Result<Option<TlsSettings>, String> {
        let given = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        let (cert, key, client_ca) = (given(cert), given(key), given(client_ca));
        let paths = client_cert_paths
            .as_deref()
            .map(parse_path_prefixes)
            .transpose()?
            .filter(|p| !p.is_empty());
        if cert.is_none() && key.is_none() && (client_ca.is_some() || paths.is_some()) {
            return Err(format!(
                "{CLIENT_CA_VAR} and {CLIENT_CERT_PATHS_VAR} need HTTPS: set {CERT_VAR} and \
                 {KEY_VAR} too (client certificates are part of tokend's own TLS)"
            ));
        }
        let client_certs = match (client_ca, paths) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                    "{CLIENT_CA_VAR} needs {CLIENT_CERT_PATHS_VAR}: the path prefixes that \
                     require a client certificate, e.g. /admin/,/oauth2/"
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{CLIENT_CERT_PATHS_VAR} needs {CLIENT_CA_VAR}: the PEM bundle of the CAs \
                     that sign the client certificates"
                ))
            }
            (Some(ca), Some(path_prefixes)) => Some(ClientCertSettings { ca, path_prefixes }),
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsSettings {
                cert,
                key,
                client_certs,
            })),
            (Some(_), None) => Err(format!(
                "{CERT_VAR} is set but {KEY_VAR} is not: HTTPS needs the certificate chain and \
                 its private key (both PEM files); set both, or neither for plain HTTP"
            )),
            (None, Some(_)) => Err(format!(
                "{KEY_VAR} is set but {CERT_VAR} is not: HTTPS needs the certificate chain and \
                 its private key (both PEM files); set both, or neither for plain HTTP"
            )),
            (None, None) => Ok(None),
        }
    }
}

/// `/oauth2/, /admin/`: absolute path prefixes, comma-separated.
fn parse_path_prefixes(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('/') && !s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "{CLIENT_CERT_PATHS_VAR}: '{}' is not an absolute path prefix such as /admin/",
                    s.escape_debug()
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn flags_both_or_neither() {
        assert_eq!(TlsSettings::from_flags(None, None, None, None), Ok(None));
        let tls = TlsSettings::from_flags(p("c.pem"), p("k.pem"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert!(tls.client_certs.is_none());
        let err = TlsSettings::from_flags(p("c.pem"), None, None, None).unwrap_err();
        assert!(
            err.starts_with("TOKEND_TLS_CERT is set but TOKEND_TLS_KEY"),
            "{err}"
        );
        let err = TlsSettings::from_flags(None, p("k.pem"), None, None).unwrap_err();
        assert!(
            err.starts_with("TOKEND_TLS_KEY is set but TOKEND_TLS_CERT"),
            "{err}"
        );
        // An empty value counts as unset.
        assert_eq!(
            TlsSettings::from_flags(p(""), None, None, Some(" ".into())),
            Ok(None)
        );
    }

    #[test]
    fn client_certificate_flags() {
        let tls = TlsSettings::from_flags(
            p("c.pem"),
            p("k.pem"),
            p("ca.pem"),
            Some(" /oauth2/, /admin/ ,".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            tls.client_certs.unwrap().path_prefixes,
            vec!["/oauth2/".to_owned(), "/admin/".to_owned()]
        );
        let err = TlsSettings::from_flags(p("c.pem"), p("k.pem"), p("ca.pem"), None).unwrap_err();
        assert!(
            err.starts_with("TOKEND_TLS_CLIENT_CA needs TOKEND_TLS_CLIENT_CERT_PATHS"),
            "{err}"
        );
        let err = TlsSettings::from_flags(p("c.pem"), p("k.pem"), None, Some("/admin/".into()))
            .unwrap_err();
        assert!(
            err.starts_with("TOKEND_TLS_CLIENT_CERT_PATHS needs TOKEND_TLS_CLIENT_CA"),
            "{err}"
        );
        let err =
            TlsSettings::from_flags(None, None, p("ca.pem"), Some("/admin/".into())).unwrap_err();
        assert!(err.contains("need HTTPS"), "{err}");
        let err =
            TlsSettings::from_flags(p("c.pem"), p("k.pem"), p("ca.pem"), Some("admin/".into()))
                .unwrap_err();
        assert!(
            err.contains("'admin/' is not an absolute path prefix"),
            "{err}"
        );
    }
}
