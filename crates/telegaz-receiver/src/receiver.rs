//! The receiver: device accounts, each device's namespace, and uploads that are
//! durable before they are acknowledged. It is the FTP engine's [`Backend`].

use std::io::SeekFrom;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use secrecy::SecretString;
use telegaz_auth::{LoginThrottle, NetworkAllowList, ThrottlePolicy};
use telegaz_domain::{
    AuditKind, DeviceId, NewAuditEvent, NewUpload, PartialReason, Timestamp, UploadFinish,
    UploadId, UploadMode, UploadStatus,
};
use telegaz_ftp::{
    Account, Backend, Entry, FsError, LoginError, Receipt, SessionInfo, UploadRequest, UploadSink,
    VPath, WriteMode,
};
use telegaz_spool::{Spool, SpoolError, TempFile};
use telegaz_store::{Database, StoreError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::Semaphore;

use crate::audit::AuditLog;

/// Settings of the receiver that are not the FTP engine's.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub max_file_size: u64,
    pub login_policy: ThrottlePolicy,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        ReceiverSettings {
            max_file_size: 16 * 1024 * 1024,
            login_policy: ThrottlePolicy::default(),
        }
    }
}

struct Inner {
    db: Arc<dyn Database>,
    spool: Spool,
    audit: AuditLog,
    throttle: LoginThrottle,
    /// Password checks are deliberately expensive; bound how many run at once.
    verify_slots: Semaphore,
    max_file_size: u64,
}

/// Receives device uploads. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

/// A logged-in device.
#[derive(Debug, Clone)]
pub struct DeviceAccount {
    pub device_id: DeviceId,
    pub name: String,
    pub login: String,
    /// FTPS only: data connections need `PROT P`.
    pub tls_required: bool,
}

impl Account for DeviceAccount {
    fn name(&self) -> &str {
        &self.name
    }

    fn tls_required(&self) -> bool {
        self.tls_required
    }
}

pub(crate) fn event(kind: AuditKind, outcome: &str, session: &SessionInfo) -> NewAuditEvent {
    let mut e = NewAuditEvent::new(kind, outcome);
    e.session = Some(session.id.clone());
    e.peer = Some(session.peer.to_string());
    e
}

fn device_event(
    kind: AuditKind,
    outcome: &str,
    session: &SessionInfo,
    account: &DeviceAccount,
) -> NewAuditEvent {
    let mut e = event(kind, outcome, session);
    e.device_id = Some(account.device_id);
    e.login = Some(account.login.clone());
    e
}

/// The audit event of a namespace operation (mkdir, rmdir, delete, rename).
fn ns_event<T, E>(
    kind: AuditKind,
    result: &Result<T, E>,
    session: &SessionInfo,
    account: &DeviceAccount,
    detail: String,
) -> NewAuditEvent {
    let mut e = device_event(
        kind,
        if result.is_ok() { "ok" } else { "refused" },
        session,
        account,
    );
    e.detail = detail;
    e
}

fn store_to_fs(e: StoreError) -> FsError {
    match e {
        StoreError::NotFound { what } => FsError::NotFound(what),
        StoreError::Conflict(msg) => FsError::NotAllowed(msg),
        other => {
            tracing::error!(error = %other, "database error");
            FsError::Local("the database is unavailable, try again later".into())
        }
    }
}

fn spool_to_fs(e: SpoolError) -> FsError {
    if e.is_out_of_space() {
        tracing::error!(error = %e, "spool is out of space");
        FsError::NoSpace("the server's disk is full".into())
    } else {
        tracing::error!(error = %e, "spool error");
        FsError::Local("cannot store the file, try again later".into())
    }
}

