//! `telegaz deliveries`: scheduled report e-mails, what was sent and what failed.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use jiff::civil::Date;
use telegaz_config::Config;
use telegaz_delivery::{Scheduler, SmtpMailer};
use telegaz_store::{DeliveryFilter, DeliveryRecord, DeliveryState};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    command: Option<DeliveriesCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, newest gas day first (what `telegaz deliveries` does).
    List(ListArgs),
    /// Make and send a delivery's report of one gas day now, even if it was sent
    /// or failed before (to test the [smtp] settings, or after fixing a cause).
    Send {
        /// The delivery's name ([[delivery]] name = ...).
        name: String,
        /// The gas day (the date it starts), e.g. 2026-01-14.
        #[arg(long, value_name = "YYYY-MM-DD")]
        gas_day: Date,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this delivery.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only deliveries in this state (pending, sending, sent, failed).
    #[arg(long, value_name = "STATE")]
    state: Option<DeliveryState>,
    /// Only gas days from this one on.
    #[arg(long, value_name = "YYYY-MM-DD")]
    since: Option<Date>,
    /// At most this many.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Config, args: DeliveriesArgs) -> anyhow::Result<()> {
    match args.command {
        None => list(config, args.list).await,
        Some(DeliveriesCommand::List(list_args)) => list(config, list_args).await,
        Some(DeliveriesCommand::Send { name, gas_day }) => send(config, &name, gas_day).await,
    }
}

fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "-".to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

async fn list(config: &Config, args: ListArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let records = db
        .list_deliveries(&DeliveryFilter {
            name: args.name.clone(),
            state: args.state,
            since: args.since,
            limit: Some(args.limit),
        })
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for r in &records {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    if records.is_empty() {
        writeln!(out, "no deliveries recorded yet")?;
    } else {
        writeln!(
            out,
            "{:<10}  {:<24} {:<8} {:>8}  {:<21} {:<21} LAST ERROR",
            "GAS DAY", "DELIVERY", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "SENT"
        )?;
        for r in &records {
            writeln!(out, "{}", row(r))?;
        }
    }
    let now = Timestamp::now();
    let configured: Vec<_> = config
        .delivery
        .iter()
        .filter(|d| args.name.as_ref().is_none_or(|n| *n == d.name))
        .collect();
    if !configured.is_empty() {
        writeln!(out)?;
        for d in configured {
            let next = telegaz_delivery::next_due(&*db, d, now).await;
            let next = next.map_or_else(String::new, |(day, at)| {
                format!("; next: gas day {day} at {}", time(Some(at)))
            });
            writeln!(
                out,
                "configured: {} ({} → {}){next}",
                d.name,
                d.devices.join(", "),
                d.recipients.join(", ")
            )?;
        }
    }
    Ok(())
}

fn row(r: &DeliveryRecord) -> String {
    let next = match r.state {
        DeliveryState::Pending | DeliveryState::Sending => time(r.next_attempt_at),
        _ => "-".into(),
    };
    let error = r
        .last_error
        .as_deref()
        .map_or_else(|| "-".to_string(), |e| e.replace('\n', " "));
    format!(
        "{:<10}  {:<24} {:<8} {:>8}  {:<21} {:<21} {error}",
        r.gas_day.to_string(),
        r.name,
        r.state.as_str(),
        r.attempts,
        next,
        time(r.sent_at)
    )
}

async fn send(config: &Config, name: &str, gas_day: Date) -> anyhow::Result<()> {
    let delivery = config.delivery.iter().find(|d| d.name == name).with_context(|| {
        let known: Vec<&str> = config.delivery.iter().map(|d| d.name.as_str()).collect();
        if known.is_empty() {
            format!("no delivery named {name:?}: the configuration has no [[delivery]]; see the README section on scheduled delivery")
        } else {
            format!("no delivery named {name:?}; configured: {}", known.join(", "))
        }
    })?;
    let db = crate::cli::open_db(config).await?;
    let mailer = SmtpMailer::new(&config.smtp).context("the mail server settings ([smtp])")?;
    let scheduler =
        Scheduler::new(config, db.clone(), Arc::new(mailer)).context("the delivery settings")?;
    let now = Timestamp::now();
    if telegaz_delivery::day_ends(&*db, delivery, gas_day)
        .await
        .is_some_and(|end| end > now)
    {
        eprintln!(
            "telegaz: note: gas day {gas_day} has not ended yet for every device of {name}; the report is not final"
        );
    }
    let record = scheduler.send_now(name, gas_day, now).await?;
    println!(
        "sent {name} for gas day {gas_day} to {} (attempt {})",
        delivery.recipients.join(", "),
        record.attempts
    );
    Ok(())
}
