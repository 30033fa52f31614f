//! `telegaz migrate-db`: move an installation to another database (SQLite to
//! PostgreSQL and back), then verify the copy table by table.

use std::io::Write;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use telegaz_config::Config;
use telegaz_store::migrate::{self, Progress, TableCheck};
use telegaz_store::redact_url;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database to copy (sqlite://FILE or postgres://…). Default: the
    /// configured database (--database-url, else the data directory's).
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// The new, empty database to fill (postgres://USER:PASSWORD@HOST/DB or sqlite://FILE).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Copy nothing: only compare the two databases (row counts and checksums).
    #[arg(long)]
    verify_only: bool,
    /// Print the verification as one JSON object per table.
    #[arg(long)]
    json: bool,
}

/// A progress bar per table, on the terminal only.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Bars {
    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Progress for Bars {
    fn table(&mut self, table: &str, rows: u64) {
        self.finish();
        let bar = ProgressBar::new(rows);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:18} {bar:40} {pos}/{len} rows {per_sec}")
        {
            bar.set_style(style);
        }
        bar.set_message(table.to_owned());
        self.bar = Some(bar);
    }

    fn rows(&mut self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    fn verifying(&mut self, table: &str) {
        self.finish();
        let bar = ProgressBar::new_spinner();
        bar.set_message(format!("verifying {table}"));
        self.bar = Some(bar);
    }
}

pub async fn run(config: &Config, args: MigrateArgs) -> anyhow::Result<()> {
    let from = args.from.clone().unwrap_or_else(|| config.database_url());
    let mut bars = Bars { bar: None };
    let checks = if args.verify_only {
        migrate::verify(&from, &args.to, &mut bars).await
    } else {
        migrate::migrate(&from, &args.to, &mut bars).await
    };
    bars.finish();
    let checks = checks.with_context(|| {
        format!(
            "migrating {} to {}",
            redact_url(&from),
            redact_url(&args.to)
        )
    })?;
    print_checks(&checks, args.json)?;
    let bad: Vec<&str> = checks
        .iter()
        .filter(|c| !c.matches())
        .map(|c| c.table)
        .collect();
    if !bad.is_empty() {
        anyhow::bail!(
            "verification failed: {} differ between {} and {}; do not switch to the new \
             database: drop it, make sure nothing writes to the old one (stop telegaz serve) \
             and migrate again",
            bad.join(", "),
            redact_url(&from),
            redact_url(&args.to)
        );
    }
    if !args.json {
        println!(
            "verified: every table has the same rows on both sides; point --database-url \
             (or database_url in telegaz.toml) at {}",
            redact_url(&args.to)
        );
    }
    Ok(())
}

fn print_checks(checks: &[TableCheck], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<20} {:>10} {:>10}  {:<64}  result",
            "table", "source", "target", "sha256 (source)"
        )?;
    }
    for c in checks {
        if json {
            let line = serde_json::json!({
                "table": c.table,
                "source_rows": c.source.rows,
                "target_rows": c.target.rows,
                "source_sha256": c.source.sha256,
                "target_sha256": c.target.sha256,
                "matches": c.matches(),
            });
            writeln!(out, "{line}")?;
        } else {
            let result = if c.matches() {
                "ok".to_owned()
            } else {
                format!("MISMATCH (target sha256 {})", c.target.sha256)
            };
            writeln!(
                out,
                "{:<20} {:>10} {:>10}  {:<64}  {result}",
                c.table, c.source.rows, c.target.rows, c.source.sha256
            )?;
        }
    }
    Ok(())
}