/// IPv4-mapped IPv6 peers are IPv4 peers (dual-stack listeners report them so).
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl Receiver {
    pub fn new(
        db: Arc<dyn Database>,
        spool: Spool,
        audit: AuditLog,
        settings: ReceiverSettings,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Receiver {
            inner: Arc::new(Inner {
                db,
                spool,
                audit,
                throttle: LoginThrottle::new(settings.login_policy),
                verify_slots: Semaphore::new(cpus),
                max_file_size: settings.max_file_size,
            }),
        }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    async fn check_password(
        &self,
        login: &str,
        password: SecretString,
    ) -> Result<Option<telegaz_domain::Device>, LoginError> {
        let inner = &self.inner;
        let _slot = inner
            .verify_slots
            .acquire()
            .await
            .map_err(|_| LoginError::Unavailable("shutting down".into()))?;
        let device = inner.db.device_by_login(login).await.map_err(|e| {
            tracing::error!(error = %e, "database error during login");
            LoginError::Unavailable("database unavailable".into())
        })?;
        let hash = device.as_ref().map(|d| d.password_hash.clone());
        let verified = tokio::task::spawn_blocking(move || match hash {
            Some(h) => telegaz_auth::verify_password(&h, &password).map_err(|e| e.to_string()),
            None => {
                telegaz_auth::dummy_verify(&password);
                Ok(false)
            }
        })
        .await
        .map_err(|e| LoginError::Unavailable(format!("password check failed: {e}")))?;
        match verified {
            Ok(true) => Ok(device),
            Ok(false) => Err(if device.is_some() {
                LoginError::BadPassword
            } else {
                LoginError::UnknownUser
            }),
            Err(e) => {
                tracing::error!(login, error = %e, "stored password hash is unreadable; reset it with `telegaz device passwd`");
                Err(LoginError::Unavailable(
                    "stored password hash is unreadable".into(),
                ))
            }
        }
    }

    async fn login_inner(
        &self,
        session: &SessionInfo,
        user: &str,
        password: SecretString,
    ) -> Result<DeviceAccount, (LoginError, Option<DeviceId>)> {
        let ip = canonical_ip(session.peer.ip());
        let throttle = &self.inner.throttle;
        if let Err(b) = throttle.check(ip, user, Instant::now()) {
            return Err((
                LoginError::Blocked {
                    scope: b.scope.as_str().into(),
                    remaining_secs: b.remaining.as_secs().max(1),
                },
                None,
            ));
        }
        let device = match self.check_password(user, password).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err((LoginError::UnknownUser, None)),
            Err(e @ (LoginError::BadPassword | LoginError::UnknownUser)) => {
                if let Some(b) = throttle.record_failure(ip, user, Instant::now()) {
                    tracing::warn!(login = user, %ip, scope = b.scope.as_str(), "repeated failed logins: temporary block");
                }
                let id = self
                    .inner
                    .db
                    .device_by_login(user)
                    .await
                    .ok()
                    .flatten()
                    .map(|d| d.id);
                return Err((e, id));
            }
            Err(e) => return Err((e, None)),
        };
        if !device.enabled {
            return Err((LoginError::Disabled, Some(device.id)));
        }
        let allowed = NetworkAllowList::parse(&device.allowed_networks).map_err(|e| {
            tracing::error!(device = %device.name, error = %e, "device has an unreadable network allow-list");
            (LoginError::Unavailable(e.to_string()), Some(device.id))
        })?;
        if !allowed.allows(ip) {
            return Err((LoginError::AddressNotAllowed, Some(device.id)));
        }
        if device.tls_required && !session.tls {
            return Err((LoginError::TlsRequired, Some(device.id)));
        }
        throttle.record_success(ip, user);
        Ok(DeviceAccount {
            device_id: device.id,
            name: device.name.to_string(),
            login: device.login.to_string(),
            tls_required: device.tls_required,
        })
    }

    /// A raw-TCP unit identified by its source address (`tcp.by_address`)
    /// instead of a password: the device must exist, be enabled, allow the
    /// address and not require TLS. Audited like a login.
    pub async fn login_by_address(
        &self,
        session: &SessionInfo,
        device_name: &str,
    ) -> Result<DeviceAccount, LoginError> {
        let result = self.address_login_inner(session, device_name).await;
        let login = match &result {
            Ok(a) => a.login.clone(),
            Err(_) => device_name.to_owned(),
        };
        self.record_login(session, &login, &result).await;
        result.map_err(|(e, _)| e)
    }

    async fn address_login_inner(
        &self,
        session: &SessionInfo,
        device_name: &str,
    ) -> Result<DeviceAccount, (LoginError, Option<DeviceId>)> {
        let device = match self.inner.db.device_by_name(device_name).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                tracing::error!(
                    device = device_name,
                    "tcp.by_address names a device that does not exist; check `telegaz device list`"
                );
                return Err((LoginError::UnknownUser, None));
            }
            Err(e) => {
                tracing::error!(error = %e, "database error during login");
                return Err((LoginError::Unavailable("database unavailable".into()), None));
            }
        };
        if !device.enabled {
            return Err((LoginError::Disabled, Some(device.id)));
        }
        let allowed = NetworkAllowList::parse(&device.allowed_networks)
            .map_err(|e| (LoginError::Unavailable(e.to_string()), Some(device.id)))?;
        if !allowed.allows(canonical_ip(session.peer.ip())) {
            return Err((LoginError::AddressNotAllowed, Some(device.id)));
        }
        if device.tls_required && !session.tls {
            return Err((LoginError::TlsRequired, Some(device.id)));
        }
        Ok(DeviceAccount {
            device_id: device.id,
            name: device.name.to_string(),
            login: device.login.to_string(),
            tls_required: device.tls_required,
        })
    }

    /// Audit a login attempt and count it.
    async fn record_login(
        &self,
        session: &SessionInfo,
        user: &str,
        result: &Result<DeviceAccount, (LoginError, Option<DeviceId>)>,
    ) {
        let (outcome, kind, device_id, detail) = match result {
            Ok(a) => (
                "ok",
                AuditKind::LoginSucceeded,
                Some(a.device_id),
                String::new(),
            ),
            Err((e, id)) => (e.code(), AuditKind::LoginFailed, *id, e.to_string()),
        };
        metrics::counter!("telegaz_ftp_logins_total", "outcome" => outcome).increment(1);
        let mut e = event(kind, outcome, session);
        e.login = Some(user.to_owned());
        e.device_id = device_id;
        e.detail = detail;
        self.inner.audit.record(e).await;
    }

    fn entry_from_file(f: &telegaz_store::NsFile) -> Result<Entry, FsError> {
        Ok(Entry {
            path: VPath::resolve(&VPath::root(), &f.path)
                .map_err(|e| FsError::Local(e.to_string()))?,
            is_dir: false,
            size: f.size,
            modified: f.modified,
        })
    }
}

