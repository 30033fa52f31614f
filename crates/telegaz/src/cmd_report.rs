//! `telegaz report`: gas-day reports for one or more devices.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use telegaz_config::Config;
use telegaz_reports::{Period, Rows};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// CSV, UTF-8.
    Csv,
    /// CSV as Russian Excel opens it: Windows-1251, `;`, decimal comma.
    #[value(name = "csv-1251")]
    Csv1251,
    /// Excel workbook with number and date cells.
    Xlsx,
    Json,
    /// A printable page.
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RowsArg {
    Hourly,
    Daily,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Device name; repeat for a group.
    #[arg(long = "device", value_name = "NAME", required = true)]
    pub devices: Vec<String>,
    /// day:2026-01-14, month:2026-01 or range:2026-01-01..2026-01-31 (gas days).
    #[arg(long, value_name = "PERIOD")]
    pub period: Period,
    /// A row per hour or per gas day.
    #[arg(long, value_enum, default_value = "daily")]
    pub rows: RowsArg,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Per device and gas day, the hours that are missing (instead of the report).
    #[arg(long)]
    pub completeness: bool,
}

pub async fn run(config: &Config, args: ReportArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let (first, last) = args.period.gas_days()?;
    let devices = telegaz_delivery::load_report_data(&*db, &args.devices, first, last).await?;
    let now = jiff::Timestamp::now();
    let bytes = if args.completeness {
        let days = telegaz_reports::completeness(&devices, &args.period, now)?;
        let mut out = Vec::new();
        for d in &days {
            serde_json::to_writer(&mut out, d)?;
            out.push(b'\n');
        }
        out
    } else {
        let rows = match args.rows {
            RowsArg::Hourly => Rows::Hourly,
            RowsArg::Daily => Rows::Daily,
        };
        let report = telegaz_reports::build(&devices, &args.period, rows, now)?;
        use telegaz_reports::render;
        match args.format {
            Format::Csv => render::csv_utf8(&report),
            Format::Csv1251 => render::csv_1251(&report),
            Format::Xlsx => render::xlsx(&report)?,
            Format::Json => render::json(&report),
            Format::Html => render::html(&report).into_bytes(),
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            if matches!(args.format, Format::Xlsx) && !args.completeness {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    bail!("an XLSX report is binary: give --output FILE.xlsx");
                }
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(())
}
