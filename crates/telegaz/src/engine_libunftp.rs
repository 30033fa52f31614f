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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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
    pub login_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub greeting: &'static str,
}

/// Counts control connections, in total and per source address.
#[derive(Default)]
struct ConnectionCounter {
    total: usize,
    per_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

struct ConnectionSlot {
    counter: Arc<std::sync::Mutex<ConnectionCounter>>,
    ip: std::net::IpAddr,
}

impl ConnectionSlot {
    /// Take a slot, or say which limit is reached.
    fn take(
        counter: &Arc<std::sync::Mutex<ConnectionCounter>>,
        ip: std::net::IpAddr,
        settings: &EngineSettings,
    ) -> Result<Self, &'static str> {
        let mut c = counter.lock().map_err(|_| "internal error")?;
        if c.total >= settings.max_connections {
            return Err("too many connections (ftp.max_connections)");
        }
        let n = c.per_address.entry(ip).or_insert(0);
        if *n >= settings.max_connections_per_address {
            return Err("too many connections from this address (ftp.max_connections_per_address)");
        }
        *n += 1;
        c.total += 1;
        Ok(Self {
            counter: counter.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counter.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_address.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_address.remove(&self.ip);
                }
            }
        }
    }
}

/// How long, after the data connection ends, we look for the client having
/// gone away before we let libunftp send `226`. A killed client closes its
/// control and data connections at the same moment; seeing the control one
/// closed means the transfer was cut, and the client never hears `226`.
const CLIENT_GONE_GRACE: Duration = Duration::from_millis(100);

fn session_for(peer: SocketAddr, local: SocketAddr) -> SessionInfo {
    SessionInfo {
        id: format!("{:016x}", rand::random::<u64>()),
        peer,
        local,
    }
}

/// A second handle on the control connection's socket. libunftp owns the
/// control stream and does not tell a storage backend when the client has
/// gone; peeking at the socket does.
#[derive(Debug)]
struct ControlProbe {
    fd: Option<std::os::fd::OwnedFd>,
}

impl ControlProbe {
    fn new(stream: &tokio::net::TcpStream) -> Self {
        use std::os::fd::AsFd;
        let fd = stream.as_fd().try_clone_to_owned().ok();
        if fd.is_none() {
            tracing::warn!(
                "cannot watch a control connection; early client exits will not be detected"
            );
        }
        Self { fd }
    }

    /// Close the connection under libunftp's feet (login timeout).
    fn hang_up(&self) {
        if let Some(fd) = &self.fd {
            let _ = socket2::SockRef::from(fd).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Whether the client has closed or reset the control connection.
    fn client_gone(&self) -> bool {
        let Some(fd) = &self.fd else { return false };
        let sock = socket2::SockRef::from(fd);
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match sock.peek(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => false,
            Err(_) => true,
        }
    }

    /// Watch the control connection for a short while.
    async fn client_gone_within(&self, grace: Duration) -> bool {
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        loop {
            if self.client_gone() {
                return true;
            }
            if waited >= grace {
                return false;
            }
            tokio::time::sleep(step).await;
            waited += step;
        }
    }
}

/// Owns an upload in progress. If libunftp drops the transfer (ABOR, the
/// session ending), the bytes that arrived are still kept, as `partial`.
struct SinkGuard {
    sink: Option<telegaz_receiver::DeviceUpload>,
    probe: Arc<ControlProbe>,
}

impl SinkGuard {
    fn get(&mut self) -> Result<&mut telegaz_receiver::DeviceUpload, SError> {
        self.sink
            .as_mut()
            .ok_or_else(|| SError::from(ErrorKind::LocalError))
    }

    async fn abandon(&mut self, reason: PartialReason) {
        if let Some(sink) = self.sink.take() {
            let _ = sink.abandon(reason).await;
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let reason = if self.probe.client_gone() {
                PartialReason::ControlConnectionClosed
            } else {
                PartialReason::Aborted
            };
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = sink.abandon(reason).await;
                });
            }
            // Without a runtime (process exit) the temporary file stays and
            // start-up reconciliation records it as partial.
        }
    }
}

