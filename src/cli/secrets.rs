//! `tokend sa secret create|list|revoke` and `tokend sa keys set|show|remove`: the OAuth 2.0
//! client credentials of a service account, secrets (`/service-accounts/{id}/client-secrets`;
//! `create` prints the secret, shown only then) or the public keys of `private_key_jwt`
//! (`/service-accounts/{id}/jwks`).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::remote::Failure;
use crate::client::{write_secret_file, ApiClient};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Create a client secret for the account (printed once). With --overlap this is a
    /// rotation: the account's other secrets stop working when the overlap ends.
    Create {
        /// The service account's identity id.
        id: i64,
        /// Days until the secret stops working (1 to 365; default 90).
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// Rotation: the other secrets keep working this long (e.g. 24h; 0s: stop at once).
        #[arg(long, value_parser = crate::time::parse_duration)]
        overlap: Option<std::time::Duration>,
        /// Also write the secret to this file (atomically, mode 0600).
        #[arg(long)]
        secret_out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List the account's client secrets (ids, status and times; never a secret).
    List {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one client secret.
    Revoke {
        id: i64,
        secret_id: String,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

pub fn run(api: &ApiClient, command: SecretCommand) -> Result<(), Failure> {
    match command {
        SecretCommand::Create {
            id,
            expires_in_days,
            overlap,
            secret_out,
            json,
        } => {
            let mut body = Map::new();
            if let Some(days) = expires_in_days {
                body.insert("expires_in_days".into(), json!(days));
            }
            if let Some(overlap) = overlap {
                body.insert("overlap_seconds".into(), json!(overlap.as_secs()));
            }
            let created = api.post(
                &format!("/service-accounts/{id}/client-secrets"),
                &Value::Object(body),
            )?;
            if let Some(path) = &secret_out {
                write_secret_file(path, &text(&created["client_secret"])).map_err(|e| {
                    Failure::Unavailable(format!("cannot write {}: {e}", path.display()))
                })?;
            }
            if json {
                println!("{created}");
            } else {
                println!("client_id      {}", text(&created["client_id"]));
                println!("secret_id      {}", text(&created["secret_id"]));
                println!("expires_at     {}", text(&created["expires_at"]));
                if created["others_shortened"].as_u64().unwrap_or(0) > 0 {
                    println!(
                        "others         {} secret(s) stop at the end of the overlap",
                        created["others_shortened"]
                    );
                }
                println!("client_secret  {}", text(&created["client_secret"]));
            }
            Ok(())
        }
        SecretCommand::List { id, json } => {
            let listed = api.get(&format!("/service-accounts/{id}/client-secrets"))?;
            if json {
                println!("{listed}");
                return Ok(());
            }
            println!("client_id {}", text(&listed["client_id"]));
            println!(
                "{:<38} {:<8} {:<21} EXPIRES",
                "SECRET_ID", "STATUS", "CREATED"
            );
            for s in listed["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<38} {:<8} {:<21} {}",
                    text(&s["secret_id"]),
                    text(&s["status"]),
                    text(&s["created_at"]),
                    text(&s["expires_at"])
                );
            }
            Ok(())
        }
        SecretCommand::Revoke {
            id,
            secret_id,
            reason,
            json,
        } => {
            let body = match reason {
                Some(r) => json!({"reason": r}),
                None => json!({}),
            };
            let res = api.delete(
                &format!("/service-accounts/{id}/client-secrets/{secret_id}"),
                &body,
            )?;
            if json {
                println!("{res}");
            } else if res["already_revoked"] == json!(true) {
                println!("client secret {secret_id} was already revoked");
            } else {
                println!(
                    "client secret {secret_id} revoked at {}",
                    text(&res["revoked_at"])
                );
            }
            Ok(())
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Register (or replace) the public keys the account's client signs assertions with.
    Set {
        id: i64,
        /// A JWKS file of public keys ("-": standard input).
        #[arg(long, group = "source", required = true)]
        jwks_file: Option<PathBuf>,
        /// Where the client publishes its JWKS (https).
        #[arg(long, group = "source", required = true)]
        jwks_uri: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the registered keys.
    Show { id: i64 },
    /// Forget the keys: the client's assertions stop working at once.
    Remove { id: i64 },
}

pub fn run_keys(api: &ApiClient, command: KeysCommand) -> Result<(), Failure> {
    match command {
        KeysCommand::Set {
            id,
            jwks_file,
            jwks_uri,
            json,
        } => {
            let body = match (jwks_file, jwks_uri) {
                (Some(path), None) => {
                    let text = if path.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())
                    } else {
                        std::fs::read_to_string(&path)
                    }
                    .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
                    let jwks: Value = serde_json::from_str(&text).map_err(|e| {
                        Failure::Usage(format!("{} is not JSON: {e}", path.display()))
                    })?;
                    json!({ "jwks": jwks })
                }
                (None, Some(uri)) => json!({ "jwks_uri": uri }),
                _ => return Err(Failure::Usage("give --jwks-file or --jwks-uri".into())),
            };
            let keys = api.put(&format!("/service-accounts/{id}/jwks"), &body)?;
            if json {
                println!("{keys}");
            } else {
                println!(
                    "{}: private_key_jwt keys registered ({})",
                    text(&keys["client_id"]),
                    keys["jwks_uri"]
                        .as_str()
                        .map_or_else(|| "inline".to_owned(), |u| format!("fetched from {u}"))
                );
            }
            Ok(())
        }
        KeysCommand::Show { id } => {
            println!("{}", api.get(&format!("/service-accounts/{id}/jwks"))?);
            Ok(())
        }
        KeysCommand::Remove { id } => {
            let res = api.delete(&format!("/service-accounts/{id}/jwks"), &json!({}))?;
            println!(
                "{}: {}",
                text(&res["client_id"]),
                if res["removed"] == json!(true) {
                    "keys removed"
                } else {
                    "had no keys"
                }
            );
            Ok(())
        }
    }
}
