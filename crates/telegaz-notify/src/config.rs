//! The configuration of the notifiers: one table per notifier, tagged by `type`.
//!
//! ```toml
//! [[alerts.notifiers]]
//! type = "webhook"
//! name = "dispatch"
//! url = "https://dispatch.example.ru/telegaz"
//! headers = { Authorization = "Bearer s3cret" }
//! timeout = "10s"
//!
//! [[alerts.notifiers]]
//! type = "telegram"
//! name = "duty-chat"
//! token = "123456:ABC…"          # better: from the environment
//! chat_id = -1001234567890        # or "@channel"
//!
//! [[alerts.notifiers]]
//! type = "mqtt"
//! name = "scada"
//! host = "127.0.0.1"
//! port = 1883
//! topic_prefix = "telegaz"
//!
//! [[alerts.notifiers]]
//! type = "email"
//! name = "engineers"
//! recipients = ["dispatch@example.ru"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use telegaz_config::Secret;

/// One notifier, as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum NotifierConfig {
    Webhook(WebhookConfig),
    Telegram(TelegramConfig),
    Mqtt(MqttConfig),
    Email(EmailConfig),
}

impl NotifierConfig {
    /// The notifier's name.
    pub fn name(&self) -> &str {
        match self {
            NotifierConfig::Webhook(c) => &c.name,
            NotifierConfig::Telegram(c) => &c.name,
            NotifierConfig::Mqtt(c) => &c.name,
            NotifierConfig::Email(c) => &c.name,
        }
    }

    /// `webhook`, `telegram`, `mqtt` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::Webhook(_) => "webhook",
            NotifierConfig::Telegram(_) => "telegram",
            NotifierConfig::Mqtt(_) => "mqtt",
            NotifierConfig::Email(_) => "email",
        }
    }
}

const fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `POST` of the notification's JSON to a URL.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `http://` or `https://`. Only its scheme, host and port are ever shown.
    pub url: String,
    /// Extra request headers (e.g. `Authorization`); their values are secret.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// For the whole request, connecting included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &crate::http::display_url(&self.url))
            .field("headers", &self.headers)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A chat for the Telegram bot: its numeric id or `@channelusername`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

impl fmt::Display for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatId::Id(id) => write!(f, "{id}"),
            ChatId::Name(name) => f.write_str(name),
        }
    }
}

/// A message from a Telegram bot to a chat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub name: String,
    /// The bot's token from @BotFather. Secret.
    pub token: Secret,
    pub chat_id: ChatId,
    /// The Bot API server (a local Bot API server, or a test's).
    #[serde(default = "TelegramConfig::default_base_url")]
    pub base_url: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl TelegramConfig {
    pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org";
    fn default_base_url() -> String {
        Self::DEFAULT_BASE_URL.into()
    }
}

/// Publishing to an MQTT broker (MQTT 3.1.1 over plain TCP).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub name: String,
    /// The broker's host name or address.
    pub host: String,
    #[serde(default = "MqttConfig::default_port")]
    pub port: u16,
    pub username: Option<String>,
    /// Password for `username`. Secret.
    pub password: Option<Secret>,
    /// Topics are `{topic_prefix}/alerts` and `{topic_prefix}/devices/…`.
    #[serde(default = "MqttConfig::default_prefix")]
    pub topic_prefix: String,
    /// Default: `telegaz-{name}-{process id}-{n}`. Must be unique on the broker:
    /// it drops a connection when another one takes its id.
    pub client_id: Option<String>,
    #[serde(default = "MqttConfig::default_keep_alive", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// How long a publication may wait for the connection and the broker's acknowledgement.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl MqttConfig {
    pub const DEFAULT_PORT: u16 = 1883;
    pub const DEFAULT_PREFIX: &str = "telegaz";
    fn default_port() -> u16 {
        Self::DEFAULT_PORT
    }
    fn default_prefix() -> String {
        Self::DEFAULT_PREFIX.into()
    }
    fn default_keep_alive() -> Duration {
        Duration::from_secs(30)
    }
}

/// An e-mail through the server's `[smtp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub name: String,
    /// `a@example.ru` or `Иванов <ivanov@example.ru>`.
    pub recipients: Vec<String>,
    /// The sender; the server sets `smtp.from` here when it is not given.
    pub from: Option<String>,
}
