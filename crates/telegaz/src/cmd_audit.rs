use std::io::Write;

use anyhow::Context;
use clap::Args;
use telegaz_config::Config;
use telegaz_domain::AuditKind;
use telegaz_store::AuditFilter;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events at or after TIME (2026-11-25T10:00:00Z, 2026-11-25, or 30m / 2h / 7d ago).
    #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
    since: Option<jiff::Timestamp>,
    /// Only events of this device.
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Only events of this kind (connect, login_failed, upload_finished, ...).
    #[arg(long, value_name = "KIND")]
    kind: Option<AuditKind>,
    /// At most this many (oldest first).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: AuditArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let device_id = match &args.device {
        Some(name) => Some(
            db.device_by_name(name)
                .await?
                .with_context(|| format!("no device named {name:?}"))?
                .id,
        ),
        None => None,
    };
    let events = db
        .list_audit(&AuditFilter {
            since: args.since,
            device_id,
            kind: args.kind,
            limit: args.limit,
            ..AuditFilter::default()
        })
        .await?;
    let mut out = std::io::stdout().lock();
    for e in &events {
        if args.json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{} {:<16} {:<20} {:<22} {:<16} {}{}",
                e.at.strftime("%Y-%m-%d %H:%M:%S"),
                e.kind.as_str(),
                e.outcome,
                e.peer.as_deref().unwrap_or("-"),
                e.device.as_deref().or(e.login.as_deref()).unwrap_or("-"),
                e.upload_id.map(|u| format!("#{u} ")).unwrap_or_default(),
                e.detail
            )?;
        }
    }
    Ok(())
}