#[async_trait]
impl Backend for Receiver {
    type Account = DeviceAccount;
    type Upload = DeviceUpload;

    async fn connected(&self, session: &SessionInfo) {
        metrics::counter!("telegaz_ftp_connections_total").increment(1);
        metrics::gauge!("telegaz_ftp_sessions").increment(1.0);
        self.inner
            .audit
            .record(event(AuditKind::Connect, "ok", session))
            .await;
    }

    async fn refused(&self, session: &SessionInfo, reason: &str) {
        metrics::counter!("telegaz_ftp_connections_refused_total").increment(1);
        let mut e = event(AuditKind::ConnectRefused, "refused", session);
        e.detail = reason.to_owned();
        self.inner.audit.record(e).await;
    }

    async fn disconnected(
        &self,
        session: &SessionInfo,
        account: Option<&DeviceAccount>,
        reason: &str,
    ) {
        metrics::gauge!("telegaz_ftp_sessions").decrement(1.0);
        let mut e = match account {
            Some(a) => device_event(AuditKind::Disconnect, "ok", session, a),
            None => event(AuditKind::Disconnect, "ok", session),
        };
        e.detail = reason.to_owned();
        self.inner.audit.record(e).await;
    }

    async fn login(
        &self,
        session: &SessionInfo,
        user: &str,
        password: SecretString,
    ) -> Result<DeviceAccount, LoginError> {
        let result = self.login_inner(session, user, password).await;
        self.record_login(session, user, &result).await;
        result.map_err(|(e, _)| e)
    }

    async fn login_refused(&self, session: &SessionInfo, user: Option<&str>, error: &LoginError) {
        let id = match user {
            Some(u) => self
                .inner
                .db
                .device_by_login(u)
                .await
                .ok()
                .flatten()
                .map(|d| d.id),
            None => None,
        };
        self.record_login(session, user.unwrap_or(""), &Err((error.clone(), id)))
            .await;
    }

