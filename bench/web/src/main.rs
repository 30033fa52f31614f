//! `telegaz-bench-web`: server time of the fleet page and the device page
//! against the raw SQL they must at least read. See the library for what is
//! measured and how; `--help` for the options.
//!
//! `cargo run --release -p telegaz-bench-web -- --devices 10000 --repeat 20`

use clap::Parser;
use telegaz_bench_web::{Options, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    println!(
        "setting up {} units ({} days of hourly readings each, {} gas days for unit-00000)",
        opts.devices, opts.days, opts.year_days
    );
    let report = run(&opts).await?;
    println!(
        "set-up (not timed): {} units, {} uploads, {} readings in {:.1} s",
        report.devices,
        report.uploads,
        report.readings,
        report.setup.as_secs_f64()
    );
    println!(
        "{} timed repetitions of each request and of its peer, alternating, after one warm-up\n",
        opts.repeat
    );
    print!("{}", report.sizes());
    println!();
    print!("{}", report.markdown());
    if let Some(path) = &report.kept {
        println!("\nthe database is kept: {}", path.display());
    }
    Ok(())
}
