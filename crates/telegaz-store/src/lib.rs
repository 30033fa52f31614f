//! Telegaz storage.
//!
//! One [`Database`] trait that the rest of Telegaz talks to, and its backends, each
//! with its own embedded, versioned migrations. SQLite is the embedded default.

mod alerts;
mod delivery;
mod encoded;
mod health;
pub mod migrate;
mod path;
mod pg_alerts;
// --- bans (abuse resistance) ---
mod pg_bans;
mod sqlite_bans;
// --- end bans ---
mod pg_core;
mod pg_delivery;
mod pg_ingest;
mod pg_time;
mod pg_web;
mod postgres;
mod records;
mod sqlite;
mod sqlite_alerts;
mod sqlite_delivery;
mod sqlite_group;
mod sqlite_ingest;
mod sqlite_web;
mod time;
mod web;

use std::sync::Arc;

use async_trait::async_trait;
use telegaz_domain::ApiToken;
use telegaz_domain::{
    ArchiveKind, ArchiveRecord, AuditEvent, AuditKind, Device, DeviceId, DeviceName, EventRecord,
    IngestInfo, IngestState, NewAuditEvent, NewUpload, ParsedFile, Sha256Digest, Timestamp, Upload,
    UploadFinish, UploadId, UploadStatus, User, UserId, WebSession,
};

pub use alerts::{
    AlertFilter, NOTIFICATION_LEASE, NewAlert, NewNotification, NotificationSend, SendOutcome,
};
pub use delivery::{DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeliveryState};
pub use encoded::PreparedFile;
pub use health::DbHealth;
pub use path::{join_path, split_path};
pub use postgres::PgDatabase;
pub use sqlite::SqliteDatabase;
pub use web::{DeviceActivity, NewSession, NewUser, UserUpdate};

/// Storage failures, phrased for the operator who has to act on them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the database URL {url:?} is not supported: {hint}")]
    UnsupportedUrl { url: String, hint: String },
    #[error(
        "cannot open the database at {location}: {source}. Check that the directory exists and is writable, and that no other program holds the file"
    )]
    Open {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot connect to the database at {location}: {source}. Check that the PostgreSQL server is running and reachable from here, and the user, password and database name in the URL"
    )]
    Connect {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "database migration failed: {0}. The database may be from a newer Telegaz; restore a backup or upgrade"
    )]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error while {context}: {source}")]
    Query {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the database holds a value Telegaz cannot read ({0}); was it edited by hand?")]
    Corrupt(String),
    /// Another worker finished the upload first (its claim had expired);
    /// nothing was written, the other result stands.
    #[error(
        "upload #{0} is no longer waiting for ingest: another worker finished it first; nothing was changed"
    )]
    NotPending(i64),
    /// The task that commits session writes is gone (its runtime shut
    /// down) without an answer: the write may or may not have been done.
    #[error(
        "the database writer stopped before it answered; the server is shutting down, or restart it"
    )]
    WriterStopped,
}

/// An ingest outcome was written only if the upload still waited
/// (`rows` is what the conditional `UPDATE` changed).
pub(crate) fn still_pending(rows: u64, id: UploadId) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotPending(id.0))
    } else {
        Ok(())
    }
}

impl StoreError {
    /// True when the database could not be reached or used for now (down,
    /// unreachable, locked by another program, out of space), as opposed to a
    /// refusal of this request (not found, conflict, a value it cannot read).
    /// The receiver keeps accepting uploads through such failures.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Open { .. } | StoreError::WriterStopped => true,
            StoreError::Query { source, .. } => unavailable_source(source),
            _ => false,
        }
    }

    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { context, source }
    }
}