    async fn begin_upload(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        request: UploadRequest,
    ) -> Result<DeviceUpload, FsError> {
        let inner = &self.inner;
        let db = &inner.db;
        let path = request.path.as_str();
        if request.path.is_root() {
            return Err(FsError::BadName("a file name is required".into()));
        }
        let parent = request.path.parent();
        if !db
            .ns_dir_exists(account.device_id, parent.as_str())
            .await
            .map_err(store_to_fs)?
        {
            return Err(FsError::NotFound(parent.to_string()));
        }
        if db
            .ns_dir_exists(account.device_id, path)
            .await
            .map_err(store_to_fs)?
        {
            return Err(FsError::NotAllowed(format!("{path} is a directory")));
        }
        let existing = match request.mode {
            WriteMode::Append | WriteMode::Resume(_) => db
                .ns_file(account.device_id, path)
                .await
                .map_err(store_to_fs)?,
            WriteMode::Store { .. } => None,
        };
        let (mode, offset) = match request.mode {
            WriteMode::Store { unique: false } => (UploadMode::Store, 0),
            WriteMode::Store { unique: true } => (UploadMode::StoreUnique, 0),
            WriteMode::Resume(0) => (UploadMode::Store, 0),
            WriteMode::Append => (UploadMode::Append, existing.as_ref().map_or(0, |f| f.size)),
            WriteMode::Resume(n) => match &existing {
                Some(f) if f.size >= n => (UploadMode::Resume, n),
                Some(f) => {
                    return Err(FsError::NotAllowed(format!(
                        "restart offset {n} is beyond the end of {path} ({} bytes)",
                        f.size
                    )));
                }
                None => return Err(FsError::NotFound(path.to_owned())),
            },
        };
        if offset > inner.max_file_size {
            return Err(FsError::TooLarge(inner.max_file_size));
        }
        let prefix = existing
            .as_ref()
            .filter(|_| offset > 0)
            .and_then(|f| f.sha256.map(|sha| (f.upload_id, sha)));
        if offset > 0 && prefix.is_none() {
            return Err(FsError::NotAllowed(format!(
                "{path} has no stored content to continue"
            )));
        }
        let new = NewUpload {
            device_id: account.device_id,
            original_name: request.name,
            path: path.to_owned(),
            mode,
            resumed_from: prefix.map(|(id, _)| id),
            offset,
            peer: Some(session.peer.to_string()),
            session: Some(session.id.clone()),
            started_at: Timestamp::now(),
        };
        let id = db.begin_upload(&new).await.map_err(store_to_fs)?;
        let mut temp = match inner.spool.create_temp(id.0).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(upload_id = id.0, error = %e, "cannot create spool file");
                return Err(spool_to_fs(e));
            }
        };
        if let Some((_, sha)) = prefix
            && let Err(e) = copy_prefix(&inner.spool, &mut temp, &sha, offset).await
        {
            // Record what we have (the start of the prefix) rather than leave it dangling.
            let sink =
                DeviceUpload::new(self.clone(), session, account, id, temp, offset, mode, path);
            let _ = sink
                .finish(Ending::Partial(PartialReason::StorageError(e.to_string())))
                .await;
            return Err(spool_to_fs(e));
        }
        let mut e = device_event(AuditKind::UploadStarted, "ok", session, account);
        e.upload_id = Some(id);
        e.detail = match mode {
            UploadMode::Store | UploadMode::StoreUnique => format!("{path} ({})", mode.as_str()),
            UploadMode::Append | UploadMode::Resume => {
                format!("{path} ({} at byte {offset})", mode.as_str())
            }
        };
        inner.audit.record(e).await;
        Ok(DeviceUpload::new(
            self.clone(),
            session,
            account,
            id,
            temp,
            offset,
            mode,
            path,
        ))
    }

    async fn stat(&self, account: &DeviceAccount, path: &VPath) -> Result<Entry, FsError> {
        let db = &self.inner.db;
        if let Some(f) = db
            .ns_file(account.device_id, path.as_str())
            .await
            .map_err(store_to_fs)?
        {
            return Self::entry_from_file(&f);
        }
        if db
            .ns_dir_exists(account.device_id, path.as_str())
            .await
            .map_err(store_to_fs)?
        {
            return Ok(Entry {
                path: path.clone(),
                is_dir: true,
                size: 0,
                modified: Timestamp::UNIX_EPOCH,
            });
        }
        Err(FsError::NotFound(path.to_string()))
    }

    async fn list(&self, account: &DeviceAccount, dir: &VPath) -> Result<Vec<Entry>, FsError> {
        let db = &self.inner.db;
        if let Some(f) = db
            .ns_file(account.device_id, dir.as_str())
            .await
            .map_err(store_to_fs)?
        {
            return Ok(vec![Self::entry_from_file(&f)?]);
        }
        if !db
            .ns_dir_exists(account.device_id, dir.as_str())
            .await
            .map_err(store_to_fs)?
        {
            return Err(FsError::NotFound(dir.to_string()));
        }
        let listing = db
            .ns_list(account.device_id, dir.as_str())
            .await
            .map_err(store_to_fs)?;
        let mut out = Vec::with_capacity(listing.dirs.len() + listing.files.len());
        for d in listing.dirs {
            out.push(Entry {
                path: VPath::resolve(&VPath::root(), &d.path)
                    .map_err(|e| FsError::Local(e.to_string()))?,
                is_dir: true,
                size: 0,
                modified: d.created,
            });
        }
        for f in &listing.files {
            out.push(Self::entry_from_file(f)?);
        }
        Ok(out)
    }

    async fn mkdir(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        path: &VPath,
    ) -> Result<(), FsError> {
        let result = self
            .inner
            .db
            .ns_mkdir(account.device_id, path.as_str())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => FsError::Exists(path.to_string()),
                other => store_to_fs(other),
            });
        let e = ns_event(
            AuditKind::MakeDir,
            &result,
            session,
            account,
            path.to_string(),
        );
        self.inner.audit.record(e).await;
        result
    }

    async fn rmdir(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        path: &VPath,
    ) -> Result<(), FsError> {
        let result = self
            .inner
            .db
            .ns_rmdir(account.device_id, path.as_str())
            .await
            .map_err(store_to_fs);
        let e = ns_event(
            AuditKind::RemoveDir,
            &result,
            session,
            account,
            path.to_string(),
        );
        self.inner.audit.record(e).await;
        result
    }

    async fn delete(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        path: &VPath,
    ) -> Result<(), FsError> {
        let result = self
            .inner
            .db
            .ns_delete(account.device_id, path.as_str())
            .await
            .map_err(store_to_fs);
        let detail =
            format!("{path} (removed from the device's view; the upload and its bytes are kept)");
        let mut e = ns_event(AuditKind::Delete, &result, session, account, detail);
        e.upload_id = result.as_ref().ok().copied();
        self.inner.audit.record(e).await;
        result.map(|_| ())
    }

    async fn rename(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        from: &VPath,
        to: &VPath,
    ) -> Result<(), FsError> {
        let result = self
            .inner
            .db
            .ns_rename(account.device_id, from.as_str(), to.as_str())
            .await
            .map_err(store_to_fs);
        let mut e = ns_event(
            AuditKind::Rename,
            &result,
            session,
            account,
            format!("{from} -> {to}"),
        );
        if let Ok(telegaz_store::Renamed::File {
            upload_id,
            replaced,
        }) = &result
        {
            e.upload_id = Some(*upload_id);
            if let Some(r) = replaced {
                e.detail.push_str(&format!(
                    " (replaces the name of upload #{r}, which is kept)"
                ));
            }
        }
        self.inner.audit.record(e).await;
        result.map(|_| ())
    }

    async fn read(
        &self,
        account: &DeviceAccount,
        path: &VPath,
        offset: u64,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, FsError> {
        let file = self
            .inner
            .db
            .ns_file(account.device_id, path.as_str())
            .await
            .map_err(store_to_fs)?
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let sha = file
            .sha256
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let mut f = self
            .inner
            .spool
            .open_object(&sha)
            .await
            .map_err(spool_to_fs)?;
        f.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| FsError::Local(e.to_string()))?;
        Ok(Box::new(f))
    }
}

