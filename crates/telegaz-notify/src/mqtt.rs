//! Publishing to an MQTT broker: one connection, kept by a background task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing,
    Packet, QoS,
};
use telegaz_config::Secret;
use telegaz_domain::Notification;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use crate::config::MqttConfig;
use crate::error::{error_chain, redact};
use crate::{Notifier, NotifyError, payload_bytes};

/// Connections made by this process (for unique client ids).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// The largest message published (an alert's JSON is a few KiB).
const MAX_PACKET: usize = 256 * 1024;
/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the connection stands.
#[derive(Debug, Clone)]
enum Link {
    /// Not connected yet (the first attempt is under way).
    Connecting,
    Up,
    /// The last attempt failed; the task tries again.
    Down {
        error: String,
        retryable: bool,
    },
}

/// What the event loop saw of the publications.
#[derive(Debug)]
enum Ack {
    /// A publication was written with this packet id.
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// The connection was lost.
    Lost(String),
}

/// Publishes notifications (see the crate's documentation for the topics).
pub struct MqttNotifier {
    name: String,
    /// `host:port`.
    broker: String,
    prefix: String,
    password: Option<Secret>,
    timeout: Duration,
    client: AsyncClient,
    link: watch::Receiver<Link>,
    /// One publication at a time, so that its acknowledgement is recognised.
    acks: Mutex<mpsc::UnboundedReceiver<Ack>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MqttNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttNotifier")
            .field("name", &self.name)
            .field("broker", &self.broker)
            .field("prefix", &self.prefix)
            .field("password", &self.password)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for MqttNotifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `device` as one topic level: `/`, `+`, `#` and control characters become `_`.
pub fn topic_level(device: &str) -> String {
    let level: String = device
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '/' | '+' | '#') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if level.is_empty() { "_".into() } else { level }
}

