//! The SQLite backend: one file, WAL journal, `synchronous = FULL` so that a
//! committed upload record survives power loss.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use telegaz_domain::ApiToken;
use telegaz_domain::{
    ArchiveRecord, AuditEvent, AuditKind, Device, DeviceId, DeviceName, EventRecord, IngestInfo,
    IngestState, NewAuditEvent, NewUpload, ParsedFile, Sha256Digest, Timestamp, Upload,
    UploadFinish, UploadId, UploadMode, UploadStatus, User, UserId, WebSession,
};

use crate::path::{join_path, split_path};
use crate::time::{from_text, to_text};
use crate::{
    AuditFilter, Database, DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeviceUpdate,
    FinishedUpload, NewDevice, NsDir, NsFile, NsListing, ReadingFilter, RecoveredUpload, Renamed,
    RequeueFilter, Result, StoreError, UploadFilter,
};
use crate::{DeviceActivity, NewSession, NewUser, UserUpdate};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Transactions that write take the lock up front, so concurrent writers queue
/// (busy timeout) instead of failing on lock upgrade.
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Audit events written by one statement (nine values each).
const AUDIT_ROWS: usize = 64;

/// The SQLite [`Database`].
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    pool: SqlitePool,
    /// The one connection write transactions use (behind [`Self::write_turn`],
    /// so one would be in use at a time anyway). Its page cache stays valid
    /// from one write to the next: SQLite re-reads the pages of a connection
    /// whose cache another connection's commit made stale, and with writes
    /// spread over the pool every write began by reading its pages again.
    writer: SqlitePool,
    /// The turn to write. SQLite has one writer; a writer that finds the
    /// lock taken waits in SQLite's busy handler, which sleeps (1, 2, 5 …
    /// 25 ms) and tries again, so under many concurrent writers (a fleet
    /// uploading at once) the lock stood idle between sleeps while every
    /// session waited. Writers of this process take their turn here first,
    /// first come first served, and then find the lock free.
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where the ordinary writers queue for [`Self::write_turn`]: one at a
    /// time passes, so that the ingest worker (which goes to the turn
    /// directly) waits for at most two transactions, not for every session
    /// of a burst; readings become queryable while a fleet still uploads.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Between the two: the end of an upload (its record, the name, the
    /// ingest queue) passes only this gate, ahead of ordinary writers (the
    /// start of the next uploads): what is in progress is finished first,
    /// so its 226 and its readings do not wait for every session that
    /// began after it.
    finish_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The committer of session writes (see [`crate::sqlite_group`]).
    group: std::sync::Arc<crate::sqlite_group::Group>,
    /// The most session writes one transaction takes.
    session_group: usize,
}

/// A connection (or a transaction on it) holding this process's turn to
/// write (see [`SqliteDatabase`]); it derefs to the connection.
pub(crate) struct InTurn<C> {
    conn: C,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

/// A write transaction in this process's turn to write.
pub(crate) type WriteTx = InTurn<sqlx::Transaction<'static, sqlx::Sqlite>>;

/// The writer connection in this process's turn to write, for a single
/// statement (see [`SqliteDatabase::write_one`]).
pub(crate) type WriteOne = InTurn<sqlx::pool::PoolConnection<sqlx::Sqlite>>;

impl WriteTx {
    pub(crate) async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.conn.commit().await
    }

    pub(crate) async fn rollback(self) -> std::result::Result<(), sqlx::Error> {
        self.conn.rollback().await
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::SqliteConnection>> std::ops::Deref for InTurn<C> {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<C: std::ops::DerefMut<Target = sqlx::SqliteConnection>> std::ops::DerefMut for InTurn<C> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl SqliteDatabase {
    /// Open (creating if missing) the database file and bring its schema up to date.
    pub async fn open(path: &str) -> Result<Self> {
        Self::open_with(path, &crate::StoreOptions::default()).await
    }

    /// [`Self::open`] with options.
    pub async fn open_with(path: &str, options: &crate::StoreOptions) -> Result<Self> {
        let session_group = options.sqlite_session_group.max(1);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // 16 KiB pages for a new database (an existing one keeps its
            // own): a readings row is about 250 bytes, and with four times
            // the rows a page the B-tree splits and rebalances less often.
            // The ingest benchmark stored a year of 1,000 units in 44-56 s
            // against 58-62 s with 4 KiB pages (BENCHMARKS.md, fifth round).
            .page_size(16384);
        let open_err = |source| StoreError::Open {
            location: path.to_owned(),
            source,
        };
        // A local file cannot have gone away between two uses: no ping
        // (a round trip to the connection's thread) before each one.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        Ok(SqliteDatabase {
            pool,
            writer,
            write_turn: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            write_gate: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            finish_gate: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            group: std::sync::Arc::default(),
            session_group,
        })
    }

    pub(crate) fn session_group(&self) -> usize {
        self.session_group
    }

    pub(crate) fn group(&self) -> &std::sync::Arc<crate::sqlite_group::Group> {
        &self.group
    }

    /// This database without its committer of session writes: the
    /// committer's own handle (were it to hold its mailbox, it would never
    /// see the last handle go).
    pub(crate) fn detached(&self) -> SqliteDatabase {
        SqliteDatabase {
            group: std::sync::Arc::default(),
            ..self.clone()
        }
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Take this process's turn to write (before a connection, so that
    /// writers waiting their turn leave the pool's connections to readers),
    /// then begin a write transaction.
    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        let turn = self.ordinary_turn().await;
        self.begin_write(turn).await
    }

    /// The turn to write of an ordinary writer: behind the ingest worker and
    /// the ends of uploads.
    async fn ordinary_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = self.write_gate.lock().await;
        let finishing = self.finish_gate.lock().await;
        let turn = self.write_turn.clone().lock_owned().await;
        drop((finishing, gate));
        turn
    }

    /// The writer connection in this process's turn, outside a transaction:
    /// for one statement, which SQLite commits by itself.
    pub(crate) async fn write_one(&self) -> Result<WriteOne> {
        let turn = self.ordinary_turn().await;
        let conn = self
            .writer
            .acquire()
            .await
            .map_err(StoreError::query("taking the connection that writes"))?;
        Ok(InTurn { conn, _turn: turn })
    }

    /// [`Self::write_tx`] for the end of an upload, ahead of ordinary writers.
    pub(crate) async fn finish_write_tx(&self) -> Result<WriteTx> {
        let finishing = self.finish_gate.lock().await;
        let turn = self.write_turn.clone().lock_owned().await;
        drop(finishing);
        self.begin_write(turn).await
    }

    /// [`Self::write_tx`] for the ingest worker, ahead of the queue.
    async fn ingest_write_tx(&self) -> Result<WriteTx> {
        let turn = self.write_turn.clone().lock_owned().await;
        self.begin_write(turn).await
    }

    async fn begin_write(&self, turn: tokio::sync::OwnedMutexGuard<()>) -> Result<WriteTx> {
        let tx = self
            .writer
            .begin_with(BEGIN_WRITE)
            .await
            .map_err(StoreError::query("starting a write transaction"))?;
        Ok(InTurn {
            conn: tx,
            _turn: turn,
        })
    }
}

/// Now and the end of an ingest claim of `lease`, as stored.
fn claim_window(lease: std::time::Duration) -> Result<(String, String)> {
    let now = Timestamp::now();
    let until = now.checked_add(lease).map_err(|e| {
        StoreError::Conflict(format!(
            "the ingest claim lease is too long ({e}); choose a few minutes"
        ))
    })?;
    Ok((to_text(now), to_text(until)))
}

