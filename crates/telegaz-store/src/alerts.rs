//! What the store keeps about alerts and their notifications.

use telegaz_domain::{AlertKind, AlertState, DeviceId, NotificationEvent, Severity, Timestamp};

/// How long a notification taken by `due_notifications` is kept from other
/// dispatchers while it is being sent. Its outcome (`finish_notification`)
/// ends the lease; a dispatcher that died while sending leaves it due again
/// when the lease runs out (notifications are sent at least once).
pub const NOTIFICATION_LEASE: jiff::SignedDuration = jiff::SignedDuration::from_mins(15);

/// An alert to open.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub key: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub device_id: Option<DeviceId>,
    pub title: String,
    pub detail: String,
    pub opened_at: Timestamp,
}

/// A notification to queue for every notifier named.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub event: NotificationEvent,
    pub kind: AlertKind,
    pub severity: Severity,
    pub device: Option<String>,
    pub title: String,
    pub text: String,
    pub at: Timestamp,
    pub devices: Vec<String>,
    /// The notifiers that must send it (none: it is only recorded).
    pub notifiers: Vec<String>,
}

/// Which alerts to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only alerts that are not resolved.
    pub active: bool,
    pub state: Option<AlertState>,
    pub device_id: Option<DeviceId>,
    pub kind: Option<AlertKind>,
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

/// How an attempt to send a notification through a notifier ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Try again at `at`.
    Retry {
        error: String,
        at: Timestamp,
    },
    /// Given up.
    Failed {
        error: String,
    },
}

/// One notification's state with one notifier (for the UI).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotificationSend {
    pub notification_id: i64,
    pub notifier: String,
    pub title: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

/// Rows of `(device, upload time)` ordered by device (a device without
/// uploads as one row without a time) gathered into one entry a device, in
/// the rows' order: what `recent_upload_times` returns on both backends.
pub(crate) fn times_by_device(
    rows: impl IntoIterator<Item = (DeviceId, Option<Timestamp>)>,
) -> Vec<(DeviceId, Vec<Timestamp>)> {
    let mut out: Vec<(DeviceId, Vec<Timestamp>)> = Vec::new();
    for (id, at) in rows {
        match out.last_mut() {
            Some((last, times)) if *last == id => times.extend(at),
            _ => out.push((id, at.into_iter().collect())),
        }
    }
    out
}
