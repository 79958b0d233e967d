//! The command line. Server side: `serve`, `migrate`, `admin-token`, `user add`, `cleanup`,
//! `openapi`. Client side, against a running tokend (`TOKEND_URL`, `TOKEND_TOKEN`):
//! `sa create|list|show|revoke|rotate`, `federation add|list|show|update|remove`, `check`.

mod agent;
mod check;
mod federation;
mod health;
mod manual;
mod people;
mod progress;
mod remote;
mod sa;
mod secrets;

pub use remote::RemoteArgs;
pub use sa::SaCommand;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use std::io::IsTerminal;

use crate::accounts::passwords::{Password, Passwords};
use crate::accounts::users::{self, Login, Role};
use crate::accounts::{self, AccountName, Actor, NewAccount};
use crate::app::{self, Application};
use crate::config::{ServeArgs, Settings, SettingsArgs};
use crate::scope::{RequestedTtl, Scope, TtlFields, ValidMetadata};

/// Exit code for failures (1 is kept for "something needs attention" reports).
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tokend",
    version,
    about = "Service-account token issuer and revocation service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP server (SQLite at ./data/tokend.db unless TOKEND_DATABASE_URL is set).
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Create an admin service account and print its token on stdout, and nothing else:
    /// `export ADMIN_TOKEN=$(tokend admin-token)`.
    AdminToken {
        /// Name of the admin account.
        #[arg(long, default_value = "tokend-admin")]
        name: String,
        /// Lifetime in hours (default: the admin scope's default, 24 h).
        #[arg(long)]
        ttl_hours: Option<u64>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Manage users (people who log in for cli tokens). `add` works on the database;
    /// the other verbs on a running tokend (TOKEND_URL, TOKEND_TOKEN).
    User {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Revoke every live token matching all the given selectors, on a running tokend:
    /// `tokend revoke --scope sensor --issued-before 2026-12-01T10:00:00Z`.
    Revoke(people::RevokeArgs),
    /// Signing keys (EdDSA): list them, or rotate now.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prune revocations of expired tokens now and print what was deleted (JSON).
    Cleanup {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the OpenAPI specification (JSON).
    Openapi,
    /// Service accounts on a running tokend: create, list, show, revoke, rotate.
    Sa {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: SaCommand,
    },
    /// Trusted issuers of workload federation on a running tokend: add, list, show, update,
    /// remove.
    Federation {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: federation::FederationCommand,
    },
    /// Keep token files fresh on a sensor host: renew before expiry, write atomically, run
    /// a command after each write; exit 1 only once a held token has expired.
    Agent(agent::AgentArgs),
    /// Ask a running tokend's /ready: exit 0 when it is ready (the image's HEALTHCHECK).
    Health(health::HealthArgs),
    /// Print a shell completion script: `tokend completions bash > ~/.local/share/bash-completion/completions/tokend`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `tokend man > ~/.local/share/man/man1/tokend.1`.
    Man,
    /// Expiry report for cron: exit 0 when nothing expires within --warn-hours, 1 when
    /// something does or already has, 2 when the check failed.
    Check {
        #[command(flatten)]
        remote: RemoteArgs,
        /// The warning window in hours.
        #[arg(long, default_value_t = 6.0)]
        warn_hours: f64,
        /// Only accounts of this scope.
        #[arg(long)]
        scope: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is asked for on the terminal, or read from stdin with
    /// --password-stdin (`printf %s "$PW" | tokend user add alice --role admin --password-stdin`).
    Add {
        /// The login (letters, digits, `.`, `_`, `@`, `-`).
        login: String,
        /// `admin` (may do everything) or `viewer` (may only read).
        #[arg(long)]
        role: String,
        /// Read the password from the first line of stdin instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
    /// Users on a running tokend: list, show, set (role, password), disable, enable, delete.
    #[command(flatten)]
    Remote(people::RemoteUserCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Rotate now: the published next key starts signing; running servers follow within a second.
    Rotate {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the signing keys and their states (JSON lines).
    List {
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

impl Command {
    /// The default log level: `serve` talks, one-shot commands stay quiet on stderr.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve { .. } | Command::Agent(_) => "info",
            _ => "warn",
        }
    }
}

/// Runs a command to completion.
pub fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve { serve, settings } => serve_cmd(serve, settings),
        Command::Migrate { settings } => migrate(settings),
        Command::AdminToken {
            name,
            ttl_hours,
            settings,
        } => admin_token(&name, ttl_hours, settings),
        Command::User {
            command:
                UserCommand::Add {
                    login,
                    role,
                    password_stdin,
                    settings,
                },
            ..
        } => add_user(&login, &role, password_stdin, *settings),
        Command::User {
            remote,
            command: UserCommand::Remote(command),
        } => return client_exit(people::run_user(&remote, command)),
        Command::Revoke(args) => return client_exit(people::run_revoke(args)),
        Command::Keys { command } => keys(command),
        Command::Cleanup { settings } => cleanup(settings),
        Command::Openapi => {
            // A closed pipe (`tokend openapi | head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(
                &mut std::io::stdout(),
                crate::routes::openapi::spec_json().as_bytes(),
            );
            Ok(())
        }
        Command::Agent(args) => return agent::run(args),
        Command::Health(args) => return health::run(args),
        Command::Completions { shell } => manual::completions(shell),
        Command::Man => manual::man(),
        Command::Sa { remote, command } => return client_exit(sa::run(&remote, command)),
        Command::Federation { remote, command } => {
            return client_exit(federation::run(&remote, command))
        }
        Command::Check {
            remote,
            warn_hours,
            scope,
            json,
        } => {
            return match check::run(&remote, warn_hours, scope.as_deref(), json) {
                Ok(false) => ExitCode::SUCCESS,
                Ok(true) => ExitCode::from(1),
                Err(f) => {
                    eprintln!("tokend: {}", f.message());
                    ExitCode::from(EXIT_ERROR)
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokend: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A client verb's exit: 0, or the failure's code (1 refused, 2 could not ask).
fn client_exit(result: Result<(), remote::Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("tokend: {}", f.message());
            ExitCode::from(f.exit_code())
        }
    }
}

fn serve_cmd(serve: ServeArgs, args: SettingsArgs) -> Result<(), String> {
    let mut settings = args.into_settings()?;
    serve.apply(&mut settings)?;
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)
            .await
            .map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())?;
        log::info!("tokend stopped");
        // Exit here, inside the runtime: dropping it would wait for every blocking thread, and
        // one stuck in a frozen database connection may never end. Every acknowledged write
        // is committed already.
        std::process::exit(0)
    })
}

fn migrate(args: SettingsArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    let manager = crate::db::DbManager::new(settings.database.clone());
    let pool = crate::db::connect_pool(&manager, 1, settings.db_pool_timeout, settings.db_wait)
        .map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let bar = progress::Progress::bar("migrating", 0);
    let applied = crate::db::run_migrations_with(&mut conn, &mut |done, pending, name| {
        bar.set_length(pending as u64);
        bar.set(done as u64, name.to_owned());
    })
    .map_err(|e| e.to_string())?;
    drop(bar);
    eprintln!(
        "tokend: {applied} migrations applied to {}",
        settings.database
    );
    Ok(())
}

fn admin_token(name: &str, ttl_hours: Option<u64>, args: SettingsArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    println!("{}", mint_admin_token(&settings, name, ttl_hours)?);
    Ok(())
}

/// Creates an admin service account directly in the database and returns its token
/// (`tokend admin-token`; also how tests get their first token).
pub fn mint_admin_token(
    settings: &Settings,
    name: &str,
    ttl_hours: Option<u64>,
) -> Result<String, String> {
    let requested = RequestedTtl::from_fields(&TtlFields {
        ttl_hours: ttl_hours.map(|h| json!(h)),
        ..TtlFields::default()
    })
    .map_err(|e| e.message().to_owned())?;
    let new = NewAccount {
        name: AccountName::parse(name).map_err(|e| e.message().to_owned())?,
        scope: Scope::Admin,
        description: None,
        ttl: settings
            .scopes
            .resolve(Scope::Admin, requested)
            .map_err(|e| e.message().to_owned())?,
        metadata: ValidMetadata::parse(Scope::Admin, None).map_err(|e| e.message().to_owned())?,
    };
    let opened = app::open(settings).map_err(|e| e.to_string())?;
    let mut conn = opened.pool.get().map_err(|e| e.to_string())?;
    let issued = accounts::create(&mut conn, &opened.tokens, &new, &Actor::default())
        .map_err(|e| e.message().to_owned())?;
    Ok(issued.token.token)
}

fn add_user(
    login: &str,
    role: &str,
    password_stdin: bool,
    args: SettingsArgs,
) -> Result<(), String> {
    let settings = args.into_settings()?;
    let login = Login::parse(login).map_err(|e| e.message().to_owned())?;
    let role = Role::parse(role).map_err(|e| e.message().to_owned())?;
    let raw = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(
                "no terminal to ask for the password; pipe it in with --password-stdin".into(),
            );
        }
        let first = rpassword::prompt_password(format!("Password for {}: ", login.as_str()))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        first
    };
    let password = Password::new_password(raw).map_err(|e| e.message().to_owned())?;
    let passwords = Passwords::new(settings.argon2)?;
    let hash = passwords
        .hash(&password)
        .map_err(|e| e.message().to_owned())?;
    let opened = app::open(&settings).map_err(|e| e.to_string())?;
    let mut conn = opened.pool.get().map_err(|e| e.to_string())?;
    let user = users::add(&mut conn, &login, role, &hash, &Actor::default())
        .map_err(|e| e.message().to_owned())?;
    println!(
        "{}",
        serde_json::to_string(&user).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn keys(command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Rotate { settings } => {
            let settings = settings.into_settings()?;
            let opened = app::open(&settings).map_err(|e| e.to_string())?;
            let mut conn = opened.pool.get().map_err(|e| e.to_string())?;
            let r = opened
                .keys
                .rotate(
                    &mut conn,
                    settings.max_token_lifetime(),
                    None,
                    settings.jwks_max_age,
                )
                .map_err(|e| crate::error::cause_chain(&e))?
                .ok_or("the rotation did nothing")?;
            crate::audit::record(&mut conn, &Actor::default(), "key.rotated", None, None, None, json!({
                "active_kid": r.active_kid, "retiring_kid": r.retiring_kid, "next_kid": r.next_kid,
            }))
            .map_err(|e| e.message().to_owned())?;
            println!(
                "{}",
                json!({"active_kid": r.active_kid, "retiring_kid": r.retiring_kid, "next_kid": r.next_kid,
                    "retire_after": crate::time::format(&r.retire_after)})
            );
            Ok(())
        }
        KeysCommand::List { settings } => {
            let settings = settings.into_settings()?;
            let opened = app::open(&settings).map_err(|e| e.to_string())?;
            let mut conn = opened.pool.get().map_err(|e| e.to_string())?;
            for k in crate::db::queries::keys::all(&mut conn).map_err(|e| e.to_string())? {
                println!(
                    "{}",
                    json!({"kid": k.kid, "status": k.status,
                        "created_at": crate::time::format(&crate::time::from_db(k.created_at)),
                        "retire_after": k.retire_after.map(|t| crate::time::format(&crate::time::from_db(t)))})
                );
            }
            Ok(())
        }
    }
}

fn cleanup(args: SettingsArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    let opened = app::open(&settings).map_err(|e| e.to_string())?;
    let spinner = progress::Progress::spinner("cleanup");
    let report = crate::cleanup::run_observed(
        &opened.manager,
        &settings,
        crate::cleanup::Trigger::OnDemand,
        &Actor::default(),
        &mut |what, deleted| spinner.set(deleted, format!("{deleted} {what} deleted")),
    )
    .map_err(|e| crate::error::cause_chain(&e))?
    .map_err(|skipped| skipped.to_string())?;
    drop(spinner);
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}
