//! The server-side verbs, which open the database themselves: `serve`, `migrate`,
//! `admin-token`, `user add`, `keys`, `cleanup`.

use std::io::IsTerminal;

use serde_json::json;

use super::{progress, KeysCommand};
use crate::accounts::passwords::{Password, Passwords};
use crate::accounts::users::{self, Login, Role};
use crate::accounts::{self, AccountName, Actor, NewAccount};
use crate::app::{self, Application};
use crate::config::{ServeArgs, Settings, SettingsArgs};
use crate::scope::{RequestedTtl, Scope, TtlFields, ValidMetadata};

pub(super) fn serve_cmd(serve: ServeArgs, args: SettingsArgs) -> Result<(), String> {
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

pub(super) fn migrate(args: SettingsArgs) -> Result<(), String> {
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

pub(super) fn admin_token(
    name: &str,
    ttl_hours: Option<u64>,
    args: SettingsArgs,
) -> Result<(), String> {
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

pub(super) fn add_user(
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

pub(super) fn keys(command: KeysCommand) -> Result<(), String> {
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

pub(super) fn cleanup(args: SettingsArgs) -> Result<(), String> {
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
