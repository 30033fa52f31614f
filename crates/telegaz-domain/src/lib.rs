//! The Telegaz domain model.
//!
//! Plain values that every other crate shares: devices (БПЭК units and their
//! accounts), uploads (files a device sent us, as received) and audit events.
//! Nothing here performs I/O; the crates that receive, store and show data all
//! depend on this one and on nothing of each other's that they do not need.

mod alert;
mod archive;
mod audit;
mod ban;
mod device;
mod digest;
pub mod gasday;
mod upload;
mod user;

pub use alert::{Alert, AlertKind, AlertState, Notification, NotificationEvent, Severity};
pub use archive::{
    ArchiveKind, ArchiveRecord, Check, Decimal, EventRecord, FileMeta, ParsedFile, Quantities,
    Unrecognised,
};
pub use audit::{AuditEvent, AuditKind, NewAuditEvent};
pub use ban::{Ban, NewBan, ban_address, ban_clock};
pub use device::{Device, DeviceId, DeviceName, InvalidDeviceName};
pub use digest::{ParseDigestError, Sha256Digest};
pub use upload::{
    FileName, IngestInfo, IngestState, NewUpload, PartialReason, RecordCounts, Upload,
    UploadFinish, UploadId, UploadMode, UploadStatus,
};
pub use user::{ApiToken, Role, User, UserId, UserName, WebSession};

/// An error and its sources, each once: `a: b: c` (for messages that must say
/// what actually went wrong, e.g. "connection refused" under "request failed").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A point in time (UTC), as used throughout the model.
pub type Timestamp = jiff::Timestamp;
