//! PostgreSQL side of devices, uploads, the device namespace, the audit trail
//! and fleet activity. The ingest queue, readings and events are in
//! `pg_ingest`.
//!
//! Several receivers may share the database. Whatever reads and then writes
//! a device's uploads or names (finishing an upload, mkdir, rename, delete)
//! first locks that device's row (`FOR NO KEY UPDATE`, which inserts that
//! only reference the device do not wait for), so that such changes of one
//! device happen one at a time, as in SQLite.

use std::str::FromStr;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use telegaz_domain::{
    AuditEvent, AuditKind, Device, DeviceId, DeviceName, NewAuditEvent, NewUpload, Sha256Digest,
    Timestamp, Upload, UploadFinish, UploadId, UploadMode, UploadStatus,
};

use crate::path::{join_path, split_path};
use crate::pg_time::{PgLocal, PgTime};
use crate::postgres::PgDatabase;
use crate::{
    AuditFilter, DeviceActivity, DeviceUpdate, FinishedUpload, NewDevice, NsDir, NsFile, NsListing,
    RecoveredUpload, Renamed, Result, StoreError, UploadFilter,
};

pub(crate) use crate::pg_ingest::{
    begin_first_ingest_attempts, begin_ingest_attempt, enqueue_ingest, events, finish_ingest,
    ingest_backlog, pending_ingest, readings, requeue_ingest, store_parsed, store_parsed_many,
};

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

fn corrupt(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn not_found(what: impl Into<String>) -> StoreError {
    StoreError::NotFound { what: what.into() }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn size_i64(size: u64) -> Result<i64> {
    i64::try_from(size).map_err(|_| StoreError::Conflict(format!("size {size} is too large")))
}

fn size_u64(size: i64) -> Result<u64> {
    u64::try_from(size).map_err(|_| StoreError::Corrupt(format!("size {size}")))
}

fn digest(hex: Option<String>) -> Result<Option<Sha256Digest>> {
    hex.map(|s| s.parse::<Sha256Digest>())
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) async fn begin(db: &PgDatabase) -> Result<Tx> {
    db.pool
        .begin()
        .await
        .map_err(StoreError::query("starting a transaction"))
}

pub(crate) async fn commit(tx: Tx, context: &'static str) -> Result<()> {
    tx.commit().await.map_err(StoreError::query(context))
}

/// Take the device's row lock for the rest of the transaction.
async fn lock_device(conn: &mut PgConnection, device: DeviceId) -> Result<()> {
    sqlx::query("SELECT 1 FROM devices WHERE id = $1 FOR NO KEY UPDATE")
        .bind(device.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::query("locking a device"))?
        .map(|_| ())
        .ok_or_else(|| not_found(format!("device #{device}")))
}

// Devices.

const DEVICE_COLUMNS: &str = "id, name, login, password_hash, enabled, allowed_networks, \
     time_zone, contract_hour, title, tls_required, created_at";

fn device_from_row(row: &PgRow) -> Result<Device> {
    let err = corrupt("device row");
    let name: String = row.try_get("name").map_err(&err)?;
    let login: String = row.try_get("login").map_err(&err)?;
    let hour: i16 = row.try_get("contract_hour").map_err(&err)?;
    Ok(Device {
        id: DeviceId(row.try_get("id").map_err(&err)?),
        name: DeviceName::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        login: DeviceName::parse(&login).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        password_hash: row.try_get("password_hash").map_err(&err)?,
        enabled: row.try_get("enabled").map_err(&err)?,
        allowed_networks: row.try_get("allowed_networks").map_err(&err)?,
        time_zone: row.try_get("time_zone").map_err(&err)?,
        contract_hour: i8::try_from(hour)
            .map_err(|e| StoreError::Corrupt(format!("contract hour: {e}")))?,
        title: row.try_get("title").map_err(&err)?,
        tls_required: row.try_get("tls_required").map_err(&err)?,
        created_at: row.try_get::<PgTime, _>("created_at").map_err(&err)?.0,
    })
}

async fn one_device(db: &PgDatabase, column: &str, value: DeviceKey<'_>) -> Result<Option<Device>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE {column} = $1"
    ));
    let q = sqlx::query(sql);
    let q = match value {
        DeviceKey::Id(id) => q.bind(id.0),
        DeviceKey::Text(s) => q.bind(s.to_owned()),
    };
    q.fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("reading a device"))?
        .as_ref()
        .map(device_from_row)
        .transpose()
}

enum DeviceKey<'a> {
    Id(DeviceId),
    Text(&'a str),
}