fn unavailable_source(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            if code.len() == 5 {
                // PostgreSQL SQLSTATE: connection exceptions, operator intervention
                // (shutdown, cannot connect now), insufficient resources.
                code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
            } else {
                // SQLite (extended) result codes: BUSY, READONLY, LOCKED, IOERR, FULL, CANTOPEN.
                code.parse::<i64>()
                    .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
            }
        }
        _ => false,
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A device to create.
#[derive(Clone)]
pub struct NewDevice {
    pub name: DeviceName,
    pub login: DeviceName,
    pub password_hash: String,
    pub allowed_networks: Vec<String>,
}

/// Changes to a device; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct DeviceUpdate {
    pub password_hash: Option<String>,
    pub enabled: Option<bool>,
    pub allowed_networks: Option<Vec<String>>,
    pub time_zone: Option<String>,
    pub contract_hour: Option<i8>,
    /// Free text for people: site, address (the name is what modems type).
    pub title: Option<String>,
    /// FTPS only (see `Device::tls_required`).
    pub tls_required: Option<bool>,
}

/// Which readings to return.
#[derive(Debug, Clone)]
pub struct ReadingFilter {
    pub device_id: DeviceId,
    pub kind: Option<ArchiveKind>,
    /// Local times, inclusive.
    pub from: Option<jiff::civil::DateTime>,
    pub to: Option<jiff::civil::DateTime>,
}

/// Which uploads to queue again for ingest.
#[derive(Debug, Clone, Default)]
pub struct RequeueFilter {
    pub device_id: Option<DeviceId>,
    pub state: Option<IngestState>,
    pub since: Option<Timestamp>,
}

/// Outcome of recording the end of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishedUpload {
    /// The earlier upload from the same device with the same content, if any.
    pub duplicate_of: Option<UploadId>,
}

/// A file found in the spool with no record.
#[derive(Debug, Clone)]
pub struct RecoveredUpload {
    pub device_id: Option<DeviceId>,
    /// What the file was called where it was found (a server-made name).
    pub found_as: String,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub found_at: Timestamp,
}

/// Which uploads to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct UploadFilter {
    pub device_id: Option<DeviceId>,
    pub status: Option<UploadStatus>,
    pub since: Option<Timestamp>,
    /// Only uploads with an id below this (for paging back in time).
    pub before_id: Option<UploadId>,
    /// Only uploads whose ingest is in this state.
    pub ingest_state: Option<IngestState>,
    pub limit: Option<u32>,
}

/// Which audit events to list, oldest first (or newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
    pub device_id: Option<DeviceId>,
    pub kind: Option<AuditKind>,
    /// Only events of this login (device login or user name).
    pub login: Option<String>,
    /// Only events with an id below this (paging back in time).
    pub before_id: Option<i64>,
    pub newest_first: bool,
    pub limit: Option<u32>,
}

// --- bans (abuse resistance) ---
/// Which bans to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct BanFilter {
    /// Only bans in force at this time (not lifted, not expired).
    pub active_at: Option<Timestamp>,
    pub limit: Option<u32>,
}

/// Who the failed-login throttle's bans are made by (`Ban::created_by`).
pub const BAN_BY_SYSTEM: &str = "system";
// --- end bans ---

/// A file as a device sees it over FTP.
#[derive(Debug, Clone)]
pub struct NsFile {
    pub path: String,
    pub upload_id: UploadId,
    pub size: u64,
    pub sha256: Option<Sha256Digest>,
    pub status: UploadStatus,
    pub modified: Timestamp,
}

/// A directory as a device sees it.
#[derive(Debug, Clone)]
pub struct NsDir {
    pub path: String,
    pub created: Timestamp,
}

/// One directory's content.
#[derive(Debug, Clone, Default)]
pub struct NsListing {
    pub dirs: Vec<NsDir>,
    pub files: Vec<NsFile>,
}

/// What a rename moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renamed {
    /// A file; `replaced` is the upload the target name pointed at before.
    File {
        upload_id: UploadId,
        replaced: Option<UploadId>,
    },
    /// A directory with everything below it.
    Dir { files: u64 },
}

