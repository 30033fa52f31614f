//! `telegaz`: the command line of the Telegaz server.

mod alerts;
mod cli;
mod cmd_audit;
mod cmd_ban;
mod cmd_delivery;
mod cmd_demo;
mod cmd_device;
mod cmd_ingest;
mod cmd_migrate;
mod cmd_report;
mod cmd_simulate;
mod cmd_uploads;
mod cmd_user;
mod dburl;
mod logging;
mod notifiers;
mod profiles;
mod raw_store;
mod serve;
mod timearg;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telegaz: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("telegaz: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
