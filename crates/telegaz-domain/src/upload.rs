use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{DeviceId, Sha256Digest, Timestamp};

/// Database identity of an upload (one file transfer, or one file found in the spool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UploadId(pub i64);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A file name as a client sent it.
///
/// Embedded FTP clients send whatever bytes their firmware has: UTF-8, Windows-1251
/// or garbage. `raw` keeps those bytes exactly; `display` is a readable decoding
/// of them (the receiver decides how). Files are never stored under this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub display: String,
    pub raw: Vec<u8>,
}

impl FileName {
    /// A name that was valid UTF-8 as sent.
    pub fn utf8(name: &str) -> Self {
        FileName {
            display: name.to_owned(),
            raw: name.as_bytes().to_vec(),
        }
    }

    /// True when the raw bytes were not the UTF-8 of `display`.
    pub fn was_transcoded(&self) -> bool {
        self.raw != self.display.as_bytes()
    }
}

/// Where a received file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Bytes are arriving now (or the server stopped while they were).
    Receiving,
    /// The whole file is on disk, fsynced and recorded; the client was sent `226`.
    Complete,
    /// The transfer did not finish cleanly; the bytes that arrived are kept.
    Partial,
    /// Found in the spool at start-up with no database record.
    Recovered,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Receiving => "receiving",
            UploadStatus::Complete => "complete",
            UploadStatus::Partial => "partial",
            UploadStatus::Recovered => "recovered",
        }
    }
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UploadStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "receiving" => UploadStatus::Receiving,
            "complete" => UploadStatus::Complete,
            "partial" => UploadStatus::Partial,
            "recovered" => UploadStatus::Recovered,
            other => {
                return Err(format!(
                    "unknown upload status {other:?} (expected receiving, complete, partial or recovered)"
                ));
            }
        })
    }
}

/// How the client asked to write the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// `STOR`: a new file under the given name.
    Store,
    /// `STOU`: a new file under a name the server chose.
    StoreUnique,
    /// `APPE`: the existing file's bytes followed by the new ones.
    Append,
    /// `REST n` + `STOR`: the first n bytes of the existing file followed by the new ones.
    Resume,
}

impl UploadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadMode::Store => "store",
            UploadMode::StoreUnique => "store_unique",
            UploadMode::Append => "append",
            UploadMode::Resume => "resume",
        }
    }
}

impl FromStr for UploadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "store" => UploadMode::Store,
            "store_unique" => UploadMode::StoreUnique,
            "append" => UploadMode::Append,
            "resume" => UploadMode::Resume,
            other => return Err(format!("unknown upload mode {other:?}")),
        })
    }
}

/// Why an upload ended `partial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialReason {
    /// The client sent `ABOR`.
    Aborted,
    /// The data connection failed (reset, network error).
    DataConnectionLost(String),
    /// The control connection closed before the transfer was confirmed: the
    /// client is gone (killed, link lost) and never saw `226`.
    ControlConnectionClosed,
    /// No byte arrived for the configured stall timeout.
    Stalled { seconds: u64 },
    /// The file grew past the configured maximum size.
    TooLarge { limit: u64 },
    /// Writing to local storage failed (disk full, I/O error).
    StorageError(String),
    /// The server stopped (crash, kill) while the file was arriving.
    ServerStopped,
    /// The server is shutting down and the transfer did not finish in the grace period.
    Shutdown,
}

impl PartialReason {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PartialReason::Aborted => "aborted",
            PartialReason::DataConnectionLost(_) => "data_connection_lost",
            PartialReason::ControlConnectionClosed => "control_connection_closed",
            PartialReason::Stalled { .. } => "stalled",
            PartialReason::TooLarge { .. } => "too_large",
            PartialReason::StorageError(_) => "storage_error",
            PartialReason::ServerStopped => "server_stopped",
            PartialReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for PartialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartialReason::Aborted => f.write_str("aborted: the client sent ABOR"),
            PartialReason::DataConnectionLost(e) => write!(f, "data_connection_lost: {e}"),
            PartialReason::ControlConnectionClosed => f.write_str(
                "control_connection_closed: the client disconnected before the transfer was confirmed",
            ),
            PartialReason::Stalled { seconds } => {
                write!(f, "stalled: no data for {seconds} s")
            }
            PartialReason::TooLarge { limit } => {
                write!(f, "too_large: the file exceeded the limit of {limit} bytes")
            }
            PartialReason::StorageError(e) => write!(f, "storage_error: {e}"),
            PartialReason::ServerStopped => {
                f.write_str("server_stopped: the server stopped while the file was arriving")
            }
            PartialReason::Shutdown => f.write_str(
                "shutdown: the server shut down before the transfer finished",
            ),
        }
    }
}