impl MqttNotifier {
    /// Checks the configuration and starts the connection task (inside a Tokio runtime).
    pub fn new(config: &MqttConfig) -> Result<MqttNotifier, NotifyError> {
        let name = config.name.trim();
        let err = |message: String| NotifyError::Config {
            notifier: name.to_owned(),
            message,
        };
        if name.is_empty() {
            return Err(err("an mqtt notifier needs a name".into()));
        }
        let host = config.host.trim();
        if host.is_empty() || host.contains(['/', ' ']) {
            return Err(err(format!(
                "host {host:?} is not a host name or address (no scheme, no port: set port separately)"
            )));
        }
        if config.port == 0 {
            return Err(err(
                "port must not be 0 (the usual MQTT port is 1883)".into()
            ));
        }
        let prefix = config.topic_prefix.trim().trim_end_matches('/');
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.contains(char::is_control) {
            return Err(err(format!(
                "topic_prefix {:?} is not a topic (not empty, without + and #)",
                config.topic_prefix
            )));
        }
        if config.timeout.is_zero() {
            return Err(err("timeout must be more than zero (e.g. \"10s\")".into()));
        }
        if !config.keep_alive.is_zero() && config.keep_alive < Duration::from_secs(1) {
            return Err(err("keep_alive must be at least 1s (or 0s: none)".into()));
        }
        if config.password.is_some() && config.username.is_none() {
            return Err(err("password is set but username is not".into()));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            err("the mqtt notifier must be made inside the server's Tokio runtime".into())
        })?;
        let client_id = match &config.client_id {
            Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
            // Unique per notifier: the broker drops a connection when another takes its id.
            _ => format!(
                "telegaz-{name}-{}-{}",
                std::process::id(),
                CONNECTIONS.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let mut options = MqttOptions::new(client_id, host, config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(user) = &config.username {
            let password = config.password.as_ref().map(Secret::expose).unwrap_or("");
            options.set_credentials(user.clone(), password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        eventloop
            .network_options
            .set_connection_timeout(config.timeout.as_secs().max(1));
        let broker = format!("{host}:{}", config.port);
        let (link_tx, link) = watch::channel(Link::Connecting);
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let secrets: Vec<String> = config
            .password
            .iter()
            .map(|p| p.expose().to_owned())
            .collect();
        let task = runtime.spawn(drive(
            eventloop,
            link_tx,
            ack_tx,
            name.to_owned(),
            broker.clone(),
            secrets,
        ));
        Ok(MqttNotifier {
            name: name.to_owned(),
            broker,
            prefix: prefix.to_owned(),
            password: config.password.clone(),
            timeout: config.timeout,
            client,
            link,
            acks: Mutex::new(acks),
            task,
        })
    }

    /// `{prefix}/alerts`.
    pub fn alerts_topic(&self) -> String {
        format!("{}/alerts", self.prefix)
    }

    /// `{prefix}/devices/{device}/alert`.
    pub fn device_alert_topic(&self, device: &str) -> String {
        format!("{}/devices/{}/alert", self.prefix, topic_level(device))
    }

    /// `{prefix}/devices/{device}/state`.
    pub fn device_state_topic(&self, device: &str) -> String {
        format!("{}/devices/{}/state", self.prefix, topic_level(device))
    }

    /// Whether the connection to the broker is up now.
    pub fn is_connected(&self) -> bool {
        matches!(*self.link.borrow(), Link::Up)
    }

    /// Publishes the latest state of a unit to `{prefix}/devices/{device}/state`
    /// (retained, QoS 1).
    pub async fn publish_state(
        &self,
        device: &str,
        state: &serde_json::Value,
    ) -> Result<(), NotifyError> {
        let payload = serde_json::to_vec(state).map_err(|e| NotifyError::Internal {
            notifier: self.name.clone(),
            message: format!("cannot encode the state of {device} as JSON: {e}"),
        })?;
        let deadline = Instant::now() + self.timeout;
        self.publish(self.device_state_topic(device), payload, true, deadline)
            .await
    }

    fn unreachable(&self, error: String, hint: &str) -> NotifyError {
        NotifyError::Unreachable {
            notifier: self.name.clone(),
            target: format!("MQTT broker {}", self.broker),
            error,
            hint: hint.to_owned(),
        }
    }

    fn timed_out(&self) -> NotifyError {
        NotifyError::Timeout {
            notifier: self.name.clone(),
            target: format!("MQTT broker {}", self.broker),
            after: self.timeout,
        }
    }

    /// Waits (until `deadline`) for the connection; fails at once when the last attempt failed.
    async fn wait_up(&self, deadline: Instant) -> Result<(), NotifyError> {
        let mut link = self.link.clone();
        let state = timeout_at(deadline, link.wait_for(|l| !matches!(l, Link::Connecting))).await;
        let state = match state {
            Err(_) => return Err(self.timed_out()),
            Ok(Err(_)) => {
                return Err(
                    self.unreachable("the connection task has ended".into(), "restart the server")
                );
            }
            Ok(Ok(state)) => state.clone(),
        };
        match state {
            Link::Up | Link::Connecting => Ok(()),
            Link::Down {
                error,
                retryable: true,
            } => Err(self.unreachable(
                error,
                "check host and port, and that the broker is up; it will be tried again",
            )),
            Link::Down {
                error,
                retryable: false,
            } => Err(NotifyError::Rejected {
                notifier: self.name.clone(),
                target: format!("MQTT broker {}", self.broker),
                status: 0,
                detail: error,
                hint: "check username, password and client_id, and the broker's access rules"
                    .into(),
                retryable: false,
                retry_after: None,
            }),
        }
    }

    /// Publishes with QoS 1 and waits for the broker's acknowledgement.
    async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        deadline: Instant,
    ) -> Result<(), NotifyError> {
        let mut acks = timeout_at(deadline, self.acks.lock())
            .await
            .map_err(|_| self.timed_out())?;
        self.wait_up(deadline).await?;
        while acks.try_recv().is_ok() {}
        self.client
            .try_publish(topic.as_str(), QoS::AtLeastOnce, retain, payload)
            .map_err(|_| {
                self.unreachable(
                    "the connection task does not take publications".into(),
                    "the broker is too slow or the connection is stuck; it will be tried again",
                )
            })?;
        let mut pkid = None;
        loop {
            match timeout_at(deadline, acks.recv()).await {
                Err(_) => return Err(self.timed_out()),
                Ok(None) => {
                    return Err(self.unreachable(
                        "the connection task has ended".into(),
                        "restart the server",
                    ));
                }
                Ok(Some(Ack::Sent(id))) if pkid.is_none() => pkid = Some(id),
                Ok(Some(Ack::Acked(id))) if pkid == Some(id) => {
                    tracing::debug!(notifier = %self.name, %topic, retain, "mqtt: published");
                    return Ok(());
                }
                Ok(Some(Ack::Lost(error))) => {
                    return Err(self.unreachable(
                        error,
                        "the connection to the broker was lost; it will be tried again",
                    ));
                }
                Ok(Some(_)) => {}
            }
        }
    }
}

#[async_trait]
impl Notifier for MqttNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let payload = payload_bytes(&self.name, n)?;
        let deadline = Instant::now() + self.timeout;
        self.publish(self.alerts_topic(), payload.clone(), false, deadline)
            .await?;
        if let Some(device) = &n.device {
            self.publish(self.device_alert_topic(device), payload, true, deadline)
                .await?;
        }
        tracing::debug!(notifier = %self.name, notification = n.id, "mqtt: sent");
        Ok(())
    }
}

/// Drives the connection: reads its events, reconnects after a failure.
async fn drive(
    mut eventloop: EventLoop,
    link: watch::Sender<Link>,
    acks: mpsc::UnboundedSender<Ack>,
    name: String,
    broker: String,
    secrets: Vec<String>,
) {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut backoff = Duration::from_millis(500);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code == ConnectReturnCode::Success {
                    tracing::info!(notifier = %name, %broker, "mqtt: connected");
                    link.send_replace(Link::Up);
                    backoff = Duration::from_millis(500);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let _ = acks.send(Ack::Acked(ack.pkid));
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let _ = acks.send(Ack::Sent(pkid));
            }
            Ok(_) => {}
            Err(e) => {
                let retryable = !matches!(
                    e,
                    ConnectionError::ConnectionRefused(
                        ConnectReturnCode::BadUserNamePassword
                            | ConnectReturnCode::NotAuthorized
                            | ConnectReturnCode::BadClientId
                            | ConnectReturnCode::RefusedProtocolVersion
                    )
                );
                let error = redact(&error_chain(&e), &secrets);
                let was = link.send_replace(Link::Down {
                    error: error.clone(),
                    retryable,
                });
                let _ = acks.send(Ack::Lost(error.clone()));
                match was {
                    Link::Down { error: before, .. } if before == error => {
                        tracing::debug!(notifier = %name, %broker, %error, "mqtt: still not connected")
                    }
                    _ => tracing::warn!(
                        notifier = %name,
                        %broker,
                        %error,
                        "mqtt: no connection to the broker; trying again"
                    ),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