const DEVICE_COLUMNS: &str = "id, name, login, password_hash, enabled, allowed_networks, \
     time_zone, contract_hour, title, tls_required, created_at";

fn device_from_row(row: &SqliteRow) -> Result<Device> {
    let get_err = |e: sqlx::Error| StoreError::Corrupt(format!("device row: {e}"));
    let name: String = row.try_get("name").map_err(get_err)?;
    let login: String = row.try_get("login").map_err(get_err)?;
    let networks: String = row.try_get("allowed_networks").map_err(get_err)?;
    let created: String = row.try_get("created_at").map_err(get_err)?;
    Ok(Device {
        id: DeviceId(row.try_get("id").map_err(get_err)?),
        name: DeviceName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        login: DeviceName::parse(&login).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        password_hash: row.try_get("password_hash").map_err(get_err)?,
        enabled: row.try_get::<i64, _>("enabled").map_err(get_err)? != 0,
        allowed_networks: networks
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        time_zone: row.try_get("time_zone").map_err(get_err)?,
        contract_hour: i8::try_from(row.try_get::<i64, _>("contract_hour").map_err(get_err)?)
            .map_err(|e| StoreError::Corrupt(format!("contract hour: {e}")))?,
        title: row.try_get("title").map_err(get_err)?,
        tls_required: row.try_get::<i64, _>("tls_required").map_err(get_err)? != 0,
        created_at: from_text(&created)?,
    })
}

const UPLOAD_SELECT: &str = "SELECT u.id, u.device_id, d.name AS device_name, u.original_name, \
     u.original_name_raw, u.path, u.final_path, u.mode, u.size, u.sha256, u.status, u.reason, \
     u.duplicate_of, u.resumed_from, u.peer, u.session, u.started_at, u.received_at, \
     u.deleted_by_device, u.receiver, i.state AS ingest_state, i.format AS ingest_format, \
     i.reason AS ingest_reason, i.truncated AS ingest_truncated, i.records_total, i.records_new, \
     i.records_duplicate, i.records_conflicting, i.events_total, i.model AS ingest_model, \
     i.serial AS ingest_serial \
     FROM uploads u LEFT JOIN devices d ON d.id = u.device_id \
     LEFT JOIN ingest i ON i.upload_id = u.id";

fn upload_from_row(row: &SqliteRow) -> Result<Upload> {
    let get_err = |e: sqlx::Error| StoreError::Corrupt(format!("upload row: {e}"));
    let sha: Option<String> = row.try_get("sha256").map_err(get_err)?;
    let status: String = row.try_get("status").map_err(get_err)?;
    let mode: String = row.try_get("mode").map_err(get_err)?;
    let started: String = row.try_get("started_at").map_err(get_err)?;
    let received: Option<String> = row.try_get("received_at").map_err(get_err)?;
    let raw: Option<Vec<u8>> = row.try_get("original_name_raw").map_err(get_err)?;
    let size: i64 = row.try_get("size").map_err(get_err)?;
    Ok(Upload {
        id: UploadId(row.try_get("id").map_err(get_err)?),
        device_id: row
            .try_get::<Option<i64>, _>("device_id")
            .map_err(get_err)?
            .map(DeviceId),
        device: row.try_get("device_name").map_err(get_err)?,
        original_name: row.try_get("original_name").map_err(get_err)?,
        original_name_hex: raw.map(|b| hex_lower(&b)),
        path: row.try_get("path").map_err(get_err)?,
        final_path: row.try_get("final_path").map_err(get_err)?,
        mode: UploadMode::from_str(&mode).map_err(StoreError::Corrupt)?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("size {size}")))?,
        sha256: sha
            .map(|s| s.parse::<Sha256Digest>())
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: UploadStatus::from_str(&status).map_err(StoreError::Corrupt)?,
        reason: row.try_get("reason").map_err(get_err)?,
        duplicate_of: row
            .try_get::<Option<i64>, _>("duplicate_of")
            .map_err(get_err)?
            .map(UploadId),
        resumed_from: row
            .try_get::<Option<i64>, _>("resumed_from")
            .map_err(get_err)?
            .map(UploadId),
        peer: row.try_get("peer").map_err(get_err)?,
        session: row.try_get("session").map_err(get_err)?,
        started_at: from_text(&started)?,
        received_at: received.as_deref().map(from_text).transpose()?,
        deleted_by_device: row
            .try_get::<i64, _>("deleted_by_device")
            .map_err(get_err)?
            != 0,
        ingest: crate::sqlite_ingest::ingest_from_row(row)?,
        receiver: row.try_get("receiver").map_err(get_err)?,
    })
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn size_i64(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| StoreError::Conflict(format!("size {size} is too large")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn not_found(what: impl Into<String>) -> StoreError {
    StoreError::NotFound { what: what.into() }
}

/// Create every missing ancestor directory of `path` (not `path` itself).
async fn ensure_parents(
    tx: &mut sqlx::SqliteConnection,
    device: DeviceId,
    path: &str,
    now: &str,
) -> Result<()> {
    let mut ancestors = Vec::new();
    let mut cur = path;
    while let Some((parent, _)) = split_path(cur) {
        if parent == "/" {
            break;
        }
        ancestors.push(parent);
        cur = parent;
    }
    for dir in ancestors.into_iter().rev() {
        if let Some((parent, name)) = split_path(dir) {
            sqlx::query(
                "INSERT OR IGNORE INTO device_dirs (device_id, parent, name, created_at) VALUES (?, ?, ?, ?)",
            )
            .bind(device.0)
            .bind(parent)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("creating parent directories"))?;
        }
    }
    Ok(())
}

async fn dir_exists(
    conn: &mut sqlx::SqliteConnection,
    device: DeviceId,
    path: &str,
) -> Result<bool> {
    let Some((parent, name)) = split_path(path) else {
        return Ok(true); // the root always exists
    };
    let found =
        sqlx::query("SELECT 1 FROM device_dirs WHERE device_id = ? AND parent = ? AND name = ?")
            .bind(device.0)
            .bind(parent)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::query("looking up a directory"))?;
    Ok(found.is_some())
}

