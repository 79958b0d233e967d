//! Client verbs for containment, against a running tokend (`TOKEND_URL`, `TOKEND_TOKEN`):
//! `tokend user list|show|set|disable|enable|delete` and `tokend revoke` by selector.

use std::io::BufRead;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::remote::{Failure, RemoteArgs};

/// User verbs that talk to a running server.
#[derive(Debug, Subcommand)]
pub enum RemoteUserCommand {
    /// List users (JSON lines with --json).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one user (JSON).
    Show { id: i64 },
    /// Change a user's role or password; either revokes every token they hold.
    Set {
        id: i64,
        /// `admin` or `viewer`.
        #[arg(long)]
        role: Option<String>,
        /// Read a new password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: every token revoked at once, logins and refreshes refused.
    Disable { id: i64 },
    /// Let a disabled user log in again.
    Enable { id: i64 },
    /// Delete a user: every token revoked, the login free for reuse.
    Delete { id: i64 },
}

/// `tokend revoke`: every live token matching all the given selectors.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Tokens of this scope (sensor, execution, cli, webhook, admin).
    #[arg(long)]
    pub scope: Option<String>,
    /// Tokens of accounts with exactly this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Tokens of accounts whose name starts with this.
    #[arg(long)]
    pub name_prefix: Option<String>,
    /// Tokens of this account.
    #[arg(long)]
    pub identity_id: Option<i64>,
    /// Tokens of the user with this login.
    #[arg(long)]
    pub user: Option<String>,
    /// Tokens issued at or before this time (RFC 3339, e.g. 2026-12-01T10:00:00Z).
    #[arg(long)]
    pub issued_before: Option<String>,
    /// Tokens signed by this key id.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Why (kept in the audit trail).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only count what would be revoked.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the server's JSON answer.
    #[arg(long)]
    pub json: bool,
}

pub fn run_user(remote: &RemoteArgs, command: RemoteUserCommand) -> Result<(), Failure> {
    let api = remote.client()?;
    let path = |id: i64| format!("/users/{id}");
    match command {
        RemoteUserCommand::List { json } => {
            let users = api.get("/users")?;
            let rows = users["data"].as_array().cloned().unwrap_or_default();
            for u in &rows {
                if json {
                    println!("{u}");
                } else {
                    println!(
                        "{:<6} {:<24} {:<7} {}",
                        u["identity_id"],
                        u["login"].as_str().unwrap_or_default(),
                        u["role"].as_str().unwrap_or_default(),
                        if u["disabled"] == json!(true) {
                            "disabled"
                        } else {
                            "enabled"
                        }
                    );
                }
            }
            Ok(())
        }
        RemoteUserCommand::Show { id } => print_json(&api.get(&path(id))?),
        RemoteUserCommand::Set {
            id,
            role,
            password_stdin,
        } => {
            let mut body = Map::new();
            if let Some(role) = role {
                body.insert("role".into(), json!(role));
            }
            if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
                body.insert(
                    "password".into(),
                    json!(line.trim_end_matches(['\r', '\n'])),
                );
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give --role or --password-stdin".into(),
                ));
            }
            print_json(&api.patch(&path(id), &Value::Object(body))?)
        }
        RemoteUserCommand::Disable { id } => {
            print_json(&api.patch(&path(id), &json!({"disabled": true}))?)
        }
        RemoteUserCommand::Enable { id } => {
            print_json(&api.patch(&path(id), &json!({"disabled": false}))?)
        }
        RemoteUserCommand::Delete { id } => print_json(&api.delete(&path(id), &json!({}))?),
    }
}

pub fn run_revoke(args: RevokeArgs) -> Result<(), Failure> {
    let api = args.remote.client()?;
    let mut body = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    };
    put("scope", args.scope.map(Value::from));
    put("name", args.name.map(Value::from));
    put("name_prefix", args.name_prefix.map(Value::from));
    put("identity_id", args.identity_id.map(Value::from));
    put("user", args.user.map(Value::from));
    put("issued_before", args.issued_before.map(Value::from));
    put("key_id", args.key_id.map(Value::from));
    put("reason", args.reason.map(Value::from));
    if args.dry_run {
        body.insert("dry_run".into(), json!(true));
    }
    let outcome = api.post("/revocations", &Value::Object(body))?;
    if args.json {
        return print_json(&outcome);
    }
    let matched = &outcome["matched"];
    if args.dry_run {
        println!("{matched} live token(s) would be revoked (dry run: nothing changed)");
    } else {
        println!(
            "{matched} live token(s) revoked by rule {} at {}",
            outcome["rule_id"],
            outcome["revoked_at"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

fn print_json(v: &Value) -> Result<(), Failure> {
    println!("{v}");
    Ok(())
}
