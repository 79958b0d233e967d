//! `tokend agent`: keeps token files fresh on a sensor host.
//!
//! For each `--token-file`, the token is renewed through `/auth/refresh` when 80 % of its
//! lifetime has passed (`--refresh-at`), written back atomically (temporary file + rename,
//! mode 0600), and `--exec` runs after each write (e.g. a reload). When tokend cannot be
//! reached it retries with exponential backoff and jitter. It never writes an expired or
//! invalid token; it exits (status 1) only once a token it holds has expired, so a
//! supervisor notices.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::client::credentials::{Credential, CredentialCache, RenewalPolicy};
use crate::client::write_secret_file;

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The tokend to renew with.
    #[arg(long, env = "TOKEND_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A file holding a sensor or cli token to keep fresh (repeat for several).
    #[arg(long = "token-file", required = true)]
    pub token_files: Vec<PathBuf>,
    /// A command run (with `sh -c`) after each renewed token is written; the file's path is
    /// in TOKEND_TOKEN_FILE.
    #[arg(long)]
    pub exec: Option<String>,
    /// Renew when this fraction of the token's lifetime has passed.
    #[arg(long, default_value_t = 0.8)]
    pub refresh_at: f64,
    /// The first retry after a failed renewal (doubling, with jitter).
    #[arg(long, default_value = "1s")]
    pub retry_min: String,
    /// The longest wait between retries.
    #[arg(long, default_value = "60s")]
    pub retry_max: String,
}

pub fn run(args: AgentArgs) -> ExitCode {
    match start(&args) {
        Ok(caches) => watch(&caches),
        Err(message) => {
            eprintln!("tokend agent: {message}");
            ExitCode::from(2)
        }
    }
}

fn start(args: &AgentArgs) -> Result<Vec<(PathBuf, CredentialCache)>, String> {
    if !(args.refresh_at > 0.0 && args.refresh_at < 1.0) {
        return Err("--refresh-at must be between 0 and 1 (e.g. 0.8)".into());
    }
    let policy = RenewalPolicy {
        refresh_at: args.refresh_at,
        retry_min: crate::time::parse_duration(&args.retry_min)?,
        retry_max: crate::time::parse_duration(&args.retry_max)?,
    };
    let mut caches = Vec::new();
    for path in &args.token_files {
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let credential = Credential::parse(&raw)
            .ok_or_else(|| format!("{} does not hold a token", path.display()))?;
        if credential.is_expired() {
            return Err(format!(
                "the token in {} has already expired; put a new one there (tokend sa create --token-out ...)",
                path.display()
            ));
        }
        let (file, exec) = (path.clone(), args.exec.clone());
        let on_renew = Box::new(move |fresh: &Credential| {
            if let Err(e) = write_secret_file(&file, &format!("{}\n", fresh.token)) {
                log::error!(
                    "cannot write the renewed token to {}: {e}; the old one stays",
                    file.display()
                );
                return;
            }
            log::info!(
                "wrote the renewed token to {} (expires at {})",
                file.display(),
                fresh.expires_at
            );
            if let Some(cmd) = &exec {
                match std::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .env("TOKEND_TOKEN_FILE", &file)
                    .status()
                {
                    Ok(status) if status.success() => {}
                    Ok(status) => log::warn!("--exec '{cmd}' exited with {status}"),
                    Err(e) => log::warn!("--exec '{cmd}' did not run: {e}"),
                }
            }
        });
        let cache = CredentialCache::start_with(
            &args.url,
            credential.token.clone(),
            policy,
            Some(on_renew),
        )
        .map_err(|e| e.to_string())?;
        log::info!(
            "keeping {} fresh ({}, expires at {})",
            path.display(),
            credential.subject,
            credential.expires_at
        );
        caches.push((path.clone(), cache));
    }
    Ok(caches)
}

/// Runs until a held token expires.
fn watch(caches: &[(PathBuf, CredentialCache)]) -> ExitCode {
    loop {
        for (path, cache) in caches {
            if cache.credential().is_none() {
                log::error!(
                    "the token in {} has expired and could not be renewed; exiting so that a supervisor notices",
                    path.display()
                );
                eprintln!("tokend agent: the token in {} has expired", path.display());
                return ExitCode::from(1);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
