//! `telegaz ban`: the ban list of FTP (and raw-TCP) logins: list, add, lift.
//! A running server reads the list at each login, so changes count at once.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use telegaz_config::Config;
use telegaz_domain::{AuditKind, Ban, NewBan, Timestamp, ban_address, ban_clock};
use telegaz_store::{BanFilter, Database};

/// Who the CLI's changes are recorded as.
const BY: &str = "cli";

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// Bans in force (with --all: every ban ever made, lifted and expired too), newest first.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        all: bool,
    },
    /// Refuse logins from an address, of a login (from every address), or of a login from an address.
    Add {
        /// The client's IP address.
        address: Option<String>,
        /// Only this login (with an address: only from there).
        #[arg(long, value_name = "LOGIN")]
        login: Option<String>,
        /// How long (30m, 12h, 7d); without it the ban holds until lifted.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Why (shown in the list and the audit trail).
        #[arg(long, default_value = "banned by an operator")]
        reason: String,
    },
    /// End a ban (by its id), or every ban in force of an address or a login.
    Lift {
        /// A ban id (`telegaz ban list`), an IP address or a login.
        target: String,
    },
}

fn print(out: &mut impl Write, b: &Ban, json: bool) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, b)?;
        writeln!(out)?;
    } else {
        let state = match (&b.lifted_at, b.active_at(Timestamp::now())) {
            (Some(_), _) => format!("lifted by {}", b.lifted_by.as_deref().unwrap_or("?")),
            (None, true) => "in force".into(),
            (None, false) => "expired".into(),
        };
        writeln!(
            out,
            "#{:<5} {:<32} {:<32} {:<16} by {:<12} {}",
            b.id,
            b.target(),
            b.until_text(),
            state,
            b.created_by,
            b.reason
        )?;
    }
    Ok(())
}

/// Lift one ban; audited when this call lifted it (not when it was already).
async fn lift(db: &dyn Database, id: i64) -> anyhow::Result<(Ban, bool)> {
    let now = ban_clock();
    let lifted = db.lift_ban(id, BY, now).await.map_err(|e| match e {
        telegaz_store::StoreError::NotFound { .. } => {
            anyhow::anyhow!("no ban #{id}; `telegaz ban list --all` shows them")
        }
        other => other.into(),
    })?;
    let now_lifted = lifted.lifted_at == Some(now);
    if now_lifted {
        db.insert_audit(&[lifted.audit_event(AuditKind::BanLifted, BY)])
            .await?;
    }
    Ok((lifted, now_lifted))
}

/// The bans `target` names: an id, or those in force of an address or a login.
async fn targets(db: &dyn Database, target: &str) -> anyhow::Result<Vec<i64>> {
    let target = target.trim();
    if let Ok(id) = target.parse::<i64>() {
        return Ok(vec![id]);
    }
    let address = ban_address(target).ok();
    let live = db
        .list_bans(&BanFilter {
            active_at: Some(Timestamp::now()),
            limit: None,
        })
        .await?;
    let matching: Vec<i64> = live
        .into_iter()
        .filter(|b| match &address {
            Some(a) => b.address.as_deref() == Some(a.as_str()),
            None => b.login.as_deref() == Some(target),
        })
        .map(|b| b.id)
        .collect();
    if matching.is_empty() {
        anyhow::bail!("no ban in force for {target:?}; `telegaz ban list` shows them");
    }
    Ok(matching)
}

pub async fn run(config: &Config, cmd: BanCommand) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let db = &*db;
    let mut out = std::io::stdout().lock();
    match cmd {
        BanCommand::List { json, all } => {
            let bans = db
                .list_bans(&BanFilter {
                    active_at: (!all).then(Timestamp::now),
                    limit: None,
                })
                .await?;
            for b in &bans {
                print(&mut out, b, json)?;
            }
        }
        BanCommand::Add {
            address,
            login,
            duration,
            reason,
        } => {
            let address = address
                .as_deref()
                .map(ban_address)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let login = login.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
            if address.is_none() && login.is_none() {
                anyhow::bail!("name an address, --login LOGIN, or both");
            }
            let now = Timestamp::now();
            let expires_at = match duration {
                Some(d) => Some(
                    now.checked_add(jiff::SignedDuration::try_from(d)?)
                        .context("the duration is too long")?,
                ),
                None => None,
            };
            let ban = db
                .create_ban(&NewBan {
                    address,
                    login,
                    reason,
                    created_by: BY.into(),
                    created_at: now,
                    expires_at,
                    repeat: 0,
                })
                .await?;
            db.insert_audit(&[ban.audit_event(AuditKind::BanCreated, BY)])
                .await?;
            writeln!(
                out,
                "Ban #{}: {} {}",
                ban.id,
                ban.target(),
                ban.until_text()
            )?;
        }
        BanCommand::Lift { target } => {
            for id in targets(db, &target).await? {
                let (b, now_lifted) = lift(db, id).await?;
                if now_lifted {
                    writeln!(out, "Lifted ban #{}: {}", b.id, b.target())?;
                } else {
                    writeln!(
                        out,
                        "Ban #{} ({}) was lifted already, by {}",
                        b.id,
                        b.target(),
                        b.lifted_by.as_deref().unwrap_or("?")
                    )?;
                }
            }
        }
    }
    Ok(())
}
