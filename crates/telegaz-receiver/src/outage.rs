//! Receiving while the database is away.
//!
//! An upload that cannot be recorded in the database is still received: its
//! bytes go to the spool under a server-made name (a negative temporary id,
//! which no database record has) and a sidecar record in the outage journal
//! (`<data-dir>/outage/<key>.json`) says what it is: device, the name exactly
//! as sent, path, peer, session, times, size and SHA-256. The bytes (committed
//! to the spool) and the sidecar are both fsynced before the client hears `226`.
//!
//! When the database answers again the replayer records each sidecar as the
//! upload it is (complete or partial, in the device's namespace, queued for
//! ingest, audited) and only then removes the sidecar. A replay cut short is
//! repeated safely: the upload record is found again by its identity (device,
//! session, path and start time, which no two uploads share), so it is never
//! recorded twice. Start-up runs the replay before reconciliation, and also
//! closes the sidecars of transfers that the stop interrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use telegaz_domain::{
    AuditKind, Device, DeviceId, FileName, NewAuditEvent, NewUpload, PartialReason, Sha256Digest,
    Timestamp, UploadFinish, UploadId, UploadMode, UploadStatus,
};
use telegaz_spool::{Spool, SpoolError};
use telegaz_store::{Database, StoreError, UploadFilter};

use crate::audit::AuditLog;

/// Failures of the outage journal and of its replay.
#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    #[error(
        "outage journal I/O error on {path}: {source}. Check that the data directory is writable and has room"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "outage journal record {path} cannot be read ({detail}); it is left in place for an operator"
    )]
    Unreadable { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl OutageError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        OutageError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the database is (still) away.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OutageError::Store(e) if e.is_unavailable())
    }
}

/// How a journalled transfer ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordEnd {
    /// `complete` or `partial`.
    pub status: String,
    pub reason: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub finished_at: Timestamp,
}

/// One upload received while the database was away (a sidecar file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutageRecord {
    pub version: u32,
    /// The server-made name: the sidecar's file name, and the spool temporary
    /// id of a transfer that began during the outage (negative).
    pub key: i64,
    /// The database record begun before the database went away, if any (its
    /// temporary spool file is named by it).
    pub upload_id: Option<i64>,
    pub device_id: i64,
    pub device: String,
    pub login: String,
    /// The name as sent: readable form and the exact bytes (hex).
    pub original_name: String,
    pub original_name_hex: String,
    pub path: String,
    pub mode: String,
    pub peer: Option<String>,
    pub session: Option<String>,
    /// Whole microseconds (what the database keeps), so that the record is
    /// found again by it.
    pub started_at: Timestamp,
    /// None while the bytes are arriving.
    pub end: Option<RecordEnd>,
}

impl OutageRecord {
    pub fn temp_id(&self) -> i64 {
        self.upload_id.unwrap_or(self.key)
    }

    fn new_upload(&self) -> Result<NewUpload, String> {
        let raw = hex::decode(&self.original_name_hex).map_err(|e| e.to_string())?;
        Ok(NewUpload {
            device_id: DeviceId(self.device_id),
            original_name: FileName {
                display: self.original_name.clone(),
                raw,
            },
            path: self.path.clone(),
            mode: self.mode.parse::<UploadMode>().map_err(|e| e.to_string())?,
            resumed_from: None,
            offset: 0,
            peer: self.peer.clone(),
            session: self.session.clone(),
            started_at: self.started_at,
        })
    }
}

