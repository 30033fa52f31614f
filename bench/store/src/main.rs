//! `store-bench`: store throughput and the two hot queries on SQLite and
//! PostgreSQL against raw SQL on the same data. See the library for what is
//! measured and how; `--help` for the options.
//!
//! `cargo run --release -p telegaz-bench-store -- --devices 200 --days 30 --fleet 10000`

use clap::Parser;
use telegaz_bench_store::{Options, machine, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Options::parse();
    let command: Vec<String> = std::env::args().collect();
    println!("machine: {}", machine());
    println!(
        "date: {}",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")
    );
    println!("command: {}\n", command.join(" "));
    let report = run(&opts).await?;
    for b in &report.backends {
        println!(
            "{}: set-up (not timed) {:.1} s",
            b.backend_name(),
            b.setup.as_secs_f64()
        );
    }
    println!();
    print!("{}", report.markdown());
    Ok(())
}
