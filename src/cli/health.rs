//! `tokend health`: the container's HEALTHCHECK. Asks the server's own `/ready` over
//! loopback, so an image needs no curl. Exit 0 ready, 1 not (Docker reserves 2).
//!
//! With TLS on (`TOKEND_TLS_CERT`), the probe speaks HTTPS to loopback without checking the
//! certificate: the served certificate names the service, not 127.0.0.1, and the probe sends
//! no credential and reads nothing but the readiness status.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The readiness URL to ask. Default: `/ready` on the loopback address of TOKEND_LISTEN
    /// (a wildcard listen address such as 0.0.0.0:8080 is asked at 127.0.0.1:8080).
    #[arg(long)]
    url: Option<String>,
    /// The address the server listens on, as `tokend serve` reads it.
    #[arg(
        long,
        env = "TOKEND_LISTEN",
        default_value = "127.0.0.1:8080",
        hide = true
    )]
    listen: String,
    /// Set when the server serves TLS (as `tokend serve` reads it): the probe uses https.
    #[arg(long, env = "TOKEND_TLS_CERT", hide = true)]
    tls_cert: Option<std::path::PathBuf>,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// The URL to ask: `--url`, or `/ready` on the listen address with a wildcard made loopback.
fn ready_url(args: &HealthArgs) -> Result<String, String> {
    if let Some(url) = &args.url {
        return Ok(url.clone());
    }
    let mut addr: SocketAddr = args.listen.parse().map_err(|_| {
        format!(
            "TOKEND_LISTEN={:?} is not an address such as 0.0.0.0:8080; pass --url",
            args.listen
        )
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{addr}/ready"))
}

/// Exit 0 when the server answers 200 on its readiness URL; otherwise say why, exit 1.
pub fn run(args: HealthArgs) -> std::process::ExitCode {
    match probe(&args) {
        Ok(url) => {
            println!("ready ({url})");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tokend: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn probe(args: &HealthArgs) -> Result<String, String> {
    let url = ready_url(args)?;
    // Only the derived loopback URL skips certificate checks; a --url is checked as usual.
    let loopback_tls = args.url.is_none() && args.tls_cert.is_some();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(args.timeout))
        .http_status_as_error(false)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(loopback_tls)
                .build(),
        )
        .build()
        .into();
    let mut response = agent.get(&url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(url);
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    Err(format!("{url}: not ready ({status}) {}", body.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: &str, url: Option<&str>) -> HealthArgs {
        HealthArgs {
            url: url.map(str::to_owned),
            listen: listen.into(),
            tls_cert: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn wildcard_listen_addresses_are_asked_on_loopback() {
        assert_eq!(
            ready_url(&args("0.0.0.0:8080", None)).unwrap(),
            "http://127.0.0.1:8080/ready"
        );
        assert_eq!(
            ready_url(&args("[::]:9000", None)).unwrap(),
            "http://[::1]:9000/ready"
        );
        assert_eq!(
            ready_url(&args("10.0.0.5:8080", None)).unwrap(),
            "http://10.0.0.5:8080/ready"
        );
        assert_eq!(
            ready_url(&args("x", Some("https://h/ready"))).unwrap(),
            "https://h/ready"
        );
        assert!(ready_url(&args("localhost:80", None))
            .unwrap_err()
            .contains("--url"));
    }
}
