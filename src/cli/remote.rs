//! Flags shared by the commands that talk to a running tokend, and how their failures map to
//! exit codes.

use clap::Args;

use crate::client::{ApiClient, ClientError};

/// Where the server is and which token to use.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// The tokend to talk to.
    #[arg(long, env = "TOKEND_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A bearer token (an admin token, or a user's cli token).
    #[arg(long, env = "TOKEND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl RemoteArgs {
    pub fn client(&self) -> Result<ApiClient, Failure> {
        match &self.token {
            Some(t) if !t.trim().is_empty() => Ok(ApiClient::new(&self.url, Some(t.trim().to_owned()))),
            _ => Err(Failure::Usage(
                "no token: set TOKEND_TOKEN (or --token), e.g. export TOKEND_TOKEN=$(tokend admin-token)".into(),
            )),
        }
    }
}

/// How a client command failed; decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The server refused the request (4xx): exit 1.
    Refused(String),
    /// Could not ask: bad flags, no token, server unreachable or failing (5xx): exit 2.
    Usage(String),
    Unavailable(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.is_refusal() {
            Failure::Refused(e.to_string())
        } else {
            Failure::Unavailable(e.to_string())
        }
    }
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) | Failure::Unavailable(_) => 2,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unavailable(m) => m,
        }
    }
}

/// `3.5 h`, `42 min`.
pub fn hours_text(seconds: i64) -> String {
    let abs = seconds.unsigned_abs();
    if abs < 3_600 {
        format!("{} min", abs / 60)
    } else {
        format!("{:.1} h", abs as f64 / 3_600.0)
    }
}
