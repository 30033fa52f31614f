//! The scheduler: records due deliveries, sends them, retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use lettre::message::Mailbox;
use telegaz_config::{Config, DeliveryConfig, DeliveryFormat, DeliveryPolicyConfig, ReportRows};
use telegaz_reports::{Period, ReportError, Rows};
use telegaz_store::{Database, DeliveryOutcome, DeliveryRecord, DeliveryState};
use tokio::sync::watch;

use crate::data::{DaySettings, LoadError, day_settings, load_report_data};
use crate::message::{Attachment, Email, attachment_name, body, subject};
use crate::schedule::{due_at, latest_due_day};
use crate::smtp::Mailer;
use crate::{DeliveryError, MailError};

/// How long an attempt holds its delivery: after a crash it is taken up again then.
const LEASE: Duration = Duration::from_secs(10 * 60);
/// An attempt (report and SMTP) that takes longer is given up as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// On shutdown, an attempt under way gets this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Deliveries taken per check.
const BATCH: u32 = 100;

/// A configured delivery with its addresses checked.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub config: DeliveryConfig,
    pub recipients: Vec<Mailbox>,
}

/// What one check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickSummary {
    /// Deliveries newly recorded as due.
    pub scheduled: u32,
    pub sent: u32,
    /// Failed attempts that will be retried.
    pub retrying: u32,
    /// Failed attempts after which nothing more is tried.
    pub failed: u32,
}

/// Sends the configured deliveries. Time is passed in (`now`), so tests can move it.
pub struct Scheduler {
    db: Arc<dyn Database>,
    mailer: Arc<dyn Mailer>,
    from: Mailbox,
    deliveries: Vec<Delivery>,
    policy: DeliveryPolicyConfig,
}

fn mailbox(what: &str, value: &str) -> Result<Mailbox, DeliveryError> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| DeliveryError::Address {
            what: what.to_owned(),
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

fn jiff_duration(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff_duration(d)).unwrap_or(Timestamp::MAX)
}

/// Every device of a delivery that exists, with its settings; missing ones are
/// left out (the attempt then fails with a clear message). When none exists,
/// the default settings of a new device.
async fn settings_of(db: &dyn Database, d: &DeliveryConfig) -> Vec<DaySettings> {
    let mut out = Vec::new();
    for name in &d.devices {
        match day_settings(db, name).await {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(delivery = %d.name, device = %name, error = %e, "cannot read a device's gas-day settings")
            }
        }
    }
    if out.is_empty() {
        out.push(DaySettings {
            time_zone: jiff::tz::TimeZone::get("Europe/Moscow")
                .unwrap_or_else(|_| jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(3))),
            contract_hour: 10,
        });
    }
    out
}

/// The next gas day of a delivery to become due after `now`, and when.
pub async fn next_due(
    db: &dyn Database,
    delivery: &DeliveryConfig,
    now: Timestamp,
) -> Option<(Date, Timestamp)> {
    let devices = settings_of(db, delivery).await;
    let latest = latest_due_day(&devices, delivery.delay, now)?;
    let next = latest.tomorrow().ok()?;
    Some((next, due_at(&devices, next, delivery.delay)?))
}

/// When gas day `day` has ended for every device of a delivery (before its delay).
pub async fn day_ends(
    db: &dyn Database,
    delivery: &DeliveryConfig,
    day: Date,
) -> Option<Timestamp> {
    let devices = settings_of(db, delivery).await;
    due_at(&devices, day, Duration::ZERO)
}

