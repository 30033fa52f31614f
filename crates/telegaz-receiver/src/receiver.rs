//! The receiver: device accounts, each device's namespace, and uploads that are
//! durable before they are acknowledged. It is the FTP engine's [`Backend`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::SecretString;
use telegaz_auth::{BlockScope, LoginThrottle, NetworkAllowList, ThrottlePolicy};
use telegaz_domain::{
    AuditKind, Ban, DeviceId, NewAuditEvent, NewBan, NewUpload, PartialReason, Timestamp,
    UploadFinish, UploadId, UploadMode, UploadStatus,
};
use telegaz_ftp::{
    Account, Backend, Entry, FsError, LoginError, Receipt, SessionInfo, UploadRequest, UploadSink,
    VPath, WriteMode,
};
use telegaz_spool::{Spool, SpoolError, TempFile};
use telegaz_store::{BAN_BY_SYSTEM, Database, DbHealth, StoreError};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Semaphore;

use crate::audit::AuditLog;
use crate::outage::{
    DeviceCache, OutageError, OutageJournal, OutageRecord, RecordEnd, ReplayReport, db_time,
};

/// Settings of the receiver that are not the FTP engine's.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub max_file_size: u64,
    pub login_policy: ThrottlePolicy,
    /// The longest a session waits for one database operation before the
    /// receiver treats the database as unavailable and falls back to the
    /// device cache and the outage journal.
    pub database_wait: Duration,
    /// Where uploads received while the database is away are journalled.
    pub outage_dir: PathBuf,
    /// Shared with `/healthz` and the metrics.
    pub health: DbHealth,
    /// How often the device cache is read again from the database.
    pub device_refresh: Duration,
    /// The longest a block after failed logins grows to with repeats.
    pub max_block_for: Duration,
    /// Earlier blocks made within this time back count as repeats.
    pub repeat_lookback: Duration,
    /// This receiver's id, recorded with each transfer it starts, so that
    /// start-up reconciliation closes only its own (several receivers may
    /// share the database). `telegaz serve` takes it from `receiver_id`.
    pub receiver_id: String,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        ReceiverSettings {
            max_file_size: 16 * 1024 * 1024,
            login_policy: ThrottlePolicy::default(),
            database_wait: Duration::from_secs(3),
            outage_dir: PathBuf::from("outage"),
            health: DbHealth::new(),
            device_refresh: Duration::from_secs(30),
            max_block_for: Duration::from_secs(24 * 3600),
            repeat_lookback: Duration::from_secs(7 * 24 * 3600),
            receiver_id: String::from("receiver"),
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
    /// Uploads whose bytes the raw store did not take (object store away): the
    /// client heard 451, the bytes wait in the spool's `incoming/`, and
    /// [`Receiver::retry_unsettled`] stores them (as partial, with this reason).
    unsettled: Mutex<BTreeMap<UploadId, PartialReason>>,
    database_wait: Duration,
    device_refresh: Duration,
    receiver_id: String,
    health: DbHealth,
    journal: OutageJournal,
    devices: DeviceCache,
    /// Server-made names of journalled uploads: negative, counting down.
    next_key: AtomicI64,
    /// Database writes given up on that have not ended yet.
    late_writes: Arc<AtomicUsize>,
    /// A sidecar was finished since the replayer last looked.
    journal_dirty: AtomicBool,
    max_block_for: Duration,
    repeat_lookback: Duration,
}

/// Why a database call on the FTP path did not give an answer.
enum DbFail {
    /// Away, locked or too slow: fall back.
    Unavailable,
    /// It answered with a refusal.
    Store(StoreError),
}

fn db_fail_to_fs(e: DbFail) -> FsError {
    match e {
        DbFail::Unavailable => {
            FsError::Local("the database is unavailable, try again later".into())
        }
        DbFail::Store(e) => store_to_fs(e),
    }
}

