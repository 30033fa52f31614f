//! `telegaz simulate`: a fleet of simulated БПЭК units uploading LIS-200
//! archives by FTP, with link faults, reporting what the server did.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use jiff::civil::DateTime;
use telegaz_config::Config;
use telegaz_sim::{Clock, Faults, FleetConfig, Schedule, accounts, fleet_units, run_fleet};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// Every unit at the same moment (the top of the hour).
    Herd,
    /// Spread over --over.
    Spread,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// FTP server to upload to.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: String,
    /// Number of simulated units (accounts sim-0001… in the data directory,
    /// created when missing). Ignored with --accounts.
    #[arg(long, default_value_t = 10)]
    pub devices: u32,
    /// Use these accounts (CSV name,login,password) instead of creating any.
    #[arg(long, value_name = "FILE")]
    pub accounts: Option<PathBuf>,
    /// Write the generated accounts to this CSV file (for another server).
    #[arg(long, value_name = "FILE")]
    pub write_accounts: Option<PathBuf>,
    /// Prefix of the generated device names.
    #[arg(long, default_value = "sim-")]
    pub prefix: String,
    #[arg(long, value_enum, default_value = "herd")]
    pub schedule: ScheduleArg,
    /// With --schedule spread: spread each round over this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub over: Duration,
    /// Rounds to run; without it, until Ctrl-C.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Time between the starts of two rounds.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Hours of archive in each file (simulated time advances by this each round).
    #[arg(long, default_value_t = 24)]
    pub hours_per_file: u32,
    /// Local time of the first hourly row.
    #[arg(long, default_value = "2026-01-01T01:00:00")]
    pub start: DateTime,
    /// Seed of everything generated (values, passwords, schedule jitter, faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Added before connecting and before every FTP command, milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// Data stream limit in bytes per second (GPRS: a few thousand).
    #[arg(long, value_name = "BYTES_PER_S")]
    pub bandwidth: Option<u64>,
    /// Probability (0-1) that the link drops in the middle of a file; the unit
    /// tries again later in the same round.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    pub drop_data: f64,
    /// Send STOR first and connect to the passive data port this many
    /// milliseconds later (the server's data_connect_timeout runs from STOR).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub late_pasv: u64,
    /// Upload every file to this second server as well.
    #[arg(long, value_name = "HOST:PORT")]
    pub duplicate_to: Option<String>,
    /// Attempts per file and server in a round.
    #[arg(long, default_value_t = 3)]
    pub attempts: u32,
    /// Wait before trying again after a failed session.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_after: Duration,
    /// Limit for one session.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the report as JSON (the summary and every session).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: SimulateArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.drop_data) {
        bail!("--drop-data is a probability between 0 and 1");
    }
    let accounts = match &args.accounts {
        Some(path) => accounts::read_csv(path)?,
        None => {
            if args.devices == 0 {
                bail!("--devices must be at least 1");
            }
            let list = accounts::generate(args.devices, &args.prefix, args.seed);
            let db = crate::cli::open_db(config).await?;
            let done = accounts::register(&*db, &list).await.with_context(|| {
                format!(
                    "creating the simulated devices in {}",
                    telegaz_store::redact_url(&config.database_url())
                )
            })?;
            tracing::info!(
                created = done.created,
                updated = done.updated,
                unchanged = done.unchanged,
                "simulated devices ready"
            );
            list
        }
    };
    if let Some(path) = &args.write_accounts {
        accounts::write_csv(path, &accounts)?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::serve::shutdown_signal().await;
        tracing::info!("stopping after the sessions in flight");
        let _ = stop_tx.send(true);
    });
    let mut fleet = FleetConfig::new(
        args.server.clone(),
        fleet_units(&accounts, args.seed, args.start),
    );
    fleet.duplicate_to = args.duplicate_to.clone();
    fleet.schedule = match args.schedule {
        ScheduleArg::Herd => Schedule::Herd,
        ScheduleArg::Spread => Schedule::Spread(args.over),
    };
    fleet.rounds = args.rounds;
    fleet.interval = args.interval;
    fleet.clock = Clock::Simulated {
        hours_per_file: args.hours_per_file.max(1),
    };
    fleet.faults = Faults {
        latency: Duration::from_millis(args.latency),
        bandwidth: args.bandwidth.filter(|b| *b > 0),
        drop_data: args.drop_data,
        late_pasv: Duration::from_millis(args.late_pasv),
    };
    fleet.session_timeout = args.timeout;
    fleet.max_attempts = args.attempts.max(1);
    fleet.retry_after = args.retry_after;
    fleet.seed = args.seed;
    fleet.stop = Some(stop_rx);
    let stats = run_fleet(fleet).await?;
    let summary = stats.summary();
    if args.json {
        let out = serde_json::json!({ "summary": summary, "sessions": stats.sessions });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}
