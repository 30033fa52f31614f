//! Alerts: conditions a dispatcher must hear about (a silent unit, a corrector
//! alarm, files that were not understood), their lifecycle, and the
//! notifications sent about them.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{DeviceId, Timestamp};

/// What kind of condition an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// No upload for longer than the unit's schedule plus a grace period.
    Silent,
    /// Hours missing in the unit's archive.
    MissingHours,
    /// A value outside the limits set for the unit.
    Limit,
    /// An alarm, warning, tamper, battery or clock event of the corrector.
    CorrectorEvent,
    /// Uploads quarantined or cut short.
    UploadProblem,
    /// The server itself: disk space, ingest backlog, database errors.
    ServerHealth,
}

impl AlertKind {
    pub const ALL: [AlertKind; 6] = [
        AlertKind::Silent,
        AlertKind::MissingHours,
        AlertKind::Limit,
        AlertKind::CorrectorEvent,
        AlertKind::UploadProblem,
        AlertKind::ServerHealth,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Silent => "silent",
            AlertKind::MissingHours => "missing_hours",
            AlertKind::Limit => "limit",
            AlertKind::CorrectorEvent => "corrector_event",
            AlertKind::UploadProblem => "upload_problem",
            AlertKind::ServerHealth => "server_health",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown alert kind {s:?}"))
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity {other:?}")),
        }
    }
}

/// What a notification says about its alert (or alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationEvent {
    /// The condition began.
    Opened,
    /// The condition is over (a recovery notice).
    Resolved,
    /// Many alerts opened at once, told in one message.
    Digest,
}

impl NotificationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Opened => "opened",
            NotificationEvent::Resolved => "resolved",
            NotificationEvent::Digest => "digest",
        }
    }
}

impl FromStr for NotificationEvent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "opened" => Ok(NotificationEvent::Opened),
            "resolved" => Ok(NotificationEvent::Resolved),
            "digest" => Ok(NotificationEvent::Digest),
            other => Err(format!("unknown notification event {other:?}")),
        }
    }
}

/// One message to send through every notifier, as the notifiers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Identity of the notification, stable across retries and restarts:
    /// receivers can de-duplicate on it.
    pub id: i64,
    pub event: NotificationEvent,
    /// The alert it is about (none for a digest).
    pub alert_id: Option<i64>,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The unit's name, when the alert is about one.
    pub device: Option<String>,
    /// A one-line subject, in Russian.
    pub title: String,
    /// The full text for a person, in Russian.
    pub text: String,
    /// When the condition began (or ended, for a recovery notice).
    pub at: Timestamp,
    /// For a digest: the units it covers.
    pub devices: Vec<String>,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition holds; the notifications are on their way.
    Open,
    /// Someone took it on (in the UI or the API).
    Acknowledged,
    /// The condition is over.
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }
}

impl FromStr for AlertState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(AlertState::Open),
            "acknowledged" => Ok(AlertState::Acknowledged),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(format!("unknown alert state {other:?}")),
        }
    }
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    /// What makes two conditions the same alert (e.g. `silent:12`): while an
    /// alert with a key is not resolved, the same condition opens no other.
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub device_id: Option<DeviceId>,
    pub device: Option<String>,
    pub title: String,
    pub detail: String,
    pub state: AlertState,
    pub opened_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        for e in [
            NotificationEvent::Opened,
            NotificationEvent::Resolved,
            NotificationEvent::Digest,
        ] {
            assert_eq!(e.as_str().parse::<NotificationEvent>(), Ok(e));
        }
        for s in [
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ] {
            assert_eq!(s.as_str().parse::<AlertState>(), Ok(s));
        }
        assert!("boom".parse::<AlertKind>().is_err());
    }
}