async fn file_upload_id(
    conn: &mut sqlx::SqliteConnection,
    device: DeviceId,
    path: &str,
) -> Result<Option<UploadId>> {
    let Some((parent, name)) = split_path(path) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT upload_id FROM device_files WHERE device_id = ? AND parent = ? AND name = ?",
    )
    .bind(device.0)
    .bind(parent)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("looking up a file"))?;
    row.map(|r| r.try_get::<i64, _>(0).map(UploadId))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl Database for SqliteDatabase {
    async fn check_writable(&self) -> Result<()> {
        let tx = self.write_tx().await?;
        tx.rollback()
            .await
            .map_err(StoreError::query("ending a write check"))
    }

    async fn create_device(&self, device: NewDevice) -> Result<Device> {
        let now = to_text(Timestamp::now());
        let result = sqlx::query(
            "INSERT INTO devices (name, login, password_hash, enabled, allowed_networks, created_at, updated_at) \
             VALUES (?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(device.name.as_str())
        .bind(device.login.as_str())
        .bind(&device.password_hash)
        .bind(device.allowed_networks.join(","))
        .bind(&now)
        .bind(&now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => self
                .device_by_id(DeviceId(done.last_insert_rowid()))
                .await?
                .ok_or_else(|| not_found("the device just created")),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "a device named {:?} or with login {:?} already exists; choose another name or --login",
                device.name.as_str(),
                device.login.as_str()
            ))),
            Err(e) => Err(StoreError::query("creating a device")(e)),
        }
    }

    async fn device_by_id(&self, id: DeviceId) -> Result<Option<Device>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?"));
        sqlx::query(sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a device"))?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }

    async fn device_by_name(&self, name: &str) -> Result<Option<Device>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE name = ?"
        ));
        sqlx::query(sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a device"))?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }

    async fn device_by_login(&self, login: &str) -> Result<Option<Device>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE login = ?"
        ));
        sqlx::query(sql)
            .bind(login)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading a device"))?
            .as_ref()
            .map(device_from_row)
            .transpose()
    }

    async fn list_devices(&self) -> Result<Vec<Device>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name"
        ));
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("listing devices"))?
            .iter()
            .map(device_from_row)
            .collect()
    }

    async fn update_device(&self, id: DeviceId, update: DeviceUpdate) -> Result<Device> {
        let now = to_text(Timestamp::now());
        let mut tx = self.write_tx().await?;
        if let Some(hash) = &update.password_hash {
            sqlx::query("UPDATE devices SET password_hash = ?, updated_at = ? WHERE id = ?")
                .bind(hash)
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing a device password"))?;
        }
        if let Some(enabled) = update.enabled {
            sqlx::query("UPDATE devices SET enabled = ?, updated_at = ? WHERE id = ?")
                .bind(i64::from(enabled))
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("enabling or disabling a device"))?;
        }
        if let Some(nets) = &update.allowed_networks {
            sqlx::query("UPDATE devices SET allowed_networks = ?, updated_at = ? WHERE id = ?")
                .bind(nets.join(","))
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing a device's networks"))?;
        }
        if let Some(tz) = &update.time_zone {
            sqlx::query("UPDATE devices SET time_zone = ?, updated_at = ? WHERE id = ?")
                .bind(tz)
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing a device's time zone"))?;
        }
        if let Some(h) = update.contract_hour {
            sqlx::query("UPDATE devices SET contract_hour = ?, updated_at = ? WHERE id = ?")
                .bind(i64::from(h))
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing a device's contract hour"))?;
        }
        if let Some(title) = &update.title {
            sqlx::query("UPDATE devices SET title = ?, updated_at = ? WHERE id = ?")
                .bind(title)
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing a device's title"))?;
        }
        if let Some(required) = update.tls_required {
            sqlx::query("UPDATE devices SET tls_required = ?, updated_at = ? WHERE id = ?")
                .bind(i64::from(required))
                .bind(&now)
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("changing whether a device must use TLS"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("committing a device change"))?;
        self.device_by_id(id)
            .await?
            .ok_or_else(|| not_found(format!("device #{id}")))
    }

    async fn begin_upload(&self, upload: &NewUpload) -> Result<UploadId> {
        self.insert_upload(upload, None).await
    }

    // ---- begin storebench: receiver ownership of transfers (issue #4) ----
    async fn begin_upload_by(&self, upload: &NewUpload, receiver: &str) -> Result<UploadId> {
        self.insert_upload(upload, Some(receiver)).await
    }

    async fn interrupted_uploads(&self, receiver: &str) -> Result<Vec<UploadId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM uploads WHERE status = 'receiving' \
             AND (receiver = ? OR receiver IS NULL) ORDER BY id",
        )
        .bind(receiver)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(
            "listing this receiver's transfers in progress",
        ))?;
        Ok(ids.into_iter().map(UploadId).collect())
    }
    // ---- end storebench ----

    async fn finish_upload(&self, id: UploadId, finish: &UploadFinish) -> Result<FinishedUpload> {
        if self.session_group == 1 {
            // Its own transaction, in the lane ahead of ordinary writers.
            let mut tx = self.finish_write_tx().await?;
            let done = finish_upload_in(&mut tx, id, finish).await?;
            tx.commit()
                .await
                .map_err(StoreError::query("committing the end of an upload"))?;
            return Ok(done);
        }
        self.session_write(|reply| crate::sqlite_group::Job::Finish {
            id,
            finish: finish.clone(),
            reply,
        })
        .await
    }

    async fn record_recovered(&self, found: &RecoveredUpload) -> Result<UploadId> {
        let mut tx = self.write_tx().await?;
        let sha = found.sha256.to_hex();
        let duplicate_of = sqlx::query(
            "SELECT id FROM uploads WHERE sha256 = ? AND status IN ('complete', 'recovered') ORDER BY id LIMIT 1",
        )
        .bind(&sha)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("looking for an identical upload"))?
        .map(|r| r.try_get::<i64, _>(0))
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let at = to_text(found.found_at);
        let path = format!("/recovered/{}", found.found_as);
        let done = sqlx::query(
            "INSERT INTO uploads (device_id, original_name, path, final_path, mode, size, sha256, status, \
             reason, duplicate_of, started_at, received_at) \
             VALUES (?, ?, ?, ?, 'store', ?, ?, 'recovered', ?, ?, ?, ?)",
        )
        .bind(found.device_id.map(|d| d.0))
        .bind(&found.found_as)
        .bind(&path)
        .bind(&path)
        .bind(size_i64(found.size)?)
        .bind(&sha)
        .bind("found in the spool at start-up without a database record")
        .bind(duplicate_of)
        .bind(&at)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("recording a recovered file"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a recovered file"))?;
        Ok(UploadId(done.last_insert_rowid()))
    }

    async fn upload(&self, id: UploadId) -> Result<Option<Upload>> {
        let sql = sqlx::AssertSqlSafe(format!("{UPLOAD_SELECT} WHERE u.id = ?"));
        sqlx::query(sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("reading an upload"))?
            .as_ref()
            .map(upload_from_row)
            .transpose()
    }

    async fn uploads_by_id(&self, ids: &[UploadId]) -> Result<Vec<Upload>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            // Built from constant fragments; every value is bound.
            let sql = sqlx::AssertSqlSafe(format!("{UPLOAD_SELECT} WHERE u.id IN ({marks})"));
            let mut q = sqlx::query(sql);
            for id in chunk {
                q = q.bind(id.0);
            }
            for row in q
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("reading uploads"))?
            {
                found.push(upload_from_row(&row)?);
            }
        }
        Ok(found)
    }

    async fn list_uploads(&self, filter: &UploadFilter) -> Result<Vec<Upload>> {
        // Only the conditions that are set: `(? IS NULL OR …)` would keep
        // SQLite from using the index by device.
        let mut sql = format!("{UPLOAD_SELECT} WHERE 1 = 1");
        if filter.device_id.is_some() {
            sql.push_str(" AND u.device_id = ?");
        }
        if filter.status.is_some() {
            sql.push_str(" AND u.status = ?");
        }
        if filter.since.is_some() {
            sql.push_str(" AND u.started_at >= ?");
        }
        if filter.before_id.is_some() {
            sql.push_str(" AND u.id < ?");
        }
        if filter.ingest_state.is_some() {
            sql.push_str(" AND i.state = ?");
        }
        sql.push_str(" ORDER BY u.id DESC LIMIT ?");
        // Built from the constant fragments above; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(d) = filter.device_id {
            q = q.bind(d.0);
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(t) = filter.since {
            q = q.bind(to_text(t));
        }
        if let Some(b) = filter.before_id {
            q = q.bind(b.0);
        }
        if let Some(st) = filter.ingest_state {
            q = q.bind(st.as_str());
        }
        q.bind(filter.limit.map_or(-1, i64::from))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("listing uploads"))?
            .iter()
            .map(upload_from_row)
            .collect()
    }

    async fn referenced_digests(&self) -> Result<Vec<Sha256Digest>> {
        let rows = sqlx::query("SELECT DISTINCT sha256 FROM uploads WHERE sha256 IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("listing stored digests"))?;
        rows.iter()
            .map(|r| {
                let s: String = r
                    .try_get(0)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                s.parse::<Sha256Digest>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn uploads_by_digest(&self, sha256: &Sha256Digest) -> Result<Vec<UploadId>> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE sha256 = ? ORDER BY id")
            .bind(sha256.to_hex())
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("looking up uploads by digest"))?;
        rows.iter()
            .map(|r| {
                r.try_get::<i64, _>(0)
                    .map(UploadId)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn ns_file(&self, device: DeviceId, path: &str) -> Result<Option<NsFile>> {
        let Some((parent, name)) = split_path(path) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT f.upload_id, f.updated_at, u.size, u.sha256, u.status FROM device_files f \
             JOIN uploads u ON u.id = f.upload_id WHERE f.device_id = ? AND f.parent = ? AND f.name = ?",
        )
        .bind(device.0)
        .bind(parent)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("looking up a file"))?;
        row.map(|r| ns_file_from_row(&r, path.to_owned()))
            .transpose()
    }

    async fn ns_dir_exists(&self, device: DeviceId, path: &str) -> Result<bool> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(StoreError::query("getting a connection"))?;
        dir_exists(&mut conn, device, path).await
    }

    async fn ns_list(&self, device: DeviceId, dir: &str) -> Result<NsListing> {
        let dirs = sqlx::query(
            "SELECT name, created_at FROM device_dirs WHERE device_id = ? AND parent = ? ORDER BY name",
        )
        .bind(device.0)
        .bind(dir)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("listing directories"))?
        .iter()
        .map(|r| {
            let name: String = r.try_get(0).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let created: String = r.try_get(1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(NsDir {
                path: join_path(dir, &name),
                created: from_text(&created)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let files = sqlx::query(
            "SELECT f.upload_id, f.updated_at, u.size, u.sha256, u.status, f.name FROM device_files f \
             JOIN uploads u ON u.id = f.upload_id WHERE f.device_id = ? AND f.parent = ? ORDER BY f.name",
        )
        .bind(device.0)
        .bind(dir)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("listing files"))?
        .iter()
        .map(|r| {
            let name: String = r.try_get(5).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            ns_file_from_row(r, join_path(dir, &name))
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(NsListing { dirs, files })
    }

    async fn ns_mkdir(&self, device: DeviceId, path: &str) -> Result<()> {
        let Some((parent, name)) = split_path(path) else {
            return Err(StoreError::Conflict(
                "the root directory already exists".into(),
            ));
        };
        let mut tx = self.write_tx().await?;
        if !dir_exists(&mut tx, device, parent).await? {
            return Err(not_found(format!("directory {parent}")));
        }
        if file_upload_id(&mut tx, device, path).await?.is_some() {
            return Err(StoreError::Conflict(format!("a file named {path} exists")));
        }
        let done = sqlx::query(
            "INSERT OR IGNORE INTO device_dirs (device_id, parent, name, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(device.0)
        .bind(parent)
        .bind(name)
        .bind(to_text(Timestamp::now()))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("creating a directory"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "directory {path} already exists"
            )));
        }
        tx.commit()
            .await
            .map_err(StoreError::query("committing a new directory"))
    }

    async fn ns_rmdir(&self, device: DeviceId, path: &str) -> Result<()> {
        let Some((parent, name)) = split_path(path) else {
            return Err(StoreError::Conflict(
                "the root directory cannot be removed".into(),
            ));
        };
        let mut tx = self.write_tx().await?;
        if !dir_exists(&mut tx, device, path).await? {
            return Err(not_found(format!("directory {path}")));
        }
        let busy = sqlx::query(
            "SELECT 1 FROM device_files WHERE device_id = ?1 AND parent = ?2 \
             UNION ALL SELECT 1 FROM device_dirs WHERE device_id = ?1 AND parent = ?2 LIMIT 1",
        )
        .bind(device.0)
        .bind(path)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("checking a directory is empty"))?;
        if busy.is_some() {
            return Err(StoreError::Conflict(format!(
                "directory {path} is not empty"
            )));
        }
        sqlx::query("DELETE FROM device_dirs WHERE device_id = ? AND parent = ? AND name = ?")
            .bind(device.0)
            .bind(parent)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("removing a directory"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a directory removal"))
    }

    async fn ns_delete(&self, device: DeviceId, path: &str) -> Result<UploadId> {
        let Some((parent, name)) = split_path(path) else {
            return Err(not_found(format!("file {path}")));
        };
        let mut tx = self.write_tx().await?;
        let upload = file_upload_id(&mut tx, device, path)
            .await?
            .ok_or_else(|| not_found(format!("file {path}")))?;
        sqlx::query("DELETE FROM device_files WHERE device_id = ? AND parent = ? AND name = ?")
            .bind(device.0)
            .bind(parent)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("removing a file name"))?;
        sqlx::query("UPDATE uploads SET deleted_by_device = 1 WHERE id = ?")
            .bind(upload.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("marking an upload deleted by the device"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a file deletion"))?;
        Ok(upload)
    }

    async fn ns_rename(&self, device: DeviceId, from: &str, to: &str) -> Result<Renamed> {
        let (Some((from_parent, from_name)), Some((to_parent, to_name))) =
            (split_path(from), split_path(to))
        else {
            return Err(StoreError::Conflict(
                "the root directory cannot be renamed".into(),
            ));
        };
        let now = to_text(Timestamp::now());
        let mut tx = self.write_tx().await?;
        if !dir_exists(&mut tx, device, to_parent).await? {
            return Err(not_found(format!("directory {to_parent}")));
        }
        if let Some(upload) = file_upload_id(&mut tx, device, from).await? {
            if from == to {
                return Ok(Renamed::File {
                    upload_id: upload,
                    replaced: None,
                });
            }
            if dir_exists(&mut tx, device, to).await? {
                return Err(StoreError::Conflict(format!("{to} is a directory")));
            }
            let replaced = file_upload_id(&mut tx, device, to).await?;
            sqlx::query("DELETE FROM device_files WHERE device_id = ? AND parent = ? AND name = ?")
                .bind(device.0)
                .bind(to_parent)
                .bind(to_name)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("replacing a file name"))?;
            sqlx::query(
                "UPDATE device_files SET parent = ?, name = ?, updated_at = ? \
                 WHERE device_id = ? AND parent = ? AND name = ?",
            )
            .bind(to_parent)
            .bind(to_name)
            .bind(&now)
            .bind(device.0)
            .bind(from_parent)
            .bind(from_name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("renaming a file"))?;
            sqlx::query("UPDATE uploads SET final_path = ? WHERE id = ?")
                .bind(to)
                .bind(upload.0)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("recording an upload's final name"))?;
            tx.commit()
                .await
                .map_err(StoreError::query("committing a rename"))?;
            return Ok(Renamed::File {
                upload_id: upload,
                replaced,
            });
        }
        if !dir_exists(&mut tx, device, from).await? || from == "/" {
            return Err(not_found(from.to_string()));
        }
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(StoreError::Conflict(format!(
                "cannot move directory {from} into itself"
            )));
        }
        if dir_exists(&mut tx, device, to).await?
            || file_upload_id(&mut tx, device, to).await?.is_some()
        {
            return Err(StoreError::Conflict(format!("{to} already exists")));
        }
        // Move the directory entry, then rewrite the parent of everything below it.
        sqlx::query(
            "UPDATE device_dirs SET parent = ?, name = ? WHERE device_id = ? AND parent = ? AND name = ?",
        )
        .bind(to_parent)
        .bind(to_name)
        .bind(device.0)
        .bind(from_parent)
        .bind(from_name)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("renaming a directory"))?;
        // In characters: SQLite's substr counts characters, not bytes.
        let prefix_len = i64::try_from(from.chars().count()).unwrap_or(i64::MAX);
        let like_below = format!("{from}/");
        sqlx::query(
            "UPDATE device_dirs SET parent = ?1 || substr(parent, ?2 + 1) WHERE device_id = ?3 \
             AND (parent = ?4 OR substr(parent, 1, ?2 + 1) = ?5)",
        )
        .bind(to)
        .bind(prefix_len)
        .bind(device.0)
        .bind(from)
        .bind(&like_below)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("moving subdirectories"))?;
        let moved = sqlx::query(
            "UPDATE device_files SET parent = ?1 || substr(parent, ?2 + 1), updated_at = ?6 WHERE device_id = ?3 \
             AND (parent = ?4 OR substr(parent, 1, ?2 + 1) = ?5)",
        )
        .bind(to)
        .bind(prefix_len)
        .bind(device.0)
        .bind(from)
        .bind(&like_below)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("moving files"))?
        .rows_affected();
        sqlx::query(
            "UPDATE uploads SET final_path = (SELECT CASE WHEN f.parent = '/' THEN '/' || f.name \
             ELSE f.parent || '/' || f.name END FROM device_files f WHERE f.upload_id = uploads.id \
             AND f.device_id = ?1) WHERE id IN (SELECT upload_id FROM device_files WHERE device_id = ?1 \
             AND (parent = ?2 OR substr(parent, 1, length(?2) + 1) = ?2 || '/'))",
        )
        .bind(device.0)
        .bind(to)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("recording final names after a directory move"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a directory rename"))?;
        Ok(Renamed::Dir { files: moved })
    }

    async fn enqueue_ingest(&self, id: UploadId) -> Result<()> {
        let mut tx = self.write_tx().await?;
        crate::sqlite_ingest::enqueue(&mut tx, id, &to_text(Timestamp::now())).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an ingest request"))
    }

    async fn requeue_ingest(&self, filter: &RequeueFilter) -> Result<Vec<UploadId>> {
        let mut tx = self.write_tx().await?;
        let ids = crate::sqlite_ingest::requeue(&mut tx, filter).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a re-parse request"))?;
        Ok(ids)
    }

    async fn pending_ingest(&self, limit: u32) -> Result<Vec<UploadId>> {
        crate::sqlite_ingest::pending(&self.pool, limit, &to_text(Timestamp::now())).await
    }

    async fn release_stale_ingest_claims(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE ingest SET claimed_until = NULL WHERE state = 'pending' AND claimed_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await
        .map_err(StoreError::query("releasing ingest claims"))?
        .rows_affected())
    }

    async fn ingest_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        let row =
            sqlx::query("SELECT COUNT(*), MIN(queued_at) FROM ingest WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::query("measuring the ingest backlog"))?;
        let err = |e: sqlx::Error| StoreError::Corrupt(format!("ingest backlog: {e}"));
        let n: i64 = row.try_get(0).map_err(err)?;
        let oldest: Option<String> = row.try_get(1).map_err(err)?;
        Ok((
            u64::try_from(n).unwrap_or(0),
            oldest.as_deref().map(from_text).transpose()?,
        ))
    }

    async fn begin_ingest_attempt(
        &self,
        id: UploadId,
        lease: std::time::Duration,
    ) -> Result<Option<u32>> {
        let (now, until) = claim_window(lease)?;
        let mut tx = self.ingest_write_tx().await?;
        let n = crate::sqlite_ingest::attempt(&mut tx, id, &now, &until).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an ingest attempt"))?;
        Ok(n)
    }

    async fn begin_first_ingest_attempts(
        &self,
        ids: &[UploadId],
        lease: std::time::Duration,
    ) -> Result<Vec<UploadId>> {
        let (now, until) = claim_window(lease)?;
        let mut tx = self.ingest_write_tx().await?;
        let got = crate::sqlite_ingest::first_attempts(&mut tx, ids, &now, &until).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing ingest attempts"))?;
        Ok(got)
    }

    async fn store_parsed_many(
        &self,
        files: &[(UploadId, DeviceId, &crate::PreparedFile)],
    ) -> Result<Vec<IngestInfo>> {
        let now = to_text(Timestamp::now());
        let mut tx = self.ingest_write_tx().await?;
        let mut infos = Vec::with_capacity(files.len());
        for (id, device, parsed) in files {
            infos.push(
                crate::sqlite_ingest::store_parsed(&mut tx, *id, *device, parsed, &now).await?,
            );
        }
        tx.commit()
            .await
            .map_err(StoreError::query("committing parsed records"))?;
        Ok(infos)
    }

    async fn store_parsed(
        &self,
        id: UploadId,
        device: DeviceId,
        parsed: &ParsedFile,
    ) -> Result<IngestInfo> {
        // Encoded before the turn to write: others may write meanwhile.
        let prepared = crate::PreparedFile::new(parsed.clone())?;
        let mut tx = self.ingest_write_tx().await?;
        let info = crate::sqlite_ingest::store_parsed(
            &mut tx,
            id,
            device,
            &prepared,
            &to_text(Timestamp::now()),
        )
        .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing parsed records"))?;
        Ok(info)
    }

    async fn finish_ingest(&self, id: UploadId, state: IngestState, reason: &str) -> Result<()> {
        let mut tx = self.ingest_write_tx().await?;
        crate::sqlite_ingest::finish(&mut tx, id, state, reason, &to_text(Timestamp::now()))
            .await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an ingest outcome"))
    }

    async fn readings(&self, filter: &ReadingFilter) -> Result<Vec<ArchiveRecord>> {
        crate::sqlite_ingest::readings(&self.pool, filter).await
    }

    async fn events(&self, filter: &ReadingFilter) -> Result<Vec<EventRecord>> {
        crate::sqlite_ingest::events(&self.pool, filter).await
    }

    async fn insert_audit(&self, events: &[NewAuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        // Multi-row statements, in the given order (ids grow with it): one
        // round trip to the connection's thread for up to AUDIT_ROWS events
        // instead of one each (a burst of 2,000 sessions makes 10,000).
        for chunk in events.chunks(AUDIT_ROWS) {
            let mut sql = String::from(
                "INSERT INTO audit (at, kind, session, peer, device_id, login, upload_id, outcome, detail) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 {
                    "(?,?,?,?,?,?,?,?,?)"
                } else {
                    ",(?,?,?,?,?,?,?,?,?)"
                });
            }
            // Built only from the constant fragments above; every value is
            // bound. Full chunks share one cached statement; the last, shorter
            // one is not kept in the connection's cache.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == AUDIT_ROWS);
            for e in chunk {
                q = q
                    .bind(to_text(e.at))
                    .bind(e.kind.as_str())
                    .bind(&e.session)
                    .bind(&e.peer)
                    .bind(e.device_id.map(|d| d.0))
                    .bind(&e.login)
                    .bind(e.upload_id.map(|u| u.0))
                    .bind(&e.outcome)
                    .bind(&e.detail);
            }
            q.execute(&mut *tx)
                .await
                .map_err(StoreError::query("writing the audit trail"))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query("committing the audit trail"))
    }

    async fn ensure_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        due_at: Timestamp,
    ) -> Result<bool> {
        let tx = self.write_tx().await?;
        crate::sqlite_delivery::ensure(tx, name, gas_day, due_at, Timestamp::now()).await
    }

    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DeliveryRecord>> {
        crate::sqlite_delivery::due(&self.pool, now, limit).await
    }

    async fn claim_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        lease_until: Timestamp,
        force: bool,
    ) -> Result<Option<DeliveryRecord>> {
        let tx = self.write_tx().await?;
        crate::sqlite_delivery::claim(tx, name, gas_day, now, lease_until, force).await
    }

    async fn finish_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<DeliveryRecord> {
        crate::sqlite_delivery::finish(&self.pool, name, gas_day, now, outcome).await
    }

    async fn delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
    ) -> Result<Option<DeliveryRecord>> {
        crate::sqlite_delivery::get(&self.pool, name, gas_day).await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        crate::sqlite_delivery::list(&self.pool, filter).await
    }

    async fn device_activity(&self, only: Option<DeviceId>) -> Result<Vec<DeviceActivity>> {
        crate::sqlite_web::device_activity(&self.pool, only).await
    }

    async fn open_alert(
        &self,
        alert: &crate::NewAlert,
        notification: Option<&crate::NewNotification>,
    ) -> Result<Option<telegaz_domain::Alert>> {
        let mut tx = self.write_tx().await?;
        let opened = crate::sqlite_alerts::open(&mut tx, alert, notification).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an alert"))?;
        Ok(opened)
    }

    async fn resolve_alert(
        &self,
        id: i64,
        at: Timestamp,
        notification: Option<&crate::NewNotification>,
    ) -> Result<telegaz_domain::Alert> {
        let mut tx = self.write_tx().await?;
        let a = crate::sqlite_alerts::resolve(&mut tx, id, at, notification).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an alert"))?;
        Ok(a)
    }

    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        at: Timestamp,
    ) -> Result<telegaz_domain::Alert> {
        let mut tx = self.write_tx().await?;
        let a = crate::sqlite_alerts::acknowledge(&mut tx, id, by, at).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing an alert"))?;
        Ok(a)
    }

    async fn list_alerts(&self, filter: &crate::AlertFilter) -> Result<Vec<telegaz_domain::Alert>> {
        crate::sqlite_alerts::list(&self.pool, filter).await
    }

    async fn last_resolved_before(
        &self,
        key: &str,
        before: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let t: Option<String> = sqlx::query_scalar(
            "SELECT MAX(resolved_at) FROM alerts WHERE key = ? AND state = 'resolved' AND resolved_at < ?",
        )
        .bind(key)
        .bind(to_text(before))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("reading an alert's history"))?;
        t.as_deref().map(from_text).transpose()
    }

    async fn enqueue_notification(&self, notification: &crate::NewNotification) -> Result<i64> {
        let mut tx = self.write_tx().await?;
        let id = crate::sqlite_alerts::enqueue(&mut tx, notification, None).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a notification"))?;
        Ok(id)
    }

    async fn due_notifications(
        &self,
        notifier: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<telegaz_domain::Notification>> {
        let mut tx = self.write_tx().await?;
        let due = crate::sqlite_alerts::due(&mut tx, notifier, now, limit).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing taken notifications"))?;
        Ok(due)
    }

    async fn finish_notification(
        &self,
        notification_id: i64,
        notifier: &str,
        outcome: &crate::SendOutcome,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        crate::sqlite_alerts::finish(&mut tx, notification_id, notifier, outcome, now).await?;
        tx.commit()
            .await
            .map_err(StoreError::query("committing a notification attempt"))
    }

    async fn notification_sends(&self, limit: u32) -> Result<Vec<crate::NotificationSend>> {
        crate::sqlite_alerts::sends(&self.pool, limit).await
    }

    async fn recent_upload_times(
        &self,
        per_device: u32,
    ) -> Result<Vec<(DeviceId, Vec<Timestamp>)>> {
        crate::sqlite_alerts::recent_upload_times(&self.pool, per_device).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        crate::sqlite_web::create_user(&self.pool, &user).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        crate::sqlite_web::user_by_id(&self.pool, id).await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        crate::sqlite_web::user_by_name(&self.pool, name).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        crate::sqlite_web::list_users(&self.pool).await
    }

    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<User> {
        crate::sqlite_web::update_user(&self.pool, id, &update).await
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        crate::sqlite_web::create_session(&self.pool, &session).await
    }

    async fn session(&self, token_sha256: &str, now: Timestamp) -> Result<Option<WebSession>> {
        crate::sqlite_web::session(&self.pool, token_sha256, now).await
    }

    async fn delete_session(&self, token_sha256: &str) -> Result<()> {
        crate::sqlite_web::delete_session(&self.pool, token_sha256).await
    }

    async fn create_api_token(
        &self,
        user: UserId,
        name: &str,
        token_sha256: &str,
    ) -> Result<ApiToken> {
        crate::sqlite_web::create_api_token(&self.pool, user, name, token_sha256).await
    }

    async fn user_by_api_token(&self, token_sha256: &str, now: Timestamp) -> Result<Option<User>> {
        crate::sqlite_web::user_by_api_token(&self.pool, token_sha256, now).await
    }

    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        crate::sqlite_web::list_api_tokens(&self.pool, user).await
    }

    async fn revoke_api_token(&self, user: UserId, id: i64) -> Result<()> {
        crate::sqlite_web::revoke_api_token(&self.pool, user, id).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT a.id, a.at, a.kind, a.session, a.peer, a.device_id, d.name AS device_name, a.login, \
             a.upload_id, a.outcome, a.detail FROM audit a LEFT JOIN devices d ON d.id = a.device_id \
             WHERE (?1 IS NULL OR a.at >= ?1) AND (?2 IS NULL OR a.device_id = ?2) \
             AND (?3 IS NULL OR a.kind = ?3) AND (?5 IS NULL OR a.at < ?5) \
             AND (?6 IS NULL OR a.login = ?6) AND (?7 IS NULL OR a.id < ?7) \
             ORDER BY a.id {order} LIMIT ?4"
        ));
        let rows = sqlx::query(sql)
            .bind(filter.since.map(to_text))
            .bind(filter.device_id.map(|d| d.0))
            .bind(filter.kind.map(|k| k.as_str()))
            .bind(filter.limit.map_or(-1, i64::from))
            .bind(filter.until.map(to_text))
            .bind(filter.login.as_deref())
            .bind(filter.before_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("reading the audit trail"))?;
        rows.iter()
            .map(|r| {
                let get_err = |e: sqlx::Error| StoreError::Corrupt(format!("audit row: {e}"));
                let at: String = r.try_get("at").map_err(get_err)?;
                let kind: String = r.try_get("kind").map_err(get_err)?;
                Ok(AuditEvent {
                    id: r.try_get("id").map_err(get_err)?,
                    at: from_text(&at)?,
                    kind: AuditKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                    session: r.try_get("session").map_err(get_err)?,
                    peer: r.try_get("peer").map_err(get_err)?,
                    device_id: r
                        .try_get::<Option<i64>, _>("device_id")
                        .map_err(get_err)?
                        .map(DeviceId),
                    device: r.try_get("device_name").map_err(get_err)?,
                    login: r.try_get("login").map_err(get_err)?,
                    upload_id: r
                        .try_get::<Option<i64>, _>("upload_id")
                        .map_err(get_err)?
                        .map(UploadId),
                    outcome: r.try_get("outcome").map_err(get_err)?,
                    detail: r.try_get("detail").map_err(get_err)?,
                })
            })
            .collect()
    }

    // --- bans (abuse resistance) ---
    async fn create_ban(&self, ban: &telegaz_domain::NewBan) -> Result<telegaz_domain::Ban> {
        crate::sqlite_bans::create(&self.pool, ban).await
    }

    async fn list_bans(&self, filter: &crate::BanFilter) -> Result<Vec<telegaz_domain::Ban>> {
        crate::sqlite_bans::list(&self.pool, filter).await
    }

    async fn lift_ban(&self, id: i64, by: &str, at: Timestamp) -> Result<telegaz_domain::Ban> {
        crate::sqlite_bans::lift(&self.pool, id, by, at).await
    }

    async fn active_ban(
        &self,
        address: &str,
        login: &str,
        now: Timestamp,
    ) -> Result<Option<telegaz_domain::Ban>> {
        crate::sqlite_bans::active_for(&self.pool, address, login, now).await
    }

    async fn count_bans_by(
        &self,
        created_by: &str,
        address: &str,
        login: Option<&str>,
        since: Timestamp,
    ) -> Result<u32> {
        crate::sqlite_bans::count_made_by(&self.pool, created_by, address, login, since).await
    }
    // --- end bans ---
}

