//! FTP engine: libunftp 0.24 with Telegaz's authenticator and storage backend.
//!
//! Connections are accepted here and handed to libunftp one by one
//! (`Server::service`), so that every connection can be audited with its peer
//! address before any command.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::SecretString;
use telegaz_domain::PartialReason;
use telegaz_ftp::{Backend, FsError, SessionInfo, UploadRequest, UploadSink, VPath, WriteMode};
use telegaz_receiver::{DeviceAccount, Receiver};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};
use unftp_core::storage::{Error as SError, ErrorKind, Fileinfo, Metadata, StorageBackend};

pub struct EngineSettings {
    pub passive_ports: std::ops::RangeInclusive<u16>,
    pub passive_host: Option<String>,
    pub idle_timeout: Duration,
    pub stall_timeout: Duration,
}

fn session_for(peer: SocketAddr) -> SessionInfo {
    SessionInfo {
        id: format!("{:016x}", rand::random::<u64>()),
        peer,
        local: SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

#[derive(Debug, Clone)]
pub struct LuUser {
    account: DeviceAccount,
    session: SessionInfo,
}

impl fmt::Display for LuUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.account.name)
    }
}

impl UserDetail for LuUser {}

struct LuAuth {
    receiver: Receiver,
    session: SessionInfo,
    logged_in: Arc<std::sync::Mutex<Option<DeviceAccount>>>,
}

impl fmt::Debug for LuAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LuAuth")
    }
}

#[async_trait]
impl Authenticator for LuAuth {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let pw = SecretString::from(creds.password.clone().unwrap_or_default());
        match self.receiver.login(&self.session, username, pw).await {
            Ok(account) => {
                if let Ok(mut g) = self.logged_in.lock() {
                    *g = Some(account);
                }
                Ok(Principal {
                    username: username.to_owned(),
                })
            }
            Err(_) => Err(AuthenticationError::BadPassword),
        }
    }
}

struct LuUsers {
    session: SessionInfo,
    logged_in: Arc<std::sync::Mutex<Option<DeviceAccount>>>,
}

impl fmt::Debug for LuUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LuUsers")
    }
}

#[async_trait]
impl UserDetailProvider for LuUsers {
    type User = LuUser;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<LuUser, UserDetailError> {
        let account = self
            .logged_in
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: principal.username.clone(),
            })?;
        Ok(LuUser {
            account,
            session: self.session.clone(),
        })
    }
}

#[derive(Clone)]
pub struct LuStorage {
    receiver: Receiver,
    stall_timeout: Duration,
}

impl fmt::Debug for LuStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LuStorage")
    }
}

#[derive(Debug)]
pub struct LuMeta {
    len: u64,
    dir: bool,
    modified: SystemTime,
}

