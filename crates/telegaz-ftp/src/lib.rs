//! A focused FTP server engine for the embedded clients of telemetry modems.

mod backend;
pub mod names;
mod path;

pub use backend::{
    Account, Backend, Entry, FsError, LoginError, Receipt, SessionInfo, UploadRequest, UploadSink,
    WriteMode,
};
pub use path::{PathError, VPath};