pub(crate) async fn create_device(db: &PgDatabase, device: NewDevice) -> Result<Device> {
    let now = PgTime(Timestamp::now());
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO devices (name, login, password_hash, enabled, allowed_networks, created_at, updated_at) \
         VALUES ($1, $2, $3, TRUE, $4, $5, $5) RETURNING {DEVICE_COLUMNS}"
    ));
    let result = sqlx::query(sql)
        .bind(device.name.as_str())
        .bind(device.login.as_str())
        .bind(&device.password_hash)
        .bind(&device.allowed_networks)
        .bind(now)
        .fetch_one(&db.pool)
        .await;
    match result {
        Ok(row) => device_from_row(&row),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
            "a device named {:?} or with login {:?} already exists; choose another name or --login",
            device.name.as_str(),
            device.login.as_str()
        ))),
        Err(e) => Err(StoreError::query("creating a device")(e)),
    }
}

pub(crate) async fn device_by_id(db: &PgDatabase, id: DeviceId) -> Result<Option<Device>> {
    one_device(db, "id", DeviceKey::Id(id)).await
}

pub(crate) async fn device_by_name(db: &PgDatabase, name: &str) -> Result<Option<Device>> {
    one_device(db, "name", DeviceKey::Text(name)).await
}

pub(crate) async fn device_by_login(db: &PgDatabase, login: &str) -> Result<Option<Device>> {
    one_device(db, "login", DeviceKey::Text(login)).await
}

pub(crate) async fn list_devices(db: &PgDatabase) -> Result<Vec<Device>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name"
    ));
    sqlx::query(sql)
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing devices"))?
        .iter()
        .map(device_from_row)
        .collect()
}

pub(crate) async fn update_device(
    db: &PgDatabase,
    id: DeviceId,
    update: DeviceUpdate,
) -> Result<Device> {
    let changes = update.password_hash.is_some()
        || update.enabled.is_some()
        || update.allowed_networks.is_some()
        || update.time_zone.is_some()
        || update.contract_hour.is_some()
        || update.title.is_some()
        || update.tls_required.is_some();
    if !changes {
        return device_by_id(db, id)
            .await?
            .ok_or_else(|| not_found(format!("device #{id}")));
    }
    // One statement: every field that is set, and the time of the change.
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE devices SET password_hash = COALESCE($2, password_hash), \
         enabled = COALESCE($3, enabled), allowed_networks = COALESCE($4, allowed_networks), \
         time_zone = COALESCE($5, time_zone), contract_hour = COALESCE($6, contract_hour), \
         title = COALESCE($7, title), updated_at = $8, \
         tls_required = COALESCE($9, tls_required) WHERE id = $1 RETURNING {DEVICE_COLUMNS}"
    ));
    sqlx::query(sql)
        .bind(id.0)
        .bind(&update.password_hash)
        .bind(update.enabled)
        .bind(&update.allowed_networks)
        .bind(&update.time_zone)
        .bind(update.contract_hour.map(i16::from))
        .bind(&update.title)
        .bind(PgTime(Timestamp::now()))
        .bind(update.tls_required)
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("changing a device"))?
        .as_ref()
        .map(device_from_row)
        .transpose()?
        .ok_or_else(|| not_found(format!("device #{id}")))
}

// Uploads.

const UPLOAD_SELECT: &str = "SELECT u.id, u.device_id, d.name AS device_name, u.original_name, \
     u.original_name_raw, u.path, u.final_path, u.mode, u.size, u.sha256, u.status, u.reason, \
     u.duplicate_of, u.resumed_from, u.peer, u.session, u.started_at, u.received_at, \
     u.deleted_by_device, u.receiver, i.state AS ingest_state, i.format AS ingest_format, \
     i.reason AS ingest_reason, i.truncated AS ingest_truncated, i.records_total, i.records_new, \
     i.records_duplicate, i.records_conflicting, i.events_total, i.model AS ingest_model, \
     i.serial AS ingest_serial \
     FROM uploads u LEFT JOIN devices d ON d.id = u.device_id \
     LEFT JOIN ingest i ON i.upload_id = u.id";