/// A time as the database keeps it (whole microseconds).
pub(crate) fn db_time(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// The directory of sidecar records.
#[derive(Debug, Clone)]
pub struct OutageJournal {
    dir: PathBuf,
}

impl OutageJournal {
    /// Open (creating if needed) the journal directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, OutageError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| OutageError::io(&dir, e))?;
        telegaz_spool::sync_dir(&dir).map_err(OutageError::Spool)?;
        Ok(OutageJournal { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, key: i64) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// Write (or replace) a record durably: a temporary file, fsynced, renamed
    /// over the record, and the directory fsynced.
    pub(crate) async fn write(&self, record: &OutageRecord) -> Result<(), OutageError> {
        let path = self.path_of(record.key);
        let tmp = self.dir.join(format!("{}.json.tmp", record.key));
        let body = serde_json::to_vec_pretty(record).map_err(|e| OutageError::Unreadable {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), OutageError> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| OutageError::io(&tmp, e))?;
            f.write_all(&body).map_err(|e| OutageError::io(&tmp, e))?;
            f.sync_all().map_err(|e| OutageError::io(&tmp, e))?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(|e| OutageError::io(&path, e))?;
            telegaz_spool::sync_dir(&dir).map_err(OutageError::Spool)
        })
        .await
        .map_err(|e| OutageError::io(&self.dir, std::io::Error::other(e.to_string())))?
    }

    /// Whether a record with this key exists (true when that cannot be told).
    pub(crate) async fn contains(&self, key: i64) -> bool {
        tokio::fs::try_exists(self.path_of(key))
            .await
            .unwrap_or(true)
    }

    /// Remove a record once the database holds it.
    pub(crate) async fn remove(&self, key: i64) -> Result<(), OutageError> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OutageError::io(&path, e)),
        }
        telegaz_spool::sync_dir(&self.dir).map_err(OutageError::Spool)
    }

    /// Every record, oldest key first (keys count down), and the files that
    /// could not be read.
    pub(crate) async fn list(&self) -> Result<(Vec<OutageRecord>, Vec<OutageError>), OutageError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let rd = std::fs::read_dir(&dir).map_err(|e| OutageError::io(&dir, e))?;
            let mut records = Vec::new();
            let mut bad = Vec::new();
            for entry in rd {
                let path = entry.map_err(|e| OutageError::io(&dir, e))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let parsed = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<OutageRecord>(&b).map_err(|e| e.to_string())
                    });
                match parsed {
                    Ok(r) => records.push(r),
                    Err(detail) => bad.push(OutageError::Unreadable { path, detail }),
                }
            }
            records.sort_by_key(|r| std::cmp::Reverse(r.key));
            Ok((records, bad))
        })
        .await
        .map_err(|e| OutageError::io(&self.dir, std::io::Error::other(e.to_string())))?
    }

    /// How many records there are.
    pub(crate) async fn count(&self) -> u64 {
        self.list().await.map_or(0, |(r, _)| r.len() as u64)
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Uploads recorded from the journal.
    pub recorded: Vec<UploadId>,
    /// Sidecars whose upload the database held already (a replay cut short).
    pub already: usize,
    /// Records left for later (the database went away again, or a transfer is
    /// still under way).
    pub left: usize,
}

/// Record every finished sidecar in the database. At start-up (`startup`)
/// the sidecars of transfers the stop interrupted are closed as partial too.
/// Stops at the first sign that the database is away (returns that error).
pub async fn replay(
    db: &dyn Database,
    spool: &Spool,
    journal: &OutageJournal,
    audit: &AuditLog,
    startup: bool,
    receiver: &str,
) -> Result<ReplayReport, OutageError> {
    let (records, bad) = journal.list().await?;
    for b in &bad {
        tracing::error!(error = %b, "outage journal");
    }
    let mut report = ReplayReport::default();
    let total = records.len();
    for (i, mut rec) in records.into_iter().enumerate() {
        if rec.end.is_none() {
            if !startup {
                report.left += 1;
                continue;
            }
            match close_interrupted(spool, &mut rec).await? {
                true => {}
                false => {
                    // No bytes ever arrived: nothing to record.
                    journal.remove(rec.key).await?;
                    continue;
                }
            }
        }
        match replay_one(db, spool, journal, audit, &rec, receiver).await {
            Ok(Some(id)) => report.recorded.push(id),
            Ok(None) => report.already += 1,
            Err(e) if e.is_unavailable() => {
                report.left += total - i;
                return Err(e);
            }
            Err(e) => {
                // This record stays for an operator; the others go on.
                tracing::error!(outage_record = rec.key, error = %e, "cannot record an upload from the outage journal; it stays there");
                report.left += 1;
            }
        }
    }
    Ok(report)
}

/// The bytes of a transfer cut by a stop: committed as they are. False when
/// there are none (the stop came before the temporary file was made).
async fn close_interrupted(spool: &Spool, rec: &mut OutageRecord) -> Result<bool, OutageError> {
    let temp = rec.temp_id();
    if !tokio::fs::try_exists(spool.temp_path(temp))
        .await
        .unwrap_or(false)
    {
        return Ok(false);
    }
    let c = spool.commit_existing_temp(temp).await?;
    rec.end = Some(RecordEnd {
        status: UploadStatus::Partial.as_str().to_owned(),
        reason: Some(PartialReason::ServerStopped.to_string()),
        size: c.size,
        sha256: c.sha256.to_hex(),
        finished_at: Timestamp::now(),
    });
    Ok(true)
}

