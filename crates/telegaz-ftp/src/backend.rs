//! What the engine needs from whoever stores the files: accounts, a namespace
//! per account, and upload sinks that make bytes durable before `226`.

use std::net::SocketAddr;

use async_trait::async_trait;
use secrecy::SecretString;
use telegaz_domain::{FileName, PartialReason, Timestamp};
use tokio::io::AsyncRead;

use crate::path::VPath;

/// One control connection.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Unique across restarts; ties log lines and audit records together.
    pub id: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The control connection is TLS (after `AUTH TLS`).
    pub tls: bool,
}

/// Why a login was refused. The client always hears the same `530`; the reason
/// goes to the log and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("unknown login")]
    UnknownUser,
    #[error("wrong password")]
    BadPassword,
    #[error("the device is disabled")]
    Disabled,
    #[error("the source address is not in the device's allowed networks")]
    AddressNotAllowed,
    #[error("temporarily blocked after repeated failures ({scope}), {remaining_secs} s left")]
    Blocked { scope: String, remaining_secs: u64 },
    /// Refused by an entry of the ban list (`telegaz ban list`).
    #[error("banned (ban #{id}: {target}, {until})")]
    Banned {
        id: i64,
        target: String,
        /// `until 2026-11-26T10:00:00Z` or `until lifted`.
        until: String,
    },
    #[error("login unavailable: {0}")]
    Unavailable(String),
    #[error("TLS is required: the client logged in without AUTH TLS")]
    TlsRequired,
}

impl LoginError {
    /// Stable reason code for audit records.
    pub fn code(&self) -> &'static str {
        match self {
            LoginError::UnknownUser => "unknown_user",
            LoginError::BadPassword => "bad_password",
            LoginError::Disabled => "disabled",
            LoginError::AddressNotAllowed => "address_not_allowed",
            LoginError::Blocked { .. } | LoginError::Banned { .. } => "blocked",
            LoginError::Unavailable(_) => "unavailable",
            LoginError::TlsRequired => "tls_required",
        }
    }
}

/// A file-system level failure, mapped to an FTP reply by the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} is not empty")]
    NotEmpty(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    BadName(String),
    #[error("insufficient storage space: {0}")]
    NoSpace(String),
    #[error("the file exceeds the size limit of {0} bytes")]
    TooLarge(u64),
    #[error("local error: {0}")]
    Local(String),
}

/// A directory entry as shown by LIST, SIZE and MDTM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: VPath,
    pub is_dir: bool,
    pub size: u64,
    pub modified: Timestamp,
}

/// How the client asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR (or STOU with a server-made name).
    Store { unique: bool },
    /// APPE: continue after the existing file's last byte.
    Append,
    /// REST n + STOR: keep the existing file's first n bytes, then the new ones.
    Resume(u64),
}

/// An upload about to start.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub path: VPath,
    /// The last path component exactly as the client sent it.
    pub name: FileName,
    pub mode: WriteMode,
}

/// What the engine tells the client when a transfer is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Total size of the stored file.
    pub size: u64,
    /// Short text for the `226` line (id, digest).
    pub note: String,
}

/// Where the bytes of one upload go.
#[async_trait]
pub trait UploadSink: Send + 'static {
    async fn write(&mut self, data: &[u8]) -> Result<(), FsError>;
    /// Bytes written through this sink so far (not counting a resumed prefix).
    fn received(&self) -> u64;
    /// The data connection ended: start making the bytes durable (flush and
    /// `fsync`) while the engine checks that the client is still there. Whether
    /// the upload is complete or partial is decided after, by [`Self::complete`]
    /// or [`Self::abandon`], which must still make durable whatever came after.
    async fn settle(&mut self) -> Result<(), FsError> {
        Ok(())
    }
    /// The transfer ended cleanly and the client is still there: make the bytes
    /// durable and record the upload complete. Only after this returns `Ok`
    /// does the client hear `226`.
    async fn complete(self) -> Result<Receipt, FsError>;
    /// The transfer did not finish cleanly: keep the bytes that arrived, durably,
    /// and record the upload partial.
    async fn abandon(self, reason: PartialReason) -> Result<Receipt, FsError>;
}

/// A logged-in account.
pub trait Account: Clone + Send + Sync + 'static {
    fn name(&self) -> &str;
    /// The account may only be used over TLS (control and data).
    fn tls_required(&self) -> bool {
        false
    }
}

/// The storage side of the FTP server.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Account: Account;
    type Upload: UploadSink;

    /// A control connection was accepted (before any command).
    async fn connected(&self, session: &SessionInfo);
    /// A connection was turned away before any command (limits).
    async fn refused(&self, session: &SessionInfo, reason: &str);
    /// A control connection ended.
    async fn disconnected(
        &self,
        session: &SessionInfo,
        account: Option<&Self::Account>,
        reason: &str,
    );

    async fn login(
        &self,
        session: &SessionInfo,
        user: &str,
        password: SecretString,
    ) -> Result<Self::Account, LoginError>;

    /// A limit of the engine turned the client away or refused a command
    /// (`limit`: `commands_before_login`, `command_rate_before_login`,
    /// `long_lines`, `passive_ports`): for the audit trail.
    async fn limit_reached(&self, session: &SessionInfo, limit: &str, detail: &str) {
        let _ = (session, limit, detail);
    }

    /// The engine refused a login before asking [`Backend::login`] (TLS
    /// required and not started): for the audit trail.
    async fn login_refused(&self, session: &SessionInfo, user: Option<&str>, error: &LoginError) {
        let _ = (session, user, error);
    }

    async fn begin_upload(
        &self,
        session: &SessionInfo,
        account: &Self::Account,
        request: UploadRequest,
    ) -> Result<Self::Upload, FsError>;

    async fn stat(&self, account: &Self::Account, path: &VPath) -> Result<Entry, FsError>;
    async fn list(&self, account: &Self::Account, dir: &VPath) -> Result<Vec<Entry>, FsError>;
    async fn mkdir(
        &self,
        session: &SessionInfo,
        account: &Self::Account,
        path: &VPath,
    ) -> Result<(), FsError>;
    async fn rmdir(
        &self,
        session: &SessionInfo,
        account: &Self::Account,
        path: &VPath,
    ) -> Result<(), FsError>;
    /// Remove a name from the account's view.
    async fn delete(
        &self,
        session: &SessionInfo,
        account: &Self::Account,
        path: &VPath,
    ) -> Result<(), FsError>;
    async fn rename(
        &self,
        session: &SessionInfo,
        account: &Self::Account,
        from: &VPath,
        to: &VPath,
    ) -> Result<(), FsError>;
    /// Read a file's bytes from `offset` (RETR).
    async fn read(
        &self,
        account: &Self::Account,
        path: &VPath,
        offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, FsError>;
}
