use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{DeviceId, Timestamp, UploadId};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A TCP connection was accepted (peer address).
    Connect,
    /// A connection was refused before any command (limits).
    ConnectRefused,
    LoginSucceeded,
    LoginFailed,
    UploadStarted,
    UploadFinished,
    Rename,
    Delete,
    MakeDir,
    RemoveDir,
    Disconnect,
    /// A spool file without a record was recorded at start-up.
    Recovered,
    /// A record whose bytes are missing from the spool.
    MissingFile,
    /// An operator changed a device (added, password, enabled, networks).
    DeviceChanged,
    /// Someone signed in to the web UI (login: the user name).
    WebLoginSucceeded,
    WebLoginFailed,
    /// An administrator changed a user or an API token.
    UserChanged,
    /// Someone asked for uploads to be parsed again.
    ReparseRequested,
    /// A ban was recorded (by the failed-login throttle, the CLI, the web UI or the API).
    BanCreated,
    /// A ban was lifted before its end.
    BanLifted,
    /// A limit of the FTP engine turned a client away (outcome: which one:
    /// `commands_before_login`, `command_rate_before_login`, `long_lines`,
    /// `passive_ports`).
    LimitReached,
}

impl AuditKind {
    pub const ALL: [AuditKind; 21] = [
        AuditKind::Connect,
        AuditKind::ConnectRefused,
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::UploadStarted,
        AuditKind::UploadFinished,
        AuditKind::Rename,
        AuditKind::Delete,
        AuditKind::MakeDir,
        AuditKind::RemoveDir,
        AuditKind::Disconnect,
        AuditKind::Recovered,
        AuditKind::MissingFile,
        AuditKind::DeviceChanged,
        AuditKind::WebLoginSucceeded,
        AuditKind::WebLoginFailed,
        AuditKind::UserChanged,
        AuditKind::ReparseRequested,
        AuditKind::BanCreated,
        AuditKind::BanLifted,
        AuditKind::LimitReached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Connect => "connect",
            AuditKind::ConnectRefused => "connect_refused",
            AuditKind::LoginSucceeded => "login_succeeded",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::UploadStarted => "upload_started",
            AuditKind::UploadFinished => "upload_finished",
            AuditKind::Rename => "rename",
            AuditKind::Delete => "delete",
            AuditKind::MakeDir => "make_dir",
            AuditKind::RemoveDir => "remove_dir",
            AuditKind::Disconnect => "disconnect",
            AuditKind::Recovered => "recovered",
            AuditKind::MissingFile => "missing_file",
            AuditKind::DeviceChanged => "device_changed",
            AuditKind::WebLoginSucceeded => "web_login_succeeded",
            AuditKind::WebLoginFailed => "web_login_failed",
            AuditKind::UserChanged => "user_changed",
            AuditKind::ReparseRequested => "reparse_requested",
            AuditKind::BanCreated => "ban_created",
            AuditKind::BanLifted => "ban_lifted",
            AuditKind::LimitReached => "limit_reached",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown audit kind {s:?}"))
    }
}

/// An audit event about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub at: Timestamp,
    pub kind: AuditKind,
    /// Identifier of the FTP session (connection) it belongs to.
    pub session: Option<String>,
    /// Remote address (ip:port).
    pub peer: Option<String>,
    pub device_id: Option<DeviceId>,
    /// The login the client gave (even when no such device exists).
    pub login: Option<String>,
    pub upload_id: Option<UploadId>,
    /// `ok` or a short reason code such as `bad_password`.
    pub outcome: String,
    /// Human-readable detail. Never contains a password.
    pub detail: String,
}

impl NewAuditEvent {
    pub fn new(kind: AuditKind, outcome: impl Into<String>) -> Self {
        NewAuditEvent {
            at: Timestamp::now(),
            kind,
            session: None,
            peer: None,
            device_id: None,
            login: None,
            upload_id: None,
            outcome: outcome.into(),
            detail: String::new(),
        }
    }
}

/// A recorded audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Timestamp,
    pub kind: AuditKind,
    pub session: Option<String>,
    pub peer: Option<String>,
    pub device_id: Option<DeviceId>,
    pub device: Option<String>,
    pub login: Option<String>,
    pub upload_id: Option<UploadId>,
    pub outcome: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(k));
        }
    }
}