/// Everything Telegaz stores about devices, uploads and the audit trail.
///
/// Paths are absolute virtual paths in a device's namespace ("/", "/arch/a.txt"),
/// already normalised by the caller.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    /// Whether the database would accept a write now (the receiver's probe
    /// while it is unavailable). Changes nothing. The default reads the
    /// devices; a backend whose writers can be locked out while readers are
    /// not (SQLite) checks that it can take the write lock.
    async fn check_writable(&self) -> Result<()> {
        self.list_devices().await.map(|_| ())
    }

    // Devices.
    async fn create_device(&self, device: NewDevice) -> Result<Device>;
    async fn device_by_id(&self, id: DeviceId) -> Result<Option<Device>>;
    async fn device_by_name(&self, name: &str) -> Result<Option<Device>>;
    async fn device_by_login(&self, login: &str) -> Result<Option<Device>>;
    async fn list_devices(&self) -> Result<Vec<Device>>;
    async fn update_device(&self, id: DeviceId, update: DeviceUpdate) -> Result<Device>;

    // Uploads.
    /// Record a transfer that is starting (status `receiving`).
    async fn begin_upload(&self, upload: &NewUpload) -> Result<UploadId>;
    // ---- begin storebench: receiver ownership of transfers (issue #4) ----
    /// Record a transfer that is starting (status `receiving`) on behalf of
    /// the receiver with id `receiver` (one `telegaz serve`; see
    /// `telegaz-config`'s `receiver_id`), so that the start-up
    /// reconciliation of another receiver on the same database leaves it
    /// alone ([`Database::interrupted_uploads`]).
    async fn begin_upload_by(&self, upload: &NewUpload, receiver: &str) -> Result<UploadId>;
    /// Transfers in progress (status `receiving`) that the start-up
    /// reconciliation of receiver `receiver` must close: its own, and those
    /// recorded without a receiver (before receivers were recorded); never
    /// another receiver's, which may be live. Oldest first.
    async fn interrupted_uploads(&self, receiver: &str) -> Result<Vec<UploadId>>;
    // ---- end storebench ----
    /// Record how a transfer ended and point the device's name at it, in one transaction.
    async fn finish_upload(&self, id: UploadId, finish: &UploadFinish) -> Result<FinishedUpload>;
    async fn record_recovered(&self, found: &RecoveredUpload) -> Result<UploadId>;
    async fn upload(&self, id: UploadId) -> Result<Option<Upload>>;
    /// The uploads of `ids` that exist, in one query where the backend can
    /// (the ingest worker reads a whole group at once; one read per upload
    /// queued behind a fleet's sessions for a connection).
    async fn uploads_by_id(&self, ids: &[UploadId]) -> Result<Vec<Upload>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.upload(*id).await? {
                found.push(u);
            }
        }
        Ok(found)
    }
    async fn list_uploads(&self, filter: &UploadFilter) -> Result<Vec<Upload>>;
    /// Every digest some upload record refers to.
    async fn referenced_digests(&self) -> Result<Vec<Sha256Digest>>;
    /// Uploads whose bytes have this digest.
    async fn uploads_by_digest(&self, sha256: &Sha256Digest) -> Result<Vec<UploadId>>;

    // The per-device namespace.
    async fn ns_file(&self, device: DeviceId, path: &str) -> Result<Option<NsFile>>;
    async fn ns_dir_exists(&self, device: DeviceId, path: &str) -> Result<bool>;
    async fn ns_list(&self, device: DeviceId, dir: &str) -> Result<NsListing>;
    async fn ns_mkdir(&self, device: DeviceId, path: &str) -> Result<()>;
    async fn ns_rmdir(&self, device: DeviceId, path: &str) -> Result<()>;
    /// Remove a name from the device's view; the upload stays. Returns its id.
    async fn ns_delete(&self, device: DeviceId, path: &str) -> Result<UploadId>;
    async fn ns_rename(&self, device: DeviceId, from: &str, to: &str) -> Result<Renamed>;

    // Audit trail.
    // Ingest. A complete upload from a known device is queued by
    // `finish_upload` in the same transaction.
    /// Queue (again) an upload for ingest.
    async fn enqueue_ingest(&self, id: UploadId) -> Result<()>;
    /// Queue again every upload matching the filter; returns them, oldest first.
    async fn requeue_ingest(&self, filter: &RequeueFilter) -> Result<Vec<UploadId>>;
    /// Uploads waiting for ingest that no worker holds under a live claim,
    /// oldest first.
    async fn pending_ingest(&self, limit: u32) -> Result<Vec<UploadId>>;
    /// How many uploads wait for ingest, and since when the oldest waits.
    async fn ingest_backlog(&self) -> Result<(u64, Option<Timestamp>)>;
    /// At a receiver's start: drop ingest claims that only a dead process can
    /// hold, so what it was parsing is redone at once. SQLite serves one
    /// receiver, so every claim found then is a dead one's; on a shared
    /// database (PostgreSQL) a claim may be a live receiver's and a dead one's
    /// runs out after its lease (the default does nothing).
    async fn release_stale_ingest_claims(&self) -> Result<u64> {
        Ok(0)
    }
    /// Claim an upload for parsing, atomically: count one more attempt and
    /// hold it for `lease` (after which a worker that died holding it is
    /// presumed gone and the upload can be claimed again). Returns the
    /// attempt count, or `None` when the upload is not waiting for ingest or
    /// another worker holds it under a live claim. Several receivers on one
    /// database share the queue this way.
    async fn begin_ingest_attempt(
        &self,
        id: UploadId,
        lease: std::time::Duration,
    ) -> Result<Option<u32>>;
    /// Store what a parser read, idempotently on the natural key, and mark
    /// the upload parsed, in one transaction. Fails with
    /// [`StoreError::NotPending`], writing nothing, when the upload is no
    /// longer waiting for ingest (another worker finished it first).
    async fn store_parsed(
        &self,
        id: UploadId,
        device: DeviceId,
        parsed: &ParsedFile,
    ) -> Result<IngestInfo>;
    /// Claim, in one transaction, those of `ids` that no worker has tried
    /// yet (no attempt counted) and no worker holds: count their first
    /// attempt and hold them for `lease`. Returns the claimed ones in the
    /// order given. An upload tried before is left out (a worker may have
    /// died on it): claimed one at a time with [`Database::begin_ingest_attempt`],
    /// a file that kills the worker cannot use up the attempts of the
    /// uploads claimed with it.
    async fn begin_first_ingest_attempts(
        &self,
        ids: &[UploadId],
        lease: std::time::Duration,
    ) -> Result<Vec<UploadId>>;
    /// [`Database::store_parsed`] for several uploads in one transaction (one
    /// commit, one fsync): all are stored, or none (the first error).
    async fn store_parsed_many(
        &self,
        files: &[(UploadId, DeviceId, &PreparedFile)],
    ) -> Result<Vec<IngestInfo>>;
    /// End an upload's ingest without records (quarantined or failed);
    /// [`StoreError::NotPending`] when it is no longer waiting for ingest.
    async fn finish_ingest(&self, id: UploadId, state: IngestState, reason: &str) -> Result<()>;
    async fn readings(&self, filter: &ReadingFilter) -> Result<Vec<ArchiveRecord>>;
    /// Event-log rows of a device in a local-time window (`kind` is ignored).
    async fn events(&self, filter: &ReadingFilter) -> Result<Vec<EventRecord>>;

    async fn insert_audit(&self, events: &[NewAuditEvent]) -> Result<()>;
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>>;

    // Fleet overview.
    /// Last contact, newest reading and problem uploads of every device, or
    /// of one (`only`).
    async fn device_activity(&self, only: Option<DeviceId>) -> Result<Vec<DeviceActivity>>;

    // Alerts and their notifications.
    /// Open an alert, and queue its notification in the same transaction,
    /// unless an alert with the same key is not resolved yet (`None` then).
    async fn open_alert(
        &self,
        alert: &NewAlert,
        notification: Option<&NewNotification>,
    ) -> Result<Option<telegaz_domain::Alert>>;
    /// Resolve an alert (queueing its recovery notice in the same
    /// transaction); resolving a resolved alert changes nothing.
    async fn resolve_alert(
        &self,
        id: i64,
        at: Timestamp,
        notification: Option<&NewNotification>,
    ) -> Result<telegaz_domain::Alert>;
    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        at: Timestamp,
    ) -> Result<telegaz_domain::Alert>;
    /// Newest first.
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<telegaz_domain::Alert>>;
    /// When the newest alert with this key that was resolved before `before`
    /// was resolved (to tell a flapping condition).
    async fn last_resolved_before(&self, key: &str, before: Timestamp)
    -> Result<Option<Timestamp>>;
    /// Queue a notification that is about no single alert (a digest).
    async fn enqueue_notification(&self, notification: &NewNotification) -> Result<i64>;
    /// Take the notifications waiting for `notifier` whose next attempt is
    /// due at `now`, oldest first: each is kept from other dispatchers for
    /// [`NOTIFICATION_LEASE`] or until its outcome is recorded, so that several
    /// dispatchers (processes) never send the same one at the same time.
    async fn due_notifications(
        &self,
        notifier: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<telegaz_domain::Notification>>;
    async fn finish_notification(
        &self,
        notification_id: i64,
        notifier: &str,
        outcome: &SendOutcome,
        now: Timestamp,
    ) -> Result<()>;
    /// The newest notifications with their state per notifier.
    async fn notification_sends(&self, limit: u32) -> Result<Vec<NotificationSend>>;
    /// Start times of each enabled device's newest uploads (newest first).
    async fn recent_upload_times(&self, per_device: u32)
    -> Result<Vec<(DeviceId, Vec<Timestamp>)>>;

    // Users of the web UI and REST API.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    /// A new password, a new role or disabling ends the user's sessions;
    /// disabling also revokes their API tokens.
    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<User>;
    async fn create_session(&self, session: NewSession) -> Result<()>;
    /// The live session with this token hash, if any (not expired, user enabled).
    async fn session(&self, token_sha256: &str, now: Timestamp) -> Result<Option<WebSession>>;
    async fn delete_session(&self, token_sha256: &str) -> Result<()>;
    async fn create_api_token(
        &self,
        user: UserId,
        name: &str,
        token_sha256: &str,
    ) -> Result<ApiToken>;
    /// The user a live API token belongs to; records its use.
    async fn user_by_api_token(&self, token_sha256: &str, now: Timestamp) -> Result<Option<User>>;
    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>>;
    async fn revoke_api_token(&self, user: UserId, id: i64) -> Result<()>;

    // Scheduled report deliveries: one record per (delivery name, gas day).
    /// Record a delivery as `pending`, first attempt at `due_at`, unless it is
    /// recorded already (in any state). Returns whether it was created.
    async fn ensure_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        due_at: Timestamp,
    ) -> Result<bool>;
    /// Deliveries whose next attempt is due at `now`: `pending` ones, and
    /// `sending` ones whose lease has run out (an attempt cut short by a crash).
    /// Oldest gas day first.
    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Take a delivery for an attempt: when it is due at `now` (or in any state
    /// when `force`, creating it if missing), mark it `sending` until
    /// `lease_until` and count the attempt, atomically. `None`: not due (another
    /// process took it, or it is sent or failed).
    async fn claim_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        lease_until: Timestamp,
        force: bool,
    ) -> Result<Option<DeliveryRecord>>;
    /// Record the outcome of the attempt just made.
    async fn finish_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<DeliveryRecord>;
    async fn delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
    ) -> Result<Option<DeliveryRecord>>;
    /// Newest gas day first.
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>>;

    // --- bans (abuse resistance) ---
    /// Record a ban (an address, a login, or a login from an address).
    async fn create_ban(&self, ban: &telegaz_domain::NewBan) -> Result<telegaz_domain::Ban>;
    async fn list_bans(&self, filter: &BanFilter) -> Result<Vec<telegaz_domain::Ban>>;
    /// End a ban now; lifting a lifted ban changes nothing. Returns the ban.
    async fn lift_ban(&self, id: i64, by: &str, at: Timestamp) -> Result<telegaz_domain::Ban>;
    /// The ban in force at `now` that refuses `login` from `address` (the
    /// one that lasts longest), if any. On the FTP login path: one lookup
    /// through the indexes of live bans.
    async fn active_ban(
        &self,
        address: &str,
        login: &str,
        now: Timestamp,
    ) -> Result<Option<telegaz_domain::Ban>>;
    /// How many bans `created_by` made of exactly this address and login
    /// (`None`: the address alone) since `since` (the throttle's repeats).
    async fn count_bans_by(
        &self,
        created_by: &str,
        address: &str,
        login: Option<&str>,
        since: Timestamp,
    ) -> Result<u32>;
    // --- end bans ---
}

