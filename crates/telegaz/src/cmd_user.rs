//! `telegaz user`: people who sign in to the web UI and use the REST API.

use anyhow::Context;
use clap::Subcommand;
use secrecy::ExposeSecret;
use telegaz_config::Config;
use telegaz_domain::{AuditKind, NewAuditEvent, Role, User, UserName};
use telegaz_store::{Database, NewUser, UserUpdate};

use crate::cmd_device::{hash, password_from};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password a strong one is generated and printed once.
    Add {
        name: String,
        /// admin (everything), operator (devices, re-parse, profiles) or viewer (read only).
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Password; `-` reads it from standard input.
        #[arg(long, value_name = "PW")]
        password: Option<String>,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (generated and printed once unless given); ends the user's sessions.
    Passwd {
        name: String,
        #[arg(long, value_name = "PW")]
        password: Option<String>,
    },
    /// Change a user's role; ends the user's sessions.
    Role { name: String, role: Role },
    /// Refuse the user's sign-ins and API tokens from now on.
    Disable { name: String },
    /// Accept the user's sign-ins again (revoked API tokens stay revoked).
    Enable { name: String },
    /// Create an API token for the user (printed once).
    Token {
        name: String,
        /// What the token is for (shown in the token list).
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

async fn audit(db: &dyn Database, user: &User, detail: String) -> anyhow::Result<()> {
    let mut e = NewAuditEvent::new(AuditKind::UserChanged, "ok");
    e.login = Some(user.name.to_string());
    e.detail = detail;
    db.insert_audit(&[e]).await?;
    Ok(())
}

async fn find(db: &dyn Database, name: &str) -> anyhow::Result<User> {
    db.user_by_name(name)
        .await?
        .with_context(|| format!("no user named {name:?}; `telegaz user list` shows them"))
}

/// At the first start, with no user at all, create `admin` with a one-time
/// password printed on standard output (never logged), so that someone can
/// sign in and create the real accounts.
pub async fn ensure_first_admin(db: &dyn Database) -> anyhow::Result<()> {
    if !db.list_users().await?.is_empty() {
        return Ok(());
    }
    let pw = telegaz_auth::generate_password();
    let user = db
        .create_user(NewUser {
            name: UserName::parse("admin").map_err(anyhow::Error::msg)?,
            password_hash: hash(&pw).await?,
            role: Role::Admin,
        })
        .await?;
    audit(db, &user, "first administrator created at start-up".into()).await?;
    tracing::warn!(
        user = "admin",
        "no web users existed: created `admin` with a one-time password printed on standard output; change it after signing in"
    );
    println!(
        "telegaz: first start: web user admin created with the one-time password {} (change it: telegaz user passwd admin)",
        pw.expose_secret()
    );
    Ok(())
}

pub async fn run(config: &Config, cmd: UserCommand) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let db = &*db;
    match cmd {
        UserCommand::Add {
            name,
            role,
            password,
        } => {
            let name = UserName::parse(&name).map_err(anyhow::Error::msg)?;
            let (pw, generated) = password_from(password)?;
            let user = db
                .create_user(NewUser {
                    name,
                    password_hash: hash(&pw).await?,
                    role,
                })
                .await?;
            audit(db, &user, format!("user added with role {role}")).await?;
            println!("Added user {} ({})", user.name, user.role);
            if generated {
                println!(
                    "Generated password for {} (shown once, store it now): {}",
                    user.name,
                    pw.expose_secret()
                );
            }
        }
        UserCommand::List { json } => {
            for u in db.list_users().await? {
                if json {
                    println!("{}", serde_json::to_string(&u)?);
                } else {
                    println!(
                        "{}\t{}\t{}",
                        u.name,
                        u.role,
                        if u.enabled { "enabled" } else { "disabled" }
                    );
                }
            }
        }
        UserCommand::Passwd { name, password } => {
            let user = find(db, &name).await?;
            let (pw, generated) = password_from(password)?;
            let update = UserUpdate {
                password_hash: Some(hash(&pw).await?),
                ..UserUpdate::default()
            };
            db.update_user(user.id, update).await?;
            audit(db, &user, "password changed".into()).await?;
            println!(
                "Password of {} changed; their sessions are ended.",
                user.name
            );
            if generated {
                println!(
                    "Generated password for {} (shown once, store it now): {}",
                    user.name,
                    pw.expose_secret()
                );
            }
        }
        UserCommand::Role { name, role } => {
            let user = find(db, &name).await?;
            let update = UserUpdate {
                role: Some(role),
                ..UserUpdate::default()
            };
            db.update_user(user.id, update).await?;
            audit(db, &user, format!("role {} -> {role}", user.role)).await?;
            println!("{} is now {role}.", user.name);
        }
        UserCommand::Disable { name } => {
            let user = find(db, &name).await?;
            let update = UserUpdate {
                enabled: Some(false),
                ..UserUpdate::default()
            };
            db.update_user(user.id, update).await?;
            audit(db, &user, "disabled".into()).await?;
            println!(
                "User {} disabled; sessions ended, API tokens revoked.",
                user.name
            );
        }
        UserCommand::Enable { name } => {
            let user = find(db, &name).await?;
            let update = UserUpdate {
                enabled: Some(true),
                ..UserUpdate::default()
            };
            db.update_user(user.id, update).await?;
            audit(db, &user, "enabled".into()).await?;
            println!("User {} enabled.", user.name);
        }
        UserCommand::Token { name, label } => {
            let user = find(db, &name).await?;
            let token = telegaz_web::generate_token();
            let t = db
                .create_api_token(user.id, &label, &telegaz_web::token_sha256(&token))
                .await?;
            audit(db, &user, format!("API token #{} ({label}) created", t.id)).await?;
            println!(
                "API token #{} for {} (shown once; send it as `Authorization: Bearer TOKEN`): {token}",
                t.id, user.name
            );
        }
    }
    Ok(())
}