fn upload_from_row(row: &PgRow) -> Result<Upload> {
    let err = corrupt("upload row");
    let status: String = row.try_get("status").map_err(&err)?;
    let mode: String = row.try_get("mode").map_err(&err)?;
    let raw: Option<Vec<u8>> = row.try_get("original_name_raw").map_err(&err)?;
    Ok(Upload {
        id: UploadId(row.try_get("id").map_err(&err)?),
        device_id: row
            .try_get::<Option<i64>, _>("device_id")
            .map_err(&err)?
            .map(DeviceId),
        device: row.try_get("device_name").map_err(&err)?,
        original_name: row.try_get("original_name").map_err(&err)?,
        original_name_hex: raw.map(|b| b.iter().map(|b| format!("{b:02x}")).collect()),
        path: row.try_get("path").map_err(&err)?,
        final_path: row.try_get("final_path").map_err(&err)?,
        mode: UploadMode::from_str(&mode).map_err(StoreError::Corrupt)?,
        size: size_u64(row.try_get("size").map_err(&err)?)?,
        sha256: digest(row.try_get("sha256").map_err(&err)?)?,
        status: UploadStatus::from_str(&status).map_err(StoreError::Corrupt)?,
        reason: row.try_get("reason").map_err(&err)?,
        duplicate_of: row
            .try_get::<Option<i64>, _>("duplicate_of")
            .map_err(&err)?
            .map(UploadId),
        resumed_from: row
            .try_get::<Option<i64>, _>("resumed_from")
            .map_err(&err)?
            .map(UploadId),
        peer: row.try_get("peer").map_err(&err)?,
        session: row.try_get("session").map_err(&err)?,
        started_at: row.try_get::<PgTime, _>("started_at").map_err(&err)?.0,
        received_at: row
            .try_get::<Option<PgTime>, _>("received_at")
            .map_err(&err)?
            .map(|t| t.0),
        deleted_by_device: row.try_get("deleted_by_device").map_err(&err)?,
        ingest: crate::pg_ingest::ingest_from_row(row)?,
        receiver: row.try_get("receiver").map_err(&err)?,
    })
}

/// `receiver`: the id of the receiver that starts the transfer (NULL when
/// the caller has none).
pub(crate) async fn begin_upload(
    db: &PgDatabase,
    upload: &NewUpload,
    receiver: Option<&str>,
) -> Result<UploadId> {
    let raw = upload
        .original_name
        .was_transcoded()
        .then(|| upload.original_name.raw.clone());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO uploads (device_id, original_name, original_name_raw, path, final_path, mode, \
         status, resumed_from, resume_offset, peer, session, started_at, receiver) \
         VALUES ($1, $2, $3, $4, $4, $5, 'receiving', $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(upload.device_id.0)
    .bind(&upload.original_name.display)
    .bind(raw)
    .bind(&upload.path)
    .bind(upload.mode.as_str())
    .bind(upload.resumed_from.map(|u| u.0))
    .bind(size_i64(upload.offset)?)
    .bind(&upload.peer)
    .bind(&upload.session)
    .bind(PgTime(upload.started_at))
    .bind(receiver)
    .fetch_one(&db.pool)
    .await
    .map_err(StoreError::query("recording the start of an upload"))?;
    Ok(UploadId(id))
}

/// Create every missing ancestor directory of `path` (not `path` itself).
async fn ensure_parents(
    conn: &mut PgConnection,
    device: DeviceId,
    path: &str,
    now: PgTime,
) -> Result<()> {
    let mut parents = Vec::new();
    let mut names = Vec::new();
    let mut cur = path;
    while let Some((parent, _)) = split_path(cur) {
        if parent == "/" {
            break;
        }
        if let Some((p, n)) = split_path(parent) {
            parents.push(p);
            names.push(n);
        }
        cur = parent;
    }
    if parents.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO device_dirs (device_id, parent, name, created_at) \
         SELECT $1, p, n, $4 FROM UNNEST($2::text[], $3::text[]) AS x(p, n) \
         ON CONFLICT DO NOTHING",
    )
    .bind(device.0)
    .bind(&parents)
    .bind(&names)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::query("creating parent directories"))?;
    Ok(())
}

