//! Records of scheduled report deliveries.

use jiff::civil::Date;
use serde::Serialize;
use telegaz_domain::Timestamp;

/// Where a delivery of one gas day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// An attempt is under way (or was cut short; it is taken up again when its lease ends).
    Sending,
    /// The mail server accepted the message.
    Sent,
    /// Every attempt failed; `telegaz deliveries send` can try again.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "sending" => Ok(DeliveryState::Sending),
            "sent" => Ok(DeliveryState::Sent),
            "failed" => Ok(DeliveryState::Failed),
            other => Err(format!(
                "unknown delivery state {other:?}: expected pending, sending, sent or failed"
            )),
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery: a configured delivery's report of one gas day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// The `[[delivery]]` name.
    pub name: String,
    pub gas_day: Date,
    pub state: DeliveryState,
    /// Attempts made (including one under way).
    pub attempts: u32,
    /// When the first attempt was due.
    pub due_at: Timestamp,
    /// `pending`: when the next attempt is due; `sending`: when its lease ends.
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub sent_at: Option<Timestamp>,
    /// Why the last failed attempt failed (kept after a later success).
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The mail server accepted the message.
    Sent,
    /// It failed; try again at `at`.
    Retry { error: String, at: Timestamp },
    /// It failed and will not be tried again.
    Failed { error: String },
}

/// Which deliveries to list, newest gas day first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub name: Option<String>,
    pub state: Option<DeliveryState>,
    /// Only gas days from this one on.
    pub since: Option<Date>,
    pub limit: Option<u32>,
}
