//! What the web UI and REST API keep: users, sessions, API tokens, and the
//! per-device summary the fleet overview is built from.

use telegaz_domain::{DeviceId, Role, Timestamp, UserName};

/// A user to create.
#[derive(Clone)]
pub struct NewUser {
    pub name: UserName,
    pub password_hash: String,
    pub role: Role,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UserUpdate {
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub enabled: Option<bool>,
}

/// A browser session to record. `token_sha256` is the SHA-256 (hex) of the
/// cookie value; the value itself is never stored.
#[derive(Clone)]
pub struct NewSession {
    pub token_sha256: String,
    pub user_id: telegaz_domain::UserId,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What the fleet overview needs to know about one device, in one query for
/// the whole fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceActivity {
    pub device_id: DeviceId,
    /// The newest upload's start (the device was in contact then).
    pub last_upload_at: Option<Timestamp>,
    /// The newest successful login (contact without a file counts too).
    pub last_login_at: Option<Timestamp>,
    /// Local time of the newest interval (hourly) reading.
    pub newest_reading: Option<jiff::civil::DateTime>,
    /// Status words of that reading, as printed.
    pub newest_status: Vec<String>,
    /// Uploads whose ingest ended quarantined or failed.
    pub problem_uploads: u64,
    /// The newest upload ended partial (cut off, not retried since).
    pub last_upload_partial: bool,
}

impl DeviceActivity {
    /// The last time the device was heard from.
    pub fn last_contact(&self) -> Option<Timestamp> {
        match (self.last_upload_at, self.last_login_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}
