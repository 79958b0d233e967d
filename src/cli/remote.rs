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

/// How a client verb prints: `--output text` (the default; tables are aligned to their
/// widest cell) or `--output json` for scripts. `--json` is kept as a shorthand.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Same as --output json.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl OutputArgs {
    pub fn is_json(&self) -> bool {
        self.json || self.output == Format::Json
    }
}

/// Rows as columns padded to their widest cell (the last column is not padded).
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_to_the_widest_cell() {
        let rows = vec![
            vec!["ID".to_owned(), "NAME".to_owned(), "SCOPE".to_owned()],
            vec![
                "1".to_owned(),
                "sensor:a-very-long-account-name-indeed".to_owned(),
                "sensor".to_owned(),
            ],
            vec!["12".to_owned(), "ünï".to_owned(), "cli".to_owned()],
        ];
        let text = super::aligned(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID  NAME                                    SCOPE"
        );
        assert_eq!(lines[2], "12  ünï                                     cli");
    }
}
