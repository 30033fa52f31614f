//! Alert evaluation and notification dispatch inside `serve`.

use std::sync::Arc;

use anyhow::Context;
use telegaz_alerts::{
    AlertSettings, Bounds, Dispatcher, Engine, LimitRule, Maintenance, Sender, ServerHealth,
    SystemClock,
};
use telegaz_config::Config;
use telegaz_store::Database;
use tokio::task::JoinHandle;

fn bounds(b: telegaz_config::Bounds) -> Bounds {
    Bounds {
        min: b.min,
        max: b.max,
    }
}

/// Start the alert engine (and the dispatcher, when notifiers are set up),
/// each on its own task: a slow notifier never holds up anything else.
pub fn start(
    config: &Config,
    db: &Arc<dyn Database>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    if !config.alerts.enabled {
        tracing::info!("alerts are off (alerts.enabled = false)");
        return Ok(Vec::new());
    }
    let built = crate::notifiers::build(config)?;
    let senders: Vec<Arc<dyn Sender>> = built.senders;
    let a = &config.alerts;
    let settings = AlertSettings {
        evaluate_every: a.evaluate_every,
        silent_grace: a.silent_grace,
        silent_default_interval: a.silent_default_interval,
        digest_threshold: a.digest_threshold,
        notifiers: senders.iter().map(|s| s.name().to_owned()).collect(),
        limits: a
            .limit
            .iter()
            .map(|l| LimitRule {
                devices: l.devices.clone(),
                p_kpa: bounds(l.p_kpa),
                t_c: bounds(l.t_c),
                hourly_m3: bounds(l.hourly_m3),
            })
            .collect(),
        maintenance: a
            .maintenance
            .iter()
            .map(|m| {
                let at = |what: &str, text: &str| {
                    text.parse::<jiff::Timestamp>().with_context(|| {
                        format!(
                            "alerts.maintenance: {what} = {text:?} is not an instant; write e.g. 2026-11-25T08:00:00+03:00"
                        )
                    })
                };
                Ok(Maintenance {
                    devices: m.devices.clone(),
                    from: at("from", &m.from)?,
                    to: at("to", &m.to)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        missing_hours: a.missing_hours,
        schedules: a
            .schedule
            .iter()
            .map(|s| (s.devices.clone(), s.interval))
            .collect(),
        event_codes: a
            .event
            .iter()
            .map(|e| {
                let digits = e.code.trim().trim_start_matches("0x").trim_start_matches("0X");
                let code = u16::from_str_radix(digits, 16).with_context(|| {
                    format!("alerts.event: code {:?} is not a hexadecimal event code like \"0x2103\"", e.code)
                })?;
                let severity = e
                    .severity
                    .parse::<telegaz_domain::Severity>()
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("alerts.event {}", e.code))?;
                Ok((code, (e.name.clone(), severity)))
            })
            .collect::<anyhow::Result<_>>()?,
        flap_window: a.flap_window,
        server: ServerHealth {
            spool_dir: Some(config.spool_dir()),
            min_free_bytes: a.min_free_disk,
            max_ingest_delay: a.max_ingest_delay,
        },
    };
    let clock = Arc::new(SystemClock);
    let engine = Engine::new(db.clone(), clock.clone(), settings)
        .with_publishers(built.publishers)
        .with_emergency(senders.clone());
    let mut tasks = vec![tokio::spawn(engine.run(stop.clone()))];
    if senders.is_empty() {
        tracing::info!(
            "no [[notifier]] configured: alerts are shown in the web UI and the API only"
        );
    } else {
        let mut dispatcher = Dispatcher::new(db.clone(), clock, senders);
        dispatcher.first_retry =
            jiff::SignedDuration::try_from(a.notify_retry).unwrap_or(dispatcher.first_retry);
        dispatcher.poll = dispatcher.poll.min(a.notify_retry);
        dispatcher.max_per_minute = a.max_per_minute.max(1);
        tasks.push(tokio::spawn(dispatcher.run(stop.clone())));
    }
    Ok(tasks)
}