fn ns_file_from_row(r: &SqliteRow, path: String) -> Result<NsFile> {
    let get_err = |e: sqlx::Error| StoreError::Corrupt(format!("file row: {e}"));
    let updated: String = r.try_get(1).map_err(get_err)?;
    let size: i64 = r.try_get(2).map_err(get_err)?;
    let sha: Option<String> = r.try_get(3).map_err(get_err)?;
    let status: String = r.try_get(4).map_err(get_err)?;
    Ok(NsFile {
        path,
        upload_id: UploadId(r.try_get(0).map_err(get_err)?),
        size: u64::try_from(size).unwrap_or(0),
        sha256: sha
            .map(|s| s.parse::<Sha256Digest>())
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: UploadStatus::from_str(&status).map_err(StoreError::Corrupt)?,
        modified: from_text(&updated)?,
    })
}

// ---- begin storebench: receiver ownership of transfers (issue #4) ----
impl SqliteDatabase {
    /// `begin_upload` and `begin_upload_by`: `receiver` NULL or its id.
    async fn insert_upload(&self, upload: &NewUpload, receiver: Option<&str>) -> Result<UploadId> {
        if self.session_group == 1 {
            // One statement, its own transaction (SQLite commits it), in
            // this process's turn like every write of a session: no BEGIN
            // and COMMIT round trips to the connection's thread.
            let mut conn = self.write_one().await?;
            return insert_upload_in(&mut conn, upload, receiver).await;
        }
        self.session_write(|reply| crate::sqlite_group::Job::Begin {
            upload: upload.clone(),
            receiver: receiver.map(str::to_owned),
            reply,
        })
        .await
    }
}
// ---- end storebench ----