/// What is known when a transfer begins.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub device_id: DeviceId,
    pub original_name: FileName,
    /// The virtual path in the device's namespace the file is written to.
    pub path: String,
    pub mode: UploadMode,
    /// For `Append`/`Resume`: the upload whose first bytes this one continues.
    pub resumed_from: Option<UploadId>,
    /// Bytes taken over from `resumed_from`.
    pub offset: u64,
    pub peer: Option<String>,
    pub session: Option<String>,
    pub started_at: Timestamp,
}

/// What is known when a transfer ends.
#[derive(Debug, Clone)]
pub struct UploadFinish {
    pub status: UploadStatus,
    pub size: u64,
    pub sha256: Sha256Digest,
    pub reason: Option<String>,
    pub finished_at: Timestamp,
}

impl UploadFinish {
    /// The end of an upload that did not finish cleanly: its bytes are kept.
    pub fn partial(size: u64, sha256: Sha256Digest, reason: &PartialReason, at: Timestamp) -> Self {
        Self {
            status: UploadStatus::Partial,
            size,
            sha256,
            reason: Some(reason.to_string()),
            finished_at: at,
        }
    }
}

/// One received file, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub id: UploadId,
    pub device_id: Option<DeviceId>,
    /// Device name (None for a recovered file whose device is unknown).
    pub device: Option<String>,
    /// The name the client used, decoded for reading.
    pub original_name: String,
    /// The exact bytes of that name, hex-encoded, when they were not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_name_hex: Option<String>,
    /// Path in the device's namespace when the transfer began.
    pub path: String,
    /// Path after the device renamed it (RNFR/RNTO), else the same as `path`.
    pub final_path: String,
    pub mode: UploadMode,
    pub size: u64,
    pub sha256: Option<Sha256Digest>,
    pub status: UploadStatus,
    pub reason: Option<String>,
    pub duplicate_of: Option<UploadId>,
    pub resumed_from: Option<UploadId>,
    pub peer: Option<String>,
    pub session: Option<String>,
    pub started_at: Timestamp,
    pub received_at: Option<Timestamp>,
    /// The device deleted the name (DELE); the bytes and this record stay.
    pub deleted_by_device: bool,
    /// What the ingest pipeline made of it (None: not queued, e.g. partial).
    pub ingest: Option<IngestInfo>,
    /// The id of the receiver that started the transfer (None: recorded
    /// without one, e.g. recovered, or before receivers were recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
}

/// Where an upload stands in the ingest pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestState {
    /// Waiting for (or being processed by) the worker.
    Pending,
    /// Understood and stored.
    Parsed,
    /// Not understood: kept with a reason, re-processed by `telegaz reparse`.
    Quarantined,
    /// Understood but could not be stored, or the parser failed repeatedly.
    Failed,
}

impl IngestState {
    pub fn as_str(self) -> &'static str {
        match self {
            IngestState::Pending => "pending",
            IngestState::Parsed => "parsed",
            IngestState::Quarantined => "quarantined",
            IngestState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for IngestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(IngestState::Pending),
            "parsed" => Ok(IngestState::Parsed),
            "quarantined" => Ok(IngestState::Quarantined),
            "failed" => Ok(IngestState::Failed),
            other => Err(format!(
                "unknown ingest status {other:?} (pending, parsed, quarantined, failed)"
            )),
        }
    }
}

/// Archive rows of one upload: how many, and how many were new, repeated or conflicting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    pub total: u64,
    pub new: u64,
    pub duplicate: u64,
    pub conflicting: u64,
}

/// The ingest outcome of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestInfo {
    pub status: IngestState,
    pub format: Option<String>,
    pub records: RecordCounts,
    pub events: u64,
    pub reason: Option<String>,
    pub truncated: bool,
    pub model: Option<String>,
    pub serial: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for s in [
            UploadStatus::Receiving,
            UploadStatus::Complete,
            UploadStatus::Partial,
            UploadStatus::Recovered,
        ] {
            assert_eq!(s.as_str().parse::<UploadStatus>(), Ok(s));
        }
        assert!("done".parse::<UploadStatus>().is_err());
    }

    #[test]
    fn reasons_start_with_their_code() {
        let reasons = [
            PartialReason::Aborted,
            PartialReason::DataConnectionLost("reset".into()),
            PartialReason::ControlConnectionClosed,
            PartialReason::Stalled { seconds: 120 },
            PartialReason::TooLarge { limit: 10 },
            PartialReason::StorageError("ENOSPC".into()),
            PartialReason::ServerStopped,
            PartialReason::Shutdown,
        ];
        for r in reasons {
            assert!(r.to_string().starts_with(r.code()), "{r}");
        }
    }

    #[test]
    fn transcoded_names_are_detected() {
        assert!(!FileName::utf8("a.txt").was_transcoded());
        let n = FileName {
            display: "я.txt".into(),
            raw: vec![0xff, b'.', b't', b'x', b't'],
        };
        assert!(n.was_transcoded());
    }
}
