//! The served certificate, reloaded without a restart when its files change.
//!
//! cert-manager and similar tools renew a certificate by rewriting the files in place, by
//! renaming new files over the old ones, or (Kubernetes secret volumes) by swapping a symlinked
//! directory. All of these are caught the same way: every [`POLL_INTERVAL`] the cert and key
//! files are read again (through any symlinks) and compared, by SHA-256, with what is being
//! served. A changed pair that parses and whose key matches its certificate is swapped in
//! atomically ([`ArcSwap`]); new handshakes get it at once, connections already open keep the
//! one they started with. A pair that does not work (half-written, key and certificate from
//! different renewals, a file missing mid-swap) gets one more poll to settle, is then logged
//! once as a warning, and the old pair stays served until the files change again.
//!
//! Metrics: `tokend_tls_certificate_expiry_timestamp_seconds` (notAfter of the served
//! certificate) and `tokend_tls_certificate_reloads_total{outcome="ok"|"failed"}`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::{certified_key, read_pair, CertInfo, TlsError};

/// How often the files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The pair being served, with what the log says about it.
struct Served {
    key: Arc<CertifiedKey>,
    info: CertInfo,
    /// SHA-256 over both files' contents, to notice a change.
    digest: [u8; 32],
}

/// A [`ResolvesServerCert`] that always answers with the current pair, which
/// [`ReloadingCert::watch_forever`] replaces when the files change.
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    served: ArcSwap<Served>,
}

impl fmt::Debug for ReloadingCert {
    /// Names the files and the certificate, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("serving", &self.served.load().info)
            .finish()
    }
}

/// SHA-256 over the two files' contents (the cert's length first, so a byte moving from one
/// file to the other is a change too).
fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

impl ReloadingCert {
    /// Reads the pair for the first time: any problem is an error (a start-up error).
    pub fn load(
        cert_path: PathBuf,
        key_path: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<ReloadingCert, TlsError> {
        let served = Self::read(&cert_path, &key_path, &provider)?;
        log::info!("TLS: serving the certificate {}", served.info);
        warn_if_expired(&served.info);
        describe();
        record(&served.info, None);
        Ok(ReloadingCert {
            cert_path,
            key_path,
            provider,
            served: ArcSwap::from_pointee(served),
        })
    }

    fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Served, TlsError> {
        let (cert_pem, key_pem) = read_pair(cert, key)?;
        let digest = digest(&cert_pem, &key_pem);
        let (certified, info) = certified_key(&cert_pem, &key_pem, (cert, key), provider)?;
        Ok(Served {
            key: Arc::new(certified),
            info,
            digest,
        })
    }

    /// What is being served now.
    pub fn info(&self) -> CertInfo {
        self.served.load().info.clone()
    }

    /// Looks at the files once; see the module's rules. Blocking (file I/O).
    pub fn poll(&self, state: &mut PollState) {
        let (seen, result) = match read_pair(&self.cert_path, &self.key_path) {
            Ok((cert, key)) => {
                let seen = digest(&cert, &key);
                if seen == self.served.load().digest {
                    *state = PollState::default();
                    return;
                }
                if state.reported == Some(seen) {
                    return;
                }
                let paths = (self.cert_path.as_path(), self.key_path.as_path());
                (seen, certified_key(&cert, &key, paths, &self.provider))
            }
            // A file missing or unreadable: the same error twice in a row counts as settled.
            Err(e) => (Sha256::digest(e.to_string().as_bytes()).into(), Err(e)),
        };
        if state.reported == Some(seen) {
            return;
        }
        match result {
            Ok((certified, info)) => {
                let old = self.served.swap(Arc::new(Served {
                    key: Arc::new(certified),
                    info: info.clone(),
                    digest: seen,
                }));
                log::info!(
                    "TLS: {} changed; now serving the certificate {info} (was serial {}, SHA-256 {})",
                    self.cert_path.display(),
                    old.info.serial,
                    old.info.sha256
                );
                warn_if_expired(&info);
                record(&info, Some("ok"));
                *state = PollState::default();
            }
            Err(_) if state.unsettled != Some(seen) => {
                // A renewal may be halfway through writing: look again before complaining.
                state.unsettled = Some(seen);
            }
            Err(e) => {
                log::warn!(
                    "TLS: the changed certificate files cannot be used, still serving the certificate {}: {e}",
                    self.served.load().info
                );
                metrics::counter!("tokend_tls_certificate_reloads_total", "outcome" => "failed")
                    .increment(1);
                state.reported = Some(seen);
                state.unsettled = None;
            }
        }
    }

    /// Polls the files every [`POLL_INTERVAL`] for as long as the server runs.
    pub async fn watch_forever(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = PollState::default();
        loop {
            ticker.tick().await;
            let cert = self.clone();
            // One read at a time: a stuck file system holds one blocking thread, not one per tick.
            match actix_web::web::block(move || {
                cert.poll(&mut state);
                state
            })
            .await
            {
                Ok(next) => state = next,
                Err(e) => {
                    log::error!("TLS: the certificate reload check failed: {e}");
                    state = PollState::default();
                }
            }
        }
    }
}

/// What [`ReloadingCert::poll`] remembers between polls about files that did not work.
#[derive(Debug, Default, Clone, Copy)]
pub struct PollState {
    /// Seen once and not usable: given one more poll before it is reported.
    unsettled: Option<[u8; 32]>,
    /// Reported already: not again until the files change.
    reported: Option<[u8; 32]>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served.load().key.clone())
    }
}

fn warn_if_expired(info: &CertInfo) {
    if info
        .not_after
        .is_some_and(|t| t < chrono::Utc::now().timestamp())
    {
        log::error!(
            "TLS: the served certificate expired at {}; clients will refuse it until it is renewed",
            info.not_after_rfc3339()
        );
    }
}

/// Describes the metrics and starts the counters at zero, so a first failure is a change.
fn describe() {
    metrics::describe_gauge!(
        "tokend_tls_certificate_expiry_timestamp_seconds",
        "notAfter of the TLS certificate being served (Unix seconds)"
    );
    metrics::describe_counter!(
        "tokend_tls_certificate_reloads_total",
        "changed TLS certificate files taken (ok) or refused, the old pair kept (failed)"
    );
    for outcome in ["ok", "failed"] {
        metrics::counter!("tokend_tls_certificate_reloads_total", "outcome" => outcome)
            .increment(0);
    }
}

fn record(info: &CertInfo, outcome: Option<&'static str>) {
    if let Some(not_after) = info.not_after {
        metrics::gauge!("tokend_tls_certificate_expiry_timestamp_seconds").set(not_after as f64);
    }
    if let Some(outcome) = outcome {
        metrics::counter!("tokend_tls_certificate_reloads_total", "outcome" => outcome)
            .increment(1);
    }
}