/// Every device's activity, by device (the fleet page, the API, alerts).
pub async fn activity_by_device(
    db: &dyn Database,
) -> Result<std::collections::HashMap<DeviceId, DeviceActivity>> {
    Ok(db
        .device_activity(None)
        .await?
        .into_iter()
        .map(|a| (a.device_id, a))
        .collect())
}

/// Open the database a URL names, running its migrations.
///
/// `sqlite://PATH` (created if missing) is the embedded default.
pub async fn connect(url: &str) -> Result<Arc<dyn Database>> {
    connect_with(url, &StoreOptions::default()).await
}

/// Settings of a backend that the URL does not carry.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite: the most starts and ends of uploads committed in one
    /// transaction (group commit; see the `sqlite_session_group` setting).
    pub sqlite_session_group: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sqlite_session_group: sqlite_group::DEFAULT_SESSION_GROUP,
        }
    }
}

/// [`connect`] with options.
pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Arc<dyn Database>> {
    Ok(match open_backend(url, options).await? {
        Backend::Sqlite(db) => Arc::new(db),
        Backend::Pg(db) => Arc::new(db),
    })
}

/// An open database of either kind.
pub(crate) enum Backend {
    Sqlite(SqliteDatabase),
    Pg(PgDatabase),
}

/// What [`connect`] opens, before it is made a trait object.
pub(crate) async fn open_backend(url: &str, options: &StoreOptions) -> Result<Backend> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl {
                url: url.to_owned(),
                hint: "name the database file, e.g. sqlite://./telegaz-data/telegaz.db".into(),
            });
        }
        return Ok(Backend::Sqlite(
            SqliteDatabase::open_with(path, options).await?,
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Pg(PgDatabase::open(url).await?));
    }
    Err(StoreError::UnsupportedUrl {
        url: redact_url(url),
        hint: "use sqlite://FILE or postgres://USER:PASSWORD@HOST:PORT/DATABASE".into(),
    })
}

/// A URL with any password replaced, fit for messages and logs.
///
/// The user part ends at the last `@` before the query, so that a password
/// typed with a raw `/`, `@` or `?` in it is hidden too.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let before_query = rest.split('?').next().unwrap_or(rest);
    match before_query.rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://tg:hunter2@db:5432/telegaz"),
            "postgres://tg:***@db:5432/telegaz"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("postgres://tg:se/cr@t@db/telegaz?sslmode=require"),
            "postgres://tg:***@db/telegaz?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db:5432/telegaz?application_name=a@b"),
            "postgres://db:5432/telegaz?application_name=a@b"
        );
    }
}
