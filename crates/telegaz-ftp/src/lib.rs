//! A focused FTP server engine for the embedded clients of telemetry modems.

mod backend;
pub mod names;
mod path;
pub mod proxy;
mod server;
mod tls;

pub use backend::{
    Account, Backend, Entry, FsError, LoginError, Receipt, SessionInfo, UploadRequest, UploadSink,
    WriteMode,
};
pub use path::{PathError, VPath};
pub use server::{CLIENT_GONE_GRACE, EngineConfig, serve};
pub use tls::{TlsSettings, TlsSetupError};
