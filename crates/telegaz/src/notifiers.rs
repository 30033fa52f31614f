//! The `[[notifier]]` tables of the configuration, as senders of alert
//! notifications.

use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use telegaz_alerts::{DeviceState, SendError, Sender, StatePublisher};
use telegaz_config::Config;
use telegaz_domain::Notification;
use telegaz_notify::{Notifier, NotifierConfig};

/// A notifier of `telegaz-notify` as the dispatcher's sender.
struct Adapter(Box<dyn Notifier>);

#[async_trait]
impl Sender for Adapter {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.0.send(n).await.map_err(|e| SendError {
            retryable: e.retryable(),
            message: e.to_string(),
        })
    }
}

/// An MQTT notifier also publishes every unit's latest state (retained).
struct MqttBoth(Arc<telegaz_notify::MqttNotifier>);

#[async_trait]
impl Sender for MqttBoth {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        self.0.send(n).await.map_err(|e| SendError {
            retryable: e.retryable(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl StatePublisher for MqttBoth {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn publish(&self, state: &DeviceState) -> Result<(), SendError> {
        let json = serde_json::to_value(state).map_err(|e| SendError {
            retryable: false,
            message: format!("cannot encode the state of {}: {e}", state.device),
        })?;
        self.0
            .publish_state(&state.device, &json)
            .await
            .map_err(|e| SendError {
                retryable: e.retryable(),
                message: e.to_string(),
            })
    }
}

/// The configured notifiers, and those of them that publish units' states.
pub struct Built {
    pub senders: Vec<Arc<dyn Sender>>,
    pub publishers: Vec<Arc<dyn StatePublisher>>,
}

/// Build every configured notifier; a bad table stops the start with a
/// message that names it.
pub fn build(config: &Config) -> anyhow::Result<Built> {
    let mut out: Vec<Arc<dyn Sender>> = Vec::new();
    let mut publishers: Vec<Arc<dyn StatePublisher>> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut mailer: Option<Arc<dyn telegaz_delivery::Mailer>> = None;
    for (i, raw) in config.notifier.iter().enumerate() {
        let mut parsed: NotifierConfig = raw
            .0
            .clone()
            .try_into()
            .with_context(|| format!("[[notifier]] number {} ({raw:?})", i + 1))?;
        if !names.insert(parsed.name().to_owned()) {
            anyhow::bail!(
                "two [[notifier]] tables are named {:?}; give each its own name",
                parsed.name()
            );
        }
        if let NotifierConfig::Email(e) = &mut parsed {
            if e.from.is_none() {
                e.from = Some(config.smtp.from.clone());
            }
            if mailer.is_none() {
                let m = telegaz_delivery::SmtpMailer::new(&config.smtp)
                    .context("an e-mail [[notifier]] needs the mail server settings ([smtp])")?;
                mailer = Some(Arc::new(m));
            }
        }
        if let NotifierConfig::Mqtt(m) = &parsed {
            let both = Arc::new(MqttBoth(Arc::new(telegaz_notify::MqttNotifier::new(m)?)));
            tracing::info!(notifier = %m.name, "alert notifier ready (and units' states)");
            out.push(both.clone());
            publishers.push(both);
            continue;
        }
        let notifier = telegaz_notify::build(&parsed, mailer.clone())?;
        tracing::info!(notifier = notifier.name(), "alert notifier ready");
        out.push(Arc::new(Adapter(notifier)));
    }
    Ok(Built {
        senders: out,
        publishers,
    })
}
