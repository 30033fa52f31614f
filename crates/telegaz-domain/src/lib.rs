//! The Telegaz domain model.
//!
//! Plain values that every other crate shares: devices (БПЭК units and their
//! accounts), uploads (files a device sent us, as received) and audit events.
//! Nothing here performs I/O; the crates that receive, store and show data all
//! depend on this one and on nothing of each other's that they do not need.

mod alert;
mod archive;
mod audit;
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
pub use device::{Device, DeviceId, DeviceName, InvalidDeviceName};
pub use digest::{ParseDigestError, Sha256Digest};
pub use upload::{
    FileName, IngestInfo, IngestState, NewUpload, PartialReason, RecordCounts, Upload,
    UploadFinish, UploadId, UploadMode, UploadStatus,
};
pub use user::{ApiToken, Role, User, UserId, UserName, WebSession};

/// A point in time (UTC), as used throughout the model.
pub type Timestamp = jiff::Timestamp;