async fn copy_prefix(
    spool: &Spool,
    temp: &mut TempFile,
    sha: &telegaz_domain::Sha256Digest,
    len: u64,
) -> Result<(), SpoolError> {
    let file = spool.open_object(sha).await?;
    let mut reader = file.take(len);
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| SpoolError::Io {
            path: spool.object_path(sha),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        temp.write(&buf[..n]).await?;
        copied += n as u64;
    }
    if copied < len {
        return Err(SpoolError::Inconsistent {
            path: spool.object_path(sha),
            detail: format!("expected at least {len} bytes to continue from, found {copied}"),
        });
    }
    Ok(())
}

/// How an upload ends.
enum Ending {
    Complete,
    Partial(PartialReason),
}

/// One upload in progress.
pub struct DeviceUpload {
    receiver: Receiver,
    session: SessionInfo,
    account: DeviceAccount,
    id: UploadId,
    temp: TempFile,
    offset: u64,
    mode: UploadMode,
    path: String,
}

impl DeviceUpload {
    #[allow(clippy::too_many_arguments)]
    fn new(
        receiver: Receiver,
        session: &SessionInfo,
        account: &DeviceAccount,
        id: UploadId,
        temp: TempFile,
        offset: u64,
        mode: UploadMode,
        path: &str,
    ) -> Self {
        DeviceUpload {
            receiver,
            session: session.clone(),
            account: account.clone(),
            id,
            temp,
            offset,
            mode,
            path: path.to_owned(),
        }
    }

