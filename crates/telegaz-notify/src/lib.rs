//! Notifiers: how an alert's [`Notification`] leaves the server.
//!
//! Every notifier implements [`Notifier`]; [`build`] makes one from its
//! [`NotifierConfig`] (a `type = "webhook" | "telegram" | "mqtt" | "email"`
//! table with a `name`). A failed [`Notifier::send`] returns a
//! [`NotifyError`] whose [`retryable`](NotifyError::retryable) says whether
//! sending the same notification again later can help. Delivery is at least
//! once: a receiver de-duplicates on the notification's `id`, which stays the
//! same across retries and restarts.
//!
//! # The JSON of a notification
//!
//! The webhook body and the MQTT payloads are the same JSON object (see
//! [`payload`]): the fields of [`Notification`] plus `"source": "telegaz"`.
//!
//! ```json
//! {
//!   "source": "telegaz",
//!   "id": 42,
//!   "event": "opened",
//!   "alert_id": 7,
//!   "kind": "silent",
//!   "severity": "warning",
//!   "device": "kotelnaya-1",
//!   "title": "kotelnaya-1: нет связи",
//!   "text": "Последняя передача 15.01.2026 в 06:00 …",
//!   "at": "2026-01-15T09:00:00Z",
//!   "devices": []
//! }
//! ```
//!
//! - `event`: `opened` (the condition began), `resolved` (it is over) or
//!   `digest` (many alerts opened at once, told in one message).
//! - `alert_id`: `null` for a digest. `device`: `null` when the alert is not
//!   about one unit (server health, a digest). `devices`: the units of a
//!   digest, empty otherwise.
//! - `kind`: `silent`, `missing_hours`, `limit`, `corrector_event`,
//!   `upload_problem`, `server_health`. `severity`: `info`, `warning`,
//!   `critical`.
//! - `at`: RFC 3339, UTC: when the condition began (ended, for `resolved`).
//! - New fields may be added; existing ones keep their name and meaning.
//!
//! # Webhook (`type = "webhook"`)
//!
//! `POST {url}` with the JSON above (`Content-Type: application/json`), the
//! configured extra `headers` (e.g. `Authorization`) and
//! `X-Telegaz-Notification-Id: {id}`. Any 2xx answer means sent. 408, 429 and
//! 5xx, a timeout or no connection: tried again later (a `Retry-After` in
//! seconds is passed on). Any other answer, redirects included: not tried
//! again, the configuration must be fixed. Error messages show only the
//! scheme, host and port of the URL (a webhook URL may hold a token).
//!
//! # Telegram (`type = "telegram"`)
//!
//! Bot API `sendMessage` (`POST {base_url}/bot{token}/sendMessage`, JSON)
//! to `chat_id` with `parse_mode = "HTML"`: the title in bold, an empty line,
//! the text (HTML-escaped; cut to Telegram's 4096 characters). Telegram's
//! `ok: false` answers are reported with their `description`; 429 (with its
//! `retry_after`) and 5xx are tried again. The token is never shown: the URL
//! in messages is `{base_url}/bot<token>/sendMessage`.
//!
//! # MQTT (`type = "mqtt"`)
//!
//! One connection (MQTT 3.1.1, plain TCP) kept open by a background task
//! that reconnects by itself. For each notification, with QoS 1 (sent once
//! the broker acknowledges it):
//!
//! - `{prefix}/alerts`, not retained: the JSON above;
//! - `{prefix}/devices/{device}/alert`, **retained**, when the notification
//!   is about one unit: the same JSON, so a new subscriber sees the latest
//!   alert of each unit (`"event": "resolved"` once it is over).
//!
//! [`MqttNotifier::publish_state`] writes `{prefix}/devices/{device}/state`
//! (retained) for the latest state of a unit. `prefix` is `telegaz` unless
//! configured; in `{device}`, the characters `/`, `+`, `#` (and control
//! characters) become `_`. A broker that cannot be reached is a retryable
//! error: at once when the last connection attempt failed, else after
//! `timeout`. The default client id is `telegaz-{name}-{pid}-{n}` (the broker
//! drops a connection whose id another one takes).
//!
//! # E-mail (`type = "email"`)
//!
//! Through the server's mail server (`[smtp]`, a
//! [`telegaz_delivery::Mailer`]): subject = title, plain-text body = text,
//! to the configured `recipients`; the JSON above is attached as
//! `telegaz-notification-{id}.json` for mail robots.

mod config;
mod email;
mod error;
mod http;
mod mqtt;
mod telegram;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use telegaz_delivery::Mailer;
use telegaz_domain::Notification;

pub use config::{ChatId, EmailConfig, MqttConfig, NotifierConfig, TelegramConfig, WebhookConfig};
pub use email::EmailNotifier;
pub use error::NotifyError;
pub use mqtt::MqttNotifier;
pub use telegram::TelegramNotifier;
pub use webhook::WebhookNotifier;

/// The value of `source` in the JSON of a notification.
pub const SOURCE: &str = "telegaz";

/// Sends notifications somewhere.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// The notifier's name from the configuration, for logs and errors.
    fn name(&self) -> &str;

    /// Sends one notification. Never waits longer than the notifier's timeout.
    async fn send(&self, n: &Notification) -> Result<(), NotifyError>;
}

/// The JSON object of a notification (the webhook body, the MQTT payload).
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// Always [`SOURCE`].
    pub source: &'static str,
    #[serde(flatten)]
    pub notification: &'a Notification,
}

/// The JSON object of a notification: its fields plus `"source": "telegaz"`.
pub fn payload(n: &Notification) -> Payload<'_> {
    Payload {
        source: SOURCE,
        notification: n,
    }
}

fn payload_bytes(notifier: &str, n: &Notification) -> Result<Vec<u8>, NotifyError> {
    serde_json::to_vec(&payload(n)).map_err(|e| NotifyError::Internal {
        notifier: notifier.to_owned(),
        message: format!("cannot encode notification {} as JSON: {e}", n.id),
    })
}

/// Makes the notifier of `config`, checking it. E-mail needs `mailer` (the
/// server's `[smtp]`); MQTT must be built inside a Tokio runtime (it starts
/// its connection task).
pub fn build(
    config: &NotifierConfig,
    mailer: Option<Arc<dyn Mailer>>,
) -> Result<Box<dyn Notifier>, NotifyError> {
    Ok(match config {
        NotifierConfig::Webhook(c) => Box::new(WebhookNotifier::new(c)?),
        NotifierConfig::Telegram(c) => Box::new(TelegramNotifier::new(c)?),
        NotifierConfig::Mqtt(c) => Box::new(MqttNotifier::new(c)?),
        NotifierConfig::Email(c) => {
            let Some(mailer) = mailer else {
                return Err(NotifyError::Config {
                    notifier: c.name.clone(),
                    message: "an e-mail notifier needs a mail server: set smtp.host and smtp.from"
                        .into(),
                });
            };
            Box::new(EmailNotifier::new(c, mailer)?)
        }
    })
}
