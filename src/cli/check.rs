//! `tokend check`: the expiry report a cron job mails. Exit 0 when nothing expires within the
//! warning window, 1 when something does (or already has), 2 when the check itself failed.
//!
//! ```text
//! 0 8 * * * tokend check --warn-hours 6 || mail -s "tokend: credentials expiring" ops@example.com
//! ```

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::remote::{hours_text, Failure, RemoteArgs};
use super::sa::list_all;

/// Runs the report; `Ok(true)` when something needs attention.
pub fn run(
    remote: &RemoteArgs,
    warn_hours: f64,
    scope: Option<&str>,
    json_out: bool,
) -> Result<bool, Failure> {
    if !(warn_hours.is_finite() && warn_hours >= 0.0) {
        return Err(Failure::Usage(
            "--warn-hours must be a non-negative number".into(),
        ));
    }
    let api = remote.client()?;
    let query = scope
        .map(|s| {
            format!(
                "scope={}",
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .unwrap_or_default();
    // Every account but those revoked themselves: active, expired, and those whose every
    // token was revoked (the account stands but nothing of it works: someone must issue a new
    // token or revoke the account).
    let query = if query.is_empty() {
        "status=all".to_owned()
    } else {
        format!("{query}&status=all")
    };
    let mut accounts = list_all(&api, &query)?;
    accounts.retain(|a| a["revoked_at"].is_null());
    let now = Utc::now();
    let window = (warn_hours * 3600.0) as i64;
    let mut rows = Vec::new();
    for a in &accounts {
        let expires = a["expires_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let remaining = expires.map(|t| (t - now).num_seconds());
        let warn = remaining.is_none_or(|r| r <= window);
        rows.push((a, expires, remaining, warn));
    }
    let warnings = rows.iter().filter(|r| r.3).count();
    if json_out {
        let list: Vec<Value> = rows
            .iter()
            .map(|(a, expires, remaining, warn)| {
                json!({
                    "identity_id": a["identity_id"], "name": a["name"], "scope": a["scope"],
                    "status": a["status"],
                    "expires_at": expires.map(|t| crate::time::format(&t)),
                    "hours_remaining": remaining.map(|r| (r as f64 / 360.0).round() / 10.0),
                    "warn": warn,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"warn_hours": warn_hours, "checked": rows.len(), "warnings": warnings, "accounts": list})
        );
    } else {
        for (a, expires, remaining, warn) in &rows {
            let mark = if *warn { "⚠" } else { "✓" };
            let when = match (expires, remaining) {
                (Some(t), Some(r)) if *r > 0 => {
                    format!("expires {}  in {}", crate::time::format(t), hours_text(*r))
                }
                (Some(t), Some(r)) => {
                    format!("EXPIRED {}  {} ago", crate::time::format(t), hours_text(*r))
                }
                _ if a["status"] == json!("revoked") => {
                    "no live token: every token was revoked (issue one, or revoke the account)"
                        .into()
                }
                _ => "no live token".into(),
            };
            println!(
                "{mark} {:<8} {:<32} {:<10} {when}",
                a["identity_id"].to_string(),
                a["name"].as_str().unwrap_or("?"),
                a["scope"].as_str().unwrap_or("?"),
            );
        }
        println!(
            "{} account(s) checked, {warnings} need attention (warning window {warn_hours} h)",
            rows.len()
        );
    }
    Ok(warnings > 0)
}
