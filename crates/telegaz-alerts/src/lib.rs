//! Alerts.
//!
//! The [`Engine`] looks at what the store holds, on every evaluation, and
//! derives the conditions that hold now: a unit silent for longer than its
//! schedule (learned from its own uploads) plus a grace period, a corrector
//! alarm in a unit's newest hourly row, uploads of a unit that were not
//! understood. Each condition is one alert while it holds (the store keeps at
//! most one unresolved alert per condition), opened with a notification and
//! resolved automatically, with a recovery notice, when the condition is
//! over. When many units go silent (or come back) in one evaluation — a
//! mobile-network outage — one digest is sent instead of a message per unit.
//!
//! The [`Dispatcher`] sends the queued notifications through each notifier,
//! on its own schedule: a notifier that is down is retried with growing
//! pauses and never holds up another notifier, the evaluation or ingest. What
//! was sent is recorded, so a restart sends nothing twice.
//!
//! Time comes from a [`Clock`], so that tests can move it.

mod clock;
mod dispatch;
mod engine;
mod events;
mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatch::{Dispatcher, SendError, Sender};
pub use engine::{
    AlertSettings, Bounds, DATABASE_FAILURES, Engine, Evaluation, LimitRule, Maintenance,
    ServerHealth,
};
pub use state::{DeviceState, StatePublisher};