pub(crate) async fn finish_upload(
    db: &PgDatabase,
    id: UploadId,
    finish: &UploadFinish,
) -> Result<FinishedUpload> {
    let mut tx = begin(db).await?;
    let row = sqlx::query("SELECT device_id, path FROM uploads WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("reading an upload"))?
        .ok_or_else(|| not_found(format!("upload #{id}")))?;
    let err = corrupt("upload row");
    let device: Option<DeviceId> = row
        .try_get::<Option<i64>, _>(0)
        .map_err(&err)?
        .map(DeviceId);
    let path: String = row.try_get(1).map_err(&err)?;
    if let Some(device) = device {
        // The duplicate check and the name must not race another receiver.
        lock_device(&mut tx, device).await?;
    }
    let sha = finish.sha256.to_hex();
    let duplicate_of = if finish.status == UploadStatus::Complete {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM uploads WHERE device_id IS NOT DISTINCT FROM $1 AND sha256 = $2 \
             AND id <> $3 AND status IN ('complete', 'recovered') ORDER BY id LIMIT 1",
        )
        .bind(device.map(|d| d.0))
        .bind(&sha)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("looking for an earlier identical upload"))?
        .map(UploadId)
    } else {
        None
    };
    let finished = PgTime(finish.finished_at);
    sqlx::query(
        "UPDATE uploads SET status = $1, size = $2, sha256 = $3, reason = $4, received_at = $5, \
         duplicate_of = $6 WHERE id = $7",
    )
    .bind(finish.status.as_str())
    .bind(size_i64(finish.size)?)
    .bind(&sha)
    .bind(&finish.reason)
    .bind(finished)
    .bind(duplicate_of.map(|u| u.0))
    .bind(id.0)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("recording the end of an upload"))?;
    if let (Some(device), Some((parent, name))) = (device, split_path(&path)) {
        ensure_parents(&mut tx, device, &path, finished).await?;
        sqlx::query(
            "INSERT INTO device_files (device_id, parent, name, upload_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, parent, name) DO UPDATE \
             SET upload_id = excluded.upload_id, updated_at = excluded.updated_at",
        )
        .bind(device.0)
        .bind(parent)
        .bind(name)
        .bind(id.0)
        .bind(finished)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(
            "showing an upload in the device's directory",
        ))?;
    }
    if finish.status == UploadStatus::Complete && device.is_some() {
        crate::pg_ingest::enqueue(&mut tx, id, finished).await?;
    }
    commit(tx, "committing the end of an upload").await?;
    Ok(FinishedUpload { duplicate_of })
}

pub(crate) async fn record_recovered(db: &PgDatabase, found: &RecoveredUpload) -> Result<UploadId> {
    let at = PgTime(found.found_at);
    let path = format!("/recovered/{}", found.found_as);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO uploads (device_id, original_name, path, final_path, mode, size, sha256, status, \
         reason, duplicate_of, started_at, received_at) \
         VALUES ($1, $2, $3, $3, 'store', $4, $5, 'recovered', $6, \
         (SELECT id FROM uploads WHERE sha256 = $5 AND status IN ('complete', 'recovered') \
          ORDER BY id LIMIT 1), $7, $7) RETURNING id",
    )
    .bind(found.device_id.map(|d| d.0))
    .bind(&found.found_as)
    .bind(&path)
    .bind(size_i64(found.size)?)
    .bind(found.sha256.to_hex())
    .bind("found in the spool at start-up without a database record")
    .bind(at)
    .fetch_one(&db.pool)
    .await
    .map_err(StoreError::query("recording a recovered file"))?;
    Ok(UploadId(id))
}

pub(crate) async fn upload(db: &PgDatabase, id: UploadId) -> Result<Option<Upload>> {
    let sql = sqlx::AssertSqlSafe(format!("{UPLOAD_SELECT} WHERE u.id = $1"));
    sqlx::query(sql)
        .bind(id.0)
        .fetch_optional(&db.pool)
        .await
        .map_err(StoreError::query("reading an upload"))?
        .as_ref()
        .map(upload_from_row)
        .transpose()
}

/// `$1`, `$2`, … in the order conditions are added.
#[derive(Default)]
pub(crate) struct Placeholders(usize);

impl Placeholders {
    pub(crate) fn next(&mut self) -> String {
        self.0 += 1;
        format!("${}", self.0)
    }
}

pub(crate) async fn list_uploads(db: &PgDatabase, filter: &UploadFilter) -> Result<Vec<Upload>> {
    // Only the conditions that are set, so that each query gets its index.
    let mut n = Placeholders::default();
    let mut sql = format!("{UPLOAD_SELECT} WHERE TRUE");
    if filter.device_id.is_some() {
        sql += &format!(" AND u.device_id = {}", n.next());
    }
    if filter.status.is_some() {
        sql += &format!(" AND u.status = {}", n.next());
    }
    if filter.since.is_some() {
        sql += &format!(" AND u.started_at >= {}", n.next());
    }
    if filter.before_id.is_some() {
        sql += &format!(" AND u.id < {}", n.next());
    }
    if filter.ingest_state.is_some() {
        sql += &format!(" AND i.state = {}", n.next());
    }
    sql += &format!(" ORDER BY u.id DESC LIMIT {}", n.next());
    // Built from the constant fragments above; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(d) = filter.device_id {
        q = q.bind(d.0);
    }
    if let Some(s) = filter.status {
        q = q.bind(s.as_str());
    }
    if let Some(t) = filter.since {
        q = q.bind(PgTime(t));
    }
    if let Some(b) = filter.before_id {
        q = q.bind(b.0);
    }
    if let Some(st) = filter.ingest_state {
        q = q.bind(st.as_str());
    }
    q.bind(filter.limit.map(i64::from))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("listing uploads"))?
        .iter()
        .map(upload_from_row)
        .collect()
}

