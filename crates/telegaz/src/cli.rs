use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use telegaz_config::{Config, FtpOverrides, Overrides, PortRange, WebOverrides};
use telegaz_store::Database;

use crate::{
    cmd_audit, cmd_ban, cmd_delivery, cmd_demo, cmd_device, cmd_ingest, cmd_migrate, cmd_report,
    cmd_simulate, cmd_uploads, cmd_user, serve,
};

/// Telegaz receives the telemetry that БПЭК gas-metering modems upload by FTP,
/// keeps every byte, and turns it into gas-consumption data.
#[derive(Debug, Parser)]
#[command(name = "telegaz", version, about, max_term_width = 100)]
pub struct Cli {
    /// Configuration file (TOML). Default: $TELEGAZ_CONFIG, else ./telegaz.toml if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (database and spool). Default: ./telegaz-data
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL. Default: sqlite://<data-dir>/telegaz.db
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: FTP receiver, ingest, web UI and REST API, metrics.
    Serve(ServeArgs),
    /// Manage device accounts (one per БПЭК unit).
    #[command(subcommand)]
    Device(cmd_device::DeviceCommand),
    /// Web UI and REST API users (admin, operator, viewer) and their API tokens.
    #[command(subcommand)]
    User(cmd_user::UserCommand),
    /// Received files.
    #[command(subcommand)]
    Uploads(cmd_uploads::UploadsCommand),
    /// The audit trail: connections, logins, uploads, renames, deletes.
    Audit(cmd_audit::AuditArgs),
    /// The ban list of device logins: addresses and logins refused after
    /// repeated failures or by an operator; list, add, lift.
    #[command(subcommand)]
    Ban(cmd_ban::BanCommand),
    /// Import files as if a device had uploaded them (same pipeline as FTP).
    Import(cmd_ingest::ImportArgs),
    /// Run the ingest pipeline again over stored uploads (after adding a profile, …).
    Reparse(cmd_ingest::ReparseArgs),
    /// Hourly consumption of a device, from its stored readings.
    Readings(cmd_ingest::RangeArgs),
    /// Gas-day volumes of a device.
    Daily(cmd_ingest::RangeArgs),
    /// Reports by gas day or hour: CSV (UTF-8 or Windows-1251), XLSX, JSON, HTML.
    Report(cmd_report::ReportArgs),
    /// Scheduled report e-mails: list what was sent, pending or failed; send one now.
    Deliveries(cmd_delivery::DeliveriesArgs),
    /// Copy the installation into a new, empty database (SQLite to PostgreSQL or
    /// back), then verify every table by row count and checksum.
    MigrateDb(cmd_migrate::MigrateArgs),
    /// Simulated БПЭК units uploading LIS-200 archives to an FTP server, with link faults.
    Simulate(cmd_simulate::SimulateArgs),
    /// A demonstration: the server with ~20 simulated units, a month of history
    /// and live uploads, in ./telegaz-demo.
    Demo(cmd_demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// FTP control address, e.g. 0.0.0.0:2121 (port 21: see README).
    #[arg(long, value_name = "ADDR:PORT")]
    pub ftp_listen: Option<String>,
    /// Passive data port range, e.g. 50000-50999 (0-0: any free port).
    #[arg(long, value_name = "A-B")]
    pub passive_ports: Option<PortRange>,
    /// Address or DNS name to advertise for passive data connections (behind NAT).
    #[arg(long, value_name = "HOST")]
    pub passive_host: Option<String>,
    /// HTTP address of the web UI, REST API and /metrics, e.g. 0.0.0.0:8080.
    #[arg(long, value_name = "ADDR:PORT")]
    pub web_listen: Option<String>,
}

impl Cli {
    fn overrides(&self) -> Overrides {
        let mut o = Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Default::default()
        };
        let serve = match &self.command {
            Command::Serve(s) => Some(s),
            Command::Demo(d) => {
                if o.data_dir.is_none() {
                    o.data_dir = Some(PathBuf::from(cmd_demo::DEFAULT_DIR));
                }
                Some(&d.serve)
            }
            _ => None,
        };
        if let Some(s) = serve {
            let demo = matches!(self.command, Command::Demo(_));
            o.ftp = FtpOverrides {
                // The demo listens on the loopback unless told otherwise.
                listen: s
                    .ftp_listen
                    .clone()
                    .or_else(|| demo.then(|| cmd_demo::DEFAULT_FTP.to_owned())),
                passive_ports: s.passive_ports,
                passive_host: s.passive_host.clone(),
            };
            o.web = WebOverrides {
                listen: s.web_listen.clone(),
            };
        }
        o
    }
}

/// Open the database the configuration names, creating the data directory.
pub async fn open_db(config: &Config) -> anyhow::Result<Arc<dyn Database>> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}; create it or choose another with --data-dir",
            config.data_dir.display()
        )
    })?;
    let url = config.database_url();
    let shown = telegaz_store::redact_url(&url);
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if postgres {
        crate::dburl::check_postgres_reachable(&url, &shown).await?;
    }
    let options = telegaz_store::StoreOptions {
        sqlite_session_group: config.sqlite_session_group,
    };
    match telegaz_store::connect_with(&url, &options).await {
        Ok(db) => Ok(db),
        Err(telegaz_store::StoreError::Open { source, .. }) if postgres => Err(anyhow::anyhow!(
            "cannot connect to PostgreSQL at {shown}: {source}. {}",
            crate::dburl::POSTGRES_HINT
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "opening the database {shown} (set by --database-url, TELEGAZ_DATABASE_URL or database_url in the configuration file)"
        ))),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), &cli.overrides())?;
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        crate::logging::init_cli();
    }
    match cli.command {
        Command::Serve(_) => serve::run(config).await,
        Command::Device(cmd) => cmd_device::run(&config, cmd).await,
        Command::User(cmd) => cmd_user::run(&config, cmd).await,
        Command::Uploads(cmd) => cmd_uploads::run(&config, cmd).await,
        Command::Audit(args) => cmd_audit::run(&config, args).await,
        Command::Ban(cmd) => cmd_ban::run(&config, cmd).await,
        Command::Import(args) => cmd_ingest::import(&config, args).await,
        Command::Reparse(args) => cmd_ingest::reparse(&config, args).await,
        Command::Readings(args) => cmd_ingest::readings(&config, args).await,
        Command::Daily(args) => cmd_ingest::daily(&config, args).await,
        Command::Report(args) => cmd_report::run(&config, args).await,
        Command::Deliveries(args) => cmd_delivery::run(&config, args).await,
        Command::MigrateDb(args) => cmd_migrate::run(&config, args).await,
        Command::Simulate(args) => cmd_simulate::run(&config, args).await,
        Command::Demo(args) => cmd_demo::run(config, args).await,
    }
}
