//! `tokend sa create|list|show|revoke|rotate|secret|keys`: the service-account API from the command
//! line. Human output by default, `--output json` for machines. Exit codes: 0 done, 1 the server
//! refused (the message says why), 2 could not ask (no token, unreachable, server error).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::remote::{aligned, hours_text, Failure, OutputArgs, RemoteArgs};
use crate::client::{write_secret_file, ApiClient};

#[derive(Debug, Clone, Args)]
pub struct TtlArgs {
    /// Lifetime in seconds.
    #[arg(long, group = "ttl")]
    pub ttl_seconds: Option<u64>,
    /// Lifetime in minutes.
    #[arg(long, group = "ttl")]
    pub ttl_minutes: Option<u64>,
    /// Lifetime in hours.
    #[arg(long, group = "ttl")]
    pub ttl_hours: Option<u64>,
    /// Lifetime in days.
    #[arg(long, group = "ttl")]
    pub ttl_days: Option<u64>,
}

impl TtlArgs {
    fn insert_into(&self, body: &mut Map<String, Value>) {
        for (field, value) in [
            ("ttl_seconds", self.ttl_seconds),
            ("ttl_minutes", self.ttl_minutes),
            ("ttl_hours", self.ttl_hours),
            ("ttl_days", self.ttl_days),
        ] {
            if let Some(v) = value {
                body.insert(field.into(), json!(v));
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SaCommand {
    /// Create a service account and print its token (shown only now).
    Create {
        /// The account's name (a label), e.g. sensor:core.timer.
        #[arg(long)]
        name: String,
        /// sensor, execution, cli, webhook or admin.
        #[arg(long)]
        scope: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        ttl: TtlArgs,
        /// Sensor: a trigger type it may fire (repeat for several).
        #[arg(long = "trigger-type")]
        trigger_types: Vec<String>,
        /// Execution: the execution's id.
        #[arg(long)]
        execution_id: Option<i64>,
        /// Execution: the action, e.g. core.http.
        #[arg(long)]
        action_ref: Option<String>,
        /// Execution: the workflow's id.
        #[arg(long)]
        workflow_id: Option<i64>,
        /// Webhook: a path it may call (repeat; a trailing * is a prefix).
        #[arg(long = "allowed-path")]
        allowed_paths: Vec<String>,
        /// Webhook: a CIDR it may be used from (repeat).
        #[arg(long = "ip-allow")]
        ip_allowlist: Vec<String>,
        /// More metadata as a JSON object (merged with the flags above).
        #[arg(long)]
        metadata: Option<String>,
        /// Also write the token to this file (atomically, mode 0600).
        #[arg(long)]
        token_out: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List service accounts (all pages).
    List {
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// active, expired, revoked or all (default: everything not revoked).
        #[arg(long)]
        status: Option<String>,
        /// Only accounts expiring within this many hours.
        #[arg(long)]
        expiring_within_hours: Option<u32>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one account and its tokens.
    Show {
        id: i64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke an account and every live token it holds.
    Revoke {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// OAuth 2.0 client secrets of an account: create, list, revoke.
    Secret {
        #[command(subcommand)]
        command: super::secrets::SecretCommand,
    },
    /// Public keys for private_key_jwt client assertions: set, show, remove.
    Keys {
        #[command(subcommand)]
        command: super::secrets::KeysCommand,
    },
    /// Rotate: create a new account with the same name, scope, description and metadata,
    /// then revoke the old one ("Token rotation"). Prints the new token.
    Rotate {
        id: i64,
        #[command(flatten)]
        ttl: TtlArgs,
        /// Keep the old account valid (revoke it yourself later).
        #[arg(long)]
        keep_old: bool,
        #[arg(long, default_value = "Token rotation")]
        reason: String,
        /// Also write the new token to this file (atomically, mode 0600).
        #[arg(long)]
        token_out: Option<PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub fn run(remote: &RemoteArgs, command: SaCommand) -> Result<(), Failure> {
    let api = remote.client()?;
    match command {
        SaCommand::Secret { command } => super::secrets::run(&api, command),
        SaCommand::Keys { command } => super::secrets::run_keys(&api, command),
        SaCommand::Create {
            name,
            scope,
            description,
            ttl,
            trigger_types,
            execution_id,
            action_ref,
            workflow_id,
            allowed_paths,
            ip_allowlist,
            metadata,
            token_out,
            output,
        } => {
            let json = output.is_json();
            let mut meta = match metadata {
                Some(raw) => match serde_json::from_str(&raw) {
                    Ok(Value::Object(map)) => map,
                    _ => return Err(Failure::Usage("--metadata must be a JSON object".into())),
                },
                None => Map::new(),
            };
            let mut put = |key: &str, value: Value| {
                meta.insert(key.into(), value);
            };
            if !trigger_types.is_empty() {
                put("trigger_types", json!(trigger_types));
            }
            if let Some(v) = execution_id {
                put("execution_id", json!(v));
            }
            if let Some(v) = action_ref {
                put("action_ref", json!(v));
            }
            if let Some(v) = workflow_id {
                put("workflow_id", json!(v));
            }
            if !allowed_paths.is_empty() {
                put("allowed_paths", json!(allowed_paths));
            }
            if !ip_allowlist.is_empty() {
                put("ip_allowlist", json!(ip_allowlist));
            }
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("scope".into(), json!(scope));
            if let Some(d) = description {
                body.insert("description".into(), json!(d));
            }
            ttl.insert_into(&mut body);
            if !meta.is_empty() {
                body.insert("metadata".into(), Value::Object(meta));
            }
            let created = api.post("/service-accounts", &Value::Object(body))?;
            save_token(&created, token_out.as_deref())?;
            print_issued(&created, json);
            Ok(())
        }
        SaCommand::List {
            scope,
            name,
            status,
            expiring_within_hours,
            output,
        } => {
            let json = output.is_json();
            let mut query = Vec::new();
            if let Some(s) = scope {
                query.push(format!("scope={}", encode(&s)));
            }
            if let Some(n) = name {
                query.push(format!("name={}", encode(&n)));
            }
            if let Some(s) = status {
                query.push(format!("status={}", encode(&s)));
            }
            if let Some(h) = expiring_within_hours {
                query.push(format!("expiring_within_hours={h}"));
            }
            let accounts = list_all(&api, &query.join("&"))?;
            if json {
                println!("{}", json!({"data": accounts, "total": accounts.len()}));
            } else {
                print_table(&accounts);
            }
            Ok(())
        }
        SaCommand::Show { id, output } => {
            let json = output.is_json();
            let account = api.get(&format!("/service-accounts/{id}"))?;
            if json {
                println!("{account}");
            } else {
                print_account(&account);
            }
            Ok(())
        }
        SaCommand::Revoke { id, reason, output } => {
            let json = output.is_json();
            let body = match reason {
                Some(r) => json!({"reason": r}),
                None => json!({}),
            };
            let res = api.delete(&format!("/service-accounts/{id}"), &body)?;
            if json {
                println!("{res}");
            } else if res["already_revoked"] == json!(true) {
                println!(
                    "account {id} was already revoked (at {})",
                    text(&res["revoked_at"])
                );
            } else {
                println!(
                    "revoked account {id} and {} live token(s) at {}",
                    res["revoked_tokens"],
                    text(&res["revoked_at"])
                );
            }
            Ok(())
        }
        SaCommand::Rotate {
            id,
            ttl,
            keep_old,
            reason,
            token_out,
            output,
        } => {
            let json = output.is_json();
            let old = api.get(&format!("/service-accounts/{id}"))?;
            // The account itself, not its tokens: one whose tokens were all revoked can
            // still be rotated.
            if !old["revoked_at"].is_null() {
                return Err(Failure::Refused(format!(
                    "account {id} is revoked; create a new one instead"
                )));
            }
            let mut body = Map::new();
            for key in ["name", "scope", "description"] {
                if !old[key].is_null() {
                    body.insert(key.into(), old[key].clone());
                }
            }
            if old["metadata"].as_object().is_some_and(|m| !m.is_empty()) {
                body.insert("metadata".into(), old["metadata"].clone());
            }
            ttl.insert_into(&mut body);
            let created = api.post("/service-accounts", &Value::Object(body))?;
            save_token(&created, token_out.as_deref())?;
            // The new token works before the old one goes; if either step fails, the new token
            // is still printed (it is shown only now) and the message says what is left to do.
            let switched = api
                .with_token(text(&created["token"]))
                .get("/auth/whoami")
                .and_then(|_| match keep_old {
                    true => Ok(Value::Null),
                    false => api.delete(
                        &format!("/service-accounts/{id}"),
                        &json!({"reason": reason}),
                    ),
                });
            if let Err(e) = switched {
                print_issued(&created, json);
                return Err(Failure::Unavailable(format!(
                    "new account {} created (its token is above), but account {id} was not revoked: {e}; \
                     revoke it with `tokend sa revoke {id}`",
                    created["identity_id"]
                )));
            }
            if json {
                println!(
                    "{}",
                    json!({"new": created, "old_identity_id": id, "old_revoked": !keep_old})
                );
            } else {
                print_issued(&created, false);
                if keep_old {
                    println!("old account {id} kept");
                } else {
                    println!("old account {id} revoked ({reason})");
                }
            }
            Ok(())
        }
    }
}

/// Every page of a listing.
pub fn list_all(api: &ApiClient, query: &str) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let page = api.get(&format!(
            "/service-accounts?{query}{sep}limit=1000&offset={}",
            out.len()
        ))?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let empty = data.is_empty();
        out.extend(data);
        if empty || out.len() >= total {
            return Ok(out);
        }
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

fn save_token(created: &Value, out: Option<&std::path::Path>) -> Result<(), Failure> {
    if let Some(path) = out {
        write_secret_file(path, &format!("{}\n", text(&created["token"])))
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn until(at: &Value) -> String {
    let Some(t) = at
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    else {
        return "-".into();
    };
    let secs = (t.with_timezone(&Utc) - Utc::now()).num_seconds();
    if secs >= 0 {
        format!("in {}", hours_text(secs))
    } else {
        format!("{} ago", hours_text(secs))
    }
}

fn print_issued(created: &Value, json: bool) {
    if json {
        println!("{created}");
        return;
    }
    println!("identity_id  {}", created["identity_id"]);
    println!("name         {}", text(&created["name"]));
    println!("scope        {}", text(&created["scope"]));
    println!("token_id     {}", text(&created["token_id"]));
    println!(
        "expires_at   {} ({})",
        text(&created["expires_at"]),
        until(&created["expires_at"])
    );
    println!("token        {}", text(&created["token"]));
}

fn print_table(accounts: &[Value]) {
    let mut rows = vec![["ID", "NAME", "SCOPE", "STATUS", "EXPIRES", "REMAINING"]
        .map(str::to_owned)
        .to_vec()];
    rows.extend(accounts.iter().map(|a| {
        vec![
            a["identity_id"].to_string(),
            text(&a["name"]),
            text(&a["scope"]),
            text(&a["status"]),
            a["expires_at"].as_str().unwrap_or("-").to_owned(),
            until(&a["expires_at"]),
        ]
    }));
    print!("{}", aligned(&rows));
    println!("{} account(s)", accounts.len());
}

fn print_account(a: &Value) {
    for key in [
        "identity_id",
        "name",
        "scope",
        "description",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "revocation_reason",
        "last_used_at",
    ] {
        if !a[key].is_null() {
            println!("{key:<18} {}", text(&a[key]));
        }
    }
    println!("{:<18} {}", "metadata", a["metadata"]);
    println!("tokens:");
    for t in a["tokens"].as_array().into_iter().flatten() {
        println!(
            "  {}  issued {}  expires {}  {}  fingerprint {}",
            text(&t["token_id"]),
            text(&t["issued_at"]),
            text(&t["expires_at"]),
            t["revoked_at"]
                .as_str()
                .map(|r| format!("revoked {r}"))
                .unwrap_or_else(|| "live".into()),
            text(&t["fingerprint"]),
        );
    }
}