    pub fn upload_id(&self) -> UploadId {
        self.id
    }

    async fn finish(self, ending: Ending) -> Result<Receipt, FsError> {
        let inner = &self.receiver.inner;
        let id = self.id;
        let received = self.received();
        let committed = match inner.spool.commit(self.temp).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(upload_id = id.0, error = %e, "cannot make an upload durable");
                // Try once more to keep what reached the disk, as partial.
                if let Ok(c) = inner.spool.commit_existing_temp(id.0).await {
                    let reason = PartialReason::StorageError(e.to_string());
                    let finish = UploadFinish::partial(c.size, c.sha256, &reason, Timestamp::now());
                    let _ = inner.db.finish_upload(id, &finish).await;
                    let _ = inner.spool.remove_temp(id.0).await;
                }
                return Err(spool_to_fs(e));
            }
        };
        let (status, reason) = match &ending {
            Ending::Complete => (UploadStatus::Complete, None),
            Ending::Partial(r) => (UploadStatus::Partial, Some(r.to_string())),
        };
        let finish = UploadFinish {
            status,
            size: committed.size,
            sha256: committed.sha256,
            reason: reason.clone(),
            finished_at: Timestamp::now(),
        };
        let finished = match inner.db.finish_upload(id, &finish).await {
            Ok(f) => f,
            Err(e) => {
                // The bytes are durable in the spool and the temporary file stays:
                // start-up reconciliation will close this record. The client must not
                // hear 226.
                tracing::error!(upload_id = id.0, error = %e, "cannot record the end of an upload");
                return Err(store_to_fs(e));
            }
        };
        if let Err(e) = inner.spool.remove_temp(id.0).await {
            tracing::warn!(upload_id = id.0, error = %e, "cannot remove a temporary spool file; it will be cleaned up at start-up");
        }
        metrics::counter!("telegaz_uploads_total", "status" => status.as_str()).increment(1);
        metrics::counter!("telegaz_upload_bytes_total").increment(received);
        if finished.duplicate_of.is_some() {
            metrics::counter!("telegaz_uploads_duplicate_total").increment(1);
        }
        let mut e = device_event(
            AuditKind::UploadFinished,
            status.as_str(),
            &self.session,
            &self.account,
        );
        e.upload_id = Some(id);
        e.detail = format!(
            "{} ({}): {} bytes, sha256 {}{}{}",
            self.path,
            self.mode.as_str(),
            committed.size,
            committed.sha256,
            finished
                .duplicate_of
                .map(|d| format!(", duplicate of upload #{d}"))
                .unwrap_or_default(),
            reason.map(|r| format!(", {r}")).unwrap_or_default(),
        );
        inner.audit.record(e).await;
        let mut note = format!(
            "upload #{id}, {} bytes, sha256 {}",
            committed.size, committed.sha256
        );
        if let Some(d) = finished.duplicate_of {
            note.push_str(&format!(", duplicate of #{d}"));
        }
        Ok(Receipt {
            size: committed.size,
            note,
        })
    }
}

#[async_trait]
impl UploadSink for DeviceUpload {
    async fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        let limit = self.receiver.inner.max_file_size;
        let size = self.temp.size();
        let room = limit.saturating_sub(size);
        if (data.len() as u64) > room {
            let keep = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            self.temp.write(&data[..keep]).await.map_err(spool_to_fs)?;
            return Err(FsError::TooLarge(limit));
        }
        self.temp.write(data).await.map_err(spool_to_fs)
    }

    fn received(&self) -> u64 {
        self.temp.size().saturating_sub(self.offset)
    }

    async fn complete(self) -> Result<Receipt, FsError> {
        self.finish(Ending::Complete).await
    }

    async fn abandon(self, reason: PartialReason) -> Result<Receipt, FsError> {
        self.finish(Ending::Partial(reason)).await
    }
}