#[derive(Debug, Clone)]
pub struct LuUser {
    account: DeviceAccount,
    session: SessionInfo,
    probe: Arc<ControlProbe>,
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
    probe: Arc<ControlProbe>,
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
            probe: self.probe.clone(),
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

    fn supported_features(&self) -> u32 {
        // REST + STOR continues an interrupted upload (a new upload that
        // holds the stored prefix and the rest).
        unftp_core::storage::FEATURE_RESTART
    }

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
        let sink = self
            .receiver
            .begin_upload(
                &user.session,
                &user.account,
                UploadRequest { path, name, mode },
            )
            .await
            .map_err(fs_err)?;
        let mut guard = SinkGuard {
            sink: Some(sink),
            probe: user.probe.clone(),
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(self.stall_timeout, input.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    guard
                        .abandon(PartialReason::DataConnectionLost(e.to_string()))
                        .await;
                    return Err(SError::new(ErrorKind::ConnectionClosed, e));
                }
                Err(_) => {
                    let seconds = self.stall_timeout.as_secs();
                    guard.abandon(PartialReason::Stalled { seconds }).await;
                    return Err(SError::from(ErrorKind::ConnectionClosed));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = guard.get()?.write(&buf[..n]).await {
                let reason = match &e {
                    FsError::TooLarge(limit) => PartialReason::TooLarge { limit: *limit },
                    other => PartialReason::StorageError(other.to_string()),
                };
                guard.abandon(reason).await;
                return Err(fs_err(e));
            }
        }
        // The data connection ended. If the client went with it, the file may
        // be cut short and nobody would read our 226: keep it as partial.
        if user.probe.client_gone_within(CLIENT_GONE_GRACE).await {
            guard.abandon(PartialReason::ControlConnectionClosed).await;
            return Err(SError::from(ErrorKind::ConnectionClosed));
        }
        let sink = guard
            .sink
            .take()
            .ok_or_else(|| SError::from(ErrorKind::LocalError))?;
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
    let counter = Arc::new(std::sync::Mutex::new(ConnectionCounter::default()));
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
        let counter = counter.clone();
        tokio::spawn(async move {
            let local = stream
                .local_addr()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let session = session_for(peer, local);
            let slot = match ConnectionSlot::take(&counter, peer.ip(), &settings) {
                Ok(slot) => slot,
                Err(reason) => {
                    receiver.refused(&session, reason).await;
                    let mut stream = stream;
                    let msg = format!("421 Service not available: {reason}; try again later\r\n");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(msg.as_bytes()),
                    )
                    .await;
                    return;
                }
            };
            receiver.connected(&session).await;
            let probe = Arc::new(ControlProbe::new(&stream));
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
                probe: probe.clone(),
                logged_in: logged_in.clone(),
            });
            // A connection that does not log in in time is closed.
            let watchdog = {
                let probe = probe.clone();
                let logged_in = logged_in.clone();
                let receiver = receiver.clone();
                let session = session.clone();
                let login_timeout = settings.login_timeout;
                tokio::spawn(async move {
                    tokio::time::sleep(login_timeout).await;
                    let logged = logged_in.lock().map(|g| g.is_some()).unwrap_or(true);
                    if !logged {
                        receiver
                            .refused(
                                &session,
                                &format!(
                                    "no login within {}s (ftp.login_timeout)",
                                    login_timeout.as_secs()
                                ),
                            )
                            .await;
                        probe.hang_up();
                    }
                })
            };
            let mut builder =
                libunftp::ServerBuilder::<LuStorage, LuUser>::with_user_detail_provider(
                    Box::new(move || storage.clone()),
                    users,
                )
                .authenticator(auth)
                .greeting(settings.greeting)
                .active_passive_mode(libunftp::options::ActivePassiveMode::ActiveAndPassive)
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
            watchdog.abort();
            let account = logged_in.lock().ok().and_then(|g| g.clone());
            receiver
                .disconnected(&session, account.as_ref(), &reason)
                .await;
            drop(slot);
        });
    }
}
