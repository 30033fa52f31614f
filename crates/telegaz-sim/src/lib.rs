//! A simulated fleet of БПЭК units for tests, demos and benchmarks.
//!
//! - [`model`]: what a ТС220 corrector measures, hour by hour (p, T, K, C,
//!   counters Vb and Vm, daily rows at the contract hour, alarms in the event
//!   log), deterministic from a seed;
//! - [`lis200`]: writes it as the LIS-200 readout text Telegaz parses;
//! - [`accounts`]: the units' FTP accounts (generated, CSV, registered in a
//!   Telegaz store);
//! - [`fleet`]: uploads by FTP on a schedule (herd or spread) through a link
//!   with faults (latency, bandwidth, dropped data connections, late passive
//!   connections, a second server), and the statistics of every session.
//!
//! ```no_run
//! # async fn f() -> Result<(), telegaz_sim::SimError> {
//! use telegaz_sim::{FleetConfig, accounts, fleet_units, run_fleet};
//! let accounts = accounts::generate(100, "sim-", 1);
//! let start = jiff::civil::date(2026, 1, 1).at(1, 0, 0, 0);
//! let config = FleetConfig::new("127.0.0.1:2121", fleet_units(&accounts, 1, start));
//! let stats = run_fleet(config).await?;
//! println!("{}", stats.summary().table());
//! # Ok(()) }
//! ```

pub mod accounts;
pub mod fleet;
pub mod ftp;
pub mod lis200;
pub mod model;
mod rng;

pub use accounts::Account;
pub use fleet::{
    Clock, FailureKind, Faults, FleetConfig, Outcome, Schedule, SessionRecord, SimUnit, Stats,
    Summary, Target, run_fleet,
};
pub use model::{Archive, Row, RowKind, Unit, UnitParams};
pub use rng::Rng;

/// What went wrong outside a single session (sessions fail into [`Stats`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("accounts: {0}")]
    Accounts(String),
    #[error("store: {0}")]
    Store(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("a simulated unit's task failed: {0}")]
    Task(String),
}

/// A unit per account, unit `i` with the parameters of
/// [`UnitParams::from_seed`]`(seed, i)` and its first row at `start`.
pub fn fleet_units(accounts: &[Account], seed: u64, start: jiff::civil::DateTime) -> Vec<SimUnit> {
    accounts
        .iter()
        .enumerate()
        .map(|(i, a)| SimUnit {
            account: a.clone(),
            unit: Unit::new(UnitParams::from_seed(seed, i as u64), start),
        })
        .collect()
}
