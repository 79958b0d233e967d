//! Client certificates on some path prefixes (`TOKEND_TLS_CLIENT_CERT_PATHS`).
//!
//! The handshake offers client authentication against `TOKEND_TLS_CLIENT_CA` but does not
//! demand it, so ordinary clients still connect; a certificate that is presented must verify
//! or the handshake fails. [`on_connect`] records a verified certificate in the connection's
//! extensions ([`ClientCertificate`]); the [`require_client_cert`] middleware answers 403
//! `client_certificate_required` to a request on a required prefix whose connection has none.

use std::any::Any;
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;

use super::CertInfo;
use crate::error::{ApiError, Code};

/// The verified client certificate of a connection (its leaf), in the connection's data
/// (`HttpRequest::conn_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// RFC 4514 subject, e.g. `CN=sensor-host-7`.
    pub subject: String,
    /// SHA-256 of the certificate (DER), hex.
    pub sha256: String,
}

/// For `HttpServer::on_connect`: a TLS connection whose client presented a certificate (which
/// rustls verified during the handshake) gets a [`ClientCertificate`].
pub fn on_connect(conn: &dyn Any, extensions: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) {
        let info = CertInfo::of(leaf);
        extensions.insert(ClientCertificate {
            subject: info.subject,
            sha256: info.sha256,
        });
    }
}

/// The path prefixes that need a client certificate, as app data of the server; the default
/// is none (no `TOKEND_TLS_CLIENT_CA`).
#[derive(Debug, Clone, Default)]
pub struct RequiredPaths(Arc<[String]>);

impl RequiredPaths {
    pub fn new(prefixes: Vec<String>) -> RequiredPaths {
        RequiredPaths(prefixes.into())
    }

    /// Whether `path` (as the request has it, percent-encoded) is under a required prefix.
    /// The decoded form counts too: the router decodes `%61dmin` to `admin`, so must this.
    pub fn requires(&self, path: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        if self
            .0
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            return true;
        }
        // Only an escape makes the decoded form differ.
        path.contains('%') && {
            let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            self.0
                .iter()
                .any(|prefix| decoded.starts_with(prefix.as_str()))
        }
    }
}

/// Refuses a request on a required path whose connection presented no verified client
/// certificate (403 `client_certificate_required`). With no [`RequiredPaths`] in the app
/// data, or empty ones (no `TOKEND_TLS_CLIENT_CA`), it lets everything through.
pub async fn require_client_cert(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(required) = req.app_data::<RequiredPaths>() {
        if required.requires(req.path()) && req.conn_data::<ClientCertificate>().is_none() {
            return Err(ApiError::new(
                Code::ClientCertificateRequired,
                "this path needs a TLS client certificate issued by one of the CAs tokend trusts \
                 (TOKEND_TLS_CLIENT_CA); connect again presenting it",
            )
            .into());
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_raw_and_decoded_paths() {
        let required = RequiredPaths::new(vec!["/admin/".into(), "/oauth2/".into()]);
        assert!(required.requires("/admin/cleanup"));
        assert!(required.requires("/oauth2/token"));
        assert!(required.requires("/%61dmin/cleanup"));
        assert!(!required.requires("/health"));
        assert!(!required.requires("/admin"));
        assert!(!required.requires("/service-accounts"));
    }
}