/// The start of an upload (`receiver` NULL or its id), inside the caller's
/// write transaction.
pub(crate) async fn insert_upload_in(
    tx: &mut sqlx::SqliteConnection,
    upload: &NewUpload,
    receiver: Option<&str>,
) -> Result<UploadId> {
    let raw = upload
        .original_name
        .was_transcoded()
        .then(|| upload.original_name.raw.clone());
    let done = sqlx::query(
        "INSERT INTO uploads (device_id, original_name, original_name_raw, path, final_path, mode, \
         status, resumed_from, resume_offset, peer, session, started_at, receiver) \
         VALUES (?, ?, ?, ?, ?, ?, 'receiving', ?, ?, ?, ?, ?, ?)",
    )
    .bind(upload.device_id.0)
    .bind(&upload.original_name.display)
    .bind(raw)
    .bind(&upload.path)
    .bind(&upload.path)
    .bind(upload.mode.as_str())
    .bind(upload.resumed_from.map(|u| u.0))
    .bind(size_i64(upload.offset)?)
    .bind(&upload.peer)
    .bind(&upload.session)
    .bind(to_text(upload.started_at))
    .bind(receiver)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("recording the start of an upload"))?;
    Ok(UploadId(done.last_insert_rowid()))
}

/// The end of an upload (its record, its name in the device's directory,
/// its place in the ingest queue), inside the caller's write transaction.
pub(crate) async fn finish_upload_in(
    tx: &mut sqlx::SqliteConnection,
    id: UploadId,
    finish: &UploadFinish,
) -> Result<FinishedUpload> {
    // One statement (one round trip to the connection's thread) instead of
    // three: the earlier identical upload of the same device is looked up
    // while the row is updated, and the row says whose it is and where.
    let sha = finish.sha256.to_hex();
    let finished = to_text(finish.finished_at);
    let row = sqlx::query(
        "UPDATE uploads SET status = ?1, size = ?2, sha256 = ?3, reason = ?4, received_at = ?5, \
         duplicate_of = CASE WHEN ?1 = 'complete' THEN (SELECT e.id FROM uploads e \
         WHERE e.device_id IS uploads.device_id AND e.sha256 = ?3 AND e.id <> uploads.id \
         AND e.status IN ('complete', 'recovered') ORDER BY e.id LIMIT 1) END \
         WHERE id = ?6 RETURNING device_id, path, duplicate_of",
    )
    .bind(finish.status.as_str())
    .bind(size_i64(finish.size)?)
    .bind(&sha)
    .bind(&finish.reason)
    .bind(&finished)
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("recording the end of an upload"))?
    .ok_or_else(|| not_found(format!("upload #{id}")))?;
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let device: Option<i64> = row.try_get(0).map_err(corrupt)?;
    let path: String = row.try_get(1).map_err(corrupt)?;
    let duplicate_of = row
        .try_get::<Option<i64>, _>(2)
        .map_err(corrupt)?
        .map(UploadId);
    if let (Some(device), Some((parent, name))) = (device, split_path(&path)) {
        let device = DeviceId(device);
        ensure_parents(tx, device, &path, &finished).await?;
        sqlx::query(
            "INSERT INTO device_files (device_id, parent, name, upload_id, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, parent, name) DO UPDATE SET upload_id = excluded.upload_id, \
             updated_at = excluded.updated_at",
        )
        .bind(device.0)
        .bind(parent)
        .bind(name)
        .bind(id.0)
        .bind(&finished)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("showing an upload in the device's directory"))?;
    }
    if finish.status == UploadStatus::Complete && device.is_some() {
        crate::sqlite_ingest::enqueue(tx, id, &finished).await?;
    }
    Ok(FinishedUpload { duplicate_of })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A new database file gets 16 KiB pages (and keeps them when opened
    /// again); WAL stays on.
    #[tokio::test]
    async fn a_new_database_has_16_kib_pages_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db").display().to_string();
        for _ in 0..2 {
            let db = SqliteDatabase::open(&path).await.unwrap();
            let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(size, 16384);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            db.pool().close().await;
        }
    }

    /// Every write transaction runs on the same connection (whose page cache
    /// then stays valid from one write to the next), whichever connections
    /// readers hold meanwhile; and a reader is not held up by it.
    #[tokio::test]
    async fn writes_share_one_connection_whatever_readers_hold() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("t.db").display().to_string())
            .await
            .unwrap();
        // A TEMP table exists on the connection that made it, and only there.
        let mut tx = db.write_tx().await.unwrap();
        sqlx::query("CREATE TEMP TABLE mark (x)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The connection a write ran on is not one a reader can get: readers
        // take every connection but one of the pool, and none has the mark.
        let has_mark = async |c: &mut sqlx::SqliteConnection| -> bool {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM temp.sqlite_master WHERE name = 'mark'",
            )
            .fetch_one(c)
            .await
            .unwrap()
                == 1
        };
        let mut readers = Vec::new();
        for _ in 0..7 {
            let mut c = db.pool().acquire().await.unwrap();
            assert!(
                !has_mark(&mut c).await,
                "a reader got the writer's connection"
            );
            readers.push(c);
        }
        // The next writes, while readers hold those, find the mark: the same connection.
        for _ in 0..3 {
            let mut tx = db.write_tx().await.unwrap();
            assert!(has_mark(&mut tx).await, "a write ran on another connection");
            let mut one = {
                tx.commit().await.unwrap();
                db.write_one().await.unwrap()
            };
            assert!(
                has_mark(&mut one).await,
                "a write ran on another connection"
            );
        }
        // A read while a write transaction is open: served by a free connection.
        drop(readers);
        let _tx = db.write_tx().await.unwrap();
        let n: i64 = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query_scalar("SELECT COUNT(*) FROM uploads").fetch_one(db.pool()),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(n, 0);
    }

    /// Writers of the process wait their turn in order; the ingest worker's
    /// next write goes ahead of every writer still at a gate (it waits for
    /// the transaction running and the one writer past the gates, no more),
    /// and the end of an upload goes ahead of ordinary writers.
    #[tokio::test]
    async fn writers_take_turns_in_order_and_ingest_goes_ahead_of_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDatabase::open(&dir.path().join("t.db").display().to_string())
            .await
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let holder = db.write_tx().await.unwrap();
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(50));
        let mut tasks = Vec::new();
        for name in ["a", "b", "c", "finish", "ingest"] {
            let (db, order) = (db.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let tx = match name {
                    "ingest" => db.ingest_write_tx().await.unwrap(),
                    "finish" => db.finish_write_tx().await.unwrap(),
                    _ => db.write_tx().await.unwrap(),
                };
                order.lock().unwrap().push(name);
                tx.commit().await.unwrap();
            }));
            pause().await;
        }
        assert!(order.lock().unwrap().is_empty(), "all wait for the holder");
        holder.commit().await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["a", "ingest", "finish", "b", "c"]
        );
    }

    async fn open_with_device(
        dir: &tempfile::TempDir,
        sqlite_session_group: usize,
    ) -> (SqliteDatabase, DeviceId) {
        let db = SqliteDatabase::open_with(
            &dir.path().join("t.db").display().to_string(),
            &crate::StoreOptions {
                sqlite_session_group,
            },
        )
        .await
        .unwrap();
        let name = DeviceName::parse("unit-1").unwrap();
        let device = db
            .create_device(NewDevice {
                name: name.clone(),
                login: name,
                password_hash: "$argon2id$x".into(),
                allowed_networks: vec![],
            })
            .await
            .unwrap();
        (db, device.id)
    }

    fn new_upload(device: DeviceId, n: usize) -> NewUpload {
        NewUpload {
            device_id: device,
            original_name: telegaz_domain::FileName::utf8(&format!("f{n}.txt")),
            path: format!("/f{n}.txt"),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: None,
            session: Some(format!("s{n}")),
            started_at: Timestamp::now(),
        }
    }

    fn complete(n: usize) -> UploadFinish {
        UploadFinish {
            status: UploadStatus::Complete,
            size: 10,
            sha256: Sha256Digest([u8::try_from(n % 256).unwrap(); 32]),
            reason: None,
            finished_at: Timestamp::now(),
        }
    }

    /// The starts and ends of uploads that wait for the turn to write are
    /// committed in one transaction; one refused write in a group costs the
    /// others nothing (each is done again alone) and gets its own answer.
    #[tokio::test]
    async fn session_writes_waiting_for_the_turn_are_committed_together() {
        let dir = tempfile::tempdir().unwrap();
        let (db, device) = open_with_device(&dir, 64).await;
        let holder = db.write_tx().await.unwrap();
        let begins: Vec<_> = (0..40)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move { db.begin_upload(&new_upload(device, n)).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(db.group().counts(), (0, 0), "nothing before the turn");
        holder.rollback().await.unwrap();
        let mut ids = Vec::new();
        for b in begins {
            ids.push(b.await.unwrap().unwrap());
        }
        assert_eq!(db.group().counts(), (1, 40), "forty starts, one commit");
        let mut distinct = ids.clone();
        distinct.sort_by_key(|id| id.0);
        distinct.dedup();
        assert_eq!(distinct.len(), 40);
        for id in &ids {
            let u = db.upload(*id).await.unwrap().unwrap();
            assert_eq!(u.status, UploadStatus::Receiving);
        }

        // Ten ends and one end of an upload that does not exist.
        let holder = db.write_tx().await.unwrap();
        let mut ends = Vec::new();
        for (n, id) in ids.iter().copied().enumerate().take(10) {
            let db = db.clone();
            ends.push(tokio::spawn(async move {
                db.finish_upload(id, &complete(n)).await
            }));
        }
        let missing = {
            let db = db.clone();
            tokio::spawn(async move { db.finish_upload(UploadId(999_999), &complete(0)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        holder.rollback().await.unwrap();
        for e in ends {
            assert_eq!(e.await.unwrap().unwrap().duplicate_of, None);
        }
        assert!(matches!(
            missing.await.unwrap(),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            db.group().counts(),
            (11, 50),
            "the failed group's ten ends were committed one by one"
        );
        for (n, id) in ids.iter().enumerate() {
            let u = db.upload(*id).await.unwrap().unwrap();
            let want = if n < 10 {
                UploadStatus::Complete
            } else {
                UploadStatus::Receiving
            };
            assert_eq!(u.status, want, "upload {n}");
        }
    }

    /// Groups take at most the configured number of writes, the ends of
    /// uploads ahead of starts. (With the default of one, every write is a
    /// transaction of its own, in its lane: see the test above.)
    #[tokio::test]
    async fn session_groups_are_bounded_and_ends_go_first() {
        for (group, commits) in [(4, 3), (2, 5)] {
            let dir = tempfile::tempdir().unwrap();
            let (db, device) = open_with_device(&dir, group).await;
            let mut ids = Vec::new();
            for n in 0..5 {
                ids.push(db.begin_upload(&new_upload(device, n)).await.unwrap());
            }
            let before = db.group().counts();
            let order = Arc::new(Mutex::new(Vec::new()));
            let holder = db.write_tx().await.unwrap();
            let mut tasks = Vec::new();
            for n in 5..10 {
                let (db, order) = (db.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    db.begin_upload(&new_upload(device, n)).await.unwrap();
                    order.lock().unwrap().push(format!("begin {n}"));
                }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            for (n, id) in ids.iter().copied().enumerate() {
                let (db, order) = (db.clone(), order.clone());
                tasks.push(tokio::spawn(async move {
                    db.finish_upload(id, &complete(n)).await.unwrap();
                    order.lock().unwrap().push(format!("finish {n}"));
                }));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            holder.rollback().await.unwrap();
            for t in tasks {
                t.await.unwrap();
            }
            let after = db.group().counts();
            assert_eq!(
                (after.0 - before.0, after.1 - before.1),
                (commits, 10),
                "group of {group}"
            );
            let order = order.lock().unwrap();
            let first_begin = order.iter().position(|o| o.starts_with("begin")).unwrap();
            assert!(
                order[..first_begin].len() >= 4,
                "group of {group}: the ends went first: {order:?}"
            );
        }
    }

    /// The committer runs on the runtime that first needed it; when that
    /// runtime is gone, the next write starts another on its own runtime.
    #[test]
    fn session_writes_go_on_after_the_committer_runtime_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (db, device) = first.block_on(open_with_device(&dir, 64));
        let a = first
            .block_on(db.begin_upload(&new_upload(device, 1)))
            .unwrap();
        drop(first);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = second
            .block_on(db.begin_upload(&new_upload(device, 2)))
            .unwrap();
        let done = second.block_on(db.finish_upload(a, &complete(1))).unwrap();
        assert_eq!(done.duplicate_of, None);
        assert!(b.0 > a.0);
    }
}
