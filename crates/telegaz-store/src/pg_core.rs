//! PostgreSQL side of devices, uploads, the device namespace, the audit trail,
//! the ingest queue, readings and events, and fleet activity.

// A skeleton: this module fills in its own imports as it is written.
#[allow(unused_imports)]
use telegaz_domain::{
    ApiToken, ArchiveRecord, AuditEvent, Device, DeviceId, EventRecord, IngestInfo, IngestState,
    NewAuditEvent, NewUpload, ParsedFile, Sha256Digest, Timestamp, Upload, UploadFinish, UploadId,
    User, UserId, WebSession,
};

use crate::postgres::{PgDatabase, not_yet};
#[allow(unused_imports)]
use crate::{
    AlertFilter, AuditFilter, DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeviceActivity,
    DeviceUpdate, FinishedUpload, NewAlert, NewDevice, NewNotification, NewSession, NewUser,
    NotificationSend, NsFile, NsListing, ReadingFilter, RecoveredUpload, Renamed, RequeueFilter,
    Result, SendOutcome, UploadFilter, UserUpdate,
};

pub(crate) async fn create_device(db: &PgDatabase, device: NewDevice) -> Result<Device> {
    let _ = (db, device);
    Err(not_yet("create_device"))
}

pub(crate) async fn device_by_id(db: &PgDatabase, id: DeviceId) -> Result<Option<Device>> {
    let _ = (db, id);
    Err(not_yet("device_by_id"))
}

pub(crate) async fn device_by_name(db: &PgDatabase, name: &str) -> Result<Option<Device>> {
    let _ = (db, name);
    Err(not_yet("device_by_name"))
}

pub(crate) async fn device_by_login(db: &PgDatabase, login: &str) -> Result<Option<Device>> {
    let _ = (db, login);
    Err(not_yet("device_by_login"))
}

pub(crate) async fn list_devices(db: &PgDatabase) -> Result<Vec<Device>> {
    let _ = db;
    Err(not_yet("list_devices"))
}

pub(crate) async fn update_device(
    db: &PgDatabase,
    id: DeviceId,
    update: DeviceUpdate,
) -> Result<Device> {
    let _ = (db, id, update);
    Err(not_yet("update_device"))
}

pub(crate) async fn begin_upload(db: &PgDatabase, upload: &NewUpload) -> Result<UploadId> {
    let _ = (db, upload);
    Err(not_yet("begin_upload"))
}

pub(crate) async fn finish_upload(
    db: &PgDatabase,
    id: UploadId,
    finish: &UploadFinish,
) -> Result<FinishedUpload> {
    let _ = (db, id, finish);
    Err(not_yet("finish_upload"))
}

pub(crate) async fn record_recovered(db: &PgDatabase, found: &RecoveredUpload) -> Result<UploadId> {
    let _ = (db, found);
    Err(not_yet("record_recovered"))
}

pub(crate) async fn upload(db: &PgDatabase, id: UploadId) -> Result<Option<Upload>> {
    let _ = (db, id);
    Err(not_yet("upload"))
}

pub(crate) async fn list_uploads(db: &PgDatabase, filter: &UploadFilter) -> Result<Vec<Upload>> {
    let _ = (db, filter);
    Err(not_yet("list_uploads"))
}

pub(crate) async fn referenced_digests(db: &PgDatabase) -> Result<Vec<Sha256Digest>> {
    let _ = db;
    Err(not_yet("referenced_digests"))
}

pub(crate) async fn uploads_by_digest(
    db: &PgDatabase,
    sha256: &Sha256Digest,
) -> Result<Vec<UploadId>> {
    let _ = (db, sha256);
    Err(not_yet("uploads_by_digest"))
}

pub(crate) async fn ns_file(
    db: &PgDatabase,
    device: DeviceId,
    path: &str,
) -> Result<Option<NsFile>> {
    let _ = (db, device, path);
    Err(not_yet("ns_file"))
}

