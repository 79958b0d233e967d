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
mod server;

pub use remote::RemoteArgs;
pub use sa::SaCommand;
pub use server::mint_admin_token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use server::{add_user, admin_token, cleanup, keys, migrate, serve_cmd};

use crate::config::{ServeArgs, SettingsArgs};

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