/// Why an upload could not be begun with a database record.
enum BeginFail {
    Refused(FsError),
    /// The database is away; the record that may still appear late, if one was asked for.
    Unavailable(Option<NewUpload>),
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

/// How long a block lasts after `repeats` earlier ones: doubled each time, at most `max`.
pub(crate) fn grown_block(first: Duration, repeats: u32, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(repeats.min(31)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max.max(first))
}

/// The refusal a ban gives.
fn banned(ban: &Ban) -> LoginError {
    LoginError::Banned {
        id: ban.id,
        target: ban.target(),
        until: ban.until_text(),
    }
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
    ) -> Result<Self, OutageError> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let journal = OutageJournal::open(settings.outage_dir)?;
        let seed = i64::try_from(Timestamp::now().as_nanosecond() / 1000).unwrap_or(i64::MAX);
        Ok(Receiver {
            inner: Arc::new(Inner {
                db,
                spool,
                audit,
                throttle: LoginThrottle::new(settings.login_policy),
                verify_slots: Semaphore::new(cpus),
                max_file_size: settings.max_file_size,
                unsettled: Mutex::new(BTreeMap::new()),
                database_wait: settings.database_wait,
                receiver_id: settings.receiver_id.clone(),
                device_refresh: settings.device_refresh,
                health: settings.health,
                journal,
                devices: DeviceCache::default(),
                next_key: AtomicI64::new(-seed.max(1)),
                late_writes: Arc::default(),
                journal_dirty: AtomicBool::new(true),
                max_block_for: settings.max_block_for,
                repeat_lookback: settings.repeat_lookback,
            }),
        })
    }

    pub fn health(&self) -> &DbHealth {
        &self.inner.health
    }

    /// A server-made name for a journalled upload that no sidecar or
    /// temporary file has (keys of an earlier run are not reused).
    async fn next_outage_key(&self) -> i64 {
        let inner = &self.inner;
        let mut key = inner.next_key.fetch_sub(1, Ordering::AcqRel);
        // Bounded: when the directories cannot be read, writing the sidecar
        // or the temporary file fails with a message of its own.
        for _ in 0..1000 {
            let taken = inner.journal.contains(key).await
                || tokio::fs::try_exists(inner.spool.temp_path(key))
                    .await
                    .unwrap_or(true);
            if !taken {
                break;
            }
            key = inner.next_key.fetch_sub(1, Ordering::AcqRel);
        }
        key
    }

    /// A database read on the FTP path, bounded by `database_wait`.
    async fn db_read<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, DbFail> {
        let inner = &self.inner;
        match tokio::time::timeout(inner.database_wait, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_unavailable() => {
                inner.health.mark_down(&format!("{what}: {e}"));
                Err(DbFail::Unavailable)
            }
            Ok(Err(e)) => Err(DbFail::Store(e)),
            Err(_) => {
                inner.health.mark_down(&format!(
                    "{what}: no answer within {} ms",
                    inner.database_wait.as_millis()
                ));
                Err(DbFail::Unavailable)
            }
        }
    }

    /// A database write on the FTP path, bounded by `database_wait`. A write
    /// given up on runs to its end in the background (it may still commit;
    /// the outage replay finds such a record by its identity).
    async fn db_write<T: Send + 'static>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, DbFail> {
        let inner = &self.inner;
        let mut handle = tokio::spawn(fut);
        match tokio::time::timeout(inner.database_wait, &mut handle).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) if e.is_unavailable() => {
                inner.health.mark_down(&format!("{what}: {e}"));
                Err(DbFail::Unavailable)
            }
            Ok(Ok(Err(e))) => Err(DbFail::Store(e)),
            Ok(Err(join)) => {
                tracing::error!(error = %join, "database task failed");
                Err(DbFail::Unavailable)
            }
            Err(_) => {
                inner.health.mark_down(&format!(
                    "{what}: no answer within {} ms",
                    inner.database_wait.as_millis()
                ));
                let late = inner.late_writes.clone();
                late.fetch_add(1, Ordering::AcqRel);
                let what = what.to_owned();
                tokio::spawn(async move {
                    if let Ok(Ok(_)) = handle.await {
                        tracing::warn!(
                            what,
                            "a database write ended after the receiver had given up on it; the outage replay takes it into account"
                        );
                    }
                    late.fetch_sub(1, Ordering::AcqRel);
                });
                Err(DbFail::Unavailable)
            }
        }
    }

    /// The device with this login: from the database, or while it is away
    /// from the cache of what the database last said.
    async fn lookup_device(
        &self,
        login: &str,
    ) -> Result<Option<telegaz_domain::Device>, LoginError> {
        let inner = &self.inner;
        if !inner.health.is_down() {
            match self
                .db_read("looking up a device", inner.db.device_by_login(login))
                .await
            {
                Ok(d) => {
                    inner.devices.update(login, d.as_ref());
                    return Ok(d);
                }
                Err(DbFail::Store(e)) => {
                    tracing::error!(error = %e, "database error during login");
                    return Err(LoginError::Unavailable("database error".into()));
                }
                Err(DbFail::Unavailable) => {}
            }
        }
        match inner.devices.get(login) {
            Some(d) => {
                tracing::info!(
                    login,
                    "database unavailable: login checked against the cached device list"
                );
                Ok(Some(d))
            }
            None => Err(LoginError::Unavailable(
                "database unavailable and the login is not in the cached device list".into(),
            )),
        }
    }

    /// Read the whole device list into the cache.
    pub async fn refresh_devices(&self) -> Result<usize, String> {
        let inner = &self.inner;
        match self
            .db_read("reading the devices", inner.db.list_devices())
            .await
        {
            Ok(devices) => {
                inner.devices.replace_all(devices);
                Ok(inner.devices.len())
            }
            Err(DbFail::Unavailable) => Err("the database is unavailable".into()),
            Err(DbFail::Store(e)) => Err(e.to_string()),
        }
    }

    /// This receiver's id (recorded with the transfers it starts).
    pub fn receiver_id(&self) -> &str {
        &self.inner.receiver_id
    }

    /// Record what the outage journal holds. At start-up (before
    /// reconciliation) this also closes transfers the stop interrupted.
    pub async fn replay_outage(&self, startup: bool) -> Result<ReplayReport, OutageError> {
        let inner = &self.inner;
        inner.journal_dirty.store(false, Ordering::Release);
        let result = crate::outage::replay(
            &*inner.db,
            &inner.spool,
            &inner.journal,
            &inner.audit,
            startup,
            &inner.receiver_id,
        )
        .await;
        if result.is_err() {
            inner.journal_dirty.store(true, Ordering::Release);
        }
        inner.health.set_waiting(inner.journal.count().await);
        result
    }

    /// Watches the database while the server runs: refreshes the device cache,
    /// and while the database is away (or uploads wait in the journal) checks
    /// every second whether it is back and records what waits.
    pub async fn run_outage_tasks(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        const TICK: Duration = Duration::from_secs(1);
        let inner = &self.inner;
        let mut last_refresh = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let busy = inner.health.is_down()
                || inner.health.waiting() > 0
                || inner.journal_dirty.load(Ordering::Acquire);
            if !busy {
                if last_refresh.elapsed() >= inner.device_refresh {
                    last_refresh = Instant::now();
                    if let Err(e) = self.refresh_devices().await {
                        tracing::warn!(error = %e, "cannot refresh the device cache");
                    }
                }
                continue;
            }
            tokio::select! {
                recovered = self.recover_once() => {
                    if recovered {
                        last_refresh = Instant::now();
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// One look at an unavailable database (or waiting uploads): when it
    /// takes writes again, record what the journal holds. True when it did.
    async fn recover_once(&self) -> bool {
        // Longer than SQLite's busy timeout: one probe at a time, which ends
        // as soon as a lock is released.
        const PROBE_WAIT: Duration = Duration::from_secs(35);
        const LATE_WAIT: Duration = Duration::from_secs(120);
        let inner = &self.inner;
        match tokio::time::timeout(PROBE_WAIT, inner.db.check_writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                inner
                    .health
                    .mark_down(&format!("checking the database: {e}"));
                return false;
            }
            Err(_) => {
                inner.health.mark_down("checking the database: no answer");
                return false;
            }
        }
        // Writes given up on may still land; let them end first, so that
        // the replay sees what they recorded.
        let waited = Instant::now();
        while inner.late_writes.load(Ordering::Acquire) > 0 && waited.elapsed() < LATE_WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match self.replay_outage(false).await {
            Ok(r) => {
                if !r.recorded.is_empty() || r.already > 0 {
                    tracing::info!(
                        recorded = r.recorded.len(),
                        already = r.already,
                        in_progress = r.left,
                        "outage journal replayed"
                    );
                }
                inner.health.mark_up();
                if let Err(e) = self.refresh_devices().await {
                    tracing::warn!(error = %e, "cannot refresh the device cache");
                }
                true
            }
            Err(e) if e.is_unavailable() => {
                inner.health.mark_down(&e.to_string());
                false
            }
            Err(e) => {
                // A record that cannot be read stays for an operator; the
                // database itself is fine.
                tracing::error!(error = %e, "cannot record an upload from the outage journal");
                inner.health.mark_up();
                true
            }
        }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Uploads waiting for the raw store to take their bytes.
    pub fn unsettled(&self) -> Vec<UploadId> {
        self.inner
            .unsettled
            .lock()
            .map(|u| u.keys().copied().collect())
            .unwrap_or_default()
    }

    fn set_unsettled(&self, id: UploadId, reason: Option<PartialReason>) {
        if let Ok(mut u) = self.inner.unsettled.lock() {
            match reason {
                Some(r) => u.insert(id, r),
                None => u.remove(&id),
            };
            metrics::gauge!("telegaz_uploads_awaiting_storage").set(u.len() as f64);
        }
    }

    /// Store the bytes of uploads the raw store did not take when they ended
    /// (their clients heard 451) and close their records as partial. Stops at
    /// the first one the store still refuses. Returns how many were stored.
    pub async fn retry_unsettled(&self) -> usize {
        let pending: Vec<(UploadId, PartialReason)> = match self.inner.unsettled.lock() {
            Ok(u) => u.iter().map(|(id, r)| (*id, r.clone())).collect(),
            Err(_) => return 0,
        };
        let inner = &self.inner;
        let mut stored = 0;
        for (id, reason) in pending {
            let c = match inner.spool.commit_existing_temp(id.0).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(upload_id = id.0, error = %e, "still cannot store an upload's bytes; trying again later");
                    break;
                }
            };
            let finish = UploadFinish::partial(c.size, c.sha256, &reason, Timestamp::now());
            if let Err(e) = inner.db.finish_upload(id, &finish).await {
                tracing::warn!(upload_id = id.0, error = %e, "stored an upload's bytes but cannot record it yet; trying again later");
                continue;
            }
            if let Err(e) = inner.spool.remove_temp(id.0).await {
                tracing::warn!(upload_id = id.0, error = %e, "cannot remove a temporary spool file; it will be cleaned up at start-up");
            }
            self.set_unsettled(id, None);
            tracing::info!(
                upload_id = id.0,
                bytes = c.size,
                "the bytes of an upload refused earlier are stored now; kept as partial"
            );
            let mut e = NewAuditEvent::new(AuditKind::UploadFinished, "partial");
            e.upload_id = Some(id);
            e.detail = format!(
                "{} bytes, sha256 {}, stored after the raw store came back; the client heard 451: {reason}",
                c.size, c.sha256
            );
            inner.audit.record(e).await;
            stored += 1;
        }
        stored
    }

    /// Call [`Receiver::retry_unsettled`] every `interval` until `stop` turns true.
    pub async fn run_retries(
        self,
        interval: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            if !self.unsettled().is_empty() {
                self.retry_unsettled().await;
            }
        }
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
        let device = self.lookup_device(login).await?;
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
        // The ban list is the authority while the database answers (a lifted
        // ban frees the address at once, on every receiver); the throttle's
        // own blocks stand in for it while the database is away.
        match self.ban_in_force(ip, user).await {
            Some(Some(ban)) => return Err((banned(&ban), None)),
            Some(None) => {
                if throttle.check(ip, user, Instant::now()).is_err() {
                    tracing::info!(login = user, %ip, "block lifted in the ban list: forgotten");
                    throttle.forgive(ip, user);
                }
            }
            None => {
                if let Err(b) = throttle.check(ip, user, Instant::now()) {
                    return Err((
                        LoginError::Blocked {
                            scope: b.scope.as_str().into(),
                            remaining_secs: b.remaining.as_secs().max(1),
                        },
                        None,
                    ));
                }
            }
        }
        let device = match self.check_password(user, password).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err((LoginError::UnknownUser, None)),
            Err(e @ (LoginError::BadPassword | LoginError::UnknownUser)) => {
                if let Some(b) = throttle.record_failure(ip, user, Instant::now()) {
                    tracing::warn!(login = user, %ip, scope = b.scope.as_str(), "repeated failed logins: temporary block");
                    self.record_block(session, ip, user, b.scope).await;
                }
                let id = self.inner.devices.get(user).map(|d| d.id);
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

    /// The ban in force for `user` from `ip`: `Some(ban)` from the ban list,
    /// `None` when the database did not answer in time (one indexed lookup,
    /// bounded by `ftp.database_wait`).
    async fn ban_in_force(&self, ip: IpAddr, user: &str) -> Option<Option<Ban>> {
        let inner = &self.inner;
        if inner.health.is_down() {
            return None;
        }
        let address = ip.to_string();
        match self
            .db_read(
                "looking up bans",
                inner.db.active_ban(&address, user, Timestamp::now()),
            )
            .await
        {
            Ok(ban) => Some(ban),
            Err(DbFail::Unavailable) => None,
            Err(DbFail::Store(e)) => {
                tracing::error!(error = %e, "cannot read the ban list; the in-memory blocks apply");
                None
            }
        }
    }

    /// The throttle blocked `user` from `ip` (or the whole address): record
    /// it in the ban list, lasting longer for each earlier block of the same
    /// scope within `login_policy.repeat_lookback`, and audit it.
    async fn record_block(&self, session: &SessionInfo, ip: IpAddr, user: &str, scope: BlockScope) {
        let inner = &self.inner;
        let policy = inner.throttle.policy().clone();
        let address = ip.to_string();
        let login = match scope {
            BlockScope::Address => None,
            BlockScope::LoginAndAddress => Some(user.to_owned()),
        };
        let now = Timestamp::now();
        let since = now
            .checked_sub(
                jiff::SignedDuration::try_from(inner.repeat_lookback)
                    .unwrap_or(jiff::SignedDuration::ZERO),
            )
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let repeats = if inner.health.is_down() {
            0
        } else {
            self.db_read(
                "counting earlier bans",
                inner
                    .db
                    .count_bans_by(BAN_BY_SYSTEM, &address, login.as_deref(), since),
            )
            .await
            .unwrap_or(0)
        };
        let block_for = grown_block(policy.block_for, repeats, inner.max_block_for);
        inner
            .throttle
            .extend_block(ip, login.as_deref(), block_for, Instant::now());
        let failures = match scope {
            BlockScope::Address => policy.max_failures_per_address,
            BlockScope::LoginAndAddress => policy.max_failures_per_login_and_address,
        };
        let new = NewBan {
            address: Some(address),
            login: login.clone(),
            reason: format!(
                "{failures} failed logins within {} (login_policy)",
                humantime::format_duration(policy.window)
            ),
            created_by: BAN_BY_SYSTEM.into(),
            created_at: now,
            expires_at: now
                .checked_add(
                    jiff::SignedDuration::try_from(block_for).unwrap_or(jiff::SignedDuration::ZERO),
                )
                .ok(),
            repeat: repeats,
        };
        let db = inner.db.clone();
        let written = {
            let new = new.clone();
            self.db_write("recording a ban", async move { db.create_ban(&new).await })
                .await
        };
        let mut e = event(AuditKind::BanCreated, "ok", session);
        e.login = Some(user.to_owned());
        let what = match &login {
            Some(l) => format!("{l} from {ip}"),
            None => ip.to_string(),
        };
        let span = humantime::format_duration(Duration::from_secs(block_for.as_secs()));
        e.detail = match written {
            Ok(ban) => format!(
                "ban #{}: {what} for {span} (repeat {repeats}), by system: {}",
                ban.id, new.reason
            ),
            Err(_) => {
                e.outcome = "not_recorded".into();
                format!(
                    "{what} blocked for {span} by system: {}; the database did not take the ban, the block holds in this process only",
                    new.reason
                )
            }
        };
        tracing::warn!(login = user, %ip, block_s = block_for.as_secs(), repeats, "login blocked: {}", e.detail);
        inner.audit.record(e).await;
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

impl Receiver {
    /// Begin an upload with its database record (the normal way).
    async fn begin_recorded(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        request: &UploadRequest,
    ) -> Result<DeviceUpload, BeginFail> {
        let inner = &self.inner;
        let db = &inner.db;
        let refused = |e: FsError| BeginFail::Refused(e);
        let checked = |e: DbFail| match e {
            DbFail::Unavailable => BeginFail::Unavailable(None),
            DbFail::Store(e) => BeginFail::Refused(store_to_fs(e)),
        };
        let path = request.path.as_str();
        let parent = request.path.parent();
        if !self
            .db_read(
                "checking a directory",
                db.ns_dir_exists(account.device_id, parent.as_str()),
            )
            .await
            .map_err(checked)?
        {
            return Err(refused(FsError::NotFound(parent.to_string())));
        }
        if self
            .db_read(
                "checking a directory",
                db.ns_dir_exists(account.device_id, path),
            )
            .await
            .map_err(checked)?
        {
            return Err(refused(FsError::NotAllowed(format!(
                "{path} is a directory"
            ))));
        }
        let existing = match request.mode {
            WriteMode::Append | WriteMode::Resume(_) => self
                .db_read("reading a file", db.ns_file(account.device_id, path))
                .await
                .map_err(checked)?,
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
                    return Err(refused(FsError::NotAllowed(format!(
                        "restart offset {n} is beyond the end of {path} ({} bytes)",
                        f.size
                    ))));
                }
                None => return Err(refused(FsError::NotFound(path.to_owned()))),
            },
        };
        if offset > inner.max_file_size {
            return Err(refused(FsError::TooLarge(inner.max_file_size)));
        }
        let prefix = existing
            .as_ref()
            .filter(|_| offset > 0)
            .and_then(|f| f.sha256.map(|sha| (f.upload_id, sha)));
        if offset > 0 && prefix.is_none() {
            return Err(refused(FsError::NotAllowed(format!(
                "{path} has no stored content to continue"
            ))));
        }
        let new = NewUpload {
            device_id: account.device_id,
            original_name: request.name.clone(),
            path: path.to_owned(),
            mode,
            resumed_from: prefix.map(|(id, _)| id),
            offset,
            peer: Some(session.peer.to_string()),
            session: Some(session.id.clone()),
            started_at: db_time(Timestamp::now()),
        };
        let id = {
            let db = db.clone();
            let new = new.clone();
            let receiver = inner.receiver_id.clone();
            self.db_write("recording the start of an upload", async move {
                db.begin_upload_by(&new, &receiver).await
            })
            .await
        };
        let id = match id {
            Ok(id) => id,
            Err(DbFail::Unavailable) => return Err(BeginFail::Unavailable(Some(new))),
            Err(DbFail::Store(e)) => return Err(refused(store_to_fs(e))),
        };
        let mut temp = match inner.spool.create_temp(id.0).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(upload_id = id.0, error = %e, "cannot create spool file");
                return Err(refused(spool_to_fs(e)));
            }
        };
        if let Some((_, sha)) = prefix
            && let Err(e) = copy_prefix(&inner.spool, &mut temp, &sha, offset).await
        {
            // Record what we have (the start of the prefix) rather than leave it dangling.
            let sink = DeviceUpload::new(
                self.clone(),
                session,
                account,
                Target::Recorded(id),
                temp,
                new,
            );
            let _ = sink
                .finish(Ending::Partial(PartialReason::StorageError(e.to_string())))
                .await;
            return Err(refused(spool_to_fs(e)));
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
            Target::Recorded(id),
            temp,
            new,
        ))
    }

    /// Begin an upload while the database is away: the bytes go to the spool
    /// under a server-made name and a sidecar in the outage journal says what
    /// they are. `late_record`: the record asked for just before, which the
    /// database may still write (so the sidecar must describe the same upload).
    async fn begin_journalled(
        &self,
        session: &SessionInfo,
        account: &DeviceAccount,
        request: UploadRequest,
        late_record: Option<NewUpload>,
    ) -> Result<DeviceUpload, FsError> {
        let inner = &self.inner;
        let mode = match request.mode {
            WriteMode::Store { unique: false } | WriteMode::Resume(0) => UploadMode::Store,
            WriteMode::Store { unique: true } => UploadMode::StoreUnique,
            WriteMode::Append | WriteMode::Resume(_) => {
                return Err(FsError::Local(
                    "the database is unavailable: appending or resuming is possible again when it is back; send the whole file to store it now".into(),
                ));
            }
        };
        let new = late_record.unwrap_or_else(|| NewUpload {
            device_id: account.device_id,
            original_name: request.name.clone(),
            path: request.path.as_str().to_owned(),
            mode,
            resumed_from: None,
            offset: 0,
            peer: Some(session.peer.to_string()),
            session: Some(session.id.clone()),
            started_at: db_time(Timestamp::now()),
        });
        let key = self.next_outage_key().await;
        let record = outage_record(key, None, account, &new);
        if let Err(e) = inner.journal.write(&record).await {
            tracing::error!(error = %e, "cannot write to the outage journal");
            return Err(FsError::Local(
                "the database is unavailable and the upload cannot be journalled, try again later"
                    .into(),
            ));
        }
        let temp = match inner.spool.create_temp(key).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(outage_record = key, error = %e, "cannot create spool file");
                let _ = inner.journal.remove(key).await;
                return Err(spool_to_fs(e));
            }
        };
        metrics::counter!("telegaz_outage_uploads_total").increment(1);
        let mut e = device_event(AuditKind::UploadStarted, "ok", session, account);
        e.detail = format!(
            "{} ({}); database unavailable: kept as outage record {key} until it is back",
            new.path,
            mode.as_str()
        );
        inner.audit.record(e).await;
        Ok(DeviceUpload::new(
            self.clone(),
            session,
            account,
            Target::Journal(Box::new(record)),
            temp,
            new,
        ))
    }
}

