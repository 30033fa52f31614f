//! Scheduled delivery of gas-day reports by e-mail.
//!
//! Each `[[delivery]]` of the configuration names devices, recipients, a
//! format (XLSX or Windows-1251 CSV) and a delay. After every gas day, once
//! the last of its devices has passed its contract hour and the delay has run
//! out, the [`Scheduler`] records the delivery of that gas day as due in the
//! database (`report_deliveries`), builds the report (the same as `telegaz
//! report --period day:…`) and sends it through the `[smtp]` server with the
//! report attached.
//!
//! - **Once.** A delivery is one record per (name, gas day); once `sent` it is
//!   never sent again by the scheduler, across restarts too. An attempt holds
//!   its record for a lease; one cut short by a crash is attempted again after
//!   the lease, so a message can (rarely) go out twice, never zero times.
//! - **Retries.** A failed attempt (mail server down, no data yet, …) is tried
//!   again after the waits of `delivery_policy.retry`; when they are used up
//!   the record is `failed`, with the last error. `telegaz deliveries` shows
//!   it; `telegaz deliveries send` sends one at once.
//! - **Catch-up.** Only the latest `delivery_policy.catch_up_days` due gas days
//!   are recorded, so a new delivery or a server that was stopped does not
//!   send a flood of old reports.
//! - **Never in the way.** The scheduler runs in its own task; reports are
//!   built on the blocking pool; ingest goes on whatever the mail server does.

mod data;
mod message;
mod schedule;
mod scheduler;
mod smtp;

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;

pub use data::{DaySettings, LoadError, day_settings, load_report_data};
pub use message::{Attachment, Email, attachment_name, body, ru_date, subject};
pub use schedule::{due_at, gas_day_end, latest_due_day};
pub use scheduler::{Delivery, Scheduler, TickSummary, day_ends, next_due};
pub use smtp::{Mailer, SmtpMailer};

/// Sending an e-mail failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail server {server}: {error} ({hint})")]
    Smtp {
        server: String,
        error: String,
        hint: &'static str,
    },
    #[error("cannot make the e-mail: {0}")]
    Message(String),
}

/// Why a report could not be delivered, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Load(LoadError),
    #[error(
        "{0}; the units have not uploaded this gas day (yet): see `telegaz uploads list --device NAME`"
    )]
    NoData(String),
    #[error("cannot make the report: {0}")]
    Report(telegaz_reports::ReportError),
    #[error("cannot render the report: {0}")]
    Render(#[from] telegaz_reports::RenderError),
    #[error(transparent)]
    Mail(MailError),
    #[error("the attempt took longer than {0:?} and was given up")]
    Timeout(Duration),
    #[error("{what} {value:?} is not a valid e-mail address ({reason})")]
    Address {
        what: String,
        value: String,
        reason: String,
    },
    #[error("no mail server is configured: set smtp.host and smtp.from")]
    NoSmtp,
    #[error("smtp TLS: {0}")]
    Tls(String),
    #[error("no delivery named {name:?} in the configuration (configured: {known})")]
    UnknownDelivery { name: String, known: String },
    #[error("delivery {name} of gas day {gas_day} was not sent: {error}{}", next_attempt_note(*.next))]
    NotSent {
        name: String,
        gas_day: Date,
        error: Box<DeliveryError>,
        next: Option<Timestamp>,
    },
    #[error(transparent)]
    Store(#[from] telegaz_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

fn next_attempt_note(next: Option<Timestamp>) -> String {
    match next {
        Some(t) => format!(". The running server tries it again at {t}"),
        None => ". It is recorded as failed".into(),
    }
}