impl Scheduler {
    /// Check the configuration's addresses and prepare the deliveries.
    pub fn new(
        config: &Config,
        db: Arc<dyn Database>,
        mailer: Arc<dyn Mailer>,
    ) -> Result<Scheduler, DeliveryError> {
        let from = mailbox("smtp.from", &config.smtp.from)?;
        let deliveries = config
            .delivery
            .iter()
            .map(|d| {
                let recipients = d
                    .recipients
                    .iter()
                    .map(|r| mailbox(&format!("delivery {} recipient", d.name), r))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Delivery {
                    config: d.clone(),
                    recipients,
                })
            })
            .collect::<Result<Vec<_>, DeliveryError>>()?;
        Ok(Scheduler {
            db,
            mailer,
            from,
            deliveries,
            policy: config.delivery_policy.clone(),
        })
    }

    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    fn find(&self, name: &str) -> Result<&Delivery, DeliveryError> {
        self.deliveries
            .iter()
            .find(|d| d.config.name == name)
            .ok_or_else(|| DeliveryError::UnknownDelivery {
                name: name.to_owned(),
                known: self
                    .deliveries
                    .iter()
                    .map(|d| d.config.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Record the gas days that are due at `now` (the latest `catch_up_days`
    /// of each delivery) unless they are recorded already.
    pub async fn schedule(&self, now: Timestamp) -> Result<u32, DeliveryError> {
        let mut created = 0;
        for d in &self.deliveries {
            let devices = settings_of(&*self.db, &d.config).await;
            let Some(latest) = latest_due_day(&devices, d.config.delay, now) else {
                continue;
            };
            let mut day = latest;
            for _ in 0..self.policy.catch_up_days {
                if let Some(due) = due_at(&devices, day, d.config.delay)
                    && self.db.ensure_delivery(&d.config.name, day, due).await?
                {
                    created += 1;
                    tracing::info!(delivery = %d.config.name, gas_day = %day, due = %due, "report delivery is due");
                }
                match day.yesterday() {
                    Ok(y) => day = y,
                    Err(_) => break,
                }
            }
        }
        Ok(created)
    }

    /// One check: record what became due, then attempt every delivery whose
    /// (next) attempt is due.
    pub async fn tick(&self, now: Timestamp) -> Result<TickSummary, DeliveryError> {
        let mut summary = TickSummary {
            scheduled: self.schedule(now).await?,
            ..TickSummary::default()
        };
        for record in self.db.due_deliveries(now, BATCH).await? {
            let Ok(delivery) = self.find(&record.name) else {
                tracing::debug!(delivery = %record.name, gas_day = %record.gas_day, "a recorded delivery is no longer configured; left as it is");
                continue;
            };
            let Some(claimed) = self
                .db
                .claim_delivery(&record.name, record.gas_day, now, add(now, LEASE), false)
                .await?
            else {
                continue;
            };
            let (after, _) = self.attempt(delivery, claimed, now).await?;
            match after.state {
                DeliveryState::Sent => summary.sent += 1,
                DeliveryState::Failed => summary.failed += 1,
                _ => summary.retrying += 1,
            }
        }
        Ok(summary)
    }

    /// Send a delivery's report of a gas day now, whatever its state (sent
    /// again if it was sent). A failure is recorded like a scheduled attempt's.
    pub async fn send_now(
        &self,
        name: &str,
        gas_day: Date,
        now: Timestamp,
    ) -> Result<DeliveryRecord, DeliveryError> {
        let delivery = self.find(name)?;
        let claimed = self
            .db
            .claim_delivery(name, gas_day, now, add(now, LEASE), true)
            .await?
            .ok_or_else(|| {
                DeliveryError::Store(telegaz_store::StoreError::NotFound {
                    what: format!("delivery {name} of gas day {gas_day}"),
                })
            })?;
        let (record, error) = self.attempt(delivery, claimed, now).await?;
        match error {
            None => Ok(record),
            Some(error) => Err(DeliveryError::NotSent {
                name: name.to_owned(),
                gas_day,
                error: Box::new(error),
                next: record
                    .next_attempt_at
                    .filter(|_| record.state == DeliveryState::Pending),
            }),
        }
    }

    /// Make and send the report of a claimed delivery; record the outcome.
    async fn attempt(
        &self,
        delivery: &Delivery,
        claimed: DeliveryRecord,
        now: Timestamp,
    ) -> Result<(DeliveryRecord, Option<DeliveryError>), DeliveryError> {
        let name = &delivery.config.name;
        let day = claimed.gas_day;
        let result =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.deliver(delivery, day, now)).await {
                Ok(r) => r,
                Err(_) => Err(DeliveryError::Timeout(ATTEMPT_TIMEOUT)),
            };
        let outcome = match &result {
            Ok(()) => DeliveryOutcome::Sent,
            Err(e) => {
                let index =
                    usize::try_from(claimed.attempts.saturating_sub(1)).unwrap_or(usize::MAX);
                match self.policy.retry.get(index) {
                    Some(wait) => DeliveryOutcome::Retry {
                        error: e.to_string(),
                        at: add(now, *wait),
                    },
                    None => DeliveryOutcome::Failed {
                        error: e.to_string(),
                    },
                }
            }
        };
        let record = self.db.finish_delivery(name, day, now, &outcome).await?;
        let recipients = delivery.config.recipients.join(", ");
        match &outcome {
            DeliveryOutcome::Sent => {
                metrics::counter!("telegaz_deliveries_total", "outcome" => "sent").increment(1);
                tracing::info!(delivery = %name, gas_day = %day, attempt = record.attempts, recipients = %recipients, "report delivery sent");
            }
            DeliveryOutcome::Retry { error, at } => {
                metrics::counter!("telegaz_deliveries_total", "outcome" => "retry").increment(1);
                tracing::warn!(delivery = %name, gas_day = %day, attempt = record.attempts, next_attempt = %at, error = %error, "report delivery failed; it will be retried");
            }
            DeliveryOutcome::Failed { error } => {
                metrics::counter!("telegaz_deliveries_total", "outcome" => "failed").increment(1);
                tracing::error!(delivery = %name, gas_day = %day, attempts = record.attempts, error = %error, "report delivery failed for good; send it with `telegaz deliveries send {name} --gas-day {day}` once the cause is fixed");
            }
        }
        Ok((record, result.err()))
    }

    /// Load, build, render and send one report.
    async fn deliver(
        &self,
        delivery: &Delivery,
        day: Date,
        now: Timestamp,
    ) -> Result<(), DeliveryError> {
        let email = self.compose(delivery, day, now).await?;
        self.mailer.send(&email).await?;
        Ok(())
    }

    /// The e-mail of a delivery's report of a gas day.
    pub async fn compose(
        &self,
        delivery: &Delivery,
        day: Date,
        now: Timestamp,
    ) -> Result<Email, DeliveryError> {
        let config = delivery.config.clone();
        let data = load_report_data(&*self.db, &config.devices, day, day).await?;
        let (filename, content_type) = attachment_name(&config, day);
        let name = filename.clone();
        let built = tokio::task::spawn_blocking(move || {
            let rows = match config.rows {
                ReportRows::Daily => Rows::Daily,
                ReportRows::Hourly => Rows::Hourly,
            };
            let report = telegaz_reports::build(&data, &Period::GasDay(day), rows, now).map_err(
                |e| match e {
                    ReportError::NoData { .. } => DeliveryError::NoData(e.to_string()),
                    other => DeliveryError::Report(other),
                },
            )?;
            let bytes = match config.format {
                DeliveryFormat::Xlsx => telegaz_reports::render::xlsx(&report)?,
                DeliveryFormat::Csv1251 => telegaz_reports::render::csv_1251(&report),
            };
            Ok::<_, DeliveryError>((body(&config, day, &report, &name), bytes))
        })
        .await
        .map_err(|e| DeliveryError::Internal(format!("the report task ended: {e}")))??;
        let (text, bytes) = built;
        Ok(Email {
            from: self.from.clone(),
            to: delivery.recipients.clone(),
            subject: subject(&delivery.config, day),
            body: text,
            attachment: Attachment {
                filename,
                content_type: content_type.to_owned(),
                bytes,
            },
        })
    }

    /// Check every `check_every` until `stop` turns true. Runs beside ingest and
    /// never holds it up: its own task, reports built on the blocking pool.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(
            deliveries = self.deliveries.len(),
            check_every = ?self.policy.check_every,
            "delivery scheduler started"
        );
        for d in &self.deliveries {
            for device in &d.config.devices {
                if matches!(self.db.device_by_name(device).await, Ok(None)) {
                    tracing::warn!(delivery = %d.config.name, device = %device, "delivery names a device that does not exist; add it (telegaz device add) or fix delivery.devices");
                }
            }
        }
        loop {
            if *stop.borrow() {
                break;
            }
            let tick = self.tick(Timestamp::now());
            tokio::pin!(tick);
            let result = tokio::select! {
                r = &mut tick => Some(r),
                _ = stop.changed() => None,
            };
            let result = match result {
                Some(r) => r,
                None => {
                    // Let an attempt under way finish; one cut short is taken up after a restart.
                    if let Ok(r) = tokio::time::timeout(SHUTDOWN_GRACE, tick).await {
                        log_tick(r);
                    }
                    break;
                }
            };
            log_tick(result);
            tokio::select! {
                _ = tokio::time::sleep(self.policy.check_every) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("delivery scheduler stopped");
    }
}

fn log_tick(result: Result<TickSummary, DeliveryError>) {
    match result {
        Ok(s) => {
            tracing::debug!(
                scheduled = s.scheduled,
                sent = s.sent,
                retrying = s.retrying,
                failed = s.failed,
                "delivery check done"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "delivery check failed; it is tried again at the next check")
        }
    }
}

impl From<LoadError> for DeliveryError {
    fn from(e: LoadError) -> Self {
        DeliveryError::Load(e)
    }
}

impl From<MailError> for DeliveryError {
    fn from(e: MailError) -> Self {
        DeliveryError::Mail(e)
    }
}