impl Metadata for LuMeta {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> unftp_core::storage::Result<SystemTime> {
        Ok(self.modified)
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

fn vpath<P: AsRef<Path>>(p: P) -> Result<VPath, SError> {
    VPath::resolve(&VPath::root(), &p.as_ref().to_string_lossy())
        .map_err(|e| SError::new(ErrorKind::FileNameNotAllowedError, e))
}

fn fs_err(e: FsError) -> SError {
    let kind = match &e {
        FsError::NotFound(_) => ErrorKind::PermanentFileNotAvailable,
        FsError::Exists(_) | FsError::NotAllowed(_) | FsError::NotEmpty(_) => {
            ErrorKind::PermissionDenied
        }
        FsError::BadName(_) => ErrorKind::FileNameNotAllowedError,
        FsError::NoSpace(_) => ErrorKind::InsufficientStorageSpaceError,
        FsError::TooLarge(_) => ErrorKind::ExceededStorageAllocationError,
        FsError::Local(_) => ErrorKind::LocalError,
    };
    SError::new(kind, e)
}

fn meta(e: &telegaz_ftp::Entry) -> LuMeta {
    LuMeta {
        len: e.size,
        dir: e.is_dir,
        modified: SystemTime::try_from(e.modified).unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

#[async_trait]
impl StorageBackend<LuUser> for LuStorage {
    type Metadata = LuMeta;

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<LuMeta> {
        let e = self
            .receiver
            .stat(&user.account, &vpath(path)?)
            .await
            .map_err(fs_err)?;
        Ok(meta(&e))
    }

    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<Vec<Fileinfo<PathBuf, LuMeta>>> {
        let entries = self
            .receiver
            .list(&user.account, &vpath(path)?)
            .await
            .map_err(fs_err)?;
        Ok(entries
            .iter()
            .map(|e| Fileinfo {
                path: PathBuf::from(e.path.as_str()),
                metadata: meta(e),
            })
            .collect())
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
        start_pos: u64,
    ) -> unftp_core::storage::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        let mut r = self
            .receiver
            .read(&user.account, &vpath(path)?, start_pos)
            .await
            .map_err(fs_err)?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).await.map_err(SError::from)?;
        Ok(Box::new(std::io::Cursor::new(buf)))
    }

    async fn put<
        P: AsRef<Path> + Send + fmt::Debug,
        R: AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &LuUser,
        mut input: R,
        path: P,
        start_pos: u64,
    ) -> unftp_core::storage::Result<u64> {
        let path = vpath(path)?;
        let name = telegaz_domain::FileName::utf8(path.file_name().unwrap_or(""));
        let mode = if start_pos > 0 {
            WriteMode::Resume(start_pos)
        } else {
            WriteMode::Store { unique: false }
        };
        let mut sink = self
            .receiver
            .begin_upload(
                &user.session,
                &user.account,
                UploadRequest { path, name, mode },
            )
            .await
            .map_err(fs_err)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(self.stall_timeout, input.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    let _ = sink
                        .abandon(PartialReason::DataConnectionLost(e.to_string()))
                        .await;
                    return Err(SError::new(ErrorKind::ConnectionClosed, e));
                }
                Err(_) => {
                    let _ = sink
                        .abandon(PartialReason::Stalled {
                            seconds: self.stall_timeout.as_secs(),
                        })
                        .await;
                    return Err(SError::from(ErrorKind::ConnectionClosed));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = sink.write(&buf[..n]).await {
                let reason = match &e {
                    FsError::TooLarge(limit) => PartialReason::TooLarge { limit: *limit },
                    other => PartialReason::StorageError(other.to_string()),
                };
                let _ = sink.abandon(reason).await;
                return Err(fs_err(e));
            }
        }
        let receipt = sink.complete().await.map_err(fs_err)?;
        Ok(receipt.size)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<()> {
        self.receiver
            .delete(&user.session, &user.account, &vpath(path)?)
            .await
            .map_err(fs_err)
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<()> {
        self.receiver
            .mkdir(&user.session, &user.account, &vpath(path)?)
            .await
            .map_err(fs_err)
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        from: P,
        to: P,
    ) -> unftp_core::storage::Result<()> {
        self.receiver
            .rename(&user.session, &user.account, &vpath(from)?, &vpath(to)?)
            .await
            .map_err(fs_err)
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<()> {
        self.receiver
            .rmdir(&user.session, &user.account, &vpath(path)?)
            .await
            .map_err(fs_err)
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &LuUser,
        path: P,
    ) -> unftp_core::storage::Result<()> {
        let e = self
            .receiver
            .stat(&user.account, &vpath(path)?)
            .await
            .map_err(fs_err)?;
        if e.is_dir {
            Ok(())
        } else {
            Err(SError::from(ErrorKind::PermanentDirectoryNotAvailable))
        }
    }
}

/// Accept connections until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    receiver: Receiver,
    settings: EngineSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let receiver = receiver.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            let session = session_for(peer);
            receiver.connected(&session).await;
            let logged_in = Arc::new(std::sync::Mutex::new(None));
            let storage = LuStorage {
                receiver: receiver.clone(),
                stall_timeout: settings.stall_timeout,
            };
            let auth = Arc::new(LuAuth {
                receiver: receiver.clone(),
                session: session.clone(),
                logged_in: logged_in.clone(),
            });
            let users = Arc::new(LuUsers {
                session: session.clone(),
                logged_in: logged_in.clone(),
            });
            let mut builder =
                libunftp::ServerBuilder::<LuStorage, LuUser>::with_user_detail_provider(
                    Box::new(move || storage.clone()),
                    users,
                )
                .authenticator(auth)
                .passive_ports(settings.passive_ports.clone())
                .idle_session_timeout(settings.idle_timeout.as_secs());
            if let Some(h) = &settings.passive_host {
                builder = builder.passive_host(h.as_str());
            }
            let reason = match builder.build() {
                Ok(server) => match server.service(stream).await {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            let account = logged_in.lock().ok().and_then(|g| g.clone());
            receiver
                .disconnected(&session, account.as_ref(), &reason)
                .await;
        });
    }
}