fn outage_record(
    key: i64,
    upload_id: Option<UploadId>,
    account: &DeviceAccount,
    new: &NewUpload,
) -> OutageRecord {
    OutageRecord {
        version: 1,
        key,
        upload_id: upload_id.map(|u| u.0),
        device_id: account.device_id.0,
        device: account.name.clone(),
        login: account.login.clone(),
        original_name: new.original_name.display.clone(),
        original_name_hex: hex::encode(&new.original_name.raw),
        path: new.path.clone(),
        mode: new.mode.as_str().to_owned(),
        peer: new.peer.clone(),
        session: new.session.clone(),
        started_at: new.started_at,
        end: None,
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

    async fn limit_reached(&self, session: &SessionInfo, limit: &str, detail: &str) {
        metrics::counter!("telegaz_ftp_limits_reached_total", "limit" => limit.to_owned())
            .increment(1);
        let mut e = event(AuditKind::LimitReached, limit, session);
        e.detail = detail.to_owned();
        self.inner.audit.record(e).await;
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
        if request.path.is_root() {
            return Err(FsError::BadName("a file name is required".into()));
        }
        let late_record = if self.inner.health.is_down() {
            None
        } else {
            match self.begin_recorded(session, account, &request).await {
                Ok(u) => return Ok(u),
                Err(BeginFail::Refused(e)) => return Err(e),
                Err(BeginFail::Unavailable(new)) => new,
            }
        };
        self.begin_journalled(session, account, request, late_record)
            .await
    }

    async fn stat(&self, account: &DeviceAccount, path: &VPath) -> Result<Entry, FsError> {
        let db = &self.inner.db;
        // While the database is away a unit may still change directory before
        // it uploads: every path is taken for a directory (made when the
        // upload is recorded).
        let outage_dir = || Entry {
            path: path.clone(),
            is_dir: true,
            size: 0,
            modified: Timestamp::UNIX_EPOCH,
        };
        let file = match self
            .db_read(
                "looking up a file",
                db.ns_file(account.device_id, path.as_str()),
            )
            .await
        {
            Ok(f) => f,
            Err(DbFail::Unavailable) => return Ok(outage_dir()),
            Err(e) => return Err(db_fail_to_fs(e)),
        };
        if let Some(f) = file {
            return Self::entry_from_file(&f);
        }
        let is_dir = match self
            .db_read(
                "checking a directory",
                db.ns_dir_exists(account.device_id, path.as_str()),
            )
            .await
        {
            Ok(d) => d,
            Err(DbFail::Unavailable) => return Ok(outage_dir()),
            Err(e) => return Err(db_fail_to_fs(e)),
        };
        if is_dir {
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
        if let Some(f) = self
            .db_read(
                "looking up a file",
                db.ns_file(account.device_id, dir.as_str()),
            )
            .await
            .map_err(db_fail_to_fs)?
        {
            return Ok(vec![Self::entry_from_file(&f)?]);
        }
        if !self
            .db_read(
                "checking a directory",
                db.ns_dir_exists(account.device_id, dir.as_str()),
            )
            .await
            .map_err(db_fail_to_fs)?
        {
            return Err(FsError::NotFound(dir.to_string()));
        }
        let listing = self
            .db_read(
                "listing a directory",
                db.ns_list(account.device_id, dir.as_str()),
            )
            .await
            .map_err(db_fail_to_fs)?;
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
        let (db, device, p) = (
            self.inner.db.clone(),
            account.device_id,
            path.as_str().to_owned(),
        );
        let result = self
            .db_write("making a directory", async move {
                db.ns_mkdir(device, &p).await
            })
            .await
            .map_err(|e| match e {
                DbFail::Store(StoreError::Conflict(_)) => FsError::Exists(path.to_string()),
                other => db_fail_to_fs(other),
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
        let (db, device, p) = (
            self.inner.db.clone(),
            account.device_id,
            path.as_str().to_owned(),
        );
        let result = self
            .db_write("removing a directory", async move {
                db.ns_rmdir(device, &p).await
            })
            .await
            .map_err(db_fail_to_fs);
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
        let (db, device, p) = (
            self.inner.db.clone(),
            account.device_id,
            path.as_str().to_owned(),
        );
        let result = self
            .db_write(
                "deleting a file",
                async move { db.ns_delete(device, &p).await },
            )
            .await
            .map_err(db_fail_to_fs);
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
        let (db, device) = (self.inner.db.clone(), account.device_id);
        let (f, t) = (from.as_str().to_owned(), to.as_str().to_owned());
        let result = self
            .db_write(
                "renaming",
                async move { db.ns_rename(device, &f, &t).await },
            )
            .await
            .map_err(db_fail_to_fs);
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
            .db_read(
                "looking up a file",
                self.inner.db.ns_file(account.device_id, path.as_str()),
            )
            .await
            .map_err(db_fail_to_fs)?
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let sha = file
            .sha256
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let f = self
            .inner
            .spool
            .open_object_at(&sha, offset)
            .await
            .map_err(spool_to_fs)?;
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
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| spool.read_error(sha, e))?;
        if n == 0 {
            break;
        }
        temp.write(&buf[..n]).await?;
        copied += n as u64;
    }
    if copied < len {
        return Err(SpoolError::ObjectInconsistent {
            location: spool.object_location(sha),
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

/// Where an upload is being recorded.
enum Target {
    /// In the database, under this id.
    Recorded(UploadId),
    /// In the outage journal (the database is away).
    Journal(Box<OutageRecord>),
}

/// One upload in progress.
pub struct DeviceUpload {
    receiver: Receiver,
    session: SessionInfo,
    account: DeviceAccount,
    target: Target,
    temp: TempFile,
    new: NewUpload,
}

impl DeviceUpload {
    fn new(
        receiver: Receiver,
        session: &SessionInfo,
        account: &DeviceAccount,
        target: Target,
        temp: TempFile,
        new: NewUpload,
    ) -> Self {
        DeviceUpload {
            receiver,
            session: session.clone(),
            account: account.clone(),
            target,
            temp,
            new,
        }
    }

    /// The database id, when the upload is recorded there (not while the
    /// database is away).
    pub fn upload_id(&self) -> Option<UploadId> {
        match &self.target {
            Target::Recorded(id) => Some(*id),
            Target::Journal(_) => None,
        }
    }

    async fn finish(self, ending: Ending) -> Result<Receipt, FsError> {
        let received = self.received();
        let DeviceUpload {
            receiver,
            session,
            account,
            target,
            temp,
            new,
        } = self;
        let inner = &receiver.inner;
        let temp_id = temp.upload_id();
        let committed = match inner.spool.commit(temp).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(temp = temp_id, error = %e, "cannot make an upload durable");
                // Try once more to keep what reached the disk, as partial.
                if let Target::Recorded(id) = target {
                    let reason = PartialReason::StorageError(e.to_string());
                    if let Ok(c) = inner.spool.commit_existing_temp(id.0).await {
                        let finish =
                            UploadFinish::partial(c.size, c.sha256, &reason, Timestamp::now());
                        let _ = inner.db.finish_upload(id, &finish).await;
                        let _ = inner.spool.remove_temp(id.0).await;
                    } else {
                        // The raw store is away (object store unreachable): the bytes
                        // wait in the temporary file and are stored when it is back.
                        receiver.set_unsettled(id, Some(reason));
                    }
                }
                // A journalled upload keeps its temporary file and unfinished
                // sidecar: start-up closes it as partial.
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
        let id = match target {
            Target::Recorded(id) => id,
            Target::Journal(record) => {
                return journal_end(&receiver, &session, &account, *record, &finish, received)
                    .await;
            }
        };
        let finished = {
            let db = inner.db.clone();
            let f = finish.clone();
            receiver
                .db_write("recording the end of an upload", async move {
                    db.finish_upload(id, &f).await
                })
                .await
        };
        let finished = match finished {
            Ok(f) => f,
            Err(DbFail::Unavailable) => {
                // The bytes are durable in the spool; the journal keeps the
                // end until the database is back.
                let key = receiver.next_outage_key().await;
                let record = outage_record(key, Some(id), &account, &new);
                return journal_end(&receiver, &session, &account, record, &finish, received).await;
            }
            Err(DbFail::Store(e)) => {
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
            &session,
            &account,
        );
        e.upload_id = Some(id);
        e.detail = format!(
            "{} ({}): {} bytes, sha256 {}{}{}",
            new.path,
            new.mode.as_str(),
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

/// The end of an upload while the database is away: the sidecar says how it
/// ended (fsynced) and the bytes are committed to the spool already.
async fn journal_end(
    receiver: &Receiver,
    session: &SessionInfo,
    account: &DeviceAccount,
    mut record: OutageRecord,
    finish: &UploadFinish,
    received: u64,
) -> Result<Receipt, FsError> {
    let inner = &receiver.inner;
    record.end = Some(RecordEnd {
        status: finish.status.as_str().to_owned(),
        reason: finish.reason.clone(),
        size: finish.size,
        sha256: finish.sha256.to_hex(),
        finished_at: finish.finished_at,
    });
    if let Err(e) = inner.journal.write(&record).await {
        // The unfinished sidecar (or the database record) and the
        // temporary file stay: start-up closes them as partial. No 226.
        tracing::error!(outage_record = record.key, error = %e, "cannot write to the outage journal");
        return Err(FsError::Local(
            "the database is unavailable and the upload cannot be journalled, try again later"
                .into(),
        ));
    }
    inner.journal_dirty.store(true, Ordering::Release);
    inner.health.set_waiting(inner.health.waiting() + 1);
    if let Err(e) = inner.spool.remove_temp(record.temp_id()).await {
        tracing::warn!(temp = record.temp_id(), error = %e, "cannot remove a temporary spool file; the outage replay removes it");
    }
    let status = finish.status.as_str();
    metrics::counter!("telegaz_outage_uploads_kept_total", "status" => status).increment(1);
    metrics::counter!("telegaz_upload_bytes_total").increment(received);
    let mut e = device_event(AuditKind::UploadFinished, status, session, account);
    e.upload_id = record.upload_id.map(UploadId);
    e.detail = format!(
        "{} ({}): {} bytes, sha256 {}{}; database unavailable: kept as outage record {}, recorded when it is back",
        record.path,
        record.mode,
        finish.size,
        finish.sha256,
        finish
            .reason
            .as_ref()
            .map(|r| format!(", {r}"))
            .unwrap_or_default(),
        record.key
    );
    inner.audit.record(e).await;
    tracing::warn!(
        outage_record = record.key,
        device = %account.name,
        path = %record.path,
        bytes = finish.size,
        "upload kept in the spool while the database is unavailable"
    );
    Ok(Receipt {
        size: finish.size,
        note: format!(
            "kept while the database is unavailable (outage record {}), {} bytes, sha256 {}",
            record.key, finish.size, finish.sha256
        ),
    })
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
        self.temp.size().saturating_sub(self.new.offset)
    }

    async fn settle(&mut self) -> Result<(), FsError> {
        self.temp.sync().await.map_err(spool_to_fs)
    }

    async fn complete(self) -> Result<Receipt, FsError> {
        self.finish(Ending::Complete).await
    }

    async fn abandon(self, reason: PartialReason) -> Result<Receipt, FsError> {
        self.finish(Ending::Partial(reason)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_double_with_each_repeat_up_to_the_cap() {
        let m = |n: u64| Duration::from_secs(60 * n);
        assert_eq!(grown_block(m(10), 0, m(1440)), m(10));
        assert_eq!(grown_block(m(10), 1, m(1440)), m(20));
        assert_eq!(grown_block(m(10), 3, m(1440)), m(80));
        assert_eq!(grown_block(m(10), 8, m(1440)), m(1440));
        assert_eq!(grown_block(m(10), u32::MAX, m(1440)), m(1440));
        // A cap below the first block never shortens it.
        assert_eq!(grown_block(m(10), 2, m(5)), m(10));
    }
}