pub(crate) async fn referenced_digests(db: &PgDatabase) -> Result<Vec<Sha256Digest>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT sha256 FROM uploads WHERE sha256 IS NOT NULL ORDER BY sha256",
    )
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("listing stored digests"))?;
    rows.into_iter()
        .map(|s| {
            s.parse::<Sha256Digest>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .collect()
}

pub(crate) async fn uploads_by_digest(
    db: &PgDatabase,
    sha256: &Sha256Digest,
) -> Result<Vec<UploadId>> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM uploads WHERE sha256 = $1 ORDER BY id")
        .bind(sha256.to_hex())
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("looking up uploads by digest"))?;
    Ok(ids.into_iter().map(UploadId).collect())
}

// The per-device namespace.

async fn dir_exists(conn: &mut PgConnection, device: DeviceId, path: &str) -> Result<bool> {
    let Some((parent, name)) = split_path(path) else {
        return Ok(true); // the root always exists
    };
    let found =
        sqlx::query("SELECT 1 FROM device_dirs WHERE device_id = $1 AND parent = $2 AND name = $3")
            .bind(device.0)
            .bind(parent)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(StoreError::query("looking up a directory"))?;
    Ok(found.is_some())
}

async fn file_upload_id(
    conn: &mut PgConnection,
    device: DeviceId,
    path: &str,
) -> Result<Option<UploadId>> {
    let Some((parent, name)) = split_path(path) else {
        return Ok(None);
    };
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT upload_id FROM device_files WHERE device_id = $1 AND parent = $2 AND name = $3",
    )
    .bind(device.0)
    .bind(parent)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::query("looking up a file"))?;
    Ok(id.map(UploadId))
}

fn ns_file_from_row(r: &PgRow, path: String) -> Result<NsFile> {
    let err = corrupt("file row");
    let status: String = r.try_get("status").map_err(&err)?;
    Ok(NsFile {
        path,
        upload_id: UploadId(r.try_get("upload_id").map_err(&err)?),
        size: size_u64(r.try_get("size").map_err(&err)?)?,
        sha256: digest(r.try_get("sha256").map_err(&err)?)?,
        status: UploadStatus::from_str(&status).map_err(StoreError::Corrupt)?,
        modified: r.try_get::<PgTime, _>("updated_at").map_err(&err)?.0,
    })
}

pub(crate) async fn ns_file(
    db: &PgDatabase,
    device: DeviceId,
    path: &str,
) -> Result<Option<NsFile>> {
    let Some((parent, name)) = split_path(path) else {
        return Ok(None);
    };
    sqlx::query(
        "SELECT f.upload_id, f.updated_at, u.size, u.sha256, u.status FROM device_files f \
         JOIN uploads u ON u.id = f.upload_id WHERE f.device_id = $1 AND f.parent = $2 AND f.name = $3",
    )
    .bind(device.0)
    .bind(parent)
    .bind(name)
    .fetch_optional(&db.pool)
    .await
    .map_err(StoreError::query("looking up a file"))?
    .map(|r| ns_file_from_row(&r, path.to_owned()))
    .transpose()
}

pub(crate) async fn ns_dir_exists(db: &PgDatabase, device: DeviceId, path: &str) -> Result<bool> {
    let mut conn = db
        .pool
        .acquire()
        .await
        .map_err(StoreError::query("getting a connection"))?;
    dir_exists(&mut conn, device, path).await
}

pub(crate) async fn ns_list(db: &PgDatabase, device: DeviceId, dir: &str) -> Result<NsListing> {
    let dirs = sqlx::query(
        "SELECT name, created_at FROM device_dirs WHERE device_id = $1 AND parent = $2 ORDER BY name",
    )
    .bind(device.0)
    .bind(dir)
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("listing directories"))?
    .iter()
    .map(|r| {
        let err = corrupt("directory row");
        let name: String = r.try_get("name").map_err(&err)?;
        Ok(NsDir {
            path: join_path(dir, &name),
            created: r.try_get::<PgTime, _>("created_at").map_err(&err)?.0,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let files = sqlx::query(
        "SELECT f.upload_id, f.updated_at, u.size, u.sha256, u.status, f.name FROM device_files f \
         JOIN uploads u ON u.id = f.upload_id WHERE f.device_id = $1 AND f.parent = $2 ORDER BY f.name",
    )
    .bind(device.0)
    .bind(dir)
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("listing files"))?
    .iter()
    .map(|r| {
        let name: String = r.try_get("name").map_err(corrupt("file row"))?;
        ns_file_from_row(r, join_path(dir, &name))
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(NsListing { dirs, files })
}

pub(crate) async fn ns_mkdir(db: &PgDatabase, device: DeviceId, path: &str) -> Result<()> {
    let Some((parent, name)) = split_path(path) else {
        return Err(StoreError::Conflict(
            "the root directory already exists".into(),
        ));
    };
    let mut tx = begin(db).await?;
    lock_device(&mut tx, device).await?;
    if !dir_exists(&mut tx, device, parent).await? {
        return Err(not_found(format!("directory {parent}")));
    }
    if file_upload_id(&mut tx, device, path).await?.is_some() {
        return Err(StoreError::Conflict(format!("a file named {path} exists")));
    }
    let done = sqlx::query(
        "INSERT INTO device_dirs (device_id, parent, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(device.0)
    .bind(parent)
    .bind(name)
    .bind(PgTime(Timestamp::now()))
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("creating a directory"))?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "directory {path} already exists"
        )));
    }
    commit(tx, "committing a new directory").await
}

