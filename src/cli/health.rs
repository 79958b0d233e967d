//! `tokend health`: the container's HEALTHCHECK and systemd's watchdog-free probe. Asks the
//! server's own `/ready` over loopback, so an image needs no curl.

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
    Ok(format!("http://{addr}/ready"))
}

/// Exit 0 when the server answers 200 on its readiness URL; otherwise say why and fail.
pub fn run(args: HealthArgs) -> Result<(), String> {
    let url = ready_url(&args)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(args.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(&url).call().map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        println!("ready ({url})");
        return Ok(());
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