/// Record one sidecar; `None` when the database held it already.
async fn replay_one(
    db: &dyn Database,
    spool: &Spool,
    journal: &OutageJournal,
    audit: &AuditLog,
    rec: &OutageRecord,
    receiver: &str,
) -> Result<Option<UploadId>, OutageError> {
    let unreadable = |detail: String| OutageError::Unreadable {
        path: journal.path_of(rec.key),
        detail,
    };
    let Some(end) = &rec.end else {
        return Ok(None);
    };
    let sha256: Sha256Digest = end.sha256.parse().map_err(|e| unreadable(format!("{e}")))?;
    let status: UploadStatus = end
        .status
        .parse()
        .map_err(|e| unreadable(format!("status: {e}")))?;
    let finish = UploadFinish {
        status,
        size: end.size,
        sha256,
        reason: end.reason.clone(),
        finished_at: end.finished_at,
    };
    let existing = match rec.upload_id {
        Some(id) => db.upload(UploadId(id)).await?,
        None => db
            .list_uploads(&UploadFilter {
                device_id: Some(DeviceId(rec.device_id)),
                since: Some(rec.started_at),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|u| {
                u.started_at == rec.started_at && u.session == rec.session && u.path == rec.path
            }),
    };
    let recorded = match existing {
        Some(u) if u.status != UploadStatus::Receiving => None,
        Some(u) => {
            let f = db.finish_upload(u.id, &finish).await?;
            Some((u.id, f.duplicate_of))
        }
        None => {
            let new = rec.new_upload().map_err(unreadable)?;
            let id = db.begin_upload_by(&new, receiver).await?;
            let f = db.finish_upload(id, &finish).await?;
            Some((id, f.duplicate_of))
        }
    };
    if let Some((id, duplicate_of)) = recorded {
        metrics::counter!("telegaz_outage_uploads_recorded_total").increment(1);
        metrics::counter!("telegaz_uploads_total", "status" => status.as_str()).increment(1);
        let mut e = NewAuditEvent::new(AuditKind::UploadFinished, status.as_str());
        e.at = end.finished_at;
        e.session = rec.session.clone();
        e.peer = rec.peer.clone();
        e.device_id = Some(DeviceId(rec.device_id));
        e.login = Some(rec.login.clone());
        e.upload_id = Some(id);
        e.detail = format!(
            "{} ({}): {} bytes, sha256 {}{}{}; received while the database was unavailable (outage record {}), recorded {}",
            rec.path,
            rec.mode,
            end.size,
            end.sha256,
            duplicate_of
                .map(|d| format!(", duplicate of upload #{d}"))
                .unwrap_or_default(),
            end.reason
                .as_ref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default(),
            rec.key,
            Timestamp::now(),
        );
        audit.record(e).await;
        tracing::info!(
            upload_id = id.0,
            outage_record = rec.key,
            device = %rec.device,
            path = %rec.path,
            "upload received during the database outage is recorded"
        );
    }
    spool.remove_temp(rec.temp_id()).await?;
    journal.remove(rec.key).await?;
    Ok(recorded.map(|(id, _)| id))
}

/// The devices as last read from the database, for logins while it is away.
/// It follows the database: every successful lookup replaces (or removes) the
/// device's entry and a periodic refresh replaces the whole list, so a device
/// disabled or changed while the database was reachable is never let in on
/// its old settings.
#[derive(Debug, Default)]
pub(crate) struct DeviceCache {
    by_login: RwLock<HashMap<String, Device>>,
}

impl DeviceCache {
    pub fn get(&self, login: &str) -> Option<Device> {
        self.by_login.read().ok()?.get(login).cloned()
    }

    /// What the database said about one login.
    pub fn update(&self, login: &str, device: Option<&Device>) {
        if let Ok(mut m) = self.by_login.write() {
            match device {
                Some(d) => {
                    m.insert(login.to_owned(), d.clone());
                }
                None => {
                    m.remove(login);
                }
            }
        }
    }

    /// The whole list, freshly read.
    pub fn replace_all(&self, devices: Vec<Device>) {
        let map = devices
            .into_iter()
            .map(|d| (d.login.to_string(), d))
            .collect();
        if let Ok(mut m) = self.by_login.write() {
            *m = map;
        }
    }

    pub fn len(&self) -> usize {
        self.by_login.read().map_or(0, |m| m.len())
    }
}