pub(crate) async fn ns_dir_exists(db: &PgDatabase, device: DeviceId, path: &str) -> Result<bool> {
    let _ = (db, device, path);
    Err(not_yet("ns_dir_exists"))
}

pub(crate) async fn ns_list(db: &PgDatabase, device: DeviceId, dir: &str) -> Result<NsListing> {
    let _ = (db, device, dir);
    Err(not_yet("ns_list"))
}

pub(crate) async fn ns_mkdir(db: &PgDatabase, device: DeviceId, path: &str) -> Result<()> {
    let _ = (db, device, path);
    Err(not_yet("ns_mkdir"))
}

pub(crate) async fn ns_rmdir(db: &PgDatabase, device: DeviceId, path: &str) -> Result<()> {
    let _ = (db, device, path);
    Err(not_yet("ns_rmdir"))
}

pub(crate) async fn ns_delete(db: &PgDatabase, device: DeviceId, path: &str) -> Result<UploadId> {
    let _ = (db, device, path);
    Err(not_yet("ns_delete"))
}

pub(crate) async fn ns_rename(
    db: &PgDatabase,
    device: DeviceId,
    from: &str,
    to: &str,
) -> Result<Renamed> {
    let _ = (db, device, from, to);
    Err(not_yet("ns_rename"))
}

pub(crate) async fn enqueue_ingest(db: &PgDatabase, id: UploadId) -> Result<()> {
    let _ = (db, id);
    Err(not_yet("enqueue_ingest"))
}

pub(crate) async fn requeue_ingest(
    db: &PgDatabase,
    filter: &RequeueFilter,
) -> Result<Vec<UploadId>> {
    let _ = (db, filter);
    Err(not_yet("requeue_ingest"))
}

pub(crate) async fn pending_ingest(db: &PgDatabase, limit: u32) -> Result<Vec<UploadId>> {
    let _ = (db, limit);
    Err(not_yet("pending_ingest"))
}

pub(crate) async fn ingest_backlog(db: &PgDatabase) -> Result<(u64, Option<Timestamp>)> {
    let _ = db;
    Err(not_yet("ingest_backlog"))
}

pub(crate) async fn begin_ingest_attempt(db: &PgDatabase, id: UploadId) -> Result<u32> {
    let _ = (db, id);
    Err(not_yet("begin_ingest_attempt"))
}

pub(crate) async fn store_parsed(
    db: &PgDatabase,
    id: UploadId,
    device: DeviceId,
    parsed: &ParsedFile,
) -> Result<IngestInfo> {
    let _ = (db, id, device, parsed);
    Err(not_yet("store_parsed"))
}

pub(crate) async fn finish_ingest(
    db: &PgDatabase,
    id: UploadId,
    state: IngestState,
    reason: &str,
) -> Result<()> {
    let _ = (db, id, state, reason);
    Err(not_yet("finish_ingest"))
}

pub(crate) async fn readings(
    db: &PgDatabase,
    filter: &ReadingFilter,
) -> Result<Vec<ArchiveRecord>> {
    let _ = (db, filter);
    Err(not_yet("readings"))
}

pub(crate) async fn events(db: &PgDatabase, filter: &ReadingFilter) -> Result<Vec<EventRecord>> {
    let _ = (db, filter);
    Err(not_yet("events"))
}

pub(crate) async fn insert_audit(db: &PgDatabase, events: &[NewAuditEvent]) -> Result<()> {
    let _ = (db, events);
    Err(not_yet("insert_audit"))
}

pub(crate) async fn list_audit(db: &PgDatabase, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let _ = (db, filter);
    Err(not_yet("list_audit"))
}

pub(crate) async fn device_activity(
    db: &PgDatabase,
    only: Option<DeviceId>,
) -> Result<Vec<DeviceActivity>> {
    let _ = (db, only);
    Err(not_yet("device_activity"))
}