pub(crate) async fn ns_rmdir(db: &PgDatabase, device: DeviceId, path: &str) -> Result<()> {
    let Some((parent, name)) = split_path(path) else {
        return Err(StoreError::Conflict(
            "the root directory cannot be removed".into(),
        ));
    };
    let mut tx = begin(db).await?;
    lock_device(&mut tx, device).await?;
    if !dir_exists(&mut tx, device, path).await? {
        return Err(not_found(format!("directory {path}")));
    }
    let busy = sqlx::query(
        "SELECT 1 FROM device_files WHERE device_id = $1 AND parent = $2 \
         UNION ALL SELECT 1 FROM device_dirs WHERE device_id = $1 AND parent = $2 LIMIT 1",
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
    sqlx::query("DELETE FROM device_dirs WHERE device_id = $1 AND parent = $2 AND name = $3")
        .bind(device.0)
        .bind(parent)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("removing a directory"))?;
    commit(tx, "committing a directory removal").await
}

pub(crate) async fn ns_delete(db: &PgDatabase, device: DeviceId, path: &str) -> Result<UploadId> {
    let Some((parent, name)) = split_path(path) else {
        return Err(not_found(format!("file {path}")));
    };
    let mut tx = begin(db).await?;
    lock_device(&mut tx, device).await?;
    let upload: i64 = sqlx::query_scalar(
        "DELETE FROM device_files WHERE device_id = $1 AND parent = $2 AND name = $3 \
         RETURNING upload_id",
    )
    .bind(device.0)
    .bind(parent)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::query("removing a file name"))?
    .ok_or_else(|| not_found(format!("file {path}")))?;
    sqlx::query("UPDATE uploads SET deleted_by_device = TRUE WHERE id = $1")
        .bind(upload)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("marking an upload deleted by the device"))?;
    commit(tx, "committing a file deletion").await?;
    Ok(UploadId(upload))
}

pub(crate) async fn ns_rename(
    db: &PgDatabase,
    device: DeviceId,
    from: &str,
    to: &str,
) -> Result<Renamed> {
    let (Some((from_parent, from_name)), Some((to_parent, to_name))) =
        (split_path(from), split_path(to))
    else {
        return Err(StoreError::Conflict(
            "the root directory cannot be renamed".into(),
        ));
    };
    let now = PgTime(Timestamp::now());
    let mut tx = begin(db).await?;
    lock_device(&mut tx, device).await?;
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
        let replaced: Option<i64> = sqlx::query_scalar(
            "DELETE FROM device_files WHERE device_id = $1 AND parent = $2 AND name = $3 \
             RETURNING upload_id",
        )
        .bind(device.0)
        .bind(to_parent)
        .bind(to_name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query("replacing a file name"))?;
        sqlx::query(
            "UPDATE device_files SET parent = $1, name = $2, updated_at = $3 \
             WHERE device_id = $4 AND parent = $5 AND name = $6",
        )
        .bind(to_parent)
        .bind(to_name)
        .bind(now)
        .bind(device.0)
        .bind(from_parent)
        .bind(from_name)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("renaming a file"))?;
        sqlx::query("UPDATE uploads SET final_path = $1 WHERE id = $2")
            .bind(to)
            .bind(upload.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query("recording an upload's final name"))?;
        commit(tx, "committing a rename").await?;
        return Ok(Renamed::File {
            upload_id: upload,
            replaced: replaced.map(UploadId),
        });
    }
    if !dir_exists(&mut tx, device, from).await? {
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
    // Move the directory entry, then rewrite the parent of everything below
    // it (lengths in characters, as PostgreSQL's substr counts them).
    sqlx::query(
        "UPDATE device_dirs SET parent = $1, name = $2 WHERE device_id = $3 AND parent = $4 AND name = $5",
    )
    .bind(to_parent)
    .bind(to_name)
    .bind(device.0)
    .bind(from_parent)
    .bind(from_name)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("renaming a directory"))?;
    sqlx::query(
        "UPDATE device_dirs SET parent = $1 || substr(parent, char_length($3) + 1) \
         WHERE device_id = $2 AND (parent = $3 OR starts_with(parent, $3 || '/'))",
    )
    .bind(to)
    .bind(device.0)
    .bind(from)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("moving subdirectories"))?;
    let moved = sqlx::query(
        "UPDATE device_files SET parent = $1 || substr(parent, char_length($3) + 1), updated_at = $4 \
         WHERE device_id = $2 AND (parent = $3 OR starts_with(parent, $3 || '/'))",
    )
    .bind(to)
    .bind(device.0)
    .bind(from)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("moving files"))?
    .rows_affected();
    sqlx::query(
        "UPDATE uploads u SET final_path = CASE WHEN f.parent = '/' THEN '/' || f.name \
         ELSE f.parent || '/' || f.name END FROM device_files f \
         WHERE f.upload_id = u.id AND f.device_id = $1 AND (f.parent = $2 OR starts_with(f.parent, $2 || '/'))",
    )
    .bind(device.0)
    .bind(to)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::query("recording final names after a directory move"))?;
    commit(tx, "committing a directory rename").await?;
    Ok(Renamed::Dir { files: moved })
}

