//! `tokend federation add|list|show|update|remove`: the trusted issuers of workload federation
//! (`/federation/issuers`) on a running tokend. `add` and `update` read the JSON document from
//! a file, or from stdin (`-`, or no file). Exit codes as for `tokend sa`.

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::remote::{Failure, RemoteArgs};

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Register a trusted issuer from a JSON document
    /// ({issuer, jwks_uri | jwks, audiences, max_token_age_seconds?, max_uses_per_token?, rules}).
    Add {
        /// The document's file; `-` or none: stdin.
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List the trusted issuers.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one trusted issuer with its rules.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Change a trusted issuer: the document's fields replace the stored ones.
    Update {
        id: i64,
        /// The changes' file; `-` or none: stdin.
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a trusted issuer: its tokens are refused from then on.
    Remove {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

fn read_document(file: Option<&PathBuf>) -> Result<Value, Failure> {
    let (text, source) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?,
            path.display().to_string(),
        ),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
            (text, "stdin".to_owned())
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{source} is not a JSON document: {e}")))
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn print_issuer(issuer: &Value) {
    println!("id                     {}", issuer["id"]);
    println!("issuer                 {}", text(&issuer["issuer"]));
    match issuer.get("jwks_uri") {
        Some(uri) => println!("jwks_uri               {}", text(uri)),
        None => println!("jwks                   inline"),
    }
    println!("audiences              {}", issuer["audiences"]);
    println!("max_token_age_seconds  {}", issuer["max_token_age_seconds"]);
    println!("max_uses_per_token     {}", issuer["max_uses_per_token"]);
    println!("workloads              {}", issuer["workloads"]);
    for (i, rule) in issuer["rules"].as_array().into_iter().flatten().enumerate() {
        println!(
            "rule {i:<17} match {} -> {} {:?}",
            rule["match"],
            text(&rule["scope"]),
            text(&rule["name"])
        );
    }
}

pub fn run(remote: &RemoteArgs, command: FederationCommand) -> Result<(), Failure> {
    let api = remote.client()?;
    let show = |value: &Value, json: bool| {
        if json {
            println!("{value}");
        } else {
            print_issuer(value);
        }
    };
    match command {
        FederationCommand::Add { file, json } => {
            let created = api.post("/federation/issuers", &read_document(file.as_ref())?)?;
            show(&created, json);
        }
        FederationCommand::List { json } => {
            let listed = api.get("/federation/issuers")?;
            if json {
                println!("{listed}");
                return Ok(());
            }
            println!("{:<6} {:<9} {:<6} ISSUER", "ID", "WORKLOADS", "RULES");
            for i in listed["data"].as_array().into_iter().flatten() {
                println!(
                    "{:<6} {:<9} {:<6} {}",
                    i["id"],
                    i["workloads"],
                    i["rules"].as_array().map_or(0, Vec::len),
                    text(&i["issuer"])
                );
            }
        }
        FederationCommand::Show { id, json } => {
            show(&api.get(&format!("/federation/issuers/{id}"))?, json);
        }
        FederationCommand::Update { id, file, json } => {
            let changed = api.patch(
                &format!("/federation/issuers/{id}"),
                &read_document(file.as_ref())?,
            )?;
            show(&changed, json);
        }
        FederationCommand::Remove { id, json } => {
            let res = api.delete(&format!("/federation/issuers/{id}"), &json!({}))?;
            if json {
                println!("{res}");
            } else {
                println!(
                    "trusted issuer {id} ({}) removed; its {} workload account(s) keep their tokens until revoked",
                    text(&res["issuer"]),
                    res["workloads"]
                );
            }
        }
    }
    Ok(())
}
