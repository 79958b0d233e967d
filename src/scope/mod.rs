//! Scopes: what a token is for, how long it may live, and what metadata it must carry.
//!
//! Input is parsed here once, at the edge, into [`Scope`], a TTL `Duration` that is known to be
//! inside the scope's bounds, and [`ValidMetadata`]; the rest of the code never re-checks strings.

mod metadata;
pub mod rules;
mod ttl;

pub use metadata::{
    ip_allowed, normalize_request_path, path_allowed, ValidMetadata, MAX_METADATA_BYTES,
};
pub use ttl::{explicit, RequestedTtl, ScopePolicy, TtlBounds, TtlFields};

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, Code};

/// What a token is for. Output is always one of these canonical names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Sensor daemons (24 h to 72 h).
    Sensor,
    /// One action execution (5 min to 60 min).
    Execution,
    /// A person's command-line session (7 d to 30 d).
    Cli,
    /// An external system calling webhooks (90 d to 365 d).
    Webhook,
    /// Managing tokend itself (5 min to 90 d).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Sensor,
        Scope::Execution,
        Scope::Cli,
        Scope::Webhook,
        Scope::Admin,
    ];

    /// Parses a scope name as a client may send it, accepting the contract's aliases
    /// (`action_execution` → `execution`, `user` → `cli`).
    pub fn parse(raw: &str) -> Result<Scope, ApiError> {
        match raw.trim() {
            "sensor" => Ok(Scope::Sensor),
            "execution" | "action_execution" => Ok(Scope::Execution),
            "cli" | "user" => Ok(Scope::Cli),
            "webhook" => Ok(Scope::Webhook),
            "admin" => Ok(Scope::Admin),
            other => Err(ApiError::bad_request(
                Code::InvalidScope,
                format!(
                    "unknown scope '{}'; use one of sensor, execution, cli, webhook, admin",
                    printable(other, 40)
                ),
            )),
        }
    }

    /// The canonical name (`sensor`, `execution`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Sensor => "sensor",
            Scope::Execution => "execution",
            Scope::Cli => "cli",
            Scope::Webhook => "webhook",
            Scope::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        match self {
            Scope::Sensor => 0,
            Scope::Execution => 1,
            Scope::Cli => 2,
            Scope::Webhook => 3,
            Scope::Admin => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quotes client input in an error message safely: control characters dropped, length capped.
pub(crate) fn printable(raw: &str, max_chars: usize) -> String {
    let mut out: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect();
    if raw.chars().count() > max_chars {
        out.push('…');
    }
    out
}