// The audit trail.

pub(crate) async fn insert_audit(db: &PgDatabase, events: &[NewAuditEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // One statement for the whole batch, in the given order (ids grow with it).
    sqlx::query(
        "INSERT INTO audit (at, kind, session, peer, device_id, login, upload_id, outcome, detail) \
         SELECT at, kind, session, peer, device_id, login, upload_id, outcome, detail \
         FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], \
         $7::int8[], $8::text[], $9::text[]) WITH ORDINALITY \
         AS x(at, kind, session, peer, device_id, login, upload_id, outcome, detail, n) ORDER BY n",
    )
    .bind(events.iter().map(|e| PgTime(e.at)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.session.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.peer.clone()).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.device_id.map(|d| d.0))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.login.clone()).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.upload_id.map(|u| u.0))
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.outcome.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>())
    .execute(&db.pool)
    .await
    .map_err(StoreError::query("writing the audit trail"))?;
    Ok(())
}

pub(crate) async fn list_audit(db: &PgDatabase, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let mut n = Placeholders::default();
    let mut sql = String::from(
        "SELECT a.id, a.at, a.kind, a.session, a.peer, a.device_id, d.name AS device_name, a.login, \
         a.upload_id, a.outcome, a.detail FROM audit a LEFT JOIN devices d ON d.id = a.device_id \
         WHERE TRUE",
    );
    if filter.since.is_some() {
        sql += &format!(" AND a.at >= {}", n.next());
    }
    if filter.until.is_some() {
        sql += &format!(" AND a.at < {}", n.next());
    }
    if filter.device_id.is_some() {
        sql += &format!(" AND a.device_id = {}", n.next());
    }
    if filter.kind.is_some() {
        sql += &format!(" AND a.kind = {}", n.next());
    }
    if filter.login.is_some() {
        sql += &format!(" AND a.login = {}", n.next());
    }
    if filter.before_id.is_some() {
        sql += &format!(" AND a.id < {}", n.next());
    }
    let order = if filter.newest_first { "DESC" } else { "ASC" };
    sql += &format!(" ORDER BY a.id {order} LIMIT {}", n.next());
    // Built from the constant fragments above; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(t) = filter.since {
        q = q.bind(PgTime(t));
    }
    if let Some(t) = filter.until {
        q = q.bind(PgTime(t));
    }
    if let Some(d) = filter.device_id {
        q = q.bind(d.0);
    }
    if let Some(k) = filter.kind {
        q = q.bind(k.as_str());
    }
    if let Some(l) = &filter.login {
        q = q.bind(l.clone());
    }
    if let Some(b) = filter.before_id {
        q = q.bind(b);
    }
    let rows = q
        .bind(filter.limit.map(i64::from))
        .fetch_all(&db.pool)
        .await
        .map_err(StoreError::query("reading the audit trail"))?;
    rows.iter()
        .map(|r| {
            let err = corrupt("audit row");
            let kind: String = r.try_get("kind").map_err(&err)?;
            Ok(AuditEvent {
                id: r.try_get("id").map_err(&err)?,
                at: r.try_get::<PgTime, _>("at").map_err(&err)?.0,
                kind: AuditKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                session: r.try_get("session").map_err(&err)?,
                peer: r.try_get("peer").map_err(&err)?,
                device_id: r
                    .try_get::<Option<i64>, _>("device_id")
                    .map_err(&err)?
                    .map(DeviceId),
                device: r.try_get("device_name").map_err(&err)?,
                login: r.try_get("login").map_err(&err)?,
                upload_id: r
                    .try_get::<Option<i64>, _>("upload_id")
                    .map_err(&err)?
                    .map(UploadId),
                outcome: r.try_get("outcome").map_err(&err)?,
                detail: r.try_get("detail").map_err(&err)?,
            })
        })
        .collect()
}

// Fleet overview.

/// One query for the fleet (or one device): per device the newest upload
/// (the largest id, through `uploads_by_device`), the newest login (through
/// `audit_by_kind_device`), the newest interval reading (`newest_readings`,
/// then the rows at that time through the primary key of its partition) and
/// the count of uploads whose ingest needs a person.
pub(crate) async fn device_activity(
    db: &PgDatabase,
    only: Option<DeviceId>,
) -> Result<Vec<DeviceActivity>> {
    let rows = sqlx::query(
        "WITH problems AS ( \
           SELECT u.device_id, count(*) AS n FROM ingest i JOIN uploads u ON u.id = i.upload_id \
           WHERE i.state IN ('quarantined', 'failed') AND u.device_id IS NOT NULL \
           AND ($1::int8 IS NULL OR u.device_id = $1) GROUP BY u.device_id) \
         SELECT d.id, lu.started_at, lu.status, \
           (SELECT max(a.at) FROM audit a WHERE a.kind = 'login_succeeded' AND a.device_id = d.id) \
             AS last_login, \
           nr.local_time AS newest, nr.statuses, COALESCE(p.n, 0) AS problems \
         FROM devices d \
         LEFT JOIN LATERAL (SELECT u.started_at, u.status FROM uploads u WHERE u.device_id = d.id \
           ORDER BY u.id DESC LIMIT 1) lu ON TRUE \
         LEFT JOIN LATERAL (SELECT n.local_time, \
             (SELECT jsonb_agg(r.status ORDER BY r.record_no) FROM readings r \
              WHERE r.device_id = n.device_id AND r.kind = n.kind AND r.local_time = n.local_time)::text \
               AS statuses \
           FROM newest_readings n WHERE n.device_id = d.id AND n.kind = 'interval') nr ON TRUE \
         LEFT JOIN problems p ON p.device_id = d.id \
         WHERE ($1::int8 IS NULL OR d.id = $1) ORDER BY d.id",
    )
    .bind(only.map(|d| d.0))
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query("summarising device activity"))?;
    rows.iter()
        .map(|r| {
            let err = corrupt("device activity row");
            let status: Option<String> = r.try_get("status").map_err(&err)?;
            let statuses: Option<String> = r.try_get("statuses").map_err(&err)?;
            // Several rows can share the newest time (record numbers): any alarm counts.
            let newest_status = match statuses {
                Some(s) => serde_json::from_str::<Vec<Vec<String>>>(&s)
                    .map_err(|e| StoreError::Corrupt(format!("reading status {s:?}: {e}")))?
                    .into_iter()
                    .flatten()
                    .collect(),
                None => Vec::new(),
            };
            Ok(DeviceActivity {
                device_id: DeviceId(r.try_get("id").map_err(&err)?),
                last_upload_at: r
                    .try_get::<Option<PgTime>, _>("started_at")
                    .map_err(&err)?
                    .map(|t| t.0),
                last_login_at: r
                    .try_get::<Option<PgTime>, _>("last_login")
                    .map_err(&err)?
                    .map(|t| t.0),
                newest_reading: r
                    .try_get::<Option<PgLocal>, _>("newest")
                    .map_err(&err)?
                    .map(|t| t.0),
                newest_status,
                problem_uploads: u64::try_from(r.try_get::<i64, _>("problems").map_err(&err)?)
                    .unwrap_or(0),
                last_upload_partial: status.as_deref() == Some("partial"),
            })
        })
        .collect()
}

// ---- begin storebench: receiver ownership of transfers (issue #4) ----
/// Transfers in progress that `receiver`'s start-up reconciliation closes:
/// its own and those of no recorded receiver (through the partial index
/// `uploads_receiving_by_receiver`).
pub(crate) async fn interrupted_uploads(db: &PgDatabase, receiver: &str) -> Result<Vec<UploadId>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM uploads WHERE status = 'receiving' \
         AND (receiver = $1 OR receiver IS NULL) ORDER BY id",
    )
    .bind(receiver)
    .fetch_all(&db.pool)
    .await
    .map_err(StoreError::query(
        "listing this receiver's transfers in progress",
    ))?;
    Ok(ids.into_iter().map(UploadId).collect())
}
// ---- end storebench ----
